"""Numerically stable log-sum-exp and log-softmax (both subtract the max first)."""
from ..autograd import NDArray, Tensor, TensorOp, is_grad_enabled
from ..backend_ndarray.ndarray import normalize_axes
from .ops_mathematic import (
    _kept_shape, add, broadcast_to, divide_scalar, exp, multiply, negate, reshape, summation,
)


def _shifted_logsumexp(z: NDArray, axes):
    """``(z - max, log(sum(exp(z - max))), max)`` over ``axes``, the last two with kept dims.

    Work on ``z - max`` as long as possible: adding the max back and subtracting it again would
    lose the log-sum term in float32 once ``|z|`` is around 1e6 (or a row is all -finfo.max).
    """
    z_max = z.max(axes, keepdims=True)
    shifted = z - z_max.broadcast_to(z.shape)
    return shifted, shifted.exp().sum(axes, keepdims=True).log(), z_max


def _stable_logsumexp(z: NDArray, axes, keepdims):
    _, log_sum, z_max = _shifted_logsumexp(z, axes)
    out = log_sum + z_max
    return out if keepdims else out.reshape(tuple(s for i, s in enumerate(z.shape) if i not in axes))


def _softmax(z, axes):
    """softmax of Tensor ``z`` over ``axes``, from ops (differentiable), stable at any magnitude."""
    kept = _kept_shape(z.shape, axes)
    z_max = Tensor.make_const(z.realize_cached_data().max(axes, keepdims=True))  # a constant shift
    shifted = add(z, negate(broadcast_to(z_max, z.shape)))
    return exp(add(shifted, negate(broadcast_to(reshape(logsumexp(shifted, axes), kept), z.shape))))


class LogSumExp(TensorOp):
    """``log(sum(exp(z), axes))``."""

    def __init__(self, axes=None):
        self.axes = axes

    def compute(self, z: NDArray):
        return _stable_logsumexp(z, normalize_axes(self.axes, z.ndim), keepdims=False)

    def gradient(self, out_grad, node):
        z = node.inputs[0]
        axes = normalize_axes(self.axes, len(z.shape))
        kept = _kept_shape(z.shape, axes)
        return multiply(broadcast_to(reshape(out_grad, kept), z.shape), _softmax(z, axes))


def logsumexp(a, axes=None):
    """``log(sum(exp(a), axes))``, computed without overflow."""
    normalize_axes(axes, len(a.shape), "axes", a.shape, "logsumexp")
    return LogSumExp(axes)(a)


class LogSoftmax(TensorOp):
    """``z - logsumexp(z, axis, keepdims=True)``."""

    def __init__(self, axis=-1):
        self.axis = axis

    def compute(self, z: NDArray):
        shifted, log_sum, _ = _shifted_logsumexp(z, normalize_axes(self.axis, z.ndim))
        return shifted - log_sum.broadcast_to(z.shape)

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
        shifted = z - z_max.broadcast_to(z.shape)
        e = shifted.exp()
        sums = e.sum(1, keepdims=True)
        # Row loss log(sum(exp(z - max))) - (z - max)[label]: no large max added back and removed.
        picked = (shifted * y).sum(1, keepdims=True)
        self._saved = (e, sums)
        return (sums.log() - picked).sum() / n

    def gradient(self, out_grad, node):
        z, y = node.inputs
        n = z.shape[0]
        if is_grad_enabled():
            softmax = exp(logsoftmax(z, 1))
            return multiply(add(softmax, negate(y)), broadcast_to(divide_scalar(out_grad, n), z.shape)), None
        e, sums = self._saved
        # out_grad (shape ()) stays on the device: reading it back would be a sync per step on a GPU.
        scale = out_grad.realize_cached_data().reshape((1, 1)).broadcast_to(e.shape)
        grad = (e / sums.broadcast_to(e.shape) - y.realize_cached_data()) * scale
        return Tensor.make_const(grad / n), None


def softmax_cross_entropy(logits, one_hot):
    """Mean cross-entropy of ``logits`` (n, k) against the constant ``one_hot`` (n, k) targets."""
    if len(logits.shape) != 2 or tuple(one_hot.shape) != tuple(logits.shape):
        raise ValueError(f"softmax_cross_entropy: logits must be (n, k) and one_hot the same shape, "
                         f"got {logits.shape} and {one_hot.shape}")
    return SoftmaxCrossEntropy()(logits, one_hot)
