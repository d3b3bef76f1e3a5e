"""Fused ops and backward shortcuts, against numpy oracles: matmul_bias, ReLU's backward,
softmax_cross_entropy, the per-backward transpose memo and per-element tuple adjoints."""
import numpy as np
import pytest

import needle as ndl
from needle import autograd, ops

DEVICES = [ndl.cpu_numpy()] + ([ndl.cpu()] if ndl.cpu().enabled() and ndl.cpu() != ndl.cpu_numpy() else [])
rng = np.random.default_rng(0)


def T(x, device, requires_grad=True):
    return ndl.Tensor(np.asarray(x, dtype=np.float32), device=device, requires_grad=requires_grad)


@pytest.mark.parametrize("device", DEVICES, ids=str)
@pytest.mark.parametrize("bias_shape", [(1, 5), (5,)])
def test_matmul_bias_forward_and_gradients(device, bias_shape):
    x, w, b = rng.standard_normal((4, 3)), rng.standard_normal((3, 5)), rng.standard_normal(bias_shape)
    g = rng.standard_normal((4, 5))
    tx, tw, tb = T(x, device), T(w, device), T(b, device)
    out = ops.matmul_bias(tx, tw, tb)
    np.testing.assert_allclose(out.numpy(), x @ w + b.reshape(1, 5), rtol=1e-5, atol=1e-5)
    out.backward(T(g, device, requires_grad=False))
    np.testing.assert_allclose(tx.grad.numpy(), g @ w.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tw.grad.numpy(), x.T @ g, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tb.grad.numpy(), g.sum(0).reshape(bias_shape), rtol=1e-5, atol=1e-5)


def test_matmul_bias_rejects_a_bias_of_the_wrong_size():
    dev = ndl.cpu_numpy()
    with pytest.raises(ValueError, match=r"matmul_bias: x \(4, 3\) @ w \(3, 5\) \+ b \(1, 4\)"):
        ops.matmul_bias(T(np.ones((4, 3)), dev), T(np.ones((3, 5)), dev), T(np.ones((1, 4)), dev))


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_relu_gradient_masks_nonpositive_inputs(device):
    x = np.array([[-2.0, 0.0, 0.5], [3.0, -0.1, 1e-3]])
    g = rng.standard_normal(x.shape)
    tx = T(x, device)
    ops.relu(tx).backward(T(g, device, requires_grad=False))
    np.testing.assert_allclose(tx.grad.numpy(), np.where(x > 0, g, 0.0), rtol=1e-6)


def test_relu_second_order_path_is_linear_in_the_output_gradient():
    dev = ndl.cpu_numpy()
    x, g = T([[-1.0, 2.0, 3.0]], dev), T([[1.0, 1.0, 1.0]], dev)
    ops.relu(x).backward(g)  # create_graph=True: x.grad is a ReLUBackward node over g
    gg = x.grad
    assert isinstance(gg.op, ops.ReLUBackward)
    np.testing.assert_allclose(gg.numpy(), [[0.0, 1.0, 1.0]])


def _softmax_ce(z, y):
    e = np.exp(z - z.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    loss = -np.log(p[np.arange(len(y)), y]).mean()
    return loss, (p - np.eye(z.shape[1])[y]) / len(y)


@pytest.mark.parametrize("device", DEVICES, ids=str)
@pytest.mark.parametrize("create_graph", [False, True])
def test_softmax_cross_entropy_value_and_gradient(device, create_graph):
    z = rng.standard_normal((6, 4)) * 30  # large logits: the max is subtracted
    y = rng.integers(0, 4, 6)
    want_loss, want_grad = _softmax_ce(z, y)
    tz = T(z, device)
    loss = ops.softmax_cross_entropy(tz, T(np.eye(4)[y], device, requires_grad=False))
    np.testing.assert_allclose(loss.numpy(), want_loss, rtol=1e-5)
    (loss * 3.0).backward(create_graph=create_graph)
    np.testing.assert_allclose(tz.grad.numpy(), 3.0 * want_grad, rtol=1e-4, atol=1e-6)


def test_softmax_cross_entropy_gradient_can_be_differentiated_again():
    # d/dz of sum(grad * c) with grad = (softmax(z) - y) / n: (diag(p) - p p^T) c / n per row
    dev = ndl.cpu_numpy()
    z, c = rng.standard_normal((1, 3)), np.array([[1.0, -2.0, 0.5]])
    tz = T(z, dev)
    loss = ops.softmax_cross_entropy(tz, T([[0.0, 1.0, 0.0]], dev, requires_grad=False))
    loss.backward(create_graph=True)
    grad = tz.grad
    tz.grad = None
    ops.summation(grad * T(c, dev, requires_grad=False)).backward()
    p = np.exp(z) / np.exp(z).sum()
    want = (np.diag(p[0]) - p.T @ p) @ c[0]
    np.testing.assert_allclose(tz.grad.numpy()[0], want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_weight_reused_at_many_steps_gets_the_summed_gradient(device):
    # h_{t+1} = h_t @ W: every step's input gradient is g @ W^T (matmul_nt), summed into W's
    h0, w = rng.standard_normal((2, 3)), rng.standard_normal((3, 3)) * 0.5
    tw, h = T(w, device), T(h0, device, requires_grad=False)
    hs = [h0]
    for _ in range(4):
        h = h @ tw
        hs.append(hs[-1] @ w)
    ops.summation(h).backward()
    g, want = np.ones((2, 3)), np.zeros((3, 3))
    for t in range(4, 0, -1):  # backprop by hand through h_t = h_{t-1} @ W
        want += hs[t - 1].T @ g
        g = g @ w.T
    np.testing.assert_allclose(tw.grad.numpy(), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_split_read_at_some_indexes_gets_zero_adjoint_elsewhere(device):
    a = rng.standard_normal((4, 3))
    ta = T(a, device)
    parts = ops.split(ta, 0)
    out = parts[0] * 2.0 + parts[2] * parts[2] + parts[0]
    ops.summation(out).backward()
    want = np.zeros_like(a)
    want[0] = 3.0
    want[2] = 2 * a[2]
    np.testing.assert_allclose(ta.grad.numpy(), want, rtol=1e-5)


def test_split_read_by_index_and_as_a_whole_adds_both_adjoints():
    dev = ndl.cpu_numpy()
    a = rng.standard_normal((3, 2))
    ta = T(a, dev)
    parts = ops.split(ta, 0)
    whole = ops.stack(list(parts), 0)  # reads every element (a whole-tuple adjoint via make_tuple)
    out = ops.summation(whole * 2.0) + ops.summation(parts[1] * 5.0)
    out.backward()
    want = np.full_like(a, 2.0)
    want[1] += 5.0
    np.testing.assert_allclose(ta.grad.numpy(), want, rtol=1e-6)


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_one_hot_rows(device):
    got = device.one_hot(5, np.array([[4, 0], [2, 2]])).numpy()
    np.testing.assert_array_equal(got, np.eye(5)[[[4, 0], [2, 2]]])


def test_gradients_stops_at_the_given_nodes_and_sets_no_leaf_grad():
    dev = ndl.cpu_numpy()
    x = T([[1.0, 2.0]], dev)
    y = x * x  # an intermediate node
    z = ops.summation(y * 3.0)
    (gy, gx) = autograd.gradients(z, T(1.0, dev, requires_grad=False), [y, x])
    np.testing.assert_allclose(gy.numpy(), [[3.0, 3.0]])
    assert gx is None  # the sweep stops at y: x is not reached
    assert x.grad is None
    # with a graph: d/dx sum(gy * x * x) differentiates through the adjoint
    (gx,) = autograd.gradients(ops.summation(y * gy), T(1.0, dev, requires_grad=False), [x])
    np.testing.assert_allclose(gx.numpy(), [[6.0, 12.0]])


# ---- large magnitudes: the log-sum term must survive next to a large max ---------------------------
def _np_log_softmax(z):
    shifted = z - z.max(-1, keepdims=True)  # float64 oracle, shift first
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


BIG = np.array([[1e7, 1e7 + 1.0, 1e7 - 2.0], [-3e38, -3e38, -3e38]])  # exact in float32


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_logsoftmax_at_large_magnitudes(device):
    got = ops.logsoftmax(T(BIG, device), -1).numpy()
    np.testing.assert_allclose(got, _np_log_softmax(BIG), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_logsumexp_gradient_at_large_magnitudes_is_the_softmax(device):
    z = T(BIG, device)
    ops.logsumexp(z, axes=(1,)).sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), np.exp(_np_log_softmax(BIG)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES, ids=str)
@pytest.mark.parametrize("create_graph", [False, True])
def test_softmax_cross_entropy_at_large_magnitudes(device, create_graph):
    labels = [1, 2]
    z = T(BIG, device)
    loss = ops.softmax_cross_entropy(z, T(np.eye(3)[labels], device, requires_grad=False))
    want = -_np_log_softmax(BIG)[[0, 1], labels].mean()  # rows: 1 - log-sum, log(3)
    np.testing.assert_allclose(loss.numpy(), want, rtol=1e-5)
    loss.backward(create_graph=create_graph)
    want_grad = (np.exp(_np_log_softmax(BIG)) - np.eye(3)[labels]) / 2
    np.testing.assert_allclose(z.grad.numpy(), want_grad, rtol=1e-5, atol=1e-6)
