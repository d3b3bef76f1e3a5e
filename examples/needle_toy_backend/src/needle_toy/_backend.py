"""The "toy" backend: Needle's backend protocol on flat float32 numpy buffers.

A protocol module is a plain module with the names below. Needle's NDArray does all the view
logic (shapes, strides, broadcasting, slicing) and calls these kernels on flat buffers:

- a buffer is an ``Array``: ``size`` elements of one dtype, row-major, no shape of its own;
- a strided view of a buffer is ``(shape, strides, offset)`` with strides and offset counted
  in elements (not bytes): element ``(i0, i1, ...)`` lives at
  ``offset + i0 * strides[0] + i1 * strides[1] + ...``;
- elementwise kernels get compact buffers of one size (the output's) and write every element.

Only the REQUIRED kernels are here, plus one optional kernel (``ewise_relu``) to show how a
backend speeds up what core would otherwise compose from required kernels.
"""
import numpy as np

# The protocol version these kernels implement; needle refuses the backend when it differs.
PROTOCOL_VERSION = 1  # the protocol these kernels implement (a literal, so core can refuse a mismatch)

DTYPES = ("float32",)

#: Optional kernels defined below (core finds them by name; listing them is for readers and tools).
OPTIONAL_KERNELS = ("ewise_relu",)


def unavailable_reason():
    """None: this backend runs wherever numpy does (a GPU backend would say why it cannot run)."""
    return None


class Array:
    """A flat buffer of ``size`` float32 elements."""

    __slots__ = ("data",)

    def __init__(self, size, dtype="float32"):
        if dtype not in DTYPES:
            raise TypeError(f"toy backend supports dtypes {DTYPES}, got dtype={dtype!r}")
        self.data = np.empty(int(size), dtype=np.float32)

    @property
    def size(self):
        return self.data.size

    @property
    def dtype(self):
        return "float32"

    def ptr(self):
        """Address of element 0 (needle compares it to tell whether two arrays share memory)."""
        return self.data.__array_interface__["data"][0]


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
    out.data[:] = np.asarray(np_array, dtype=np.float32).reshape(-1)


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
def ewise_add(a, b, out):
    np.add(a.data, b.data, out=out.data)


def ewise_mul(a, b, out):
    np.multiply(a.data, b.data, out=out.data)


def ewise_div(a, b, out):
    with np.errstate(divide="ignore", invalid="ignore"):  # x/0 is inf or nan, as IEEE says; no warning
        np.divide(a.data, b.data, out=out.data)


def ewise_maximum(a, b, out):
    np.maximum(a.data, b.data, out=out.data)


def ewise_eq(a, b, out):
    out.data[:] = a.data == b.data  # comparisons write 1.0 / 0.0 in the buffer's dtype


def ewise_ge(a, b, out):
    out.data[:] = a.data >= b.data


def scalar_add(a, value, out):
    np.add(a.data, np.float32(value), out=out.data)


def scalar_mul(a, value, out):
    np.multiply(a.data, np.float32(value), out=out.data)


def scalar_div(a, value, out):
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(a.data, np.float32(value), out=out.data)


def scalar_power(a, value, out):
    with np.errstate(divide="ignore", invalid="ignore"):
        np.power(a.data, np.float32(value), out=out.data)


def scalar_maximum(a, value, out):
    np.maximum(a.data, np.float32(value), out=out.data)


def scalar_eq(a, value, out):
    out.data[:] = a.data == np.float32(value)


def scalar_ge(a, value, out):
    out.data[:] = a.data >= np.float32(value)


def ewise_log(a, out):
    with np.errstate(divide="ignore", invalid="ignore"):
        np.log(a.data, out=out.data)


def ewise_exp(a, out):
    with np.errstate(over="ignore"):
        np.exp(a.data, out=out.data)


def ewise_tanh(a, out):
    np.tanh(a.data, out=out.data)


# ---- matmul and reductions ----------------------------------------------------------------------
def matmul(a, b, out, m, n, p):
    """out (m, p) = a (m, n) @ b (n, p), all compact row-major; out is overwritten."""
    np.dot(a.data[: m * n].reshape(m, n), b.data[: n * p].reshape(n, p), out=out.data[: m * p].reshape(m, p))


def reduce_sum(a, out, reduce_size):
    """out[i] = sum of a[i * reduce_size : (i + 1) * reduce_size]; 0 for empty groups."""
    groups = a.data[: out.size * reduce_size].reshape(out.size, reduce_size)
    np.sum(groups, axis=1, out=out.data)


def reduce_max(a, out, reduce_size):
    """out[i] = max of the i-th group of reduce_size elements (core never asks for empty groups)."""
    groups = a.data[: out.size * reduce_size].reshape(out.size, reduce_size)
    np.max(groups, axis=1, out=out.data)


# ---- optional -------------------------------------------------------------------------------------
def ewise_relu(a, out):
    """max(a, 0) in one pass; without it core computes ``a.maximum(0.0)`` through scalar_maximum."""
    np.maximum(a.data, np.float32(0), out=out.data)
