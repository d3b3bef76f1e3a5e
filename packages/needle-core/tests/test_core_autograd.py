"""Autograd: topological order, deep graphs, gradients of gradients, no_grad, detach, memory."""
import gc
import sys
import weakref

import numpy as np
import pytest

import needle as ndl
from needle import autograd, ops

NP = ndl.cpu_numpy()


def T(x, requires_grad=True):
    """A float64 tensor on the numpy backend (exact hand-computed values)."""
    return ndl.Tensor(np.asarray(x, dtype=np.float64), device=NP, requires_grad=requires_grad)


# ---- topological sort ----------------------------------------------------------------------------
def test_topo_sort_small_graph():
    a, b = T([1.0]), T([2.0])
    c = a * b
    d = c + a
    e = ops.exp(d)
    assert autograd.find_topo_sort([e]) == [a, b, c, d, e]


def test_topo_sort_counts_subtraction_as_two_nodes():
    a, b = T([[1.0, 2.0]]), T([[3.0, 4.0]])
    c = a - b
    order = autograd.find_topo_sort([c])
    assert len(order) == 4  # a, b, negate(b), add
    assert order[:2] == [a, b]
    assert isinstance(order[2].op, ops.Negate) and order[2].inputs == [b]
    assert isinstance(order[3].op, ops.EWiseAdd) and order[3] is c


def test_topo_sort_diamond_visits_each_node_once():
    x = T([1.0, 2.0])
    y = x * 2.0
    z = y + y * y        # y feeds three uses
    order = autograd.find_topo_sort([z])
    assert order[0] is x and order[1] is y and order[-1] is z
    assert len(order) == len({id(n) for n in order}) == 4
    pos = {id(n): i for i, n in enumerate(order)}
    for node in order:
        for inp in node.inputs:
            assert pos[id(inp)] < pos[id(node)]


def test_topo_sort_several_roots_in_order():
    a = T([1.0])
    b = a + 1.0
    c = a * 3.0
    assert autograd.find_topo_sort([b, c]) == [a, b, c]


# ---- backward --------------------------------------------------------------------------------------
def test_chain_of_10000_ops_with_default_recursion_limit():
    assert sys.getrecursionlimit() <= 3000  # the default (1000), or close to it
    x = T([1.0, -2.0])
    y = x
    for i in range(10000):
        y = y * 1.0001 if i % 2 == 0 else y + 0.5
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0001 ** 5000] * 2, rtol=1e-9)
    del y  # freeing the long chain must not recurse either


def test_backward_replaces_grad_not_accumulates():
    x = T([1.0, 2.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_gradients_accumulate_when_a_node_feeds_several_others():
    x = T([1.0, 2.0, 3.0])
    z = x * 2.0
    w = z + z * z + ops.exp(z) * 0.0   # dw/dx = 2 + 2 * z * 2
    w.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 + 8 * np.array([1.0, 2.0, 3.0]))
    y = x * x + x + x / x   # 2x + 1 + 0
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, 2.0, 3.0]) + 1, rtol=1e-12)


def test_backward_of_non_scalar_uses_ones_and_out_grad():
    x = T([[1.0, 2.0], [3.0, 4.0]])
    (x * x).backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())
    (x * x).backward(T([[1.0, 0.0], [0.5, 2.0]], requires_grad=False))
    np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy() * [[1.0, 0.0], [0.5, 2.0]])
    with pytest.raises(ValueError, match=r"out_grad.*\(3,\).*\(2, 2\)"):
        (x * x).backward(T([1.0, 2.0, 3.0], requires_grad=False))


def test_hand_computed_gradients():
    # f = sum(log(a * b) + a / b) at a = [1, 2], b = [4, 0.5]
    a, b = T([1.0, 2.0]), T([4.0, 0.5])
    (ops.log(a * b) + a / b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [1 / 1 + 1 / 4, 1 / 2 + 1 / 0.5])
    np.testing.assert_allclose(b.grad.numpy(), [1 / 4 - 1 / 16, 1 / 0.5 - 2 / 0.25])
    # matmul: d sum(A @ B) / dA = ones @ B^T
    A, B = T([[1.0, 2.0]]), T([[3.0], [4.0]])
    (A @ B).backward()
    np.testing.assert_allclose(A.grad.numpy(), [[3.0, 4.0]])
    np.testing.assert_allclose(B.grad.numpy(), [[1.0], [2.0]])


def test_leaves_without_requires_grad_get_no_grad():
    x, c = T([1.0, 2.0]), T([3.0, 4.0], requires_grad=False)
    (x * c).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])
    assert getattr(c, "grad", None) is None


# ---- gradients of gradients ----------------------------------------------------------------------
def test_grad_of_grad_cube():
    x = T([1.0, -2.0, 0.5])
    (x ** 3).sum().backward()
    g = x.grad
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    assert g.requires_grad and not g.is_leaf()
    g.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.numpy())


def test_grad_of_grad_mixed_partials():
    x, y = T([2.0]), T([3.0])
    (x * x * y).sum().backward()           # df/dx = 2xy, df/dy = x^2
    gx = x.grad
    np.testing.assert_allclose(gx.numpy(), [12.0])
    gx.backward()                          # d(2xy)/dx = 2y, d(2xy)/dy = 2x
    np.testing.assert_allclose(x.grad.numpy(), [6.0])
    np.testing.assert_allclose(y.grad.numpy(), [4.0])


def test_grad_of_grad_tanh_hand_derived():
    x = T([0.3, -1.2])
    ops.tanh(x).sum().backward()
    t = np.tanh(x.numpy())
    np.testing.assert_allclose(x.grad.numpy(), 1 - t ** 2)
    x.grad.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), -2 * t * (1 - t ** 2))


def test_create_graph_false_gives_plain_gradients():
    x = T([1.0, 2.0])
    (x ** 3).sum().backward(create_graph=False)
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 12.0])
    assert x.grad.is_leaf() and not x.grad.requires_grad


# ---- no_grad and detach --------------------------------------------------------------------------
def test_no_grad_records_nothing():
    x = T([1.0, 2.0])
    with ndl.no_grad():
        y = x * 2.0 + x
        with ndl.no_grad():
            pass
        z = y * x  # still inside after a nested block
    assert not y.requires_grad and y.is_leaf() and y.inputs == []
    assert not z.requires_grad and z.is_leaf()
    np.testing.assert_allclose(y.numpy(), [3.0, 6.0])
    w = x * 2.0
    assert w.requires_grad and not w.is_leaf()


def test_no_grad_as_decorator_and_on_error():
    x = T([1.0])

    @ndl.no_grad()
    def f(t):
        return t * 2.0

    assert not f(x).requires_grad
    with pytest.raises(RuntimeError):
        with ndl.no_grad():
            raise RuntimeError("boom")
    assert (x * 2.0).requires_grad  # restored after the exception


def test_detach_stops_the_gradient_and_shares_data():
    x = T([1.0, 2.0])
    d = x.detach()
    assert d.is_leaf() and not d.requires_grad
    assert d.realize_cached_data() is x.realize_cached_data()
    (d * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 2.0])  # not 2x
    assert x.data.is_leaf() and not x.data.requires_grad


def test_data_setter_swaps_storage_and_checks_dtype():
    x = T([1.0, 2.0])
    y = x * 2.0
    x.data = T([5.0, 6.0], requires_grad=False)
    np.testing.assert_allclose(x.numpy(), [5.0, 6.0])
    np.testing.assert_allclose(y.numpy(), [2.0, 4.0])  # computed before: unchanged
    with pytest.raises(TypeError, match="float32.*float64|float64.*float32"):
        x.data = ndl.Tensor(np.zeros(2, np.float32), device=NP)


# ---- memory --------------------------------------------------------------------------------------
@pytest.fixture
def no_gc():
    """Run with the cycle collector off: freeing must happen by reference counting alone."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


def test_graph_is_freed_after_backward(no_gc):
    x = T(np.arange(6.0).reshape(2, 3))
    w = T(np.ones((3, 2)))
    baseline = autograd.TENSOR_COUNTER
    h = ops.relu(x @ w)
    p = ops.logsoftmax(h * 2.0 - 1.0)
    loss = ops.summation(p)
    refs = [weakref.ref(t) for t in (h, p, loss)]
    del h, p
    loss.backward(create_graph=False)
    del loss
    assert [r() for r in refs] == [None, None, None]
    assert autograd.TENSOR_COUNTER == baseline + 2  # x.grad and w.grad


def test_graph_kept_by_grad_is_freed_with_it(no_gc):
    x = T([1.0, 2.0])
    baseline = autograd.TENSOR_COUNTER
    y = x * x * x
    ref = weakref.ref(y)
    y.sum().backward()  # create_graph=True: x.grad may hold the forward graph ...
    del y
    x.grad = None       # ... until the user drops it
    assert ref() is None
    assert autograd.TENSOR_COUNTER == baseline


def test_no_grad_keeps_no_graph(no_gc):
    x = T([1.0, 2.0])
    baseline = autograd.TENSOR_COUNTER
    with ndl.no_grad():
        y = ops.exp(x) * 2.0
    assert y.inputs == []
    assert autograd.TENSOR_COUNTER == baseline + 1
    del y
    assert autograd.TENSOR_COUNTER == baseline


# ---- dtypes and devices through backward ---------------------------------------------------------
def test_float64_through_grad_of_grad():
    x = T([0.5, 1.5])
    (ops.sigmoid(x) * ops.log(x)).sum().backward()
    assert x.grad.dtype == "float64"
    x.grad.sum().backward()
    assert x.grad.dtype == "float64" and x.grad.device == NP


def test_float32_stays_float32():
    x = ndl.Tensor(np.array([1.0, 2.0], np.float32), device=NP)
    assert x.dtype == "float32"
    y = (x * 2.5 + 1.0) / 3.0
    assert y.dtype == "float32"
    y.sum().backward()
    assert x.grad.dtype == "float32"


# ---- lazy mode, devices, tuples ------------------------------------------------------------------
def test_lazy_mode_defers_computation(monkeypatch):
    monkeypatch.setattr(autograd, "LAZY_MODE", True)
    x = T([1.0, 2.0])
    y = x * 3.0 + 1.0
    assert y.cached_data is None
    np.testing.assert_allclose(y.numpy(), [4.0, 7.0])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])


def test_gradient_flows_back_across_devices():
    from needle.testing import register_reference_backend
    ref = register_reference_backend()
    x = ndl.Tensor(np.array([1.0, 2.0, 3.0], np.float32), device=NP)
    y = x.to(ref)
    assert y.device == ref
    (y * y).sum().backward()
    assert x.grad.device == NP and x.grad.dtype == "float32"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0, 6.0])


def test_tensor_tuple_gradients():
    a, b = T([1.0, 2.0]), T([3.0])
    tup = ops.make_tuple(a, b)
    assert len(tup) == 2
    s = tup + tup
    (s[0].sum() * s[1].sum()).backward()      # (2 sum a) * (2 b)
    np.testing.assert_allclose(a.grad.numpy(), [12.0, 12.0])
    np.testing.assert_allclose(b.grad.numpy(), [12.0])
    parts = ops.split(T([[1.0, 2.0], [3.0, 4.0]]), 0)
    assert [p.shape for p in parts] == [(2,), (2,)]
    assert parts.detach().is_leaf()


def test_lazy_mode_deep_chain_realizes_without_recursion(monkeypatch):
    monkeypatch.setattr(autograd, "LAZY_MODE", True)
    x = T([1.0, 2.0])
    y = x
    for _ in range(10000):
        y = y + 1.0
    np.testing.assert_allclose(y.numpy(), [10001.0, 10002.0])
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [1.0, 1.0])
