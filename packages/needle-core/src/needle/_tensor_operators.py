"""The Tensor methods that only read the data or call an op: conversions (numpy, DLPack, Python
numbers, dtypes and devices), operators (``+ - * / ** @``, comparisons, logic), and the reductions
and shape methods with the course's, PyTorch's and numpy's spellings.

``Tensor`` inherits them from :class:`TensorOperators`, so ``needle/autograd.py`` keeps the graph
and the backward pass alone. ``needle.ops`` subclasses autograd's ``TensorOp`` and so cannot be
imported before ``Tensor`` exists: ``needle.autograd`` binds ``_ops`` once it has imported ops.
"""
from . import _dtypes, backends
from ._argnames import UNSET

_ops = None  # needle.ops, bound by needle.autograd (see the module docstring)


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


def bind_operators(ops):
    """Give ``TensorOperators`` the ops' own fast versions of ``+ * / **`` (needle.autograd calls this
    once it has imported ``ops``): a tensor operand goes straight to the op's common case, a number
    to its scalar op, as the methods below do with one call fewer."""
    for names, fn, scalar in ((("__add__", "__radd__"), ops.add, ops.add_scalar),
                              (("__mul__", "__rmul__"), ops.multiply, ops.mul_scalar),
                              (("__truediv__",), ops.divide, ops.divide_scalar),
                              (("__pow__",), ops.power, ops.power_scalar)):
        for name in names:
            method = fn.eager_operator(scalar)
            method.__name__ = method.__qualname__ = name
            method.__doc__ = getattr(TensorOperators, name).__doc__
            setattr(TensorOperators, name, method)


class TensorOperators:
    """Mixin of ``Tensor``: each method reads the data or calls a ``needle.ops`` function."""

    __slots__ = ()

    # ---- conversions ------------------------------------------------------------------
    @property
    def data(self):
        """A detached Tensor sharing this one's storage."""
        return self.detach()

    @data.setter
    def data(self, value):
        if not isinstance(value, TensorOperators):
            raise TypeError(f"Tensor.data must be set to a Tensor, got {type(value).__name__}")
        if value.dtype != self.dtype:
            raise TypeError(f"Tensor.data: new value has dtype {value.dtype}, tensor has {self.dtype}")
        if value.shape != self.shape:
            raise ValueError(f"Tensor.data: new value has shape {value.shape}, tensor has {self.shape}")
        if value.device != self.device:
            raise ValueError(f"Tensor.data: new value is on {value.device}, tensor is on {self.device}; "
                             f"move it with .to(device) first")
        self.cached_data = value.realize_cached_data()

    def __len__(self):
        return len(self.realize_cached_data())

    def __repr__(self):
        return f"needle.Tensor({self.realize_cached_data().numpy()})"

    def __str__(self):
        return str(self.realize_cached_data().numpy())

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
            out = _ops.ToDevice(device)(out)
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

    # ---- operators --------------------------------------------------------------------
    def __add__(self, other):
        return _ops.add(self, other) if isinstance(other, TensorOperators) else _ops.add_scalar(self, other)

    __radd__ = __add__

    def __mul__(self, other):
        return _ops.multiply(self, other) if isinstance(other, TensorOperators) else _ops.mul_scalar(self, other)

    __rmul__ = __mul__

    def __pow__(self, other):
        return _ops.power(self, other) if isinstance(other, TensorOperators) else _ops.power_scalar(self, other)

    def __rpow__(self, other):
        return _ops.rpower_scalar(self, other)

    def __sub__(self, other):
        if isinstance(other, TensorOperators):
            return _ops.add(self, _ops.negate(other))
        return _ops.add_scalar(self, -other)

    def __rsub__(self, other):
        return _ops.add_scalar(_ops.negate(self), other)

    def __truediv__(self, other):
        return _ops.divide(self, other) if isinstance(other, TensorOperators) else _ops.divide_scalar(self, other)

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
    __hash__ = object.__hash__

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

