"""NDArray: an n-dimensional strided view over one backend buffer.

All view logic lives here, once, for every backend: permute, broadcast, slicing, flip and
reshape of compact arrays change (shape, strides, offset) and share the buffer; anything
that needs real work calls one flat-buffer kernel of the backend protocol.
"""
import math
import operator
from numbers import Number

import numpy as np

from .. import _dlpack
from .. import _dtypes
from .. import backends

_DEFAULT_DTYPE = "float32"
_FLOATS = _dtypes.FLOATS
_BOOL = "bool"

#: Binary ops by name: (elementwise kernel, scalar kernel or None, dtype rule). Rules: "arith" works
#: on every dtype but bool, whose add/multiply are logical or/and (_BOOL_ARITH); "float" computes in
#: floats (integers become float32 first, as PyTorch's true division does); "any" runs on every
#: dtype; "bits" needs integer or bool operands; "compare" writes bool.
_RULES = {
    "add": ("ewise_add", "scalar_add", "arith"),
    "subtract": ("ewise_sub", None, "arith"),
    "multiply": ("ewise_mul", "scalar_mul", "arith"),
    "divide": ("ewise_div", "scalar_div", "float"),
    "power": ("ewise_power", "scalar_power", "float"),
    "maximum": ("ewise_maximum", "scalar_maximum", "any"),
    "minimum": ("ewise_minimum", "scalar_minimum", "any"),
    "and": ("ewise_and", None, "bits"),
    "or": ("ewise_or", None, "bits"),
    "xor": ("ewise_xor", None, "bits"),
}
_RULES.update({op: ("ewise_" + op, "scalar_" + op, "compare") for op in ("eq", "ne", "lt", "le", "gt", "ge")})
_BOOL_ARITH = {"add": "ewise_or", "multiply": "ewise_and"}
_FLOAT_UNARY = frozenset(("ewise_log", "ewise_exp", "ewise_tanh", "ewise_sqrt", "ewise_sigmoid"))


def _scalar_operand(value, name):
    """``value`` as a Python scalar (numpy scalars and one-element arrays too), or a clear TypeError."""
    if isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (np.generic, np.ndarray)) and np.size(value) == 1 and value.dtype.kind in "biuf":
        return value.item() if isinstance(value, np.generic) else value.reshape(-1)[0].item()
    raise TypeError(f"{name}: expected an NDArray or a real Python number, got {type(value).__name__}"
                    + (" (wrap arrays with nd.array(...))" if isinstance(value, (list, tuple, np.ndarray)) else ""))


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
    return (_LAYOUTS.get(shape) or _compact_layout(shape))[0]


_MAX_ELEMENTS = 1 << 58  #: the largest shape (in elements, and per axis) an NDArray may have


#: Binary ops the backend's ``ewise_binary_strided`` kernel computes, by the name ``_binary`` gets.
_STRIDED_OPS = {"add": "add", "subtract": "sub", "multiply": "mul", "divide": "div"}

_VALID_SHAPES = set()  #: shapes _check_shape has accepted (tuples of plain ints): reshape's hot path


def _check_shape(shape, op):
    """``shape`` as a tuple of ints >= 0, or a ValueError naming ``op``."""
    # A float or bool equals an int of its value ((2.0,) == (2,)): the types are checked too.
    if type(shape) is tuple and shape in _VALID_SHAPES and all(type(s) is int for s in shape):
        return shape
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        out = tuple(int(s) for s in shape if isinstance(s, (int, np.integer)) and not isinstance(s, bool))
    except TypeError:
        out = None
    if out is None or len(out) != len(tuple(shape)) or any(s < 0 for s in out):
        raise ValueError(f"{op}: shape must be a tuple of ints >= 0, got {shape!r}")
    # Beyond this no backend can index the view (numpy's sizes are 64-bit byte counts, needle-cpu's
    # element counts stop at 2**58): refuse here, not with an OverflowError when it is read. The
    # nonzero dimensions count even in an empty shape: strides are products of them.
    if prod(s for s in out if s) > _MAX_ELEMENTS:
        raise ValueError(f"{op}: shape {out} has more than 2**58 elements")
    if len(_VALID_SHAPES) < 4096:
        _VALID_SHAPES.add(out)
    return out


def _check_view(op, shape, strides, offset, size):
    """Raise ValueError unless the view (shape, strides, offset) lies inside a buffer of ``size`` elements."""
    if len(strides) != len(shape):
        raise ValueError(f"{op}: shape {shape} and strides {tuple(strides)} differ in length")
    if not isinstance(offset, (int, np.integer)) or offset < 0:
        raise ValueError(f"{op}: offset must be an int >= 0, got {offset!r}")
    if any(not isinstance(st, (int, np.integer)) or abs(int(st)) > _MAX_ELEMENTS for st in strides):
        # even for an empty view: backends multiply strides by the item size (numpy: an OverflowError)
        raise ValueError(f"{op}: strides must be ints in [-2**58, 2**58], got {tuple(strides)}")
    if 0 in shape:
        return
    lo = hi = int(offset)
    for n, st in zip(shape, strides):
        reach = (n - 1) * int(st)
        if reach < 0:
            lo += reach
        else:
            hi += reach
    if lo < 0 or hi >= size:
        raise ValueError(f"{op}: the view shape {shape}, strides {tuple(strides)}, offset {offset} reaches outside "
                         f"its buffer of {size} elements")


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
    if not isinstance(axes, (tuple, list)) or not all(isinstance(a, (int, np.integer)) for a in axes):
        raise TypeError(f"{op + ': ' if op else ''}{name} must be an int, a tuple of ints or None, got {given!r}")
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
_PERMUTATIONS = {}  #: (axes as given, ndim) -> the checked, non-negative axes of permute
_PICKERS = {}  #: checked axes of two or more -> operator.itemgetter of them (permute's hot path)


def _dtype_name(dtype):
    """``dtype``'s name (None stays None)."""
    return None if dtype is None else _dtypes.name(dtype)


def _arith(ewise, scalar, name):
    """The method ``a <op> b`` of NDArray for the kernels ``ewise`` and ``scalar`` (names; ``scalar`` None:
    arrays only): ``_binary`` with the common case inlined, since for a small array the Python layers cost
    more than the kernel. That case is a compact float array and a compact array of its device, dtype and
    shape, or a Python float or int, with the kernels already looked up (``device._kernels``, which
    ``kernel()`` fills and ``_use_module`` empties, so that needle.jit's recorder still sees each launch)."""
    def method(self, other):
        dtype = self._dtype
        if self._compact and dtype in _FLOATS:
            kind = type(other)
            if kind is NDArray:
                kernel = (self._device._kernels.get(ewise) if other._compact and other._device is self._device
                          and other._dtype == dtype and other._shape == self._shape else None)
                operand = other._handle
            elif (kind is float or kind is int) and scalar is not None:
                kernel, operand = self._device._kernels.get(scalar), other
            else:
                kernel = None
            alloc = self._device._kernels.get("Array") if kernel is not None else None
            if alloc is not None:
                shape = self._shape
                layout = _LAYOUTS.get(shape) or _compact_layout(shape)
                out = _new(NDArray)  # NDArray._fresh, inlined
                out._shape, out._strides, out._offset, out._device = shape, layout[0], 0, self._device
                out._handle, out._dtype, out._compact = alloc(layout[1], dtype), dtype, True
                kernel(self._handle, operand, out._handle)
                return out
        return self._binary(other, ewise, scalar, name)

    method.__name__ = method.__qualname__ = f"_{name}"
    method.__doc__ = f"Elementwise {name} of this array and an NDArray or a Python scalar (broadcasting)."
    return method


class NDArray:
    """A strided n-dimensional array on a device.

    ``NDArray(obj, device=None, dtype=None)`` copies a numpy array, a nested list, a scalar or
    another NDArray. Without ``dtype`` the dtype is inferred as numpy infers it (an array keeps its
    dtype; Python ints give int64, bools bool), except that float64 becomes float32 on a device
    without float64. Unsupported values (None, complex, float16, objects) are a TypeError.
    """

    # _compact caches is_compact() (None: not computed yet); _dtype caches the buffer's dtype (a
    # native property read costs ~0.3 us, several per op); the fields never change after creation.
    __slots__ = ("_shape", "_strides", "_offset", "_device", "_handle", "_dtype", "_compact", "__weakref__")

    def __init__(self, other, device=None, dtype=None):
        if isinstance(other, NDArray):
            device = device or other.device
            dtype = _dtypes.name(dtype) if dtype is not None else other.dtype
            if device == other.device:
                src = other.copy() if dtype == other.dtype else other.astype(dtype)
            else:
                src = NDArray(other.numpy(), device=device, dtype=dtype)
            self._init_from(src)
            return
        device = device or backends.default_device()
        if dtype is None:
            dtype = _dtypes.of_value(other, "float64" if "float64" in device.dtypes else _DEFAULT_DTYPE)
        else:
            dtype = _dtypes.name(dtype)
        device.check_dtype(dtype)
        array = np.asarray(other)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"cannot make a {dtype} array from {type(other).__name__} with numpy dtype "
                            f"{array.dtype} (complex, object and string values are not converted)")
        with np.errstate(invalid="ignore", over="ignore"):  # NaN -> int: unspecified, as in the cast kernel
            array = np.asarray(array, dtype=dtype, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
        out = NDArray.make(array.shape, device=device, dtype=dtype)
        device.kernel("from_numpy")(array, out._handle)
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
        """Create an NDArray over ``handle`` (or over a new buffer when it is None).

        A view over a given ``handle`` is checked to stay inside it (any backend: a view that
        reaches outside its buffer is a ValueError, never a read of foreign memory).
        """
        shape = _check_shape(shape, "make")
        if handle is not None:
            _check_view("make", shape, compact_strides(shape) if strides is None else strides, offset, handle.size)
        return NDArray._view(shape, strides, device, handle, offset, dtype)

    @staticmethod
    def _view(shape, strides=None, device=None, handle=None, offset=0, dtype=_DEFAULT_DTYPE):
        """``make`` without the checks, for views this module derives from valid ones."""
        array = object.__new__(NDArray)
        array._shape = shape = tuple(shape)
        array._strides = compact_strides(shape) if strides is None else tuple(strides)
        array._offset = offset
        array._device = device if device is not None else backends.default_device()
        array._compact = None
        if handle is None:
            array._device.check_dtype(dtype)
            handle = array._device.kernel("Array")(prod(array._shape), dtype)
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
        array._handle = (device._kernels.get("Array") or device.kernel("Array"))(layout[1], dtype)
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
    def numpy(self, copy=True):
        """A numpy copy of the array; ``copy=False``: a numpy array sharing its memory (host backends,
        no negative stride), else ValueError."""
        if not copy:
            return _dlpack.to_numpy_view(self)
        return self._device.kernel("to_numpy")(self._handle, self._shape, self._strides, self._offset)

    def __dlpack__(self, stream=None, max_version=None, dl_device=None, copy=None):
        """A DLPack capsule sharing this array's memory (see :mod:`needle._dlpack`)."""
        return _dlpack.export(self, stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)

    def __dlpack_device__(self):
        """``(device_type, index)`` of this array's memory, as DLPack numbers them."""
        return _dlpack.device_of(self)

    def __array__(self, dtype=None, copy=None):
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    def to(self, device):
        """This array on ``device`` (self when already there)."""
        if device == self._device:
            return self
        return NDArray(self.numpy(), device=device, dtype=self.dtype)

    def astype(self, dtype):
        """A copy converted to ``dtype`` (the backend's cast kernel; float to integer truncates)."""
        dtype = _dtypes.name(dtype)
        if dtype == self._dtype:
            return self.copy()
        device = self._device
        device.check_dtype(dtype)
        cast = device.optional("cast") if device.protocol >= 2 else None
        if cast is None:  # protocol 1: float to float, on the host
            return NDArray(self.numpy().astype(dtype), device=device, dtype=dtype)
        out = NDArray._fresh(self._shape, device, dtype)
        cast(self.compact()._handle, out._handle)
        return out

    def fill(self, value):
        """Set every element of this array (view) to ``value`` in place."""
        self._device.kernel("scalar_setitem")(self.size, value, self._handle, self._shape, self._strides, self._offset)

    def copy(self):
        out = NDArray._fresh(self._shape, self._device, self._dtype)
        self._device.kernel("compact")(self._handle, out._handle, self._shape, self._strides, self._offset)
        return out

    # ---- views ------------------------------------------------------------------------
    def is_compact(self):
        """True when the array is row-major contiguous and covers its whole buffer."""
        compact = self._compact
        if compact is None:
            compact = self._compact = (self._offset == 0 and self._strides == compact_strides(self._shape)
                                       and self.size == self._handle.size)
        return compact

    def compact(self):
        """This array if compact, else a compact copy."""
        compact = self._compact
        if compact is None:
            compact = self.is_compact()
        return self if compact else self.copy()

    def _is_dense(self):
        """True when this view covers its whole buffer once, in any axis order (a permuted compact
        array, e.g. an NCHW view of NHWC data): an elementwise kernel may then run on the buffer
        directly and its result take these strides, with no transposing copy."""
        if self._offset != 0 or self.size != self._handle.size:
            return False
        expected = 1
        for size, stride in sorted(zip(self._shape, self._strides), key=lambda d: d[1]):
            if size == 1:
                continue
            if stride != expected:
                return False
            expected *= size
        return True

    def _fresh_like(self):
        """A new array of this shape and dtype laid out with this (dense) array's strides."""
        return NDArray._view(self._shape, self._strides, self._device, self._device.Array(self.size, self._dtype))

    def as_strided(self, shape, strides):
        """A view with the given shape and strides (in elements) over the same buffer; a view that
        would reach outside the buffer is a ValueError."""
        shape = _check_shape(shape, "as_strided")
        strides = tuple(strides)
        if len(shape) != len(strides):
            raise ValueError(f"as_strided: shape {shape} and strides {strides} differ in length")
        _check_view("as_strided", shape, strides, self._offset, self._handle.size)
        return NDArray._view(shape, strides, self._device, self._handle, self._offset)

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
        _check_shape(new_shape, "reshape")  # a zero-size array takes any shape with a 0: bound the others
        src = self if self._strides == compact_strides(self._shape) else self.compact()
        return NDArray._view(new_shape, None, self._device, src._handle, src._offset)

    def permute(self, new_axes):
        """Reorder the axes (a view); ``new_axes`` is a permutation of the axes (negative ones count
        from the end)."""
        new_axes = tuple(new_axes)
        ndim = len(self._shape)
        try:  # checked before (training repeats a few); ints only: (1.0, 0.0) == (1, 0) but is refused
            known = _PERMUTATIONS.get((new_axes, ndim)) if type(sum(new_axes)) is int else None
        except TypeError:  # not numbers: the check below says so
            known = None
        if known is not None:
            pick = _PICKERS.get(known)
            if pick is not None:  # two or more axes: the reordered tuples without Python loops
                return NDArray._view(pick(self._shape), pick(self._strides), self._device, self._handle, self._offset)
            return NDArray._view(tuple(self._shape[a] for a in known), tuple(self._strides[a] for a in known),
                                 self._device, self._handle, self._offset)
        if (not all(isinstance(a, (int, np.integer)) and -ndim <= a < ndim for a in new_axes)
                or sorted(a % ndim for a in new_axes) != list(range(ndim))):
            raise ValueError(f"permute: axes {new_axes} are not a permutation of the {ndim} axes "
                             f"of shape {self._shape}")
        key, new_axes = (new_axes, ndim), tuple(int(a) % ndim for a in new_axes)
        if len(_PERMUTATIONS) > 4096:
            _PERMUTATIONS.clear()
            _PICKERS.clear()
        _PERMUTATIONS[key] = new_axes
        if ndim >= 2:  # itemgetter of one index gives the item, not a 1-tuple: only for two or more
            _PICKERS[new_axes] = operator.itemgetter(*new_axes)
        return NDArray._view(tuple(self._shape[a] for a in new_axes), tuple(self._strides[a] for a in new_axes),
                             self._device, self._handle, self._offset)

    def broadcast_to(self, new_shape):
        """A view of shape ``new_shape`` (numpy rules, leading axes may be added)."""
        new_shape = _check_shape(new_shape, "broadcast_to")
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
        return NDArray._view(new_shape, tuple(strides), self._device, self._handle, self._offset)

    def flip(self, axes):
        """Reverse the order of elements along ``axes`` (a view with negative strides)."""
        axes = normalize_axes(axes, self.ndim, "axes", self._shape, "flip")
        strides, offset = list(self._strides), self._offset
        for ax in axes:
            if self._shape[ax] > 0:
                offset += (self._shape[ax] - 1) * strides[ax]
            strides[ax] = -strides[ax]
        return NDArray._view(self._shape, tuple(strides), self._device, self._handle, offset)

    def pad(self, axes):
        """Zero-pad: ``axes`` holds one (before, after) pair of ints >= 0 per dimension."""
        if not isinstance(axes, (tuple, list)) or not all(
                isinstance(p, (tuple, list)) and len(p) == 2 and all(isinstance(w, (int, np.integer)) and w >= 0
                                                                     for w in p) for p in axes):
            raise ValueError(f"pad: axes must be one (before, after) pair of ints >= 0 per axis, got {axes!r}")
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
        return NDArray._view(tuple(shape), tuple(strides), self._device, self._handle, offset)

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
        return NDArray._view(tuple(shape), tuple(strides), self._device, self._handle, offset)

    def __setitem__(self, idxs, other):
        self._assign(self[idxs], other)

    def _assign(self, view, other):
        """Write ``other`` (NDArray, numpy array or scalar) into ``view`` of this buffer."""
        if isinstance(other, Number):
            self._device.kernel("scalar_setitem")(view.size, other, self._handle, view.shape, view.strides, view.offset)
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
        self._device.kernel("ewise_setitem")(other.compact()._handle, self._handle, view.shape, view.strides,
                                             view.offset)

    # ---- elementwise ------------------------------------------------------------------
    # Operands of different dtypes are promoted (PyTorch's rule, needle._dtypes) by the cast
    # kernel before the op; each op then applies its own dtype rule (_RULES): true division and
    # transcendental functions work in floats, bool arithmetic is logical, bitwise ops refuse
    # floats, comparisons give bool.
    def _binary(self, other, ewise, scalar, name, out=None):
        """Kernel ``ewise(self, other)`` or ``scalar(self, other)`` (names) into a new array (or into ``out``)."""
        device, dtype = self._device, self._dtype
        if isinstance(other, NDArray):
            if (other._device is device and other._dtype == dtype and other._shape == self._shape
                    and self._compact and other._compact and out is None and dtype in _FLOATS):
                # The common case, checked in one go: same device, float dtype and shape, both compact.
                out = NDArray._fresh(self._shape, device, dtype)
                device.kernel(ewise)(self._handle, other._handle, out._handle)
                return out
            if other._device is not device and other._device != device:
                raise ValueError(f"{name}: operands are on different devices ({device} and {other._device})")
            if other._dtype != dtype or dtype not in _FLOATS:
                return self._promoted(other, name, out)
            a, b = self, other
            if (out is None and a._shape == b._shape and a._strides == b._strides and not a.is_compact()
                    and a._is_dense() and b._is_dense()):
                out = a._fresh_like()  # two views of one permuted layout: no transposing copies
                device.kernel(ewise)(a._handle, b._handle, out._handle)
                return out
            if a._shape != b._shape:
                try:
                    shape = broadcast_shapes(a._shape, b._shape)
                except ValueError as exc:
                    raise ValueError(f"{name}: {exc}") from None
                a, b = a.broadcast_to(shape), b.broadcast_to(shape)
            if out is None:
                out = NDArray._fresh(a._shape, device, dtype)
            op = _STRIDED_OPS.get(name)
            strided = device.fused("ewise_binary_strided", dtype) if op is not None else None
            if strided is not None and out.is_compact() and not (a.is_compact() and b.is_compact()):
                # Broadcast or strided operands read in place: no compact copy of either.
                strided(op, a._handle, a._strides, a._offset, b._handle, b._strides, b._offset, out._handle,
                        a._shape)
                return out
            device.kernel(ewise)(a.compact()._handle, b.compact()._handle, out._handle)
        else:
            kind = type(other)
            if dtype not in _FLOATS or (kind is not float and kind is not int):
                return self._promoted(other, name, out)
            if out is None and not self.is_compact() and self._is_dense():
                out = self._fresh_like()  # a permuted view: run on its buffer, keep its layout
                device.kernel(scalar)(self._handle, other, out._handle)
                return out
            if out is None:
                out = NDArray._fresh(self._shape, device, dtype)
            device.kernel(scalar)(self.compact()._handle, other, out._handle)
        return out

    def _promoted(self, other, name, out=None):
        """The general path of a binary op: promote, apply the op's dtype rule, run its kernel."""
        is_array = isinstance(other, NDArray)
        if not is_array:
            other = _scalar_operand(other, name)
        wide = _dtypes.promote(self._dtype, other._dtype) if is_array else _dtypes.with_scalar(self._dtype, other)
        ewise_name, scalar_name, rule = _RULES[name]
        if rule == "float" and wide not in _FLOATS:
            wide = _dtypes.DEFAULT_FLOAT
        elif rule == "bits" and wide in _FLOATS:
            raise TypeError(f"{name}: needs integer or bool operands, got {self._dtype}"
                            + (f" and {other._dtype}" if is_array else f" and {type(other).__name__}"))
        elif rule == "arith" and wide == _BOOL:
            if name not in _BOOL_ARITH:
                raise TypeError(f"{name}: not supported on bool arrays (use the logical operators & | ^ ~)")
            ewise_name, scalar_name = _BOOL_ARITH[name], None
        if out is not None:
            wide = out._dtype  # in place: the array keeps its dtype, the operand is cast to it
        self._device.check_dtype(wide)
        a = self if self._dtype == wide else self.astype(wide)
        device = self._device
        if not is_array and scalar_name is not None:
            if out is None:
                out = NDArray._fresh(a._shape, device, _BOOL if rule == "compare" else wide)
            device.kernel(scalar_name)(a.compact()._handle, _dtypes.scalar_for(wide, other), out._handle)
            return out
        if not is_array:  # no scalar kernel for this op: the scalar as a broadcast array
            other = full((), _dtypes.scalar_for(wide, other), dtype=wide, device=device)
        b = other if other._dtype == wide else other.astype(wide)
        if a._shape != b._shape:
            try:
                shape = broadcast_shapes(a._shape, b._shape)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
            a, b = a.broadcast_to(shape), b.broadcast_to(shape)
        if out is None:
            out = NDArray._fresh(a._shape, device, _BOOL if rule == "compare" else wide)
        kernel = device.kernel(ewise_name, None) if ewise_name else None
        if kernel is None:
            raise TypeError(f"{name}: backend {device.backend_name!r} has no kernel for dtype {wide}")
        kernel(a.compact()._handle, b.compact()._handle, out._handle)
        return out

    def _kernel(self, name):
        return self._device.kernel(name)

    def _unary(self, name, out=None):
        if self._compact and out is None:  # the common case: a compact array and a known kernel
            kernel = self._device._kernels.get(name)
            if kernel is not None and (self._dtype in _FLOATS or name not in _FLOAT_UNARY):
                out = NDArray._fresh(self._shape, self._device, self._dtype)
                kernel(self._handle, out._handle)
                return out
        if self._dtype not in _FLOATS and out is None and name in _FLOAT_UNARY:
            return self.astype(_dtypes.DEFAULT_FLOAT)._unary(name)  # exp/log/... of integers: float32
        if out is None and not self.is_compact() and self._is_dense():
            out = self._fresh_like()  # a permuted view: run on its buffer, keep its layout
            self._kernel(name)(self._handle, out._handle)
            return out
        if out is None:
            out = NDArray._fresh(self._shape, self._device, self._dtype)
        self._kernel(name)(self.compact()._handle, out._handle)
        return out

    # ---- in place (optimisers, gradient accumulation) ----------------------------------
    # The kernels take an output buffer; giving them this array's own buffer updates it
    # without allocating. Elementwise kernels must be alias-safe (the protocol says so), so
    # aliasing an input with the output is fine. Only for compact arrays of the operands' shape.
    def _check_inplace(self, other, name):
        if not self.is_compact():
            raise ValueError(f"{name}: in-place update needs a compact array")
        if isinstance(other, NDArray) and other._shape != self._shape:
            raise ValueError(f"{name}: in-place operand of shape {other._shape} for an array of shape {self._shape}")

    def iadd(self, other):
        """``self += other`` in place (other: an NDArray of this shape, or a scalar); returns self."""
        self._check_inplace(other, "iadd")
        return self._binary(other, "ewise_add", "scalar_add", "add", out=self)

    def imul(self, other):
        """``self *= other`` in place; returns self."""
        self._check_inplace(other, "imul")
        return self._binary(other, "ewise_mul", "scalar_mul", "multiply", out=self)

    def isub(self, other):
        """``self -= other`` in place (other: an NDArray of this shape); returns self."""
        self._check_inplace(other, "isub")
        sub = self._device.optional("ewise_sub")
        if sub is not None:
            return self._binary(other, "ewise_sub", None, "subtract", out=self)
        return self.iadd(-other)

    def idiv(self, other):
        """``self /= other`` in place; returns self."""
        self._check_inplace(other, "idiv")
        return self._binary(other, "ewise_div", "scalar_div", "divide", out=self)

    def isqrt(self):
        """``self = sqrt(self)`` in place; returns self."""
        self._check_inplace(None, "isqrt")
        if self._device.optional("ewise_sqrt") is not None:
            return self._unary("ewise_sqrt", out=self)
        return self._binary(0.5, None, "scalar_power", "power", out=self)

    # ---- arithmetic -------------------------------------------------------------------
    __add__ = __radd__ = _arith("ewise_add", "scalar_add", "add")

    _fast_sub = _arith("ewise_sub", None, "subtract")

    def __sub__(self, other):
        if type(other) is NDArray and self._device._kernels.get("ewise_sub") is not None:
            return self._fast_sub(other)  # the kernel is known to exist: straight to it
        sub = self._device.optional("ewise_sub")
        if isinstance(other, NDArray) and sub is not None:
            return self._binary(other, "ewise_sub", None, "subtract")
        if self._dtype == _BOOL and (isinstance(other, (bool, np.bool_)) or getattr(other, "_dtype", None) == _BOOL):
            raise TypeError("subtract: not supported on bool arrays (use the logical operators & | ^ ~)")
        return self + (-other)

    def __rsub__(self, other):
        rsub = self._device.optional("scalar_rsub")
        if rsub is not None and self._dtype != _BOOL:
            wide = _dtypes.with_scalar(self._dtype, _scalar_operand(other, "subtract"))
            a = self if wide == self._dtype else self.astype(wide)
            if wide in _FLOATS:
                return a._binary(float(other), None, "scalar_rsub", "subtract")
            out = NDArray._fresh(a._shape, a._device, wide)
            rsub(a.compact()._handle, _dtypes.scalar_for(wide, other), out._handle)
            return out
        return (-self) + other

    __mul__ = __rmul__ = _arith("ewise_mul", "scalar_mul", "multiply")
    __truediv__ = _arith("ewise_div", "scalar_div", "divide")

    def __rtruediv__(self, other):
        rdiv = self._device.optional("scalar_rdiv")
        if self._dtype not in _FLOATS:
            return self.astype(_dtypes.with_scalar(self._dtype, 0.5)).__rtruediv__(other)
        if rdiv is not None:
            return self._binary(float(_scalar_operand(other, "divide")), None, "scalar_rdiv", "divide")
        return (self ** -1.0) * other

    def __neg__(self):
        if self._dtype == _BOOL:
            raise TypeError("negative: not supported on bool arrays (use ~ for logical not)")
        if self._device.optional("ewise_neg") is not None:
            return self._unary("ewise_neg")
        return self * -1

    def __pow__(self, other):
        if self._dtype not in _FLOATS:
            # Integer bases: an integer exponent keeps the dtype (computed in float64, exact to
            # 2**53), anything else gives float32, as in PyTorch.
            if isinstance(other, NDArray) or _dtypes.with_scalar(self._dtype, other) in _FLOATS:
                base = self.astype(_dtypes.DEFAULT_FLOAT if not isinstance(other, NDArray) or other._dtype
                                   not in _FLOATS else other._dtype)
                return base ** other
            return self._integer_power(_scalar_operand(other, "power"))
        if isinstance(other, NDArray):
            if other._dtype != self._dtype:
                wide = _dtypes.promote(self._dtype, other._dtype)
                return self.astype(wide) ** other.astype(wide)
            power = self._device.optional("ewise_power")
            if power is not None:
                return self._binary(other, "ewise_power", None, "power")
            return (self.log() * other).exp()
        return self._binary(float(_scalar_operand(other, "power")), None, "scalar_power", "power")

    def _integer_power(self, exponent):
        """``self ** exponent`` for an integer or bool array and an int exponent >= 0, by repeated
        squaring: exact, wrapping like every integer op (bool bases become int64, as in PyTorch)."""
        exponent = int(exponent)
        if exponent < 0:
            raise ValueError(f"power: integers to negative integer powers are not allowed (got {exponent})")
        base = self if self._dtype != _BOOL else self.astype("int64")
        result = full(base._shape, 1, dtype=base._dtype, device=base._device)
        while exponent:
            if exponent & 1:
                result = result * base
            exponent >>= 1
            if exponent:
                base = base * base
        return result

    def maximum(self, other):
        """Elementwise maximum (NaN propagates)."""
        return self._binary(other, "ewise_maximum", "scalar_maximum", "maximum")

    def minimum(self, other):
        """Elementwise minimum (NaN propagates)."""
        if self._device.optional("ewise_minimum") is None:  # a protocol-1 backend: floats only
            return -((-self).maximum(-other))
        return self._promoted(other, "minimum")

    def abs(self):
        """Elementwise absolute value (identity on uint8 and bool)."""
        if self._dtype in ("uint8", _BOOL):
            return self.copy()
        kernel = self._device.optional("ewise_abs") if self._protocol() >= 2 else None
        if kernel is not None:
            return self._unary("ewise_abs")
        return self.maximum(-self)

    # ---- comparisons and logic --------------------------------------------------------
    # Protocol 2 comparisons give bool. Without a backend's optional ne/lt/le/gt kernels they are
    # composed so that NaN compares False (except !=): a > b is (a >= b) & ~(a == b), a < b is
    # b > a, and a scalar ``a <= s`` is ~(a > s) & (a == a). A protocol-1 backend gives float
    # masks (1.0/0.0 in the operands' dtype), composed the same way.
    def _protocol(self):
        return self._device.protocol

    def _compare(self, other, name):
        if self._protocol() < 2:
            return self._compare_v1(other, name)
        is_array = isinstance(other, NDArray)
        if name in ("eq", "ge") or self._device.optional(("ewise_" if is_array else "scalar_") + name) is not None:
            return self._promoted(other, name)
        if name == "ne":
            return ~(self == other)
        if not is_array and isinstance(other, float) and other != other:  # vs NaN: all False
            return full(self._shape, False, dtype=_BOOL, device=self._device)
        if is_array:
            if name == "lt":
                return other._compare(self, "gt")
            if name == "le":
                return other._compare(self, "ge")
            return (self >= other) & ~(self == other)  # gt
        if name == "gt":
            return (self >= other) & ~(self == other)
        if name == "le":
            return ~(self > other) & (self == self)
        return ~(self >= other) & (self == self)  # lt

    def _compare_v1(self, other, name):
        if name == "eq":
            return self._binary(other, "ewise_eq", "scalar_eq", "eq")
        if name == "ge":
            return self._binary(other, "ewise_ge", "scalar_ge", "ge")
        if name == "ne":
            return 1.0 - self._compare_v1(other, "eq")
        if isinstance(other, NDArray) and name in ("lt", "le"):
            return other._compare_v1(self, "gt" if name == "lt" else "ge")
        gt = self._compare_v1(other, "ge") * (1.0 - self._compare_v1(other, "eq"))
        if name == "gt":
            return gt
        not_nan = self._binary(self, "ewise_eq", None, "eq")
        return (1.0 - (gt if name == "le" else self._compare_v1(other, "ge"))) * not_nan

    def __eq__(self, other):
        return self._compare(other, "eq")

    def __ne__(self, other):
        return self._compare(other, "ne")

    def __ge__(self, other):
        return self._compare(other, "ge")

    def __gt__(self, other):
        return self._compare(other, "gt")

    def __lt__(self, other):
        return self._compare(other, "lt")

    def __le__(self, other):
        return self._compare(other, "le")

    __hash__ = None

    def __and__(self, other):
        return self._promoted(other, "and")

    def __or__(self, other):
        return self._promoted(other, "or")

    def __xor__(self, other):
        return self._promoted(other, "xor")

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def __invert__(self):
        if self._dtype in _FLOATS:
            raise TypeError(f"invert (~): needs an integer or bool array, got {self._dtype}")
        out = NDArray._fresh(self._shape, self._device, self._dtype)
        self._device.kernel("ewise_not")(self.compact()._handle, out._handle)
        return out

    def where(self, a, b):
        """``a`` where this (bool) array is True, else ``b`` (arrays or scalars; broadcast; promoted)."""
        return where(self, a, b)

    # ---- elementwise functions ----------------------------------------------------------
    def log(self):
        return self._unary("ewise_log")

    def exp(self):
        return self._unary("ewise_exp")

    def tanh(self):
        return self._unary("ewise_tanh")

    def sqrt(self):
        if self._dtype not in _FLOATS:
            return self.astype(_dtypes.DEFAULT_FLOAT).sqrt()
        if self._device.optional("ewise_sqrt") is not None:
            return self._unary("ewise_sqrt")
        return self ** 0.5

    def relu(self):
        if self._dtype in _FLOATS and self._device.optional("ewise_relu") is not None:
            return self._unary("ewise_relu")
        return self.maximum(0 if self._dtype not in _FLOATS else 0.0)

    def relu_backward(self, grad):
        """``grad`` where this array (a ReLU's input or output) is positive, else 0."""
        if not isinstance(grad, NDArray) or grad._shape != self._shape:
            shape = getattr(grad, "shape", None)
            raise ValueError(f"relu_backward: gradient of shape {shape} for an array of shape {self._shape}")
        kernel = self._device.fused("ewise_relu_backward", self._dtype)
        if kernel is None or grad._dtype != self._dtype:
            # where, not a multiply by the mask: a NaN gradient at an inactive unit gives 0, as the kernels do
            return where(self > 0.0, grad, 0.0)
        if (self._strides == grad._strides and not self.is_compact() and self._is_dense()
                and grad._is_dense()):
            out = self._fresh_like()  # one permuted layout: no transposing copies
            kernel(self._handle, grad._handle, out._handle)
            return out
        out = NDArray._fresh(self._shape, self._device, self._dtype)
        kernel(self.compact()._handle, grad.compact()._handle, out._handle)
        return out

    def sigmoid(self):
        if self._dtype not in _FLOATS:
            return self.astype(_dtypes.DEFAULT_FLOAT).sigmoid()
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
            self._device.kernel("matmul")(self.compact()._handle, other.compact()._handle, out._handle, m, n, p)
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
        kernel = self._device.fused("matmul_tn", self._dtype)
        if kernel is None or transposed.is_compact():
            return transposed.compact() @ other
        out = NDArray._fresh((m, p), self._device, self._dtype)
        kernel(self.compact()._handle, other.compact()._handle, out._handle, m, n, p)
        return out

    def matmul_nt(self, other):
        """``self @ transpose(other)`` for a 2-D ``self`` (m, n) and ``other`` (p, n): an input gradient
        ``g @ w^T`` without a transposed copy of ``w``.

        One call to the backend's fused ``matmul_nt`` kernel, else (or when the transposed view is
        compact already) a matmul with a compact copy of the transpose.
        """
        self._check_matmul_operand(other, "matmul_nt")
        if self.ndim != 2 or other.ndim != 2 or self._shape[1] != other._shape[1]:
            raise ValueError(f"matmul_nt: shapes {self._shape} and {other._shape} need a (m, n) and b (p, n)")
        (m, n), p = self._shape, other._shape[0]
        transposed = other.permute((1, 0))
        kernel = self._device.fused("matmul_nt", self._dtype)
        if kernel is None or transposed.is_compact():
            return self @ transposed
        out = NDArray._fresh((m, p), self._device, self._dtype)
        kernel(self.compact()._handle, other.compact()._handle, out._handle, m, n, p)
        return out

    def matmul_bias(self, other, bias):
        """``self @ other + bias`` for 2-D operands and a bias of ``other.shape[1]`` elements (any shape).

        One pass with the backend's optional ``matmul_bias`` kernel, else a matmul and a broadcast add.
        """
        if self.ndim != 2 or getattr(other, "ndim", 0) != 2 or not isinstance(bias, NDArray):
            raise ValueError(f"matmul_bias: needs a (m, n) array, a (n, p) NDArray and a bias NDArray of p "
                             f"elements, got shapes {self._shape}, {getattr(other, 'shape', other)!r} and "
                             f"{getattr(bias, 'shape', bias)!r}")
        m, n = self._shape
        p = other._shape[1]
        if other._shape[0] != n or bias.size != p:
            raise ValueError(f"matmul_bias: shapes {self._shape} @ {other._shape} + bias {bias._shape} do not fit")
        kernel = self._device.fused("matmul_bias", self._dtype)
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
        if name != "sum" and rows == 0:
            raise ValueError(f"{name}: zero-size reduction over axis {axis} of shape {shape}")
        src, dtype = self, self._dtype
        if name == "sum" and dtype not in _FLOATS:  # sums of integers and bools are int64
            dtype = "int64"
            src = self if self._dtype == dtype else self.astype(dtype)
        # The result is compact either way: allocate it in its final (kept-dims or not) shape.
        out = NDArray._fresh(final, self._device, "int64" if name in ("argmax", "argmin") else dtype)
        if name == "sum" and leading and dtype in _FLOATS and src.is_compact():
            # Summing leading axes (a bias gradient): a row of ones times the (rows, cols)
            # matrix, instead of a transposing compact followed by reduce_sum.
            self._device.kernel("matmul")(_ones_row(self._device, rows, dtype)._handle, src._handle,
                                out._handle, 1, rows, cols)
        else:
            # Reduced axes last (no view needed when they already are), then contiguous groups.
            view = src if trailing else src.permute(keep + axes)
            kernel(view.compact()._handle, out._handle, rows)
        return out

    def sum(self, axis=None, keepdims=False):
        """Sum over ``axis`` (int, tuple or None for all); integers and bools sum to int64."""
        return self._reduce(axis, keepdims, self._device.kernel("reduce_sum"), "sum")

    def max(self, axis=None, keepdims=False):
        """Maximum over ``axis`` (int, tuple or None for all)."""
        return self._reduce(axis, keepdims, self._device.kernel("reduce_max"), "max")

    def min(self, axis=None, keepdims=False):
        """Minimum over ``axis`` (int, tuple or None for all)."""
        kernel = self._device.optional("reduce_min") if self._device.protocol >= 2 else None
        if kernel is None:  # a protocol-1 backend: floats only
            return -((-self).max(axis, keepdims))
        return self._reduce(axis, keepdims, kernel, "min")

    def _arg_reduce(self, axis, keepdims, name):
        if axis is not None and not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{name}: axis must be an int or None, got {axis!r}")
        if self._device.protocol < 2:
            raise TypeError(f"{name}: backend {self._device.backend_name!r} implements backend protocol 1, "
                            f"which has no {name} kernel (int64 results need protocol 2)")
        return self._reduce(axis, keepdims, self._device.kernel("reduce_" + name), name)

    def argmax(self, axis=None, keepdims=False):
        """Index (int64) of the first maximum along ``axis`` (None: of the flattened array); NaN wins."""
        return self._arg_reduce(axis, keepdims, "argmax")

    def argmin(self, axis=None, keepdims=False):
        """Index (int64) of the first minimum along ``axis`` (None: of the flattened array); NaN wins."""
        return self._arg_reduce(axis, keepdims, "argmin")

    # ---- integer indexing -------------------------------------------------------------
    def take_rows(self, indices):
        """Rows of this array (along axis 0) picked by the int64 NDArray ``indices`` (any shape,
        values in [0, len)): shape ``indices.shape + self.shape[1:]``; a copy."""
        rows = self._shape[0] if self._shape else 0
        row_size = prod(self._shape[1:])
        out = NDArray._fresh(indices._shape + self._shape[1:], self._device, self._dtype)
        if out.size == 0:
            return out
        src, idx = self.compact(), indices.compact()
        kernel = self._device.optional("gather_rows") if self._device.protocol >= 2 else None
        if kernel is not None:
            kernel(src._handle, idx._handle, out._handle, rows, row_size, idx.size)
            return out
        picked = _host_indices(idx.numpy(), rows)
        flat = src.numpy().reshape(rows, row_size)
        self._device.kernel("from_numpy")(np.ascontiguousarray(flat[picked]), out._handle)
        return out

    def scatter_add_rows(self, indices, values):
        """In place: ``self[indices[i]] += values[i]`` along axis 0 (repeated indices accumulate);
        ``values`` of shape ``indices.shape + self.shape[1:]``. Returns self (compact arrays only)."""
        if not self.is_compact():
            raise ValueError("scatter_add_rows: needs a compact array")
        rows, row_size = self._shape[0], prod(self._shape[1:])
        if values._dtype != self._dtype:
            values = values.astype(self._dtype)
        if values.size == 0:
            return self
        idx, vals = indices.compact(), values.compact()
        kernel = self._device.optional("scatter_add_rows") if self._device.protocol >= 2 else None
        if kernel is not None:
            kernel(vals._handle, idx._handle, self._handle, rows, row_size, idx.size)
            return self
        picked = _host_indices(idx.numpy(), rows)
        acc = self.numpy().reshape(rows, row_size)
        np.add.at(acc, picked, vals.numpy().reshape(picked.size, row_size))
        self._device.kernel("from_numpy")(acc, self._handle)
        return self


def _host_indices(indices, rows):
    """``indices`` (a numpy int array) flattened, checked to lie in [0, rows)."""
    flat = indices.reshape(-1).astype(np.int64)
    bad = (flat < 0) | (flat >= rows)
    if bad.any():
        raise IndexError(f"index {int(flat[bad.argmax()])} is out of bounds for axis 0 with size {rows}")
    return flat


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
def from_dlpack(obj, device=None, copy=None):
    """An NDArray over the memory of ``obj`` (anything with ``__dlpack__``), shared where ``device``'s
    backend can adopt it (see :func:`needle.from_dlpack`); a copy when ``copy`` is True."""
    target, found = _dlpack.adopt(obj, device=device, copy=copy)
    if isinstance(found, np.ndarray):  # host memory bound for a device that cannot hold it
        return NDArray(found, device=target)
    handle, shape, strides, offset = found
    out = NDArray.make(shape, strides, device=target, handle=handle, offset=offset, dtype=handle.dtype)
    return out.copy() if copy else out


def array(obj, dtype="float32", device=None):
    """An NDArray holding a copy of ``obj``."""
    return NDArray(obj, device=device, dtype=dtype)


def empty(shape, dtype="float32", device=None):
    """An uninitialised NDArray of ``shape``."""
    return NDArray.make(shape, device=device, dtype=_dtype_name(dtype))


def full(shape, fill_value, dtype="float32", device=None):
    """An NDArray of ``shape`` filled with ``fill_value``."""
    out = empty(shape, dtype, device)
    out._device.kernel("fill")(out._handle, _dtypes.scalar_for(out._dtype, _scalar_operand(fill_value, "full")))
    return out


def where(condition, a, b):
    """Elementwise ``a if condition else b``: ``condition`` a bool NDArray (any other dtype is
    tested against zero), ``a`` and ``b`` NDArrays or scalars; all three broadcast, and the
    result has the promoted dtype of ``a`` and ``b``."""
    if not isinstance(condition, NDArray):
        raise TypeError(f"where: condition must be an NDArray, got {type(condition).__name__}")
    device = condition._device
    operands = []
    for name, value in (("a", a), ("b", b)):
        if isinstance(value, NDArray):
            if value._device != device:
                raise ValueError(f"where: {name} is on {value._device}, condition on {device}")
            operands.append(value)
        else:
            operands.append(_scalar_operand(value, "where"))
    arrays = [x for x in operands if isinstance(x, NDArray)]
    if len(arrays) == 2:
        dtype = _dtypes.promote(arrays[0]._dtype, arrays[1]._dtype)
    elif arrays:
        other = operands[1] if operands[0] is arrays[0] else operands[0]
        dtype = _dtypes.with_scalar(arrays[0]._dtype, other)
    else:
        dtype = _dtypes.with_scalar(_dtypes.with_scalar("bool", operands[0]), operands[1])
    operands = [x.astype(dtype) if isinstance(x, NDArray) and x._dtype != dtype else
                x if isinstance(x, NDArray) else full((), x, dtype=dtype, device=device) for x in operands]
    cond = condition if condition._dtype == _BOOL else condition != 0
    shape = broadcast_shapes(cond._shape, operands[0]._shape, operands[1]._shape)
    cond, x, y = (v.broadcast_to(shape).compact() for v in (cond, *operands))
    out = NDArray._fresh(shape, device, dtype)
    if device.protocol >= 2:
        device.kernel("where")(cond._handle, x._handle, y._handle, out._handle)
    else:  # a protocol-1 backend: cond is a float mask
        return x * cond + y * (1.0 - cond)
    return out
