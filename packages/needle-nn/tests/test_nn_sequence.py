"""Embedding, RNN and LSTM against step-by-step numpy formulas and finite differences."""
import math

import numpy as np
import pytest

import needle as ndl
from needle import nn
from needle.testing.gradcheck import gradcheck, numerical_gradients

NUMPY = ndl.cpu_numpy()
F64 = dict(device=NUMPY, dtype="float64")


def np_rnn(x, layers, h0, nonlinearity):
    """layers: list of (W_ih, W_hh, b_ih, b_hh); x (T, B, in); h0 (L, B, H). Returns (out, h_n)."""
    act = np.tanh if nonlinearity == "tanh" else (lambda z: np.maximum(z, 0))
    h_n = []
    for (w_ih, w_hh, b_ih, b_hh), h in zip(layers, h0):
        outs = []
        for t in range(x.shape[0]):
            h = act(x[t] @ w_ih + b_ih + h @ w_hh + b_hh)
            outs.append(h)
        x = np.stack(outs)
        h_n.append(h)
    return x, np.stack(h_n)


def weights(cells):
    return [tuple(getattr(c, n).numpy() for n in ("W_ih", "W_hh", "bias_ih", "bias_hh")) for c in cells]


def test_embedding_looks_up_rows():
    np.random.seed(0)
    emb = nn.Embedding(7, 3)
    assert emb.weight.shape == (7, 3)
    np.random.seed(0)
    np.testing.assert_allclose(emb.weight.numpy(), np.random.randn(7, 3), rtol=1e-6)
    ids = np.array([[1, 6], [0, 1], [3, 3]])
    out = emb(ndl.Tensor(ids.astype(np.float32), requires_grad=False))  # floats holding ints, as loaders give
    np.testing.assert_allclose(out.numpy(), emb.weight.numpy()[ids], rtol=1e-6)
    np.testing.assert_allclose(emb(ids).numpy(), emb.weight.numpy()[ids], rtol=1e-6)
    with pytest.raises(ValueError):
        emb(np.array([[7]]))


def test_embedding_gradient_float64():
    emb = nn.Embedding(5, 2, **F64)
    ids = np.array([[0, 4], [4, 2]])

    def f(w):
        emb.weight = w
        return emb(ids)

    grad = gradcheck(f, emb.weight)[0]
    assert not grad[[1, 3]].any()  # rows never looked up get no gradient


def test_embedding_gradient_adds_repeated_ids_float32():
    # Oracle: numpy's add.at of the output gradient's rows at the ids (the device scatter-add path).
    np.random.seed(2)
    emb = nn.Embedding(50, 4)
    ids = np.random.randint(0, 50, (6, 5))
    ids[0, :3] = 7  # repeated ids accumulate
    weights = np.random.randn(6, 5, 4).astype(np.float32)
    out = emb(ids)
    (out * ndl.Tensor(weights, requires_grad=False)).sum().backward()
    expect = np.zeros((50, 4), dtype=np.float32)
    np.add.at(expect, ids.reshape(-1), weights.reshape(-1, 4))
    np.testing.assert_allclose(emb.weight.grad.numpy(), expect, rtol=1e-5, atol=1e-6)


def test_rnn_cell_init_bounds_and_order():
    np.random.seed(1)
    cell = nn.RNNCell(3, 4)
    np.random.seed(1)
    b = 1 / math.sqrt(4)
    expect = [np.random.rand(*s) * 2 * b - b for s in ((3, 4), (4, 4), (4,), (4,))]
    for got, want in zip(weights([cell])[0], expect):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    lstm = nn.LSTMCell(3, 4)
    assert lstm.W_ih.shape == (3, 16) and lstm.W_hh.shape == (4, 16) and lstm.bias_ih.shape == (16,)
    assert nn.RNNCell(3, 4, bias=False).bias_ih is None


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_cell_step(nonlinearity):
    np.random.seed(2)
    cell = nn.RNNCell(3, 4, nonlinearity=nonlinearity, **F64)
    x, h = np.random.randn(5, 3), np.random.randn(5, 4)
    (w_ih, w_hh, b_ih, b_hh), = weights([cell])
    act = np.tanh if nonlinearity == "tanh" else (lambda z: np.maximum(z, 0))
    np.testing.assert_allclose(cell(ndl.Tensor(x, device=NUMPY), ndl.Tensor(h, device=NUMPY)).numpy(),
                               act(x @ w_ih + b_ih + h @ w_hh + b_hh), rtol=1e-10)
    np.testing.assert_allclose(cell(ndl.Tensor(x, device=NUMPY)).numpy(), act(x @ w_ih + b_ih + b_hh), rtol=1e-10)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("with_h0", [False, True])
def test_rnn_matches_numpy(nonlinearity, with_h0):
    np.random.seed(3)
    rnn = nn.RNN(3, 4, num_layers=2, nonlinearity=nonlinearity, **F64)
    x = np.random.randn(5, 2, 3)
    h0 = np.random.randn(2, 2, 4) if with_h0 else np.zeros((2, 2, 4))
    out, h_n = rnn(ndl.Tensor(x, device=NUMPY), ndl.Tensor(h0, device=NUMPY) if with_h0 else None)
    expect_out, expect_h = np_rnn(x, weights(rnn.rnn_cells), h0, nonlinearity)
    assert out.shape == (5, 2, 4) and h_n.shape == (2, 2, 4)
    np.testing.assert_allclose(out.numpy(), expect_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_n.numpy(), expect_h, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_matches_numpy(with_state, np_lstm):
    np.random.seed(4)
    lstm = nn.LSTM(3, 4, num_layers=2, **F64)
    x = np.random.randn(6, 2, 3)
    h0, c0 = (np.random.randn(2, 2, 4), np.random.randn(2, 2, 4)) if with_state else (np.zeros((2, 2, 4)),) * 2
    state = (ndl.Tensor(h0, device=NUMPY), ndl.Tensor(c0, device=NUMPY)) if with_state else None
    out, (h_n, c_n) = lstm(ndl.Tensor(x, device=NUMPY), state)
    expect = np_lstm(x, weights(lstm.lstm_cells), h0, c0)
    for got, want in zip((out, h_n, c_n), expect):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    h1, c1 = lstm.lstm_cells[0](ndl.Tensor(x[0], device=NUMPY), (state[0][0], state[1][0]) if with_state else None)
    e_out, e_h, e_c = np_lstm(x[:1], weights(lstm.lstm_cells[:1]), h0[:1], c0[:1])
    np.testing.assert_allclose(h1.numpy(), e_h[0], rtol=1e-10)
    np.testing.assert_allclose(c1.numpy(), e_c[0], rtol=1e-10)


@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_float32_layer_takes_float64_input(with_state, np_lstm):
    # A float64 input (numpy keeps it float64) to a float32 LSTM promotes, as core's binary ops do:
    # float64 outputs, float32 weight gradients.
    rng = np.random.RandomState(8)
    lstm = nn.LSTM(3, 4, num_layers=2, device=NUMPY)
    x = rng.randn(5, 2, 3)
    h0, c0 = (rng.randn(2, 2, 4), rng.randn(2, 2, 4)) if with_state else (np.zeros((2, 2, 4)),) * 2
    state = (ndl.Tensor(h0, device=NUMPY), ndl.Tensor(c0, device=NUMPY)) if with_state else None
    out, (h_n, c_n) = lstm(ndl.Tensor(x, device=NUMPY), state)
    layers = [tuple(w.astype(np.float64) for w in ws) for ws in weights(lstm.lstm_cells)]
    for got, want in zip((out, h_n, c_n), np_lstm(x, layers, h0, c0)):
        assert got.dtype == "float64"  # (bias_ih + bias_hh is summed in float32, hence not 1e-10)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-8)
    (out.sum() + h_n.sum() + c_n.sum()).backward()
    w_hh = lstm.lstm_cells[0].W_hh
    assert w_hh.grad.dtype == "float32"
    eps = 1e-6
    for idx in [(0, 0), (3, 13), (1, 7)]:  # central differences of the numpy formula
        total = []
        for sign in (1, -1):
            shifted = [list(ws) for ws in layers]
            shifted[0][1] = shifted[0][1].copy()
            shifted[0][1][idx] += sign * eps
            total.append(sum(a.sum() for a in np_lstm(x, shifted, h0, c0)))
        np.testing.assert_allclose(w_hh.grad.numpy()[idx], (total[0] - total[1]) / (2 * eps), rtol=1e-4, atol=1e-5)


def test_rnn_gradients_float64():
    np.random.seed(5)
    rnn = nn.RNN(2, 3, num_layers=2, **F64)
    cell = rnn.rnn_cells[1]

    def f(x, h0, w_hh):
        cell.W_hh = w_hh  # a plain Tensor assigned to a cell attribute is used
        out, h_n = rnn(x, h0)
        return ndl.make_tuple(out, h_n)

    gradcheck(f, ndl.Tensor(np.random.randn(4, 2, 2), device=NUMPY), ndl.Tensor(np.random.randn(2, 2, 3),
              device=NUMPY), ndl.Tensor(cell.W_hh.numpy(), device=NUMPY))


def test_lstm_gradients_float64():
    np.random.seed(6)
    lstm = nn.LSTM(2, 3, num_layers=2, **F64)
    cell = lstm.lstm_cells[0]

    def f(x, h0, c0, w_ih, b_hh):
        cell.W_ih, cell.bias_hh = w_ih, b_hh
        out, (h_n, c_n) = lstm(x, (h0, c0))
        return ndl.make_tuple(out, h_n, c_n)

    args = [np.random.randn(3, 2, 2), np.random.randn(2, 2, 3), np.random.randn(2, 2, 3),
            cell.W_ih.numpy(), cell.bias_hh.numpy()]
    gradcheck(f, *[ndl.Tensor(a, device=NUMPY) for a in args])


def test_sequence_shape_errors():
    lstm = nn.LSTM(3, 4)
    with pytest.raises(ValueError, match=r"\(seq_len, batch, 3\)"):
        lstm(ndl.Tensor(np.zeros((2, 3)), dtype="float32"))
    with pytest.raises(ValueError, match="h0"):
        lstm(ndl.Tensor(np.zeros((2, 5, 3)), dtype="float32"), (ndl.init.zeros(1, 4, 4), ndl.init.zeros(1, 5, 4)))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="gelu")


def test_embedding_second_derivative_float64():
    emb = nn.Embedding(4, 2, **F64)
    ids = np.array([[1, 3], [3, 0]])

    def grad_of_square(w):
        emb.weight = w
        out = emb(ids)
        (out * out * out).sum().backward()
        return w.grad

    gradcheck(grad_of_square, ndl.Tensor(np.random.RandomState(7).randn(4, 2), device=NUMPY))


# Course detail: h0=None is zeros that take part in the graph, so every parameter, W_hh included,
# gets a gradient (PyTorch does the same). The oracle is central differences in float64 on the
# numpy backend, through the parameters themselves; at step 1 from zeros W_hh's gradient is
# h0^T @ (gate gradients) = 0 exactly.
CELL_PARAMS = ("W_ih", "W_hh", "bias_ih", "bias_hh")
ZERO_STATE_DEVICES = [pytest.param((NUMPY, "float64"), id="numpy-float64"),
                      pytest.param((None, "float32"), id="default-float32")]


def assert_every_parameter_gradient(cells, run, x, dtype):
    """Backward of a weighted sum of ``run(x)``'s outputs; every parameter of ``cells`` has a
    gradient of its shape and dtype, equal to central differences. Returns the gradients."""
    names = [(c, n) for c in cells for n in CELL_PARAMS]
    params = [getattr(c, n) for c, n in names]
    outs = run(x)
    weights = [np.random.RandomState(0).standard_normal(o.shape) for o in outs]
    loss = None
    for o, w in zip(outs, weights):
        term = (o * ndl.Tensor(w, device=o.device, dtype=o.dtype, requires_grad=False)).sum()
        loss = term if loss is None else loss + term
    loss.backward()
    got = [p.grad for p in params]
    for (_, n), g, p in zip(names, got, params):
        assert g is not None, f"{n} has no gradient"
        assert g.shape == p.shape and g.dtype == p.dtype, n

    def f(x, *values):
        for (c, n), v in zip(names, values):
            setattr(c, n, v)  # a plain Tensor assigned to a cell attribute is used
        return ndl.make_tuple(*run(x))

    try:
        numeric = numerical_gradients(f, x, *params, weights=weights, numeric_device=NUMPY,
                                      numeric_dtype="float64")[1:]
    finally:
        for (c, n), p in zip(names, params):
            setattr(c, n, p)
    tol = dict(rtol=1e-6, atol=1e-8) if dtype == "float64" else dict(rtol=1e-3, atol=1e-4)
    for (_, n), g, num in zip(names, got, numeric):
        np.testing.assert_allclose(g.numpy(), num, err_msg=n, **tol)
    return {n: g.numpy() for (c, n), g in zip(names, got) if c is cells[0]}


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("where", ZERO_STATE_DEVICES)
def test_rnn_from_no_state_gives_every_parameter_a_gradient(where, nonlinearity, steps):
    device, dtype = where
    np.random.seed(21)
    rnn = nn.RNN(2, 3, num_layers=2, nonlinearity=nonlinearity, device=device, dtype=dtype)
    x = ndl.Tensor(np.random.randn(steps, 4, 2), device=device, dtype=dtype)
    grads = assert_every_parameter_gradient(rnn.rnn_cells, lambda x: list(rnn(x)), x, dtype)
    if steps == 1:
        np.testing.assert_array_equal(grads["W_hh"], 0)
    else:
        assert np.abs(grads["W_hh"]).max() > 1e-3


@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("kind", ["rnn", "lstm"])
@pytest.mark.parametrize("where", ZERO_STATE_DEVICES)
def test_cell_from_no_state_gives_every_parameter_a_gradient(where, kind, steps):
    device, dtype = where
    np.random.seed(22)
    cell = (nn.RNNCell if kind == "rnn" else nn.LSTMCell)(2, 3, device=device, dtype=dtype)

    def run(x):
        state, outs = None, []
        for t in range(steps):  # the first call without a state, the next ones with the last
            state = cell(x[t], state)
            outs.extend(state if kind == "lstm" else [state])
        return outs

    x = ndl.Tensor(np.random.randn(steps, 4, 2), device=device, dtype=dtype)
    grads = assert_every_parameter_gradient([cell], lambda x: run(list(ndl.ops.split(x, 0))), x, dtype)
    if steps == 1:
        np.testing.assert_array_equal(grads["W_hh"], 0)
    else:
        assert np.abs(grads["W_hh"]).max() > 1e-3
