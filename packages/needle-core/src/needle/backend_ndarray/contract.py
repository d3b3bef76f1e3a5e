"""The backend contract as code: :class:`Backend`, whose stub methods are the specification, and
:data:`KERNELS`, the one table of kernels read by the tuples of :mod:`.protocol`, the registry, ``python
-m needle check``, the guide's test (docs/writing-a-backend.md) and the template's test.

A backend is usually a module with these names; it never needs to subclass :class:`Backend` (needle
looks kernels up by name). A subclass works too: the stubs it does not override count as absent.

Conventions every kernel follows:

- A buffer is an ``Array``: ``size`` elements of one dtype, flat, with no shape of its own.
- A strided view is ``(shape, strides, offset)``; strides and offset count ELEMENTS, not bytes.
  Element ``(i0, ..., ik)`` of the view is ``buf[offset + i0*strides[0] + ... + ik*strides[k]]``.
  Strides may be 0 (broadcast) or negative (flipped); ``shape`` may be ``()`` or contain 0.
- "Compact" buffers hold an array in row-major order from element 0. Every kernel but the strided
  copies gets compact buffers; elementwise kernels get inputs and ``out`` of one size.
- Kernels write into ``out`` (allocated by needle); they never return a buffer. Sizes may be 0.
- Scalars arrive as a Python ``float`` for float buffers and a Python ``int`` for integer and bool
  buffers, already in range of the dtype; compute in the buffer's dtype.

Each table row says which dtypes a kernel runs on (``dtypes``: "all" declared ones; "not bool": needle
maps bool arithmetic to the logical kernels; "float": needle turns integer true division and powers into
float first; "integer, bool": the logical kernels; "fused": the backend's ``FUSED_DTYPES``) and its
aliasing rule (``aliasing``): ``IN_PLACE`` kernels may get ``out`` equal to any input and must then give
the same result as with a distinct ``out`` (``x += y`` and the optimisers rely on it); ``DISTINCT``
kernels never get an output that shares a buffer with another argument; ``PARAM_IN_PLACE`` kernels (the
optimiser steps) are ``DISTINCT`` unless the backend lists them in ``IN_PLACE_UPDATES``: then ``out`` may
be the very buffer ``param`` (never a part of it, never ``grad`` or a state buffer too), so each element's
``param`` must be read before its ``out`` is written.
"""
import functools
from typing import NamedTuple

#: ``out`` may be the same buffer as any input; the kernel must still give the right answer.
IN_PLACE = "out may be an input"
#: outputs never share a buffer with another argument.
DISTINCT = "outputs are distinct buffers"
#: ``out`` may be ``param`` itself where the backend lists the kernel in ``IN_PLACE_UPDATES``, else DISTINCT.
PARAM_IN_PLACE = "out may be param (IN_PLACE_UPDATES)"
#: no output buffer among the arguments (it returns a value, or only writes ``out``).
NO_ALIASING = "-"

KINDS = ("required", "optional", "fused", "program", "memory", "dlpack", "hook")


class Kernel(NamedTuple):
    """One row of :data:`KERNELS`."""

    name: str
    kind: str  # one of KINDS
    since: int  # the protocol version that introduced it
    signature: str  # its parameters, as a backend defines them
    dtypes: str
    aliasing: str
    doc: str


def _kernel(kind, since=1, dtypes="all", aliasing=IN_PLACE):
    """Mark a :class:`Backend` method as a kernel of the table; its body becomes a stub that raises."""
    if kind not in KINDS:
        raise ValueError(f"unknown kernel kind {kind!r}; expected one of {KINDS}")

    def mark(fn):
        @functools.wraps(fn)
        def stub(self, *args, **kwargs):
            raise NotImplementedError(f"{type(self).__name__} does not implement the backend kernel "
                                      f"{fn.__name__!r} (see needle.backend_ndarray.contract.Backend)")

        stub.__kernel__ = (kind, since, dtypes, aliasing)
        stub.__is_contract_stub__ = True
        return stub

    return mark


class Backend:
    """The backend protocol: every name a backend may define, with the contract in each docstring.

    Attributes a backend sets (besides the kernels below):

    - ``PROTOCOL_VERSION``: int, the protocol its kernels implement, written as a literal (``2``), never
      imported from needle-core (that would claim whatever the installed core speaks).
    - ``DTYPES``: tuple of the dtype names it supports, ``"float32"`` first; protocol 2 also needs
      ``"bool"`` and ``"int64"`` (comparisons write bool, argmax int64).
    - ``FUSED_DTYPES`` (optional, default ``("float32",)``): the dtypes its fused kernels and
      ``conv2d_nhwc`` take; needle calls them for no other.
    - ``EWISE_PROGRAM_OPS`` (optional, with :meth:`ewise_program`): a dict from kernel names (``ewise_*``,
      ``scalar_*``, ``fill``, and ``"copy"`` for a compact-to-compact ``compact``/``ewise_setitem``) to the
      ``(kind, op)`` codes of the backend's choosing that its programs understand.
    - ``IN_PLACE_UPDATES`` (optional, default ``()``): the ``PARAM_IN_PLACE`` kernels (``sgd_step``,
      ``adam_step``, ``rmsprop_step``) whose ``out`` may be their ``param`` buffer: needle then updates a
      parameter's own buffer in one call, without a new buffer and a copy. List only kernels that read
      each element's ``param`` before writing its ``out``.
    - ``OPTIONAL_KERNELS`` (optional): a tuple naming the optional kernels it defines, for readers and
      tools (needle looks kernels up by name).

    A defined name is used: never define an optional kernel that only raises NotImplementedError.
    """

    PROTOCOL_VERSION: int
    DTYPES: tuple

    # ---- hooks of the registry ----------------------------------------------------------------
    @_kernel("hook", aliasing=NO_ALIASING)
    def unavailable_reason(self):
        """None when this backend can run here, else one sentence saying why not and what to install.

        needle calls it once, on the device's first use; a non-None answer disables the device
        (``needle.device(name).enabled()`` is False and ``disabled_reason`` is the sentence).
        """

    @_kernel("hook", aliasing=NO_ALIASING)
    def device_count(self):
        """Number of devices (default 1); ``needle.device(name, i)`` with ``i >= device_count()`` is disabled."""

    @_kernel("hook", aliasing=NO_ALIASING)
    def for_device(self, index):
        """The protocol object (module-like, with every name here) bound to device ``index`` > 0."""

    # ---- buffers -------------------------------------------------------------------------------
    @_kernel("required", aliasing=NO_ALIASING)
    def Array(self, size, dtype="float32"):
        """A flat device buffer of ``size`` elements of ``dtype`` (one of DTYPES).

        Dtypes: all. Needs: ``.size`` (int), ``.dtype`` (the dtype name as a str, e.g. "float32") and ``.ptr()``
        (an int address, distinct for distinct live buffers; needle compares it to tell whether two
        arrays share memory). Raise TypeError for a dtype not in DTYPES. Contents start undefined.
        """

    @_kernel("required", aliasing=DISTINCT)
    def from_numpy(self, np_array, out):
        """Copy ``np_array`` into ``out``: a C-contiguous numpy array of out's dtype and out.size elements (any shape).

        Dtypes: all."""

    @_kernel("required", aliasing=NO_ALIASING)
    def to_numpy(self, a, shape, strides, offset):
        """Return a NEW numpy array of ``shape`` and a's dtype holding the strided view of ``a``.

        Dtypes: all (a bool buffer gives a numpy ``bool`` array)."""

    @_kernel("required", aliasing=NO_ALIASING)
    def fill(self, out, value):
        """Set every element of ``out`` to ``value``. Dtypes: all."""

    # ---- strided copies: the only kernels that see views ---------------------------------------
    @_kernel("required", aliasing=DISTINCT)
    def compact(self, a, out, shape, strides, offset):
        """Gather the view ``(shape, strides, offset)`` of ``a`` into compact ``out`` (out.size == prod(shape)).

        ``out[j]`` is the j-th element of the view in row-major order. ``a`` is not modified. Dtypes: all.
        """

    @_kernel("required", aliasing=DISTINCT)
    def ewise_setitem(self, a, out, shape, strides, offset):
        """Scatter compact ``a`` (prod(shape) elements) into the view ``(shape, strides, offset)`` of ``out``.

        The j-th element of ``a`` goes to the j-th element (row-major) of the view; the rest of
        ``out`` is untouched. Views written to never repeat an element (no stride 0). Dtypes: all.
        """

    @_kernel("required", aliasing=NO_ALIASING)
    def scalar_setitem(self, size, value, out, shape, strides, offset):
        """Set the ``size`` (== prod(shape)) elements of the view of ``out`` to ``value``. Dtypes: all."""

    # ---- elementwise: a, b, out compact and of one size ------------------------------------------
    @_kernel("required", dtypes="not bool")
    def ewise_add(self, a, b, out):
        """out = a + b. Dtypes: not bool (integers wrap)."""

    @_kernel("required", dtypes="not bool")
    def ewise_mul(self, a, b, out):
        """out = a * b. Dtypes: not bool (integers wrap)."""

    @_kernel("required", dtypes="float")
    def ewise_div(self, a, b, out):
        """out = a / b (IEEE: x/0 is inf or nan, no error). Dtypes: float."""

    @_kernel("required")
    def ewise_maximum(self, a, b, out):
        """out = max(a, b); NaN if either is NaN (as numpy.maximum). Dtypes: all (on bool: or)."""

    @_kernel("required")
    def ewise_eq(self, a, b, out):
        """out = (a == b), a BOOL buffer (protocol 1 wrote 1.0/0.0); NaN == anything is False. Dtypes of a, b: all."""

    @_kernel("required")
    def ewise_ge(self, a, b, out):
        """out = (a >= b), a bool buffer; False where either is NaN. Dtypes of a, b: all."""

    @_kernel("required", dtypes="not bool")
    def scalar_add(self, a, value, out):
        """out = a + value. Dtypes: not bool (integers wrap)."""

    @_kernel("required", dtypes="not bool")
    def scalar_mul(self, a, value, out):
        """out = a * value. Dtypes: not bool (integers wrap)."""

    @_kernel("required", dtypes="float")
    def scalar_div(self, a, value, out):
        """out = a / value. Dtypes: float."""

    @_kernel("required", dtypes="float")
    def scalar_power(self, a, value, out):
        """out = a ** value (value may be fractional or negative). Dtypes: float."""

    @_kernel("required")
    def scalar_maximum(self, a, value, out):
        """out = max(a, value); NaN stays NaN. Dtypes: all."""

    @_kernel("required")
    def scalar_eq(self, a, value, out):
        """out = (a == value), a bool buffer. Dtypes of a: all."""

    @_kernel("required")
    def scalar_ge(self, a, value, out):
        """out = (a >= value), a bool buffer; False where a is NaN. Dtypes of a: all."""

    @_kernel("required", dtypes="float")
    def ewise_log(self, a, out):
        """out = log(a). Dtypes: float."""

    @_kernel("required", dtypes="float")
    def ewise_exp(self, a, out):
        """out = exp(a). Dtypes: float."""

    @_kernel("required", dtypes="float")
    def ewise_tanh(self, a, out):
        """out = tanh(a). Dtypes: float."""

    # ---- matmul and reductions ---------------------------------------------------------------------
    @_kernel("required", dtypes="not bool", aliasing=DISTINCT)
    def matmul(self, a, b, out, m, n, p):
        """out (m, p) = a (m, n) @ b (n, p); all compact row-major. Overwrite out (n may be 0: zeros).

        Dtypes: not bool (integers wrap)."""

    @_kernel("required", dtypes="not bool", aliasing=DISTINCT)
    def reduce_sum(self, a, out, reduce_size):
        """out[i] = a[i*reduce_size] + ... + a[(i+1)*reduce_size - 1] for i < out.size (0 when reduce_size is 0).

        Dtypes: not bool (integers wrap)."""

    @_kernel("required", aliasing=DISTINCT)
    def reduce_max(self, a, out, reduce_size):
        """out[i] = max of a[i*reduce_size : (i+1)*reduce_size] (needle never passes reduce_size 0).

        NaN if the group holds one. Dtypes: all (on bool: any)."""

    # ---- required since protocol 2 -----------------------------------------------------------------
    @_kernel("required", since=2)
    def cast(self, a, out):
        """out[i] = a[i] converted to out's dtype (a and out of any two declared dtypes, one size). Dtypes: all.

        Float to integer truncates toward zero; NaN, inf and values out of the target's range give an
        unspecified value, never a crash or undefined behaviour (clamp first in C/C++). To bool is
        ``!= 0`` (NaN is True); from bool gives 0 and 1.
        """

    @_kernel("required", since=2)
    def where(self, cond, a, b, out):
        """out[i] = a[i] if cond[i] else b[i]; cond a bool buffer, a, b and out of one dtype. Dtypes: all."""

    @_kernel("required", since=2)
    def ewise_minimum(self, a, b, out):
        """out = min(a, b); NaN if either is NaN (as numpy.minimum). Dtypes: all (on bool: and)."""

    @_kernel("required", since=2)
    def scalar_minimum(self, a, value, out):
        """out = min(a, value); NaN stays NaN. Dtypes: all."""

    @_kernel("required", since=2, aliasing=DISTINCT)
    def reduce_min(self, a, out, reduce_size):
        """out[i] = min of the i-th group of reduce_size elements. NaN if the group holds one.

        Dtypes: all (bool: all)."""

    @_kernel("required", since=2, aliasing=DISTINCT)
    def reduce_argmax(self, a, out, reduce_size):
        """out[i] (an int64 buffer) = index in the i-th group of its FIRST maximum; a NaN counts as the maximum
        (the first NaN wins, as in numpy). Dtypes of a: all."""

    @_kernel("required", since=2, aliasing=DISTINCT)
    def reduce_argmin(self, a, out, reduce_size):
        """out[i] (an int64 buffer) = index in the i-th group of its first minimum (the first NaN wins).

        Dtypes of a: all."""

    @_kernel("required", since=2, dtypes="integer, bool")
    def ewise_and(self, a, b, out):
        """out = a & b: bitwise on integers, logical on bool. Dtypes: integer, bool."""

    @_kernel("required", since=2, dtypes="integer, bool")
    def ewise_or(self, a, b, out):
        """out = a | b: bitwise on integers, logical on bool. Dtypes: integer, bool."""

    @_kernel("required", since=2, dtypes="integer, bool")
    def ewise_xor(self, a, b, out):
        """out = a ^ b: bitwise on integers, logical on bool. Dtypes: integer, bool."""

    @_kernel("required", since=2, dtypes="integer, bool")
    def ewise_not(self, a, out):
        """out = ~a: bitwise not on integers, logical not on bool. Dtypes: integer, bool."""

    # ---- optional: needle composes each from the required kernels when it is absent --------------------
    @_kernel("optional", dtypes="not bool")
    def ewise_sub(self, a, b, out):
        """out = a - b (fallback: a + (-b)). Dtypes: not bool."""

    @_kernel("optional", dtypes="not bool")
    def scalar_rsub(self, a, value, out):
        """out = value - a (fallback: (-a) + value). Dtypes: not bool."""

    @_kernel("optional", dtypes="float")
    def scalar_rdiv(self, a, value, out):
        """out = value / a (fallback: (a ** -1.0) * value). Dtypes: float."""

    @_kernel("optional", dtypes="not bool")
    def ewise_neg(self, a, out):
        """out = -a (fallback: a * -1). Dtypes: not bool."""

    @_kernel("optional", dtypes="float")
    def ewise_sqrt(self, a, out):
        """out = sqrt(a) (fallback: a ** 0.5). Dtypes: float."""

    @_kernel("optional", dtypes="float")
    def ewise_sigmoid(self, a, out):
        """out = 1 / (1 + exp(-a)), finite for every finite a (fallback: (tanh(a / 2) + 1) / 2). Dtypes: float."""

    @_kernel("optional", dtypes="float")
    def ewise_relu(self, a, out):
        """out = max(a, 0) (fallback: scalar_maximum). Dtypes: float."""

    @_kernel("optional", dtypes="float")
    def ewise_power(self, a, b, out):
        """out = a ** b elementwise (fallback: exp(log(a) * b), so positive bases only). Dtypes: float."""

    @_kernel("optional", dtypes="not bool", aliasing=DISTINCT)
    def matmul_batched(self, a, b, out, batch, m, n, p):
        """out (batch, m, p) = a (batch, m, n) @ b (batch, n, p), all compact (fallback: one matmul per matrix).

        Dtypes: not bool (integers wrap)."""

    @_kernel("optional", dtypes="fused", aliasing=DISTINCT)
    def conv2d_nhwc(self, a, b, out, n, h, w, c_in, c_out, kh, kw, sh, sw):
        """Convolution: ``a`` a compact, already padded input (n, h, w, c_in), ``b`` the weight (kh, kw, c_in,
        c_out), ``out`` (n, (h-kh)//sh+1, (w-kw)//sw+1, c_out) (fallback: im2col and one matmul).

        Dtypes: FUSED_DTYPES."""

    # ---- optional since protocol 2 -----------------------------------------------------------------------
    @_kernel("optional", since=2)
    def ewise_ne(self, a, b, out):
        """out = (a != b), a bool buffer; True where either is NaN (fallback: composed from eq and not).

        Dtypes of a, b: all."""

    @_kernel("optional", since=2)
    def ewise_lt(self, a, b, out):
        """out = (a < b), a bool buffer; False where either is NaN. Dtypes of a, b: all."""

    @_kernel("optional", since=2)
    def ewise_le(self, a, b, out):
        """out = (a <= b), a bool buffer; False where either is NaN. Dtypes of a, b: all."""

    @_kernel("optional", since=2)
    def ewise_gt(self, a, b, out):
        """out = (a > b), a bool buffer; False where either is NaN. Dtypes of a, b: all."""

    @_kernel("optional", since=2)
    def scalar_ne(self, a, value, out):
        """out = (a != value), a bool buffer; True where a is NaN. Dtypes of a: all."""

    @_kernel("optional", since=2)
    def scalar_lt(self, a, value, out):
        """out = (a < value), a bool buffer; False where a is NaN. Dtypes of a: all."""

    @_kernel("optional", since=2)
    def scalar_le(self, a, value, out):
        """out = (a <= value), a bool buffer; False where a is NaN. Dtypes of a: all."""

    @_kernel("optional", since=2)
    def scalar_gt(self, a, value, out):
        """out = (a > value), a bool buffer; False where a is NaN. Dtypes of a: all."""

    @_kernel("optional", since=2, dtypes="not bool")
    def ewise_abs(self, a, out):
        """out = |a| (integers wrap: abs of the most negative value is itself). Dtypes: not bool."""

    @_kernel("optional", since=2, aliasing=DISTINCT)
    def gather_rows(self, a, idx, out, rows, row_size, count):
        """out row i = a row idx[i] for i < count; ``idx`` an int64 buffer, ``a`` holding ``rows`` rows of row_size.

        Checks every index is in [0, rows) and raises IndexError naming the first bad one before touching
        memory (fallback: gathered on the host). Dtypes: all."""

    @_kernel("optional", since=2, dtypes="not bool", aliasing=DISTINCT)
    def scatter_add_rows(self, g, idx, out, rows, row_size, count):
        """out row idx[i] += g row i for i < count (repeated indices accumulate; out is not cleared first).

        Checks the indices as gather_rows does (fallback: on the host). Dtypes: not bool."""

    # ---- fused kernels: training hot paths, on FUSED_DTYPES (composed by core without them) --------------
    @_kernel("fused", dtypes="fused", aliasing=DISTINCT)
    def matmul_bias(self, a, b, bias, out, m, n, p):
        """out (m, p) = a (m, n) @ b (n, p) + bias (p elements, added to every row); all compact."""

    @_kernel("fused", dtypes="fused", aliasing=DISTINCT)
    def ewise_relu_backward(self, a, b, out):
        """out = b where a > 0, else 0: ``a`` is a ReLU's input or output, ``b`` its output gradient."""

    @_kernel("fused", dtypes="fused", aliasing=DISTINCT)
    def matmul_tn(self, a, b, out, m, n, p):
        """out (m, p) = transpose(a) @ b for compact a (n, m) and b (n, p): the weight gradient ``x^T @ g``
        of a 2-D matmul without a transposed copy of x."""

    @_kernel("fused", dtypes="fused", aliasing=DISTINCT)
    def matmul_nt(self, a, b, out, m, n, p):
        """out (m, p) = a @ transpose(b) for compact a (m, n) and b (p, n): the input gradient ``g @ W^T``
        of a 2-D matmul without a transposed copy of W."""

    @_kernel("fused", dtypes="fused", aliasing=DISTINCT)
    def lstm_cell_forward(self, gates, x, c_prev, c, tc, h, out, t, batch, hid):
        """One LSTM step forward (``needle.nn.LSTM`` uses it with :meth:`lstm_cell_backward`, both or neither).

        Gates are in the order i, f, g, o, ``hid`` columns each, in every row of a (batch, 4 hid) array;
        ``x`` and ``out`` are (steps, batch, width) sequences of which step ``t`` is used. ``gates`` holds
        ``h_prev @ W_hh`` on entry and the activations ``sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)`` of
        ``gates + x[t]`` on exit; writes ``c = sf * c_prev + si * tg``, ``tc = tanh(c)`` and ``h = so * tc``
        (batch, hid each), h also into ``out[t]``.
        """

    @_kernel("fused", dtypes="fused", aliasing=DISTINCT)
    def lstm_cell_backward(self, dh, g_out, act, c_prev, tc, dc, dg, d_gates, t, batch, hid):
        """One LSTM step backward, from the forward's activations ``act``, ``c_prev`` and ``tc``.

        With ``dh_t = dh + g_out[t]`` and the gradient ``dc`` of c (updated in place to ``dc_t * sf``, that
        of c_prev, where ``dc_t = dc + dh_t * so * (1 - tc**2)``): writes the pre-activation gradients
        ``[dc_t tg si (1 - si), dc_t c_prev sf (1 - sf), dc_t si (1 - tg**2), dh_t tc so (1 - so)]`` into
        ``dg`` (batch, 4 hid) and ``d_gates[t]``.
        """

    @_kernel("fused", dtypes="fused", aliasing=PARAM_IN_PLACE)
    def adam_step(self, param, grad, m, v, out, lr, beta1, beta2, eps, weight_decay, bias_c1, bias_c2, decoupled):
        """One Adam (AdamW when ``decoupled``) update of one parameter's n elements.

        ``g = grad + weight_decay * param``, or ``g = grad`` when ``decoupled``; ``m = beta1 m + (1 - beta1) g``,
        ``v = beta2 v + (1 - beta2) g**2`` (in place); ``out = w - lr * (m / bias_c1) / (sqrt(v / bias_c2) + eps)``
        with ``w = param``, or ``param * (1 - lr * weight_decay)`` when ``decoupled``; ``bias_c1`` and
        ``bias_c2`` (> 0) are ``1 - beta1**t`` and ``1 - beta2**t``. ``param`` and ``grad`` are only read
        (``out`` may be ``param`` itself where the backend lists the kernel in ``IN_PLACE_UPDATES``); scalars
        are formed in double and rounded to the buffers' dtype; zero ``weight_decay`` terms are skipped.
        """

    @_kernel("fused", dtypes="fused", aliasing=PARAM_IN_PLACE)
    def sgd_step(self, param, grad, u, out, lr, momentum, weight_decay):
        """One SGD update: ``g = grad + weight_decay * param``; with a momentum buffer ``u`` (None: no momentum),
        ``u = momentum u + (1 - momentum) g`` in place and g = u; ``out = param - lr g`` (``out`` may be ``param``
        itself where the backend lists the kernel in ``IN_PLACE_UPDATES``)."""

    @_kernel("fused", dtypes="fused", aliasing=PARAM_IN_PLACE)
    def rmsprop_step(self, param, grad, v, buf, out, lr, alpha, eps, weight_decay, momentum):
        """One RMSprop update: ``g = grad + weight_decay * param``; ``v = alpha v + (1 - alpha) g**2``;
        ``d = g / (sqrt(v) + eps)``; with a buffer ``buf`` (None: no momentum), ``buf = momentum buf + d`` and
        d = buf; ``out = param - lr d``. ``v`` and ``buf`` are updated in place (and ``param`` where listed in
        ``IN_PLACE_UPDATES``)."""

    @_kernel("fused", dtypes="fused", aliasing=DISTINCT)
    def softmax_xent_forward(self, z, labels, probs, loss_rows, m, k):
        """Softmax cross-entropy forward (``needle.nn.SoftmaxLoss``; used with the backward, both or neither).

        For each row of the compact (m, k) logits z, with ``mx`` its max and ``s = sum(exp(z - mx))``:
        ``probs = exp(z - mx) / s`` (m, k) and ``loss_rows = log(s) - (z[label] - mx)`` (m,), accurate at any
        magnitude. ``labels`` holds m class indices as floats of z's dtype: unless every one is an integer
        in [0, k), raise ValueError naming the first bad label.
        """

    @_kernel("fused", dtypes="fused", aliasing=DISTINCT)
    def softmax_xent_backward(self, probs, labels, scale, out, m, k):
        """``out = (probs - onehot(labels)) * scale[0]`` (m, k); ``scale`` a 1-element buffer (the gradient's
        scale stays on the device); labels checked as in :meth:`softmax_xent_forward`."""

    @_kernel("fused", dtypes="fused", aliasing=DISTINCT)
    def conv2d_nhwc_grad_weight(self, a, g, out, n, h, w, c_in, c_out, kh, kw, sh, sw):
        """Weight gradient of :meth:`conv2d_nhwc` (same ``a`` and sizes): ``out`` (kh, kw, c_in, c_out) =
        ``im2col(a)^T @ g`` with ``g`` the compact output gradient (n, (h-kh)//sh+1, (w-kw)//sw+1, c_out) and
        im2col(a) the (n*ho*wo, kh*kw*c_in) matrix of a's windows (fallback: that matrix and one matmul_tn)."""

    @_kernel("fused", dtypes="fused", aliasing=DISTINCT)
    def conv2d_nhwc_padded(self, a, b, out, n, h, w, c_in, c_out, kh, kw, sh, sw, ph, pw):
        """:meth:`conv2d_nhwc` of the compact, unpadded ``a`` (n, h, w, c_in) zero-padded by ``ph`` rows and ``pw``
        columns on each side, without a padded copy: ``out`` (n, (h+2ph-kh)//sh+1, (w+2pw-kw)//sw+1, c_out)
        (fallback: pad, then :meth:`conv2d_nhwc` or im2col and one matmul)."""

    @_kernel("fused", dtypes="fused", aliasing=DISTINCT)
    def conv2d_nhwc_grad_input_padded(self, g, b, out, n, h, w, c_in, c_out, kh, kw, sh, sw, ph, pw):
        """Input gradient of :meth:`conv2d_nhwc_padded` (same sizes): ``out`` (n, h, w, c_in) = the windows of
        ``g @ b^T`` added back into place, padding dropped, with ``g`` the compact output gradient (n,
        (h+2ph-kh)//sh+1, (w+2pw-kw)//sw+1, c_out) and ``b`` the weight as a (kh*kw*c_in, c_out) matrix
        (fallback: the spread ``g`` correlated with the flipped weight)."""

    @_kernel("fused", dtypes="fused", aliasing=DISTINCT)
    def conv2d_nhwc_grad_weight_padded(self, a, g, out, n, h, w, c_in, c_out, kh, kw, sh, sw, ph, pw):
        """:meth:`conv2d_nhwc_grad_weight` of the unpadded ``a`` zero-padded by (``ph``, ``pw``) as in
        :meth:`conv2d_nhwc_padded`; ``g`` (n, (h+2ph-kh)//sh+1, (w+2pw-kw)//sw+1, c_out) (fallback: pad, then
        :meth:`conv2d_nhwc_grad_weight` or im2col and one matmul_tn)."""

    @_kernel("fused", dtypes="fused", aliasing=DISTINCT)
    def batchnorm_forward(self, x, weight, bias, out, mean, var, m, c, eps):
        """Batch normalisation in training mode (``needle.nn.BatchNorm1d/2d``; used with the backward, both or
        neither) over the compact (m, c) ``x``, one column per channel: ``mean`` (c,) the column means, ``var``
        (c,) the biased variances computed around the mean (two passes), ``out`` (m, c) =
        ``(x - mean) * weight / sqrt(var + eps) + bias``. ``m >= 1``."""

    @_kernel("fused", dtypes="fused", aliasing=DISTINCT)
    def batchnorm_backward(self, x, g, weight, mean, var, grad_x, grad_weight, grad_bias, m, c, eps):
        """Gradients of :meth:`batchnorm_forward` (its ``mean`` and ``var``) for the output gradient ``g`` (m, c):
        with ``xhat = (x - mean) / sqrt(var + eps)``, ``grad_bias = sum_rows g``, ``grad_weight = sum_rows g * xhat``
        and ``grad_x = weight / sqrt(var + eps) * (g - grad_bias / m - xhat * grad_weight / m)``."""

    @_kernel("fused", dtypes="fused")
    def ewise_binary_strided(self, op, a, a_strides, a_offset, b, b_strides, b_offset, out, shape):
        """``out`` (compact, ``shape``) = ``a op b`` over two strided views of ``shape`` (strides and offsets in
        elements, as ``compact`` takes them; a broadcast operand has stride 0); ``op`` one of ``"add"``,
        ``"sub"``, ``"mul"``, ``"div"``. Core uses it for binary ops with a broadcast or non-compact operand
        (normalisation statistics, biases) instead of copying that operand compact. ``out`` may share a
        buffer with an operand (the kernel then computes through a temporary)."""

    # ---- elementwise programs (optional; needle.jit fuses recorded runs into one call) ------------------
    @_kernel("program", since=2, dtypes="fused", aliasing=IN_PLACE)
    def ewise_program(self, buffers, code, values, n, block):
        """Run a recorded run of elementwise kernels block by block (``needle._jit._fuse``; float32 only).

        Step s is ``code[5s:5s+5] = (kind, op, out, a, b)``: a ``(kind, op)`` code from ``EWISE_PROGRAM_OPS``
        and indices into ``buffers`` (each float32 of n elements), with scalar ``values[s]``; each block of
        ``block`` elements runs every step in turn. The result must equal running the kernels one after
        another on the whole buffers, bit for bit, aliasing included. Without it needle.jit replays kernel
        by kernel."""

    # ---- memory statistics (optional; behind device.memory_allocated() and its siblings) ---------------
    @_kernel("memory", aliasing=NO_ALIASING)
    def memory_stats(self):
        """A dict with ``"allocated_bytes"`` (bytes of the live ``Array`` buffers: n * itemsize each, from
        creation until freed; scratch memory and an allocator's free blocks do not count) and
        ``"peak_allocated_bytes"`` (the most it has been since the backend loaded or the last reset); it may
        add ``"reserved_bytes"``, the free bytes a caching allocator holds. Without it, the device's memory
        methods raise NotImplementedError."""

    @_kernel("memory", aliasing=NO_ALIASING)
    def reset_peak_memory_stats(self):
        """Make the peak the bytes allocated now."""

    @_kernel("memory", aliasing=NO_ALIASING)
    def empty_cache(self):
        """Give the free blocks a caching allocator holds back to the system; live buffers are untouched
        (optional even with memory_stats: without it, a no-op)."""

    # ---- DLPack exchange (optional; Tensor.__dlpack__ and needle.from_dlpack need all three) --------------
    @_kernel("dlpack", since=2, aliasing=NO_ALIASING)
    def dlpack_device(self, a):
        """``(device_type, index)`` of buffer ``a`` as DLPack numbers them (1 host, 2 CUDA)."""

    @_kernel("dlpack", since=2, aliasing=NO_ALIASING)
    def dlpack_export(self, a, shape, strides, offset, max_version=None):
        """A PyCapsule over the strided view (strides in elements, never negative), sharing ``a``'s memory,
        whose deleter keeps ``a`` alive until the consumer releases it: a writable ``"dltensor_versioned"``
        one (DLPack 1.x) when ``max_version`` is ``(1, x)`` or later, else a ``"dltensor"`` one. A backend
        with streams also takes ``stream=`` (core passes it only when it is not None)."""

    @_kernel("dlpack", since=2, aliasing=NO_ALIASING)
    def dlpack_import(self, obj):
        """``(array, shape, strides, offset)`` from an object with ``__dlpack__`` on this backend's device:
        ``array`` a buffer over ``obj``'s memory that keeps the producer alive (or a compact copy where the
        memory cannot be adopted: read-only, misaligned); a dtype the backend cannot hold is a TypeError."""


def _row(name, stub):
    kind, since, dtypes, aliasing = stub.__kernel__
    code = stub.__wrapped__.__code__
    params = list(code.co_varnames[1:code.co_argcount])  # without self
    defaults = stub.__wrapped__.__defaults__ or ()
    for i, value in enumerate(defaults):
        at = len(params) - len(defaults) + i
        params[at] = f'{params[at]}="{value}"' if isinstance(value, str) else f"{params[at]}={value!r}"
    doc = " ".join((stub.__doc__ or "").split())
    return Kernel(name, kind, since, ", ".join(params), dtypes, aliasing, doc)


#: Every kernel and hook of the protocol, in :class:`Backend`'s order: the one table.
KERNELS = tuple(_row(name, fn) for name, fn in vars(Backend).items() if hasattr(fn, "__kernel__"))
BY_NAME = {k.name: k for k in KERNELS}


def names(kind, since=None):
    """The names of the table's kernels of ``kind`` (introduced in protocol ``since``, or any), in order."""
    return tuple(k.name for k in KERNELS if k.kind == kind and (since is None or k.since == since))


def is_stub(attribute):
    """True for an unimplemented :class:`Backend` stub (a subclass's kernel it did not override)."""
    return getattr(attribute, "__is_contract_stub__", False)


def provides(backend, name):
    """True when ``backend`` defines ``name`` (a :class:`Backend` stub left in place does not count)."""
    attribute = getattr(backend, name, None)
    return attribute is not None and not is_stub(attribute)


def arity_problem(name, function):
    """None when ``function`` can be called as kernel ``name`` of the table, else a sentence saying why not.

    Only Python functions are read (a native kernel's parameters are not introspectable: None).
    """
    code = getattr(getattr(function, "__func__", function), "__code__", None)
    row = BY_NAME.get(name)
    if code is None or row is None or not row.signature or name == "Array":
        return None
    bound = getattr(function, "__self__", None) is not None
    given = code.co_argcount - bound
    optional = len(getattr(getattr(function, "__func__", function), "__defaults__", None) or ())
    wanted = row.signature.split(", ")
    needed = sum("=" not in p for p in wanted)
    if given - optional > needed or (given < len(wanted) and not code.co_flags & 0x04):  # 0x04: *args
        return (f"{name} takes {given} positional arguments ({optional} optional); "
                f"the protocol passes ({row.signature})")
    return None


def markdown_table(kinds=("required", "optional", "fused", "memory", "dlpack")):
    """The table as Markdown (for the docs site): one row per kernel of ``kinds``."""
    lines = ["| kernel | kind | since | dtypes | aliasing |", "|---|---|---|---|---|"]
    for k in KERNELS:
        if k.kind in kinds:
            dtypes = "FUSED_DTYPES" if k.dtypes == "fused" else k.dtypes
            lines.append(f"| `{k.name}({k.signature})` | {k.kind} | {k.since} | {dtypes} | {k.aliasing} |")
    return "\n".join(lines)
