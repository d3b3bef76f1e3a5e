"""The built-in numpy backend: the protocol on flat numpy arrays, always available.

Every kernel is one vectorised numpy call; strided views are built with
``as_strided`` over the flat buffer, never with a Python loop per element.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

PROTOCOL_VERSION = 1  # protocol 2 kernels land next (see protocol.py)

DTYPES = ("float32", "float64")


class Array:
    """A flat buffer of ``size`` elements of ``dtype`` in host memory."""

    __slots__ = ("array", "dtype")

    def __init__(self, size, dtype="float32"):
        if dtype not in DTYPES:
            raise TypeError(f"numpy backend supports dtypes {DTYPES}, got dtype={dtype!r}")
        self.array = np.empty(int(size), dtype=dtype)
        self.dtype = dtype  # a plain str: numpy's dtype.name is slow on the hot path

    @property
    def size(self):
        return self.array.size

    def ptr(self):
        """Address of the first element, so tests can tell whether two views share memory."""
        return self.array.ctypes.data


def _view(a, shape, strides, offset):
    flat = a.array
    item = flat.itemsize
    return as_strided(flat[offset:], shape=tuple(shape), strides=tuple(s * item for s in strides))


def from_numpy(np_array, out):
    out.array[:] = np.ascontiguousarray(np_array).reshape(-1)


def to_numpy(a, shape, strides, offset):
    return _view(a, shape, strides, offset).copy()


def fill(out, value):
    out.array.fill(value)


def compact(a, out, shape, strides, offset):
    out.array[:] = _view(a, shape, strides, offset).reshape(-1)


def ewise_setitem(a, out, shape, strides, offset):
    view = as_strided(out.array[offset:], shape=tuple(shape),
                      strides=tuple(s * out.array.itemsize for s in strides), writeable=True)
    view[...] = a.array[: view.size].reshape(view.shape)


def scalar_setitem(size, val, out, shape, strides, offset):
    view = as_strided(out.array[offset:], shape=tuple(shape),
                      strides=tuple(s * out.array.itemsize for s in strides), writeable=True)
    view[...] = val


def _binary(fn):
    def kernel(a, b, out):
        fn(a.array, b.array, out=out.array)
    return kernel


def _scalar(fn):
    def kernel(a, val, out):
        fn(a.array, out.array.dtype.type(val), out=out.array)
    return kernel


def _compare(fn):
    def kernel(a, b, out):
        out.array[:] = fn(a.array, b.array)
    return kernel


def _scalar_compare(fn):
    def kernel(a, val, out):
        out.array[:] = fn(a.array, val)
    return kernel


def _unary(fn):
    def kernel(a, out):
        fn(a.array, out=out.array)
    return kernel


ewise_add = _binary(np.add)
ewise_sub = _binary(np.subtract)
ewise_mul = _binary(np.multiply)
ewise_div = _binary(np.divide)
ewise_maximum = _binary(np.maximum)
ewise_power = _binary(np.power)
ewise_eq = _compare(np.equal)
ewise_ge = _compare(np.greater_equal)

scalar_add = _scalar(np.add)
scalar_mul = _scalar(np.multiply)
scalar_div = _scalar(np.divide)
scalar_power = _scalar(np.power)
scalar_maximum = _scalar(np.maximum)
scalar_eq = _scalar_compare(np.equal)
scalar_ge = _scalar_compare(np.greater_equal)


def scalar_rsub(a, val, out):
    np.subtract(out.array.dtype.type(val), a.array, out=out.array)


def scalar_rdiv(a, val, out):
    np.divide(out.array.dtype.type(val), a.array, out=out.array)


ewise_log = _unary(np.log)
ewise_exp = _unary(np.exp)
ewise_tanh = _unary(np.tanh)
ewise_neg = _unary(np.negative)
ewise_sqrt = _unary(np.sqrt)


def ewise_relu(a, out):
    np.maximum(a.array, 0, out=out.array)


def ewise_sigmoid(a, out):
    # 0.5 * (1 + tanh(x / 2)) is finite for every finite x, unlike 1 / (1 + exp(-x)).
    np.multiply(a.array, 0.5, out=out.array)
    np.tanh(out.array, out=out.array)
    out.array += 1
    out.array *= 0.5


def matmul(a, b, out, m, n, p):
    np.matmul(a.array[: m * n].reshape(m, n), b.array[: n * p].reshape(n, p),
              out=out.array[: m * p].reshape(m, p))


def matmul_batched(a, b, out, batch, m, n, p):
    np.matmul(a.array[: batch * m * n].reshape(batch, m, n),
              b.array[: batch * n * p].reshape(batch, n, p),
              out=out.array[: batch * m * p].reshape(batch, m, p))


def reduce_sum(a, out, reduce_size):
    if reduce_size == 0:
        out.array.fill(0)
        return
    np.sum(a.array[: out.size * reduce_size].reshape(-1, reduce_size), axis=1, out=out.array)


def reduce_max(a, out, reduce_size):
    np.max(a.array[: out.size * reduce_size].reshape(-1, reduce_size), axis=1, out=out.array)
