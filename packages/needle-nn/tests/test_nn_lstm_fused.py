"""The LSTM layer's fused recurrence: its NDArray backward (``backward(create_graph=False)``)
against finite differences, with and without an initial state, on float64 and on the default device."""
import numpy as np
import pytest

import needle as ndl
from needle import nn
from needle.nn import nn_sequence
from needle.testing.gradcheck import numerical_gradients

NUMPY = ndl.cpu_numpy()
NATIVE_KERNELS = nn_sequence._fused_lstm_kernels  # before any test patches it


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _numpy_kernels(dev):
    """The two fused kernels written with numpy on any backend's buffers (through to_numpy/from_numpy),
    following protocol.FUSED_KERNELS: with them the numpy backend takes the layer's fused path."""
    def read(buf, shape):
        return dev.to_numpy(buf, (buf.size,), (1,), 0).reshape(shape)

    def forward(gates, x, c_prev, c, tc, h, out, t, batch, hid):
        z = read(gates, (batch, 4 * hid)) + read(x, (-1, batch, 4 * hid))[t]
        i, f, g, o = (z[:, k * hid:(k + 1) * hid] for k in range(4))
        si, sf, tg, so = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
        c_new = sf * read(c_prev, (batch, hid)) + si * tg
        seq = read(out, (-1, batch, hid))
        seq[t] = so * np.tanh(c_new)
        for buf, value in ((gates, np.concatenate([si, sf, tg, so], 1)), (c, c_new), (tc, np.tanh(c_new)),
                           (h, seq[t]), (out, seq)):
            dev.from_numpy(value, buf)

    def backward(dh, g_out, act, c_prev, tc, dc, dg, d_gates, t, batch, hid):
        a = read(act, (batch, 4 * hid))
        si, sf, tg, so = (a[:, k * hid:(k + 1) * hid] for k in range(4))
        t_c = read(tc, (batch, hid))
        dh_t = read(dh, (batch, hid)) + read(g_out, (-1, batch, hid))[t]
        dc_t = read(dc, (batch, hid)) + dh_t * so * (1 - t_c ** 2)
        grads = np.concatenate([dc_t * tg * si * (1 - si), dc_t * read(c_prev, (batch, hid)) * sf * (1 - sf),
                                dc_t * si * (1 - tg ** 2), dh_t * t_c * so * (1 - so)], 1)
        seq = read(d_gates, (-1, batch, 4 * hid))
        seq[t] = grads
        for buf, value in ((dg, grads), (d_gates, seq), (dc, dc_t * sf)):
            dev.from_numpy(value, buf)

    return forward, backward


def _use_path(monkeypatch, path):
    """Make the layer take ``path``: "composed" (no fused kernels), "fused" (the numpy kernels above)
    or "native" (the backend's own); returns a list that records each layer run on the fused path."""
    taken = []

    def kernels(dev, dtype):
        found = None if path == "composed" else _numpy_kernels(dev) if path == "fused" else NATIVE_KERNELS(dev, dtype)
        if found is not None:
            taken.append(dev)
        return found

    monkeypatch.setattr(nn_sequence, "_fused_lstm_kernels", kernels)
    return taken


def _native_cpu():
    """needle-cpu's device when it is installed with the fused kernels, else a skip."""
    dev = ndl.cpu()
    if not dev.enabled() or dev.backend_name != "cpu" or NATIVE_KERNELS(dev, "float32") is None:
        pytest.skip("needle-cpu with lstm_cell_forward/backward is not installed")
    return dev


def _weights(outs, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.standard_normal(o.shape) for o in outs]


@pytest.mark.parametrize("path", ["composed", "fused"])
@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_fast_backward_matches_finite_differences(monkeypatch, with_state, path):
    taken = _use_path(monkeypatch, path)
    np.random.seed(11)
    lstm = nn.LSTM(2, 3, num_layers=2, device=NUMPY, dtype="float64")
    cell0, cell1 = lstm.lstm_cells

    def f(x, h0, c0, w_ih, w_hh, b_ih, w_hh1):
        cell0.W_ih, cell0.W_hh, cell0.bias_ih, cell1.W_hh = w_ih, w_hh, b_ih, w_hh1
        out, (h_n, c_n) = lstm(x, (h0, c0) if with_state else None)
        return ndl.make_tuple(out, h_n, c_n)

    args = [ndl.Tensor(a, device=NUMPY, dtype="float64") for a in (
        np.random.randn(4, 2, 2), np.random.randn(2, 2, 3), np.random.randn(2, 2, 3),
        cell0.W_ih.numpy(), cell0.W_hh.numpy(), cell0.bias_ih.numpy(), cell1.W_hh.numpy())]
    outs = list(f(*args))
    weights = _weights(outs)
    loss = None
    for o, w in zip(outs, weights):
        term = (o * ndl.Tensor(w, device=NUMPY, dtype="float64", requires_grad=False)).sum()
        loss = term if loss is None else loss + term
    loss.backward(create_graph=False)
    numeric = numerical_gradients(f, *args, weights=weights)
    for i, (a, num) in enumerate(zip(args, numeric)):
        if not with_state and i in (1, 2):
            assert a.grad is None  # no state given: h0, c0 are not used
            continue
        np.testing.assert_allclose(a.grad.numpy(), num, atol=1e-6, rtol=1e-5, err_msg=f"argument {i}")
    assert bool(taken) == (path == "fused")


def test_lstm_fast_backward_on_the_default_device_matches_float64():
    # float32 on the default device (needle-cpu when installed) against the float64 numpy result
    np.random.seed(12)
    x = np.random.randn(5, 3, 4)
    grads = []
    for device, dtype in ((NUMPY, "float64"), (ndl.cpu(), "float32")):
        np.random.seed(13)
        lstm = nn.LSTM(4, 6, device=device, dtype=dtype)
        xt = ndl.Tensor(x, device=device, dtype=dtype)
        out, (h_n, c_n) = lstm(xt)
        ((out * out).sum() + h_n.sum() + c_n.sum()).backward(create_graph=False)
        cell = lstm.lstm_cells[0]
        grads.append([xt.grad.numpy(), cell.W_hh.grad.numpy(), cell.W_ih.grad.numpy(), cell.bias_hh.grad.numpy()])
    for got, want in zip(grads[1], grads[0]):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)



@pytest.mark.parametrize("path", ["fused", "native"])
def test_fused_path_matches_the_cell_formulas(monkeypatch, path, np_lstm):
    # step by step in float64: on the numpy kernels above (float64), on needle-cpu's own (float32)
    dev, dtype, tol = (NUMPY, "float64", dict(rtol=1e-10, atol=1e-12)) if path == "fused" else (
        _native_cpu(), "float32", dict(rtol=1e-5, atol=1e-6))
    taken = _use_path(monkeypatch, path)
    np.random.seed(14)
    x, h0, c0 = np.random.randn(5, 3, 4), np.random.randn(2, 3, 6), np.random.randn(2, 3, 6)
    lstm = nn.LSTM(4, 6, num_layers=2, device=dev, dtype=dtype)
    layers = [[w.numpy().astype(np.float64) for w in (c.W_ih, c.W_hh, c.bias_ih, c.bias_hh)] for c in lstm.lstm_cells]
    want, h_n, c_n = np_lstm(x, layers, h0, c0)
    x_t, h0_t, c0_t = (ndl.Tensor(a, device=dev, dtype=dtype) for a in (x, h0, c0))
    out, (got_h, got_c) = lstm(x_t, (h0_t, c0_t))
    for got, expect in ((out, want), (got_h, h_n), (got_c, c_n)):
        np.testing.assert_allclose(got.numpy(), expect, **tol)
    assert len(taken) == 2  # both layers


def _outputs_and_gradients(dev, dtype, create_graph):
    np.random.seed(15)
    lstm = nn.LSTM(5, 7, num_layers=2, device=dev, dtype=dtype)
    x, h0, c0 = (ndl.Tensor(np.random.randn(*s), device=dev, dtype=dtype) for s in ((6, 4, 5), (2, 4, 7), (2, 4, 7)))
    out, (h_n, c_n) = lstm(x, (h0, c0))
    w = ndl.Tensor(np.random.randn(6, 4, 7), device=dev, dtype=dtype)
    ((out * w).sum() + (h_n * h_n).sum() + c_n.sum()).backward(create_graph=create_graph)
    return [t.numpy() for t in (out, h_n, c_n, x.grad, h0.grad, c0.grad)] + [p.grad.numpy() for p in lstm.parameters()]


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("path", ["fused", "native"])
def test_fused_and_composed_paths_agree(monkeypatch, path, create_graph):
    # needle-cpu's kernels round as its composed kernels do, hence the tight float32 tolerance
    dev, dtype, tol = (NUMPY, "float64", dict(rtol=1e-12, atol=1e-12)) if path == "fused" else (
        _native_cpu(), "float32", dict(rtol=1e-6, atol=1e-6))
    _use_path(monkeypatch, "composed")
    composed = _outputs_and_gradients(dev, dtype, create_graph)
    taken = _use_path(monkeypatch, path)
    fused = _outputs_and_gradients(dev, dtype, create_graph)
    assert len(taken) == 2
    for i, (a, b) in enumerate(zip(fused, composed)):
        np.testing.assert_allclose(a, b, err_msg=f"value {i}", **tol)


# Course detail: LSTM(x, None) starts from zeros that take part in the graph, so every parameter,
# W_hh included, gets a gradient on every path (PyTorch does the same); at step 1 W_hh's is
# h0^T @ (gate gradients) = 0 exactly. Oracle: central differences in float64 on numpy.
@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("path", ["composed", "fused", "native"])
def test_lstm_from_no_state_gives_every_parameter_a_gradient(monkeypatch, path, steps, create_graph):
    dev, dtype, tol = (_native_cpu(), "float32", dict(rtol=1e-3, atol=1e-4)) if path == "native" else (
        NUMPY, "float64", dict(rtol=1e-6, atol=1e-8))
    taken = _use_path(monkeypatch, path)
    np.random.seed(16)
    lstm = nn.LSTM(2, 3, num_layers=2, device=dev, dtype=dtype)
    names = [(c, n) for c in lstm.lstm_cells for n in ("W_ih", "W_hh", "bias_ih", "bias_hh")]
    params = [getattr(c, n) for c, n in names]
    x = ndl.Tensor(np.random.randn(steps, 4, 2), device=dev, dtype=dtype)
    out, (h_n, c_n) = lstm(x)
    weights = _weights([out, h_n, c_n])
    loss = None
    for o, w in zip((out, h_n, c_n), weights):
        term = (o * ndl.Tensor(w, device=dev, dtype=dtype, requires_grad=False)).sum()
        loss = term if loss is None else loss + term
    loss.backward(create_graph=create_graph)
    assert len(taken) == (0 if path == "composed" else 2)
    got = [p.grad for p in params]
    assert all(g is not None and g.shape == p.shape for g, p in zip(got, params))

    def f(x, *values):
        for (c, n), v in zip(names, values):
            setattr(c, n, v)
        out, (h_n, c_n) = lstm(x)
        return ndl.make_tuple(out, h_n, c_n)

    numeric = numerical_gradients(f, x, *params, weights=weights, numeric_device=NUMPY, numeric_dtype="float64")
    for (_, n), g, num in zip(names, got, numeric[1:]):
        np.testing.assert_allclose(g.numpy(), num, err_msg=n, **tol)
    w_hh = got[1].numpy()  # the first layer's W_hh
    if steps == 1:
        np.testing.assert_array_equal(w_hh, 0)
    else:
        assert np.abs(w_hh).max() > 1e-3
