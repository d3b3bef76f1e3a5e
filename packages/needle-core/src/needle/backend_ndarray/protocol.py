"""The backend protocol: the flat-buffer kernels every backend provides.

A backend is an object (usually a module) with the attributes below. Every kernel works
on flat, one-dtype device buffers created by ``Array(size, dtype)``; all view logic
(shape, strides, offset, broadcasting) lives in :mod:`needle.backend_ndarray.ndarray`, so a
backend never sees anything but flat buffers plus a (shape, strides, offset) triple.

Required
--------
``PROTOCOL_VERSION``                         int, the protocol version implemented (1 or 2; this core is 2)
``DTYPES``                                    tuple of dtype names supported, e.g. ("float32",)
``Array(size, dtype="float32")``              a buffer with ``.size``, ``.dtype`` and ``.ptr()``
``from_numpy(np_array, out)``                 copy a compact numpy array into ``out``
``to_numpy(a, shape, strides, offset)``       numpy array of the strided view (strides in elements)
``fill(out, value)``                          set every element of ``out``
``compact(a, out, shape, strides, offset)``   gather the strided view of ``a`` into compact ``out``
``ewise_setitem(a, out, shape, strides, offset)``  scatter compact ``a`` into the view of ``out``
``scalar_setitem(size, value, out, shape, strides, offset)``  set the view of ``out`` to ``value``
``ewise_{add,mul,div,maximum,eq,ge}(a, b, out)``   compact elementwise; comparisons give 1.0/0.0
``scalar_{add,mul,div,power,maximum,eq,ge}(a, val, out)``
``ewise_{log,exp,tanh}(a, out)``
``matmul(a, b, out, m, n, p)``                (m, n) @ (n, p) on compact row-major matrices
``reduce_sum(a, out, reduce_size)``           sum over contiguous groups of ``reduce_size``
``reduce_max(a, out, reduce_size)``           max over contiguous groups of ``reduce_size``

Optional
--------
Any name in :data:`OPTIONAL_KERNELS` may be provided; core looks it up with ``getattr`` and
falls back on a composition of the required kernels when it is absent. A backend may also
provide ``unavailable_reason()`` returning ``None`` when it can run, or a sentence saying why
it cannot (no GPU, missing library); ``device_count()`` for multi-device backends; and
``for_device(index)`` returning the protocol bound to device ``index`` (the registry calls it
for indexes above 0).
"""

PROTOCOL_VERSION = 2

#: The protocol versions this needle-core can drive. A protocol-1 backend (float-only) keeps
#: serving its float dtypes; asking it for an integer or bool dtype is a clear TypeError.
SUPPORTED_PROTOCOLS = (1, 2)

REQUIRED_KERNELS = (
    "Array",
    "from_numpy",
    "to_numpy",
    "fill",
    "compact",
    "ewise_setitem",
    "scalar_setitem",
    "ewise_add",
    "ewise_mul",
    "ewise_div",
    "ewise_maximum",
    "ewise_eq",
    "ewise_ge",
    "scalar_add",
    "scalar_mul",
    "scalar_div",
    "scalar_power",
    "scalar_maximum",
    "scalar_eq",
    "scalar_ge",
    "ewise_log",
    "ewise_exp",
    "ewise_tanh",
    "matmul",
    "reduce_sum",
    "reduce_max",
)

#: Every dtype name needle knows, in promotion-table order.
ALL_DTYPES = ("bool", "uint8", "int32", "int64", "float32", "float64")
FLOAT_DTYPES = ("float32", "float64")
INTEGER_DTYPES = ("uint8", "int32", "int64")

#: Protocol 2, what changes (read with the protocol-1 list above, which stays):
#:
#: - ``DTYPES`` may hold any of :data:`ALL_DTYPES`; ``Array(size, dtype)`` makes a buffer of each.
#:   A protocol-2 ``DTYPES`` holds ``"bool"`` and ``"int64"`` besides ``"float32"``: comparisons write
#:   bool buffers and ``reduce_argmax``/``argmin`` int64 ones (the conformance suite checks it).
#:   ``to_numpy`` returns an array of the buffer's dtype (``bool`` buffers: numpy ``bool``);
#:   ``from_numpy`` receives an array already of ``out``'s dtype. Scalars (``val`` of ``scalar_*``,
#:   ``fill``, ``scalar_setitem``) arrive as a Python ``int`` for integer and bool buffers and a
#:   Python ``float`` for float buffers, already in range of the dtype (core checks); a kernel uses
#:   ``val`` as a value of the buffer's dtype (a float32 kernel compares with float32(val)).
#: - Kernels that run on EVERY declared dtype: ``Array, from_numpy, to_numpy, fill, compact,
#:   ewise_setitem, scalar_setitem, cast, where``, the comparisons, ``ewise_/scalar_maximum`` and
#:   ``ewise_/scalar_minimum``, ``reduce_max``, ``reduce_min``, ``reduce_argmax``, ``reduce_argmin``,
#:   and the optional ``gather_rows``.
#:   On every declared dtype but ``bool`` (core maps bool arithmetic to the logical kernels):
#:   ``ewise_add, ewise_mul, scalar_add, scalar_mul, matmul, reduce_sum`` and the optional
#:   ``ewise_sub, scalar_rsub, ewise_neg, ewise_abs, matmul_batched, scatter_add_rows``. Integer arithmetic wraps
#:   modulo 2**bits (no trap, no undefined behaviour: C/C++ backends compute signed sums and
#:   products in unsigned arithmetic). On the float dtypes only: ``ewise_div, scalar_div,
#:   scalar_rdiv, scalar_power, ewise_power, ewise_log, ewise_exp, ewise_tanh, ewise_sqrt,
#:   ewise_sigmoid, ewise_relu`` (core turns integer true division into float32 first, as
#:   PyTorch does). On the integer dtypes and bool only: ``ewise_and, ewise_or, ewise_xor``
#:   (``a, b, out``) and ``ewise_not`` (``a, out``): bitwise on integers, logical on bool.
#: - Comparisons ``ewise_eq, ewise_ge`` (``a, b, out``) and ``scalar_eq, scalar_ge`` (``a, val,
#:   out``) write a ``bool`` buffer ``out`` (protocol 1 wrote 1.0/0.0 in the input's dtype), with
#:   IEEE rules: any comparison with NaN is False. Optional: ``ewise_ne, ewise_lt, ewise_le,
#:   ewise_gt`` and ``scalar_ne, scalar_lt, scalar_le, scalar_gt`` (``a < val`` etc.; ``ne`` is
#:   True for NaN); without them core composes them from eq, ge, and, not.
#: - ``ewise_minimum(a, b, out)``, ``scalar_minimum(a, val, out)``: like the maximum kernels.
#:   Both propagate NaN, as numpy's ``maximum``/``minimum`` do.
#: - ``cast(a, out)``: ``out[i] = a[i]`` converted to ``out``'s dtype (``a`` and ``out`` of any two
#:   declared dtypes, same size). Float to integer truncates toward zero; NaN, inf and values out
#:   of the target's range (from any source dtype: a float64 beyond float32's range, an int64
#:   beyond int32's) give an unspecified value, never a crash or undefined behaviour; to bool is
#:   ``!= 0`` (NaN is True); from bool gives 0 and 1.
#: - ``where(cond, a, b, out)``: ``out[i] = a[i] if cond[i] else b[i]``; ``cond`` a bool buffer,
#:   ``a``, ``b`` and ``out`` of one dtype, all compact of one size.
#: - ``reduce_min(a, out, reduce_size)``: as ``reduce_max``. ``reduce_argmax(a, out, reduce_size)``
#:   and ``reduce_argmin``: ``out`` an int64 buffer; for each contiguous group of ``reduce_size``
#:   (>= 1; core refuses empty reductions), the index in the group of its first maximum (minimum),
#:   a NaN counting as the extreme (the first NaN wins, as in numpy). On bool, max is any, min all.
#: - Aliasing: the output of an ELEMENTWISE kernel (``ewise_*``, ``scalar_*``, ``where``, and
#:   ``cast`` between equal dtypes) may be the same buffer as any of its inputs; such kernels must
#:   give the same result as with a distinct ``out`` (in-place ``+=`` and the optimisers rely on
#:   it; ``ewise_div`` written as ``out = 1 / b; out *= a`` is wrong when ``out is a``). The
#:   outputs of ``compact``, ``matmul*``, ``reduce_*``, ``gather_rows`` and the fused kernels are
#:   never an input buffer.
#: - Optional integer indexing: ``gather_rows(a, idx, out, rows, row_size, count)``:
#:   ``out[i*row_size:(i+1)*row_size] = a[idx[i]*row_size:(idx[i]+1)*row_size]`` for ``i <
#:   count``, ``idx`` an int64 buffer, ``a`` holding ``rows`` rows; ``scatter_add_rows(g, idx, out,
#:   rows, row_size, count)``: ``out[idx[i] row] += g[i row]`` (repeated indices accumulate; ``out``
#:   is not cleared first). Both check every index is in ``[0, rows)`` and raise IndexError naming
#:   the first bad one before touching memory. Without them core gathers and scatters on the host.
#:   ``gather_rows`` runs on every declared dtype, ``scatter_add_rows`` (it adds) on every one but
#:   bool; ``out`` of either is never ``a``/``g`` or ``idx``.
#: - The fused kernels (:data:`FUSED_KERNELS`) and ``conv2d_nhwc`` run on the dtypes listed in the
#:   backend's optional ``FUSED_DTYPES`` (default ``("float32",)``); core calls them for no other.
#:   A native backend's bindings still refuse other dtypes with TypeError (never reinterpret bytes).
#:
#: - DLPack (optional, :data:`DLPACK_KERNELS`; ``Tensor.__dlpack__`` and ``needle.from_dlpack`` need all
#:   three, and raise BufferError naming the backend without them):
#:   ``dlpack_device(a)`` -> ``(device_type, index)`` of buffer ``a`` as DLPack numbers them (1 host, 2
#:   CUDA); ``dlpack_export(a, shape, strides, offset, max_version=None[, stream=])`` -> a PyCapsule over
#:   the strided view (strides in elements, never negative: core exports a compact copy of such views),
#:   sharing ``a``'s memory, whose deleter keeps ``a`` alive until the consumer releases it: a writable
#:   ``"dltensor_versioned"`` one (DLPack 1.x) when ``max_version`` is ``(1, x)`` or later, else a
#:   ``"dltensor"`` one (core passes ``stream`` only when it is not None);
#:   ``dlpack_import(obj)`` -> ``(array, shape, strides, offset)`` from an object with ``__dlpack__``
#:   whose ``__dlpack_device__`` is this backend's: ``array`` a buffer of this backend over ``obj``'s
#:   memory that keeps the producer's tensor alive (or a compact copy where the memory cannot be
#:   adopted: read-only, misaligned), the view inside it as ``make`` checks it; a dtype the backend
#:   cannot hold is a TypeError naming it.
#:
#: A protocol-1 backend is driven exactly as before: core reads its comparisons as float masks and
#: offers it only the float dtypes of its ``DTYPES``.

#: Kernels protocol 2 adds to :data:`REQUIRED_KERNELS`.
REQUIRED_KERNELS_V2 = (
    "cast",
    "where",
    "ewise_minimum",
    "scalar_minimum",
    "reduce_min",
    "reduce_argmax",
    "reduce_argmin",
    "ewise_and",
    "ewise_or",
    "ewise_xor",
    "ewise_not",
)

#: Optional kernels protocol 2 adds (core composes them when absent).
OPTIONAL_KERNELS_V2 = (
    "ewise_ne",
    "ewise_lt",
    "ewise_le",
    "ewise_gt",
    "scalar_ne",
    "scalar_lt",
    "scalar_le",
    "scalar_gt",
    "ewise_abs",
    "gather_rows",
    "scatter_add_rows",
)

OPTIONAL_KERNELS = (
    "ewise_sub",
    "scalar_rsub",
    "scalar_rdiv",
    "ewise_neg",
    "ewise_sqrt",
    "ewise_sigmoid",
    "ewise_relu",
    "ewise_power",
    "matmul_batched",
    "conv2d_nhwc",
)

#: Fused kernels core also looks up with ``getattr`` (training hot paths), kept apart from
#: OPTIONAL_KERNELS so that a backend's "every optional kernel" surface stays as it was:
#: ``matmul_bias(a, b, bias, out, m, n, p)`` (compact (m, n) @ (n, p) plus ``bias``, p elements, on
#: every row), ``ewise_relu_backward(a, b, out)`` (out = b where a > 0, else 0: a is a ReLU's
#: input or output, b its output gradient) and ``matmul_tn(a, b, out, m, n, p)`` (out (m, p) =
#: transpose(a) @ b for compact a (n, m) and b (n, p): the weight gradient ``x^T @ g`` of a 2-D
#: matmul without a transposed copy of x) and ``matmul_nt(a, b, out, m, n, p)`` (out (m, p) =
#: a @ transpose(b) for compact a (m, n) and b (p, n): the input gradient ``g @ w^T``). Without them
#: core composes matmul + broadcast add, a comparison + multiply, and a transposing compact + matmul.
#:
#: The LSTM layer (``needle.nn.LSTM``) uses the pair ``lstm_cell_forward`` / ``lstm_cell_backward``
#: when a backend has both, one call per step each way; without them it composes each step from
#: the elementwise kernels. Gates are in the order i, f, g, o, ``hid`` columns each, in every row of
#: a (batch, 4 hid) array; ``x``/``out``/``g_out``/``d_gates`` are (steps, batch, width) sequences of
#: which step ``t`` is used; outputs never share a buffer with another argument.
#:
#: - ``lstm_cell_forward(gates, x, c_prev, c, tc, h, out, t, batch, hid)``: ``gates`` holds
#:   ``h_prev @ W_hh`` on entry and the activations ``sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)`` of
#:   ``gates + x[t]`` on exit; writes ``c = sf * c_prev + si * tg``, ``tc = tanh(c)`` and ``h = so * tc``
#:   (batch, hid each), h also into ``out[t]``.
#: - ``lstm_cell_backward(dh, g_out, act, c_prev, tc, dc, dg, d_gates, t, batch, hid)``: from the
#:   forward's activations ``act``, ``c_prev`` and ``tc``, with ``dh_t = dh + g_out[t]`` and the
#:   gradient ``dc`` of c (updated in place to ``dc_t * sf``, that of c_prev, where
#:   ``dc_t = dc + dh_t * so * (1 - tc**2)``): writes the pre-activation gradients
#:   ``[dc_t tg si (1 - si), dc_t c_prev sf (1 - sf), dc_t si (1 - tg**2), dh_t tc so (1 - so)]``
#:   into ``dg`` (batch, 4 hid) and ``d_gates[t]``.
#:
#: The optimisers (``needle.optim``) use ``adam_step``, ``sgd_step`` and ``rmsprop_step`` when a
#: parameter's backend has them, one call per parameter and step; without them each update is
#: composed from elementwise kernels. All buffers hold one parameter's n elements; ``param`` and
#: ``grad`` are only read; the state buffers are updated in place and the new weights written to
#: ``out``, a buffer of its own (each step's weights are a new array). Scalars are formed in double
#: and rounded to the buffers' dtype, as the composed update's are; terms with a zero
#: ``weight_decay`` are skipped. A momentum buffer of None means no momentum (``momentum`` 0).
#:
#: - ``adam_step(param, grad, m, v, out, lr, beta1, beta2, eps, weight_decay, bias_c1, bias_c2,
#:   decoupled)``: ``g = grad + weight_decay * param``, or ``g = grad`` when ``decoupled``;
#:   ``m = beta1 m + (1 - beta1) g``, ``v = beta2 v + (1 - beta2) g**2``;
#:   ``out = w - lr * (m / bias_c1) / (sqrt(v / bias_c2) + eps)`` with ``w = param``, or
#:   ``w = param * (1 - lr * weight_decay)`` when ``decoupled`` (AdamW); ``bias_c1`` and ``bias_c2``
#:   (> 0) are ``1 - beta1**t`` and ``1 - beta2**t``. The composed update (and needle-cpu) fold the
#:   corrections: ``(lr sqrt(bias_c2) / bias_c1) m / (sqrt(v) + eps sqrt(bias_c2))``.
#: - ``sgd_step(param, grad, u, out, lr, momentum, weight_decay)``: ``g = grad + weight_decay * param``;
#:   with a buffer ``u``, ``u = momentum u + (1 - momentum) g`` and g = u; ``out = param - lr g``.
#: - ``rmsprop_step(param, grad, v, buf, out, lr, alpha, eps, weight_decay, momentum)``:
#:   ``g = grad + weight_decay * param``; ``v = alpha v + (1 - alpha) g**2``; ``d = g / (sqrt(v) + eps)``;
#:   with a buffer ``buf``, ``buf = momentum buf + d`` and d = buf; ``out = param - lr d``.
#:
#: The loss ``ops.softmax_cross_entropy_labels`` (``needle.nn.SoftmaxLoss``) uses the pair
#: ``softmax_xent_forward`` / ``softmax_xent_backward`` when a backend has both, one call each way;
#: without them it builds a one-hot of the labels and composes the loss from the elementwise and
#: reduction kernels. ``labels`` holds m class indices as floats of the logits' dtype: unless every
#: one is an integer in [0, k), both kernels raise ValueError naming the first bad label (so the
#: labels are checked where they are, never read back to the host). Outputs never share a buffer
#: with another argument.
#:
#: - ``softmax_xent_forward(z, labels, probs, loss_rows, m, k)``: for each row of the compact (m, k)
#:   logits z, with ``mx`` its max and ``s = sum(exp(z - mx))``: ``probs = exp(z - mx) / s`` (m, k)
#:   and ``loss_rows = log(s) - (z[label] - mx)`` (m,), worked out on ``z - mx`` so that they stay
#:   accurate at any magnitude (|z| ~ 1e7, rows of -3e38).
#: - ``softmax_xent_backward(probs, labels, scale, out, m, k)``: ``out = (probs - onehot(labels)) *
#:   scale[0]`` (m, k); ``scale`` is a 1-element buffer, so the gradient's scale stays on the device.
FUSED_KERNELS = (
    "matmul_bias",
    "ewise_relu_backward",
    "matmul_tn",
    "matmul_nt",
    "lstm_cell_forward",
    "lstm_cell_backward",
    "adam_step",
    "sgd_step",
    "rmsprop_step",
    "softmax_xent_forward",
    "softmax_xent_backward",
)


#: Memory statistics (optional; behind ``device.memory_allocated()`` and its siblings), kept apart
#: from OPTIONAL_KERNELS like the fused kernels. Without ``memory_stats`` core cannot know what a
#: backend holds: the device methods raise NotImplementedError naming the backend and this tuple.
#:
#: - ``memory_stats()`` returns a dict with at least ``"allocated_bytes"``: the bytes of the live
#:   ``Array`` buffers of this device (an ``Array`` of n elements of a dtype counts n * itemsize, from
#:   its creation until it is freed; kernels' scratch memory and the free blocks an allocator keeps
#:   for reuse do not count), and ``"peak_allocated_bytes"``: the most ``"allocated_bytes"`` has
#:   been since the backend loaded or the last ``reset_peak_memory_stats()``. It may add
#:   ``"reserved_bytes"``: free bytes a caching allocator holds (what ``empty_cache`` gives back).
#:   Counts are exact when no other thread is allocating.
#: - ``reset_peak_memory_stats()``: the peak becomes the bytes allocated now.
#: - ``empty_cache()`` (optional even with ``memory_stats``): give the free blocks a caching
#:   allocator holds back to the system; live buffers are untouched. Without it, a no-op.
MEMORY_KERNELS = (
    "memory_stats",
    "reset_peak_memory_stats",
    "empty_cache",
)

#: DLPack exchange kernels (optional; see the protocol-2 notes above).
DLPACK_KERNELS = ("dlpack_device", "dlpack_export", "dlpack_import")


def required_kernels(version) -> tuple:
    """The kernel names a backend of protocol ``version`` must provide."""
    return REQUIRED_KERNELS + (REQUIRED_KERNELS_V2 if version >= 2 else ())


def missing_kernels(backend) -> list:
    """Names of required protocol attributes that ``backend`` lacks (for its declared version)."""
    version = getattr(backend, "PROTOCOL_VERSION", PROTOCOL_VERSION)
    version = version if isinstance(version, int) else PROTOCOL_VERSION
    return [name for name in required_kernels(version) if not hasattr(backend, name)]


def optional_kernels(backend) -> list:
    """Names of optional kernels that ``backend`` provides."""
    return [name for name in OPTIONAL_KERNELS + OPTIONAL_KERNELS_V2 if hasattr(backend, name)]
