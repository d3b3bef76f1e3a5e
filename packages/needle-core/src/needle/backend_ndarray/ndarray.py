"""NDArray: an n-dimensional strided view over one backend buffer.

All view logic lives here, once, for every backend: permute, broadcast, slicing, flip and
reshape of compact arrays change (shape, strides, offset) and share the buffer; anything
that needs real work calls one flat-buffer kernel of the backend protocol.
"""
import math
from numbers import Number

import numpy as np

from .. import backends

_DEFAULT_DTYPE = "float32"


def prod(xs):
    """Product of a sequence of ints (1 for an empty one)."""
    return math.prod(xs)


_LAYOUTS = {}  # shape -> (compact strides, size)


def _compact_layout(shape):
    """``(strides, size)`` of a compact array of ``shape`` (a tuple), cached."""
    # A plain dict: a hit costs a third of an lru_cache call, and this runs for every new array.
    layout = _LAYOUTS.get(shape)
    if layout is None:
        stride, out = 1, []
        for dim in reversed(shape):
            out.append(stride)
            stride *= dim
        layout = (tuple(reversed(out)), stride)
        if len(_LAYOUTS) > 4096:  # many distinct shapes: start again rather than grow
            _LAYOUTS.clear()
        _LAYOUTS[shape] = layout
    return layout


def compact_strides(shape):
    """Row-major strides, in elements, of a compact array of ``shape`` (a tuple)."""
    return _compact_layout(shape)[0]


def normalize_axes(axes, ndim, name="axes", shape=None, op=None):
    """Return ``axes`` (int, tuple or None) as a sorted tuple of non-negative ints.

    ``name``, ``shape`` and ``op`` (the caller's argument name, array shape and function
    name) only make the error messages say where the bad value came from.
    """
    if axes is None:
        return tuple(range(ndim))
    given = axes  # error messages show the argument as the caller wrote it
    if isinstance(axes, (int, np.integer)):
        axes = (int(axes),)
    out = []
    for ax in axes:
        if not -ndim <= ax < max(ndim, 1) or (ndim == 0 and ax not in (0, -1)):
            where = f"shape {tuple(shape)}" if shape is not None else "an array"
            raise ValueError(f"{op + ': ' if op else ''}{name}={given} is out of range for {where} "
                             f"with {ndim} dimensions")
        out.append(ax % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op + ': ' if op else ''}{name}={given} repeats an axis")
    return tuple(sorted(out))


_BROADCASTS = {}  # (shape, shape, ...) -> broadcast shape


def broadcast_shapes(*shapes):
    """numpy's broadcasting of several shapes; a ValueError names them when they clash."""
    # Cached: np.broadcast_shapes costs ~2 us, and training repeats the same few pairs.
    out = _BROADCASTS.get(shapes)
    if out is None:
        try:
            out = tuple(np.broadcast_shapes(*shapes))
        except ValueError:
            raise ValueError(f"shapes {' and '.join(map(str, shapes))} cannot be broadcast together") from None
        if len(_BROADCASTS) > 4096:
            _BROADCASTS.clear()
        _BROADCASTS[shapes] = out
    return out


_new = object.__new__


_DTYPE_NAMES = {}  # what callers pass ("float32", np.float32, np.dtype(...)) -> its name


def _dtype_name(dtype):
    if dtype is None:
        return None
    # Cached: np.dtype(x).name costs ~1.5 us, and every new array from numpy asks.
    try:
        return _DTYPE_NAMES[dtype]
    except (KeyError, TypeError):  # TypeError: an unhashable dtype-like, e.g. a structured spec
        name = np.dtype(dtype).name
    try:
        if len(_DTYPE_NAMES) < 256:
            _DTYPE_NAMES[dtype] = name
    except TypeError:
        pass
    return name


class NDArray:
    """A strided n-dimensional array on a device.

    ``NDArray(obj, device=None, dtype=None)`` copies a numpy array, a nested list or another
    NDArray. Without ``dtype``, a float64 numpy input stays float64 where the device supports
    it; everything else becomes float32.
    """

    # _compact caches is_compact() (None: not computed yet); _dtype caches the buffer's dtype (a
    # native property read costs ~0.3 us, several per op); the fields never change after creation.
    __slots__ = ("_shape", "_strides", "_offset", "_device", "_handle", "_dtype", "_compact", "__weakref__")

    def __init__(self, other, device=None, dtype=None):
        if isinstance(other, NDArray):
            device = device or other.device
            dtype = _dtype_name(dtype) or other.dtype
            if device == other.device and dtype == other.dtype:
                src = other
            else:
                src = NDArray(other.numpy(), device=device, dtype=dtype)
            self._init_from(src.compact() if src is not other else other.copy())
            return
        device = device or backends.default_device()
        array = np.asarray(other)
        if dtype is None:
            dtype = "float64" if array.dtype == np.float64 and "float64" in device.dtypes else _DEFAULT_DTYPE
        dtype = _dtype_name(dtype)
        device.check_dtype(dtype)
        array = np.asarray(array, dtype=dtype, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
        out = NDArray.make(array.shape, device=device, dtype=dtype)
        device.from_numpy(array, out._handle)
        self._init_from(out)

    def _init_from(self, other):
        self._shape = other._shape
        self._strides = other._strides
        self._offset = other._offset
        self._device = other._device
        self._handle = other._handle
        self._dtype = other._dtype
        self._compact = other._compact

    @staticmethod
    def make(shape, strides=None, device=None, handle=None, offset=0, dtype=_DEFAULT_DTYPE):
        """Create an NDArray over ``handle`` (or over a new buffer when it is None)."""
        array = object.__new__(NDArray)
        array._shape = shape = tuple(shape)
        array._strides = compact_strides(shape) if strides is None else tuple(strides)
        array._offset = offset
        array._device = device if device is not None else backends.default_device()
        array._compact = None
        if handle is None:
            array._device.check_dtype(dtype)
            handle = array._device.Array(prod(array._shape), dtype)
            array._compact = strides is None
        array._handle = handle
        array._dtype = handle.dtype
        return array

    @staticmethod
    def _fresh(shape, device, dtype):
        """A new compact array; ``shape`` a tuple and ``dtype`` already valid for ``device``.

        The hot path of every op's output: it skips ``make``'s argument normalising and checks.
        """
        layout = _LAYOUTS.get(shape) or _compact_layout(shape)
        array = _new(NDArray)
        array._shape = shape
        array._strides = layout[0]
        array._offset = 0
        array._device = device
        array._handle = device.Array(layout[1], dtype)
        array._dtype = dtype
        array._compact = True
        return array

    # ---- properties -------------------------------------------------------------------
    @property
    def shape(self):
        return self._shape

    @property
    def strides(self):
        return self._strides

    @property
    def offset(self):
        return self._offset

    @property
    def device(self):
        return self._device

    @property
    def dtype(self):
        return self._dtype

    @property
    def ndim(self):
        return len(self._shape)

    @property
    def size(self):
        return prod(self._shape)

    @property
    def flat(self):
        """A 1-D view of a compact array (``a.flat[j] += eps`` writes through)."""
        if not self.is_compact():
            raise ValueError("NDArray.flat needs a compact array; call .compact() first")
        return self.reshape((self.size,))

    def __len__(self):
        if not self._shape:
            raise TypeError("len() of a 0-d NDArray")
        return self._shape[0]

    def __repr__(self):
        return f"NDArray({self.numpy()!r}, device={self.device})"

    def __str__(self):
        return str(self.numpy())

    # ---- conversion -------------------------------------------------------------------
    def numpy(self):
        """A numpy copy of the array."""
        return self._device.to_numpy(self._handle, self._shape, self._strides, self._offset)

    def __array__(self, dtype=None, copy=None):
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    def to(self, device):
        """This array on ``device`` (self when already there)."""
        if device == self._device:
            return self
        return NDArray(self.numpy(), device=device, dtype=self.dtype)

    def astype(self, dtype):
        """A copy converted to ``dtype``."""
        return NDArray(self.numpy(), device=self._device, dtype=dtype)

    def fill(self, value):
        """Set every element of this array (view) to ``value`` in place."""
        self._device.scalar_setitem(self.size, value, self._handle, self._shape, self._strides, self._offset)

    def copy(self):
        out = NDArray._fresh(self._shape, self._device, self._dtype)
        self._device.compact(self._handle, out._handle, self._shape, self._strides, self._offset)
        return out

    # ---- views ------------------------------------------------------------------------
    def is_compact(self):
        """True when the array is row-major contiguous and covers its whole buffer."""
        compact = self._compact
        if compact is None:
            compact = self._compact = self._strides == compact_strides(self._shape) and self.size == self._handle.size
        return compact

    def compact(self):
        """This array if compact, else a compact copy."""
        compact = self._compact
        if compact is None:
            compact = self.is_compact()
        return self if compact else self.copy()

    def as_strided(self, shape, strides):
        """A view with the given shape and strides (in elements) over the same buffer."""
        if len(shape) != len(strides):
            raise ValueError(f"as_strided: shape {tuple(shape)} and strides {tuple(strides)} differ in length")
        return NDArray.make(shape, strides=strides, device=self._device, handle=self._handle, offset=self._offset)

    def reshape(self, new_shape):
        """Reshape; a view for compact arrays, a copy otherwise. One -1 is inferred."""
        if isinstance(new_shape, (int, np.integer)):
            new_shape = (new_shape,)
        new_shape = tuple(int(s) for s in new_shape)
        if new_shape.count(-1) > 1:
            raise ValueError(f"reshape: shape {new_shape} has more than one -1")
        if -1 in new_shape:
            known = prod(s for s in new_shape if s != -1)
            if known == 0 or self.size % known:
                raise ValueError(f"reshape: cannot reshape array of shape {self._shape} into {new_shape}")
            new_shape = tuple(self.size // known if s == -1 else s for s in new_shape)
        if prod(new_shape) != self.size or any(s < 0 for s in new_shape):
            raise ValueError(f"reshape: cannot reshape array of shape {self._shape} "
                             f"(size {self.size}) into {new_shape} (size {prod(new_shape)})")
        src = self if self._strides == compact_strides(self._shape) else self.compact()
        return NDArray.make(new_shape, device=self._device, handle=src._handle, offset=src._offset)

    def permute(self, new_axes):
        """Reorder the axes (a view)."""
        new_axes = tuple(new_axes)
        if sorted(a % max(self.ndim, 1) for a in new_axes) != list(range(self.ndim)):
            raise ValueError(f"permute: axes {new_axes} are not a permutation of {self.ndim} axes")
        new_axes = tuple(a % self.ndim for a in new_axes)
        return self.as_strided(tuple(self._shape[a] for a in new_axes),
                               tuple(self._strides[a] for a in new_axes))

    def broadcast_to(self, new_shape):
        """A view of shape ``new_shape`` (numpy rules, leading axes may be added)."""
        new_shape = tuple(new_shape)
        lead = len(new_shape) - self.ndim
        if lead < 0:
            raise ValueError(f"broadcast_to: cannot broadcast shape {self._shape} to {new_shape}")
        strides = [0] * lead
        for old, new, stride in zip(self._shape, new_shape[lead:], self._strides):
            if old == new:
                strides.append(stride)
            elif old == 1:
                strides.append(0)
            else:
                raise ValueError(f"broadcast_to: cannot broadcast shape {self._shape} to {new_shape}")
        return self.as_strided(new_shape, tuple(strides))

    def flip(self, axes):
        """Reverse the order of elements along ``axes`` (a view with negative strides)."""
        axes = normalize_axes(axes, self.ndim, "axes", self._shape, "flip")
        strides, offset = list(self._strides), self._offset
        for ax in axes:
            if self._shape[ax] > 0:
                offset += (self._shape[ax] - 1) * strides[ax]
            strides[ax] = -strides[ax]
        return NDArray.make(self._shape, strides=tuple(strides), device=self._device,
                            handle=self._handle, offset=offset)

    def pad(self, axes):
        """Zero-pad: ``axes`` holds one (before, after) pair per dimension."""
        if len(axes) != self.ndim:
            raise ValueError(f"pad: need one (before, after) pair per axis of shape {self._shape}, got {axes}")
        new_shape = tuple(s + lo + hi for s, (lo, hi) in zip(self._shape, axes))
        out = full(new_shape, 0.0, dtype=self.dtype, device=self._device)
        out[tuple(slice(lo, lo + s) for s, (lo, _) in zip(self._shape, axes))] = self
        return out

    # ---- indexing ---------------------------------------------------------------------
    def process_slice(self, sl, dim):
        """A slice with None filled in and negative bounds resolved, for axis ``dim``."""
        start, stop, step = sl.indices(self._shape[dim])
        return slice(start, stop, step)

    def __getitem__(self, idxs):
        """Course indexing: ints keep their axis with length 1; slices may have any step."""
        if not isinstance(idxs, tuple):
            idxs = (idxs,)
        if len(idxs) > self.ndim:
            raise IndexError(f"too many indices ({len(idxs)}) for an array of shape {self._shape}")
        idxs = idxs + (slice(None),) * (self.ndim - len(idxs))
        shape, strides, offset = [], [], self._offset
        for dim, idx in enumerate(idxs):
            n = self._shape[dim]
            if isinstance(idx, (int, np.integer)):
                i = int(idx)
                if not -n <= i < n:
                    raise IndexError(f"index {i} is out of bounds for axis {dim} with size {n}")
                idx = slice(i % n, i % n + 1, 1)
            if not isinstance(idx, slice):
                raise TypeError(f"NDArray index must be ints and slices, got {type(idx).__name__}")
            start, stop, step = idx.indices(n)
            length = len(range(start, stop, step))
            shape.append(length)
            strides.append(self._strides[dim] * step)
            if length:
                offset += start * self._strides[dim]
        return NDArray.make(tuple(shape), strides=tuple(strides), device=self._device,
                            handle=self._handle, offset=offset)

    def basic_index(self, idx):
        """numpy basic indexing (ints drop the axis, slices, ``...``, ``None``) as a view."""
        if not isinstance(idx, tuple):
            idx = (idx,)
        n_real = sum(1 for i in idx if i is not None and i is not Ellipsis)
        if sum(1 for i in idx if i is Ellipsis) > 1:
            raise IndexError("an index can only have a single ellipsis ('...')")
        if n_real > self.ndim:
            raise IndexError(f"too many indices ({n_real}) for a tensor of shape {self._shape}")
        expanded = []
        for i in idx:
            if i is Ellipsis:
                expanded.extend([slice(None)] * (self.ndim - n_real))
            else:
                expanded.append(i)
        if not any(i is Ellipsis for i in idx):  # not `in`: it compares arrays with ==
            expanded.extend([slice(None)] * (self.ndim - n_real))
        shape, strides, offset, dim = [], [], self._offset, 0
        for i in expanded:
            if i is None:
                shape.append(1)
                strides.append(0)
                continue
            n = self._shape[dim]
            if isinstance(i, bool):  # an int to Python, a mask to numpy: refuse rather than guess
                raise TypeError("boolean indices (masks) are not supported; use ints, slices, None and ...")
            if isinstance(i, (int, np.integer)):
                if not -n <= i < n:
                    raise IndexError(f"index {i} is out of bounds for axis {dim} with size {n}")
                offset += (int(i) % n) * self._strides[dim]
            elif isinstance(i, slice):
                start, stop, step = i.indices(n)
                length = len(range(start, stop, step))
                shape.append(length)
                strides.append(self._strides[dim] * step)
                if length:
                    offset += start * self._strides[dim]
            else:
                raise TypeError(f"only ints, slices, None and ... are valid indices, got {type(i).__name__}")
            dim += 1
        return NDArray.make(tuple(shape), strides=tuple(strides), device=self._device,
                            handle=self._handle, offset=offset)

    def __setitem__(self, idxs, other):
        self._assign(self[idxs], other)

    def _assign(self, view, other):
        """Write ``other`` (NDArray, numpy array or scalar) into ``view`` of this buffer."""
        if isinstance(other, Number):
            self._device.scalar_setitem(view.size, other, self._handle, view.shape, view.strides, view.offset)
            return
        if not isinstance(other, NDArray):
            other = NDArray(np.asarray(other), device=self._device, dtype=self.dtype)
        if other.device != self._device:
            raise ValueError(f"setitem: value is on {other.device} but the array is on {self._device}")
        if other.shape != view.shape:
            if other.size == view.size:
                other = other.reshape(view.shape)
            else:
                other = other.broadcast_to(view.shape)
        if other.dtype != self.dtype:
            other = other.astype(self.dtype)
        self._device.ewise_setitem(other.compact()._handle, self._handle, view.shape, view.strides, view.offset)

    # ---- elementwise ------------------------------------------------------------------
    def _binary(self, other, ewise, scalar, name, out=None):
        """``ewise(self, other)`` or ``scalar(self, other)`` into a new array (or into ``out``)."""
        device, dtype = self._device, self._dtype
        if isinstance(other, NDArray):
            if (other._device is device and other._dtype == dtype and other._shape == self._shape
                    and self._compact and other._compact and out is None):
                # The common case, checked in one go: same device, dtype and shape, both compact.
                out = NDArray._fresh(self._shape, device, dtype)
                ewise(self._handle, other._handle, out._handle)
                return out
            if other._device is not device and other._device != device:
                raise ValueError(f"{name}: operands are on different devices ({device} and {other._device})")
            if other._dtype != dtype:
                raise TypeError(f"{name}: operands have different dtypes ({dtype} and {other.dtype})")
            a, b = self, other
            if a._shape != b._shape:
                try:
                    shape = broadcast_shapes(a._shape, b._shape)
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
                a, b = a.broadcast_to(shape), b.broadcast_to(shape)
            if out is None:
                out = NDArray._fresh(a._shape, device, dtype)
            ewise(a.compact()._handle, b.compact()._handle, out._handle)
        else:
            if out is None:
                out = NDArray._fresh(self._shape, device, dtype)
            scalar(self.compact()._handle, other, out._handle)
        return out

    def _kernel(self, name):
        return getattr(self._device, name)

    def _unary(self, name, out=None):
        if out is None:
            out = NDArray._fresh(self._shape, self._device, self._dtype)
        self._kernel(name)(self.compact()._handle, out._handle)
        return out

    # ---- in place (optimisers, gradient accumulation) ----------------------------------
    # The kernels take an output buffer; giving them this array's own buffer updates it
    # without allocating. Elementwise kernels read and write the same index, so aliasing
    # an input with the output is safe. Only for compact arrays of the operands' shape.
    def _check_inplace(self, other, name):
        if not self.is_compact():
            raise ValueError(f"{name}: in-place update needs a compact array")
        if isinstance(other, NDArray) and other._shape != self._shape:
            raise ValueError(f"{name}: in-place operand of shape {other._shape} for an array of shape {self._shape}")

    def iadd(self, other):
        """``self += other`` in place (other: an NDArray of this shape, or a scalar); returns self."""
        self._check_inplace(other, "iadd")
        return self._binary(other, self._device.ewise_add, self._device.scalar_add, "iadd", out=self)

    def imul(self, other):
        """``self *= other`` in place; returns self."""
        self._check_inplace(other, "imul")
        return self._binary(other, self._device.ewise_mul, self._device.scalar_mul, "imul", out=self)

    def isub(self, other):
        """``self -= other`` in place (other: an NDArray of this shape); returns self."""
        self._check_inplace(other, "isub")
        sub = self._device.optional("ewise_sub")
        if sub is not None:
            return self._binary(other, sub, None, "isub", out=self)
        return self.iadd(-other)

    def idiv(self, other):
        """``self /= other`` in place; returns self."""
        self._check_inplace(other, "idiv")
        return self._binary(other, self._device.ewise_div, self._device.scalar_div, "idiv", out=self)

    def isqrt(self):
        """``self = sqrt(self)`` in place; returns self."""
        self._check_inplace(None, "isqrt")
        if self._device.optional("ewise_sqrt") is not None:
            return self._unary("ewise_sqrt", out=self)
        return self._binary(0.5, None, self._device.scalar_power, "isqrt", out=self)

    def __add__(self, other):
        return self._binary(other, self._device.ewise_add, self._device.scalar_add, "add")

    __radd__ = __add__

    def __sub__(self, other):
        sub = self._device.optional("ewise_sub")
        if isinstance(other, NDArray) and sub is not None:
            return self._binary(other, sub, None, "subtract")
        return self + (-other)

    def __rsub__(self, other):
        rsub = self._device.optional("scalar_rsub")
        if rsub is not None:
            return self._binary(other, None, rsub, "subtract")
        return (-self) + other

    def __mul__(self, other):
        return self._binary(other, self._device.ewise_mul, self._device.scalar_mul, "multiply")

    __rmul__ = __mul__

    def __truediv__(self, other):
        return self._binary(other, self._device.ewise_div, self._device.scalar_div, "divide")

    def __rtruediv__(self, other):
        rdiv = self._device.optional("scalar_rdiv")
        if rdiv is not None:
            return self._binary(other, None, rdiv, "divide")
        return (self ** -1.0) * other

    def __neg__(self):
        if self._device.optional("ewise_neg") is not None:
            return self._unary("ewise_neg")
        return self * -1.0

    def __pow__(self, other):
        if isinstance(other, NDArray):
            power = self._device.optional("ewise_power")
            if power is not None:
                return self._binary(other, power, None, "power")
            return (self.log() * other).exp()
        return self._binary(other, None, self._device.scalar_power, "power")

    def maximum(self, other):
        return self._binary(other, self._device.ewise_maximum, self._device.scalar_maximum, "maximum")

    def __eq__(self, other):
        return self._binary(other, self._device.ewise_eq, self._device.scalar_eq, "eq")

    def __ge__(self, other):
        return self._binary(other, self._device.ewise_ge, self._device.scalar_ge, "ge")

    def __ne__(self, other):
        return 1 - (self == other)

    def __gt__(self, other):
        return (self >= other) * (self != other)

    def __lt__(self, other):
        return 1 - (self >= other)

    def __le__(self, other):
        return 1 - (self > other)

    __hash__ = None

    def log(self):
        return self._unary("ewise_log")

    def exp(self):
        return self._unary("ewise_exp")

    def tanh(self):
        return self._unary("ewise_tanh")

    def sqrt(self):
        if self._device.optional("ewise_sqrt") is not None:
            return self._unary("ewise_sqrt")
        return self ** 0.5

    def relu(self):
        if self._device.optional("ewise_relu") is not None:
            return self._unary("ewise_relu")
        return self.maximum(0.0)

    def relu_backward(self, grad):
        """``grad`` where this array (a ReLU's input or output) is positive, else 0."""
        kernel = self._device.optional("ewise_relu_backward")
        if kernel is None:
            return grad * (self > 0.0)
        if grad._shape != self._shape:
            raise ValueError(f"relu_backward: gradient of shape {grad._shape} for an array of shape {self._shape}")
        out = NDArray._fresh(self._shape, self._device, self._dtype)
        kernel(self.compact()._handle, grad.compact()._handle, out._handle)
        return out

    def sigmoid(self):
        if self._device.optional("ewise_sigmoid") is not None:
            return self._unary("ewise_sigmoid")
        return ((self * 0.5).tanh() + 1.0) * 0.5

    # ---- matmul -----------------------------------------------------------------------
    def _check_matmul_operand(self, other, name):
        if not isinstance(other, NDArray):
            raise TypeError(f"{name}: expected an NDArray, got {type(other).__name__}")
        if other._device != self._device:
            raise ValueError(f"{name}: operands are on different devices ({self._device} and {other._device})")
        if other.dtype != self.dtype:
            raise TypeError(f"{name}: operands have different dtypes ({self.dtype} and {other.dtype})")

    def __matmul__(self, other):
        """Matrix product; leading (batch) axes broadcast as in numpy."""
        self._check_matmul_operand(other, "matmul")
        if self.ndim < 2 or other.ndim < 2:
            raise ValueError(f"matmul: operands need at least 2 dimensions, "
                             f"got shapes {self._shape} and {other._shape}")
        m, n = self._shape[-2:]
        n2, p = other._shape[-2:]
        if n != n2:
            raise ValueError(f"matmul: shapes {self._shape} and {other._shape} are not aligned ({n} != {n2})")
        if self.ndim == 2 and other.ndim == 2:
            out = NDArray.make((m, p), device=self._device, dtype=self.dtype)
            self._device.matmul(self.compact()._handle, other.compact()._handle, out._handle, m, n, p)
            return out
        batch_shape = broadcast_shapes(self._shape[:-2], other._shape[:-2])
        a = self.broadcast_to(batch_shape + (m, n)).compact()
        b = other.broadcast_to(batch_shape + (n, p)).compact()
        batch = prod(batch_shape)
        out = NDArray.make(batch_shape + (m, p), device=self._device, dtype=self.dtype)
        batched = self._device.optional("matmul_batched")
        if batched is not None:
            batched(a._handle, b._handle, out._handle, batch, m, n, p)
            return out
        # Core fallback from the required 2-D kernel: one call per matrix in the batch.
        a3, b3, o3 = a.reshape((batch, m, n)), b.reshape((batch, n, p)), out.reshape((batch, m, p))
        for i in range(batch):
            o3[i] = a3[i].compact().reshape((m, n)) @ b3[i].compact().reshape((n, p))
        return out

    def matmul_tn(self, other):
        """``transpose(self) @ other`` for a 2-D ``self`` (n, m) and ``other`` (n, p): a weight gradient
        ``x^T @ g`` without a transposed copy of ``x``.

        One call to the backend's fused ``matmul_tn`` kernel, else (or when the transposed view is
        compact already) a compact copy of the transpose and a matmul.
        """
        self._check_matmul_operand(other, "matmul_tn")
        if self.ndim != 2 or other.ndim != 2 or self._shape[0] != other._shape[0]:
            raise ValueError(f"matmul_tn: shapes {self._shape} and {other._shape} need a (n, m) and b (n, p)")
        (n, m), p = self._shape, other._shape[1]
        transposed = self.permute((1, 0))
        kernel = self._device.optional("matmul_tn")
        if kernel is None or transposed.is_compact():
            return transposed.compact() @ other
        out = NDArray._fresh((m, p), self._device, self._dtype)
        kernel(self.compact()._handle, other.compact()._handle, out._handle, m, n, p)
        return out

    def matmul_bias(self, other, bias):
        """``self @ other + bias`` for 2-D operands and a bias of ``other.shape[1]`` elements (any shape).

        One pass with the backend's optional ``matmul_bias`` kernel, else a matmul and a broadcast add.
        """
        m, n = self._shape
        p = other._shape[1]
        if other._shape[0] != n or bias.size != p:
            raise ValueError(f"matmul_bias: shapes {self._shape} @ {other._shape} + bias {bias._shape} do not fit")
        kernel = self._device.optional("matmul_bias")
        if kernel is None:
            return self @ other + bias.compact().reshape((1, p)).broadcast_to((m, p))
        out = NDArray._fresh((m, p), self._device, self._dtype)
        kernel(self.compact()._handle, other.compact()._handle, bias.compact()._handle, out._handle, m, n, p)
        return out

    # ---- reductions -------------------------------------------------------------------
    def _reduce(self, axis, keepdims, kernel, name):
        shape = self._shape
        key = (shape, axis if not isinstance(axis, list) else tuple(axis), keepdims)
        try:
            plan = _REDUCTIONS.get(key) or _reduction_plan(key)
        except TypeError:  # an unhashable axis (a numpy array): work the plan out uncached
            plan = _reduction_plan(key)
        axes, keep, final, rows, cols, leading, trailing = plan
        if name == "max" and rows == 0:
            raise ValueError(f"max: zero-size reduction over axis {axis} of shape {shape}")
        # The result is compact either way: allocate it in its final (kept-dims or not) shape.
        out = NDArray._fresh(final, self._device, self._dtype)
        if name == "sum" and leading and self.is_compact():
            # Summing leading axes (a bias gradient): a row of ones times the (rows, cols)
            # matrix, instead of a transposing copy followed by reduce_sum.
            self._device.matmul(_ones_row(self._device, rows, self._dtype)._handle, self._handle,
                                out._handle, 1, rows, cols)
        else:
            # Reduced axes last (no view needed when they already are), then contiguous groups.
            view = self if trailing else self.permute(keep + axes)
            kernel(view.compact()._handle, out._handle, rows)
        return out

    def sum(self, axis=None, keepdims=False):
        """Sum over ``axis`` (int, tuple or None for all)."""
        return self._reduce(axis, keepdims, self._device.reduce_sum, "sum")

    def max(self, axis=None, keepdims=False):
        """Maximum over ``axis`` (int, tuple or None for all)."""
        return self._reduce(axis, keepdims, self._device.reduce_max, "max")


_REDUCTIONS = {}  # (shape, axis, keepdims) -> the plan below


def _reduction_plan(key):
    """``(axes, keep, final shape, rows, cols, leading, trailing)`` of a reduction, cached by ``key``.

    ``rows`` is the number of elements reduced into each output, ``cols`` the number of outputs;
    ``leading``: the reduced axes are the first ones (and something is kept, more than one row);
    ``trailing``: they are the last ones (no permute needed). Training repeats a few shapes, and
    working this out cost more than the kernel for small arrays.
    """
    shape, axis, keepdims = key
    ndim = len(shape)
    axes = normalize_axes(axis, ndim, "axis", shape)
    keep = tuple(a for a in range(ndim) if a not in axes)
    out_shape = tuple(shape[a] for a in keep)
    final = tuple(1 if a in axes else s for a, s in enumerate(shape)) if keepdims else out_shape
    rows = prod(shape[a] for a in axes)
    leading = bool(keep) and axes == tuple(range(len(axes))) and rows > 1
    plan = (axes, keep, final, rows, prod(out_shape), leading, axes == tuple(range(len(keep), ndim)))
    try:
        hash(key)
    except TypeError:  # an unhashable axis argument: nothing to cache
        return plan
    if len(_REDUCTIONS) > 4096:
        _REDUCTIONS.clear()
    _REDUCTIONS[key] = plan
    return plan


_ONES = {}


def _ones_row(device, n, dtype):
    """A cached (1, n) array of ones (read-only by convention), for sums done as matmuls."""
    key = (device, n, dtype)
    ones = _ONES.get(key)
    if ones is None:
        if len(_ONES) > 64:  # many distinct batch sizes: start again rather than grow
            _ONES.clear()
        ones = _ONES[key] = full((1, n), 1.0, dtype=dtype, device=device)
    return ones


# ---- constructors -------------------------------------------------------------------------
def array(obj, dtype="float32", device=None):
    """An NDArray holding a copy of ``obj``."""
    return NDArray(obj, device=device, dtype=dtype)


def empty(shape, dtype="float32", device=None):
    """An uninitialised NDArray of ``shape``."""
    return NDArray.make(shape, device=device, dtype=_dtype_name(dtype))


def full(shape, fill_value, dtype="float32", device=None):
    """An NDArray of ``shape`` filled with ``fill_value``."""
    out = empty(shape, dtype, device)
    out._device.fill(out._handle, fill_value)
    return out
