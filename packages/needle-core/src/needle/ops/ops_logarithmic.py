"""Numerically stable log-sum-exp and log-softmax (both subtract the max first)."""
from ..autograd import NDArray, Tensor, TensorOp, is_grad_enabled
from ..backend_ndarray.ndarray import normalize_axes
from .ops_mathematic import (
    _kept_shape, add, broadcast_to, divide_scalar, exp, multiply, negate, reshape, summation,
)


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
    normalize_axes(axes, len(a.shape), "axes", a.shape, "logsumexp")
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
    normalize_axes(axis, len(a.shape), "axis", a.shape, "logsoftmax")
    return LogSoftmax(axis)(a)


class SoftmaxCrossEntropy(TensorOp):
    """Mean over rows of ``logsumexp(z) - sum(z * y)``: z logits (n, k), y a constant one-hot (n, k).

    One node instead of a dozen: the composed loss broadcast-copied the row maxima and sums
    several times over (n, k). The forward keeps ``exp(z - max)`` and its row sums, so that a
    gradient taken without a graph (``backward(create_graph=False)``) is two passes over
    (n, k); with a graph, the gradient is composed from ops and can be differentiated again.
    """

    def compute(self, z: NDArray, y: NDArray):
        n = z.shape[0]
        z_max = z.max(1, keepdims=True)
        e = (z - z_max.broadcast_to(z.shape)).exp()
        sums = e.sum(1, keepdims=True)
        lse = sums.log() + z_max
        picked = (z * y).sum(1, keepdims=True)
        self._saved = (e, sums)
        return (lse - picked).sum() / n

    def gradient(self, out_grad, node):
        z, y = node.inputs
        n = z.shape[0]
        if is_grad_enabled():
            softmax = exp(logsoftmax(z, 1))
            return multiply(add(softmax, negate(y)), broadcast_to(divide_scalar(out_grad, n), z.shape)), None
        e, sums = self._saved
        scale = float(out_grad.realize_cached_data().numpy()) / n
        grad = (e / sums.broadcast_to(e.shape) - y.realize_cached_data()) * scale
        return Tensor.make_const(grad), None


def softmax_cross_entropy(logits, one_hot):
    """Mean cross-entropy of ``logits`` (n, k) against the constant ``one_hot`` (n, k) targets."""
    if len(logits.shape) != 2 or tuple(one_hot.shape) != tuple(logits.shape):
        raise ValueError(f"softmax_cross_entropy: logits must be (n, k) and one_hot the same shape, "
                         f"got {logits.shape} and {one_hot.shape}")
    return SoftmaxCrossEntropy()(logits, one_hot)
