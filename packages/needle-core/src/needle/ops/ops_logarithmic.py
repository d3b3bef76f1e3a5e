"""Numerically stable log-sum-exp and log-softmax (both subtract the max first)."""
from ..autograd import NDArray, TensorOp
from ..backend_ndarray.ndarray import normalize_axes
from .ops_mathematic import _kept_shape, add, broadcast_to, exp, multiply, negate, reshape, summation


def _stable_logsumexp(z: NDArray, axes, keepdims):
    z_max = z.max(axes, keepdims=True)
    shifted = z - z_max.broadcast_to(z.shape)
    out = shifted.exp().sum(axes, keepdims=True).log() + z_max
    return out if keepdims else out.reshape(tuple(s for i, s in enumerate(z.shape) if i not in axes))


class LogSumExp(TensorOp):
    """``log(sum(exp(z), axes))``."""

    def __init__(self, axes=None):
        self.axes = axes

    def compute(self, z: NDArray):
        return _stable_logsumexp(z, normalize_axes(self.axes, z.ndim), keepdims=False)

    def gradient(self, out_grad, node):
        z = node.inputs[0]
        kept = _kept_shape(z.shape, normalize_axes(self.axes, len(z.shape)))
        softmax = exp(add(z, negate(broadcast_to(reshape(node, kept), z.shape))))
        return multiply(broadcast_to(reshape(out_grad, kept), z.shape), softmax)


def logsumexp(a, axes=None):
    """``log(sum(exp(a), axes))``, computed without overflow."""
    normalize_axes(axes, len(a.shape))
    return LogSumExp(axes)(a)


class LogSoftmax(TensorOp):
    """``z - logsumexp(z, axis, keepdims=True)``."""

    def __init__(self, axis=-1):
        self.axis = axis

    def compute(self, z: NDArray):
        axes = normalize_axes(self.axis, z.ndim)
        return z - _stable_logsumexp(z, axes, keepdims=True).broadcast_to(z.shape)

    def gradient(self, out_grad, node):
        axes = normalize_axes(self.axis, len(node.shape))
        kept = _kept_shape(node.shape, axes)
        total = broadcast_to(reshape(summation(out_grad, axes), kept), node.shape)
        return add(out_grad, negate(multiply(exp(node), total)))


def logsoftmax(a, axis=-1):
    """Log of the softmax over ``axis`` (default: the last)."""
    normalize_axes(axis, len(a.shape))
    return LogSoftmax(axis)(a)
