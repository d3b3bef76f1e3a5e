"""The backend protocol: the flat-buffer kernels every backend provides.

A backend is an object (usually a module) with the attributes below. Every kernel works
on flat, one-dtype device buffers created by ``Array(size, dtype)``; all view logic
(shape, strides, offset, broadcasting) lives in :mod:`needle.backend_ndarray.ndarray`, so a
backend never sees anything but flat buffers plus a (shape, strides, offset) triple.

Required
--------
``PROTOCOL_VERSION``                         int, the protocol version implemented (this is 1)
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

PROTOCOL_VERSION = 1

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

#: Kernels core uses when a backend has them. Signatures:
#: ``ewise_sub(a, b, out)``, ``scalar_rsub(a, val, out)`` (val - a), ``scalar_rdiv(a, val, out)``
#: (val / a), ``ewise_neg(a, out)``, ``ewise_sqrt(a, out)``, ``ewise_sigmoid(a, out)``,
#: ``ewise_relu(a, out)``, ``ewise_power(a, b, out)``,
#: ``matmul_batched(a, b, out, batch, m, n, p)`` (compact (batch, m, n) @ (batch, n, p)),
#: ``conv2d_nhwc(a, b, out, n, h, w, c_in, c_out, kh, kw, sh, sw)`` (NHWC input already padded;
#: see ``needle/ops/ops_conv.py``).
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
#: matmul without a transposed copy of x). Without them core composes matmul
#: + broadcast add, a comparison + multiply, and a transposing compact + matmul.
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
    "lstm_cell_forward",
    "lstm_cell_backward",
    "adam_step",
    "sgd_step",
    "rmsprop_step",
    "softmax_xent_forward",
    "softmax_xent_backward",
)


def missing_kernels(backend) -> list:
    """Names of required protocol attributes that ``backend`` lacks."""
    return [name for name in REQUIRED_KERNELS if not hasattr(backend, name)]


def optional_kernels(backend) -> list:
    """Names of optional kernels that ``backend`` provides."""
    return [name for name in OPTIONAL_KERNELS if hasattr(backend, name)]
