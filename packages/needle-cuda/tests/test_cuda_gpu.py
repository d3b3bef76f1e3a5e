"""GPU tests of needle-cuda: every kernel runs on a CUDA device and is compared with numpy.

Float kernels at awkward sizes, accuracy bounds, matmul, transfers and devices are here; every
protocol-2 kernel on every dtype is in test_cuda_kernels.py (its "gpu" parameter).

Without CuPy or a GPU every test here is SKIPPED with the reason from
``needle_cuda.unavailable_reason()`` (shown by ``pytest -rs``); none of them is emulated on
the CPU. The backend-independent conformance suite (``pytest --pyargs needle.testing`` with
``NEEDLE_TEST_BACKENDS=cuda``) runs on top of these in ``nox -s "tests(backend='cuda')"``.
"""
import numpy as np
import pytest

import needle
from needle.backend_ndarray import NDArray
from needle_cuda import _backend, _kernels

REASON = _backend.unavailable_reason()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(REASON is not None, reason=f"needs a CUDA GPU: {REASON}")]

DTYPES = ("float32", "float64")
SIZES = (0, 1, 7, 1000, 2**20 + 3)  # 2**20 + 3: many blocks and a ragged last one


def _tol(dtype):
    return dict(rtol=2e-6, atol=1e-6) if dtype == "float32" else dict(rtol=1e-13, atol=1e-13)


def _up(x, dtype):
    x = np.ascontiguousarray(x, dtype=dtype)
    buf = _backend.Array(x.size, dtype)
    _backend.from_numpy(x, buf)
    return buf


def _down(buf):
    return _backend.to_numpy(buf, (buf.size,), (1,), 0)


def _data(n, dtype, seed, low=-3.0, high=3.0):
    return np.random.default_rng(seed).uniform(low, high, n).astype(dtype)


def _assert_within_rounding_bound(got, exact, magnitude, n, dtype):
    """|got - exact| <= gamma_n * magnitude: the classic bound for a sum of n rounded terms.

    ``magnitude`` is sum |terms| (|a| @ |b| for a matmul), ``gamma_n = n u / (1 - n u)`` with u
    the unit roundoff; it holds for any summation order and with FMA. For float64 the float64
    oracle may err by as much again, so the bound is doubled there.
    """
    u = 2.0**-24 if dtype == "float32" else 2.0**-53
    gamma = (n + 1) * u / (1 - (n + 1) * u)
    bound = gamma * np.asarray(magnitude) * (2 if dtype == "float64" else 1)
    err = np.abs(np.asarray(got, np.float64) - exact)
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.size else None
    assert np.all(err <= bound), f"error {err[worst]} exceeds the bound {bound[worst]} at {worst}"


@pytest.fixture(autouse=True)
def _cublas_by_default():
    previous = _backend.set_matmul_impl("cublas")
    yield
    _backend.set_matmul_impl(previous)


# ---- buffers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_roundtrip_and_fill(dtype, n):
    x = _data(n, dtype, 1)
    buf = _up(x, dtype)
    assert (buf.size, buf.dtype) == (n, dtype)
    np.testing.assert_array_equal(_down(buf), x)
    _backend.fill(buf, -1.25)
    np.testing.assert_array_equal(_down(buf), np.full(n, -1.25, dtype))


VIEWS = [  # (shape, strides, offset) over a buffer of 120 elements
    ((4, 5), (5, 1), 0), ((5, 4), (1, 5), 0), ((3, 4), (20, 3), 7), ((4, 6), (0, 1), 3),
    ((6,), (-7, ), 60), ((2, 3, 4), (-40, 9, -2), 100), ((0, 4), (4, 1), 0), ((), (), 11),
    ((2, 1, 3, 2), (50, 1, 13, -1), 4),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,strides,offset", VIEWS, ids=[str(v) for v in VIEWS])
def test_strided_compact_setitem_against_numpy(dtype, shape, strides, offset):
    base = _data(120, dtype, 2)
    view = np.lib.stride_tricks.as_strided(base[offset:], shape, [s * base.itemsize for s in strides])
    buf = _up(base, dtype)
    np.testing.assert_array_equal(_backend.to_numpy(buf, shape, strides, offset), view)
    out = _backend.Array(view.size, dtype)
    _backend.compact(buf, out, shape, strides, offset)
    np.testing.assert_array_equal(_down(out), view.reshape(-1))
    if 0 in strides:
        return  # a broadcast view is not a write target
    values = _data(view.size, dtype, 3)
    expected = base.copy()
    np.lib.stride_tricks.as_strided(expected[offset:], shape, [s * base.itemsize for s in strides])[...] = \
        values.reshape(shape)
    _backend.ewise_setitem(_up(values, dtype), buf, shape, strides, offset)
    np.testing.assert_array_equal(_down(buf), expected)
    np.lib.stride_tricks.as_strided(expected[offset:], shape, [s * base.itemsize for s in strides])[...] = 4.5
    _backend.scalar_setitem(view.size, 4.5, buf, shape, strides, offset)
    np.testing.assert_array_equal(_down(buf), expected)


def test_setitem_of_a_buffer_into_a_reversed_view_of_itself():
    x = np.arange(1000, dtype=np.float32)
    buf = _up(x, "float32")
    _backend.ewise_setitem(buf, buf, (1000,), (-1,), 999)  # reverse in place: must not race
    np.testing.assert_array_equal(_down(buf), x[::-1])


def test_out_of_bounds_view_is_refused_before_launch():
    buf = _up(np.zeros(10), "float32")
    with pytest.raises(ValueError, match=r"compact: shape \(3, 4\), strides \(4, 1\), offset 0 reach elements 0\.\.11"):
        _backend.compact(buf, _backend.Array(12), (3, 4), (4, 1), 0)


# ---- elementwise and reductions -------------------------------------------------------------
BINARY = {"ewise_add": np.add, "ewise_sub": np.subtract, "ewise_mul": np.multiply, "ewise_div": np.divide,
          "ewise_maximum": np.maximum, "ewise_power": np.power,
          "ewise_minimum": np.minimum, "ewise_eq": np.equal, "ewise_ge": np.greater_equal, "ewise_ne": np.not_equal,
          "ewise_lt": np.less, "ewise_le": np.less_equal, "ewise_gt": np.greater}
SCALAR = {"scalar_add": np.add, "scalar_mul": np.multiply, "scalar_div": np.divide, "scalar_power": np.power,
          "scalar_maximum": np.maximum, "scalar_rsub": lambda a, v: v - a, "scalar_rdiv": lambda a, v: v / a,
          "scalar_minimum": np.minimum, "scalar_eq": np.equal, "scalar_ge": np.greater_equal, "scalar_ne": np.not_equal,
          "scalar_lt": np.less, "scalar_le": np.less_equal, "scalar_gt": np.greater}
UNARY = {"ewise_log": np.log, "ewise_exp": np.exp, "ewise_tanh": np.tanh, "ewise_neg": np.negative,
         "ewise_sqrt": np.sqrt, "ewise_relu": lambda a: np.maximum(a, 0), "ewise_abs": np.abs,
         "ewise_sigmoid": lambda a: 1 / (1 + np.exp(-a.astype(np.float64)))}
POSITIVE = {"ewise_power", "scalar_power", "ewise_log", "ewise_sqrt", "scalar_rdiv", "ewise_div"}
COMPARISONS = {f"{kind}_{op}" for kind in ("ewise", "scalar") for op in ("eq", "ne", "lt", "le", "gt", "ge")}


def _out_dtype(name, dtype):
    return "bool" if name in COMPARISONS else dtype  # protocol 2: comparisons write bool


def _check(got, expected, dtype):
    if got.dtype == bool:
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_kernels(name, n, dtype):
    low = 0.5 if name in POSITIVE else -3.0
    a, b = _data(n, dtype, 4, low), _data(n, dtype, 5, low)
    if n > 2:
        b[::3] = a[::3]  # ties, so eq/ge see both outcomes
    out = _backend.Array(n, _out_dtype(name, dtype))
    getattr(_backend, name)(_up(a, dtype), _up(b, dtype), out)
    _check(_down(out), BINARY[name](a, b), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", sorted(SCALAR))
def test_scalar_kernels(name, n, dtype):
    a = _data(n, dtype, 6, 0.5 if name in POSITIVE else -3.0)
    value = 1.5
    if n > 2:
        a[::4] = value
    out = _backend.Array(n, _out_dtype(name, dtype))
    getattr(_backend, name)(_up(a, dtype), value, out)
    expected = SCALAR[name](a, a.dtype.type(value))
    assert _down(out).dtype == np.dtype(_out_dtype(name, dtype))  # a Python float never promotes float32
    _check(_down(out), expected, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_kernels(name, n, dtype):
    a = _data(n, dtype, 7, 0.5 if name in POSITIVE else -3.0)
    out = _backend.Array(n, dtype)
    getattr(_backend, name)(_up(a, dtype), out)
    np.testing.assert_allclose(_down(out), UNARY[name](a), **_tol(dtype))


def test_sigmoid_is_finite_far_out_in_float32():
    a = np.array([-100.0, -30.0, 0.0, 30.0, 100.0], np.float32)
    out = _backend.Array(5)
    _backend.ewise_sigmoid(_up(a, "float32"), out)
    got = _down(out)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-a.astype(np.float64))), atol=1e-7)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("groups,size", [(1, 1), (3, 7), (0, 5), (5, 0), (1000, 1), (7, 100003), (4096, 33)])
def test_reductions(groups, size, dtype):
    a = _data(groups * size, dtype, 8)
    out = _backend.Array(groups, dtype)
    _backend.reduce_sum(_up(a, dtype), out, size)
    a2 = a.reshape(groups, size).astype(np.float64)
    _assert_within_rounding_bound(_down(out), a2.sum(axis=1), np.abs(a2).sum(axis=1), size, dtype)
    if size:
        _backend.reduce_max(_up(a, dtype), out, size)
        np.testing.assert_array_equal(_down(out), a.reshape(groups, size).max(axis=1))


# ---- matmul ---------------------------------------------------------------------------------------
SHAPES = [(1, 1, 1), (0, 3, 4), (3, 0, 4), (2, 5, 0), (17, 33, 9), (16, 16, 16), (128, 256, 64),
          (513, 257, 129), (1024, 1024, 1024)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", ["cublas", "tiled"])
@pytest.mark.parametrize("m,n,p", SHAPES)
def test_matmul(m, n, p, impl, dtype):
    a, b = _data(m * n, dtype, 9).reshape(m, n), _data(n * p, dtype, 10).reshape(n, p)
    out = _backend.Array(m * p, dtype)
    _backend.fill(out, np.nan)  # must be overwritten, never accumulated into
    with _backend.matmul_impl(impl):
        _backend.matmul(_up(a, dtype), _up(b, dtype), out, m, n, p)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    _assert_within_rounding_bound(_down(out).reshape(m, p), a64 @ b64, np.abs(a64) @ np.abs(b64), n, dtype)


@pytest.mark.parametrize("impl", ["cublas", "tiled"])
@pytest.mark.parametrize("batch,m,n,p", [(1, 3, 4, 5), (5, 17, 9, 33), (0, 2, 2, 2), (64, 32, 16, 8)])
def test_matmul_batched(batch, m, n, p, impl):
    a = _data(batch * m * n, "float32", 11).reshape(batch, m, n)
    b = _data(batch * n * p, "float32", 12).reshape(batch, n, p)
    out = _backend.Array(batch * m * p)
    with _backend.matmul_impl(impl):
        _backend.matmul_batched(_up(a, "float32"), _up(b, "float32"), out, batch, m, n, p)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    _assert_within_rounding_bound(_down(out).reshape(batch, m, p), a64 @ b64, np.abs(a64) @ np.abs(b64), n,
                                  "float32")


def test_tiled_kernel_split_into_several_launches(monkeypatch):
    # A grid limit of 2 forces the row-block and batch offsets of the kernel to be used.
    monkeypatch.setattr(_kernels, "MAX_GRID_YZ", 2)
    batch, m, n, p = 5, 70, 19, 21
    a = _data(batch * m * n, "float64", 13).reshape(batch, m, n)
    b = _data(batch * n * p, "float64", 14).reshape(batch, n, p)
    out = _backend.Array(batch * m * p, "float64")
    _backend.matmul_batched_tiled(_up(a, "float64"), _up(b, "float64"), out, batch, m, n, p)
    _assert_within_rounding_bound(_down(out).reshape(batch, m, p), a @ b, np.abs(a) @ np.abs(b), n, "float64")


# ---- compilation cache, transfers, devices --------------------------------------------------------
def test_kernels_are_created_once_and_reused():
    a = _up(np.zeros(10), "float32")
    out = _backend.Array(10)
    _backend.ewise_sigmoid(a, out)
    first = _kernels.elementwise("needle_ewise_sigmoid")
    for _ in range(3):
        _backend.ewise_sigmoid(a, out)
    assert _kernels.elementwise("needle_ewise_sigmoid") is first
    assert _kernels.cached_kernels().count("needle_ewise_sigmoid") == 1
    np.testing.assert_array_equal(_down(out), np.full(10, 0.5, np.float32))


def test_kernels_make_no_host_transfers():
    a, b = _up(_data(4096, "float32", 15, 0.5), "float32"), _up(_data(4096, "float32", 16, 0.5), "float32")
    out, mask = _backend.Array(4096), _backend.Array(4096, "bool")
    _backend.reset_transfer_stats()
    for name in sorted(BINARY):
        getattr(_backend, name)(a, b, mask if name in COMPARISONS else out)
    for name in sorted(SCALAR):
        getattr(_backend, name)(a, 2.0, mask if name in COMPARISONS else out)
    for name in sorted(UNARY):
        getattr(_backend, name)(a, out)
    _backend.compact(a, out, (64, 64), (1, 64), 0)
    _backend.scalar_setitem(2048, 1.0, out, (32, 64), (128, 1), 0)
    _backend.ewise_setitem(a, out, (64, 64), (1, 64), 0)
    _backend.reduce_sum(a, _backend.Array(64), 64)
    _backend.reduce_max(a, _backend.Array(64), 64)
    for impl in ("cublas", "tiled"):
        with _backend.matmul_impl(impl):
            _backend.matmul(a, b, out, 64, 64, 64)
            _backend.matmul_batched(a, b, out, 4, 16, 64, 16)
    assert _backend.transfer_stats() == {"h2d": 0, "h2d_bytes": 0, "d2h": 0, "d2h_bytes": 0}
    _down(out)
    assert _backend.transfer_stats() == {"h2d": 0, "h2d_bytes": 0, "d2h": 1, "d2h_bytes": 4096 * 4}


def test_ndarray_ops_on_cuda_make_no_hidden_transfers():
    dev = needle.cuda()
    x_np, w_np = _data(64 * 32, "float32", 17).reshape(64, 32), _data(32 * 16, "float32", 18).reshape(32, 16)
    _backend.reset_transfer_stats()
    x, w = NDArray(x_np, device=dev), NDArray(w_np, device=dev)
    h = (x @ w).maximum(0.0)
    y = (h - h.max(axis=1, keepdims=True).broadcast_to(h.shape)).exp()
    z = (y / y.sum(axis=1, keepdims=True).broadcast_to(y.shape)).permute((1, 0))[::2, 1:]
    z[0, :] = 0.0
    assert _backend.transfer_stats()["h2d"] == 2 and _backend.transfer_stats()["d2h"] == 0
    got = z.numpy()
    assert _backend.transfer_stats()["d2h"] == 1
    hh = np.maximum(x_np.astype(np.float64) @ w_np, 0)
    yy = np.exp(hh - hh.max(axis=1, keepdims=True))
    zz = (yy / yy.sum(axis=1, keepdims=True)).T[::2, 1:]
    zz[0, :] = 0.0
    np.testing.assert_allclose(got, zz, rtol=1e-4, atol=1e-6)


def test_autograd_step_on_cuda_makes_no_hidden_transfers():
    dev = needle.cuda()
    x = needle.Tensor(_data(32 * 8, "float32", 19).reshape(32, 8), device=dev, requires_grad=False)
    w = needle.Tensor(_data(8 * 4, "float32", 20).reshape(8, 4), device=dev, requires_grad=True)
    _backend.reset_transfer_stats()
    for _ in range(3):
        loss = needle.ops.summation(needle.ops.relu(x @ w) ** 2) / 32.0
        loss.backward()
        w = needle.Tensor(w.data - w.grad.data * 0.01, device=dev, requires_grad=True)
    stats = _backend.transfer_stats()
    assert stats["d2h"] == 0, f"a forward/backward/update made host round trips: {stats}"


@pytest.mark.parametrize("create_graph", [True, False])
def test_mlp_training_step_reads_back_one_scalar(create_graph):
    # The labels stay on the device (one_hot compares them with a class row there); the one
    # read-back per step is the scalar that checks every label is a class index.
    nn, optim = pytest.importorskip("needle.nn"), pytest.importorskip("needle.optim")
    dev = needle.cuda()
    np.random.seed(0)
    model = nn.Sequential(nn.Linear(64, 32, device=dev), nn.ReLU(), nn.Linear(32, 10, device=dev))
    opt = optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.SoftmaxLoss()
    xs = [needle.Tensor(np.random.randn(16, 64), device=dev, dtype="float32") for _ in range(3)]
    ys = [needle.Tensor(np.random.randint(0, 10, 16), device=dev, dtype="float32") for _ in range(3)]
    loss_fn(model(xs[0]), ys[0])  # builds the cached class row (one host->device copy, once)
    _backend.reset_transfer_stats()
    for x, y in zip(xs, ys):
        opt.reset_grad()
        loss_fn(model(x), y).backward(create_graph=create_graph)
        opt.step()
    stats = _backend.transfer_stats()
    assert stats["h2d"] == 0 and stats["d2h"] == len(xs), f"training steps copied more than the label checks: {stats}"


def test_second_device_when_present():
    if _backend.device_count() < 2:
        pytest.skip(f"only {_backend.device_count()} CUDA device(s) visible; cuda(1) needs two")
    dev1 = _backend.for_device(1)
    a = dev1.Array(100, "float32")
    assert a.device_id == 1
    dev1.from_numpy(np.arange(100, dtype=np.float32), a)
    out = dev1.Array(100, "float32")
    dev1.scalar_mul(a, 2.0, out)
    dev1.matmul(a, a, dev1.Array(100), 10, 10, 10)
    assert out.device_id == 1
    np.testing.assert_array_equal(dev1.to_numpy(out, (100,), (1,), 0), np.arange(100) * 2.0)
