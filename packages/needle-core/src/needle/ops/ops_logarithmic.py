"""Numerically stable log-sum-exp and log-softmax (both subtract the max first)."""
import numpy as np

from .. import _device
from .._argnames import UNSET, axes_and_keepdims, one_of
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
    """``log(sum(exp(z), axes))`` (the reduced axes kept with length 1 when ``keepdims``)."""

    def __init__(self, axes=None, keepdims=False):
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, z: NDArray):
        return _stable_logsumexp(z, normalize_axes(self.axes, z.ndim), keepdims=self.keepdims)

    def gradient(self, out_grad, node):
        z = node.inputs[0]
        axes = normalize_axes(self.axes, len(z.shape))
        kept = _kept_shape(z.shape, axes)
        return multiply(broadcast_to(reshape(out_grad, kept), z.shape), _softmax(z, axes))


def logsumexp(a, axes=UNSET, keepdims=UNSET, *, axis=UNSET, dim=UNSET, keepdim=UNSET):
    """``log(sum(exp(a), axes))`` over ``axes`` (int, tuple or None for all; default all), computed
    without overflow; ``keepdims`` keeps the reduced axes with length 1. Also spelled
    ``axis=``/``dim=`` and ``keepdim=`` (two spellings of one argument are a TypeError)."""
    axes, keepdims = axes_and_keepdims("logsumexp", keepdims, keepdim, axes=axes, axis=axis, dim=dim)
    normalize_axes(axes, len(a.shape), "axes", a.shape, "logsumexp")
    return LogSumExp(axes, bool(keepdims))(a)


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


def logsoftmax(a, axis=UNSET, *, axes=UNSET, dim=UNSET, keepdims=UNSET, keepdim=UNSET):
    """Log of the softmax over ``axis`` (default: the last; an int, a tuple, or None for all), computed stably.

    Also spelled ``axes=`` or ``dim=`` (two spellings of one argument are a TypeError). ``keepdims``/
    ``keepdim`` are accepted like the reductions' and change nothing: the result has ``a``'s shape."""
    axis = one_of("logsoftmax", -1, axis=axis, axes=axes, dim=dim)
    one_of("logsoftmax", False, keepdims=keepdims, keepdim=keepdim)
    normalize_axes(axis, len(a.shape), "axis", a.shape, "logsoftmax")
    return LogSoftmax(axis)(a)


def softmax(a, axis=UNSET, *, axes=UNSET, dim=UNSET, keepdims=UNSET, keepdim=UNSET):
    """``exp(a) / sum(exp(a))`` over ``axis`` (default: the last; an int, a tuple, or None for all;
    also ``axes=`` or ``dim=``), as ``exp(logsoftmax(a, axis))``: stable for any magnitude, with a
    gradient (``nn.Softmax`` and ``nn.functional.softmax`` use it). ``keepdims``/``keepdim`` are
    accepted like the reductions' and change nothing: the result has ``a``'s shape."""
    axis = one_of("softmax", -1, axis=axis, axes=axes, dim=dim)
    one_of("softmax", False, keepdims=keepdims, keepdim=keepdim)
    normalize_axes(axis, len(a.shape), "axis", a.shape, "softmax")
    return exp(LogSoftmax(axis)(a))


def _composed_cross_entropy(z: NDArray, y: NDArray):
    """``(mean loss, (exp(z - max), row sums))`` of logits z (n, k) against the one-hot y (n, k)."""
    n = z.shape[0]
    z_max = z.max(1, keepdims=True)
    shifted = z - z_max.broadcast_to(z.shape)
    e = shifted.exp()
    sums = e.sum(1, keepdims=True)
    # Row loss log(sum(exp(z - max))) - (z - max)[label]: no large max added back and removed.
    picked = (shifted * y).sum(1, keepdims=True)
    return (sums.log() - picked).sum() / n, (e, sums)


def _cross_entropy_graph_gradient(z, y, out_grad):
    """``(softmax(z) - y) * out_grad / n`` composed from ops, so it can be differentiated again."""
    softmax = exp(logsoftmax(z, 1))
    return multiply(add(softmax, negate(y)), broadcast_to(divide_scalar(out_grad, z.shape[0]), z.shape))


def _cross_entropy_data_gradient(saved, y: NDArray, out_grad):
    """The gradient without a graph from the forward's ``(exp(z - max), row sums)``: two passes."""
    e, sums = saved
    # out_grad (shape ()) stays on the device: reading it back would be a sync per step on a GPU.
    scale = out_grad.realize_cached_data().reshape((1, 1)).broadcast_to(e.shape)
    return Tensor.make_const((e / sums.broadcast_to(e.shape) - y) * scale / e.shape[0])


class SoftmaxCrossEntropy(TensorOp):
    """Mean over rows of ``logsumexp(z) - sum(z * y)``: z logits (n, k), y a constant one-hot (n, k).

    One node instead of a dozen: the composed loss broadcast-copied the row maxima and sums
    several times over (n, k). The forward keeps ``exp(z - max)`` and its row sums, so that a
    gradient taken without a graph (``backward(create_graph=False)``) is two passes over
    (n, k); with a graph, the gradient is composed from ops and can be differentiated again.
    """

    def compute(self, z: NDArray, y: NDArray):
        loss, self._saved = _composed_cross_entropy(z, y)
        return loss

    def gradient(self, out_grad, node):
        z, y = node.inputs
        if is_grad_enabled():
            return _cross_entropy_graph_gradient(z, y, out_grad), None
        return _cross_entropy_data_gradient(self._saved, y.realize_cached_data(), out_grad), None


def softmax_cross_entropy(logits, one_hot):
    """Mean cross-entropy of ``logits`` (n, k) against the constant ``one_hot`` (n, k) targets."""
    if len(logits.shape) != 2 or tuple(one_hot.shape) != tuple(logits.shape):
        raise ValueError(f"softmax_cross_entropy: logits must be (n, k) and one_hot the same shape, "
                         f"got {logits.shape} and {one_hot.shape}")
    return SoftmaxCrossEntropy()(logits, one_hot)


#: Label dtypes used where they are (converted on the device to the logits' dtype for the kernels).
_INTEGER_LABELS = ("uint8", "int32", "int64")

#: Largest class count whose indices float32 labels hold exactly (the fused kernels take float labels).
_EXACT_LABELS = 1 << 24


def _fused_cross_entropy_kernels(device, dtype):
    """The backend's (softmax_xent_forward, softmax_xent_backward) for ``dtype``, or None unless it has both."""
    forward, backward = device.fused("softmax_xent_forward", dtype), device.fused("softmax_xent_backward", dtype)
    return None if forward is None or backward is None else (forward, backward)


class SoftmaxCrossEntropyLabels(TensorOp):
    """Mean over rows of ``logsumexp(z) - z[label]``: z logits (n, k), labels a constant (n,) of class indices.

    With the backend's fused ``softmax_xent_forward`` / ``softmax_xent_backward`` each way is one
    call on the labels where they are (the kernel checks them: nothing is read back to the host)
    and the forward keeps only the softmax. Otherwise the labels become a one-hot
    (``device.one_hot``) and the loss is SoftmaxCrossEntropy's. With a graph the gradient is
    composed from ops either way, so it can be differentiated again.
    """

    def compute(self, z: NDArray, labels: NDArray):
        n, k = z.shape
        kernels = _fused_cross_entropy_kernels(z.device, z.dtype)
        self._fused = kernels is not None and labels.device == z.device and k <= _EXACT_LABELS
        if self._fused:
            if labels.dtype != z.dtype:  # the kernels take labels as floats of the logits' dtype
                labels = labels.astype(z.dtype)
            probs = NDArray._fresh(z.shape, z.device, z.dtype)
            rows = NDArray._fresh((n,), z.device, z.dtype)
            kernels[0](z.compact()._handle, labels.compact()._handle, probs._handle, rows._handle, n, k)
            self._saved = probs
            return rows.sum() / n
        self._one_hot = z.device.one_hot(k, labels, dtype=z.dtype)
        loss, self._saved = _composed_cross_entropy(z, self._one_hot)
        return loss

    def gradient(self, out_grad, node):
        z, labels = node.inputs
        n, k = z.shape
        one_hot = None if self._fused else self._one_hot
        if is_grad_enabled():
            if one_hot is None:  # the labels were checked by the forward kernel
                one_hot = z.device.one_hot(k, labels.realize_cached_data(), dtype=z.dtype)
            return _cross_entropy_graph_gradient(z, Tensor.make_const(one_hot), out_grad), None
        if one_hot is not None:
            return _cross_entropy_data_gradient(self._saved, one_hot, out_grad), None
        probs = self._saved
        # The scale out_grad / n stays on the device, as one element: no sync per step on a GPU.
        scale = (out_grad.realize_cached_data() / n).compact()
        out = NDArray._fresh(probs.shape, probs.device, probs.dtype)
        label_data = labels.realize_cached_data()
        if label_data.dtype != probs.dtype:
            label_data = label_data.astype(probs.dtype)
        _fused_cross_entropy_kernels(probs.device, probs.dtype)[1](
            probs._handle, label_data.compact()._handle, scale._handle, out._handle, n, k)
        return Tensor.make_const(out), None


def softmax_cross_entropy_labels(logits, labels):
    """Mean cross-entropy of ``logits`` (n, k) against the integer class ``labels`` (n,).

    ``labels`` is a Tensor on the logits' device in their dtype or of any integer dtype (a training
    step's labels: no host copy, and with the fused kernels no read back), or a Tensor elsewhere, an array
    or a list of ints or of floats holding ints, checked on the host and copied over. A label that
    is not a class index in [0, k) is a ValueError.
    """
    if len(logits.shape) != 2:
        raise ValueError(f"softmax_cross_entropy_labels: logits must be (n, k), got shape {logits.shape}")
    n, k = logits.shape
    device, dtype = logits.device, logits.dtype
    if k > _EXACT_LABELS:  # float labels cannot name every class: a one-hot built from the host's labels
        one_hot = Tensor.make_const(device.one_hot(k, labels, dtype=dtype))
        if tuple(one_hot.shape) != (n, k):
            raise ValueError(f"softmax_cross_entropy_labels: labels of shape {tuple(one_hot.shape[:-1])} do not "
                             f"match logits of shape {logits.shape}")
        return softmax_cross_entropy(logits, one_hot)
    on_device = isinstance(labels, Tensor) and labels.device == device
    if not (on_device and (labels.dtype == dtype or labels.dtype in _INTEGER_LABELS)):
        given = labels.numpy() if isinstance(labels, Tensor) else labels
        checked = _device.class_indices(k, given, "softmax_cross_entropy_labels")
        labels = Tensor(checked.astype(np.float64), device=device, dtype=dtype, requires_grad=False)
    elif labels.requires_grad:
        labels = labels.detach()  # a class index has no gradient
    if tuple(labels.shape) != (n,):
        raise ValueError(f"softmax_cross_entropy_labels: labels of shape {tuple(labels.shape)} do not match "
                         f"logits of shape {logits.shape}")
    return SoftmaxCrossEntropyLabels()(logits, labels)
