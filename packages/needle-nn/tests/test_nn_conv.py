"""Conv, BatchNorm2d and pooling modules against numpy formulas and finite differences."""
import math

import numpy as np
import pytest

import needle as ndl
from needle import nn
from needle.testing.gradcheck import gradcheck

NUMPY = ndl.cpu_numpy()


def conv_nchw_loop(x, w, b, stride, pad):
    """Reference: NCHW input, (k, k, in, out) weight, a loop over output pixels."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[0]
    n, _, h, wd = xp.shape
    ho, wo = (h - k) // stride + 1, (wd - k) // stride + 1
    out = np.zeros((n, w.shape[3], ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, :, i, j] = np.einsum("ncab,abcd->nd", patch, w)
    return out + (0 if b is None else b.reshape(1, -1, 1, 1))


def test_conv_init_follows_the_course():
    np.random.seed(0)
    layer = nn.Conv(3, 5, 3, stride=2)
    np.random.seed(0)
    bound = math.sqrt(2) * math.sqrt(3 / 27)  # kaiming_uniform(in*k*k, ...) with relu gain
    weight = np.random.rand(3, 3, 3, 5) * 2 * bound - bound
    b = 1 / math.sqrt(27)
    bias = np.random.rand(5) * 2 * b - b
    np.testing.assert_allclose(layer.weight.numpy(), weight, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.bias.numpy(), bias, rtol=1e-5, atol=1e-6)
    assert layer.padding == 1 and layer.weight.shape == (3, 3, 3, 5) and layer.bias.shape == (5,)
    assert nn.Conv(2, 2, (3, 3), stride=(2, 2)).stride == 2


@pytest.mark.parametrize("k,stride,size", [(3, 1, 6), (3, 2, 7), (1, 1, 4), (5, 2, 8)])
def test_conv_forward_same_padding(k, stride, size):
    np.random.seed(1)
    layer = nn.Conv(2, 3, k, stride=stride)
    x = np.random.randn(2, 2, size, size)
    y = layer(ndl.Tensor(x, dtype="float32"))
    expect = conv_nchw_loop(x, layer.weight.numpy(), layer.bias.numpy(), stride, k // 2)
    assert y.shape == expect.shape == (2, 3, (size - 1) // stride + 1, (size - 1) // stride + 1)
    np.testing.assert_allclose(y.numpy(), expect, rtol=1e-4, atol=1e-4)


def test_conv_module_gradients_float64():
    np.random.seed(2)
    layer = nn.Conv(2, 3, 3, stride=2, device=NUMPY, dtype="float64")
    assert layer.weight.dtype == "float64"

    def f(x, w, b):
        layer.weight, layer.bias = w, b
        return layer(x)

    gradcheck(f, ndl.Tensor(np.random.randn(2, 2, 5, 5), device=NUMPY), layer.weight, layer.bias)


def test_conv_rejects_wrong_channels():
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        nn.Conv(3, 4, 3)(ndl.Tensor(np.zeros((1, 2, 5, 5)), dtype="float32"))


def test_batchnorm2d_normalises_each_channel():
    np.random.seed(3)
    bn = nn.BatchNorm2d(3, momentum=0.2, device=NUMPY, dtype="float64")
    x = np.random.randn(4, 3, 2, 5) * 3 + 1
    y = bn(ndl.Tensor(x, device=NUMPY)).numpy()
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    var = x.var(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(y, (x - mean) / np.sqrt(var + 1e-5), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.2 * mean.reshape(-1), rtol=1e-10)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.8 + 0.2 * var.reshape(-1), rtol=1e-10)
    bn.eval()
    y = bn(ndl.Tensor(x, device=NUMPY)).numpy()
    rm, rv = bn.running_mean.numpy().reshape(1, 3, 1, 1), bn.running_var.numpy().reshape(1, 3, 1, 1)
    np.testing.assert_allclose(y, (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-10)


def test_batchnorm2d_gradients_float64():
    np.random.seed(4)
    bn = nn.BatchNorm2d(2, device=NUMPY, dtype="float64")

    def f(x, w, b):
        bn.weight, bn.bias = w, b
        return bn(x)

    w = ndl.Tensor(np.random.rand(2) + 0.5, device=NUMPY)
    b = ndl.Tensor(np.random.randn(2), device=NUMPY)
    gradcheck(f, ndl.Tensor(np.random.randn(3, 2, 2, 3), device=NUMPY), w, b)


@pytest.mark.parametrize("cls,reduce", [(nn.MaxPool2d, np.max), (nn.AvgPool2d, np.mean)])
def test_pool_modules_nchw(cls, reduce):
    x = np.random.RandomState(5).randn(2, 3, 6, 4)
    y = cls(2)(ndl.Tensor(x, device=NUMPY)).numpy()
    expect = reduce(x.reshape(2, 3, 3, 2, 2, 2), axis=(3, 5))
    np.testing.assert_allclose(y, expect, rtol=1e-10)
    t = ndl.Tensor(np.random.RandomState(6).permutation(48).reshape(1, 3, 4, 4) * 0.1, device=NUMPY)
    gradcheck(lambda a: cls(3, stride=1, padding=1)(a), t, eps=1e-4)
