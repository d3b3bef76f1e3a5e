"""The fused LSTM cell kernels against the cell's formulas in float64 (numpy), on every ISA.

Widths straddle the vector lengths (8, 16) and batches the threading grain; the bindings refuse
short buffers, steps outside the sequence and outputs that share a buffer.
"""
import numpy as np
import pytest

from needle_cpu import _backend as B


def to_buffer(x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    buf = B.Array(x.size)
    B.from_numpy(x, buf)
    return buf


def read(buf, shape):
    return np.asarray(buf).copy().reshape(shape)  # the buffer protocol, independent of the kernels


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


# (steps, batch, hid, t); 64 x 4 * 64 gates run on two threads
SHAPES = [(1, 1, 1, 0), (2, 3, 7, 1), (3, 2, 8, 0), (2, 5, 9, 1), (1, 4, 15, 0), (2, 2, 16, 1),
          (2, 3, 17, 0), (3, 1, 33, 2), (2, 64, 64, 1), (24, 32, 192, 23), (2, 0, 5, 1), (2, 4, 0, 0)]


def forward_case(rng, steps, batch, hid, t):
    x = (rng.standard_normal((steps, batch, 4 * hid)) * 3).astype(np.float32)
    hw = (rng.standard_normal((batch, 4 * hid)) * 3).astype(np.float32)
    if hw.size:  # saturated gates, both signs, stay finite
        hw[0, :4] = [100.0, -100.0, 88.0, -88.0]
    c_prev = rng.standard_normal((batch, hid)).astype(np.float32)
    return x, hw, c_prev


def numpy_forward(x, hw, c_prev, t):
    hid = c_prev.shape[1]
    z = hw.astype(np.float64) + x[t]
    i, f, g, o = (z[:, k * hid:(k + 1) * hid] for k in range(4))
    act = np.concatenate([sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)], axis=1)
    c = sigmoid(f) * c_prev + sigmoid(i) * np.tanh(g)
    return act, c, np.tanh(c), sigmoid(o) * np.tanh(c)


def run_forward(x, hw, c_prev, t):
    steps, batch, width = x.shape
    hid = width // 4
    gates, c, tc, h = to_buffer(hw), B.Array(batch * hid), B.Array(batch * hid), B.Array(batch * hid)
    out = to_buffer(np.full((steps, batch, hid), 7.0))
    B.lstm_cell_forward(gates, to_buffer(x), to_buffer(c_prev), c, tc, h, out, t, batch, hid)
    cell = (batch, hid)
    return (read(gates, (batch, width)), read(c, cell), read(tc, cell), read(h, cell),
            read(out, (steps, batch, hid)))


@pytest.mark.parametrize("steps,batch,hid,t", SHAPES)
def test_forward_matches_numpy(isa, rng, steps, batch, hid, t):
    x, hw, c_prev = forward_case(rng, steps, batch, hid, t)
    act, c, tc, h, out = run_forward(x, hw, c_prev, t)
    for got, want in zip((act, c, tc, h, out[t]), numpy_forward(x, hw, c_prev, t)):
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=2e-6)
    np.testing.assert_array_equal(np.delete(out, t, axis=0), 7.0)  # only step t of out is written


def test_forward_rounds_as_the_composed_kernels(isa, rng):
    # The fallback path's kernels (each tested against numpy elsewhere) give the same values.
    steps, batch, hid, t = 3, 5, 19, 1
    x, hw, c_prev = forward_case(rng, steps, batch, hid, t)
    act, c, tc, h, _ = run_forward(x, hw, c_prev, t)

    def k(name, *args):
        out = B.Array(args[0].size)
        getattr(B, name)(*(to_buffer(a) for a in args), out)
        return read(out, args[0].shape)

    z = k("ewise_add", hw, x[t])
    sig, tanh_g = k("ewise_sigmoid", z), k("ewise_tanh", z[:, 2 * hid:3 * hid])
    i, f, o = (np.ascontiguousarray(sig[:, j * hid:(j + 1) * hid]) for j in (0, 1, 3))
    want_c = k("ewise_add", k("ewise_mul", f, c_prev), k("ewise_mul", i, tanh_g))
    want_tc = k("ewise_tanh", want_c)
    np.testing.assert_allclose(act, np.concatenate([i, f, tanh_g, o], axis=1), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(c, want_c, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h, k("ewise_mul", o, want_tc), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("steps,batch,hid,t", SHAPES)
def test_backward_matches_numpy(isa, rng, steps, batch, hid, t):
    act = np.concatenate([rng.uniform(0, 1, (batch, 2 * hid)), rng.uniform(-1, 1, (batch, hid)),
                          rng.uniform(0, 1, (batch, hid))], axis=1).astype(np.float32)
    c_prev, dh, dc0 = (rng.standard_normal((batch, hid)).astype(np.float32) for _ in range(3))
    tc = rng.uniform(-1, 1, (batch, hid)).astype(np.float32)
    g_out = rng.standard_normal((steps, batch, hid)).astype(np.float32)
    dc, dg = to_buffer(dc0), B.Array(batch * 4 * hid)
    d_gates = to_buffer(np.full((steps, batch, 4 * hid), 7.0))
    B.lstm_cell_backward(to_buffer(dh), to_buffer(g_out), to_buffer(act), to_buffer(c_prev), to_buffer(tc), dc, dg,
                         d_gates, t, batch, hid)
    si, sf, tg, so = (act[:, k * hid:(k + 1) * hid].astype(np.float64) for k in range(4))
    dh_t = dh.astype(np.float64) + g_out[t]
    dc_t = dc0 + dh_t * so * (1 - tc.astype(np.float64) ** 2)
    want = np.concatenate([dc_t * tg * si * (1 - si), dc_t * c_prev * sf * (1 - sf), dc_t * si * (1 - tg ** 2),
                           dh_t * tc * so * (1 - so)], axis=1)
    np.testing.assert_allclose(read(dg, want.shape), want, rtol=1e-5, atol=1e-6)
    seq = read(d_gates, (steps, batch, 4 * hid))
    np.testing.assert_allclose(seq[t], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.delete(seq, t, axis=0), 7.0)
    np.testing.assert_allclose(read(dc, dc0.shape), dc_t * sf, rtol=1e-5, atol=1e-6)


def forward_args(steps=2, batch=3, hid=4):
    n = batch * hid
    return dict(gates=B.Array(4 * n), x=B.Array(steps * 4 * n), c_prev=B.Array(n), c=B.Array(n), tc=B.Array(n),
                h=B.Array(n), out=B.Array(steps * n), t=steps - 1, batch=batch, hid=hid)


def backward_args(steps=2, batch=3, hid=4):
    n = batch * hid
    return dict(dh=B.Array(n), g_out=B.Array(steps * n), act=B.Array(4 * n), c_prev=B.Array(n), tc=B.Array(n),
                dc=B.Array(n), dg=B.Array(4 * n), d_gates=B.Array(steps * 4 * n), t=steps - 1, batch=batch, hid=hid)


@pytest.mark.parametrize("change,match", [
    (dict(t=2), "buffer x has 96 elements, needs at least 144"),     # a step past the sequence
    (dict(t=-1), "t=-1"),
    (dict(hid=5), "buffer gates has 48 elements, needs at least 60"),
    (dict(c=B.Array(11)), "buffer c has 11 elements"),
    (dict(out=B.Array(23)), "buffer out has 23 elements"),
    ("c=tc", "two outputs are the same buffer"),
    ("c=c_prev", "an output is also an input"),
    ("gates=x", "an output is also an input"),
])
def test_forward_refuses_bad_arguments(refuses, change, match):
    refuses(B.lstm_cell_forward, forward_args(), change, match)


@pytest.mark.parametrize("change,match", [
    (dict(t=2), "buffer g_out has 24 elements, needs at least 36"),
    (dict(batch=-3), "batch=-3"),
    (dict(act=B.Array(47)), "buffer act has 47 elements"),
    (dict(d_gates=B.Array(95)), "buffer d_gates has 95 elements"),
    ("dg=d_gates", "two outputs are the same buffer"),
    ("dc=dh", "an output is also an input"),
])
def test_backward_refuses_bad_arguments(refuses, change, match):
    refuses(B.lstm_cell_backward, backward_args(), change, match)
