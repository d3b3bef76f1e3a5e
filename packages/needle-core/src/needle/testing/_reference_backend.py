"""A deliberately minimal backend used to test core: the REQUIRED kernels only, float32 only.

It has no optional kernel, so every core fallback (subtraction, negation, sqrt, sigmoid,
relu, elementwise power, batched matmul) runs on it. It is written independently of the
numpy backend: strided views are gathered through explicit flat index arrays
(``offset + sum(i_k * stride_k)``) instead of ``as_strided``, so a bug in one of the two
does not hide the same bug in the other.
"""
import numpy as np

PROTOCOL_VERSION = 1  # protocol 2 kernels land next (see protocol.py)

DTYPES = ("float32",)


class Array:
    """A flat float32 buffer."""

    __slots__ = ("buf",)

    def __init__(self, size, dtype="float32"):
        if dtype not in DTYPES:
            raise TypeError(f"reference backend supports dtypes {DTYPES}, got dtype={dtype!r}")
        self.buf = np.zeros(int(size), dtype=np.float32)

    @property
    def size(self):
        return self.buf.size

    @property
    def dtype(self):
        return "float32"

    def ptr(self):
        return self.buf.__array_interface__["data"][0]


def _flat_index(shape, strides, offset):
    """Flat buffer positions of every element of the view, in row-major order."""
    index = np.full(tuple(shape), offset, dtype=np.int64)
    for axis, (n, stride) in enumerate(zip(shape, strides)):
        steps = np.arange(n, dtype=np.int64) * stride
        index += steps.reshape((n,) + (1,) * (len(shape) - axis - 1))
    return index.reshape(-1)


def from_numpy(np_array, out):
    out.buf[:] = np.asarray(np_array, dtype=np.float32).reshape(-1)


def to_numpy(a, shape, strides, offset):
    return a.buf[_flat_index(shape, strides, offset)].reshape(tuple(shape))


def fill(out, value):
    out.buf[:] = value


def compact(a, out, shape, strides, offset):
    out.buf[:] = a.buf[_flat_index(shape, strides, offset)]


def ewise_setitem(a, out, shape, strides, offset):
    index = _flat_index(shape, strides, offset)
    out.buf[index] = a.buf[: index.size]


def scalar_setitem(size, val, out, shape, strides, offset):
    out.buf[_flat_index(shape, strides, offset)] = val


def ewise_add(a, b, out):
    out.buf[:] = a.buf + b.buf


def ewise_mul(a, b, out):
    out.buf[:] = a.buf * b.buf


def ewise_div(a, b, out):
    with np.errstate(divide="ignore", invalid="ignore"):
        out.buf[:] = a.buf / b.buf


def ewise_maximum(a, b, out):
    out.buf[:] = np.where(a.buf >= b.buf, a.buf, b.buf)


def ewise_eq(a, b, out):
    out.buf[:] = (a.buf == b.buf).astype(np.float32)


def ewise_ge(a, b, out):
    out.buf[:] = (a.buf >= b.buf).astype(np.float32)


def scalar_add(a, val, out):
    out.buf[:] = a.buf + np.float32(val)


def scalar_mul(a, val, out):
    out.buf[:] = a.buf * np.float32(val)


def scalar_div(a, val, out):
    with np.errstate(divide="ignore", invalid="ignore"):
        out.buf[:] = a.buf / np.float32(val)


def scalar_power(a, val, out):
    with np.errstate(divide="ignore", invalid="ignore"):
        out.buf[:] = a.buf ** np.float32(val)


def scalar_maximum(a, val, out):
    out.buf[:] = np.where(a.buf >= np.float32(val), a.buf, np.float32(val))


def scalar_eq(a, val, out):
    out.buf[:] = (a.buf == np.float32(val)).astype(np.float32)


def scalar_ge(a, val, out):
    out.buf[:] = (a.buf >= np.float32(val)).astype(np.float32)


def ewise_log(a, out):
    with np.errstate(divide="ignore", invalid="ignore"):
        out.buf[:] = np.log(a.buf)


def ewise_exp(a, out):
    with np.errstate(over="ignore"):
        out.buf[:] = np.exp(a.buf)


def ewise_tanh(a, out):
    out.buf[:] = np.tanh(a.buf)


def matmul(a, b, out, m, n, p):
    # einsum, not matmul: a second code path, so the two backends check each other.
    out.buf[: m * p] = np.einsum("ij,jk->ik", a.buf[: m * n].reshape(m, n), b.buf[: n * p].reshape(n, p)).reshape(-1)


def reduce_sum(a, out, reduce_size):
    groups = a.buf[: out.size * reduce_size].reshape(out.size, reduce_size)
    out.buf[:] = groups.sum(axis=1, dtype=np.float32)


def reduce_max(a, out, reduce_size):
    out.buf[:] = a.buf[: out.size * reduce_size].reshape(out.size, reduce_size).max(axis=1)
