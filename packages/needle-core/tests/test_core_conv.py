"""Convolution, im2col/col2im and pooling ops against numpy loops and finite differences."""
import numpy as np
import pytest

import needle as ndl
from needle.ops import ops_conv
from needle.testing.gradcheck import gradcheck

NUMPY = ndl.cpu_numpy()


def _devices():
    devs = [NUMPY]
    for make in (ndl.cpu, ndl.cuda):
        dev = make()
        if dev.enabled() and dev not in devs:
            devs.append(dev)
    return devs


DEVICES = pytest.mark.parametrize("dev", _devices(), ids=lambda d: d.name)


def conv_loop(x, w, stride, padding):
    """Reference: a direct loop over output pixels (NHWC input, (K, K, Cin, Cout) weight)."""
    sh, sw = (stride, stride) if np.isscalar(stride) else stride
    ph, pw = (padding, padding) if np.isscalar(padding) else padding
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0)))
    n, h, wd, _ = xp.shape
    kh, kw, _, c_out = w.shape
    ho, wo = (h - kh) // sh + 1, (wd - kw) // sw + 1
    out = np.zeros((n, ho, wo, c_out))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, i * sh:i * sh + kh, j * sw:j * sw + kw, :]
            out[:, i, j, :] = np.einsum("nabc,abcd->nd", patch, w)
    return out


def pool_loop(x, k, s, p, reduce, fill):
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)), constant_values=fill)
    n, h, w, c = xp.shape
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    out = np.zeros((n, ho, wo, c))
    for i in range(ho):
        for j in range(wo):
            out[:, i, j, :] = reduce(xp[:, i * s:i * s + k, j * s:j * s + k, :], axis=(1, 2))
    return out


CONV_CASES = [
    # (N, H, W, Cin, Cout, K, stride, padding)
    (2, 5, 5, 3, 4, 3, 1, 1),
    (1, 7, 6, 2, 3, 3, 2, 1),
    (2, 8, 8, 3, 2, 3, 2, 0),
    (1, 6, 7, 2, 2, 5, 3, 2),
    (2, 4, 4, 3, 5, 1, 1, 0),
    (1, 5, 5, 2, 2, 1, 2, 1),   # padding larger than kernel - 1
    (1, 9, 9, 1, 1, 4, 2, 3),   # even kernel, large padding
]


@DEVICES
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_forward_matches_loop(dev, case):
    n, h, w, c_in, c_out, k, s, p = case
    rng = np.random.default_rng(0)
    x, wt = rng.standard_normal((n, h, w, c_in)), rng.standard_normal((k, k, c_in, c_out))
    dtype = "float64" if "float64" in dev.dtypes else "float32"
    y = ndl.conv(ndl.Tensor(x, device=dev, dtype=dtype), ndl.Tensor(wt, device=dev, dtype=dtype), stride=s, padding=p)
    tol = 1e-10 if dtype == "float64" else 1e-4
    assert y.dtype == dtype and y.device == dev
    np.testing.assert_allclose(y.numpy(), conv_loop(x, wt, s, p), rtol=tol, atol=tol)


def test_conv_rectangular_stride_and_padding_pairs():
    rng = np.random.default_rng(1)
    x, wt = rng.standard_normal((2, 7, 6, 2)), rng.standard_normal((3, 3, 2, 3))
    y = ndl.conv(ndl.Tensor(x, device=NUMPY), ndl.Tensor(wt, device=NUMPY), stride=(2, 1), padding=(0, 2))
    np.testing.assert_allclose(y.numpy(), conv_loop(x, wt, (2, 1), (0, 2)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_gradient_finite_differences(case):
    n, h, w, c_in, c_out, k, s, p = case
    rng = np.random.default_rng(2)
    x = ndl.Tensor(rng.standard_normal((n, h, w, c_in)), device=NUMPY)
    wt = ndl.Tensor(rng.standard_normal((k, k, c_in, c_out)), device=NUMPY)
    gradcheck(lambda a, b: ndl.conv(a, b, stride=s, padding=p), x, wt)


def test_conv_gradient_rectangular_pairs():
    rng = np.random.default_rng(3)
    x = ndl.Tensor(rng.standard_normal((1, 7, 5, 2)), device=NUMPY)
    wt = ndl.Tensor(rng.standard_normal((3, 3, 2, 2)), device=NUMPY)
    gradcheck(lambda a, b: ndl.conv(a, b, stride=(2, 3), padding=(1, 0)), x, wt)


def test_conv_second_derivative():
    # The gradient is a graph of ops: differentiate d(sum(conv(x, w)^2))/dx again.
    rng = np.random.default_rng(4)
    x = ndl.Tensor(rng.standard_normal((1, 5, 5, 2)), device=NUMPY)
    wt = ndl.Tensor(rng.standard_normal((3, 3, 2, 2)), device=NUMPY)

    def grad_x(a, b):
        y = ndl.conv(a, b, stride=2, padding=1)
        (y * y).sum().backward()
        return a.grad

    gradcheck(grad_x, x, wt)


@pytest.mark.parametrize("dev", [d for d in _devices() if d != NUMPY] or [pytest.param(None, marks=pytest.mark.skip(
    reason="no native backend enabled"))], ids=lambda d: getattr(d, "name", "none"))
def test_conv_gradient_native_matches_numpy(dev):
    rng = np.random.default_rng(5)
    x, wt = rng.standard_normal((2, 6, 6, 3)), rng.standard_normal((3, 3, 3, 4))
    upstream = rng.standard_normal((2, 3, 3, 4))
    grads = []
    for d, dtype in ((NUMPY, "float64"), (dev, "float32")):
        a, b = ndl.Tensor(x, device=d, dtype=dtype), ndl.Tensor(wt, device=d, dtype=dtype)
        ndl.conv(a, b, stride=2, padding=1).backward(ndl.Tensor(upstream, device=d, dtype=dtype))
        grads.append((a.grad.numpy(), b.grad.numpy()))
    for ref, got in zip(grads[0], grads[1]):
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_conv_uses_native_kernel_when_advertised(monkeypatch):
    calls = []

    def fake_kernel(a, b, out, n, h, w, c_in, c_out, kh, kw, sh, sw):
        # A reference kernel written directly against the protocol's flat buffers.
        calls.append((n, h, w, c_in, c_out, kh, kw, sh, sw))
        xa = a.array.reshape(n, h, w, c_in)
        wa = b.array.reshape(kh, kw, c_in, c_out)
        out.array[:] = conv_loop(xa, wa, (sh, sw), 0).reshape(-1)

    monkeypatch.setitem(NUMPY._kernels, ops_conv.CONV_KERNEL, fake_kernel)
    monkeypatch.setitem(NUMPY.__dict__, "_fused_dtypes", ("float32", "float64"))  # FUSED_DTYPES
    rng = np.random.default_rng(6)
    x, wt = rng.standard_normal((1, 5, 4, 2)), rng.standard_normal((3, 3, 2, 3))
    y = ndl.conv(ndl.Tensor(x, device=NUMPY), ndl.Tensor(wt, device=NUMPY), stride=1, padding=1)
    assert calls == [(1, 7, 6, 2, 3, 3, 3, 1, 1)]  # the kernel gets the padded input
    np.testing.assert_allclose(y.numpy(), conv_loop(x, wt, 1, 1), rtol=1e-10)


@DEVICES
def test_im2col_matches_sliding_windows_and_col2im_is_its_adjoint(dev):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 6, 5, 3))
    dtype = "float64" if "float64" in dev.dtypes else "float32"
    for k, s in ((3, 1), (2, 2), (3, 2)):
        cols = ndl.im2col(ndl.Tensor(x, device=dev, dtype=dtype), k, s).numpy()
        win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))[:, ::s, ::s]  # (N,Ho,Wo,C,k,k)
        np.testing.assert_allclose(cols, win.transpose(0, 1, 2, 4, 5, 3), rtol=1e-6)
        y = rng.standard_normal(cols.shape)
        back = ndl.col2im(ndl.Tensor(y, device=dev, dtype=dtype), x.shape, s).numpy()
        # <im2col(x), y> == <x, col2im(y)>
        np.testing.assert_allclose((cols * y).sum(), (x * back).sum(), rtol=1e-5)


def test_im2col_col2im_gradients():
    rng = np.random.default_rng(8)
    x = ndl.Tensor(rng.standard_normal((1, 5, 4, 2)), device=NUMPY)
    gradcheck(lambda a: ndl.im2col(a, 3, 1), x)
    cols = ndl.Tensor(rng.standard_normal((1, 2, 2, 2, 2, 2)), device=NUMPY)
    gradcheck(lambda c: ndl.col2im(c, (1, 4, 4, 2), 2), cols)


@DEVICES
@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 1, 1), (3, 2, 1), (2, 1, 0)])
def test_pooling_forward_matches_loop(dev, k, s, p):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 6, 5, 3))
    dtype = "float64" if "float64" in dev.dtypes else "float32"
    t = ndl.Tensor(x, device=dev, dtype=dtype)
    tol = 1e-10 if dtype == "float64" else 1e-5
    np.testing.assert_allclose(ndl.max_pool2d(t, k, s, p).numpy(), pool_loop(x, k, s, p, np.max, -np.inf),
                               rtol=tol, atol=tol)
    np.testing.assert_allclose(ndl.avg_pool2d(t, k, s, p).numpy(), pool_loop(x, k, s, p, np.mean, 0.0),
                               rtol=tol, atol=tol)


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (2, 1, 0)])
def test_pooling_gradients(k, s, p):
    rng = np.random.default_rng(10)
    # Distinct values, well separated, so finite differences never cross a tie in max.
    x = ndl.Tensor(rng.permutation(2 * 5 * 5 * 2).reshape(2, 5, 5, 2) * 0.1, device=NUMPY, dtype="float64")
    gradcheck(lambda a: ndl.max_pool2d(a, k, s, p), x, eps=1e-4)
    gradcheck(lambda a: ndl.avg_pool2d(a, k, s, p), x)


def test_max_pool_ties_share_gradient():
    x = ndl.Tensor(np.ones((1, 2, 2, 1)), device=NUMPY)
    ndl.max_pool2d(x, 2).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), np.full((1, 2, 2, 1), 0.25))


def test_pool_stride_defaults_to_kernel():
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    y = ndl.max_pool2d(ndl.Tensor(x, device=NUMPY), 2)
    np.testing.assert_array_equal(y.numpy().reshape(2, 2), [[5, 7], [13, 15]])


def test_conv_errors_name_the_argument():
    x = ndl.Tensor(np.zeros((1, 4, 4, 3)), device=NUMPY)
    with pytest.raises(ValueError, match="channels"):
        ndl.conv(x, ndl.Tensor(np.zeros((3, 3, 2, 1)), device=NUMPY))
    with pytest.raises(ValueError, match="NHWC"):
        ndl.conv(ndl.Tensor(np.zeros((4, 4, 3)), device=NUMPY), ndl.Tensor(np.zeros((3, 3, 3, 1)), device=NUMPY))
    with pytest.raises(ValueError, match="stride"):
        ndl.conv(x, ndl.Tensor(np.zeros((3, 3, 3, 1)), device=NUMPY), stride=0)
    with pytest.raises(TypeError, match="padding"):
        ndl.conv(x, ndl.Tensor(np.zeros((3, 3, 3, 1)), device=NUMPY), padding=1.5)
    with pytest.raises(ValueError, match="kernel"):
        ndl.conv(x, ndl.Tensor(np.zeros((7, 7, 3, 1)), device=NUMPY), padding=1)
    with pytest.raises(ValueError, match="padding"):
        ndl.max_pool2d(x, 2, padding=2)


def test_conv_promotes_a_float32_float64_mix_as_other_binary_ops_do():
    rng = np.random.default_rng(3)
    x, wt = rng.standard_normal((1, 5, 5, 2)), rng.standard_normal((3, 3, 2, 4))
    a = ndl.Tensor(x, device=NUMPY, dtype="float64")
    b = ndl.Tensor(wt, device=NUMPY, dtype="float32")
    y = ndl.conv(a, b, stride=1, padding=1)
    assert y.dtype == "float64"
    np.testing.assert_allclose(y.numpy(), conv_loop(x, wt.astype(np.float32), 1, 1), rtol=1e-6, atol=1e-6)
    y.sum().backward()
    assert a.grad.dtype == "float64" and b.grad.dtype == "float32"  # each gradient keeps its input's dtype


def conv_grad_loop(x, w, upstream, stride, padding):
    """Reference gradients (x, w, bias) of sum(conv(x, w) + bias) * upstream): loops over output pixels."""
    s, p = stride, padding
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    kh, kw = w.shape[:2]
    gxp, gw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(upstream.shape[1]):
        for j in range(upstream.shape[2]):
            u = upstream[:, i, j, :]
            gw += np.einsum("nabc,nd->abcd", xp[:, i * s:i * s + kh, j * s:j * s + kw, :], u)
            gxp[:, i * s:i * s + kh, j * s:j * s + kw, :] += np.einsum("abcd,nd->nabc", w, u)
    return gxp[:, p:p + x.shape[1], p:p + x.shape[2], :], gw, upstream.sum(axis=(0, 1, 2))


@DEVICES
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
@pytest.mark.parametrize("with_bias", [False, True])
def test_conv_gradient_without_graph_matches_loop(dev, case, with_bias):
    # backward(create_graph=False) computes the conv's gradients on arrays (no graph ops): same values.
    n, h, w, c_in, c_out, k, s, p = case
    rng = np.random.default_rng(6)
    x, wt = rng.standard_normal((n, h, w, c_in)), rng.standard_normal((k, k, c_in, c_out))
    b = rng.standard_normal(c_out)
    dtype = "float64" if "float64" in dev.dtypes else "float32"
    a, bw = ndl.Tensor(x, device=dev, dtype=dtype), ndl.Tensor(wt, device=dev, dtype=dtype)
    bias = ndl.Tensor(b, device=dev, dtype=dtype)
    y = ndl.conv(a, bw, stride=s, padding=p, bias=bias if with_bias else None)
    # An upstream gradient that is a permuted (non-compact) view, as behind an NCHW module.
    upstream = rng.standard_normal(y.shape)
    up = ndl.ops.permute(ndl.Tensor(upstream.transpose(0, 3, 1, 2), device=dev, dtype=dtype), (0, 2, 3, 1))
    y.backward(up, create_graph=False)
    tol = 1e-9 if dtype == "float64" else 2e-4
    want = conv_grad_loop(x, wt, upstream, s, p)
    np.testing.assert_allclose(y.numpy(), conv_loop(x, wt, s, p) + (b if with_bias else 0), rtol=tol, atol=tol)
    np.testing.assert_allclose(a.grad.numpy(), want[0], rtol=tol, atol=tol)
    np.testing.assert_allclose(bw.grad.numpy(), want[1], rtol=tol, atol=tol)
    if with_bias:
        np.testing.assert_allclose(bias.grad.numpy(), want[2], rtol=tol, atol=tol)
    else:
        assert bias.grad is None


def test_conv_bias_gradient_with_graph_and_second_derivative():
    rng = np.random.default_rng(7)
    x = ndl.Tensor(rng.standard_normal((1, 5, 5, 2)), device=NUMPY)
    wt = ndl.Tensor(rng.standard_normal((3, 3, 2, 3)), device=NUMPY)
    b = ndl.Tensor(rng.standard_normal(3), device=NUMPY)
    gradcheck(lambda a, w, c: ndl.conv(a, w, stride=2, padding=1, bias=c), x, wt, b)

    def grad_w(a, w, c):
        y = ndl.conv(a, w, stride=1, padding=1, bias=c)
        (y * y).sum().backward()
        return w.grad

    gradcheck(grad_w, x, wt, b)


def test_conv_bias_errors():
    x = ndl.Tensor(np.zeros((1, 4, 4, 2)), device=NUMPY, dtype="float32")
    w = ndl.Tensor(np.zeros((3, 3, 2, 3)), device=NUMPY, dtype="float32")
    for bad in (ndl.Tensor(np.zeros(2), device=NUMPY), ndl.Tensor(np.zeros((1, 3)), device=NUMPY),
                ndl.Tensor(np.zeros(3), device=NUMPY, dtype="float64"), np.zeros(3)):
        with pytest.raises(ValueError, match="bias"):
            ndl.conv(x, w, bias=bad)
