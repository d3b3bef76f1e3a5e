"""Each basic module against a numpy formula written here."""
import math

import numpy as np
import pytest

import needle as ndl
from needle import nn

RTOL, ATOL = 1e-5, 1e-5


def tensor(array, requires_grad=True):
    return ndl.Tensor(np.asarray(array, dtype=np.float32), dtype="float32", requires_grad=requires_grad)


def np_logsumexp(z, axis):
    zmax = z.max(axis=axis, keepdims=True)
    return (np.log(np.exp(z - zmax).sum(axis=axis, keepdims=True)) + zmax).squeeze(axis)


def test_linear_init_matches_course_draw_order():
    np.random.seed(3)
    layer = nn.Linear(4, 3)
    np.random.seed(3)
    bound_w = math.sqrt(2) * math.sqrt(3 / 4)   # kaiming_uniform(4, 3): gain sqrt(2), fan_in 4
    weight = np.random.rand(4, 3) * 2 * bound_w - bound_w
    bound_b = math.sqrt(2) * math.sqrt(3 / 3)   # kaiming_uniform(3, 1): fan_in 3
    bias = (np.random.rand(3, 1) * 2 * bound_b - bound_b).reshape(1, 3)
    np.testing.assert_allclose(layer.weight.numpy(), weight, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(layer.bias.numpy(), bias, rtol=RTOL, atol=ATOL)
    assert isinstance(layer.weight, nn.Parameter) and layer.weight.dtype == "float32"
    assert layer.parameters() == [layer.weight, layer.bias]


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (4,)])
def test_linear_forward_and_backward_any_rank(shape):
    np.random.seed(0)
    layer = nn.Linear(4, 3)
    x = np.random.randn(*shape).astype(np.float32)
    weights = np.random.randn(*shape[:-1], 3).astype(np.float32)
    W, b = layer.weight.numpy(), layer.bias.numpy()
    X = tensor(x)
    out = layer(X)
    np.testing.assert_allclose(out.numpy(), x @ W + b.reshape(3), rtol=RTOL, atol=ATOL)
    (out * tensor(weights, requires_grad=False)).sum().backward()
    x2, r2 = x.reshape(-1, 4), weights.reshape(-1, 3)
    np.testing.assert_allclose(layer.weight.grad.numpy(), x2.T @ r2, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(layer.bias.grad.numpy(), r2.sum(0, keepdims=True), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(X.grad.numpy(), weights @ W.T, rtol=1e-4, atol=1e-4)


def test_linear_without_bias_and_bad_input():
    layer = nn.Linear(3, 2, bias=False)
    assert layer.bias is None and layer.parameters() == [layer.weight]
    x = np.random.randn(2, 3).astype(np.float32)
    np.testing.assert_allclose(layer(tensor(x)).numpy(), x @ layer.weight.numpy(), rtol=RTOL, atol=ATOL)
    with pytest.raises(ValueError, match=r"\(2, 5\).*3 features"):
        layer(tensor(np.ones((2, 5))))


def test_flatten():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    out = nn.Flatten()(tensor(x))
    assert out.shape == (2, 12)
    np.testing.assert_array_equal(out.numpy(), x.reshape(2, 12))


@pytest.mark.parametrize("module, formula", [
    (nn.ReLU, lambda x: np.maximum(x, 0)),
    (nn.Tanh, np.tanh),
    (nn.Sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    (nn.Identity, lambda x: x),
])
def test_activations(module, formula):
    x = np.random.RandomState(1).randn(3, 5).astype(np.float32) * 3
    np.testing.assert_allclose(module()(tensor(x)).numpy(), formula(x.astype(np.float64)), rtol=RTOL, atol=ATOL)


def test_softmax_is_stable_and_sums_to_one():
    x = np.array([[1.0, 2.0, 3.0], [1000.0, 1001.0, 999.0]], dtype=np.float32)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    out = nn.Softmax()(tensor(x)).numpy()
    np.testing.assert_allclose(out, e / e.sum(-1, keepdims=True), rtol=RTOL, atol=ATOL)
    out0 = nn.Softmax(axis=0)(tensor(x[:1].T)).numpy()
    np.testing.assert_allclose(out0, (e[:1] / e[:1].sum()).T, rtol=RTOL, atol=ATOL)


def test_sequential_and_residual():
    np.random.seed(2)
    l1, l2 = nn.Linear(4, 4), nn.Linear(4, 4)
    model = nn.Sequential(l1, nn.ReLU(), nn.Residual(nn.Sequential(l2, nn.Tanh())))
    assert model.modules[0] is l1
    x = np.random.randn(6, 4).astype(np.float32)
    h = np.maximum(x @ l1.weight.numpy() + l1.bias.numpy(), 0)
    expected = np.tanh(h @ l2.weight.numpy() + l2.bias.numpy()) + h
    np.testing.assert_allclose(model(tensor(x)).numpy(), expected, rtol=RTOL, atol=ATOL)
    assert model.parameters() == [l1.weight, l1.bias, l2.weight, l2.bias]


@pytest.mark.parametrize("label_dtype", [np.int64, np.float32])
def test_softmax_loss_value_and_gradient(label_dtype):
    rng = np.random.RandomState(4)
    z = rng.randn(5, 4).astype(np.float32) * 3
    y = np.array([0, 3, 1, 1, 2])
    Z = tensor(z)
    labels = ndl.Tensor(y.astype(label_dtype), requires_grad=False) if label_dtype is np.float32 else y
    loss = nn.SoftmaxLoss()(Z, labels)
    assert loss.shape == ()
    expected = np.mean(np_logsumexp(z.astype(np.float64), 1) - z[np.arange(5), y])
    np.testing.assert_allclose(loss.numpy(), expected, rtol=RTOL, atol=ATOL)
    loss.backward()
    soft = np.exp(z - np_logsumexp(z, 1)[:, None])
    np.testing.assert_allclose(Z.grad.numpy(), (soft - np.eye(4)[y]) / 5, rtol=1e-4, atol=1e-5)


def test_softmax_loss_large_logits_and_alias():
    assert nn.CrossEntropyLoss is nn.SoftmaxLoss
    z = np.array([[1e4, 0.0, -1e4], [0.0, 5e3, 0.0]], dtype=np.float32)
    loss = nn.CrossEntropyLoss()(tensor(z), [1, 1])
    np.testing.assert_allclose(loss.numpy(), (1e4 + 0.0) / 2, rtol=1e-5)
    with pytest.raises(ValueError, match="labels"):
        nn.SoftmaxLoss()(tensor(z), [0, 1, 2])
    with pytest.raises(ValueError):
        nn.SoftmaxLoss()(tensor(z), [0, 3])  # label out of range


def test_mse_loss():
    rng = np.random.RandomState(5)
    p, t = rng.randn(3, 4).astype(np.float32), rng.randn(3, 4).astype(np.float32)
    P = tensor(p)
    loss = nn.MSELoss()(P, tensor(t, requires_grad=False))
    np.testing.assert_allclose(loss.numpy(), np.mean((p - t) ** 2), rtol=RTOL, atol=ATOL)
    loss.backward()
    np.testing.assert_allclose(P.grad.numpy(), 2 * (p - t) / p.size, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(4, 3\)"):
        nn.MSELoss()(P, tensor(t.T))


def test_every_module_takes_device_and_dtype():
    dev = ndl.default_device()
    for module in [nn.Identity(device=dev, dtype="float32"), nn.Flatten(device=dev), nn.ReLU(device=dev),
                   nn.Tanh(device=dev), nn.Sigmoid(device=dev), nn.Softmax(device=dev),
                   nn.Sequential(device=dev), nn.Residual(nn.Identity(), device=dev), nn.Dropout(0.1, device=dev),
                   nn.SoftmaxLoss(device=dev), nn.MSELoss(device=dev), nn.Linear(2, 3, device=dev),
                   nn.BatchNorm1d(3, device=dev), nn.LayerNorm1d(3, device=dev)]:
        for p in module.parameters():
            assert p.device == dev and p.dtype == "float32"
