"""transpose(a) @ b without a transposed copy: NDArray.matmul_tn (the fused ``matmul_tn`` kernel or
core's fallback), ops.matmul_tn, and the weight gradients of 2-D matmul / matmul_bias built on it,
against numpy and finite differences, on the numpy backend (fallback) and needle-cpu (kernel)."""
import numpy as np
import pytest

import needle as ndl
from needle import ops
from needle.backend_ndarray.ndarray import NDArray
from needle.testing.gradcheck import gradcheck

DEVICES = [ndl.cpu_numpy()] + ([ndl.cpu()] if ndl.cpu().enabled() and ndl.cpu() != ndl.cpu_numpy() else [])
rng = np.random.default_rng(0)


def T(x, device, requires_grad=True):
    return ndl.Tensor(np.asarray(x, dtype=np.float32), device=device, requires_grad=requires_grad)


def nd(x, device):
    return NDArray(np.asarray(x, dtype=np.float32), device=device)


def close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES, ids=str)
@pytest.mark.parametrize("n,m,p", [(1, 1, 1), (7, 1, 5), (1, 13, 3), (31, 17, 2), (64, 97, 130), (0, 3, 4),
                                   (3, 0, 4), (3, 4, 0)])
def test_ndarray_matmul_tn(device, n, m, p):
    a, b = rng.standard_normal((n, m)), rng.standard_normal((n, p))
    got = nd(a, device).matmul_tn(nd(b, device))
    assert got.shape == (m, p)
    close(got.numpy(), a.T @ b)


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_ndarray_matmul_tn_of_views(device):
    # a transposed view (its transpose is compact: a plain matmul), a strided slice, a broadcast
    base, b = rng.standard_normal((6, 9)), rng.standard_normal((9, 4))
    close(nd(base, device).permute((1, 0)).matmul_tn(nd(b, device)).numpy(), base @ b)
    sliced = nd(base, device)[:, ::2]  # (6, 5), not compact
    g = rng.standard_normal((6, 3))
    close(sliced.matmul_tn(nd(g, device)).numpy(), base[:, ::2].T @ g)
    row = nd(rng.standard_normal((1, 9)), device)
    close(row.broadcast_to((6, 9)).matmul_tn(nd(g, device)).numpy(), np.repeat(row.numpy(), 6, 0).T @ g)


def test_ndarray_matmul_tn_rejects_bad_operands():
    dev = ndl.cpu_numpy()
    with pytest.raises(ValueError, match=r"matmul_tn: shapes \(3, 4\) and \(2, 5\) need a \(n, m\) and b \(n, p\)"):
        nd(np.ones((3, 4)), dev).matmul_tn(nd(np.ones((2, 5)), dev))
    with pytest.raises(ValueError, match="matmul_tn: shapes"):
        nd(np.ones((2, 3, 4)), dev).matmul_tn(nd(np.ones((3, 5)), dev))
    with pytest.raises(TypeError, match="matmul_tn: expected an NDArray"):
        nd(np.ones((3, 4)), dev).matmul_tn(np.ones((3, 5)))


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_op_matmul_tn_value_and_gradients(device):
    a, b = T(rng.standard_normal((5, 3)), device), T(rng.standard_normal((5, 4)), device)
    close(ops.matmul_tn(a, b).numpy(), a.numpy().T @ b.numpy())
    gradcheck(ops.matmul_tn, a, b, numeric_device=ndl.cpu_numpy())


def test_op_matmul_tn_rejects_bad_shapes():
    dev = ndl.cpu_numpy()
    with pytest.raises(ValueError, match=r"matmul_tn: shapes \(3, 4\) and \(2, 5\)"):
        ops.matmul_tn(T(np.ones((3, 4)), dev), T(np.ones((2, 5)), dev))


@pytest.mark.parametrize("device", DEVICES, ids=str)
@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("fused_bias", [False, True])
def test_weight_gradient_of_a_2d_product(device, create_graph, fused_bias):
    x, w, b, g = (rng.standard_normal(s) for s in ((6, 5), (5, 3), (1, 3), (6, 3)))
    tx, tw, tb = T(x, device), T(w, device), T(b, device)
    out = ops.matmul_bias(tx, tw, tb) if fused_bias else ops.matmul(tx, tw)
    out.backward(T(g, device, requires_grad=False), create_graph=create_graph)
    close(tw.grad.numpy(), x.T @ g)
    close(tx.grad.numpy(), g @ w.T)
    if create_graph:
        assert isinstance(tw.grad.op, ops.MatMulTN)  # one node, no transposed copy of x


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_weight_gradient_can_be_differentiated_again(device):
    # L = sum((x @ w) * G); w.grad = x^T G, and d/dx sum(w.grad * C) = G C^T, d/dG = x C
    x, w, g, c = (rng.standard_normal(s) for s in ((4, 3), (3, 2), (4, 2), (3, 2)))
    tx, tw, tg = T(x, device), T(w, device), T(g, device)
    ops.summation(ops.matmul(tx, tw) * tg).backward()
    grad_w = tw.grad
    tx.grad = tg.grad = None
    ops.summation(grad_w * T(c, device, requires_grad=False)).backward()
    close(tx.grad.numpy(), g @ c.T)
    close(tg.grad.numpy(), x @ c)


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_batched_and_broadcast_products_keep_their_gradients(device):
    a, w, g = rng.standard_normal((2, 4, 3)), rng.standard_normal((3, 5)), rng.standard_normal((2, 4, 5))
    ta, tw = T(a, device), T(w, device)
    ops.matmul(ta, tw).backward(T(g, device, requires_grad=False))
    close(tw.grad.numpy(), np.einsum("bmn,bmp->np", a, g))
    close(ta.grad.numpy(), g @ w.T)


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_rnn_backward_takes_the_transposed_weight_in_matmul_nt(device, monkeypatch):
    # h_{t+1} = h_t @ W for 5 steps: every step's input gradient is g @ W^T, one matmul_nt each (no
    # transposed copy of W where the backend has the kernel); the weight gradients h_t^T @ g are matmul_tn.
    made = []
    compute = ops.MatMulNT.compute
    monkeypatch.setattr(ops.MatMulNT, "compute", lambda self, a, b: made.append(b.shape) or compute(self, a, b))
    h0, w = rng.standard_normal((2, 3)), rng.standard_normal((3, 3)) * 0.5
    tw, h = T(w, device), T(h0, device)
    for _ in range(5):
        h = ops.matmul(h, tw)
    ops.summation(h).backward(create_graph=False)
    assert made == [(3, 3)] * 5
    g, want, hs = np.ones((2, 3)), np.zeros((3, 3)), [h0]
    for _ in range(5):
        hs.append(hs[-1] @ w)
    for t in range(5, 0, -1):
        want += hs[t - 1].T @ g
        g = g @ w.T
    close(tw.grad.numpy(), want)
