"""Ops that produce or consume TensorTuples: make_tuple, tuple_get_item, stack, split, concatenate."""
import numpy as np

from ..autograd import NDArray, Tensor, TensorOp, TensorTuple, TensorTupleOp
from ..backend_ndarray.ndarray import normalize_axes
from .ops_mathematic import get_item


class MakeTensorTuple(TensorTupleOp):
    """Group tensors into one TensorTuple node; the adjoint is split back to each tensor."""

    def compute(self, *args):
        return tuple(args)

    def gradient(self, out_grad, node):
        return tuple(out_grad[i] for i in range(len(out_grad)))


def make_tuple(*args):
    """A TensorTuple of the given tensors."""
    return MakeTensorTuple()(*args)


class TupleGetItem(TensorOp):
    """Element ``index`` of a TensorTuple; the adjoint is that element's gradient, zeros elsewhere."""

    def __init__(self, index):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"tuple_get_item: index must be an int, got {type(index).__name__}")
        self.index = int(index)

    def __call__(self, a: TensorTuple, fold_const=True):
        if self.index < 0:
            # The adjoint is matched to the element by position: store the index non-negative.
            n = len(a)
            if self.index < -n:
                raise IndexError(f"tuple_get_item: index {self.index} is out of range for a TensorTuple "
                                 f"of length {n}")
            return TupleGetItem(self.index + n)(a, fold_const)
        # Indexing a make_tuple node gives back its input directly (no new node).
        if fold_const and isinstance(a.op, MakeTensorTuple):
            if self.index >= len(a.inputs):
                raise IndexError(f"tuple_get_item: index {self.index} is out of range for a TensorTuple "
                                 f"of length {len(a.inputs)}")
            return a.inputs[self.index]
        return Tensor.make_from_op(self, [a])

    def compute(self, a):
        if self.index >= len(a):
            raise IndexError(f"tuple_get_item: index {self.index} is out of range for a TensorTuple of length {len(a)}")
        return a[self.index]

    def gradient(self, out_grad, node):
        parts = node.inputs[0].realize_cached_data()
        grads = [out_grad if i == self.index else Tensor.make_const(p.device.full(p.shape, 0.0, dtype=p.dtype))
                 for i, p in enumerate(parts)]
        return make_tuple(*grads)


def tuple_get_item(value, index):
    """Element ``index`` of a TensorTuple."""
    return TupleGetItem(index)(value)


def _check_same(name, tensors):
    tensors = list(tensors)
    if not tensors:
        raise ValueError(f"{name}: needs at least one tensor")
    first = tensors[0]
    for i, t in enumerate(tensors[1:], 1):
        if t.device != first.device:
            raise ValueError(f"{name}: tensor {i} is on {t.device}, tensor 0 on {first.device}")
        if t.dtype != first.dtype:
            raise TypeError(f"{name}: tensor {i} has dtype {t.dtype}, tensor 0 has {first.dtype}")
    return tensors


class Stack(TensorOp):
    """Stack equal-shaped tensors along a new axis."""

    def __init__(self, axis: int):
        self.axis = axis

    def compute(self, args):
        first = args[0]
        axis = self.axis % (first.ndim + 1)
        shape = first.shape[:axis] + (len(args),) + first.shape[axis:]
        out = first.device.empty(shape, dtype=first.dtype)
        lead = (slice(None),) * axis
        for i, arr in enumerate(args):
            out[lead + (i,)] = arr
        return out

    def gradient(self, out_grad, node):
        return split(out_grad, self.axis)


def stack(args, axis):
    """Stack a sequence of equal-shaped tensors along a new ``axis``."""
    args = _check_same("stack", args)
    shapes = {t.shape for t in args}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors must have one shape, got {sorted(shapes)}")
    normalize_axes(axis, len(args[0].shape) + 1, "axis", op=f"stack of {len(args)} tensors of shape {args[0].shape}")
    return Stack(axis)(make_tuple(*args))


class Split(TensorTupleOp):
    """Split along ``axis`` into its slices (removing the axis)."""

    def __init__(self, axis: int):
        self.axis = axis

    def compute(self, a: NDArray):
        axis = self.axis % a.ndim
        lead = (slice(None),) * axis
        return tuple(a.basic_index(lead + (i,)) for i in range(a.shape[axis]))

    def gradient(self, out_grad, node):
        return stack(list(out_grad), self.axis)


def split(a, axis):
    """The slices of ``a`` along ``axis``, as a TensorTuple."""
    normalize_axes(axis, len(a.shape), "axis", a.shape, "split")
    return Split(axis)(a)


class Concatenate(TensorOp):
    """Join tensors along an existing axis."""

    def __init__(self, axis: int):
        self.axis = axis

    def compute(self, args):
        first = args[0]
        axis = self.axis % first.ndim
        shape = list(first.shape)
        shape[axis] = sum(a.shape[axis] for a in args)
        out = first.device.empty(tuple(shape), dtype=first.dtype)
        start, lead = 0, (slice(None),) * axis
        for arr in args:
            out[lead + (slice(start, start + arr.shape[axis]),)] = arr
            start += arr.shape[axis]
        return out

    def gradient(self, out_grad, node):
        parts = node.inputs[0].realize_cached_data()
        axis = self.axis % len(out_grad.shape)
        grads, start, lead = [], 0, (slice(None),) * axis
        for p in parts:
            grads.append(get_item(out_grad, lead + (slice(start, start + p.shape[axis]),)))
            start += p.shape[axis]
        return make_tuple(*grads)


def concatenate(args, axis):
    """Join a sequence of tensors along an existing ``axis``."""
    args = _check_same("concatenate", args)
    ndim = len(args[0].shape)
    ax = normalize_axes(axis, ndim, "axis", args[0].shape, "concatenate")[0]
    for i, t in enumerate(args):
        if len(t.shape) != ndim or t.shape[:ax] + t.shape[ax + 1:] != args[0].shape[:ax] + args[0].shape[ax + 1:]:
            raise ValueError(f"concatenate: tensor {i} has shape {t.shape}, which does not match "
                             f"{args[0].shape} outside axis {axis}")
    return Concatenate(axis)(make_tuple(*args))
