"""The fused batch-normalisation kernels against float64 numpy, and nn.BatchNorm1d/2d using them.

Channel counts straddle the vector widths and rows cross the threading grain; inputs far from
zero (mean 1e3, small spread) check the two-pass variance. The bindings refuse short buffers,
outputs that share a buffer and other dtypes.
"""
import numpy as np
import pytest

import needle as ndl
from needle_cpu import _backend as B


@pytest.fixture
def nn():
    """needle.nn, a package of its own: the module tests skip where it is not installed (compat)."""
    return pytest.importorskip("needle.nn")


def to_buffer(x, dtype=np.float32):
    x = np.ascontiguousarray(x, dtype=dtype)
    buf = B.Array(x.size, "float32" if dtype == np.float32 else "float64")
    B.from_numpy(x, buf)
    return buf


def read(buf, shape):
    return np.asarray(buf).copy().reshape(shape)


def numpy_forward(x, w, b, eps):
    x = x.astype(np.float64)
    mean = x.mean(0)
    var = ((x - mean) ** 2).mean(0)
    return (x - mean) / np.sqrt(var + eps) * w + b, mean, var


def numpy_backward(x, g, w, eps):
    x, g = x.astype(np.float64), g.astype(np.float64)
    m = x.shape[0]
    mean = x.mean(0)
    inv = 1 / np.sqrt(((x - mean) ** 2).mean(0) + eps)
    xhat = (x - mean) * inv
    gb, gw = g.sum(0), (g * xhat).sum(0)
    return w * inv * (g - gb / m - xhat * gw / m), gw, gb


# (m, c): one row, one channel, vector edges, primes, ResNet9's layers, rows that run on two threads
SHAPES = [(1, 1), (1, 5), (7, 1), (3, 7), (5, 8), (9, 16), (11, 17), (13, 33), (64 * 64, 16), (128 * 16, 128),
          (1031, 65)]


def run_forward(x, w, b, eps):
    m, c = x.shape
    out, mean, var = to_buffer(np.full(m * c, 7.0)), to_buffer(np.full(c, 7.0)), to_buffer(np.full(c, 7.0))
    B.batchnorm_forward(to_buffer(x), to_buffer(w), to_buffer(b), out, mean, var, m, c, eps)
    return read(out, (m, c)), read(mean, (c,)), read(var, (c,))


@pytest.mark.parametrize("m,c", SHAPES)
def test_forward_matches_numpy(isa, rng, m, c):
    x = (rng.standard_normal((m, c)) * 3 + 1).astype(np.float32)
    w, b = rng.standard_normal(c).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    out, mean, var = run_forward(x, w, b, 1e-5)
    want = numpy_forward(x, w, b, 1e-5)
    np.testing.assert_allclose(mean, want[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, want[2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out, want[0], rtol=1e-4, atol=1e-4)


def test_variance_is_computed_around_the_mean(isa, rng):
    # E[x^2] - E[x]^2 in float32 would lose every digit of a spread of 1e-2 around 1e3.
    x = (1e3 + rng.standard_normal((4096, 8)) * 1e-2).astype(np.float32)
    _, _, var = run_forward(x, np.ones(8), np.zeros(8), 0.0)
    np.testing.assert_allclose(var, numpy_forward(x, np.ones(8), np.zeros(8), 0.0)[2], rtol=1e-3)


@pytest.mark.parametrize("m,c", SHAPES)
def test_backward_matches_numpy(isa, rng, m, c):
    x = (rng.standard_normal((m, c)) * 2 - 1).astype(np.float32)
    g, w = rng.standard_normal((m, c)).astype(np.float32), rng.standard_normal(c).astype(np.float32)
    _, mean, var = run_forward(x, w, np.zeros(c), 1e-5)
    gx, gw, gb = to_buffer(np.full(m * c, 7.0)), to_buffer(np.full(c, 7.0)), to_buffer(np.full(c, 7.0))
    B.batchnorm_backward(to_buffer(x), to_buffer(g), to_buffer(w), to_buffer(mean), to_buffer(var), gx, gw, gb, m, c,
                         1e-5)
    want = numpy_backward(x, g, w, 1e-5)
    scale = np.abs(want[0]).max() + 1
    np.testing.assert_allclose(read(gx, (m, c)), want[0], rtol=1e-4, atol=1e-5 * scale)
    np.testing.assert_allclose(read(gw, (c,)), want[1], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(read(gb, (c,)), want[2], rtol=1e-4, atol=1e-3)


def _forward_args(m=6, c=5):
    return dict(x=to_buffer(np.ones(m * c)), weight=to_buffer(np.ones(c)), bias=to_buffer(np.zeros(c)),
                out=to_buffer(np.zeros(m * c)), mean=to_buffer(np.zeros(c)), var=to_buffer(np.zeros(c)), m=m, c=c,
                eps=1e-5)


def _backward_args(m=6, c=5):
    return dict(x=to_buffer(np.ones(m * c)), g=to_buffer(np.ones(m * c)), weight=to_buffer(np.ones(c)),
                mean=to_buffer(np.zeros(c)), var=to_buffer(np.ones(c)), grad_x=to_buffer(np.zeros(m * c)),
                grad_weight=to_buffer(np.zeros(c)), grad_bias=to_buffer(np.zeros(c)), m=m, c=c, eps=1e-5)


@pytest.mark.parametrize("change,match", [
    (dict(m=7), "buffer x has"), (dict(c=6), "buffer"), (dict(m=-1), "must be in"), (dict(c=2 ** 62), "must be in"),
    (dict(m=2 ** 40, c=2 ** 40), "overflow"), (dict(mean=to_buffer(np.zeros(4))), "buffer mean"),
    ("out=x", "an output is also an input"), ("var=mean", "two outputs"),
])
def test_forward_refuses_bad_arguments(refuses, change, match):
    refuses(B.batchnorm_forward, _forward_args(), change, match)


@pytest.mark.parametrize("change,match", [
    (dict(m=7), "buffer x has"), (dict(c=-3), "must be in"), (dict(g=to_buffer(np.ones(29))), "buffer g"),
    (dict(grad_bias=to_buffer(np.ones(4))), "buffer grad_bias"), ("grad_x=g", "an output is also an input"),
    ("grad_bias=grad_weight", "two outputs"),
])
def test_backward_refuses_bad_arguments(refuses, change, match):
    refuses(B.batchnorm_backward, _backward_args(), change, match)


def test_kernels_refuse_other_dtypes():
    with pytest.raises(TypeError, match="float32"):
        B.batchnorm_forward(**{**_forward_args(), "weight": to_buffer(np.ones(5), np.float64)})
    with pytest.raises(TypeError, match="float32"):
        B.batchnorm_backward(**{**_backward_args(), "var": to_buffer(np.ones(5), np.float64)})


def test_empty_sizes_are_a_no_op():
    B.batchnorm_forward(**_forward_args(0, 5))
    B.batchnorm_backward(**_backward_args(3, 0))


# ---- the module on needle-cpu against the composed ops on the numpy backend ----------------------------
@pytest.mark.parametrize("shape", [(4, 3, 5, 7), (2, 16, 8, 8), (3, 33, 2, 3)])
@pytest.mark.parametrize("create_graph", [False, True])
def test_batchnorm2d_matches_numpy_backend(nn, rng, shape, create_graph):
    x0 = (rng.standard_normal(shape) * 2 + 0.5).astype(np.float32)
    up = rng.standard_normal(shape).astype(np.float32)
    w0, b0 = rng.standard_normal(shape[1]).astype(np.float32), rng.standard_normal(shape[1]).astype(np.float32)
    got = {}
    for dev in (ndl.device("cpu"), ndl.cpu_numpy()):
        bn = nn.BatchNorm2d(shape[1], device=dev)
        bn.weight, bn.bias = nn.Parameter(w0, device=dev), nn.Parameter(b0, device=dev)
        x = ndl.Tensor(x0, device=dev, requires_grad=True)
        y = bn(x)
        y.backward(ndl.Tensor(up, device=dev), create_graph=create_graph)
        got[dev.name] = [y.numpy(), x.grad.numpy(), bn.weight.grad.numpy(), bn.bias.grad.numpy(),
                         bn.running_mean.numpy(), bn.running_var.numpy()]
    for a, b in zip(*got.values()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_batchnorm1d_second_derivative_matches_numpy_backend(nn, rng):
    # With a graph the fused op's gradient is differentiable: d/dx sum(V * dL/dx) as the composed ops give it.
    x0, up, v = (rng.standard_normal((6, 4)).astype(np.float32) for _ in range(3))
    got = []
    for dev in (ndl.device("cpu"), ndl.cpu_numpy()):
        bn = nn.BatchNorm1d(4, device=dev)
        x = ndl.Tensor(x0, device=dev, requires_grad=True)
        (bn(x) * bn(x) * ndl.Tensor(up, device=dev)).sum().backward()
        gx = x.grad
        (gx * ndl.Tensor(v, device=dev)).sum().backward()
        got.append((gx.numpy(), x.grad.numpy(), bn.weight.grad.numpy()))
    for a, b in zip(*got):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_float64_inputs_and_eval_use_the_composed_ops(nn, rng):
    cpu = ndl.device("cpu")
    bn = nn.BatchNorm1d(3, device=cpu)
    x = ndl.Tensor(rng.standard_normal((5, 3)), device=cpu, dtype="float64")
    y = bn(x)  # float64 input to a float32 layer: promoted, as the composed ops do
    assert y.dtype == "float64"
    want, mean, var = numpy_forward(x.numpy(), 1.0, 0.0, 1e-5)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var, rtol=1e-5)
    bn.eval()
    expect = (x.numpy() - 0.1 * mean) / np.sqrt(0.9 + 0.1 * var + 1e-5)
    np.testing.assert_allclose(bn(x).numpy(), expect, rtol=1e-5, atol=1e-5)
