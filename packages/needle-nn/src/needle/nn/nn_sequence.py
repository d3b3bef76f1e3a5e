"""Sequence layers: Embedding, RNNCell, RNN, LSTMCell, LSTM (inputs (seq_len, batch, features)).

A multi-step layer projects its whole input sequence with one matmul, then runs the recurrence
step by step; the result is the same as calling the cell at each step, with one big matmul
instead of ``seq_len`` small ones.
"""
import functools
import math

import numpy as np

from needle import init, ops
from needle._jit import validation_read
from needle.autograd import NDArray, Tensor, TensorOp, TensorTupleOp, gradients, is_grad_enabled

from .nn_module import Module, Parameter


class _Lookup(TensorOp):
    """Rows ``ids`` of a (num, dim) table: (..., ) ids -> (..., dim). Adjoint of :class:`_ScatterRows`."""

    def __init__(self, ids, index=None):
        self.ids, self.index = ids, index

    def compute(self, table: NDArray):
        index = _device_ids(self.ids, self.index, table.device, "gather_rows")
        if index is not None:  # the backend's gather: no copy of the whole table to the host
            return table.take_rows(index)
        rows = table.numpy()[self.ids]
        return NDArray(rows, device=table.device, dtype=table.dtype)

    def gradient(self, out_grad, node):
        return _ScatterRows(self.ids, node.inputs[0].shape[0], self.index)(out_grad)


def _device_ids(ids, index, device, kernel):
    """The ids as an int64 NDArray on ``device`` when its backend has ``kernel``, else None (host path):
    ``index`` (the input's own buffer, so that needle.jit replays read each call's ids) when given."""
    if getattr(device, "protocol", 1) < 2 or device.optional(kernel) is None:
        return None
    if index is not None and index.device == device:
        return index
    return NDArray(ids, device=device, dtype="int64")


class _ScatterRows(TensorOp):
    """Sum rows of ``a`` (..., dim) into a (num, dim) table of zeros at ``ids`` (repeated ids add up)."""

    def __init__(self, ids, num, index=None):
        self.ids, self.num, self.index = ids, num, index

    def compute(self, a: NDArray):
        dim = a.shape[-1]
        index = _device_ids(self.ids, self.index, a.device, "scatter_add_rows")
        if index is not None:  # a scatter-add on the device: no host round trip of the table
            return a.device.full((self.num, dim), 0.0, dtype=a.dtype).scatter_add_rows(index, a.compact())
        table = np.zeros(self.num * dim, dtype=a.dtype)
        # One flat index per element: numpy's add.at on 1-D runs about 3x faster than on rows,
        # adding in the same order (so the same sums).
        flat = (self.ids.reshape(-1, 1) * dim + np.arange(dim)).reshape(-1)
        np.add.at(table, flat, a.numpy().reshape(-1))
        return NDArray(table.reshape(self.num, dim), device=a.device, dtype=a.dtype)

    def gradient(self, out_grad, node):
        return _Lookup(self.ids)(out_grad)


class Embedding(Module):
    """A lookup table: integer ids (seq_len, batch) -> vectors (seq_len, batch, embedding_dim).

    ``weight`` is (num_embeddings, embedding_dim) drawn from N(0, 1). Ids may be ints or floats
    holding ints (as a DataLoader yields them), in a Tensor, numpy array or list. Forward picks
    the rows; the weight's gradient adds the output gradient's rows back at the ids (a graph
    op, so it can be differentiated again).
    """

    def __init__(self, num_embeddings, embedding_dim, device=None, dtype="float32"):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(init.randn(num_embeddings, embedding_dim, device=device, dtype=dtype))

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"

    def forward(self, x):
        index = None
        if isinstance(x, Tensor):
            with validation_read():  # a check: allowed while needle.jit records (a replay's kernels check)
                ids = np.asarray(x.numpy())
            if x.device == self.weight.device and x.dtype != "bool":
                index = x.realize_cached_data()
                index = index if index.dtype == "int64" else index.astype("int64")
        else:
            ids = np.asarray(x.numpy() if hasattr(x, "numpy") else x)
        if ids.size and not np.all(np.mod(ids, 1) == 0):
            raise ValueError("Embedding: ids must hold integers")
        ids = ids.astype(np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"Embedding: ids must be in [0, {self.num_embeddings}), "
                             f"got values in [{ids.min()}, {ids.max()}]")
        return _Lookup(ids, index)(self.weight)


def _uniform(shape, bound, device, dtype):
    return Parameter(init.rand(*shape, low=-bound, high=bound, device=device, dtype=dtype))


def _check_input(layer, x, ndim, features):
    if x.ndim != ndim or x.shape[-1] != features:
        want = "(batch, {0})" if ndim == 2 else "(seq_len, batch, {0})"
        raise ValueError(f"{layer}: input must be {want.format(features)}, got shape {x.shape}")


def _check_state(layer, name, h, shape):
    if tuple(h.shape) != tuple(shape):
        raise ValueError(f"{layer}: {name} must have shape {tuple(shape)}, got {h.shape}")


class _Cell(Module):
    """Shared parts of RNNCell and LSTMCell: weights (in, G*H), (H, G*H) and biases (G*H,)."""

    gates = 1

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype="float32"):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        width, bound = self.gates * hidden_size, 1.0 / math.sqrt(hidden_size)
        self.W_ih = _uniform((input_size, width), bound, device, dtype)
        self.W_hh = _uniform((hidden_size, width), bound, device, dtype)
        self.bias_ih = _uniform((width,), bound, device, dtype) if bias else None
        self.bias_hh = _uniform((width,), bound, device, dtype) if bias else None

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}"

    def project(self, x):
        """``x @ W_ih + bias_ih + bias_hh`` for x of shape (..., input_size): the input's share of the gates."""
        lead = x.shape[:-1]
        width = self.W_ih.shape[1]
        flat = x if x.ndim == 2 else ops.reshape(x, (math.prod(lead), self.input_size))
        if self.bias_ih is not None:
            out = ops.matmul_bias(flat, self.W_ih, self.bias_ih + self.bias_hh)
        else:
            out = flat @ self.W_ih
        return out if x.ndim == 2 else ops.reshape(out, lead + (width,))

    def zero_state(self, batch):
        """Zeros (batch, hidden_size): the state ``h=None`` stands for. They take part in the graph
        (``h @ W_hh`` is computed), so W_hh gets a gradient, zero where nothing flowed, as in PyTorch."""
        return init.zeros(batch, self.hidden_size, device=self.W_hh.device, dtype=self.W_hh.dtype)


class RNNCell(_Cell):
    """One Elman step: ``h' = nonlinearity(X @ W_ih + bias_ih + h @ W_hh + bias_hh)``.

    ``RNNCell(input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype="float32")``;
    ``nonlinearity`` is ``"tanh"`` or ``"relu"``. Weights and biases are uniform in
    +-1/sqrt(hidden_size), drawn in the order W_ih, W_hh, bias_ih, bias_hh.
    ``cell(X, h=None)``: X (batch, input_size), h (batch, hidden_size) or None for zeros (which
    take part in the graph, so every parameter gets a gradient).
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None, dtype="float32"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, device, dtype)
        self.nonlinearity = nonlinearity

    def step(self, proj, h):
        """The recurrence given ``proj = project(X)``; ``h`` None means zeros."""
        h = self.zero_state(proj.shape[0]) if h is None else h
        pre = proj + h @ self.W_hh
        return ops.tanh(pre) if self.nonlinearity == "tanh" else ops.relu(pre)

    def forward(self, X, h=None):
        _check_input("RNNCell", X, 2, self.input_size)
        if h is not None:
            _check_state("RNNCell", "h", h, (X.shape[0], self.hidden_size))
        return self.step(self.project(X), h)


class LSTMCell(_Cell):
    """One LSTM step with gates in the order i, f, g, o.

    ``i, f, o = sigmoid(.)``, ``g = tanh(.)`` of the matching quarter of
    ``X @ W_ih + bias_ih + h @ W_hh + bias_hh`` (weights (in, 4H), (H, 4H)); then
    ``c' = f * c + i * g`` and ``h' = o * tanh(c')``. ``cell(X, (h, c) or None)`` returns ``(h', c')``;
    None means zeros, which take part in the graph (every parameter gets a gradient).
    """

    gates = 4

    def step(self, proj, state):
        """The recurrence given ``proj = project(X)``; ``state`` is (h, c) or None for zeros."""
        hid = self.hidden_size
        if state is None:
            state = (self.zero_state(proj.shape[0]),) * 2
        gates = proj + state[0] @ self.W_hh
        # One split of (batch, 4, hidden): four views, and a gradient that is one stack (four
        # slices would each scatter their gradient into zeros, then be added up).
        i, f, g, o = ops.split(ops.reshape(gates, (gates.shape[0], 4, hid)), 1)
        i, f, g, o = ops.sigmoid(i), ops.sigmoid(f), ops.tanh(g), ops.sigmoid(o)
        c = f * state[1] + i * g
        return o * ops.tanh(c), c

    def forward(self, X, h=None):
        _check_input("LSTMCell", X, 2, self.input_size)
        if h is not None:
            if not isinstance(h, (tuple, list)) or len(h) != 2:
                raise ValueError("LSTMCell: h must be a pair (h0, c0) or None")
            for name, t in zip(("h0", "c0"), h):
                _check_state("LSTMCell", name, t, (X.shape[0], self.hidden_size))
            h = tuple(h)
        return self.step(self.project(X), h)


class _LSTMRecurrence(TensorTupleOp):
    """Every step of one LSTM layer as one node: (proj (T, B, 4H), W_hh (H, 4H), h0, c0) -> (out (T, B, H), h_n, c_n).

    ``proj`` is the input's share of the gates for all steps (``LSTMCell.project``). The composed
    graph costs some sixty small ops per step, each with Python overhead, and sums W_hh's gradient
    from one small matmul per step; this node runs the steps on NDArrays and gets W_hh's gradient
    from one matmul over all steps. A backend with the fused kernels ``lstm_cell_forward`` and
    ``lstm_cell_backward`` does each step's elementwise work in one call each way, on the raw
    buffers; without them the same steps are composed from NDArray kernels (same values on
    needle-cpu, whose fused kernels round as its composed ones). Gradients taken with a graph
    (``create_graph=True``) replay the composed steps from the same inputs, so they can be
    differentiated again.
    """

    def compute(self, proj: NDArray, w_hh: NDArray, h0: NDArray, c0: NDArray):
        self._kernels = _fused_lstm_kernels(proj.device, proj.dtype)
        if self._kernels is not None:
            return self._compute_fused(proj, w_hh, h0, c0)
        steps, batch, width = proj.shape
        hid = width // 4
        out = proj.device.empty((steps, batch, hid), dtype=proj.dtype)
        h, c, saved = h0, c0, []
        for t in range(steps):
            gates = (h @ w_hh).iadd(proj.basic_index(t))
            sig = gates.sigmoid()  # i, f and o: one kernel over all four gates
            i, f, o = (sig[:, k * hid:(k + 1) * hid].compact() for k in (0, 1, 3))
            g = gates[:, 2 * hid:3 * hid].tanh()
            c_prev, c = c, (f * c).iadd(i * g)
            tc = c.tanh()
            h = o * tc
            out[t] = h
            saved.append((i, f, g, o, c_prev, tc))
        self._saved = saved
        return out, h, c

    def _compute_fused(self, proj, w_hh, h0, c0):
        # Straight on the backend's buffers: per step one matmul and one fused call (NDArray
        # wrappers would cost more Python than the kernels take).
        forward = self._kernels[0]
        steps, batch, width = proj.shape
        hid = width // 4
        dev, dtype = proj.device, proj.dtype
        x, w = proj.compact()._handle, w_hh.compact()._handle
        out = NDArray.make((steps, batch, hid), device=dev, dtype=dtype)
        h, c, saved = h0.compact()._handle, c0.compact()._handle, []
        new, matmul = dev.kernel("Array"), dev.kernel("matmul")
        for t in range(steps):
            gates = new(batch * width, dtype)  # h @ W_hh; the kernel adds x[t], leaves the activations
            matmul(h, w, gates, batch, hid, width)
            c_new, tc, h = new(batch * hid, dtype), new(batch * hid, dtype), new(batch * hid, dtype)
            forward(gates, x, c, c_new, tc, h, out._handle, t, batch, hid)
            saved.append((gates, c, tc))
            c = c_new
        self._saved = saved
        if not steps:
            return out, h0, c0
        return out, NDArray.make((batch, hid), device=dev, handle=h), NDArray.make((batch, hid), device=dev, handle=c)

    def gradient(self, out_grad, node):
        proj, w_hh, h0, c0 = node.inputs
        if is_grad_enabled():  # a graph is wanted: replay the composed steps and differentiate them
            outputs = _lstm_steps(proj, w_hh, (h0, c0))
            grads = list(out_grad)
            proxy = None  # sum(output * its adjoint): its gradient is the vector-Jacobian product wanted
            for value, grad in zip(outputs, grads):
                term = ops.summation(value * grad)
                proxy = term if proxy is None else proxy + term
            one = Tensor.make_const(proxy.device.full((), 1.0, dtype=proxy.dtype))
            # The adjoints are held fixed (the sweep stops at them too); their graph links remain.
            return tuple(gradients(proxy, one, list(node.inputs) + grads)[:4])
        return tuple(Tensor.make_const(g) if g is not None else None
                     for g in self._backward([g.realize_cached_data() for g in out_grad], node))

    def _backward(self, out_grad, node):
        g_out, dh, dc = out_grad
        proj, w_hh, h0, c0 = (x.realize_cached_data() for x in node.inputs)
        out = node.realize_cached_data()[0]
        steps, batch, width = proj.shape
        hid = width // 4
        w_t = w_hh.permute((1, 0)).compact()
        if self._kernels is not None:
            d_gates, dh, dc = self._steps_back_fused(g_out, dh, dc, w_t, node.inputs[2].requires_grad)
        else:
            d_gates, dh, dc = self._steps_back(g_out, dh, dc, w_t)
        # W_hh's gradient over all steps at once: (h_{t-1} for every t)^T @ (gate gradients).
        h_prev = proj.device.empty((steps, batch, hid), dtype=proj.dtype)
        h_prev[0] = h0
        if steps > 1:
            h_prev[1:] = out[:steps - 1]
        flat = h_prev.reshape((steps * batch, hid))
        d_w = flat.permute((1, 0)).compact() @ d_gates.reshape((steps * batch, width))
        return [d_gates if x.requires_grad else None for x in [node.inputs[0]]] + [
            d_w if node.inputs[1].requires_grad else None,
            dh if node.inputs[2].requires_grad else None,
            dc if node.inputs[3].requires_grad else None]

    def _steps_back(self, g_out, dh, dc, w_t):
        """The composed backward sweep: (d_gates (T, B, 4H), dh_0, dc_0)."""
        steps, batch, hid = g_out.shape
        d_gates = g_out.device.empty((steps, batch, 4 * hid), dtype=g_out.dtype)
        for t in reversed(range(steps)):
            i, f, g, o, c_prev, tc = self._saved[t]
            dh = dh + g_out.basic_index(t)
            do = dh * tc
            dc = dc + (dh * o).imul(1.0 - tc * tc)
            dg = d_gates.basic_index(t)  # this step's (batch, 4H) gate gradients, written in place
            dg[:, 0:hid] = (dc * g).imul(i).imul(1.0 - i)
            dg[:, hid:2 * hid] = (dc * c_prev).imul(f).imul(1.0 - f)
            dg[:, 2 * hid:3 * hid] = (dc * i).imul(1.0 - g * g)
            dg[:, 3 * hid:] = do.imul(o).imul(1.0 - o)
            dc = dc * f
            dh = dg.compact() @ w_t
        return d_gates, dh, dc

    def _steps_back_fused(self, g_out, dh, dc, w_t, need_dh0):
        """The backward sweep with ``lstm_cell_backward``: (d_gates (T, B, 4H), dh_0, dc_0)."""
        steps, batch, hid = g_out.shape
        dev, dtype, width = g_out.device, g_out.dtype, 4 * hid
        backward = self._kernels[1]
        d_gates = NDArray.make((steps, batch, width), device=dev, dtype=dtype)
        w, seq = w_t._handle, g_out.compact()._handle
        dh, dc = dh.compact(), dc.copy()  # dc is updated in place
        for t in reversed(range(steps)):
            act, c_prev, tc = self._saved[t]
            dg = dev.kernel("Array")(batch * width, dtype)
            backward(dh._handle, seq, act, c_prev, tc, dc._handle, dg, d_gates._handle, t, batch, hid)
            if t or need_dh0:  # h0's gradient is one more matmul, skipped when nobody wants it
                dh = NDArray.make((batch, hid), device=dev, dtype=dtype)
                dev.kernel("matmul")(dg, w, dh._handle, batch, width, hid)
        return d_gates, dh, dc


def _fused_lstm_kernels(device, dtype):
    """The backend's (lstm_cell_forward, lstm_cell_backward) for ``dtype``, or None unless it has both."""
    forward, backward = device.fused("lstm_cell_forward", dtype), device.fused("lstm_cell_backward", dtype)
    return None if forward is None or backward is None else (forward, backward)


def _lstm_steps(proj, w_hh, state):
    """The composed LSTM recurrence over ``proj`` (T, B, 4H) tensors: (out, h_n, c_n)."""
    hid = w_hh.shape[0]
    outputs = []
    for proj_t in ops.split(proj, 0):
        gates = proj_t if state is None else proj_t + state[0] @ w_hh
        i, f, g, o = ops.split(ops.reshape(gates, (gates.shape[0], 4, hid)), 1)
        i, f, g, o = ops.sigmoid(i), ops.sigmoid(f), ops.tanh(g), ops.sigmoid(o)
        c = i * g if state is None else f * state[1] + i * g
        state = (o * ops.tanh(c), c)
        outputs.append(state[0])
    return ops.stack(outputs, 0), state[0], state[1]


def _promoted(*tensors):
    """``tensors`` in one dtype, a float32/float64 mix cast to float64 as core's binary ops do
    (the fused recurrence works on NDArrays, which take a single dtype)."""
    wide = functools.reduce(np.promote_types, (t.dtype for t in tensors)).name
    return [ops.cast(t, wide) for t in tensors]


def _layer_states(layer, name, h0, num_layers, batch, hidden):
    if h0 is None:
        return [None] * num_layers
    _check_state(layer, name, h0, (num_layers, batch, hidden))
    return [h0[i] for i in range(num_layers)]


def _run_layer(cell, x, state):
    """Run ``cell`` over the (seq_len, batch, in) tensor ``x``: per-step states, last state."""
    # One matmul for all steps, split into steps once: its gradient is one stack (indexing
    # proj[t] would scatter each step's gradient into a zero tensor of the whole sequence).
    proj = ops.split(cell.project(x), 0)
    outputs = []
    for t in range(x.shape[0]):
        state = cell.step(proj[t], state)
        outputs.append(state[0] if isinstance(state, tuple) else state)
    return ops.stack(outputs, 0), state


class RNN(Module):
    """A multi-layer Elman RNN over (seq_len, batch, input_size) inputs.

    ``RNN(input_size, hidden_size, num_layers=1, bias=True, nonlinearity="tanh", device=None, dtype="float32")``;
    its cells are ``rnn_cells``. ``rnn(X, h0=None)`` returns ``(output, h_n)``: output
    (seq_len, batch, hidden_size) is the last layer's state at every step, h_n
    (num_layers, batch, hidden_size) every layer's last state.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, nonlinearity="tanh", device=None,
                 dtype="float32"):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"RNN: num_layers must be >= 1, got {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.rnn_cells = [RNNCell(input_size if i == 0 else hidden_size, hidden_size, bias, nonlinearity,
                                  device=device, dtype=dtype) for i in range(num_layers)]

    def forward(self, X, h0=None):
        _check_input("RNN", X, 3, self.input_size)
        states = _layer_states("RNN", "h0", h0, self.num_layers, X.shape[1], self.hidden_size)
        last = []
        for cell, h in zip(self.rnn_cells, states):
            X, h = _run_layer(cell, X, h)
            last.append(h)
        return X, ops.stack(last, 0)


class LSTM(Module):
    """A multi-layer LSTM over (seq_len, batch, input_size) inputs.

    ``LSTM(input_size, hidden_size, num_layers=1, bias=True, device=None, dtype="float32")``;
    its cells are ``lstm_cells``. ``lstm(X, (h0, c0) or None)`` returns
    ``(output, (h_n, c_n))`` with output (seq_len, batch, hidden_size) and h_n, c_n
    (num_layers, batch, hidden_size).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, device=None, dtype="float32"):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"LSTM: num_layers must be >= 1, got {num_layers}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.lstm_cells = [LSTMCell(input_size if i == 0 else hidden_size, hidden_size, bias,
                                    device=device, dtype=dtype) for i in range(num_layers)]

    def forward(self, X, h=None):
        _check_input("LSTM", X, 3, self.input_size)
        if h is not None and (not isinstance(h, (tuple, list)) or len(h) != 2):
            raise ValueError("LSTM: h must be a pair (h0, c0) or None")
        args = ("LSTM", self.num_layers, X.shape[1], self.hidden_size)
        hs = _layer_states(args[0], "h0", None if h is None else h[0], *args[1:])
        cs = _layer_states(args[0], "c0", None if h is None else h[1], *args[1:])
        last_h, last_c = [], []
        for cell, h_i, c_i in zip(self.lstm_cells, hs, cs):
            if h_i is None:  # zero state: the same values as no state, through the one fused node
                h_i = init.zeros(X.shape[1], self.hidden_size, device=X.device, dtype=X.dtype)
                c_i = init.zeros(X.shape[1], self.hidden_size, device=X.device, dtype=X.dtype)
            X, h_i, c_i = _LSTMRecurrence()(*_promoted(cell.project(X), cell.W_hh, h_i, c_i))
            last_h.append(h_i)
            last_c.append(c_i)
        return X, (ops.stack(last_h, 0), ops.stack(last_c, 0))
