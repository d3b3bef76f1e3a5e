"""Shared references for needle-nn's tests (fixtures: tests are imported by path, not as a package)."""
import numpy as np
import pytest


def sigmoid(z):
    """The logistic function in numpy."""
    return 1 / (1 + np.exp(-z))


def numpy_lstm(x, layers, h0, c0):
    """A stacked LSTM step by step in numpy: the course's cell (gates i, f, g, o of ``hid`` columns each).

    ``layers``: [(W_ih, W_hh, b_ih, b_hh)] per layer; ``x`` (T, B, in); ``h0``, ``c0`` (L, B, H).
    Returns (output (T, B, H), h_n (L, B, H), c_n (L, B, H)).
    """
    h_n, c_n = [], []
    for (w_ih, w_hh, b_ih, b_hh), h, c in zip(layers, h0, c0):
        hid = h.shape[1]
        outs = []
        for t in range(x.shape[0]):
            z = x[t] @ w_ih + b_ih + h @ w_hh + b_hh
            i, f, g, o = (z[:, k * hid:(k + 1) * hid] for k in range(4))
            c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h = sigmoid(o) * np.tanh(c)
            outs.append(h)
        x = np.stack(outs)
        h_n.append(h)
        c_n.append(c)
    return x, np.stack(h_n), np.stack(c_n)


@pytest.fixture
def np_lstm():
    """:func:`numpy_lstm`, the reference LSTM written once for every test that needs it."""
    return numpy_lstm

