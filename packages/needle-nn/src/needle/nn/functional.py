"""``needle.nn.functional``: the layers and losses of :mod:`needle.nn` as functions, with
``torch.nn.functional``'s names and signatures (``import needle.nn.functional as F``).

Each function is the code its module runs (``nn.ReLU``, ``nn.Softmax``, ``nn.Linear``,
``nn.Dropout``, ``nn.SoftmaxLoss``, ``nn.MSELoss`` call these), so a module and its function
always agree. Where needle's course rules differ from PyTorch's, the course's hold:

- ``linear(x, weight, bias)`` takes ``weight`` as (in_features, out_features), the layout of
  ``nn.Linear.weight`` (PyTorch's is (out, in)): ``x @ weight + bias``.
- ``dropout`` keeps an element where a uniform draw is <= 1 - p (numpy's global generator),
  as ``nn.Dropout`` does.
"""
import math
import warnings

import numpy as np

from needle import init, ops
from needle.autograd import Tensor

__all__ = ["cross_entropy", "dropout", "linear", "log_softmax", "mse_loss", "one_hot", "pad", "relu", "sigmoid",
           "softmax", "tanh"]


def _no_inplace(who, inplace):
    if inplace:
        raise ValueError(f"{who}: inplace=True is not supported (needle's ops never write into their input); "
                         f"use the returned tensor")


def relu(input, inplace=False):  # noqa: A002 - PyTorch's argument name
    """``max(input, 0)`` (``ops.relu``)."""
    _no_inplace("relu", inplace)
    return ops.relu(input)


def sigmoid(input):  # noqa: A002
    """``1 / (1 + exp(-input))`` (``ops.sigmoid``; finite for every finite input)."""
    return ops.sigmoid(input)


def tanh(input):  # noqa: A002
    """``tanh(input)`` (``ops.tanh``)."""
    return ops.tanh(input)


def _softmax_dim(who, input, dim):
    """The axis of a (log-)softmax; without one, PyTorch's legacy choice (0 for 0-, 1- and 3-D
    inputs, else 1), with PyTorch's warning."""
    if dim is None:
        warnings.warn(f"{who}: implicit dimension choice is deprecated (as in PyTorch); pass dim=",
                      UserWarning, stacklevel=3)
        dim = 0 if input.ndim in (0, 1, 3) else 1
    return dim


def softmax(input, dim=None, dtype=None):  # noqa: A002
    """Softmax over ``dim`` (``ops.softmax``); ``dtype`` converts the input first (PyTorch's rule)."""
    dim = _softmax_dim("softmax", input, dim)
    return ops.softmax(input if dtype is None else input.astype(dtype), dim)


def log_softmax(input, dim=None, dtype=None):  # noqa: A002
    """Log-softmax over ``dim`` (``ops.logsoftmax``); ``dtype`` converts the input first."""
    dim = _softmax_dim("log_softmax", input, dim)
    return ops.logsoftmax(input if dtype is None else input.astype(dtype), dim)


_REDUCTIONS = ("mean", "sum")


def _check_reduction(who, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{who}: reduction must be one of {', '.join(map(repr, _REDUCTIONS))}, got {reduction!r}")


def cross_entropy(input, target, reduction="mean"):  # noqa: A002
    """Cross-entropy of logits ``input`` (N, C) against integer class labels ``target`` (N,)
    (a Tensor of any integer dtype, an array or a list), averaged over the batch (``reduction="mean"``)
    or summed (``"sum"``): ``ops.softmax_cross_entropy_labels``, the op of ``nn.SoftmaxLoss``."""
    _check_reduction("cross_entropy", reduction)
    if not isinstance(input, Tensor) or input.ndim != 2:
        shape = input.shape if isinstance(input, Tensor) else type(input).__name__
        raise ValueError(f"cross_entropy: input must be logits of shape (batch, classes), got {shape}")
    loss = ops.softmax_cross_entropy_labels(input, target)
    return loss if reduction == "mean" else loss * input.shape[0]


def mse_loss(input, target, reduction="mean"):  # noqa: A002
    """Mean (or, with ``reduction="sum"``, sum) of ``(input - target) ** 2`` over every element;
    ``target`` a Tensor of the same shape, or anything ``Tensor()`` takes (``nn.MSELoss``)."""
    _check_reduction("mse_loss", reduction)
    if not isinstance(target, Tensor):
        target = Tensor(target, device=input.device, dtype=input.dtype, requires_grad=False)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input has shape {input.shape}, target has shape {target.shape}")
    diff = input - target
    total = ops.summation(diff * diff)
    return total / max(math.prod(input.shape), 1) if reduction == "mean" else total


def linear(input, weight, bias=None):  # noqa: A002
    """``input @ weight + bias`` over the last axis of ``input`` (any rank), with ``weight`` of shape
    (in_features, out_features), as ``nn.Linear.weight`` (PyTorch's ``F.linear`` takes (out, in)),
    and ``bias`` of out_features elements ((out,) or (1, out)), or None."""
    if not isinstance(input, Tensor):
        raise TypeError(f"linear: expected a Tensor input, got {type(input).__name__}")
    shape, w_shape = input.shape, weight.shape  # read once: each read is a property call
    if len(w_shape) != 2 or not shape or shape[-1] != w_shape[0]:
        features = shape[-1] if shape else "in_features"
        raise ValueError(f"linear: input of shape {shape} needs weight of shape ({features}, out_features) "
                         f"(needle's (in, out) layout), got {w_shape}")
    if bias is not None and math.prod(bias.shape) != w_shape[1]:
        raise ValueError(f"linear: bias of shape {bias.shape} must have {w_shape[1]} elements")
    in_features, out_features = w_shape
    lead = shape[:-1]
    # One 2-D matmul for any rank: cheaper than a batched matmul and its gradient.
    flat = input if len(shape) == 2 else ops.reshape(input, (math.prod(lead), in_features))
    if bias is not None:  # one fused op (and kernel, where the backend has matmul_bias)
        out = ops.matmul_bias(flat, weight, bias)
    else:
        out = ops.matmul(flat, weight)
    return out if len(shape) == 2 else ops.reshape(out, lead + (out_features,))


def dropout(input, p=0.5, training=True, inplace=False):  # noqa: A002
    """In training, zero each element with probability ``p`` and scale the rest by 1 / (1 - p);
    the identity when ``training`` is False. The course's mask (``nn.Dropout``): keep where a
    uniform draw (``init.randb``, numpy's global generator) is <= 1 - p, drawn for every p."""
    _no_inplace("dropout", inplace)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must be in [0, 1], got {p}")
    if not training:
        return input
    mask = init.randb(*input.shape, p=1.0 - p, device=input.device, dtype=input.dtype)
    if p == 1.0:
        return input * 0.0
    return input * mask / (1.0 - p)


def one_hot(tensor, num_classes=-1):
    """Rows of the ``num_classes`` identity picked by the integer labels ``tensor`` (any shape),
    as int64 (PyTorch's dtype; ``.float()`` for arithmetic): ``init.one_hot``. ``num_classes=-1``
    takes the largest label plus one."""
    if num_classes == -1:
        labels = np.asarray(tensor.numpy() if isinstance(tensor, Tensor) else tensor)
        num_classes = int(labels.max()) + 1 if labels.size else 0
    device = tensor.device if isinstance(tensor, Tensor) else None
    return init.one_hot(num_classes, tensor, device=device, dtype="int64")


def pad(input, pad, mode="constant", value=None):  # noqa: A002
    """Pad ``input`` by the flat tuple ``pad``: (before, after) for the last axis, then for the one
    before it, and so on (PyTorch's order), with ``value`` (default 0). Only ``mode="constant"``
    and non-negative widths; ``ops.pad`` does the work (a zero fill; another value is added around)."""
    if mode != "constant":
        raise ValueError(f"pad: only mode='constant' is supported, got {mode!r}")
    widths = tuple(pad)
    if len(widths) % 2 or len(widths) // 2 > input.ndim:
        raise ValueError(f"pad: needs an even number of widths, at most 2 per axis of shape {input.shape}, got {pad}")
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in widths):
        raise ValueError(f"pad: widths must be non-negative ints, got {pad}")
    pairs = [(0, 0)] * input.ndim
    for i in range(len(widths) // 2):
        pairs[input.ndim - 1 - i] = (widths[2 * i], widths[2 * i + 1])
    if not value:
        return ops.pad(input, tuple(pairs))
    # A fill value v: pad (input - v) with zeros, then add v everywhere (the gradient is unchanged).
    return ops.pad(input - value, tuple(pairs)) + value
