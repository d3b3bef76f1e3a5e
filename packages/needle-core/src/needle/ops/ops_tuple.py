"""TensorTuple and the ops that produce or consume it: make_tuple, tuple_get_item, stack, split,
concatenate."""
import numpy as np

from .. import backends
from ..autograd import NDArray, Tensor, TensorOp, TensorTupleOp, Value
from ..backend_ndarray.ndarray import normalize_axes
from .ops_mathematic import get_item


class TensorTuple(Value):
    """A tuple of tensors that is one node of the graph (e.g. the output of ``split``)."""

    def __len__(self):
        return len(self.realize_cached_data())

    def __getitem__(self, index: int):
        return tuple_get_item(self, index)

    def tuple(self):
        return tuple(self[i] for i in range(len(self)))

    def __iter__(self):
        return iter(self.tuple())

    def __repr__(self):
        return "needle.TensorTuple" + str(self.tuple())

    def __str__(self):
        return self.__repr__()

    def __add__(self, other):
        if isinstance(other, TupleAdjoint):
            return other + self
        if not isinstance(other, TensorTuple) or len(self) != len(other):
            raise ValueError("TensorTuple + needs another TensorTuple of the same length")
        return make_tuple(*[self[i] + other[i] for i in range(len(self))])

    def detach(self):
        return TensorTuple.make_const(self.realize_cached_data())

    @property
    def device(self):
        data = self.realize_cached_data()
        return data[0].device if data else backends.default_device()


class TupleAdjoint:
    """The adjoint of a TensorTuple read element by element (``TupleGetItem``'s gradient): the
    adjoints of the elements read, by index; the others are zero. ``+`` merges two of them, or one
    and a whole TensorTuple adjoint, adding only what was read: a tuple read at many indexes (the
    steps of a split sequence) gets one adjoint per element, not one zero-filled tuple per read.
    Read like a tuple (``len``, ``[i]``, iteration), an element nobody read is a zero tensor."""

    def __init__(self, node, parts):
        self.node, self.parts = node, parts  # node: the TensorTuple; parts: {index: adjoint}

    def __add__(self, other):
        parts = dict(self.parts)
        for i, grad in (other.parts.items() if isinstance(other, TupleAdjoint) else enumerate(other)):
            parts[i] = parts[i] + grad if i in parts else grad
        return TupleAdjoint(self.node, parts)

    __radd__ = __add__

    def __len__(self):
        return len(self.node.realize_cached_data())

    def __getitem__(self, index):
        grad = self.parts.get(index)
        if grad is None:
            arr = self.node.realize_cached_data()[index]
            grad = Tensor.make_const(arr.device.full(arr.shape, 0.0, dtype=arr.dtype))
        return grad

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def tuple(self):
        """The adjoint as a TensorTuple (zeros where nothing was read)."""
        return make_tuple(*self)


class MakeTensorTuple(TensorTupleOp):
    """Group tensors into one TensorTuple node; the adjoint is split back to each tensor."""

    def compute(self, *args):
        return tuple(args)

    def gradient(self, out_grad, node):
        return tuple(out_grad[i] for i in range(len(out_grad)))


def make_tuple(*args):
    """A TensorTuple of the given tensors.

    >>> import needle as ndl
    >>> t = ndl.make_tuple(ndl.Tensor([1.0]), ndl.Tensor([2.0, 3.0]))
    >>> len(t), t[1].shape
    (2, (2,))
    """
    return MakeTensorTuple()(*args)


class TupleGetItem(TensorOp):
    """Element ``index`` of a TensorTuple; the tuple's adjoint is a :class:`TupleAdjoint` holding this
    element's gradient alone (zeros elsewhere, made only if read)."""

    def __init__(self, index):
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"tuple_get_item: index must be an int, got {type(index).__name__}")
        self.index = int(index)

    def __call__(self, a, fold_const=True):
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
        return TupleAdjoint(node.inputs[0], {self.index: out_grad})


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
    """Stack a sequence of equal-shaped tensors along a new ``axis``.

    >>> import needle as ndl
    >>> a, b = ndl.Tensor([1.0, 2.0]), ndl.Tensor([3.0, 4.0])
    >>> ndl.stack([a, b], 0).numpy().tolist()
    [[1.0, 2.0], [3.0, 4.0]]
    >>> ndl.stack([a, b], 1).shape
    (2, 2)
    """
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
    """The slices of ``a`` along ``axis``, as a TensorTuple.

    >>> import needle as ndl
    >>> parts = ndl.split(ndl.Tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), 0)
    >>> len(parts), parts[2].numpy().tolist()
    (3, [5.0, 6.0])
    >>> [p.shape for p in ndl.split(ndl.Tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), 1)]
    [(3,), (3,)]
    """
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
    """Join a sequence of tensors along an existing ``axis``.

    >>> import needle as ndl
    >>> ndl.concatenate([ndl.Tensor([[1.0, 2.0]]), ndl.Tensor([[3.0, 4.0]])], 0).shape
    (2, 2)
    >>> ndl.concatenate([ndl.Tensor([[1.0, 2.0]]), ndl.Tensor([[3.0]])], 1).numpy().tolist()
    [[1.0, 2.0, 3.0]]
    """
    args = _check_same("concatenate", args)
    ndim = len(args[0].shape)
    ax = normalize_axes(axis, ndim, "axis", args[0].shape, "concatenate")[0]
    for i, t in enumerate(args):
        if len(t.shape) != ndim or t.shape[:ax] + t.shape[ax + 1:] != args[0].shape[:ax] + args[0].shape[ax + 1:]:
            raise ValueError(f"concatenate: tensor {i} has shape {t.shape}, which does not match "
                             f"{args[0].shape} outside axis {axis}")
    return Concatenate(axis)(make_tuple(*args))
