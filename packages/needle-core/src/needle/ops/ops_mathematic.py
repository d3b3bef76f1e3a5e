"""Tensor ops: each class keeps its forward (``compute``) beside its backward (``gradient``).

Gradients are built from ops, so they are graph tensors and can be differentiated again.
Elementwise binary ops broadcast with numpy's rules; each input's gradient is summed back
to that input's shape. A stateless op is one class and one function whose body
:func:`_stateless` supplies (one shared instance serves every call); an op of a tensor and a
Python number subclasses :class:`ScalarOp`.
"""
import builtins
import functools
import math
from numbers import Number

import numpy as np

from .. import _dtypes
from .._argnames import UNSET, axes_and_keepdims, one_of
from ..autograd import NDArray, Tensor, TensorOp, _apply_unary, _eager_binary, _eager_scalar, _make_from_op
from ..backend_ndarray.ndarray import broadcast_shapes, normalize_axes, prod


# ---- argument checks --------------------------------------------------------------------------
def _ready_pair(a, b):
    """Whether Tensors ``a`` and ``b`` have one shape, when their data exist on one device object in one
    dtype; else None. The common case of every binary op, read off the data directly (for a small op
    the layers cost more than the kernel): the ops' one shortcut past ``Tensor.device``/``dtype``."""
    if isinstance(a, Tensor) and isinstance(b, Tensor):
        da, db = a.cached_data, b.cached_data
        if da is not None and db is not None and da._device is db._device and da._dtype == db._dtype:
            return da._shape == db._shape
    return None


def _check_pair(name, a, b):
    """Check two operands; a dtype mix is promoted (PyTorch's rule, ``needle._dtypes``) by Cast nodes,
    so that each input's gradient comes back in its own dtype."""
    if _ready_pair(a, b) is not None:
        return a, b
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        bad = a if not isinstance(a, Tensor) else b
        raise TypeError(f"{name}: expected Tensors, got {type(bad).__name__}")
    if a.device != b.device:
        raise ValueError(f"{name}: tensors are on different devices: a on {a.device}, b on {b.device}; "
                         f"move one with .to(device)")
    if a.dtype != b.dtype:
        wide = _dtypes.promote(a.dtype, b.dtype)
        if wide not in a.device.dtypes:
            raise TypeError(f"{name}: tensors have different dtypes: a is {a.dtype}, b is {b.dtype}, and "
                            f"device {a.device!r} lacks their common dtype {wide}")
        a, b = (a if a.dtype == wide else cast(a, wide)), (b if b.dtype == wide else cast(b, wide))
    return a, b


def _check_broadcast(name, a, b):
    a, b = _check_pair(name, a, b)
    if a.shape != b.shape:
        try:
            broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"{name}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None
    return a, b


def _check_scalar(name, scalar):
    """``scalar`` as a Python number: a numpy scalar or a one-element numpy array (the course passes
    ``np.random.randn(1)``) is converted, so it does not drive dtypes."""
    if isinstance(scalar, np.ndarray):
        if scalar.size != 1 or scalar.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected a number or a one-element array of numbers, got an array "
                            f"of shape {scalar.shape} and dtype {scalar.dtype}")
        return scalar.reshape(-1)[0].item()
    if not isinstance(scalar, Number) or isinstance(scalar, complex):
        raise TypeError(f"{name}: expected a real number, got {type(scalar).__name__}")
    return scalar.item() if isinstance(scalar, np.generic) else scalar


def _needed(node, *grads):
    """``grads`` with None for each input of ``node`` that needs no gradient.

    Each entry is a zero-argument function, called only for an input that needs its gradient,
    so that no work is done for a constant operand (data fed to a first layer, a mask).
    The autograd skips None.
    """
    if len(grads) == 2:  # unrolled: a generator costs more than the rest for a small op
        a, b = node.inputs
        return grads[0]() if a.requires_grad else None, grads[1]() if b.requires_grad else None
    if len(grads) == 3:  # x @ w + b (every Linear layer)
        a, b, c = node.inputs
        return (grads[0]() if a.requires_grad else None, grads[1]() if b.requires_grad else None,
                grads[2]() if c.requires_grad else None)
    return tuple(fn() if inp.requires_grad else None for inp, fn in zip(node.inputs, grads))


def _unbroadcast_like(grad, x):
    """``unbroadcast(grad, x.shape)``, with the common case (one shape, both data present) read off the data."""
    dg, dx = grad.cached_data, x.cached_data
    if dg is not None and dx is not None and dg._shape == dx._shape:
        return grad
    return unbroadcast(grad, x.shape)


def unbroadcast(grad, shape):
    """Sum ``grad`` over the axes broadcasting added, so that it has ``shape``."""
    if grad.shape == tuple(shape):
        return grad
    lead = len(grad.shape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, s in enumerate(shape) if s == 1 and grad.shape[lead + i] != 1)
    if axes:
        grad = summation(grad, axes)
    return reshape(grad, shape)


# ---- how an op becomes a function ----------------------------------------------------------------
def _stateless(op_class, elementwise=False):
    """Decorator: the decorated function (its name, signature and docstring; the body is empty, as in
    a pluggy hookspec) calls one shared ``op_class()``, through the dtype and broadcasting checks when
    ``elementwise``. The class gets the function's docstring."""
    op = op_class()

    def wrap(fn):
        op_class.__doc__ = op_class.__doc__ or fn.__doc__
        name = fn.__name__
        if elementwise:
            def checked(a, b):  # the general case: promotion and broadcasting checks first
                a, b = _check_broadcast(name, a, b)
                return _make_from_op(Tensor, op, (a, b))
            # straight to the graph in the common case: one device, dtype and shape
            call = _eager_binary(op, checked)
            call.eager_operator = lambda scalar: _eager_binary(op, call, scalar)  # Tensor operators (bind_operators)
        elif type(op).__call__ is TensorOp.__call__:
            def call(a):
                return _apply_unary(op, a)
        else:
            def call(a):
                return op(a)
        return functools.wraps(fn)(call)
    return wrap


class ScalarOp(TensorOp):
    """An op of one tensor and a Python number, ``scalar``."""

    def __init__(self, scalar):
        self.scalar = scalar


def _with_scalar(op_class):
    """Decorator: the decorated function ``f(a, scalar)`` (body empty) checks ``scalar`` (a real number,
    see ``_check_scalar``) and applies ``op_class(scalar)``; the class gets the function's docstring."""
    def wrap(fn):
        name = fn.__name__
        op_class.__doc__ = op_class.__doc__ or fn.__doc__

        if op_class.__init__ is not ScalarOp.__init__ or op_class.__call__ is not TensorOp.__call__:
            @functools.wraps(fn)
            def call(a, scalar):
                return op_class(_check_scalar(name, scalar))(a)
            return call

        # the op built and applied without its __init__ and __call__ layers
        return functools.wraps(fn)(_eager_scalar(op_class, functools.partial(_check_scalar, name)))
    return wrap


# ---- elementwise arithmetic --------------------------------------------------------------------
class EWiseAdd(TensorOp):
    def compute(self, a: NDArray, b: NDArray):
        return a + b

    def gradient(self, out_grad, node):
        a, b = node.inputs
        # out_grad itself where the shapes agree (no node, no copy); summed back where broadcasting added axes
        return (_unbroadcast_like(out_grad, a) if a.requires_grad else None,
                _unbroadcast_like(out_grad, b) if b.requires_grad else None)


@_stateless(EWiseAdd, elementwise=True)
def add(a, b):
    """Elementwise ``a + b`` (broadcasting); each gradient is summed back to its input's shape."""


class AddScalar(ScalarOp):
    def compute(self, a: NDArray):
        return a + self.scalar

    def gradient(self, out_grad, node):
        return out_grad


@_with_scalar(AddScalar)
def add_scalar(a, scalar):
    """``a + scalar``."""


class EWiseMul(TensorOp):
    def compute(self, a: NDArray, b: NDArray):
        return a * b

    def gradient(self, out_grad, node):
        a, b = node.inputs
        return (_unbroadcast_like(out_grad * b, a) if a.requires_grad else None,
                _unbroadcast_like(out_grad * a, b) if b.requires_grad else None)


@_stateless(EWiseMul, elementwise=True)
def multiply(a, b):
    """Elementwise ``a * b`` (broadcasting)."""


class MulScalar(ScalarOp):
    def compute(self, a: NDArray):
        return a * self.scalar

    def gradient(self, out_grad, node):
        return out_grad * self.scalar


@_with_scalar(MulScalar)
def mul_scalar(a, scalar):
    """``a * scalar``."""


class EWisePow(TensorOp):
    def compute(self, a: NDArray, b: NDArray):
        return a ** b

    def gradient(self, out_grad, node):
        a, b = node.inputs
        # Only what is needed: log(a) of a constant exponent's base may be nan (a < 0) and is unused.
        return _needed(node, lambda: unbroadcast(out_grad * b * power(a, add_scalar(b, -1.0)), a.shape),
                       lambda: unbroadcast(out_grad * node * log(a), b.shape))


@_stateless(EWisePow, elementwise=True)
def power(a, b):
    """Elementwise ``a ** b`` (broadcasting)."""


class PowerScalar(ScalarOp):
    def compute(self, a: NDArray) -> NDArray:
        return a ** self.scalar

    def gradient(self, out_grad, node):
        a = node.inputs[0]
        if self.scalar == 0:
            return out_grad * 0.0
        return out_grad * (power_scalar(a, self.scalar - 1) * self.scalar)


@_with_scalar(PowerScalar)
def power_scalar(a, scalar):
    """``a ** scalar``."""


class RPowerScalar(ScalarOp):
    """``scalar ** a`` (scalar > 0)."""

    def compute(self, a: NDArray):
        return (a * math.log(self.scalar)).exp()

    def gradient(self, out_grad, node):
        return out_grad * node * math.log(self.scalar)


def rpower_scalar(a, scalar):
    """``scalar ** a`` (scalar > 0)."""
    scalar = _check_scalar("rpower_scalar", scalar)
    if scalar <= 0:
        raise ValueError(f"rpower_scalar: base must be positive, got {scalar}")
    return RPowerScalar(scalar)(a)


class EWiseDiv(TensorOp):
    def compute(self, a: NDArray, b: NDArray):
        return a / b

    def gradient(self, out_grad, node):
        a, b = node.inputs
        return _needed(node, lambda: _unbroadcast_like(out_grad / b, a),
                       lambda: _unbroadcast_like(negate(out_grad * a / (b * b)), b))


@_stateless(EWiseDiv, elementwise=True)
def divide(a, b):
    """Elementwise ``a / b`` (broadcasting)."""


class DivScalar(ScalarOp):
    def compute(self, a: NDArray):
        return a / self.scalar

    def gradient(self, out_grad, node):
        return out_grad / self.scalar


@_with_scalar(DivScalar)
def divide_scalar(a, scalar):
    """``a / scalar``."""


class RDivScalar(ScalarOp):
    def compute(self, a: NDArray):
        # Not ``self.scalar / a``: a numpy scalar on the left would turn ``a`` into a numpy array.
        return a.__rtruediv__(self.scalar)

    def gradient(self, out_grad, node):
        return negate(out_grad * node / node.inputs[0])


@_with_scalar(RDivScalar)
def rdivide_scalar(a, scalar):
    """``scalar / a``."""


class Negate(TensorOp):
    def compute(self, a: NDArray):
        return -a

    def gradient(self, out_grad, node):
        return negate(out_grad)


@_stateless(Negate)
def negate(a):
    """``-a``."""


# ---- unary functions ---------------------------------------------------------------------------
class Log(TensorOp):
    def compute(self, a: NDArray):
        return a.log()

    def gradient(self, out_grad, node):
        return out_grad / node.inputs[0]


@_stateless(Log)
def log(a):
    """Natural logarithm."""


class Exp(TensorOp):
    def compute(self, a: NDArray):
        return a.exp()

    def gradient(self, out_grad, node):
        return out_grad * node


@_stateless(Exp)
def exp(a):
    """Exponential."""


class ReLU(TensorOp):
    def compute(self, a: NDArray):
        return a.relu()

    def gradient(self, out_grad, node):
        return ReLUBackward()(out_grad, node)


class ReLUBackward(TensorOp):
    """``out_grad`` where the ReLU output ``y`` is positive, else 0 (one kernel where the backend has one)."""

    def compute(self, out_grad: NDArray, y: NDArray):
        return y.relu_backward(out_grad)

    def gradient(self, out_grad, node):
        # Linear in out_grad with the same mask; the mask's derivative is zero almost everywhere.
        return ReLUBackward()(out_grad, node.inputs[1]), None


@_stateless(ReLU)
def relu(a):
    """``max(a, 0)``; the gradient passes where the output is positive."""


class Tanh(TensorOp):
    def compute(self, a: NDArray):
        return a.tanh()

    def gradient(self, out_grad, node):
        return out_grad * add_scalar(negate(node * node), 1.0)


@_stateless(Tanh)
def tanh(a):
    """Hyperbolic tangent."""


class Sigmoid(TensorOp):
    def compute(self, a: NDArray):
        return a.sigmoid()

    def gradient(self, out_grad, node):
        return out_grad * node * add_scalar(negate(node), 1.0)


@_stateless(Sigmoid)
def sigmoid(a):
    """Logistic sigmoid ``1 / (1 + exp(-a))``, finite for every finite input."""


class Sqrt(TensorOp):
    def compute(self, a: NDArray):
        return a.sqrt()

    def gradient(self, out_grad, node):
        return out_grad / (node * 2.0)


@_stateless(Sqrt)
def sqrt(a):
    """Square root."""


# ---- shape ops -----------------------------------------------------------------------------------
class Transpose(TensorOp):
    """Swap two axes (default: the last two)."""

    def __init__(self, axes=None):
        self.axes = axes

    def _perm(self, ndim):
        if self.axes is None:
            i, j = ndim - 2, ndim - 1
        else:
            if len(self.axes) != 2:
                raise ValueError(f"transpose: axes must name exactly two axes, got {self.axes}; use permute")
            if not all(-ndim <= ax < ndim for ax in self.axes):
                raise ValueError(f"transpose: axes={tuple(self.axes)} is out of range for {ndim} dimensions")
            i, j = (ax % ndim for ax in self.axes)
        perm = list(range(ndim))
        perm[i], perm[j] = perm[j], perm[i]
        return tuple(perm)

    def compute(self, a: NDArray):
        if a.ndim < 2 and self.axes is None:
            return a
        return a.permute(self._perm(a.ndim))

    def gradient(self, out_grad, node):
        return transpose(out_grad, self.axes)


def transpose(a, axes=None):
    """Swap two axes of ``a``: the last two by default, or ``axes=(i, j)``.

    >>> import needle as ndl
    >>> x = ndl.Tensor([[[1.0, 2.0, 3.0]]])
    >>> ndl.transpose(x).shape, ndl.transpose(x, (0, 2)).shape
    ((1, 3, 1), (3, 1, 1))
    """
    if axes is not None:
        if len(axes) == 2 and not all(-a.ndim <= ax < a.ndim for ax in axes):
            raise ValueError(f"transpose: axes={tuple(axes)} is out of range for shape {a.shape}")
        Transpose(axes)._perm(len(a.shape))  # validate at the API edge
    return Transpose(axes)(a)


class Permute(TensorOp):
    """Reorder all axes."""

    def __init__(self, axes):
        self.axes = tuple(axes)

    def compute(self, a: NDArray):
        return a.permute(self.axes)

    def gradient(self, out_grad, node):
        ndim = len(self.axes)
        inverse = [0] * ndim
        for i, ax in enumerate(self.axes):
            inverse[ax % ndim] = i
        return permute(out_grad, inverse)


def permute(a, axes):
    """Reorder the axes of ``a`` to ``axes``.

    >>> import needle as ndl
    >>> ndl.permute(ndl.Tensor([[[1.0, 2.0, 3.0]]]), (2, 0, 1)).shape
    (3, 1, 1)
    """
    axes = tuple(axes)
    if sorted(ax % builtins.max(a.ndim, 1) for ax in axes) != list(range(a.ndim)):
        raise ValueError(f"permute: axes {axes} are not a permutation of the {a.ndim} axes of shape {a.shape}")
    return Permute(axes)(a)


class Reshape(TensorOp):
    """``a`` with a new shape of the same size."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def compute(self, a: NDArray):
        return a.reshape(self.shape)

    def gradient(self, out_grad, node):
        return reshape(out_grad, node.inputs[0].shape)


def reshape(a, shape):
    """``a`` with a new shape of the same size (one -1 is inferred).

    >>> import needle as ndl
    >>> x = ndl.Tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    >>> ndl.reshape(x, (2, 3)).numpy().tolist()
    [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    >>> ndl.reshape(x, (-1, 2)).shape
    (3, 2)
    """
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(int(s) for s in shape)
    size = prod(a.shape)
    if -1 in shape:
        known = prod(s for s in shape if s != -1)
        if shape.count(-1) == 1 and known and size % known == 0:
            shape = tuple(size // known if s == -1 else s for s in shape)
    if prod(shape) != size or any(s < 0 for s in shape):
        raise ValueError(f"reshape: cannot reshape tensor of shape {a.shape} (size {size}) into shape {shape}")
    return Reshape(shape)(a)


def _axis_arg(who, axis, ndim):
    """``axis`` (an int in [-ndim, ndim)) as a non-negative int; a clear error otherwise."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{who}: axis must be an int, got {axis!r}")
    if not -builtins.max(ndim, 1) <= axis < builtins.max(ndim, 1):
        raise ValueError(f"{who}: axis {axis} is out of range for {ndim} dimensions")
    return int(axis) % builtins.max(ndim, 1)


def unsqueeze(a, axis=UNSET, *, dim=UNSET):
    """``a`` with a new axis of length 1 at position ``axis`` (in [-ndim-1, ndim]; also ``dim=``),
    as ``torch.unsqueeze`` / ``numpy.expand_dims``: a reshape (the gradient reshapes back).

    >>> import needle as ndl
    >>> ndl.unsqueeze(ndl.Tensor([1.0, 2.0]), 0).shape
    (1, 2)
    """
    axis = one_of("unsqueeze", UNSET, axis=axis, dim=dim)
    if axis is UNSET:
        raise TypeError("unsqueeze: missing the axis argument (axis= or dim=)")
    axis = _axis_arg("unsqueeze", axis, a.ndim + 1)
    return reshape(a, a.shape[:axis] + (1,) + a.shape[axis:])


def squeeze(a, axis=UNSET, *, dim=UNSET):
    """``a`` without axes of length 1: all of them (``axis=None``), or the axis (or tuple of axes)
    given, where an axis whose length is not 1 stays (``torch.squeeze``). Also ``dim=``; a reshape.

    >>> import needle as ndl
    >>> x = ndl.Tensor([[[1.0], [2.0]]])
    >>> ndl.squeeze(x).shape, ndl.squeeze(x, 2).shape
    ((2,), (1, 2))
    """
    axis = one_of("squeeze", None, axis=axis, dim=dim)
    if axis is None:
        drop = {i for i, s in enumerate(a.shape) if s == 1}
    else:
        picked = axis if isinstance(axis, (tuple, list)) else (axis,)
        drop = {i for i in (_axis_arg("squeeze", ax, a.ndim) for ax in picked) if a.ndim and a.shape[i] == 1}
    return reshape(a, tuple(s for i, s in enumerate(a.shape) if i not in drop))


def flatten(a, start=UNSET, end=UNSET, *, start_dim=UNSET, end_dim=UNSET):
    """``a`` with axes ``start`` to ``end`` (inclusive; default all) merged into one, as
    ``torch.flatten`` (also ``start_dim=``/``end_dim=``); a 0-d tensor becomes 1-D. A reshape.

    >>> import needle as ndl
    >>> x = ndl.Tensor([[[1.0, 2.0], [3.0, 4.0]]])
    >>> ndl.flatten(x).shape, ndl.flatten(x, 1).shape
    ((4,), (1, 4))
    """
    start = one_of("flatten", 0, start=start, start_dim=start_dim)
    end = one_of("flatten", -1, end=end, end_dim=end_dim)
    if a.ndim == 0:
        _axis_arg("flatten", start, 1), _axis_arg("flatten", end, 1)
        return reshape(a, (1,))
    lo, hi = _axis_arg("flatten", start, a.ndim), _axis_arg("flatten", end, a.ndim)
    if lo > hi:
        raise ValueError(f"flatten: start ({start}) comes after end ({end}) for {a.ndim} dimensions")
    return reshape(a, a.shape[:lo] + (prod(a.shape[lo:hi + 1]),) + a.shape[hi + 1:])


class BroadcastTo(TensorOp):
    """``a`` broadcast to ``shape`` (numpy rules); the gradient sums over the broadcast axes."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def compute(self, a: NDArray):
        return a.broadcast_to(self.shape)

    def gradient(self, out_grad, node):
        return unbroadcast(out_grad, node.inputs[0].shape)


def broadcast_to(a, shape):
    """``a`` broadcast to ``shape`` (numpy rules; leading axes may be added).

    >>> import needle as ndl
    >>> ndl.broadcast_to(ndl.Tensor([[1.0], [2.0]]), (2, 3)).numpy().tolist()
    [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]
    >>> ndl.broadcast_to(ndl.Tensor([1.0, 2.0]), (3, 2)).shape
    (3, 2)
    """
    shape = tuple(int(s) for s in shape)
    try:
        if broadcast_shapes(a.shape, shape) != shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast tensor of shape {a.shape} to shape {shape}") from None
    return BroadcastTo(shape)(a)


# ---- reductions ----------------------------------------------------------------------------------
def _kept_shape(shape, axes):
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Summation(TensorOp):
    """Sum over ``axes`` (int, tuple or None for all), removing them (kept as length 1 with ``keepdims``)."""

    def __init__(self, axes=None, keepdims=False):
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a: NDArray):
        return a.sum(self.axes, keepdims=self.keepdims)

    def gradient(self, out_grad, node):
        shape = node.inputs[0].shape
        axes = normalize_axes(self.axes, len(shape))
        return broadcast_to(reshape(out_grad, _kept_shape(shape, axes)), shape)


def summation(a, axes=UNSET, keepdims=UNSET, *, axis=UNSET, dim=UNSET, keepdim=UNSET):
    """Sum over ``axes`` (int, tuple or None for all; default all); the summed axes are removed,
    or kept with length 1 when ``keepdims`` is true.

    PyTorch's and numpy's spellings work too: ``axis=`` or ``dim=`` for ``axes``, ``keepdim=`` for
    ``keepdims`` (two spellings of one argument are a TypeError). Bool and integer tensors sum to int64.

    >>> import needle as ndl
    >>> x = ndl.Tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> ndl.summation(x).numpy().item()
    10.0
    >>> ndl.summation(x, axes=0).numpy().tolist()
    [4.0, 6.0]
    >>> ndl.summation(x, axes=1, keepdims=True).shape
    (2, 1)
    """
    if axis is not UNSET or dim is not UNSET or keepdim is not UNSET:
        axes, keepdims = axes_and_keepdims("summation", keepdims, keepdim, axes=axes, axis=axis, dim=dim)
    else:  # the course's call, on every gradient of a broadcast: no resolving
        axes = None if axes is UNSET else axes
        keepdims = False if keepdims is UNSET else keepdims
    normalize_axes(axes, len(a.shape), "axes", a.shape, "summation")
    return Summation(axes, bool(keepdims))(a)


def mean(a, axes=UNSET, keepdims=UNSET, *, axis=UNSET, dim=UNSET, keepdim=UNSET):
    """Mean over ``axes`` (int, tuple or None for all; default all); ``keepdims`` keeps them with
    length 1. Also spelled ``axis=``/``dim=`` and ``keepdim=``. The mean of integers is float32.

    >>> import needle as ndl
    >>> ndl.mean(ndl.Tensor([[1.0, 2.0], [3.0, 4.0]]), axes=1).numpy().tolist()
    [1.5, 3.5]
    """
    axes, keepdims = axes_and_keepdims("mean", keepdims, keepdim, axes=axes, axis=axis, dim=dim)
    count = prod(a.shape[i] for i in normalize_axes(axes, len(a.shape), "axes", a.shape, "mean"))
    return divide_scalar(summation(a, axes, keepdims), float(count))


class Max(TensorOp):
    """Maximum over axes; the gradient is shared evenly between tied maxima."""

    def __init__(self, axes=None, keepdims=False):
        self.axes = axes
        self.keepdims = keepdims

    def compute(self, a: NDArray):
        return a.max(self.axes, keepdims=self.keepdims)

    def gradient(self, out_grad, node):
        # Where the input equals the result (the max here, the min in Min) gets an even share.
        a = node.inputs[0].realize_cached_data()
        axes = normalize_axes(self.axes, a.ndim)
        kept = _kept_shape(a.shape, axes)
        is_max = a == node.realize_cached_data().reshape(kept).broadcast_to(a.shape)
        if is_max.dtype != a.dtype:  # a bool mask (protocol 2): shares in the input's float dtype
            is_max = is_max.astype(a.dtype)
        share = is_max / is_max.sum(axes, keepdims=True).broadcast_to(a.shape)
        return broadcast_to(reshape(out_grad, kept), a.shape) * Tensor.make_const(share)


class Min(Max):
    """Minimum over axes; the gradient is shared evenly between tied minima (Max's rule)."""

    def compute(self, a: NDArray):
        return a.min(self.axes, keepdims=self.keepdims)


def _extreme(op_class, who, a, axes, keepdims, axis, dim, keepdim):
    axes, keepdims = axes_and_keepdims(who, keepdims, keepdim, axes=axes, axis=axis, dim=dim)
    axes_n = normalize_axes(axes, len(a.shape), "axes", a.shape, who)
    if any(a.shape[i] == 0 for i in axes_n):
        raise ValueError(f"{who}: zero-size reduction over axes {axes} of shape {a.shape}")
    return op_class(axes, bool(keepdims))(a)


def max(a, axes=UNSET, keepdims=UNSET, *, axis=UNSET, dim=UNSET, keepdim=UNSET):  # noqa: A001 - the course's name
    """Maximum over ``axes`` (int, tuple or None for all; default all), ``keepdims`` keeping them with
    length 1; also spelled ``axis=``/``dim=`` and ``keepdim=``. Tied maxima share the gradient evenly.

    Unlike ``torch.max(x, dim)``, this returns the values only (use :func:`argmax` for the indices).

    >>> import needle as ndl
    >>> ndl.max(ndl.Tensor([[1.0, 5.0], [3.0, 4.0]]), axes=0).numpy().tolist()
    [3.0, 5.0]
    """
    return _extreme(Max, "max", a, axes, keepdims, axis, dim, keepdim)


def min(a, axes=UNSET, keepdims=UNSET, *, axis=UNSET, dim=UNSET, keepdim=UNSET):  # noqa: A001 - as max
    """Minimum over ``axes`` (int, tuple or None for all; default all), ``keepdims`` keeping them with
    length 1; also spelled ``axis=``/``dim=`` and ``keepdim=``. Tied minima share the gradient evenly.

    Unlike ``torch.min(x, dim)``, this returns the values only (use :func:`argmin` for the indices).
    """
    return _extreme(Min, "min", a, axes, keepdims, axis, dim, keepdim)


# ---- matmul ------------------------------------------------------------------------------------
# The 2-D products take a transposed operand (``matmul_tn``: a^T b, ``matmul_nt``: a b^T), as BLAS
# does: the gradients of each are products of the same three kinds, so no transposed copy is made
# where the backend has the kernel (NDArray composes one where it has not).
class MatMulBias(TensorOp):
    """``x @ w + b``: x (m, n), w (n, p), b of p elements (e.g. (1, p)); one node, one kernel where the
    backend has ``matmul_bias``. The bias gradient is the column sum of the output gradient."""

    def compute(self, x: NDArray, w: NDArray, b: NDArray):
        return x.matmul_bias(w, b)

    def gradient(self, out_grad, node):
        x, w, b = node.inputs
        return _needed(node, lambda: matmul_nt(out_grad, w), lambda: matmul_tn(x, out_grad),
                       lambda: _column_sum(out_grad, b.shape))


def _column_sum(grad, shape):
    """``grad`` (m, p) summed over its rows into ``shape`` (p elements): a bias gradient, one op for the
    common (1, p) and (p,) biases (keepdims instead of a reshape node)."""
    if len(shape) == 2 and shape[0] == 1:
        return summation(grad, (0,), keepdims=True)
    if len(shape) == 1:
        return summation(grad, (0,))
    return reshape(summation(grad, (0,)), shape)


def matmul_bias(x, w, b):
    """``x @ w + b`` for a 2-D ``x`` (m, n), ``w`` (n, p) and a bias ``b`` of p elements."""
    x, w = _check_pair("matmul_bias", x, w)
    x, b = _check_pair("matmul_bias", x, b)
    xs, ws = x.shape, w.shape
    if len(xs) != 2 or len(ws) != 2 or xs[1] != ws[0] or prod(b.shape) != ws[1]:
        raise ValueError(f"matmul_bias: x {xs} @ w {ws} + b {b.shape} need x (m, n), w (n, p) "
                         f"and b of p elements")
    return MatMulBias()(x, w, b)


class MatMulTN(TensorOp):
    def compute(self, a: NDArray, b: NDArray):
        return a.matmul_tn(b)

    def gradient(self, out_grad, node):
        # out = a^T b: d/da = b out_grad^T (n, m), d/db = a out_grad (n, p)
        a, b = node.inputs
        return _needed(node, lambda: matmul_nt(b, out_grad), lambda: matmul(a, out_grad))


def matmul_tn(a, b):
    """``transpose(a) @ b`` for a 2-D ``a`` (n, m) and ``b`` (n, p): the weight gradient of ``x @ w`` in
    one kernel where the backend has ``matmul_tn`` (no transposed copy of ``a``).

    >>> import needle as ndl
    >>> a = ndl.Tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    >>> ndl.matmul_tn(a, ndl.Tensor([[1.0], [1.0], [1.0]])).numpy().tolist()
    [[9.0], [12.0]]
    """
    a, b = _check_pair("matmul_tn", a, b)
    sa, sb = a.shape, b.shape
    if len(sa) != 2 or len(sb) != 2 or sa[0] != sb[0]:
        raise ValueError(f"matmul_tn: shapes {sa} and {sb} need a (n, m) and b (n, p)")
    return _MATMUL_TN(a, b)


_MATMUL_TN = MatMulTN()


class MatMulNT(TensorOp):
    def compute(self, a: NDArray, b: NDArray):
        return a.matmul_nt(b)

    def gradient(self, out_grad, node):
        # out = a b^T: d/da = out_grad b (m, n), d/db = out_grad^T a (p, n)
        a, b = node.inputs
        return _needed(node, lambda: matmul(out_grad, b), lambda: matmul_tn(out_grad, a))


def matmul_nt(a, b):
    """``a @ transpose(b)`` for a 2-D ``a`` (m, n) and ``b`` (p, n): the input gradient ``g @ w^T`` of
    ``x @ w`` in one kernel where the backend has ``matmul_nt`` (no transposed copy of ``b``).

    >>> import needle as ndl
    >>> a = ndl.Tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> ndl.matmul_nt(a, ndl.Tensor([[1.0, 1.0], [1.0, 0.0]])).numpy().tolist()
    [[3.0, 1.0], [7.0, 3.0]]
    """
    a, b = _check_pair("matmul_nt", a, b)
    sa, sb = a.shape, b.shape
    if len(sa) != 2 or len(sb) != 2 or sa[1] != sb[1]:
        raise ValueError(f"matmul_nt: shapes {sa} and {sb} need a (m, n) and b (p, n)")
    return _MATMUL_NT(a, b)


_MATMUL_NT = MatMulNT()


class MatMul(TensorOp):
    """Matrix product, batched and broadcast over leading axes."""

    def compute(self, a: NDArray, b: NDArray):
        return a @ b

    def gradient(self, out_grad, node):
        a, b = node.inputs
        if a.ndim == 2 and b.ndim == 2:
            return _needed(node, lambda: matmul_nt(out_grad, b), lambda: matmul_tn(a, out_grad))
        return _needed(node, lambda: unbroadcast(matmul(out_grad, transpose(b)), a.shape),
                       lambda: unbroadcast(matmul(transpose(a), out_grad), b.shape))


def matmul(a, b):
    """``a @ b`` with numpy's rules: 2-D or more operands multiply as (batches of) matrices, leading
    axes broadcast; a 1-D ``a`` is a row vector and a 1-D ``b`` a column vector, whose added axis is
    removed from the result (vector @ vector -> 0-d, matrix @ vector -> vector, vector @ matrix ->
    vector). Gradients flow to both operands in every case.

    >>> import needle as ndl
    >>> a = ndl.Tensor([[1.0, 2.0], [3.0, 4.0]])
    >>> ndl.matmul(a, ndl.Tensor([[1.0], [1.0]])).numpy().tolist()
    [[3.0], [7.0]]
    >>> ndl.matmul(a, ndl.Tensor([1.0, 1.0])).shape
    (2,)
    """
    a, b = _check_pair("matmul", a, b)
    if a.ndim >= 2 and b.ndim >= 2:  # the common case
        _check_matmul_shapes(a.shape, b.shape)
        return _MATMUL(a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    _check_matmul_shapes(a.shape if a.ndim >= 2 else (1,) + a.shape, b.shape if b.ndim >= 2 else b.shape + (1,),
                         (a.shape, b.shape))
    # numpy's rule: the 1-D operands get a length-1 axis, which the result then loses.
    out = _MATMUL(reshape(a, (1,) + a.shape) if a.ndim == 1 else a, reshape(b, b.shape + (1,)) if b.ndim == 1 else b)
    shape = out.shape
    if b.ndim == 1:
        shape = shape[:-1]
    if a.ndim == 1:
        shape = shape[:-1] if b.ndim == 1 else shape[:-2] + shape[-1:]
    return reshape(out, shape)


def _check_matmul_shapes(a_shape, b_shape, given=None):
    """Check matrix shapes (a 1-D operand already given its length-1 axis; ``given``: the shapes
    the caller passed, for the message)."""
    shown_a, shown_b = given or (a_shape, b_shape)
    if a_shape[-1] != b_shape[-2]:
        raise ValueError(f"matmul: shapes {shown_a} and {shown_b} are not aligned "
                         f"({a_shape[-1]} != {b_shape[-2]})")
    try:
        broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of {shown_a} and {shown_b} cannot be broadcast") from None


def dot(a, b):
    """The inner product of two 1-D tensors of the same length (a 0-d tensor), as ``torch.dot``."""
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        bad = a if not isinstance(a, Tensor) else b
        raise TypeError(f"dot: expected Tensors, got {type(bad).__name__}")
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"dot: needs two 1-D tensors of the same length, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)


_MATMUL = MatMul()  # stateless: one instance serves every call


# ---- indexing, flipping, dilation, padding ------------------------------------------------------
class GetItem(TensorOp):
    """numpy basic indexing; the gradient scatters into zeros."""

    def __init__(self, index):
        self.index = index

    def compute(self, a: NDArray):
        return a.basic_index(self.index)

    def gradient(self, out_grad, node):
        return ScatterItem(self.index, node.inputs[0].shape)(out_grad)


class ScatterItem(TensorOp):
    """Zeros of ``shape`` with ``a`` written at ``index`` (the adjoint of GetItem)."""

    def __init__(self, index, shape):
        self.index = index
        self.shape = shape

    def compute(self, a: NDArray):
        out = a.device.full(self.shape, 0.0, dtype=a.dtype)
        out._assign(out.basic_index(self.index), a)
        return out

    def gradient(self, out_grad, node):
        return get_item(out_grad, self.index)


class Gather(TensorOp):
    """Rows of ``a`` (axis 0) at the int64 ``indices`` (an NDArray on a's device, values in range);
    the gradient scatter-adds back (repeated rows accumulate)."""

    def __init__(self, indices):
        self.indices = indices

    def compute(self, a: NDArray):
        return a.take_rows(self.indices)

    def gradient(self, out_grad, node):
        return ScatterAddRows(self.indices, node.inputs[0].shape)(out_grad)


class ScatterAddRows(TensorOp):
    """Zeros of ``shape`` with the rows of ``a`` added at ``indices`` (the adjoint of Gather)."""

    def __init__(self, indices, shape):
        self.indices = indices
        self.shape = tuple(shape)

    def compute(self, a: NDArray):
        out = a.device.full(self.shape, 0, dtype=a.dtype)
        return out.scatter_add_rows(self.indices, a)

    def gradient(self, out_grad, node):
        return Gather(self.indices)(out_grad)


def _index_array(index):
    """``index`` as a numpy array when it is an integer or bool Tensor, NDArray, numpy array or list
    (advanced indexing), else None (basic indexing)."""
    if isinstance(index, Tensor):
        index = index.realize_cached_data()
    if isinstance(index, NDArray):
        return index.numpy()
    if isinstance(index, np.ndarray) or (isinstance(index, list) and not any(
            isinstance(i, (slice, type(None), type(Ellipsis), list, tuple)) for i in index)):
        array = np.asarray(index)
        if array.dtype.kind not in "biu" and not (array.size == 0 and isinstance(index, list)):
            raise IndexError(f"arrays used as indices must be of integer or bool type, got {array.dtype}")
        return array.astype(np.int64) if array.size == 0 and array.dtype.kind == "f" else array
    return None


def _advanced_index(a, index):
    """``a[index]`` for an integer or bool array ``index`` (the first axes), with a gradient."""
    if index.dtype == np.bool_:
        lead = index.shape
        if a.shape[:len(lead)] != lead:
            raise IndexError(f"boolean index of shape {lead} does not match tensor of shape {a.shape}")
        if lead != a.shape[:1]:  # a mask over several leading axes: flatten them into one
            a = reshape(a, (prod(lead),) + a.shape[len(lead):])
        index = np.flatnonzero(index)
    if a.ndim == 0:
        raise IndexError("cannot index a 0-d tensor with an array")
    rows = a.shape[0]
    flat = index.reshape(-1).astype(np.int64)
    bad = (flat < -rows) | (flat >= rows)
    if bad.any():
        raise IndexError(f"index {int(flat[bad.argmax()])} is out of bounds for axis 0 with size {rows}")
    flat = np.where(flat < 0, flat + rows, flat).reshape(index.shape)
    return Gather(NDArray(flat, device=a.device, dtype="int64"))(a)


def get_item(a, index):
    """``a[index]``: numpy basic indexing (ints, slices, None, ...), or an integer or bool Tensor /
    array / list, which gathers along the first axis (a mask selects, giving one flattened axis).

    >>> import needle as ndl
    >>> x = ndl.Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    >>> x[1, ::2].numpy().tolist(), x[:, None].shape
    ([4.0, 6.0], (2, 1, 3))
    >>> x[ndl.Tensor([1, 1, 0])].shape
    (3, 3)
    """
    first = index[0] if isinstance(index, tuple) and index else index
    array = _index_array(first)
    if array is None:
        if isinstance(index, tuple) and any(_index_array(i) is not None for i in index[1:]):
            raise IndexError("an integer or bool array index is supported on the first axis only, "
                             "with ':' for the other axes")
        return GetItem(index)(a)
    rest = index[1:] if isinstance(index, tuple) else ()
    if any(not (isinstance(r, slice) and r == slice(None)) for r in rest):
        raise IndexError("an integer or bool array index is supported on the first axis only, "
                         "with ':' for the other axes")
    return _advanced_index(a, array)


class Flip(TensorOp):
    """Reverse the order of elements along ``axes``."""

    def __init__(self, axes):
        self.axes = axes

    def compute(self, a: NDArray):
        return a.flip(self.axes)

    def gradient(self, out_grad, node):
        return flip(out_grad, self.axes)


def flip(a, axes):
    """Reverse ``a`` along ``axes``.

    >>> import needle as ndl
    >>> ndl.flip(ndl.Tensor([[1.0, 2.0], [3.0, 4.0]]), (1,)).numpy().tolist()
    [[2.0, 1.0], [4.0, 3.0]]
    """
    normalize_axes(axes, len(a.shape), "axes", a.shape, "flip")
    return Flip(axes)(a)


def _dilated_slices(shape, axes, dilation):
    return tuple(slice(None, None, dilation + 1) if i in axes else slice(None) for i in range(len(shape)))


class Dilate(TensorOp):
    """Insert ``dilation`` zeros after each element along ``axes``."""

    def __init__(self, axes, dilation):
        self.axes = axes
        self.dilation = dilation

    def compute(self, a: NDArray):
        axes = normalize_axes(self.axes, a.ndim)
        shape = tuple(s * (self.dilation + 1) if i in axes else s for i, s in enumerate(a.shape))
        out = a.device.full(shape, 0.0, dtype=a.dtype)
        out[_dilated_slices(shape, axes, self.dilation)] = a
        return out

    def gradient(self, out_grad, node):
        return undilate(out_grad, self.axes, self.dilation)


def dilate(a, axes, dilation):
    """Spread ``a`` out along ``axes`` with ``dilation`` zeros after each element.

    >>> import needle as ndl
    >>> ndl.dilate(ndl.Tensor([1.0, 2.0]), (0,), 2).numpy().tolist()
    [1.0, 0.0, 0.0, 2.0, 0.0, 0.0]
    """
    normalize_axes(axes, len(a.shape), "axes", a.shape, "dilate")
    return Dilate(axes, dilation)(a)


class UnDilate(TensorOp):
    """Keep every ``dilation + 1``-th element along ``axes`` (inverse of Dilate)."""

    def __init__(self, axes, dilation):
        self.axes = axes
        self.dilation = dilation

    def compute(self, a: NDArray):
        axes = normalize_axes(self.axes, a.ndim)
        return a[_dilated_slices(a.shape, axes, self.dilation)]

    def gradient(self, out_grad, node):
        # Dilate the gradient, then trim to the input's extent (the input may not be a
        # multiple of dilation + 1 long).
        grown = dilate(out_grad, self.axes, self.dilation)
        shape = node.inputs[0].shape
        if grown.shape == shape:
            return grown
        return get_item(grown, tuple(slice(0, s) for s in shape))


def undilate(a, axes, dilation):
    """Inverse of :func:`dilate`.

    >>> import needle as ndl
    >>> ndl.undilate(ndl.Tensor([1.0, 0.0, 2.0, 0.0]), (0,), 1).numpy().tolist()
    [1.0, 2.0]
    """
    normalize_axes(axes, len(a.shape), "axes", a.shape, "undilate")
    return UnDilate(axes, dilation)(a)


class Pad(TensorOp):
    """Zero padding: one (before, after) pair per axis."""

    def __init__(self, axes):
        self.axes = tuple(tuple(p) for p in axes)

    def compute(self, a: NDArray):
        return a.pad(self.axes)

    def gradient(self, out_grad, node):
        shape = node.inputs[0].shape
        return get_item(out_grad, tuple(slice(lo, lo + s) for s, (lo, _) in zip(shape, self.axes)))


def pad(a, axes):
    """Zero-pad ``a``: ``axes`` holds one (before, after) pair per axis.

    >>> import needle as ndl
    >>> ndl.pad(ndl.Tensor([[1.0, 2.0]]), ((1, 0), (0, 1))).numpy().tolist()
    [[0.0, 0.0, 0.0], [1.0, 2.0, 0.0]]
    """
    if len(axes) != len(a.shape) or any(len(p) != 2 or builtins.min(p) < 0 for p in axes):
        raise ValueError(f"pad: need one non-negative (before, after) pair per axis of shape {a.shape}, got {axes}")
    return Pad(axes)(a)


# ---- dtypes and devices -------------------------------------------------------------------------------------
class ToDevice(TensorOp):
    """Copy to another device; the gradient goes back to the source device."""

    def __init__(self, device):
        self.device = device

    def compute(self, a: NDArray):
        return a.to(self.device)

    def gradient(self, out_grad, node):
        return ToDevice(node.inputs[0].device)(out_grad)


class Cast(TensorOp):
    """Convert to another dtype; the gradient is converted back to the input's dtype."""

    def __init__(self, dtype):
        self.dtype = dtype

    def compute(self, a: NDArray):
        return a.astype(self.dtype)

    def gradient(self, out_grad, node):
        return Cast(node.inputs[0].dtype)(out_grad)


def cast(a, dtype):
    """``a`` converted to ``dtype`` (differentiable between float dtypes)."""
    dtype = _dtypes.name(dtype)
    if dtype == a.dtype:
        return a
    a.device.check_dtype(dtype)
    return Cast(dtype)(a)
