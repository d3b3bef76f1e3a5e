"""The LSTM layer's fused recurrence: its NDArray backward (``backward(create_graph=False)``)
against finite differences, with and without an initial state, on float64 and on the default device."""
import numpy as np
import pytest

import needle as ndl
from needle import nn
from needle.testing.gradcheck import numerical_gradients

NUMPY = ndl.cpu_numpy()


def _weights(outs, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.standard_normal(o.shape) for o in outs]


@pytest.mark.parametrize("with_state", [False, True])
def test_lstm_fast_backward_matches_finite_differences(with_state):
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
