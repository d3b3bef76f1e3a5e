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
- Aliasing: an ELEMENTWISE kernel (``ewise_*``, ``scalar_*``, ``where``, ``cast`` between equal dtypes)
  may get ``out`` equal to one of its inputs (``x += y``, optimiser updates): it must give the same
  result as with a distinct ``out`` (``ewise_div`` written as ``out = 1 / b; out *= a`` is wrong when
  ``out is a``). ``compact``, ``matmul`` and the reductions always get an ``out`` of their own.
- Scalars arrive as a Python ``float`` for float buffers and a Python ``int`` for integer and bool
  buffers, already in range of the dtype; compute in the buffer's dtype.

Each stub's docstring is the one of the same method of needle.backend_ndarray.contract.Backend, the
contract as code (needle-core's tests keep the two equal; the table there also lists every optional and
fused kernel with its signature). Dtypes (protocol 2):
every kernel takes every dtype in DTYPES that its docstring's "Dtypes:" line allows. "all" means every
declared dtype; "not bool": needle maps bool arithmetic to the logical kernels; "float": needle turns
integer true division and powers into float first; "integer, bool": the logical kernels. Integer
arithmetic wraps modulo 2**bits (in C/C++ compute signed sums and products in unsigned arithmetic:
signed overflow is undefined behaviour).
"""
# The protocol version these kernels implement (needle-core 0.2 drives versions 1 and 2). Protocol 1
# backends are float-only; write 2 for a new backend.
PROTOCOL_VERSION = 2  # the protocol these kernels implement (a literal, so core can refuse a mismatch)

#: dtype names this backend supports: any of "float32", "float64", "int32", "int64", "uint8", "bool"
#: (needle.backend_ndarray.protocol.ALL_DTYPES). "float32" is needed by almost every model; add the
#: others you can. needle refuses the dtypes you leave out on this device, naming them.
DTYPES = ("float32",)

#: dtypes the fused kernels (protocol.FUSED_KERNELS, conv2d_nhwc) you define run on; needle calls them
#: for no other. Delete it (the default is ("float32",)) when you define none.
FUSED_DTYPES = ("float32",)

#: The optimiser steps you define (adam_step, sgd_step, rmsprop_step) that stay right with out = param,
#: the same buffer (each element's param read before its out is written): needle then updates a
#: parameter's buffer in place, with no copy. Leave it empty unless the conformance suite passes so.
IN_PLACE_UPDATES = ()

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

    Dtypes: all. Needs: ``.size`` (int), ``.dtype`` (the dtype name as a str, e.g. "float32") and ``.ptr()``
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
    """Copy ``np_array`` into ``out``: a C-contiguous numpy array of out's dtype and out.size elements (any shape).

    Dtypes: all."""
    raise _todo("from_numpy")


def to_numpy(a, shape, strides, offset):
    """Return a NEW numpy array of ``shape`` and a's dtype holding the strided view of ``a``.

    Dtypes: all (a bool buffer gives a numpy ``bool`` array)."""
    raise _todo("to_numpy")


def fill(out, value):
    """Set every element of ``out`` to ``value``. Dtypes: all."""
    raise _todo("fill")


# ---- strided copies -----------------------------------------------------------------------------
def compact(a, out, shape, strides, offset):
    """Gather the view ``(shape, strides, offset)`` of ``a`` into compact ``out`` (out.size == prod(shape)).

    ``out[j]`` is the j-th element of the view in row-major order. ``a`` is not modified. Dtypes: all.
    """
    raise _todo("compact")


def ewise_setitem(a, out, shape, strides, offset):
    """Scatter compact ``a`` (prod(shape) elements) into the view ``(shape, strides, offset)`` of ``out``.

    The j-th element of ``a`` goes to the j-th element (row-major) of the view; the rest of
    ``out`` is untouched. Views written to never repeat an element (no stride 0). Dtypes: all.
    """
    raise _todo("ewise_setitem")


def scalar_setitem(size, value, out, shape, strides, offset):
    """Set the ``size`` (== prod(shape)) elements of the view of ``out`` to ``value``. Dtypes: all."""
    raise _todo("scalar_setitem")


# ---- elementwise: a, b, out compact and of one size ----------------------------------------------
def ewise_add(a, b, out):
    """out = a + b. Dtypes: not bool (integers wrap)."""
    raise _todo("ewise_add")


def ewise_mul(a, b, out):
    """out = a * b. Dtypes: not bool (integers wrap)."""
    raise _todo("ewise_mul")


def ewise_div(a, b, out):
    """out = a / b (IEEE: x/0 is inf or nan, no error). Dtypes: float."""
    raise _todo("ewise_div")


def ewise_maximum(a, b, out):
    """out = max(a, b); NaN if either is NaN (as numpy.maximum). Dtypes: all (on bool: or)."""
    raise _todo("ewise_maximum")


def ewise_minimum(a, b, out):
    """out = min(a, b); NaN if either is NaN (as numpy.minimum). Dtypes: all (on bool: and)."""
    raise _todo("ewise_minimum")


def ewise_eq(a, b, out):
    """out = (a == b), a BOOL buffer (protocol 1 wrote 1.0/0.0); NaN == anything is False. Dtypes of a, b: all."""
    raise _todo("ewise_eq")


def ewise_ge(a, b, out):
    """out = (a >= b), a bool buffer; False where either is NaN. Dtypes of a, b: all."""
    raise _todo("ewise_ge")


def scalar_add(a, value, out):
    """out = a + value. Dtypes: not bool (integers wrap)."""
    raise _todo("scalar_add")


def scalar_mul(a, value, out):
    """out = a * value. Dtypes: not bool (integers wrap)."""
    raise _todo("scalar_mul")


def scalar_div(a, value, out):
    """out = a / value. Dtypes: float."""
    raise _todo("scalar_div")


def scalar_power(a, value, out):
    """out = a ** value (value may be fractional or negative). Dtypes: float."""
    raise _todo("scalar_power")


def scalar_maximum(a, value, out):
    """out = max(a, value); NaN stays NaN. Dtypes: all."""
    raise _todo("scalar_maximum")


def scalar_minimum(a, value, out):
    """out = min(a, value); NaN stays NaN. Dtypes: all."""
    raise _todo("scalar_minimum")


def scalar_eq(a, value, out):
    """out = (a == value), a bool buffer. Dtypes of a: all."""
    raise _todo("scalar_eq")


def scalar_ge(a, value, out):
    """out = (a >= value), a bool buffer; False where a is NaN. Dtypes of a: all."""
    raise _todo("scalar_ge")


def ewise_log(a, out):
    """out = log(a). Dtypes: float."""
    raise _todo("ewise_log")


def ewise_exp(a, out):
    """out = exp(a). Dtypes: float."""
    raise _todo("ewise_exp")


def ewise_tanh(a, out):
    """out = tanh(a). Dtypes: float."""
    raise _todo("ewise_tanh")


def ewise_and(a, b, out):
    """out = a & b: bitwise on integers, logical on bool. Dtypes: integer, bool."""
    raise _todo("ewise_and")


def ewise_or(a, b, out):
    """out = a | b: bitwise on integers, logical on bool. Dtypes: integer, bool."""
    raise _todo("ewise_or")


def ewise_xor(a, b, out):
    """out = a ^ b: bitwise on integers, logical on bool. Dtypes: integer, bool."""
    raise _todo("ewise_xor")


def ewise_not(a, out):
    """out = ~a: bitwise not on integers, logical not on bool. Dtypes: integer, bool."""
    raise _todo("ewise_not")


def where(cond, a, b, out):
    """out[i] = a[i] if cond[i] else b[i]; cond a bool buffer, a, b and out of one dtype. Dtypes: all."""
    raise _todo("where")


def cast(a, out):
    """out[i] = a[i] converted to out's dtype (a and out of any two declared dtypes, one size). Dtypes: all.

    Float to integer truncates toward zero; NaN, inf and values out of the target's range give an
    unspecified value, never a crash or undefined behaviour (clamp first in C/C++). To bool is
    ``!= 0`` (NaN is True); from bool gives 0 and 1.
    """
    raise _todo("cast")


# ---- matmul and reductions ----------------------------------------------------------------------
def matmul(a, b, out, m, n, p):
    """out (m, p) = a (m, n) @ b (n, p); all compact row-major. Overwrite out (n may be 0: zeros).

    Dtypes: not bool (integers wrap)."""
    raise _todo("matmul")


def reduce_sum(a, out, reduce_size):
    """out[i] = a[i*reduce_size] + ... + a[(i+1)*reduce_size - 1] for i < out.size (0 when reduce_size is 0).

    Dtypes: not bool (integers wrap)."""
    raise _todo("reduce_sum")


def reduce_max(a, out, reduce_size):
    """out[i] = max of a[i*reduce_size : (i+1)*reduce_size] (needle never passes reduce_size 0).

    NaN if the group holds one. Dtypes: all (on bool: any)."""
    raise _todo("reduce_max")


def reduce_min(a, out, reduce_size):
    """out[i] = min of the i-th group of reduce_size elements. NaN if the group holds one.

    Dtypes: all (bool: all)."""
    raise _todo("reduce_min")


def reduce_argmax(a, out, reduce_size):
    """out[i] (an int64 buffer) = index in the i-th group of its FIRST maximum; a NaN counts as the maximum
    (the first NaN wins, as in numpy). Dtypes of a: all."""
    raise _todo("reduce_argmax")


def reduce_argmin(a, out, reduce_size):
    """out[i] (an int64 buffer) = index in the i-th group of its first minimum (the first NaN wins).

    Dtypes of a: all."""
    raise _todo("reduce_argmin")


# ---- optional kernels ---------------------------------------------------------------------------
# Define any of needle.backend_ndarray.protocol.OPTIONAL_KERNELS or OPTIONAL_KERNELS_V2 to replace
# needle's fallback, and list it in OPTIONAL_KERNELS above, e.g.
#
#   def ewise_relu(a, out):
#       """out = max(a, 0). Dtypes: float."""
#
# Protocol 2 adds (needle composes them when absent):
#   ewise_ne/lt/le/gt(a, b, out), scalar_ne/lt/le/gt(a, value, out): bool out, IEEE rules (ne is True for
#       NaN, the others False). Dtypes of a: all.
#   ewise_abs(a, out): |a|. Dtypes: not bool.
#   gather_rows(a, idx, out, rows, row_size, count): out row i = a row idx[i] for i < count (idx an int64
#       buffer, a holding ``rows`` rows of row_size). Dtypes: all.
#   scatter_add_rows(g, idx, out, rows, row_size, count): out row idx[i] += g row i (repeated indexes
#       accumulate; out is not cleared first). Dtypes: not bool.
#   Both check every index is in [0, rows) and raise IndexError naming the first bad one before touching
#   memory (on a device: check there and read back one scalar, never the indexes).
#
# A defined name is used, so never define one that only raises NotImplementedError.
