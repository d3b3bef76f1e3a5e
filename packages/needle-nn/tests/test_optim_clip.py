"""clip_grad_norm against numpy: global norm, scaling by max_norm / (norm + eps), no in-place writes."""
import numpy as np
import pytest

import needle as ndl
from needle import nn, optim


def params_with_grads(grads):
    params = []
    for g in grads:
        p = nn.Parameter(np.zeros(g.shape))
        p.grad = ndl.Tensor(g.astype(np.float32), requires_grad=False)
        params.append(p)
    return params


def test_clip_scales_all_gradients_together():
    grads = [np.array([[3.0, 0.0], [0.0, 4.0]]), np.array([12.0])]
    params = params_with_grads(grads)
    params.append(nn.Parameter(np.ones(3)))  # no gradient: skipped
    old = [p.grad for p in params[:2]]
    norm = optim.clip_grad_norm(params, max_norm=2.0)
    expected_norm = np.sqrt(sum((g ** 2).sum() for g in grads))
    assert norm == pytest.approx(expected_norm, rel=1e-6)  # 13
    for p, g, before in zip(params, grads, old):
        np.testing.assert_allclose(p.grad.numpy(), g * 2.0 / (13.0 + 1e-6), rtol=1e-6)
        np.testing.assert_array_equal(before.numpy(), g)  # replaced, not written into
    assert params[2].grad is None


def test_clip_below_threshold_leaves_gradients():
    grads = [np.array([0.3, -0.4])]
    params = params_with_grads(grads)
    before = params[0].grad
    assert optim.clip_grad_norm(params, max_norm=1.0) == pytest.approx(0.5, rel=1e-6)
    assert params[0].grad is before
    assert optim.clip_grad_norm_ is optim.clip_grad_norm
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm(params, max_norm=0)


def test_clip_one_global_norm_over_float32_and_float64_gradients():
    numpy_device = ndl.cpu_numpy()
    p64 = nn.Parameter(np.zeros(2), device=numpy_device, dtype="float64")
    p32 = nn.Parameter(np.zeros(2), device=numpy_device, dtype="float32")
    p64.grad = ndl.Tensor(np.array([3.0, 0.0]), device=numpy_device, dtype="float64", requires_grad=False)
    p32.grad = ndl.Tensor(np.array([0.0, 4.0]), device=numpy_device, dtype="float32", requires_grad=False)
    assert optim.clip_grad_norm([p64, p32], max_norm=1.0) == pytest.approx(5.0, rel=1e-6)
    assert p64.grad.dtype == "float64" and p32.grad.dtype == "float32"
    np.testing.assert_allclose(p64.grad.numpy(), [3.0 / (5 + 1e-6), 0.0], rtol=1e-6)
    np.testing.assert_allclose(p32.grad.numpy(), [0.0, 4.0 / (5 + 1e-6)], rtol=1e-6)
