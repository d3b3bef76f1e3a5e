"""A deliberately minimal backend used to test core: the REQUIRED kernels of protocol 2 only.

It has no optional kernel, so every core fallback (subtraction, negation, sqrt, sigmoid,
relu, elementwise power, batched matmul, the comparisons ne/lt/le/gt, abs, gathers and
scatters on the host) runs on it. It declares every dtype but float64, so core's "this device
lacks that dtype" paths run too. It is written independently of the numpy backend: strided
views are gathered through explicit flat index arrays (``offset + sum(i_k * stride_k)``)
instead of ``as_strided``, results are computed into temporaries and then copied (alias-safe
by construction), and maximum/minimum/argmax are built from comparisons rather than numpy's
own ``maximum``/``argmax``, so a bug in one of the two backends does not hide the same bug in
the other.
"""
import numpy as np

from needle.backend_ndarray.protocol import FLOAT_DTYPES

PROTOCOL_VERSION = 2

DTYPES = ("float32", "int32", "int64", "uint8", "bool")


class Array:
    """A flat buffer of one of :data:`DTYPES`."""

    __slots__ = ("buf",)

    def __init__(self, size, dtype="float32"):
        if dtype not in DTYPES:
            raise TypeError(f"reference backend supports dtypes {DTYPES}, got dtype={dtype!r}")
        self.buf = np.zeros(int(size), dtype=dtype)

    @property
    def size(self):
        return self.buf.size

    @property
    def dtype(self):
        return self.buf.dtype.name

    def ptr(self):
        return self.buf.__array_interface__["data"][0]


def _flat_index(shape, strides, offset):
    """Flat buffer positions of every element of the view, in row-major order."""
    index = np.full(tuple(shape), offset, dtype=np.int64)
    for axis, (n, stride) in enumerate(zip(shape, strides)):
        steps = np.arange(n, dtype=np.int64) * stride
        index += steps.reshape((n,) + (1,) * (len(shape) - axis - 1))
    return index.reshape(-1)


def _scalar(out, val):
    """``val`` as a numpy scalar of ``out``'s dtype."""
    return out.buf.dtype.type(val)


def from_numpy(np_array, out):
    out.buf[:] = np.asarray(np_array, dtype=out.buf.dtype).reshape(-1)


def to_numpy(a, shape, strides, offset):
    return a.buf[_flat_index(shape, strides, offset)].reshape(tuple(shape))


def fill(out, value):
    out.buf[:] = _scalar(out, value)


def compact(a, out, shape, strides, offset):
    out.buf[:] = a.buf[_flat_index(shape, strides, offset)]


def ewise_setitem(a, out, shape, strides, offset):
    index = _flat_index(shape, strides, offset)
    out.buf[index] = a.buf[: index.size]


def scalar_setitem(size, val, out, shape, strides, offset):
    out.buf[_flat_index(shape, strides, offset)] = _scalar(out, val)


def cast(a, out):
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf/out of range: unspecified values
        out.buf[:] = a.buf.astype(out.buf.dtype)


def where(cond, a, b, out):
    picked = b.buf.copy()
    picked[cond.buf] = a.buf[cond.buf]
    out.buf[:] = picked


# ---- elementwise: every result goes through a temporary, so out may be an input ------------------
def _quiet():
    """IEEE results (inf, NaN) and wrapped integers, without numpy's RuntimeWarnings."""
    return np.errstate(all="ignore")


def ewise_add(a, b, out):
    with _quiet():
        out.buf[:] = a.buf + b.buf


def ewise_mul(a, b, out):
    with _quiet():
        out.buf[:] = a.buf * b.buf


def ewise_div(a, b, out):
    with _quiet():
        out.buf[:] = a.buf / b.buf


def _pick_max(a, b):
    # a where a >= b or a is NaN, else b: NaN propagates from either side (x != x only for NaN).
    return np.where((a >= b) | (a != a), a, b)


def _pick_min(a, b):
    return np.where((a <= b) | (a != a), a, b)


def ewise_maximum(a, b, out):
    out.buf[:] = _pick_max(a.buf, b.buf)


def ewise_minimum(a, b, out):
    out.buf[:] = _pick_min(a.buf, b.buf)


def ewise_eq(a, b, out):
    out.buf[:] = a.buf == b.buf


def ewise_ge(a, b, out):
    out.buf[:] = a.buf >= b.buf


def ewise_and(a, b, out):
    out.buf[:] = a.buf & b.buf


def ewise_or(a, b, out):
    out.buf[:] = a.buf | b.buf


def ewise_xor(a, b, out):
    out.buf[:] = a.buf ^ b.buf


def ewise_not(a, out):
    out.buf[:] = ~a.buf


def scalar_add(a, val, out):
    with _quiet():
        out.buf[:] = a.buf + _scalar(out, val)


def scalar_mul(a, val, out):
    with _quiet():
        out.buf[:] = a.buf * _scalar(out, val)


def scalar_div(a, val, out):
    with _quiet():
        out.buf[:] = a.buf / _scalar(out, val)


def scalar_power(a, val, out):
    with _quiet():
        out.buf[:] = a.buf ** _scalar(out, val)


def scalar_maximum(a, val, out):
    out.buf[:] = _pick_max(a.buf, _scalar(out, val))


def scalar_minimum(a, val, out):
    out.buf[:] = _pick_min(a.buf, _scalar(out, val))


def scalar_eq(a, val, out):
    out.buf[:] = a.buf == _scalar(a, val)


def scalar_ge(a, val, out):
    out.buf[:] = a.buf >= _scalar(a, val)


def ewise_log(a, out):
    with _quiet():
        out.buf[:] = np.log(a.buf)


def ewise_exp(a, out):
    with _quiet():
        out.buf[:] = np.exp(a.buf)


def ewise_tanh(a, out):
    out.buf[:] = np.tanh(a.buf)


# ---- matmul and reductions ---------------------------------------------------------------------
def matmul(a, b, out, m, n, p):
    # einsum, not matmul: a second code path, so the two backends check each other.
    with _quiet():
        out.buf[: m * p] = np.einsum("ij,jk->ik", a.buf[: m * n].reshape(m, n),
                                     b.buf[: n * p].reshape(n, p)).reshape(-1)


def _groups(a, out, reduce_size):
    return a.buf[: out.size * reduce_size].reshape(out.size, reduce_size)


def reduce_sum(a, out, reduce_size):
    with _quiet():  # accumulates in out's dtype: integer sums wrap like the elementwise kernels
        out.buf[:] = _groups(a, out, reduce_size).sum(axis=1, dtype=out.buf.dtype)


def reduce_max(a, out, reduce_size):
    out.buf[:] = _groups(a, out, reduce_size).max(axis=1)


def reduce_min(a, out, reduce_size):
    out.buf[:] = _groups(a, out, reduce_size).min(axis=1)


def _first_extreme(groups, extreme):
    """Index in each row of its first element equal to ``extreme`` (the row's max or min; NaN
    when the row holds one, and then the first NaN is the one picked)."""
    extreme = extreme[:, None]
    if groups.dtype.name in FLOAT_DTYPES:
        hit = (groups == extreme) | ((groups != groups) & (extreme != extreme))
    else:
        hit = groups == extreme
    return hit.argmax(axis=1)  # the first True of each row


def reduce_argmax(a, out, reduce_size):
    groups = _groups(a, out, reduce_size)
    out.buf[:] = _first_extreme(groups, groups.max(axis=1))


def reduce_argmin(a, out, reduce_size):
    groups = _groups(a, out, reduce_size)
    out.buf[:] = _first_extreme(groups, groups.min(axis=1))
