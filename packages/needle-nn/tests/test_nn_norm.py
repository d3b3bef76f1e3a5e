"""BatchNorm1d and LayerNorm1d against numpy formulas; running statistics; gradients."""
import numpy as np
import pytest

import needle as ndl
from needle import nn
from needle.testing import gradcheck

HAS_F64 = "float64" in ndl.default_device().dtypes


def tensor(array, dtype="float32", requires_grad=True):
    return ndl.Tensor(np.asarray(array, dtype=dtype), dtype=dtype, requires_grad=requires_grad)


def np_norm(x, axis, eps):
    mean = x.mean(axis=axis, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axis, keepdims=True)  # biased
    return (x - mean) / np.sqrt(var + eps)


def test_batchnorm_training_forward_and_running_stats():
    rng = np.random.RandomState(0)
    bn = nn.BatchNorm1d(3, eps=1e-5, momentum=0.2)
    assert bn.weight.shape == (3,) and bn.bias.shape == (3,)
    assert bn.parameters() == [bn.weight, bn.bias]  # running stats are not parameters
    w, b = rng.randn(3).astype(np.float32), rng.randn(3).astype(np.float32)
    bn.weight.data = tensor(w)
    bn.bias.data = tensor(b)
    running_mean, running_var = np.zeros(3), np.ones(3)
    for _ in range(3):
        x = (rng.randn(8, 3) * [1, 2, 3] + [0, 5, -5]).astype(np.float32)
        out = bn(tensor(x)).numpy()
        np.testing.assert_allclose(out, w * np_norm(x.astype(np.float64), 0, 1e-5) + b, rtol=1e-4, atol=1e-4)
        running_mean = 0.8 * running_mean + 0.2 * x.mean(0)
        running_var = 0.8 * running_var + 0.2 * x.var(0)  # biased batch variance
        np.testing.assert_allclose(bn.running_mean.numpy(), running_mean, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(bn.running_var.numpy(), running_var, rtol=1e-5, atol=1e-5)
    assert not bn.running_mean.requires_grad and bn.running_mean.is_leaf()

    bn.eval()
    x = rng.randn(4, 3).astype(np.float32)
    expected = w * (x - running_mean) / np.sqrt(running_var + 1e-5) + b
    np.testing.assert_allclose(bn(tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(bn.running_mean.numpy(), running_mean, rtol=1e-5, atol=1e-5)  # eval: unchanged


def test_batchnorm_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(batch, 3\).*\(4, 2\)"):
        nn.BatchNorm1d(3)(tensor(np.ones((4, 2))))


def np_norm_backward(x, w, dy, axis, eps):
    """Gradients of w * norm(x) + b (biased variance over ``axis``) for the upstream ``dy``."""
    xhat = np_norm(x, axis, eps)
    sigma = np.sqrt(x.var(axis=axis, keepdims=True) + eps)
    dxhat = dy * w
    dx = (dxhat - dxhat.mean(axis=axis, keepdims=True) - xhat * (dxhat * xhat).mean(axis=axis, keepdims=True)) / sigma
    other = tuple(i for i in range(x.ndim) if i != x.ndim - 1) if axis != 0 else (0,)
    return dx, (dy * xhat).sum(axis=other), dy.sum(axis=other)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradient(training):
    rng = np.random.RandomState(1)
    bn = nn.BatchNorm1d(3)
    rm, rv = rng.randn(3).astype(np.float32), rng.rand(3).astype(np.float32) + 0.5
    w, b = rng.randn(3).astype(np.float32), rng.randn(3).astype(np.float32)
    bn.running_mean.data, bn.running_var.data = tensor(rm, requires_grad=False), tensor(rv, requires_grad=False)
    bn.weight.data, bn.bias.data = tensor(w), tensor(b)
    bn.train(training)
    x, dy = rng.randn(6, 3), rng.randn(6, 3)
    X = tensor(x)
    bn(X).backward(tensor(dy, requires_grad=False))
    if training:
        dx, dw, db = np_norm_backward(x, w, dy, 0, 1e-5)
    else:
        xhat = (x - rm) / np.sqrt(rv + 1e-5)
        dx, dw, db = dy * w / np.sqrt(rv + 1e-5), (dy * xhat).sum(0), dy.sum(0)
    np.testing.assert_allclose(X.grad.numpy(), dx, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(bn.weight.grad.numpy(), dw, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(bn.bias.grad.numpy(), db, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("cls,shape,axes", [(nn.BatchNorm1d, (8, 3), (0,)), (nn.BatchNorm2d, (4, 3, 2, 5), (0, 2, 3))])
def test_batchnorm_float32_layer_takes_float64_input(cls, shape, axes):
    # numpy keeps a float64 array float64 (Tensor's rule), and a float32/float64 mix promotes
    # (core's rule): the output is float64, the running statistics stay float32 buffers.
    numpy_device = ndl.cpu_numpy()
    rng = np.random.RandomState(7)
    bn = cls(3, momentum=0.1, device=numpy_device)
    x, dy = rng.randn(*shape) * 3 + 1, rng.randn(*shape)
    X = ndl.Tensor(x, device=numpy_device)
    out = bn(X)
    keep = [1] * len(shape)
    keep[1] = 3
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    xhat = (x - mean.reshape(keep)) / np.sqrt(var.reshape(keep) + 1e-5)
    assert out.dtype == "float64"
    np.testing.assert_allclose(out.numpy(), xhat, rtol=1e-10, atol=1e-12)
    assert bn.running_mean.dtype == bn.running_var.dtype == "float32"
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var, rtol=1e-6)
    out.backward(ndl.Tensor(dy, device=numpy_device, requires_grad=False))
    assert bn.weight.grad.dtype == "float32" and X.grad.dtype == "float64"
    np.testing.assert_allclose(bn.weight.grad.numpy(), (dy * xhat).sum(axis=axes), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.bias.grad.numpy(), dy.sum(axis=axes), rtol=1e-5, atol=1e-5)
    bn.eval()
    rm, rv = bn.running_mean.numpy().reshape(keep), bn.running_var.numpy().reshape(keep)
    np.testing.assert_allclose(bn(X).numpy(), (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-6)


@pytest.mark.skipif(not HAS_F64, reason="the default device has no float64 for a tight gradient check")
def test_batchnorm_gradcheck_float64():
    rng = np.random.RandomState(1)
    bn = nn.BatchNorm1d(3, dtype="float64")

    def f(x, w, b):
        bn.weight, bn.bias = w, b  # plain tensors: the gradient reaches gradcheck's inputs
        return bn(x)
    gradcheck(f, *(tensor(a, dtype="float64") for a in (rng.randn(5, 3), rng.randn(3), rng.randn(3))), atol=1e-6)


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5)])
def test_layernorm_forward(shape):
    rng = np.random.RandomState(2)
    ln = nn.LayerNorm1d(5, eps=1e-5)
    assert ln.weight.shape == (5,) and ln.bias.shape == (5,)
    w, b = rng.randn(5).astype(np.float32), rng.randn(5).astype(np.float32)
    ln.weight.data, ln.bias.data = tensor(w), tensor(b)
    x = (rng.randn(*shape) * 4 + 3).astype(np.float32)
    expected = w * np_norm(x.astype(np.float64), -1, 1e-5) + b
    np.testing.assert_allclose(ln(tensor(x)).numpy(), expected, rtol=1e-4, atol=1e-4)


def test_layernorm_rejects_wrong_features():
    with pytest.raises(ValueError, match=r"5 features.*\(2, 4\)"):
        nn.LayerNorm1d(5)(tensor(np.ones((2, 4))))


def test_layernorm_gradient():
    rng = np.random.RandomState(4)
    ln = nn.LayerNorm1d(4)
    w = rng.randn(4).astype(np.float32)
    ln.weight.data = tensor(w)
    x, dy = rng.randn(2, 3, 4), rng.randn(2, 3, 4)
    X = tensor(x)
    ln(X).backward(tensor(dy, requires_grad=False))
    dx, dw, db = np_norm_backward(x, w, dy, -1, 1e-5)
    np.testing.assert_allclose(X.grad.numpy(), dx, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(ln.weight.grad.numpy(), dw, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(ln.bias.grad.numpy(), db, rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not HAS_F64, reason="the default device has no float64 for a tight gradient check")
def test_layernorm_gradcheck_float64():
    rng = np.random.RandomState(3)
    ln = nn.LayerNorm1d(4, dtype="float64")

    def f(x, w, b):
        ln.weight, ln.bias = w, b
        return ln(x)
    gradcheck(f, *(tensor(a, dtype="float64") for a in (rng.randn(2, 3, 4), rng.randn(4), rng.randn(4))), atol=1e-6)


def test_layernorm_weights_is_the_course_name_of_weight():
    ln = nn.LayerNorm1d(3)
    assert ln.weights is ln.weight
    ln.weights = nn.Parameter(np.array([2.0, 2.0, 2.0], np.float32))
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    want = 2.0 * (x - 2.0) / np.sqrt(2.0 / 3.0 + 1e-5)
    np.testing.assert_allclose(ln(ndl.Tensor(x)).numpy(), want, rtol=1e-5)
    assert len(ln.parameters()) == 2  # the alias adds no parameter
