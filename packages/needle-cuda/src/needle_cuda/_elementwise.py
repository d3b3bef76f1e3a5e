"""Elementwise kernels of protocol 2: compact buffers of one size in, a compact ``out`` of that size.

Each is one CuPy ufunc launch (compiled by CuPy, cached per dtype) or one fused ``needle_*``
kernel of :mod:`needle_cuda._kernels`. Scalars are made scalars of the buffer's dtype, so a
float32 array never promotes, and travel as kernel arguments.

Dtypes follow ``needle.backend_ndarray.protocol``: comparisons write a bool ``out``; integer
arithmetic wraps modulo 2**bits. CUDA C++ leaves signed overflow undefined, so sums, differences,
products and negations of int32/int64 run on the same bits viewed as uint32/uint64 (two's
complement makes the results identical, and unsigned overflow is defined). Every kernel here reads
element i before it writes element i, so ``out`` may be one of the inputs.
"""
import numpy as np

from . import _cupy, _kernels

cp = _cupy.cp

#: The unsigned type of the same width as each signed integer dtype.
_UNSIGNED_TWIN = {"int32": np.dtype(np.uint32), "int64": np.dtype(np.uint64)}


def _wrapping(arr):
    """``arr`` itself, or for int32/int64 the same memory viewed unsigned (overflow then wraps, defined)."""
    twin = _UNSIGNED_TWIN.get(arr.dtype.name)
    return arr if twin is None else arr.view(twin)


def _scalar_of(arr, val):
    """``val`` as a scalar of ``arr``'s dtype; for integers reduced modulo 2**bits (``arr`` is a wrapping view)."""
    dtype = arr.dtype
    if dtype.kind in "iu":
        return dtype.type(int(val) % (1 << (8 * dtype.itemsize)))
    return dtype.type(val)


# ---- arithmetic ---------------------------------------------------------------------------------
def _arith(ufunc):
    def kernel(a, b, out):
        getattr(cp(), ufunc)(_wrapping(a.array), _wrapping(b.array), out=_wrapping(out.array))
    kernel.__doc__ = f"out = {ufunc}(a, b), elementwise (integers wrap modulo 2**bits)."
    return kernel


def _scalar_arith(ufunc, reverse=False):
    def kernel(a, val, out):
        src = _wrapping(a.array)
        val = _scalar_of(src, val)
        args = (val, src) if reverse else (src, val)
        getattr(cp(), ufunc)(*args, out=_wrapping(out.array))
    kernel.__doc__ = f"out = {ufunc}({'val, a' if reverse else 'a, val'}), elementwise (integers wrap)."
    return kernel


def _binary(ufunc):
    def kernel(a, b, out):
        getattr(cp(), ufunc)(a.array, b.array, out=out.array)
    kernel.__doc__ = f"out = {ufunc}(a, b), elementwise."
    return kernel


def _scalar(ufunc, reverse=False):
    def kernel(a, val, out):
        val = a.array.dtype.type(val)
        args = (val, a.array) if reverse else (a.array, val)
        getattr(cp(), ufunc)(*args, out=out.array)
    kernel.__doc__ = f"out = {ufunc}({'val, a' if reverse else 'a, val'}), elementwise."
    return kernel


def _unary(ufunc):
    def kernel(a, out):
        getattr(cp(), ufunc)(a.array, out=out.array)
    kernel.__doc__ = f"out = {ufunc}(a), elementwise."
    return kernel


ewise_add = _arith("add")
ewise_sub = _arith("subtract")
ewise_mul = _arith("multiply")
scalar_add = _scalar_arith("add")
scalar_mul = _scalar_arith("multiply")
scalar_rsub = _scalar_arith("subtract", reverse=True)

# Float dtypes only (core turns integer true division and powers into float first).
ewise_div = _binary("divide")
ewise_power = _binary("power")
scalar_div = _scalar("divide")
scalar_power = _scalar("power")
scalar_rdiv = _scalar("divide", reverse=True)
ewise_log = _unary("log")
ewise_exp = _unary("exp")
ewise_tanh = _unary("tanh")
ewise_sqrt = _unary("sqrt")


def ewise_sigmoid(a, out):
    """out = 1 / (1 + exp(-a)), as the fused needle_ewise_sigmoid (finite for every finite a)."""
    _kernels.elementwise("needle_ewise_sigmoid")(a.array, out.array)


def ewise_relu(a, out):
    """out = maximum(a, 0) (NaN stays NaN, as in numpy)."""
    cp().maximum(a.array, out.array.dtype.type(0), out=out.array)


def ewise_neg(a, out):
    """out = -a (integers wrap: -INT_MIN is INT_MIN)."""
    src = a.array
    if src.dtype.kind in "iu":
        src = _wrapping(src)
        cp().subtract(src.dtype.type(0), src, out=_wrapping(out.array))
    else:
        cp().negative(src, out=out.array)


def ewise_abs(a, out):
    """out = |a| (|INT_MIN| is INT_MIN, as in numpy; NaN stays NaN)."""
    if a.array.dtype.kind == "i":
        _kernels.elementwise("needle_abs_signed")(a.array, out.array)
    else:
        cp().absolute(a.array, out=out.array)


# ---- every dtype: maximum/minimum (NaN propagates), comparisons (bool out) --------------------------
ewise_maximum = _binary("maximum")
ewise_minimum = _binary("minimum")
scalar_maximum = _scalar("maximum")
scalar_minimum = _scalar("minimum")

# IEEE rules: every comparison with NaN is False, except != which is True.
ewise_eq = _binary("equal")
ewise_ne = _binary("not_equal")
ewise_lt = _binary("less")
ewise_le = _binary("less_equal")
ewise_gt = _binary("greater")
ewise_ge = _binary("greater_equal")
scalar_eq = _scalar("equal")
scalar_ne = _scalar("not_equal")
scalar_lt = _scalar("less")
scalar_le = _scalar("less_equal")
scalar_gt = _scalar("greater")
scalar_ge = _scalar("greater_equal")

# ---- integers and bool: bitwise on integers, logical on bool -----------------------------------------
ewise_and = _binary("bitwise_and")
ewise_or = _binary("bitwise_or")
ewise_xor = _binary("bitwise_xor")
ewise_not = _unary("invert")


# ---- where and cast ---------------------------------------------------------------------------------
def where(cond, a, b, out):
    """out = a where cond else b (cond a bool buffer; a, b, out of one dtype), one fused launch."""
    _kernels.elementwise("needle_where")(cond.array, a.array, b.array, out.array)


def cast_bounds(src_dtype, dst_dtype):
    """``(lo, hi, ymin, ymax)`` for needle_cast_float_to_int: a float x with lo < x < hi truncates into range.

    lo is MIN - 1 and hi is MAX + 1 rounded to the float type: MIN is a power of two, so MIN - 1 rounds
    to MIN or stays exact, and MAX + 1 is exact; x <= lo saturates to MIN, x >= hi to MAX.
    """
    src, dst = np.dtype(src_dtype), np.dtype(dst_dtype)
    info = np.iinfo(dst)
    return src.type(info.min - 1), src.type(info.max + 1), dst.type(info.min), dst.type(info.max)


def cast(a, out):
    """out = a converted to out's dtype: floats truncate toward zero into integers (NaN gives 0, values out
    of range saturate), anything to bool is ``!= 0``, bool gives 0 and 1."""
    src, dst = a.array, out.array
    if src.dtype.kind == "f" and dst.dtype.kind in "iu":
        _kernels.elementwise("needle_cast_float_to_int")(src, *cast_bounds(src.dtype, dst.dtype), dst)
    else:
        cp().copyto(dst, src, casting="unsafe")
