"""The backward loop as micrograd's: every op's gradient runs through its own ``gradient`` method
(TupleGetItem's sparse TupleAdjoint included), matmul takes a transposed operand (``matmul_nt``)
instead of a memo, and Tensor refuses keywords it does not know. Expected values come from numpy
or are worked out by hand."""
import numpy as np
import pytest

import needle as ndl
from needle import autograd, ops
from needle.backend_ndarray.ndarray import NDArray
from needle.testing.gradcheck import gradcheck

NP = ndl.cpu_numpy()
DEVICES = [NP] + ([ndl.cpu()] if ndl.cpu().enabled() and ndl.cpu() != NP else [])
rng = np.random.default_rng(1)


def T(x, device=NP, requires_grad=True, dtype=np.float32):
    return ndl.Tensor(np.asarray(x, dtype=dtype), device=device, requires_grad=requires_grad)


def close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


# ---- Tensor's keywords -----------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["requires_gard", "dytpe", "devcie"])
def test_tensor_refuses_an_unknown_keyword_naming_it(bad):
    with pytest.raises(TypeError, match=bad):
        ndl.Tensor([1.0, 2.0], **{bad: None})


def test_tensor_keywords_it_knows_still_work():
    t = ndl.Tensor([1.0, 2.0], device=NP, dtype="float32", requires_grad=False)
    assert (t.device, t.dtype, t.requires_grad) == (NP, "float32", False)


# ---- TupleGetItem's own gradient -------------------------------------------------------------------
def test_tuple_get_item_gradient_is_a_sparse_tuple_adjoint():
    x = rng.standard_normal((3, 2)).astype(np.float32)
    parts = ops.split(T(x), 0)
    g = T([5.0, 7.0], requires_grad=False)
    node = parts[1]
    adjoint = node.op.gradient(g, node)
    assert isinstance(adjoint, ops.TupleAdjoint) and set(adjoint.parts) == {1}
    assert len(adjoint) == 3
    np.testing.assert_array_equal([a.numpy() for a in adjoint], [[0, 0], [5, 7], [0, 0]])  # unread: zeros
    np.testing.assert_array_equal(adjoint.tuple()[1].numpy(), [5, 7])


def test_tuple_adjoints_merge_with_plus_and_with_a_whole_tuple_adjoint():
    parts = ops.split(T(np.zeros((3, 2))), 0)
    read = [parts[i] for i in (0, 2, 0)]
    a, b, c = (r.op.gradient(T([i + 1.0, -(i + 1.0)], requires_grad=False), r) for i, r in enumerate(read))
    merged = a + b + c
    assert set(merged.parts) == {0, 2}  # index 0 read twice: one summed adjoint
    np.testing.assert_array_equal([m.numpy() for m in merged], [[4, -4], [0, 0], [2, -2]])
    whole = ops.make_tuple(*[T(np.full(2, 10.0), requires_grad=False) for _ in range(3)])
    for total in (merged + whole, whole + merged):
        np.testing.assert_array_equal([m.numpy() for m in total], [[14, 6], [10, 10], [12, 8]])


def test_the_loop_runs_tuple_get_item_gradient_like_any_op(monkeypatch):
    calls = []
    gradient = ops.TupleGetItem.gradient
    monkeypatch.setattr(ops.TupleGetItem, "gradient",
                        lambda self, out_grad, node: calls.append(self.index) or gradient(self, out_grad, node))
    x = rng.standard_normal((4, 3))
    tx = T(x, dtype=np.float64)
    parts = ops.split(tx, 0)
    (parts[0] * parts[3] + parts[3] * 2.0).sum().backward()
    assert sorted(calls) == [0, 3, 3]
    want = np.zeros_like(x)
    want[0], want[3] = x[3], x[0] + 2.0
    np.testing.assert_allclose(tx.grad.numpy(), want)


def test_split_read_by_index_is_differentiable_twice():
    # d/dx of sum(parts[0]^2 * parts[1]) = (2 x0 x1, x0^2); differentiate its sum with weights c again.
    x = np.array([[1.0, 2.0], [3.0, -1.0]])
    c = np.array([[0.5, -1.0], [2.0, 1.0]])
    tx = T(x, dtype=np.float64)
    parts = ops.split(tx, 0)
    (parts[0] * parts[0] * parts[1]).sum().backward()
    grad = tx.grad
    np.testing.assert_allclose(grad.numpy(), [2 * x[0] * x[1], x[0] ** 2])
    tx.grad = None
    (grad * T(c, requires_grad=False, dtype=np.float64)).sum().backward()
    # second derivatives: d/dx0 = 2 x1 c0 + 2 x0 c1, d/dx1 = 2 x0 c0
    np.testing.assert_allclose(tx.grad.numpy(), [2 * x[1] * c[0] + 2 * x[0] * c[1], 2 * x[0] * c[0]])


def test_no_backward_memo_is_left_in_autograd():
    for name in ("backward_memo", "_BACKWARD_MEMO"):
        assert not hasattr(autograd, name)
    assert not hasattr(ops, "TransposeCopy") and not hasattr(ops, "transposed_for_backward")


# ---- matmul with a transposed operand ----------------------------------------------------------------
@pytest.mark.parametrize("device", DEVICES, ids=str)
@pytest.mark.parametrize("m,n,p", [(1, 1, 1), (2, 3, 4), (7, 1, 5), (31, 17, 2), (64, 97, 130), (0, 3, 4),
                                   (3, 0, 4), (3, 4, 0)])
def test_ndarray_matmul_nt_matches_numpy(device, m, n, p):
    a, b = rng.standard_normal((m, n)), rng.standard_normal((p, n))
    got = NDArray(a.astype(np.float32), device=device).matmul_nt(NDArray(b.astype(np.float32), device=device))
    assert got.shape == (m, p)
    close(got.numpy(), a @ b.T)


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_ndarray_matmul_nt_of_views(device):
    base, a = rng.standard_normal((9, 6)).astype(np.float32), rng.standard_normal((4, 6)).astype(np.float32)
    nb = NDArray(base, device=device)
    close(NDArray(a, device=device).matmul_nt(nb.permute((1, 0)).permute((1, 0))).numpy(), a @ base.T)
    close(NDArray(a, device=device).matmul_nt(nb[::2]).numpy(), a @ base[::2].T)  # a strided slice
    close(nb.permute((1, 0)).matmul_nt(nb.permute((1, 0))).numpy(), base.T @ base)  # transposed operands


def test_ndarray_matmul_nt_uses_a_backend_kernel_when_there_is_one(monkeypatch):
    calls = []

    def kernel(a, b, out, m, n, p):  # a stand-in backend kernel, by the protocol's signature
        calls.append((m, n, p))
        out.array[:m * p] = (a.array[:m * n].reshape(m, n) @ b.array[:p * n].reshape(p, n).T).reshape(-1)

    monkeypatch.setitem(NP._kernels, "matmul_nt", kernel)
    a, b = rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32)
    close(NDArray(a, device=NP).matmul_nt(NDArray(b, device=NP)).numpy(), a @ b.T)
    assert calls == [(2, 3, 5)]


def test_ndarray_matmul_nt_rejects_bad_operands():
    a = NDArray(np.ones((3, 4), np.float32), device=NP)
    with pytest.raises(ValueError, match=r"matmul_nt: shapes \(3, 4\) and \(2, 5\) need a \(m, n\) and b \(p, n\)"):
        a.matmul_nt(NDArray(np.ones((2, 5), np.float32), device=NP))
    with pytest.raises(TypeError, match="matmul_nt: expected an NDArray"):
        a.matmul_nt(np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"matmul_nt: shapes \(3, 4\) and \(2, 5\)"):
        ops.matmul_nt(T(np.ones((3, 4))), T(np.ones((2, 5))))


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_op_matmul_nt_value_and_gradients(device):
    a, b, g = rng.standard_normal((4, 3)), rng.standard_normal((5, 3)), rng.standard_normal((4, 5))
    ta, tb = T(a, device), T(b, device)
    out = ops.matmul_nt(ta, tb)
    close(out.numpy(), a @ b.T)
    out.backward(T(g, device, requires_grad=False))
    close(ta.grad.numpy(), g @ b)      # d/da of a b^T
    close(tb.grad.numpy(), g.T @ a)    # d/db
    gradcheck(ops.matmul_nt, T(a, NP, dtype=np.float64), T(b, NP, dtype=np.float64))


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_matmul_gradients_are_products_with_a_transposed_operand(device, monkeypatch):
    # x @ w: d/dx = g w^T (matmul_nt), d/dw = x^T g (matmul_tn); their gradients again use the three kinds.
    made = []
    for cls in (ops.MatMulNT, ops.MatMulTN):
        compute = cls.compute
        monkeypatch.setattr(cls, "compute", lambda self, a, b, _c=compute, _n=cls.__name__: made.append(_n) or
                            _c(self, a, b))
    x, w, c = rng.standard_normal((3, 4)), rng.standard_normal((4, 2)), rng.standard_normal((3, 4))
    tx, tw = T(x, device), T(w, device)
    ops.matmul(tx, tw).sum().backward()
    assert sorted(made) == ["MatMulNT", "MatMulTN"]
    ones = np.ones((3, 2))
    close(tx.grad.numpy(), ones @ w.T)
    close(tw.grad.numpy(), x.T @ ones)
    grad_x, tx.grad, tw.grad = tx.grad, None, None
    (grad_x * T(c, device, requires_grad=False)).sum().backward()  # sum(c * (1 w^T)): d/dw = c^T 1
    close(tw.grad.numpy(), c.T @ ones)
    assert tx.grad is None or np.allclose(tx.grad.numpy(), 0)
