"""Basic layers: Linear, activations, containers, Dropout and the losses."""
import math

from needle import init, ops
from needle.autograd import Tensor

from . import functional as F
from .nn_module import Module, Parameter


class _Stateless(Module):
    """A module with no parameters; takes ``device``/``dtype`` like every module, for uniformity."""

    def __init__(self, *, device=None, dtype="float32"):
        super().__init__()


def _check_last_dim(layer, x, expected):
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: expected a Tensor input, got {type(x).__name__}; wrap it with ndl.Tensor(x)")
    if not x.shape or x.shape[-1] != expected:
        raise ValueError(f"{layer}: input of shape {x.shape} must have {expected} features on its last axis")


class Identity(_Stateless):
    """Returns its input."""

    def forward(self, x):
        return x


class Linear(Module):
    """``y = x @ weight + bias`` over the last axis (any rank).

    ``weight`` is (in_features, out_features) from ``kaiming_uniform(in, out)``; ``bias`` is
    (1, out_features) from ``kaiming_uniform(out, 1)`` reshaped, drawn after the weight (the
    course's order, so seeded runs match).

    >>> import needle as ndl
    >>> import needle.nn as nn
    >>> layer = nn.Linear(3, 2)
    >>> layer.weight.shape, layer.bias.shape
    ((3, 2), (1, 2))
    >>> layer(ndl.ones(4, 3)).shape
    (4, 2)
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype="float32"):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(init.kaiming_uniform(in_features, out_features, device=device, dtype=dtype))
        self.bias = None
        if bias:
            b = init.kaiming_uniform(out_features, 1, device=device, dtype=dtype)
            self.bias = Parameter(b.reshape((1, out_features)))

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def forward(self, X):
        _check_last_dim("Linear", X, self.in_features)
        return F.linear(X, self.weight, self.bias)


class Flatten(_Stateless):
    """(N, d1, d2, ...) -> (N, d1*d2*...)."""

    def forward(self, X):
        shape = X.shape
        if len(shape) < 1:
            raise ValueError("Flatten: input must have a batch axis, got a 0-d tensor")
        if len(shape) == 2:  # flat already: the input itself, as torch.flatten (no reshape node per step)
            return X
        return ops.reshape(X, (shape[0], math.prod(shape[1:])))


class ReLU(_Stateless):
    """``max(x, 0)``."""

    def forward(self, x):
        return F.relu(x)


class Tanh(_Stateless):
    """``tanh(x)``."""

    def forward(self, x):
        return F.tanh(x)


class Sigmoid(_Stateless):
    """``1 / (1 + exp(-x))``."""

    def forward(self, x):
        return F.sigmoid(x)


class Softmax(Module):
    """``exp(x) / sum(exp(x))`` over ``axis`` (default the last): ``ops.softmax``, exp(logsoftmax)."""

    def __init__(self, axis=-1, device=None, dtype="float32"):
        super().__init__()
        self.axis = axis

    def extra_repr(self):
        return f"axis={self.axis}"

    def forward(self, x):
        return ops.softmax(x, self.axis)


class Sequential(Module):
    """Applies ``modules`` in order; they are kept in ``self.modules``."""

    def __init__(self, *modules, device=None, dtype="float32"):
        super().__init__()
        for i, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(f"Sequential: argument {i} is a {type(module).__name__}, not a Module")
        self.modules = list(modules)

    def forward(self, x):
        for module in self.modules:
            x = module(x)
        return x


class Residual(Module):
    """``fn(x) + x``."""

    def __init__(self, fn, device=None, dtype="float32"):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


class Dropout(Module):
    """In training, zero each element with probability ``p`` and scale the rest by 1/(1-p).

    The mask keeps an element where a uniform draw is <= 1-p (``init.randb``, numpy's global
    generator). In eval mode it returns its input.
    """

    def __init__(self, p=0.5, device=None, dtype="float32"):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1], got {p}")
        self.p = p

    def extra_repr(self):
        return f"p={self.p}"

    def forward(self, x):
        # The mask is drawn for every p, as the course does, so that seeded runs draw the same numbers after it.
        return F.dropout(x, self.p, self.training)


class SoftmaxLoss(_Stateless):
    """Mean cross-entropy of ``logits`` (N, k) against integer labels ``y`` (N,).

    ``y`` is a Tensor, array or list of ints (or floats holding ints) in [0, k).
    The log-sum-exp subtracts the max, so large logits do not overflow. One op,
    ``ops.softmax_cross_entropy_labels``: labels already on the logits' device stay there, and a
    backend's fused kernels make it one pass each way with no one-hot.
    """

    def forward(self, logits, y):
        if logits.ndim != 2:
            raise ValueError(f"SoftmaxLoss: logits must be (batch, classes), got shape {logits.shape}")
        return F.cross_entropy(logits, y)


#: PyTorch's name for the same loss.
CrossEntropyLoss = SoftmaxLoss


class MSELoss(_Stateless):
    """Mean of ``(pred - target) ** 2`` over every element."""

    def forward(self, pred, target):
        if not isinstance(target, Tensor):
            target = Tensor(target, device=pred.device, dtype=pred.dtype, requires_grad=False)
        if pred.shape != target.shape:
            raise ValueError(f"MSELoss: pred has shape {pred.shape}, target has shape {target.shape}")
        return F.mse_loss(pred, target)
