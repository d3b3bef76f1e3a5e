"""needle.register_grad_ready_hook: called once per backward when a leaf's .grad is final.

Expected gradients are derived by hand (closed forms evaluated with numpy), never read back from
needle's own backward.
"""
import gc

import numpy as np
import pytest

import needle as ndl
from needle import _grad_hooks

X = np.array([[1.0, 2.0], [-1.0, 0.5], [3.0, -2.0]], dtype=np.float32)      # 3x2, a constant input
W1 = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]], dtype=np.float32)      # 2x3
W2 = np.array([[1.0], [-2.0], [0.5]], dtype=np.float32)                     # 3x1


def _two_layer():
    x = ndl.Tensor(X, requires_grad=False)
    w1 = ndl.Tensor(W1, requires_grad=True)
    w2 = ndl.Tensor(W2, requires_grad=True)
    return x, w1, w2


def test_hooks_run_last_layer_first_with_final_gradients_while_backward_goes_on():
    # f = sum(X W1 W2): df/dW2 = (X W1)^T 1, df/dW1 = X^T 1 W2^T (1: a 3x1 matrix of ones).
    x, w1, w2 = _two_layer()
    events = []

    def record(name):
        def hook(t):
            other = w1 if t is w2 else w2
            events.append((name, t.grad.numpy().copy(), other.grad is None))
        return hook

    ndl.register_grad_ready_hook(w1, record("w1"))
    ndl.register_grad_ready_hook(w2, record("w2"))
    ((x @ w1) @ w2).sum().backward()
    ones = np.ones((3, 1), dtype=np.float32)
    assert [e[0] for e in events] == ["w2", "w1"]  # the layer nearest the loss is final first
    np.testing.assert_allclose(events[0][1], (X @ W1).T @ ones, rtol=1e-6)
    np.testing.assert_allclose(events[1][1], X.T @ ones @ W2.T, rtol=1e-6)
    assert events[0][2], "w2's hook must run before backward reaches w1"
    assert not events[1][2]


def test_a_leaf_used_twice_gets_one_call_with_the_summed_gradient():
    # f = sum(w * w) + sum(3 w): df/dw = 2 w + 3, reported once, after both uses are summed.
    w = ndl.Tensor([1.0, -2.0, 0.5], requires_grad=True)
    seen = []
    ndl.register_grad_ready_hook(w, lambda t: seen.append(t.grad.numpy().tolist()))
    ((w * w).sum() + (w * 3.0).sum()).backward()
    assert seen == [[5.0, -1.0, 4.0]]


def test_hooks_run_in_registration_order_on_every_backward():
    w = ndl.Tensor([2.0], requires_grad=True)
    calls = []
    ndl.register_grad_ready_hook(w, lambda t: calls.append("a"))
    ndl.register_grad_ready_hook(w, lambda t: calls.append("b"))
    (w * w).sum().backward()
    (w * 5.0).sum().backward()
    assert calls == ["a", "b", "a", "b"]


def test_a_hook_may_replace_the_gradient_per_layer_clipping():
    # df/dw = 2 w = [6, -8] (norm 10); the hook rescales it to norm 1.
    w = ndl.Tensor([3.0, -4.0], requires_grad=True)

    def clip_to_unit_norm(t):
        g = t.grad.numpy()
        t.grad = ndl.Tensor(g / np.linalg.norm(g), requires_grad=False)

    ndl.register_grad_ready_hook(w, clip_to_unit_norm)
    (w * w).sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), [0.6, -0.8], rtol=1e-6)


def test_remove_and_context_manager_unregister():
    w = ndl.Tensor([1.0], requires_grad=True)
    calls = []
    handle = ndl.register_grad_ready_hook(w, lambda t: calls.append(1))
    handle.remove()
    handle.remove()  # idempotent
    with ndl.register_grad_ready_hook(w, lambda t: calls.append(2)):
        (w * 2.0).sum().backward()
    (w * 2.0).sum().backward()
    assert calls == [2]


def test_an_exception_in_a_hook_propagates_out_of_backward():
    w = ndl.Tensor([1.0], requires_grad=True)

    def fail(t):
        raise RuntimeError("hook failed on purpose")

    ndl.register_grad_ready_hook(w, fail)
    with pytest.raises(RuntimeError, match="hook failed on purpose"):
        (w * 2.0).sum().backward()


def test_a_leaf_the_loss_does_not_reach_gets_no_call():
    a = ndl.Tensor([1.0], requires_grad=True)
    b = ndl.Tensor([1.0], requires_grad=True)
    calls = []
    ndl.register_grad_ready_hook(b, lambda t: calls.append(t))
    (a * 2.0).sum().backward()
    assert calls == []


def test_gradients_helper_does_not_fire_hooks():
    w = ndl.Tensor([1.5], requires_grad=True)
    calls = []
    ndl.register_grad_ready_hook(w, lambda t: calls.append(t))
    y = w * w
    (g,) = ndl.autograd.gradients(y, ndl.Tensor([1.0], requires_grad=False), [w])
    assert calls == [] and w.grad is None
    np.testing.assert_allclose(g.numpy(), [3.0])


def test_bad_arguments_are_refused_with_clear_errors():
    w = ndl.Tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="fn must be callable"):
        ndl.register_grad_ready_hook(w, 3)
    with pytest.raises(TypeError, match="must be a needle Tensor"):
        ndl.register_grad_ready_hook(np.ones(2), print)
    with pytest.raises(ValueError, match="must be a leaf"):
        ndl.register_grad_ready_hook(w * 2.0, print)
    with pytest.raises(ValueError, match="does not require grad"):
        ndl.register_grad_ready_hook(ndl.Tensor([1.0], requires_grad=False), print)


def test_hooks_do_not_keep_their_tensor_alive():
    gc.collect()
    before = len(_grad_hooks._HOOKS)
    w = ndl.Tensor([1.0], requires_grad=True)
    ndl.register_grad_ready_hook(w, print)
    assert len(_grad_hooks._HOOKS) == before + 1
    del w
    gc.collect()
    assert len(_grad_hooks._HOOKS) == before
