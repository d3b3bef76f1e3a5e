"""Optimizer updates against steps computed by hand (numpy formulas written here)."""
import numpy as np
import pytest

import needle as ndl
from needle import nn, optim

W0 = np.array([[0.5, -1.0, 2.0], [0.0, 0.25, -0.75]], dtype=np.float32)
GRADS = [np.array([[0.1, -0.2, 0.3], [0.4, -0.5, 0.6]], dtype=np.float32),
         np.array([[-0.3, 0.1, 0.0], [0.2, 0.2, -0.1]], dtype=np.float32),
         np.array([[1.0, 1.0, -1.0], [0.5, -0.5, 0.05]], dtype=np.float32)]


def run(make_optimizer, grads=GRADS):
    """Apply ``optimizer.step()`` with the given gradients; return the weights after each step."""
    p = nn.Parameter(W0.copy())
    opt = make_optimizer([p])
    out = []
    for g in grads:
        grad = ndl.Tensor(g, requires_grad=False)
        p.grad = grad
        opt.step()
        np.testing.assert_array_equal(grad.numpy(), g)  # the gradient is never written into
        assert p.is_leaf() and p.requires_grad and isinstance(p, nn.Parameter)
        out.append(p.numpy().astype(np.float64))
    return out


def check(got, expected):
    for step, (a, b) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg=f"step {step + 1}")


def test_sgd_plain_first_step_by_hand():
    got = run(lambda ps: optim.SGD(ps, lr=0.1), GRADS[:1])
    check(got, [[[0.49, -0.98, 1.97], [-0.04, 0.30, -0.81]]])


def test_sgd_momentum_and_weight_decay():
    lr, mom, wd = 0.1, 0.9, 0.01
    w, u, expected = W0.astype(np.float64), np.zeros_like(W0, dtype=np.float64), []
    for g in GRADS:
        g = g + wd * w
        u = mom * u + (1 - mom) * g   # the course's rule
        w = w - lr * u
        expected.append(w)
    check(run(lambda ps: optim.SGD(ps, lr=lr, momentum=mom, weight_decay=wd)), expected)


def test_adam_first_step_is_lr_times_sign():
    # After one step m_hat = g and v_hat = g**2, so the update is lr * g / (|g| + eps).
    got = run(lambda ps: optim.Adam(ps, lr=0.01), GRADS[:1])
    check(got, [W0 - 0.01 * np.sign(GRADS[0])])


@pytest.mark.parametrize("wd", [0.0, 0.1])
def test_adam_bias_correction_and_weight_decay(wd):
    lr, b1, b2, eps = 0.05, 0.8, 0.95, 1e-8
    w, m, v, expected = W0.astype(np.float64), 0.0, 0.0, []
    for t, g in enumerate(GRADS, start=1):
        g = g + wd * w
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        expected.append(w)
    check(run(lambda ps: optim.Adam(ps, lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=wd)), expected)


def test_adamw_decouples_weight_decay():
    lr, b1, b2, eps, wd = 0.05, 0.9, 0.999, 1e-8, 0.1
    w, m, v, expected = W0.astype(np.float64), 0.0, 0.0, []
    for t, g in enumerate(GRADS, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w * (1 - lr * wd) - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        expected.append(w)
    check(run(lambda ps: optim.AdamW(ps, lr=lr, weight_decay=wd)), expected)


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_rmsprop(momentum):
    lr, alpha, eps, wd = 0.01, 0.9, 1e-8, 0.05
    w, v, buf, expected = W0.astype(np.float64), 0.0, 0.0, []
    for g in GRADS:
        g = g + wd * w
        v = alpha * v + (1 - alpha) * g * g
        buf = momentum * buf + g / (np.sqrt(v) + eps)
        w = w - lr * buf
        expected.append(w)
    opt = lambda ps: optim.RMSprop(ps, lr=lr, alpha=alpha, eps=eps, weight_decay=wd, momentum=momentum)  # noqa: E731
    check(run(opt), expected)


def test_parameters_without_grad_are_skipped_and_reset_grad():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    opt = optim.SGD([a, b], lr=0.5)
    a.grad = ndl.Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=False)
    b.grad = None
    opt.step()
    np.testing.assert_allclose(a.numpy(), [0.5, 0.0])
    np.testing.assert_array_equal(b.numpy(), [1.0, 1.0])
    opt.zero_grad()
    assert a.grad is None
    a.grad = ndl.Tensor(np.ones(2, dtype=np.float32))
    opt.reset_grad()
    assert a.grad is None


def test_optimizer_argument_errors():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD(iter([]))
    with pytest.raises(TypeError, match="parameter 0"):
        optim.Adam([np.zeros(3)])
    p = nn.Parameter(np.zeros(3))
    with pytest.raises(ValueError, match="momentum"):
        optim.SGD([p], momentum=1.5)
    with pytest.raises(ValueError, match="beta1"):
        optim.Adam([p], beta1=1.0)
    p.grad = ndl.Tensor(np.zeros(4, dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(4,\).*\(3,\)"):
        optim.SGD([p]).step()


def test_training_reduces_loss_on_least_squares():
    # Full-batch gradient descent on a convex problem must approach numpy's least-squares fit.
    rng = np.random.RandomState(0)
    X = rng.randn(64, 3).astype(np.float32)
    y = (X @ np.array([[1.5], [-2.0], [0.5]]) + 0.3).astype(np.float32)
    model = nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.5)
    for _ in range(300):
        opt.reset_grad()
        nn.MSELoss()(model(ndl.Tensor(X)), ndl.Tensor(y)).backward()
        opt.step()
    coef, *_ = np.linalg.lstsq(np.hstack([X, np.ones((64, 1))]), y, rcond=None)
    np.testing.assert_allclose(model.weight.numpy(), coef[:3], atol=1e-3)
    np.testing.assert_allclose(model.bias.numpy(), coef[3:].T, atol=1e-3)
