"""The needle-cuda protocol module: the backend protocol on CuPy device buffers.

Importing this module does not import CuPy; the first buffer allocation does (through
:mod:`needle_cuda._cupy`), so the registry can load it and ask :func:`unavailable_reason`
on a machine with no CuPy or no GPU. It implements protocol 2 on the six dtypes: the
elementwise kernels live in :mod:`needle_cuda._elementwise` (CuPy ufuncs, one launch each, and
fused ``needle_*`` ElementwiseKernels), the reductions and row gather/scatter in
:mod:`needle_cuda._reductions`; here are the buffers, strided copies and matmul (cuBLAS for
floats, or the shared-memory tiled kernel when ``MATMUL_IMPL`` is ``"tiled"``; CuPy's integer
kernel for integers).

Host <-> device copies happen only in :func:`from_numpy` and :func:`to_numpy` (and one scalar
per index check of ``gather_rows``/``scatter_add_rows``), and each is counted
(:func:`transfer_stats`), so a test can prove the hot path makes none. Shapes, strides and
scalars reach kernels as launch parameters, never as copied arrays.

Module-level kernels run on CuPy's current device (device 0 unless changed). Use
:func:`for_device` for a namespace bound to device ``i``.
"""
import contextlib
import math
import os
import types

import numpy as np
from needle.backend_ndarray.protocol import OPTIONAL_KERNELS, OPTIONAL_KERNELS_V2, required_kernels

from . import _cupy, _kernels, _views
from ._cupy import CudaUnavailableError, device_count, unavailable_reason
from ._elementwise import (  # noqa: F401  (protocol kernels: this module is the protocol object)
    cast, ewise_abs, ewise_add, ewise_and, ewise_div, ewise_eq, ewise_exp, ewise_ge, ewise_gt, ewise_le, ewise_log,
    ewise_lt, ewise_maximum, ewise_minimum, ewise_mul, ewise_ne, ewise_neg, ewise_not, ewise_or, ewise_power,
    ewise_relu, ewise_sigmoid, ewise_sqrt, ewise_sub, ewise_tanh, ewise_xor, scalar_add, scalar_div, scalar_eq,
    scalar_ge, scalar_gt, scalar_le, scalar_lt, scalar_maximum, scalar_minimum, scalar_mul, scalar_ne, scalar_power,
    scalar_rdiv, scalar_rsub, where, _wrapping,
)
from ._reductions import (  # noqa: F401
    gather_rows, reduce_argmax, reduce_argmin, reduce_max, reduce_min, reduce_sum, scatter_add_rows,
)
from ._dlpack import dlpack_device, dlpack_export, dlpack_import  # noqa: F401  (protocol.DLPACK_KERNELS)
from ._transfers import count as _count
from ._transfers import reset_transfer_stats, transfer_stats

PROTOCOL_VERSION = 2  # the protocol these kernels implement (a literal, so core can refuse a mismatch)

__all__ = ["PROTOCOL_VERSION", "DTYPES", "FUSED_DTYPES", "Array", "CudaUnavailableError", "unavailable_reason",
           "device_count"]

#: Every dtype of protocol 2; each kernel runs on the dtypes the protocol gives it.
DTYPES = ("float32", "float64", "int32", "int64", "uint8", "bool")
#: No kernel of ``protocol.FUSED_KERNELS`` yet (nor ``conv2d_nhwc``): core composes them on every dtype.
FUSED_DTYPES = ()

#: Environment variable choosing the matmul implementation at import: ``cublas`` (default) or ``tiled``.
MATMUL_ENV = "NEEDLE_CUDA_MATMUL"
MATMUL_IMPLS = ("cublas", "tiled")
#: Edge of the tiled matmul's shared-memory tiles.
TILE_SIZE = __tile_size__ = _kernels.TILE

def _dtype_name(dtype):
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = None
    if name not in DTYPES:
        raise TypeError(f"needle-cuda supports dtypes {DTYPES}, got dtype={dtype!r}")
    return name


_cp = _cupy.cp


# ---- buffers and transfers --------------------------------------------------------------
class Array:
    """A flat device buffer of ``size`` elements of ``dtype`` (a 1-D CuPy array inside).

    ``device`` is a CUDA device index; None means CuPy's current device.
    """

    __slots__ = ("array", "_counted")

    def __init__(self, size, dtype="float32", device=None):
        dtype = _dtype_name(dtype)
        size = int(size)
        if size < 0:
            raise ValueError(f"Array: size must be >= 0, got size={size}")
        cp = _cp()
        if device is None:
            self.array = array = cp.empty(size, dtype=dtype)
        else:
            with cp.cuda.Device(int(device)):
                self.array = array = cp.empty(size, dtype=dtype)
        self._counted = _count_alloc(array.device.id, array.nbytes)  # last: __del__ uncounts what was counted

    def __del__(self):
        try:
            index, nbytes = self._counted
            _live_bytes[index] -= nbytes
        except (AttributeError, TypeError):  # __init__ failed before counting; interpreter shutdown
            pass

    @property
    def size(self):
        return self.array.size

    @property
    def dtype(self):
        return self.array.dtype.name

    @property
    def device_id(self):
        """Index of the CUDA device holding the buffer."""
        return self.array.device.id

    def ptr(self):
        """Device address of the first element, so tests can tell whether views share memory."""
        return self.array.data.ptr

    def __repr__(self):
        return f"needle_cuda.Array(size={self.size}, dtype={self.dtype!r}, device={self.device_id})"


# ---- memory statistics (protocol.MEMORY_KERNELS) -----------------------------------------
# Live bytes of Array buffers and their peak, per device index, counted here at creation and
# release: CuPy's pool knows its used bytes (temporaries of CuPy's own kernels included) but keeps
# no peak. The pool gives the free bytes it holds and releases them (empty_cache).
_live_bytes = {}
_peak_bytes = {}


def _count_alloc(index, nbytes):
    live = _live_bytes[index] = _live_bytes.get(index, 0) + nbytes
    if live > _peak_bytes.get(index, 0):
        _peak_bytes[index] = live
    return index, nbytes


def _current_index():
    return _cp().cuda.Device().id


def _memory_stats(index):
    cp = _cp()
    with cp.cuda.Device(index):
        pool = cp.get_default_memory_pool()
        reserved = pool.total_bytes() - pool.used_bytes()
    return {"allocated_bytes": _live_bytes.get(index, 0), "peak_allocated_bytes": _peak_bytes.get(index, 0),
            "reserved_bytes": reserved}


def _reset_peak_memory_stats(index):
    _peak_bytes[index] = _live_bytes.get(index, 0)


def _empty_cache(index):
    cp = _cp()
    with cp.cuda.Device(index):
        cp.get_default_memory_pool().free_all_blocks()


def memory_stats():
    """Bytes of live Array buffers on the current device (``allocated_bytes``), their peak since the
    last reset (``peak_allocated_bytes``), and the free bytes CuPy's memory pool holds there
    (``reserved_bytes``)."""
    return _memory_stats(_current_index())


def reset_peak_memory_stats():
    """Make the current device's peak the bytes allocated there now."""
    _reset_peak_memory_stats(_current_index())


def empty_cache():
    """Give the free blocks of CuPy's memory pool on the current device back to CUDA."""
    _empty_cache(_current_index())


def _view(a, shape, strides, offset, what):
    """A CuPy view of buffer ``a`` (no copy); the bounds are checked on the host first."""
    _views.check_view(a.size, shape, strides, offset, what)
    arr = a.array
    return _cp().ndarray(tuple(int(s) for s in shape), dtype=arr.dtype, memptr=arr.data + int(offset) * arr.itemsize,
                         strides=_views.byte_strides(strides, arr.itemsize))


def from_numpy(np_array, out):
    """Copy a numpy array (any shape, ``out.size`` elements) into ``out``: one host-to-device copy."""
    src = np.ascontiguousarray(np_array, dtype=out.array.dtype).reshape(-1)
    if src.size != out.size:
        raise ValueError(f"from_numpy: array of shape {np.shape(np_array)} has {src.size} elements, "
                         f"the buffer has {out.size}")
    if src.size:
        out.array.set(src)
    _count("h2d", src.nbytes)


def to_numpy(a, shape, strides, offset):
    """The strided view as a new numpy array: made compact on the device, then one copy to the host."""
    if math.prod(shape) == 0:
        _views.check_view(a.size, shape, strides, offset, "to_numpy")
        return np.empty(tuple(shape), dtype=a.array.dtype)
    host = _view(a, shape, strides, offset, "to_numpy").get()
    _count("d2h", host.nbytes)
    return host


def fill(out, value):
    """Set every element of ``out`` to ``value``."""
    out.array.fill(value)


# ---- strided copies ----------------------------------------------------------------------
def compact(a, out, shape, strides, offset):
    """Gather the strided view of ``a`` into compact ``out`` (one CuPy copy kernel)."""
    n = math.prod(shape)
    if n == 0:
        return
    src = _view(a, shape, strides, offset, "compact")
    _cp().copyto(out.array[:n].reshape(tuple(shape)), src)


def ewise_setitem(a, out, shape, strides, offset):
    """Scatter compact ``a`` into the strided view of ``out``."""
    n = math.prod(shape)
    if n == 0:
        return
    if a.size < n:
        raise ValueError(f"ewise_setitem: source buffer has {a.size} elements, "
                         f"the view of shape {tuple(shape)} needs {n}")
    dst = _view(out, shape, strides, offset, "ewise_setitem")
    src = a.array[:n].reshape(tuple(shape))
    if a.array.data.ptr == out.array.data.ptr:
        src = src.copy()  # writing a buffer into a permuted view of itself: copy first, threads race otherwise
    _cp().copyto(dst, src)


def scalar_setitem(size, value, out, shape, strides, offset):
    """Set the strided view of ``out`` to ``value``."""
    if math.prod(shape) == 0:
        return
    _view(out, shape, strides, offset, "scalar_setitem").fill(value)


# ---- matmul ---------------------------------------------------------------------------------
def _parse_matmul_impl(value, source="matmul implementation"):
    name = (value or "cublas").strip().lower()
    if name not in MATMUL_IMPLS:
        raise ValueError(f"{source}={value!r} is not a matmul implementation; choose one of {', '.join(MATMUL_IMPLS)}")
    return name


#: The matmul implementation ``matmul`` and ``matmul_batched`` use: "cublas" or "tiled".
MATMUL_IMPL = _parse_matmul_impl(os.environ.get(MATMUL_ENV, ""), MATMUL_ENV)


def get_matmul_impl():
    """The current matmul implementation name."""
    return MATMUL_IMPL


def set_matmul_impl(name):
    """Choose the matmul implementation ("cublas" or "tiled"); returns the previous one."""
    global MATMUL_IMPL
    previous, MATMUL_IMPL = MATMUL_IMPL, _parse_matmul_impl(name)
    return previous


@contextlib.contextmanager
def matmul_impl(name):
    """Use matmul implementation ``name`` inside a ``with`` block."""
    previous = set_matmul_impl(name)
    try:
        yield
    finally:
        set_matmul_impl(previous)


def _check_matmul(a, b, out, batch, m, n, p):
    # The tiled kernel reads raw pointers: sizes are checked here, not discovered as a fault.
    for what, buf, need, shape in (("a", a, batch * m * n, (m, n)), ("b", b, batch * n * p, (n, p)),
                                   ("out", out, batch * m * p, (m, p))):
        if buf.size < need:
            raise ValueError(f"matmul: buffer {what} has {buf.size} elements, {batch} matrices of shape {shape} "
                             f"need {need}")
    if not a.dtype == b.dtype == out.dtype:
        raise TypeError(f"matmul: dtypes differ (a {a.dtype}, b {b.dtype}, out {out.dtype})")


def matmul_cublas(a, b, out, m, n, p):
    """(m, n) @ (n, p) through ``cupy.matmul``: cuBLAS for floats, CuPy's integer kernel for integers."""
    matmul_batched_cublas(a, b, out, 1, m, n, p)


def matmul_batched_cublas(a, b, out, batch, m, n, p):
    """(batch, m, n) @ (batch, n, p) through ``cupy.matmul``: one strided-batched cuBLAS GEMM for floats;
    for integers CuPy's own kernel on the unsigned view of the buffers, so that sums of products wrap
    modulo 2**bits (defined unsigned overflow; the same bits as the signed result)."""
    _check_matmul(a, b, out, batch, m, n, p)
    if batch * m * p == 0:
        return
    # One matrix: plain 2-D views, so cuBLAS runs a single GEMM rather than a batch of one.
    lead = (batch,) if batch > 1 else ()
    result = out.array[: batch * m * p].reshape(lead + (m, p))
    if n == 0:
        result.fill(0)  # an empty inner product is 0; cuBLAS is not asked
        return
    _cp().matmul(_wrapping(a.array[: batch * m * n]).reshape(lead + (m, n)),
                 _wrapping(b.array[: batch * n * p]).reshape(lead + (n, p)), out=_wrapping(result))


def matmul_tiled(a, b, out, m, n, p):
    """(m, n) @ (n, p) with the shared-memory tiled kernel (``needle_matmul_tiled_*``)."""
    matmul_batched_tiled(a, b, out, 1, m, n, p)


def matmul_batched_tiled(a, b, out, batch, m, n, p):
    """(batch, m, n) @ (batch, n, p) with the tiled kernel, the batch on gridDim.z (floats; integers go
    through :func:`matmul_batched_cublas`, CuPy's integer kernel)."""
    if out.dtype not in _kernels.CTYPES:
        return matmul_batched_cublas(a, b, out, batch, m, n, p)
    _check_matmul(a, b, out, batch, m, n, p)
    _kernels.launch_tiled(a.array, b.array, out.array, batch, m, n, p)


_MATMUL = {"cublas": matmul_batched_cublas, "tiled": matmul_batched_tiled}


def _impl():
    try:
        return _MATMUL[MATMUL_IMPL]
    except KeyError:
        raise ValueError(f"needle_cuda MATMUL_IMPL={MATMUL_IMPL!r}; choose one of {', '.join(MATMUL_IMPLS)}") from None


def matmul(a, b, out, m, n, p):
    """(m, n) @ (n, p) on compact row-major buffers, by the implementation ``MATMUL_IMPL`` names."""
    _impl()(a, b, out, 1, m, n, p)


def matmul_batched(a, b, out, batch, m, n, p):
    """(batch, m, n) @ (batch, n, p) on compact buffers, by the implementation ``MATMUL_IMPL`` names."""
    _impl()(a, b, out, batch, m, n, p)


# ---- devices ----------------------------------------------------------------------------------
def synchronize():
    """Wait for every kernel queued on the current device (benchmarks time with this)."""
    _cp().cuda.Device().synchronize()


@contextlib.contextmanager
def use_device(index):
    """Make CUDA device ``index`` current inside a ``with`` block (allocations and launches go there)."""
    with _cp().cuda.Device(int(index)):
        yield


#: Every kernel a device-bound namespace runs under its device (optional ones this module defines).
KERNELS = tuple(n for n in required_kernels(PROTOCOL_VERSION) if n != "Array") + tuple(
    n for n in OPTIONAL_KERNELS + OPTIONAL_KERNELS_V2 if n in globals()) + (
    "matmul_cublas", "matmul_tiled", "matmul_batched_cublas", "matmul_batched_tiled",
    "dlpack_device", "dlpack_export", "dlpack_import")

_bound = {}


def for_device(index):
    """The protocol bound to CUDA device ``index``: buffers are allocated there and kernels run there.

    Index 0 shares the module's functions but allocates on device 0 explicitly; other indices wrap
    each kernel in ``cupy.cuda.Device(index)`` (about a microsecond a call).
    """
    index = int(index)
    if index < 0:
        raise ValueError(f"for_device: device index must be >= 0, got {index}")
    if index not in _bound:
        _bound[index] = _make_namespace(index)
    return _bound[index]


def _make_namespace(index):
    module = globals()

    def bound_array(size, dtype="float32"):
        return Array(size, dtype, device=index)

    def bound_reason():
        reason = unavailable_reason()
        if reason is None and index >= device_count():
            reason = f"CUDA device index {index} is out of range: {device_count()} device(s) visible"
        return reason

    ns = types.SimpleNamespace(
        PROTOCOL_VERSION=PROTOCOL_VERSION, DTYPES=DTYPES, FUSED_DTYPES=FUSED_DTYPES, TILE_SIZE=TILE_SIZE,
        DEVICE_INDEX=index,
        Array=bound_array, unavailable_reason=bound_reason, device_count=device_count,
        transfer_stats=transfer_stats, reset_transfer_stats=reset_transfer_stats,
        get_matmul_impl=get_matmul_impl, set_matmul_impl=set_matmul_impl, matmul_impl=matmul_impl,
        synchronize=lambda: _on_device(index, synchronize)(), __name__=f"{__name__}.for_device({index})",
        memory_stats=lambda: _memory_stats(index), reset_peak_memory_stats=lambda: _reset_peak_memory_stats(index),
        empty_cache=lambda: _empty_cache(index))
    for name in KERNELS:
        setattr(ns, name, module[name] if index == 0 else _on_device(index, module[name]))
    return ns


def _on_device(index, kernel):
    def run(*args, **kwargs):
        with _cp().cuda.Device(index):
            return kernel(*args, **kwargs)
    run.__name__ = run.__qualname__ = kernel.__name__
    run.__doc__ = kernel.__doc__
    return run
