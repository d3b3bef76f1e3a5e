"""needle.nn: modules (layers, losses, normalisation) and safe checkpoints.

Course-compatible names: ``Parameter``, ``Module``, ``Identity``, ``Linear``, ``Flatten``,
``ReLU``, ``Tanh``, ``Sigmoid``, ``Softmax``, ``Sequential``, ``Residual``, ``Dropout``,
``SoftmaxLoss`` (alias ``CrossEntropyLoss``), ``MSELoss``, ``BatchNorm1d``, ``LayerNorm1d``;
``save(state, path)`` / ``load(path)`` write and read ``.npz`` checkpoints.
``needle.nn.functional`` holds the same layers and losses as functions (PyTorch's names).
"""
from .checkpoint import CheckpointError, load, save
from .nn_basic import (
    CrossEntropyLoss, Dropout, Flatten, Identity, Linear, MSELoss, ReLU, Residual, Sequential, Sigmoid, Softmax,
    SoftmaxLoss, Tanh,
)
from .nn_module import Module, Parameter, StateDictError
from .nn_norm import BatchNorm1d, LayerNorm1d
from .version import __version__
from . import functional  # noqa: E402  (after the modules: it is what they call)

__all__ = [
    "BatchNorm1d", "CheckpointError", "CrossEntropyLoss", "Dropout", "Flatten", "Identity", "LayerNorm1d",
    "Linear", "MSELoss", "Module", "Parameter", "ReLU", "Residual", "Sequential", "Sigmoid", "Softmax",
    "SoftmaxLoss", "StateDictError", "Tanh", "__version__", "functional", "load", "save",
]
from .nn_conv import AvgPool2d, BatchNorm2d, Conv, MaxPool2d
from .nn_sequence import LSTM, RNN, Embedding, LSTMCell, RNNCell
from .nn_transformer import AttentionLayer, MultiHeadAttention, Transformer, TransformerLayer

__all__ += ["AttentionLayer", "AvgPool2d", "BatchNorm2d", "Conv", "Embedding", "LSTM", "LSTMCell", "MaxPool2d",
            "MultiHeadAttention", "RNN", "RNNCell", "Transformer", "TransformerLayer"]
