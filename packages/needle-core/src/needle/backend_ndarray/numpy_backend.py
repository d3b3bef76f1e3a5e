"""The built-in numpy backend: protocol 2 on flat numpy arrays, always available.

Each kernel's contract is its method's docstring in :class:`needle.backend_ndarray.contract.Backend`;
the docstrings here say how numpy computes it.

Every kernel is one vectorised numpy call (a ufunc with ``out=`` wherever one exists, so a
kernel never allocates on the float hot path); strided views are built with ``as_strided``
over the flat buffer, never with a Python loop per element. numpy's ufuncs handle ``out``
being one of their inputs, so every elementwise kernel here is alias-safe as protocol 2 asks.

Floating-point results follow IEEE (log(0) is -inf, 0/0 is NaN) and integer arithmetic wraps,
silently, as in a C backend: numpy's RuntimeWarnings raised by this module's kernels are
filtered at import (a filter on this module only, so it costs nothing per call, where an
``np.errstate`` block would add about a microsecond to every kernel).
"""
import re
import warnings

import numpy as np
from numpy.lib.stride_tricks import as_strided

PROTOCOL_VERSION = 2

DTYPES = ("float32", "float64", "int32", "int64", "uint8", "bool")

# numpy warns (divide by zero, overflow, invalid value in cast...) from the frame that called the
# ufunc: these kernels. A protocol kernel returns IEEE/wrapped values without a word, like C code.
warnings.filterwarnings("ignore", category=RuntimeWarning, module=re.escape(__name__) + r"\Z")


# Memory statistics (protocol.MEMORY_KERNELS): bytes of live Array buffers and their peak, counted
# when an Array is made and when it is freed. Plain module ints: a lock or a weakref.finalize per
# buffer would cost more than the count (concurrent threads could race a count; see the protocol).
_live_bytes = 0
_peak_bytes = 0


class Array:
    """A flat buffer of ``size`` elements of ``dtype`` in host memory."""

    __slots__ = ("array", "dtype", "_nbytes")

    def __init__(self, size, dtype="float32"):
        global _live_bytes, _peak_bytes
        if dtype not in DTYPES:
            raise TypeError(f"numpy backend supports dtypes {DTYPES}, got dtype={dtype!r}")
        self.array = array = np.empty(int(size), dtype=dtype)
        self.dtype = dtype  # a plain str: numpy's dtype.name is slow on the hot path
        self._nbytes = nbytes = array.nbytes  # set last: __del__ uncounts only what was counted
        _live_bytes += nbytes
        if _live_bytes > _peak_bytes:
            _peak_bytes = _live_bytes

    def __del__(self):
        global _live_bytes
        try:
            _live_bytes -= self._nbytes
        except (AttributeError, TypeError):  # __init__ failed before counting; interpreter shutdown
            pass

    @property
    def size(self):
        return self.array.size

    def ptr(self):
        """Address of the first element, so tests can tell whether two views share memory."""
        return self.array.ctypes.data


def memory_stats():
    """Bytes of live Array buffers (``allocated_bytes``) and their peak (``peak_allocated_bytes``)."""
    return {"allocated_bytes": _live_bytes, "peak_allocated_bytes": _peak_bytes}


def reset_peak_memory_stats():
    """Make the peak the bytes allocated now."""
    global _peak_bytes
    _peak_bytes = _live_bytes


def empty_cache():
    """Nothing to do: numpy frees each buffer when its Array goes (there is no cache)."""


def _view(a, shape, strides, offset):
    """The strided view of buffer ``a`` as a numpy array (no copy)."""
    flat = a.array
    item = flat.itemsize
    return as_strided(flat[offset:], shape=tuple(shape), strides=tuple(s * item for s in strides))


def dlpack_device(a):
    """DLPack's (device type, index) of a buffer: (1, 0), host memory."""
    return (1, 0)


def dlpack_export(a, shape, strides, offset, max_version=None):
    """A DLPack capsule over the strided view (numpy's: it keeps the buffer alive until released);
    versioned (DLPack 1.x) when ``max_version`` allows it."""
    view = _view(a, shape, strides, offset)
    return view.__dlpack__() if max_version is None else view.__dlpack__(max_version=max_version)


def dlpack_import(obj):
    """``(Array, shape, strides, offset)`` over the host memory of ``obj`` (a DLPack producer).

    Zero-copy unless the memory is read-only, empty or strided in non-whole elements: then a compact copy.
    """
    try:
        x = np.from_dlpack(obj)
    except RuntimeError as exc:  # numpy's word for a dtype it does not know (bfloat16)
        raise TypeError(f"from_dlpack: the numpy backend cannot hold dtype {getattr(obj, 'dtype', '?')} "
                        f"({exc}); it holds {DTYPES}") from None
    if x.dtype.name not in DTYPES:
        raise TypeError(f"from_dlpack: the numpy backend cannot hold dtype {x.dtype.name}; it holds {DTYPES}")
    if x.size == 0:
        return Array(0, x.dtype.name), x.shape, tuple(s // x.itemsize for s in np.empty(x.shape, x.dtype).strides), 0
    item = x.itemsize
    if not x.flags.writeable or any(s % item for s in x.strides):
        x = np.ascontiguousarray(x).copy()
    # The flat buffer starts at the lowest address the view reaches: reverse the axes that run backwards.
    lowest = x[tuple(slice(None, None, -1) if s < 0 else slice(None) for s in x.strides)]
    steps = [s // item for s in x.strides]
    lo = sum((n - 1) * s for n, s in zip(x.shape, steps) if s < 0)
    hi = sum((n - 1) * s for n, s in zip(x.shape, steps) if s > 0)
    out = Array.__new__(Array)
    out.array = as_strided(lowest, shape=(hi - lo + 1,), strides=(item,))  # keeps x (and its producer) alive
    out.dtype = x.dtype.name
    return out, x.shape, tuple(steps), -lo


def from_numpy(np_array, out):
    """Copy the compact numpy array into ``out``."""
    out.array[:] = np.ascontiguousarray(np_array).reshape(-1)


def to_numpy(a, shape, strides, offset):
    """A new numpy array holding the strided view of ``a``."""
    return _view(a, shape, strides, offset).copy()


def fill(out, value):
    """Set every element of ``out`` to ``value``."""
    out.array.fill(value)


def compact(a, out, shape, strides, offset):
    """Gather the strided view of ``a`` into compact ``out``."""
    out.array[:] = _view(a, shape, strides, offset).reshape(-1)


def ewise_setitem(a, out, shape, strides, offset):
    """Scatter compact ``a`` into the strided view of ``out``."""
    view = as_strided(out.array[offset:], shape=tuple(shape),
                      strides=tuple(s * out.array.itemsize for s in strides), writeable=True)
    view[...] = a.array[: view.size].reshape(view.shape)


def scalar_setitem(size, val, out, shape, strides, offset):
    """Set the strided view of ``out`` to ``val``."""
    view = as_strided(out.array[offset:], shape=tuple(shape),
                      strides=tuple(s * out.array.itemsize for s in strides), writeable=True)
    view[...] = val


def cast(a, out):
    """``a`` converted to ``out``'s dtype."""
    # Unsafe casting is numpy's C conversion: float -> int truncates toward zero, to bool is != 0.
    np.copyto(out.array, a.array, casting="unsafe")


def where(cond, a, b, out):
    """``a`` where the bool buffer ``cond`` is True, else ``b``."""
    # Into a temporary first: copying b into out, then a where cond, breaks when out is a or cond.
    out.array[:] = np.where(cond.array, a.array, b.array)


# ---- elementwise ---------------------------------------------------------------------------
def _binary(fn):
    def kernel(a, b, out):
        fn(a.array, b.array, out=out.array)
    kernel.__doc__ = f"out = numpy.{fn.__name__}(a, b)."
    return kernel


def _scalar(fn):
    # ``val`` (a Python int or float, in range: core checks) stays a Python scalar, which numpy
    # computes in the array's dtype (NEP 50 "weak" scalars; value-based casting before numpy 2
    # agrees for in-range values): 20% faster than converting it first. Bool buffers (maximum and
    # minimum only) need a bool, or numpy would promote the int to int64.
    def kernel(a, val, out):
        fn(a.array, val if a.dtype != "bool" else bool(val), out=out.array)
    kernel.__doc__ = f"out = numpy.{fn.__name__}(a, val)."
    return kernel


def _scalar_compare(fn):
    # ``val`` stays a Python scalar: numpy compares it in the array's dtype (the buffer's value of
    # val), and the result is written as bool (or 1.0/0.0 into a protocol-1 caller's float buffer).
    def kernel(a, val, out):
        fn(a.array, val, out=out.array)
    kernel.__doc__ = f"out = numpy.{fn.__name__}(a, val), a bool buffer."
    return kernel


def _unary(fn):
    def kernel(a, out):
        fn(a.array, out=out.array)
    kernel.__doc__ = f"out = numpy.{fn.__name__}(a)."
    return kernel


ewise_add = _binary(np.add)
ewise_sub = _binary(np.subtract)
ewise_mul = _binary(np.multiply)
ewise_div = _binary(np.divide)
ewise_maximum = _binary(np.maximum)
ewise_minimum = _binary(np.minimum)
ewise_power = _binary(np.power)
ewise_and = _binary(np.bitwise_and)  # bitwise on integers, logical on bool
ewise_or = _binary(np.bitwise_or)
ewise_xor = _binary(np.bitwise_xor)

ewise_eq = _binary(np.equal)
ewise_ne = _binary(np.not_equal)
ewise_lt = _binary(np.less)
ewise_le = _binary(np.less_equal)
ewise_gt = _binary(np.greater)
ewise_ge = _binary(np.greater_equal)

scalar_add = _scalar(np.add)
scalar_mul = _scalar(np.multiply)
scalar_div = _scalar(np.divide)
scalar_power = _scalar(np.power)
scalar_maximum = _scalar(np.maximum)
scalar_minimum = _scalar(np.minimum)

scalar_eq = _scalar_compare(np.equal)
scalar_ne = _scalar_compare(np.not_equal)
scalar_lt = _scalar_compare(np.less)
scalar_le = _scalar_compare(np.less_equal)
scalar_gt = _scalar_compare(np.greater)
scalar_ge = _scalar_compare(np.greater_equal)


def scalar_rsub(a, val, out):
    """out = val - a."""
    np.subtract(val, a.array, out=out.array)


def scalar_rdiv(a, val, out):
    """out = val / a."""
    np.divide(val, a.array, out=out.array)


ewise_log = _unary(np.log)
ewise_exp = _unary(np.exp)
ewise_tanh = _unary(np.tanh)
ewise_neg = _unary(np.negative)
ewise_sqrt = _unary(np.sqrt)
ewise_abs = _unary(np.absolute)
ewise_not = _unary(np.invert)  # bitwise on integers, logical on bool


def ewise_relu(a, out):
    """out = max(a, 0)."""
    np.maximum(a.array, 0, out=out.array)


def ewise_sigmoid(a, out):
    """out = 1 / (1 + exp(-a)), computed as 0.5 * (1 + tanh(a / 2))."""
    # 0.5 * (1 + tanh(x / 2)) is finite for every finite x, unlike 1 / (1 + exp(-x)).
    # Alias-safe: a is read once, by the first call; the rest works on out alone.
    np.multiply(a.array, 0.5, out=out.array)
    np.tanh(out.array, out=out.array)
    out.array += 1
    out.array *= 0.5


# ---- matmul and reductions (out is never an input) -------------------------------------------
def matmul(a, b, out, m, n, p):
    """out (m, p) = a (m, n) @ b (n, p)."""
    np.matmul(a.array[: m * n].reshape(m, n), b.array[: n * p].reshape(n, p),
              out=out.array[: m * p].reshape(m, p))


def matmul_batched(a, b, out, batch, m, n, p):
    """out (batch, m, p) = a (batch, m, n) @ b (batch, n, p)."""
    np.matmul(a.array[: batch * m * n].reshape(batch, m, n),
              b.array[: batch * n * p].reshape(batch, n, p),
              out=out.array[: batch * m * p].reshape(batch, m, p))


def _groups(a, out, reduce_size):
    groups = out.array.size
    return a.array[: groups * reduce_size].reshape(groups, reduce_size)


# The ufuncs' own reduce (not np.sum/np.max, which are Python wrappers): it accumulates in out's
# dtype, so integer sums wrap like the elementwise kernels.
def reduce_sum(a, out, reduce_size):
    """Sum of each contiguous group of ``reduce_size`` (wrapping for integers)."""
    if reduce_size == 0:
        out.array.fill(0)
        return
    np.add.reduce(_groups(a, out, reduce_size), axis=1, out=out.array)


def reduce_max(a, out, reduce_size):
    """Max of each contiguous group (NaN propagates; any on bool)."""
    np.maximum.reduce(_groups(a, out, reduce_size), axis=1, out=out.array)  # NaN propagates; bool: any


def reduce_min(a, out, reduce_size):
    """Min of each contiguous group (NaN propagates; all on bool)."""
    np.minimum.reduce(_groups(a, out, reduce_size), axis=1, out=out.array)  # bool: all


def reduce_argmax(a, out, reduce_size):
    """Index of the first maximum of each group, into an int64 buffer."""
    # numpy's argmax: the first maximum, a NaN counting as the maximum (the first NaN wins).
    out.array[:] = np.argmax(_groups(a, out, reduce_size), axis=1)


def reduce_argmin(a, out, reduce_size):
    """Index of the first minimum of each group, into an int64 buffer."""
    out.array[:] = np.argmin(_groups(a, out, reduce_size), axis=1)


# ---- integer indexing -----------------------------------------------------------------------------
def _checked_rows(idx, rows, count, who):
    """The first ``count`` indices of the int64 buffer ``idx``; IndexError naming the first bad one."""
    index = idx.array[:count]
    bad = (index < 0) | (index >= rows)
    if bad.any():
        at = int(bad.argmax())
        raise IndexError(f"{who}: index {int(index[at])} at position {at} is out of range for {rows} rows")
    return index


def gather_rows(a, idx, out, rows, row_size, count):
    """Row ``idx[i]`` of ``a`` into row ``i`` of ``out``, indices checked first."""
    index = _checked_rows(idx, rows, count, "gather_rows")
    np.take(a.array[: rows * row_size].reshape(rows, row_size), index, axis=0,
            out=out.array[: count * row_size].reshape(count, row_size))


def scatter_add_rows(g, idx, out, rows, row_size, count):
    """Row ``i`` of ``g`` added into row ``idx[i]`` of ``out`` (repeats accumulate), indices checked first."""
    index = _checked_rows(idx, rows, count, "scatter_add_rows")
    # np.add.at, not out[index] += g: repeated indices must accumulate.
    np.add.at(out.array[: rows * row_size].reshape(rows, row_size), index,
              g.array[: count * row_size].reshape(count, row_size))
