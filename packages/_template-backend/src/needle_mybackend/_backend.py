"""The protocol module of "mybackend": every kernel needle's NDArray calls, on flat buffers.

Fill in each function; until then each one raises NotImplementedError, so
``python -m needle check mybackend`` and the conformance suite show what is left.

Conventions every kernel follows (docs/writing-a-backend.md has the details):

- A buffer is an ``Array``: ``size`` elements of one dtype, flat, with no shape of its own.
- A strided view is ``(shape, strides, offset)``; strides and offset count ELEMENTS, not bytes.
  Element ``(i0, i1, ..., ik)`` of the view is ``buf[offset + i0*strides[0] + ... + ik*strides[k]]``.
  Strides may be 0 (broadcast) or negative (flipped); ``shape`` may be ``()`` or contain 0.
- "Compact" buffers hold an array in row-major order from element 0. Elementwise kernels get
  compact inputs and a compact ``out`` of the same size, and must write every element of ``out``.
- Kernels write into ``out`` (allocated by needle); they never return a buffer. Sizes may be 0.
- Scalars arrive as Python floats; compute in the buffer's dtype.
"""
# The protocol version these kernels implement: needle refuses the backend when it differs.
PROTOCOL_VERSION = 1  # the protocol these kernels implement (a literal, so core can refuse a mismatch)

#: dtype names this backend supports; "float32" is required, add "float64" if you can.
DTYPES = ("float32",)

#: Optional kernels this module defines (needle finds them by name; see the bottom of this file).
OPTIONAL_KERNELS = ()


def _todo(name):
    return NotImplementedError(f"needle_mybackend: {name} is not written yet (its docstring gives the contract)")


def unavailable_reason():
    """None when this backend can run here, else one sentence saying why not and what to install.

    needle calls it once, on the device's first use; a non-None answer disables the device
    (``needle.device("mybackend").enabled()`` is False and ``disabled_reason`` is your sentence).
    Delete it if your backend always runs.
    """
    return None


# For several devices (GPUs) also define:
#   def device_count(): ...            number of devices; index >= count is refused by needle
#   def for_device(index): ...         the protocol object (module-like) bound to device ``index`` > 0


# ---- buffers ------------------------------------------------------------------------------------
class Array:
    """A flat device buffer of ``size`` elements of ``dtype`` (one of DTYPES).

    Needs: ``.size`` (int), ``.dtype`` (the dtype name as a str, e.g. "float32") and ``.ptr()``
    (an int address, distinct for distinct live buffers; needle compares it to tell whether two
    arrays share memory). Raise TypeError for a dtype not in DTYPES. Contents start undefined.
    """

    def __init__(self, size, dtype="float32"):
        raise _todo("Array")

    @property
    def size(self):
        raise _todo("Array.size")

    @property
    def dtype(self):
        raise _todo("Array.dtype")

    def ptr(self):
        raise _todo("Array.ptr")


def from_numpy(np_array, out):
    """Copy ``np_array`` into ``out``: a C-contiguous numpy array of out's dtype and out.size elements (any shape)."""
    raise _todo("from_numpy")


def to_numpy(a, shape, strides, offset):
    """Return a NEW numpy array of ``shape`` and a's dtype holding the strided view of ``a``."""
    raise _todo("to_numpy")


def fill(out, value):
    """Set every element of ``out`` to ``value``."""
    raise _todo("fill")


# ---- strided copies -----------------------------------------------------------------------------
def compact(a, out, shape, strides, offset):
    """Gather the view ``(shape, strides, offset)`` of ``a`` into compact ``out`` (out.size == prod(shape)).

    ``out[j]`` is the j-th element of the view in row-major order. ``a`` is not modified.
    """
    raise _todo("compact")


def ewise_setitem(a, out, shape, strides, offset):
    """Scatter compact ``a`` (prod(shape) elements) into the view ``(shape, strides, offset)`` of ``out``.

    The j-th element of ``a`` goes to the j-th element (row-major) of the view; the rest of
    ``out`` is untouched. Views written to never repeat an element (no stride 0).
    """
    raise _todo("ewise_setitem")


def scalar_setitem(size, value, out, shape, strides, offset):
    """Set the ``size`` (== prod(shape)) elements of the view of ``out`` to ``value``."""
    raise _todo("scalar_setitem")


# ---- elementwise: a, b, out compact and of one size ----------------------------------------------
def ewise_add(a, b, out):
    """out = a + b"""
    raise _todo("ewise_add")


def ewise_mul(a, b, out):
    """out = a * b"""
    raise _todo("ewise_mul")


def ewise_div(a, b, out):
    """out = a / b (IEEE: x/0 is inf or nan, no error)"""
    raise _todo("ewise_div")


def ewise_maximum(a, b, out):
    """out = max(a, b)"""
    raise _todo("ewise_maximum")


def ewise_eq(a, b, out):
    """out = 1.0 where a == b else 0.0 (in out's dtype)"""
    raise _todo("ewise_eq")


def ewise_ge(a, b, out):
    """out = 1.0 where a >= b else 0.0"""
    raise _todo("ewise_ge")


def scalar_add(a, value, out):
    """out = a + value"""
    raise _todo("scalar_add")


def scalar_mul(a, value, out):
    """out = a * value"""
    raise _todo("scalar_mul")


def scalar_div(a, value, out):
    """out = a / value"""
    raise _todo("scalar_div")


def scalar_power(a, value, out):
    """out = a ** value (value may be fractional or negative)"""
    raise _todo("scalar_power")


def scalar_maximum(a, value, out):
    """out = max(a, value)"""
    raise _todo("scalar_maximum")


def scalar_eq(a, value, out):
    """out = 1.0 where a == value else 0.0"""
    raise _todo("scalar_eq")


def scalar_ge(a, value, out):
    """out = 1.0 where a >= value else 0.0"""
    raise _todo("scalar_ge")


def ewise_log(a, out):
    """out = log(a)"""
    raise _todo("ewise_log")


def ewise_exp(a, out):
    """out = exp(a)"""
    raise _todo("ewise_exp")


def ewise_tanh(a, out):
    """out = tanh(a)"""
    raise _todo("ewise_tanh")


# ---- matmul and reductions ----------------------------------------------------------------------
def matmul(a, b, out, m, n, p):
    """out (m, p) = a (m, n) @ b (n, p); all compact row-major. Overwrite out (n may be 0: zeros)."""
    raise _todo("matmul")


def reduce_sum(a, out, reduce_size):
    """out[i] = a[i*reduce_size] + ... + a[(i+1)*reduce_size - 1] for i < out.size (0 when reduce_size is 0)."""
    raise _todo("reduce_sum")


def reduce_max(a, out, reduce_size):
    """out[i] = max of a[i*reduce_size : (i+1)*reduce_size] (needle never passes reduce_size 0)."""
    raise _todo("reduce_max")


# ---- optional kernels ---------------------------------------------------------------------------
# Define any of needle.backend_ndarray.protocol.OPTIONAL_KERNELS to replace needle's fallback,
# and list it in OPTIONAL_KERNELS above, e.g.
#
#   def ewise_relu(a, out):
#       """out = max(a, 0)"""
#
# A defined name is used, so never define one that only raises NotImplementedError.
