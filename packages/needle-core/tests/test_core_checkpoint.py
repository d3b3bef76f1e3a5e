"""needle.utils.checkpoint on plain functions: gradients, second order, modes (oracle: numpy by hand)."""
import numpy as np
import pytest

import needle as ndl
from needle.utils.checkpoint import checkpoint, checkpoint_sequential


def _t(a, **kw):
    return ndl.Tensor(np.asarray(a, dtype=np.float64), device=ndl.cpu_numpy(), dtype="float64", **kw)


def test_first_and_second_order_gradients_match_hand_derivation():
    # y = a*a*w elementwise; L1 = sum(y): dL1/da = 2 a w, dL1/dw = a^2;
    # L2 = sum((dL1/da)^2) = sum(4 a^2 w^2): dL2/da = 8 a w^2, dL2/dw = 8 a^2 w.
    a0, w0 = np.array([1.0, -2.0, 0.5]), np.array([3.0, 5.0, -1.0])
    a, w = _t(a0), _t(w0)
    y = checkpoint(lambda t: t * t * w, a)
    np.testing.assert_allclose(y.numpy(), a0 * a0 * w0)
    y.sum().backward()
    ga = a.grad
    np.testing.assert_allclose(ga.numpy(), 2 * a0 * w0)
    np.testing.assert_allclose(w.grad.numpy(), a0 * a0)
    (ga * ga).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), 8 * a0 * w0 ** 2)
    np.testing.assert_allclose(w.grad.numpy(), 8 * a0 ** 2 * w0)


def test_create_graph_false_gives_plain_gradients():
    a = _t([[1.0, 2.0], [3.0, 4.0]])
    b = _t([[0.5], [-1.0]])
    y = checkpoint(lambda x, scale: ndl.tanh(x @ b) * scale, a, 2.0)
    y.sum().backward(create_graph=False)
    pre = np.array([[1.0, 2.0], [3.0, 4.0]]) @ np.array([[0.5], [-1.0]])
    d = 2.0 * (1 - np.tanh(pre) ** 2)
    np.testing.assert_allclose(a.grad.numpy(), d @ np.array([[0.5, -1.0]]))
    np.testing.assert_allclose(b.grad.numpy(), np.array([[1.0, 2.0], [3.0, 4.0]]).T @ d)
    assert not a.grad.requires_grad and a.grad.is_leaf()


def test_random_draws_are_replayed_and_the_generator_moves_on_once():
    x0 = np.arange(6.0)
    np.random.seed(9)
    mask_plain = np.random.rand(6) < 0.5
    after_plain = np.random.rand()
    x = _t(x0)
    np.random.seed(9)
    y = checkpoint(lambda t: t * ndl.Tensor(np.random.rand(6) < 0.5, device=t.device, dtype="float64"), x)
    after = np.random.rand()
    y.sum().backward()
    assert np.random.rand() != after  # backward's replay did not rewind the generator
    assert after == after_plain
    np.testing.assert_array_equal(x.grad.numpy(), mask_plain.astype(float))


def test_a_non_leaf_input_stops_the_recompute():
    w = _t([2.0, 3.0])
    h = w * w  # made before the checkpoint: its graph is the outer backward's
    y = checkpoint(lambda t: t.exp(), h)
    y.sum().backward()
    np.testing.assert_allclose(w.grad.numpy(), np.exp([4.0, 9.0]) * 2 * np.array([2.0, 3.0]))


def test_no_grad_and_constants_skip_checkpointing():
    x = _t([1.0, 2.0], requires_grad=False)
    y = checkpoint(lambda t: t + 1, x)
    assert y.is_leaf() and not y.requires_grad
    with ndl.no_grad():
        z = checkpoint_sequential([lambda t: t * 2, lambda t: t + 1], 2, _t([1.0]))
    assert z.is_leaf() and z.numpy().tolist() == [3.0]


def test_lazy_mode():
    import needle.autograd as autograd
    old, autograd.LAZY_MODE = autograd.LAZY_MODE, True
    try:
        w = _t([1.0, -2.0])
        y = checkpoint(lambda t: ndl.relu(t * w), _t([3.0, 4.0]))
        y.sum().backward()
    finally:
        autograd.LAZY_MODE = old
    np.testing.assert_allclose(w.grad.numpy(), [3.0, 0.0])


def test_bad_input():
    with pytest.raises(TypeError, match="checkpoint: function must be callable, got str"):
        checkpoint("f", _t([1.0]))
    with pytest.raises(ValueError, match=r"segments must be in \[1, 1\]"):
        checkpoint_sequential([abs], 2, _t([1.0]))
    with pytest.raises(TypeError, match="must be a Sequential or a list"):
        checkpoint_sequential(42, 1, _t([1.0]))
