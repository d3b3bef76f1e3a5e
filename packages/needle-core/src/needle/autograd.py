"""Reverse-mode automatic differentiation: the Value/Op graph and backward.

A Tensor is a node of the graph: it records the Op that made it and the input nodes.
``backward`` sorts the graph topologically (iteratively, so deep graphs do not hit the
recursion limit) and sweeps it in reverse, building each gradient from ops, so that a
gradient is itself a differentiable Tensor.
"""
import contextlib
import functools
import gc
from typing import List, Optional, Tuple, Union

from . import backends
from . import _dtypes
from ._grad_hooks import grad_ready as _grad_ready
from ._argnames import UNSET
from ._dtypes import FLOATS as _FLOATS
from .backend_ndarray.ndarray import NDArray

#: When True, ops only record the graph; data is computed on first use.
LAZY_MODE = False


def __getattr__(name):
    # ``TENSOR_COUNTER``: the number of live Value objects (tests use it to catch leaks). Counted
    # on demand from the garbage collector's list, instead of a Python ``__del__`` on every tensor
    # (which cost ~0.3 us per op). type(), not isinstance: no __class__ lookups, which some objects warn on.
    if name == "TENSOR_COUNTER":
        return sum(1 for obj in gc.get_objects() if issubclass(type(obj), Value))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_grad_enabled = True


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) under which ops record no graph."""

    def __enter__(self):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, False
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False


def is_grad_enabled():
    """False inside :class:`no_grad`."""
    return _grad_enabled


class Op:
    """An operator: ``compute`` maps NDArrays forward, ``gradient`` maps adjoints back."""

    def __call__(self, *args):
        raise NotImplementedError()

    def compute(self, *args: Tuple[NDArray]):
        """Forward computation on the inputs' NDArrays."""
        raise NotImplementedError()

    def gradient(self, out_grad: "Value", node: "Value") -> Union["Value", Tuple["Value"]]:
        """Partial adjoints for each input, given the adjoint ``out_grad`` of ``node``."""
        raise NotImplementedError()

    def gradient_as_tuple(self, out_grad: "Value", node: "Value") -> Tuple["Value"]:
        """``gradient`` as a tuple, whatever the number of inputs."""
        output = self.gradient(out_grad, node)
        if isinstance(output, tuple):
            return output
        if isinstance(output, list):
            return tuple(output)
        return (output,)


class TensorOp(Op):
    """An op whose output is a Tensor."""

    def __call__(self, *args):
        return _make_from_op(Tensor, self, args)


class TensorTupleOp(Op):
    """An op whose output is a TensorTuple."""

    def __call__(self, *args):
        return TensorTuple.make_from_op(self, args)


class Value:
    """A node of the computational graph."""

    op: Optional[Op]
    inputs: List["Value"]
    cached_data: NDArray
    requires_grad: bool
    num_outputs = 1  # a class default: the eager path of every op skips storing it

    def realize_cached_data(self):
        """Run ``compute`` (once) and return the cached NDArray."""
        if self.cached_data is None:
            # Iteratively, inputs first: a lazy graph can be deeper than the recursion limit.
            for node in _unrealized_topo_order(self):
                node.cached_data = node.op.compute(*[x.cached_data for x in node.inputs])
        return self.cached_data

    def is_leaf(self):
        return self.op is None

    def _init(self, op, inputs, *, num_outputs=1, cached_data=None, requires_grad=None):
        if requires_grad is None:
            requires_grad = any(x.requires_grad for x in inputs)
        self.op = op
        self.inputs = inputs
        self.num_outputs = num_outputs
        self.cached_data = cached_data
        self.requires_grad = requires_grad

    @classmethod
    def make_const(cls, data, *, requires_grad=False):
        """A leaf holding ``data`` (integer and bool data never requires grad)."""
        value = cls.__new__(cls)
        if requires_grad and isinstance(data, NDArray) and data._dtype not in _FLOATS:
            requires_grad = False
        value._init(None, [], cached_data=data, requires_grad=requires_grad)
        return value

    @classmethod
    def make_from_op(cls, op: Op, inputs: List["Value"]):
        """Apply ``op``; record the graph only when some input needs a gradient."""
        requires_grad = False
        if _grad_enabled:
            for x in inputs:  # a plain loop: cheaper than any(genexpr) for one or two inputs
                if x.requires_grad:
                    requires_grad = True
                    break
        if LAZY_MODE:
            value = cls.__new__(cls)
            value._init(op, list(inputs), requires_grad=requires_grad)
            return value
        # Eager: compute first, then fill the node's fields directly (this runs once per op).
        # One and two inputs are unrolled: a list comprehension costs ~0.2 us, a tenth of a small op.
        if len(inputs) == 2:
            x, y = inputs
            dx, dy = x.cached_data, y.cached_data
            data = op.compute(dx if dx is not None else x.realize_cached_data(),
                              dy if dy is not None else y.realize_cached_data())
        elif len(inputs) == 1:
            dx = inputs[0].cached_data
            data = op.compute(dx if dx is not None else inputs[0].realize_cached_data())
        else:
            data = op.compute(*[x.cached_data if x.cached_data is not None else x.realize_cached_data()
                                for x in inputs])
        value = cls.__new__(cls)
        if requires_grad and getattr(data, "_dtype", "float32") not in _FLOATS:
            requires_grad = False  # integer and bool results (comparisons, argmax) are constants
        if requires_grad:
            value.op, value.inputs = op, list(inputs)
        else:
            # Nothing upstream needs a gradient: keep the result, not the graph.
            value.op, value.inputs = None, []
        value.cached_data = data
        value.requires_grad = requires_grad
        return value


_make_from_op = Value.make_from_op.__func__


def _device_or_dtype(who, device, dtype):
    """``(device, dtype)`` of a ``to(device=None, dtype=None)`` call, where a dtype may come first
    (PyTorch's ``t.to(torch.float64)``): a device object, a device name, or a dtype in either slot.
    The dtype comes back as needle's name, the device as a device."""
    if device is not None and not isinstance(device, backends.BackendDevice):
        if _is_dtype_like(device):
            if dtype is not None:
                raise TypeError(f"{who}: got two dtypes, {device!r} and dtype={dtype!r}")
            device, dtype = None, device
        elif isinstance(device, str):
            device = backends.device(device)
        else:
            raise TypeError(f"{who}: expected a device (ndl.cpu(), 'cpu', ...) or a dtype, got {device!r}")
    return device, None if dtype is None else _dtypes.name(dtype)


def _is_dtype_like(value):
    """True for what numpy reads as a dtype (``"float64"``, ``np.float32``, ``float``), not a device name."""
    import numpy as np
    try:
        np.dtype(value)
    except TypeError:
        return False
    return True


def _as_ndarray(array, device, dtype):
    # Without a dtype, NDArray keeps what numpy makes of ``array`` when it is float64 (a float64
    # array, a Python float, a list of floats) and the device has float64, as the course's numpy
    # backend did (``numpy.array(x)``); float32 otherwise.
    return NDArray(array, device=device, dtype=dtype)


class Tensor(Value):
    """An n-dimensional array that records the ops applied to it, for ``backward``.

    ``Tensor(array, device=None, dtype=None, requires_grad=True)``: ``array`` is a Tensor,
    an NDArray, a numpy array, a list or a scalar. Without ``dtype``, a Tensor or NDArray keeps
    its dtype; anything else gets the dtype numpy infers (an array keeps its own, Python ints give
    int64 and bools bool), except that float64 becomes float32 on a device without float64.
    Integer and bool tensors never require grad: ``requires_grad`` reads False for them, and
    asking for ``requires_grad=True`` explicitly is a TypeError.

    >>> import needle as ndl
    >>> x = ndl.Tensor([[1.0, 2.0], [3.0, 4.0]], dtype="float32", requires_grad=True)
    >>> x.shape, x.dtype
    ((2, 2), 'float32')
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad.numpy().tolist()
    [[2.0, 4.0], [6.0, 8.0]]
    """

    grad: Optional["Tensor"] = None  # set on leaves by backward()

    # numpy must not take over binary operators: ``np.float32(2) * t`` would turn ``t`` into an
    # ndarray and silently drop it from the graph. With this, numpy hands the operator back to
    # Tensor (``__rmul__``), and a numpy ufunc called on a Tensor raises a TypeError.
    __array_ufunc__ = None

    def __init__(self, array, *, device=None, dtype=None, requires_grad=None, **kwargs):
        if isinstance(device, str):
            from .backends import device as _named_device
            device = _named_device(device)
        if isinstance(array, Tensor):
            device = device or array.device
            dtype = dtype or array.dtype
            src = array.realize_cached_data()
            cached = src if (device == src.device and dtype == src.dtype) else _as_ndarray(src, device, dtype)
        else:
            if device is None and isinstance(array, NDArray):
                device = array.device
            cached = _as_ndarray(array, device or backends.default_device(), dtype)
        if cached._dtype not in _FLOATS:
            if requires_grad:
                raise TypeError(f"Tensor: requires_grad=True needs a float dtype, got {cached._dtype}; integer "
                                f"and bool tensors are constants of the graph (convert with .astype('float32'))")
            requires_grad = False
        self._init(None, [], cached_data=cached, requires_grad=True if requires_grad is None else requires_grad)

    @staticmethod
    def make_from_op(op: Op, inputs: List["Value"]):
        return _make_from_op(Tensor, op, inputs)

    @staticmethod
    def make_const(data, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.realize_cached_data()
        return Value.make_const.__func__(Tensor, data, requires_grad=requires_grad)

    # ---- data and metadata ------------------------------------------------------------
    @property
    def data(self):
        """A detached Tensor sharing this one's storage."""
        return self.detach()

    @data.setter
    def data(self, value):
        if not isinstance(value, Tensor):
            raise TypeError(f"Tensor.data must be set to a Tensor, got {type(value).__name__}")
        if value.dtype != self.dtype:
            raise TypeError(f"Tensor.data: new value has dtype {value.dtype}, tensor has {self.dtype}")
        if value.shape != self.shape:
            raise ValueError(f"Tensor.data: new value has shape {value.shape}, tensor has {self.shape}")
        if value.device != self.device:
            raise ValueError(f"Tensor.data: new value is on {value.device}, tensor is on {self.device}; "
                             f"move it with .to(device) first")
        self.cached_data = value.realize_cached_data()

    def detach(self):
        """A new leaf Tensor with the same data and no graph."""
        return Tensor.make_const(self.realize_cached_data())

    # The data is read directly when present: these run several times per op.
    @property
    def shape(self):
        data = self.cached_data
        return (data if data is not None else self.realize_cached_data())._shape

    @property
    def dtype(self):
        data = self.cached_data
        return (data if data is not None else self.realize_cached_data())._dtype

    @property
    def device(self):
        data = self.cached_data
        return (data if data is not None else self.realize_cached_data())._device

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return self.realize_cached_data().size

    def __len__(self):
        return len(self.realize_cached_data())

    def numpy(self, copy=True):
        """A numpy copy of the data. ``copy=False`` shares the memory instead (a write on either side
        shows on the other; autograd does not see it): for a tensor in host memory (numpy and cpu
        backends) whose view has no negative stride, else ValueError, never a silent copy."""
        return self.realize_cached_data().numpy(copy=copy)

    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        """A DLPack capsule sharing the data's memory (zero-copy; a compact copy for a flipped view), so
        ``numpy.from_dlpack(t)`` and ``torch.from_dlpack(t)`` see this tensor's memory."""
        return self.realize_cached_data().__dlpack__(stream=stream, max_version=max_version, dl_device=dl_device,
                                                     copy=copy)

    def __dlpack_device__(self):
        """``(device_type, index)`` of the data's memory, as DLPack numbers them (1 host, 2 CUDA)."""
        return self.realize_cached_data().__dlpack_device__()

    def __array__(self, dtype=None, copy=None):
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    def item(self):
        """The value of a one-element tensor as a Python number (float, int or bool, by dtype)."""
        if self.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.numpy().reshape(-1)[0].item()

    def __bool__(self):
        if self.size != 1:
            raise ValueError(f"the truth value of a tensor of shape {self.shape} is ambiguous; "
                             f"use .any()-style reductions or compare one element")
        return bool(self.item())

    def __float__(self):
        if self.size != 1:
            raise TypeError(f"float() needs a tensor with one element, got shape {self.shape}")
        return float(self.item())

    def __int__(self):
        if self.size != 1:
            raise TypeError(f"int() needs a tensor with one element, got shape {self.shape}")
        return int(self.item())

    def to(self, device=None, dtype=None):
        """This tensor on ``device`` and/or in ``dtype`` (itself when nothing changes); differentiable.

        As in PyTorch, one positional argument may be either: ``t.to(ndl.cpu())``, ``t.to("float64")``.
        """
        device, dtype = _device_or_dtype("Tensor.to", device, dtype)
        out = self
        if dtype is not None:
            out = _ops.cast(out, dtype)
        if device is not None and device != out.device:
            from .ops import ops_mathematic
            out = ops_mathematic.ToDevice(device)(out)
        return out

    def astype(self, dtype):
        """This tensor converted to ``dtype`` (differentiable)."""
        return _ops.cast(self, dtype)

    # PyTorch's conversions: each is astype.
    def float(self):
        """This tensor as float32 (``astype("float32")``)."""
        return _ops.cast(self, "float32")

    def double(self):
        """This tensor as float64 (``astype("float64")``)."""
        return _ops.cast(self, "float64")

    def long(self):
        """This tensor as int64 (``astype("int64")``; no gradient flows through integers)."""
        return _ops.cast(self, "int64")

    def int(self):
        """This tensor as int32 (``astype("int32")``; no gradient flows through integers)."""
        return _ops.cast(self, "int32")

    def bool(self):
        """This tensor as bool (``astype("bool")``: nonzero is True)."""
        return _ops.cast(self, "bool")

    def tolist(self):
        """The data as (nested) Python lists of Python numbers; a 0-d tensor gives a number."""
        return self.numpy().tolist()

    def __repr__(self):
        return f"needle.Tensor({self.realize_cached_data().numpy()})"

    def __str__(self):
        return str(self.realize_cached_data().numpy())

    # ---- autograd ---------------------------------------------------------------------
    def backward(self, out_grad=None, create_graph=True):
        """Compute gradients of this tensor with respect to every leaf that requires grad.

        ``out_grad`` defaults to ones of this tensor's shape. Each leaf's ``.grad`` is
        replaced (not accumulated). With ``create_graph=False`` gradients are plain data
        (faster, no graph kept); by default they are graph tensors, so a gradient can be
        differentiated again.
        """
        if out_grad is None:
            out_grad = Tensor.make_const(self.device.full(self.shape, 1.0, dtype=self.dtype))
        elif not isinstance(out_grad, Tensor):
            out_grad = Tensor(out_grad, device=self.device, dtype=self.dtype, requires_grad=False)
        elif out_grad.device != self.device:
            raise ValueError(f"backward: out_grad is on {out_grad.device}, tensor is on {self.device}")
        elif out_grad.dtype != self.dtype:
            # Gradients keep their inputs' dtype: a float64 out_grad must not promote a float32 graph.
            out_grad = _ops.cast(out_grad, self.dtype)
        if out_grad.shape != self.shape:
            raise ValueError(f"backward: out_grad has shape {out_grad.shape}, tensor has shape {self.shape}")
        if create_graph:
            compute_gradient_of_variables(self, out_grad)
        else:
            with no_grad():
                compute_gradient_of_variables(self, out_grad)

    # ---- operators --------------------------------------------------------------------
    def __add__(self, other):
        return _ops.add(self, other) if isinstance(other, Tensor) else _ops.add_scalar(self, other)

    __radd__ = __add__

    def __mul__(self, other):
        return _ops.multiply(self, other) if isinstance(other, Tensor) else _ops.mul_scalar(self, other)

    __rmul__ = __mul__

    def __pow__(self, other):
        return _ops.power(self, other) if isinstance(other, Tensor) else _ops.power_scalar(self, other)

    def __rpow__(self, other):
        return _ops.rpower_scalar(self, other)

    def __sub__(self, other):
        if isinstance(other, Tensor):
            return _ops.add(self, _ops.negate(other))
        return _ops.add_scalar(self, -other)

    def __rsub__(self, other):
        return _ops.add_scalar(_ops.negate(self), other)

    def __truediv__(self, other):
        return _ops.divide(self, other) if isinstance(other, Tensor) else _ops.divide_scalar(self, other)

    def __rtruediv__(self, other):
        return _ops.rdivide_scalar(self, other)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __neg__(self):
        return _ops.negate(self)

    # Comparisons and logic give bool tensors (no gradient). Tensors still hash by identity, so
    # they stay usable as dict keys (optimiser state); ``t in list`` compares elementwise, as in PyTorch.
    __hash__ = Value.__hash__

    def __eq__(self, other):
        return _ops.compare("eq", self, other)

    def __ne__(self, other):
        return _ops.compare("ne", self, other)

    def __lt__(self, other):
        return _ops.compare("lt", self, other)

    def __le__(self, other):
        return _ops.compare("le", self, other)

    def __gt__(self, other):
        return _ops.compare("gt", self, other)

    def __ge__(self, other):
        return _ops.compare("ge", self, other)

    def __and__(self, other):
        return _ops.logical_and(self, other)

    def __or__(self, other):
        return _ops.logical_or(self, other)

    def __xor__(self, other):
        return _ops.logical_xor(self, other)

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def __invert__(self):
        return _ops.logical_not(self)

    def abs(self):
        """Elementwise absolute value."""
        return _ops.abs(self)

    def __abs__(self):
        return _ops.abs(self)

    def clip(self, lo=None, hi=None):
        """This tensor limited to [lo, hi]."""
        return _ops.clip(self, lo, hi)

    # Reductions: the ops' functions, with the course's names and PyTorch's (``dim=``, ``keepdim=``)
    # and numpy's (``axis=``) spellings.
    def argmax(self, axis=UNSET, keepdims=UNSET, *, axes=UNSET, dim=UNSET, keepdim=UNSET):
        """Indices (int64) of the first maximum along ``axis`` (None: of the flattened tensor); see ``ops.argmax``."""
        return _ops.argmax(self, axis, keepdims, axes=axes, dim=dim, keepdim=keepdim)

    def argmin(self, axis=UNSET, keepdims=UNSET, *, axes=UNSET, dim=UNSET, keepdim=UNSET):
        """Indices (int64) of the first minimum along ``axis`` (None: of the flattened tensor); see ``ops.argmin``."""
        return _ops.argmin(self, axis, keepdims, axes=axes, dim=dim, keepdim=keepdim)

    def __getitem__(self, idx):
        return _ops.get_item(self, idx)

    def matmul(self, other):
        """``self @ other`` (numpy's rules, 1-D operands included)."""
        return _ops.matmul(self, other)

    def sum(self, axes=UNSET, keepdims=UNSET, *, axis=UNSET, dim=UNSET, keepdim=UNSET):
        """Sum over ``axes`` (default all; also ``axis=``/``dim=``, ``keepdim=``): ``ops.summation``."""
        return _ops.summation(self, axes, keepdims, axis=axis, dim=dim, keepdim=keepdim)

    def mean(self, axes=UNSET, keepdims=UNSET, *, axis=UNSET, dim=UNSET, keepdim=UNSET):
        """Mean over ``axes`` (default all; also ``axis=``/``dim=``, ``keepdim=``): ``ops.mean``."""
        return _ops.mean(self, axes, keepdims, axis=axis, dim=dim, keepdim=keepdim)

    def max(self, axes=UNSET, keepdims=UNSET, *, axis=UNSET, dim=UNSET, keepdim=UNSET):
        """Maximum over ``axes`` (default all; also ``axis=``/``dim=``, ``keepdim=``): ``ops.max``
        (the values only, not PyTorch's (values, indices))."""
        return _ops.max(self, axes, keepdims, axis=axis, dim=dim, keepdim=keepdim)

    def min(self, axes=UNSET, keepdims=UNSET, *, axis=UNSET, dim=UNSET, keepdim=UNSET):
        """Minimum over ``axes`` (default all; also ``axis=``/``dim=``, ``keepdim=``): ``ops.min``
        (the values only, not PyTorch's (values, indices))."""
        return _ops.min(self, axes, keepdims, axis=axis, dim=dim, keepdim=keepdim)

    def logsumexp(self, axes=UNSET, keepdims=UNSET, *, axis=UNSET, dim=UNSET, keepdim=UNSET):
        """``log(sum(exp(self)))`` over ``axes`` (default all; also ``axis=``/``dim=``, ``keepdim=``)."""
        return _ops.logsumexp(self, axes, keepdims, axis=axis, dim=dim, keepdim=keepdim)

    def logsoftmax(self, axis=UNSET, *, axes=UNSET, dim=UNSET, keepdims=UNSET, keepdim=UNSET):
        """Log-softmax over ``axis`` (default the last; also ``axes=``/``dim=``): ``ops.logsoftmax``."""
        return _ops.logsoftmax(self, axis, axes=axes, dim=dim, keepdims=keepdims, keepdim=keepdim)

    #: PyTorch's name for :meth:`logsoftmax`.
    log_softmax = logsoftmax

    def softmax(self, axis=UNSET, *, axes=UNSET, dim=UNSET, keepdims=UNSET, keepdim=UNSET):
        """Softmax over ``axis`` (default the last; also ``axes=``/``dim=``): ``ops.softmax``."""
        return _ops.softmax(self, axis, axes=axes, dim=dim, keepdims=keepdims, keepdim=keepdim)

    def broadcast_to(self, shape):
        return _ops.broadcast_to(self, shape)

    def reshape(self, *shape):
        """This tensor with a new shape of the same size (``*ints`` or one tuple; one -1 is inferred)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = shape[0]
        return _ops.reshape(self, shape)

    #: PyTorch's name for :meth:`reshape` (needle's reshape never needs a contiguous input).
    view = reshape

    def transpose(self, axes=None):
        """Swap two axes: the last two, or ``axes=(i, j)`` (the course's rule; see :meth:`permute`)."""
        return _ops.transpose(self, axes)

    def permute(self, *axes):
        """This tensor with its axes reordered: ``t.permute(2, 0, 1)`` or ``t.permute((2, 0, 1))``."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = axes[0]
        return _ops.permute(self, axes)

    def unsqueeze(self, axis=UNSET, *, dim=UNSET):
        """This tensor with a new axis of length 1 at ``axis`` (also ``dim=``): ``ops.unsqueeze``."""
        return _ops.unsqueeze(self, axis, dim=dim)

    def squeeze(self, axis=UNSET, *, dim=UNSET):
        """This tensor without its length-1 axes (all, or ``axis``; also ``dim=``): ``ops.squeeze``."""
        return _ops.squeeze(self, axis, dim=dim)

    def flatten(self, start=UNSET, end=UNSET, *, start_dim=UNSET, end_dim=UNSET):
        """Axes ``start`` to ``end`` (inclusive; default all) merged into one: ``ops.flatten``."""
        return _ops.flatten(self, start, end, start_dim=start_dim, end_dim=end_dim)

    def exp(self):
        return _ops.exp(self)

    def log(self):
        return _ops.log(self)

    def relu(self):
        return _ops.relu(self)

    def tanh(self):
        return _ops.tanh(self)

    def sigmoid(self):
        return _ops.sigmoid(self)

    def sqrt(self):
        return _ops.sqrt(self)

    @property
    def T(self):
        return _ops.transpose(self)


class TensorTuple(Value):
    """A tuple of tensors that is one node of the graph (e.g. the output of ``split``)."""

    def __len__(self):
        return len(self.realize_cached_data())

    def __getitem__(self, index: int):
        return _ops.tuple_get_item(self, index)

    def tuple(self):
        return tuple(self[i] for i in range(len(self)))

    def __iter__(self):
        return iter(self.tuple())

    def __repr__(self):
        return "needle.TensorTuple" + str(self.tuple())

    def __str__(self):
        return self.__repr__()

    def __add__(self, other):
        if not isinstance(other, TensorTuple) or len(self) != len(other):
            raise ValueError("TensorTuple + needs another TensorTuple of the same length")
        return _ops.make_tuple(*[self[i] + other[i] for i in range(len(self))])

    def detach(self):
        return TensorTuple.make_const(self.realize_cached_data())

    @property
    def device(self):
        data = self.realize_cached_data()
        return data[0].device if data else backends.default_device()


# ---- backward ------------------------------------------------------------------------------
def find_topo_sort(node_list: List[Value]) -> List[Value]:
    """Nodes reachable from ``node_list`` in topological order (inputs before users).

    Depth-first post-order, visiting inputs in order, with an explicit stack so that a
    chain of any length works within Python's default recursion limit.
    """
    return _topo_sort(node_list, only_requires_grad=False)


def _topo_sort(node_list, only_requires_grad, stop=None):
    """Topological order; the inputs of nodes whose id is in ``stop`` are not visited."""
    visited, order = set(), []
    stop = stop or ()
    for root in node_list:
        if id(root) in visited:
            continue
        visited.add(id(root))
        stack = [(root, iter(root.inputs if id(root) not in stop else ()))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if id(child) not in visited and (child.requires_grad or not only_requires_grad):
                    visited.add(id(child))
                    stack.append((child, iter(child.inputs if id(child) not in stop else ())))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def _unrealized_topo_order(root):
    """``root`` and the nodes it needs that have no data yet, inputs before users."""
    visited, order = {id(root)}, []
    stack = [(root, iter(root.inputs))]
    while stack:
        node, children = stack[-1]
        for child in children:
            if child.cached_data is None and id(child) not in visited:
                visited.add(id(child))
                stack.append((child, iter(child.inputs)))
                break
        else:
            stack.pop()
            order.append(node)
    return order


#: Per-backward-pass memo (None outside backward): see :func:`backward_memo`.
_BACKWARD_MEMO = None


def backward_memo(key, make):
    """``make()``, computed once per backward pass for ``key`` (a tuple holding graph nodes).

    A weight used at many steps (an RNN's ``W_hh``) needs the same transposed copy for each
    step's gradient: the memo makes it once. Outside a backward pass it just calls ``make``.
    """
    memo = _BACKWARD_MEMO
    if memo is None:
        return make()
    ident = tuple(id(k) if isinstance(k, Value) else k for k in key)
    hit = memo.get(ident)
    if hit is None:
        hit = memo[ident] = (key, make())  # keep the key's nodes alive while their ids are used
    return hit[1]


def compute_gradient_of_variables(output_tensor, out_grad):
    """Reverse sweep: sum each node's partial adjoints and pass them to its inputs.

    Every leaf that requires grad gets ``.grad``; intermediate nodes keep nothing, so the
    graph is freed once the caller drops it.
    """
    global _BACKWARD_MEMO
    outer, _BACKWARD_MEMO = _BACKWARD_MEMO, {}
    try:
        _backward_sweep(output_tensor, out_grad)
    finally:
        _BACKWARD_MEMO = outer


def gradients(output_tensor, out_grad, wrt):
    """Adjoints of the nodes ``wrt`` (a list; None for one the output does not reach), as graph tensors.

    The sweep stops at ``wrt`` and sets no leaf's ``.grad``: a fused op whose gradient must be
    differentiable builds its composed forward from its inputs and takes this (see nn's LSTM).
    """
    global _BACKWARD_MEMO
    outer = _BACKWARD_MEMO
    if outer is None:
        _BACKWARD_MEMO = {}
    try:
        found = _backward_sweep(output_tensor, out_grad, stop={id(x) for x in wrt})
    finally:
        _BACKWARD_MEMO = outer
    return [found.get(id(x)) for x in wrt]


def _backward_sweep(output_tensor, out_grad, stop=None):
    """The reverse sweep; with ``stop`` (node ids), collect their adjoints instead of leaves' ``.grad``."""
    found = {}
    grads = {id(output_tensor): [out_grad]}
    # Adjoints of single elements of a TensorTuple, by tuple and index: a tuple read at many
    # indexes (the steps of a split sequence) then gets one tuple of its elements' adjoints,
    # instead of one zero-filled tuple per read, all added together.
    element_grads = {}
    get_item_op = _ops.TupleGetItem
    for node in reversed(_topo_sort([output_tensor], only_requires_grad=True, stop=stop)):
        partials = grads.pop(id(node), None)
        elements = element_grads.pop(id(node), None) if element_grads else None
        if partials is None and elements is None:
            continue
        total = None
        if partials is not None:
            total = partials[0]
            for partial in partials[1:]:
                total = total + partial
        if elements is not None:
            total = _tuple_adjoint(node, total, elements)
        if stop is not None:
            if id(node) in stop:
                found[id(node)] = total
                continue
            if node.is_leaf():
                continue
        elif node.is_leaf():
            if node.requires_grad:
                node.grad = total
                _grad_ready(node)  # the leaf's gradient is final: run its gradient-ready hooks
            continue
        if not node.requires_grad:
            continue
        if type(node.op) is get_item_op:
            element_grads.setdefault(id(node.inputs[0]), {}).setdefault(node.op.index, []).append(total)
            continue
        for inp, grad in zip(node.inputs, node.op.gradient_as_tuple(total, node)):
            # An op may return None for an input that needs no gradient (work it skipped).
            if inp.requires_grad and grad is not None:
                grads.setdefault(id(inp), []).append(grad)
    return found


def _tuple_adjoint(node, whole, elements):
    """The adjoint of TensorTuple ``node``: ``whole`` (a TensorTuple or None) plus per-element adjoints."""
    parts = []
    for i, arr in enumerate(node.realize_cached_data()):
        grads = elements.get(i, [])
        if whole is not None:
            grads = [whole[i]] + grads
        if not grads:  # an element nobody read: a zero adjoint
            parts.append(Tensor.make_const(arr.device.full(arr.shape, 0.0, dtype=arr.dtype)))
            continue
        total = grads[0]
        for g in grads[1:]:
            total = total + g
        parts.append(total)
    return _ops.make_tuple(*parts)


def sum_node_list(node_list):
    """Sum a list of nodes (course helper)."""
    return functools.reduce(lambda a, b: a + b, node_list)


def from_dlpack(obj, device=None, copy=None, requires_grad=False):
    """``needle.from_dlpack(obj)``: a Tensor over the memory of ``obj`` (a numpy array, a PyTorch or CuPy
    tensor, anything with ``__dlpack__``), without a copy where the memory allows it: a write on either
    side shows on the other, and ``obj``'s memory stays alive as long as the tensor.

    ``device``: the needle device to put it on (default: the one holding the memory; host memory goes to
    the default device when that is a host backend, else :func:`needle.cpu`). ``copy=True`` always
    copies; ``copy=False`` refuses a copy to another device. The tensor is a leaf; ``requires_grad`` as
    in ``Tensor``. Errors: TypeError for a dtype needle cannot hold (float16, complex, ...),
    BufferError for memory on a device needle has no backend for.
    """
    from .backend_ndarray.ndarray import from_dlpack as array_from_dlpack

    return Tensor.make_const(array_from_dlpack(obj, device=device, copy=copy), requires_grad=requires_grad)


from . import ops as _ops  # noqa: E402  (ops import this module)
