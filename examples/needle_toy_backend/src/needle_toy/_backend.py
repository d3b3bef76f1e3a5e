"""The "toy" backend: Needle's backend protocol 2 on flat numpy buffers of four dtypes.

A protocol module is a plain module with the names below. Needle's NDArray does all the view
logic (shapes, strides, broadcasting, slicing) and calls these kernels on flat buffers:

- a buffer is an ``Array``: ``size`` elements of one dtype, row-major, no shape of its own;
- a strided view of a buffer is ``(shape, strides, offset)`` with strides and offset counted
  in elements (not bytes): element ``(i0, i1, ...)`` lives at
  ``offset + i0 * strides[0] + i1 * strides[1] + ...``;
- elementwise kernels get compact buffers of one size (the output's) and write every element;
  ``out`` may be one of the inputs (numpy's ufuncs with ``out=`` handle that).

A backend declares the dtypes it supports: this one has float32, int64, uint8 (MNIST's labels) and
bool (needle refuses the others on this device, naming them). Each kernel runs on the dtypes the
protocol gives it (``needle.backend_ndarray.protocol``): arithmetic on float32 and the integers,
division and the transcendental functions on float32, logical kernels on the integers and bool,
comparisons write bool.

Only the REQUIRED kernels are here, plus one optional kernel (``ewise_relu``) to show how a
backend speeds up what core would otherwise compose from required kernels.
"""
import numpy as np

# The protocol version these kernels implement; needle refuses the backend when it cannot drive it.
PROTOCOL_VERSION = 2  # the protocol these kernels implement (a literal, so core can refuse a mismatch)

DTYPES = ("float32", "int64", "uint8", "bool")

#: Optional kernels defined below (core finds them by name; listing them is for readers and tools).
OPTIONAL_KERNELS = ("ewise_relu",)


def unavailable_reason():
    """None: this backend runs wherever numpy does (a GPU backend would say why it cannot run)."""
    return None


class Array:
    """A flat buffer of ``size`` elements of one of DTYPES."""

    __slots__ = ("data",)

    def __init__(self, size, dtype="float32"):
        if dtype not in DTYPES:
            raise TypeError(f"toy backend supports dtypes {DTYPES}, got dtype={dtype!r}")
        self.data = np.empty(int(size), dtype=dtype)

    @property
    def size(self):
        return self.data.size

    @property
    def dtype(self):
        return self.data.dtype.name

    def ptr(self):
        """Address of element 0 (needle compares it to tell whether two arrays share memory)."""
        return self.data.__array_interface__["data"][0]


def _scalar(a, value):
    """``value`` (a Python int for int64/bool buffers, a float for float32) as a scalar of a's dtype."""
    return a.data.dtype.type(value)


def _positions(shape, strides, offset):
    """Flat buffer positions of every element of the view, in row-major order."""
    pos = np.asarray(offset, dtype=np.intp)
    for n, stride in zip(shape, strides):
        # Appends one axis per step: pos[..., i] = previous + i * stride.
        pos = np.add.outer(pos, np.arange(n, dtype=np.intp) * stride)
    return pos.reshape(-1)


# ---- buffers ------------------------------------------------------------------------------------
def from_numpy(np_array, out):
    """Copy a compact numpy array (already of out's dtype) into ``out``."""
    out.data[:] = np.asarray(np_array).reshape(-1)


def to_numpy(a, shape, strides, offset):
    """A new numpy array holding the strided view of ``a``."""
    return a.data[_positions(shape, strides, offset)].reshape(tuple(shape))


def fill(out, value):
    out.data[:] = value


# ---- strided copies -----------------------------------------------------------------------------
def compact(a, out, shape, strides, offset):
    """Gather the view of ``a`` into the compact buffer ``out`` (out.size == prod(shape))."""
    out.data[:] = a.data[_positions(shape, strides, offset)]


def ewise_setitem(a, out, shape, strides, offset):
    """Scatter the compact buffer ``a`` into the view of ``out``."""
    pos = _positions(shape, strides, offset)
    out.data[pos] = a.data[: pos.size]


def scalar_setitem(size, value, out, shape, strides, offset):
    """Set the ``size`` elements of the view of ``out`` to ``value``."""
    out.data[_positions(shape, strides, offset)] = value


# ---- elementwise: compact buffers of one size ----------------------------------------------------
# float32 and int64 (int64 wraps on overflow, as numpy's arrays do); bool arithmetic never reaches here.
def ewise_add(a, b, out):
    np.add(a.data, b.data, out=out.data)


def ewise_mul(a, b, out):
    np.multiply(a.data, b.data, out=out.data)


def scalar_add(a, value, out):
    np.add(a.data, _scalar(a, value), out=out.data)


def scalar_mul(a, value, out):
    np.multiply(a.data, _scalar(a, value), out=out.data)


# float32 only (needle turns integer division and powers into float first)
def ewise_div(a, b, out):
    with np.errstate(divide="ignore", invalid="ignore"):  # x/0 is inf or nan, as IEEE says; no warning
        np.divide(a.data, b.data, out=out.data)


def scalar_div(a, value, out):
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(a.data, _scalar(a, value), out=out.data)


def scalar_power(a, value, out):
    with np.errstate(divide="ignore", invalid="ignore"):
        np.power(a.data, _scalar(a, value), out=out.data)


def ewise_log(a, out):
    with np.errstate(divide="ignore", invalid="ignore"):
        np.log(a.data, out=out.data)


def ewise_exp(a, out):
    with np.errstate(over="ignore"):
        np.exp(a.data, out=out.data)


def ewise_tanh(a, out):
    np.tanh(a.data, out=out.data)


# every dtype: maximum/minimum (NaN propagates), comparisons writing a bool ``out`` (NaN compares False)
def ewise_maximum(a, b, out):
    np.maximum(a.data, b.data, out=out.data)


def ewise_minimum(a, b, out):
    np.minimum(a.data, b.data, out=out.data)


def scalar_maximum(a, value, out):
    np.maximum(a.data, _scalar(a, value), out=out.data)


def scalar_minimum(a, value, out):
    np.minimum(a.data, _scalar(a, value), out=out.data)


def ewise_eq(a, b, out):
    np.equal(a.data, b.data, out=out.data)


def ewise_ge(a, b, out):
    np.greater_equal(a.data, b.data, out=out.data)


def scalar_eq(a, value, out):
    np.equal(a.data, _scalar(a, value), out=out.data)


def scalar_ge(a, value, out):
    np.greater_equal(a.data, _scalar(a, value), out=out.data)


# int64 and bool: bitwise on integers, logical on bool
def ewise_and(a, b, out):
    np.bitwise_and(a.data, b.data, out=out.data)


def ewise_or(a, b, out):
    np.bitwise_or(a.data, b.data, out=out.data)


def ewise_xor(a, b, out):
    np.bitwise_xor(a.data, b.data, out=out.data)


def ewise_not(a, out):
    np.invert(a.data, out=out.data)


def where(cond, a, b, out):
    """out = a where cond (a bool buffer) else b; a, b and out share one dtype."""
    out.data[:] = np.where(cond.data, a.data, b.data)  # np.where makes a new array: out may be a or b


def cast(a, out):
    """out = a converted to out's dtype: floats truncate toward zero, to bool is ``!= 0``, bool gives 0 and 1.

    NaN, inf and out-of-range floats give an unspecified integer (numpy's), never an error.
    """
    with np.errstate(invalid="ignore"):
        np.copyto(out.data, a.data, casting="unsafe")


# ---- matmul and reductions ----------------------------------------------------------------------
def matmul(a, b, out, m, n, p):
    """out (m, p) = a (m, n) @ b (n, p), all compact row-major; out is overwritten."""
    np.dot(a.data[: m * n].reshape(m, n), b.data[: n * p].reshape(n, p), out=out.data[: m * p].reshape(m, p))


def reduce_sum(a, out, reduce_size):
    """out[i] = sum of a[i * reduce_size : (i + 1) * reduce_size]; 0 for empty groups."""
    np.sum(_groups(a, out, reduce_size), axis=1, out=out.data)


def reduce_max(a, out, reduce_size):
    """out[i] = max of the i-th group of reduce_size elements (core never asks for empty groups; on bool: any)."""
    np.max(_groups(a, out, reduce_size), axis=1, out=out.data)


def reduce_min(a, out, reduce_size):
    """out[i] = min of the i-th group (on bool: all)."""
    np.min(_groups(a, out, reduce_size), axis=1, out=out.data)


def reduce_argmax(a, out, reduce_size):
    """out[i] (an int64 buffer) = index in the i-th group of its first maximum (the first NaN wins)."""
    np.argmax(_groups(a, out, reduce_size), axis=1, out=out.data)


def reduce_argmin(a, out, reduce_size):
    """out[i] = index in the i-th group of its first minimum (the first NaN wins)."""
    np.argmin(_groups(a, out, reduce_size), axis=1, out=out.data)


def _groups(a, out, reduce_size):
    return a.data[: out.size * reduce_size].reshape(out.size, reduce_size)


# ---- optional -------------------------------------------------------------------------------------
def ewise_relu(a, out):
    """max(a, 0) in one pass; without it core computes ``a.maximum(0.0)`` through scalar_maximum."""
    np.maximum(a.data, _scalar(a, 0), out=out.data)
