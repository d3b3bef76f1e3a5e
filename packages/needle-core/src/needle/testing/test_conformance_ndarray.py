"""Conformance, level 2: NDArray on a backend against numpy.

Views must share the buffer (same ``_handle``); everything that computes must match numpy
on awkward shapes: empty, size 1, odd and prime sizes, non-compact views, broadcasting.
"""
import numpy as np
import pytest

from needle import backend_ndarray as nd


def _np(shape, dtype, seed=0, low=-2.0, high=2.0):
    return np.random.RandomState(seed).uniform(low, high, shape).astype(dtype)


def _nd(x, dev, dtype):
    return nd.NDArray(x, device=dev, dtype=dtype)


COMPARISONS = {"eq", "ge", "ne", "gt", "lt", "le"}


def _result_dtype(dev, dtype, name):
    """Comparisons give bool on a protocol-2 backend, a float mask of the operands' dtype on protocol 1."""
    return ("bool" if dev.protocol >= 2 else dtype) if name in COMPARISONS else dtype


def _close(got, expected, dtype, rtol=None, atol=None, out_dtype=None):
    assert isinstance(got, nd.NDArray)
    assert got.dtype == (out_dtype or dtype)
    assert got.shape == np.shape(expected), f"shape {got.shape} != {np.shape(expected)}"
    f32 = dtype == "float32"
    np.testing.assert_allclose(got.numpy(), np.asarray(expected, dtype=np.float64),
                               rtol=rtol or (1e-5 if f32 else 1e-12), atol=atol or (1e-6 if f32 else 1e-12))


def _course_index(idx, ndim):
    """The numpy equivalent of the course's NDArray indexing (ints keep their axis)."""
    idx = idx if isinstance(idx, tuple) else (idx,)
    return tuple(slice(i, i + 1 if i != -1 else None) if isinstance(i, int) else i for i in idx)


# ---- construction and metadata -----------------------------------------------------------------
@pytest.mark.parametrize("shape", [(), (0,), (1,), (7,), (3, 5), (2, 0, 3), (2, 3, 1, 5)])
def test_roundtrip_and_metadata(dev, dtype, shape):
    x = _np(shape, dtype)
    a = _nd(x, dev, dtype)
    assert a.shape == shape
    assert a.strides == nd.compact_strides(shape)
    assert a.offset == 0
    assert a.dtype == dtype
    assert a.device == dev
    assert a.ndim == len(shape)
    assert a.size == x.size
    assert a.is_compact()
    np.testing.assert_array_equal(a.numpy(), x)
    np.testing.assert_array_equal(np.asarray(a), x)


def test_float32_everywhere(dev):
    a = nd.array([[1.0, 2.0]], device=dev)
    assert a.dtype == "float32"
    assert nd.empty((2, 3), device=dev).dtype == "float32"
    _close(nd.full((2, 3), 1.5, device=dev), np.full((2, 3), 1.5), "float32")
    b = dev.full((4,), -2.0)
    _close(b, np.full(4, -2.0), "float32")


def test_float64_when_declared(dev):
    x = _np((3, 2), "float64")
    a = nd.NDArray(x, device=dev)
    if "float64" in dev.dtypes:
        assert a.dtype == "float64"
        np.testing.assert_array_equal(a.numpy(), x)
    else:
        assert a.dtype == "float32"
        with pytest.raises(TypeError, match="float64"):
            nd.NDArray(x, device=dev, dtype="float64")


def test_to_device_roundtrip(dev, dtype):
    x = _np((3, 4), dtype)
    a = _nd(x, dev, dtype)
    assert a.to(dev) is a
    host = a.to(nd.cpu_numpy())
    assert host.device == nd.cpu_numpy()
    back = host.to(dev)
    assert back.device == dev
    np.testing.assert_array_equal(back.numpy(), x)
    np.testing.assert_array_equal(a.permute((1, 0)).to(nd.cpu_numpy()).numpy(), x.T)


def test_astype(dev):
    x = _np((2, 3), "float32")
    a = _nd(x, dev, "float32")
    for dt in dev.dtypes:
        if dt in ("float32", "float64"):
            b = a.astype(dt)
            assert b.dtype == dt
            np.testing.assert_array_equal(b.numpy(), x.astype(dt))


# ---- views share memory --------------------------------------------------------------------------
def _shares(view, base):
    return view._handle is base._handle and view._handle.ptr() == base._handle.ptr()


def test_permute_is_a_view(dev, dtype):
    x = _np((2, 3, 5), dtype)
    a = _nd(x, dev, dtype)
    b = a.permute((2, 0, 1))
    assert _shares(b, a)
    assert b.shape == (5, 2, 3)
    assert not b.is_compact()
    np.testing.assert_array_equal(b.numpy(), x.transpose(2, 0, 1))
    c = b.compact()
    assert c.is_compact() and c._handle is not a._handle
    np.testing.assert_array_equal(c.numpy(), x.transpose(2, 0, 1))


@pytest.mark.parametrize("src,dst", [((3, 1), (3, 4)), ((1,), (5,)), ((4,), (2, 3, 4)), ((1, 1), (0, 6)),
                                     ((2, 1, 3), (2, 7, 3)), ((), (2, 2))])
def test_broadcast_to_is_a_view(dev, dtype, src, dst):
    x = _np(src, dtype)
    a = _nd(x, dev, dtype)
    b = a.broadcast_to(dst)
    assert _shares(b, a)
    np.testing.assert_array_equal(b.numpy(), np.broadcast_to(x, dst))
    np.testing.assert_array_equal(b.compact().numpy(), np.broadcast_to(x, dst))


def test_broadcast_to_bad_shape(dev):
    a = _nd(np.zeros((3, 2)), dev, "float32")
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(3, 3\)"):
        a.broadcast_to((3, 3))


def test_reshape(dev, dtype):
    x = _np((2, 3, 4), dtype)
    a = _nd(x, dev, dtype)
    b = a.reshape((4, 6))
    assert _shares(b, a)
    np.testing.assert_array_equal(b.numpy(), x.reshape(4, 6))
    np.testing.assert_array_equal(a.reshape((-1, 2)).numpy(), x.reshape(-1, 2))
    np.testing.assert_array_equal(a.reshape((24,)).numpy(), x.reshape(24))
    # a non-compact array is copied first, with numpy's (row-major) element order
    t = a.permute((2, 1, 0))
    np.testing.assert_array_equal(t.reshape((6, 4)).numpy(), x.transpose(2, 1, 0).reshape(6, 4))
    with pytest.raises(ValueError, match=r"\(2, 3, 4\).*\(5, 5\)"):
        a.reshape((5, 5))


SLICES = [
    (slice(None), slice(1, 4)),
    (slice(None, None, 2), slice(None, None, -1)),
    (slice(-1, -4, -1), slice(-2, None)),
    (1, slice(4, 0, -2)),
    (-1, -1),
    (slice(2, 2), slice(None)),
    (slice(None, None, -3),),
    (slice(5, 100), 0),
]


@pytest.mark.parametrize("idx", SLICES, ids=[str(s) for s in SLICES])
def test_getitem_views(dev, dtype, idx):
    x = _np((6, 5), dtype)
    a = _nd(x, dev, dtype)
    b = a[idx]
    assert b._handle is a._handle
    np.testing.assert_array_equal(b.numpy(), x[_course_index(idx, 2)])
    np.testing.assert_array_equal(b.compact().numpy(), x[_course_index(idx, 2)])


def test_getitem_of_view_of_view(dev, dtype):
    x = _np((7, 6, 5), dtype)
    a = _nd(x, dev, dtype)
    b = a.permute((1, 0, 2))[::-2, 1:6:2, ::3].flip((0, 2))
    assert b._handle is a._handle
    np.testing.assert_array_equal(b.numpy(), x.transpose(1, 0, 2)[::-2, 1:6:2, ::3][::-1, :, ::-1])


def test_getitem_out_of_range(dev):
    a = _nd(np.zeros((3, 2)), dev, "float32")
    with pytest.raises(IndexError, match="3"):
        a[3]
    with pytest.raises(IndexError):
        a[0, 0, 0]


@pytest.mark.parametrize("axes", [0, 1, (0, 2), (0, 1, 2), -1])
def test_flip_is_a_view(dev, dtype, axes):
    x = _np((3, 4, 5), dtype)
    a = _nd(x, dev, dtype)
    b = a.flip(axes)
    assert b._handle is a._handle
    np.testing.assert_array_equal(b.numpy(), np.flip(x, axes))
    np.testing.assert_array_equal(b.compact().numpy(), np.flip(x, axes))


def test_flip_empty_axis(dev, dtype):
    a = _nd(np.zeros((0, 3)), dev, dtype)
    assert a.flip(0).numpy().shape == (0, 3)


def test_as_strided(dev, dtype):
    x = _np((12,), dtype)
    a = _nd(x, dev, dtype)
    b = a.as_strided((5, 3), (2, 1))  # overlapping windows
    assert b._handle is a._handle
    np.testing.assert_array_equal(b.numpy(), np.lib.stride_tricks.sliding_window_view(x, 3)[::2])


def test_compact_of_offset_view(dev, dtype):
    x = _np((4, 6), dtype)
    a = _nd(x, dev, dtype)
    v = a[1:3, 2:5]
    assert not v.is_compact()
    c = v.compact()
    assert c.is_compact() and c.offset == 0 and c.size == c._handle.size
    np.testing.assert_array_equal(c.numpy(), x[1:3, 2:5])


def test_flat_writes_through(dev, dtype):
    x = _np((2, 3), dtype)
    a = _nd(x, dev, dtype)
    a.flat[4] += 1.0
    expected = x.copy()
    expected.reshape(-1)[4] += 1.0
    _close(a, expected, dtype)


# ---- setitem -------------------------------------------------------------------------------------
def test_setitem_ndarray_numpy_scalar(dev, dtype):
    x = _np((5, 6), dtype)
    a = _nd(x, dev, dtype)
    handle, expected = a._handle, x.copy()

    a[1:4:2, ::-2] = _nd(np.arange(6).reshape(2, 3), dev, dtype)
    expected[1:4:2, ::-2] = np.arange(6).reshape(2, 3)
    a[0] = np.full((1, 6), 7.0)
    expected[0:1] = 7.0
    a[-1, 1:5] = -1.5
    expected[-1, 1:5] = -1.5
    a[2:4, 0:1] = _nd(np.array([[3.0]]), dev, dtype)  # broadcast from (1, 1)
    expected[2:4, 0:1] = 3.0
    assert a._handle is handle
    np.testing.assert_array_equal(a.numpy(), expected)


def test_setitem_into_permuted_view(dev, dtype):
    x = _np((3, 4), dtype)
    a = _nd(x, dev, dtype)
    t = a.permute((1, 0))
    t[1:3, :] = _nd(np.ones((2, 3)) * 9, dev, dtype)
    expected = x.copy()
    expected.T[1:3, :] = 9
    np.testing.assert_array_equal(a.numpy(), expected)


def test_fill_view(dev, dtype):
    x = _np((4, 4), dtype)
    a = _nd(x, dev, dtype)
    a[::3, 1::2].fill(0.25)
    expected = x.copy()
    expected[::3, 1::2] = 0.25
    np.testing.assert_array_equal(a.numpy(), expected)


# ---- elementwise ---------------------------------------------------------------------------------
EWISE = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.divide),
    "pow": (lambda a, b: a ** b, np.power),
    "maximum": (lambda a, b: a.maximum(b), np.maximum),
    "eq": (lambda a, b: a == b, np.equal),
    "ge": (lambda a, b: a >= b, np.greater_equal),
    "ne": (lambda a, b: a != b, np.not_equal),
    "gt": (lambda a, b: a > b, np.greater),
    "lt": (lambda a, b: a < b, np.less),
    "le": (lambda a, b: a <= b, np.less_equal),
}
PAIRS = [((), ()), ((1,), (1,)), ((7,), (7,)), ((3, 5), (3, 5)), ((3, 1), (1, 4)), ((2, 3, 4), (4,)),
         ((0, 3), (1, 3)), ((5,), ())]


@pytest.mark.parametrize("shapes", PAIRS, ids=[str(p) for p in PAIRS])
@pytest.mark.parametrize("name", sorted(EWISE))
def test_ewise_binary(dev, dtype, name, shapes):
    op, ref = EWISE[name]
    positive = name == "pow"
    x = _np(shapes[0], dtype, 1, 0.5 if positive else -2.0)
    y = _np(shapes[1], dtype, 2, 0.5 if positive else -2.0)
    if x.shape == y.shape and x.size:
        y.reshape(-1)[::2] = x.reshape(-1)[::2]  # ties
    got = op(_nd(x, dev, dtype), _nd(y, dev, dtype))
    _close(got, ref(x.astype(np.float64), y.astype(np.float64)), dtype, out_dtype=_result_dtype(dev, dtype, name))


@pytest.mark.parametrize("name", sorted(EWISE))
def test_ewise_binary_non_compact(dev, dtype, name):
    op, ref = EWISE[name]
    low = 0.5 if name == "pow" else -2.0
    x, y = _np((4, 3), dtype, 3, low), _np((3, 4), dtype, 4, low)
    a = _nd(x, dev, dtype).permute((1, 0))
    b = _nd(y, dev, dtype)[:, ::-1]
    _close(op(a, b), ref(x.T.astype(np.float64), y[:, ::-1].astype(np.float64)), dtype,
           out_dtype=_result_dtype(dev, dtype, name))


SCALAR_OPS = {
    "a+s": (lambda a, s: a + s, lambda a, s: a + s),
    "s+a": (lambda a, s: s + a, lambda a, s: s + a),
    "a-s": (lambda a, s: a - s, lambda a, s: a - s),
    "s-a": (lambda a, s: s - a, lambda a, s: s - a),
    "a*s": (lambda a, s: a * s, lambda a, s: a * s),
    "s*a": (lambda a, s: s * a, lambda a, s: s * a),
    "a/s": (lambda a, s: a / s, lambda a, s: a / s),
    "s/a": (lambda a, s: s / a, lambda a, s: s / a),
    "a**s": (lambda a, s: a ** s, lambda a, s: a ** s),
    "max": (lambda a, s: a.maximum(s), np.maximum),
    "eq": (lambda a, s: a == s, np.equal),
    "ge": (lambda a, s: a >= s, np.greater_equal),
    "gt": (lambda a, s: a > s, np.greater),
    "lt": (lambda a, s: a < s, np.less),
    "-a": (lambda a, s: -a, lambda a, s: -a),
}


@pytest.mark.parametrize("shape", [(), (0,), (1,), (3, 7)])
@pytest.mark.parametrize("name", sorted(SCALAR_OPS))
def test_scalar_ops(dev, dtype, name, shape):
    op, ref = SCALAR_OPS[name]
    x = _np(shape, dtype, 5, 0.5, 3.0)
    if x.size:
        x.reshape(-1)[0] = 1.5
    view = _nd(x, dev, dtype)
    for s in (1.5, -2.0, 0.5):
        _close(op(view, s), ref(x.astype(np.float64), s), dtype, rtol=1e-5 if dtype == "float32" else 1e-12,
               out_dtype=_result_dtype(dev, dtype, name))


UNARY = {
    "log": (lambda a: a.log(), np.log, True),
    "exp": (lambda a: a.exp(), np.exp, False),
    "tanh": (lambda a: a.tanh(), np.tanh, False),
    "sqrt": (lambda a: a.sqrt(), np.sqrt, True),
    "relu": (lambda a: a.relu(), lambda a: np.maximum(a, 0), False),
    "sigmoid": (lambda a: a.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), False),
}


@pytest.mark.parametrize("shape", [(), (0, 2), (1,), (5, 3)])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(dev, dtype, name, shape):
    op, ref, positive = UNARY[name]
    x = _np(shape, dtype, 6, 0.1 if positive else -3.0, 3.0)
    a = _nd(x, dev, dtype)
    if len(shape) == 2:  # through a non-compact view
        a, x = a.permute((1, 0)), x.T
    _close(op(a), ref(x.astype(np.float64)), dtype)


def test_sigmoid_and_tanh_far_out(dev, dtype):
    x = np.array([-100.0, -30.0, 0.0, 30.0, 100.0])
    a = _nd(x, dev, dtype)
    for got, ref in ((a.sigmoid(), 1 / (1 + np.exp(-x))), (a.tanh(), np.tanh(x))):
        assert np.all(np.isfinite(got.numpy()))
        _close(got, ref, dtype, atol=1e-7)


# ---- matmul --------------------------------------------------------------------------------------
MATMULS = [((1, 1), (1, 1)), ((1, 5), (5, 1)), ((3, 2), (2, 7)), ((13, 11), (11, 17)), ((4, 0), (0, 3)),
           ((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((3, 4), (2, 4, 5)), ((2, 3, 4), (4, 1))]


@pytest.mark.parametrize("shapes", MATMULS, ids=[str(m) for m in MATMULS])
def test_matmul(dev, dtype, shapes):
    x, y = _np(shapes[0], dtype, 7), _np(shapes[1], dtype, 8)
    got = _nd(x, dev, dtype) @ _nd(y, dev, dtype)
    _close(got, x.astype(np.float64) @ y.astype(np.float64), dtype, rtol=1e-4 if dtype == "float32" else 1e-12,
           atol=1e-5 if dtype == "float32" else 1e-12)


def test_matmul_non_compact(dev, dtype):
    x, y = _np((5, 3), dtype, 9), _np((7, 5), dtype, 10)
    a = _nd(x, dev, dtype).permute((1, 0))
    b = _nd(y, dev, dtype).permute((1, 0))[:, ::2]
    _close(a @ b, x.T.astype(np.float64) @ y.T[:, ::2].astype(np.float64), dtype, rtol=1e-5, atol=1e-5)


def test_matmul_bad_shapes(dev):
    a, b = _nd(np.zeros((2, 3)), dev, "float32"), _nd(np.zeros((4, 5)), dev, "float32")
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        a @ b


# ---- reductions ----------------------------------------------------------------------------------
AXES = [None, 0, 1, 2, -1, (0, 2), (1, 2), (0, 1, 2), ()]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=[str(a) for a in AXES])
@pytest.mark.parametrize("name", ["sum", "max"])
def test_reductions(dev, dtype, name, axis, keepdims):
    x = _np((3, 5, 7), dtype, 11)
    x[0, 0, :3] = x[0, 0, 3]  # ties for max
    a = _nd(x, dev, dtype)
    if axis is not None and axis != () and not isinstance(axis, int):
        a, x = a.permute((2, 1, 0)).permute((2, 1, 0)), x  # same values, through a permuted view
    got = getattr(a, name)(axis, keepdims=keepdims)
    ref = getattr(np, name)(x.astype(np.float64), axis=axis, keepdims=keepdims)
    _close(got, ref, dtype, rtol=1e-5 if dtype == "float32" else 1e-12)


def test_reductions_of_views_and_edges(dev, dtype):
    x = _np((4, 6), dtype, 12)
    a = _nd(x, dev, dtype)[::-1, 1::2]
    _close(a.sum(0), x[::-1, 1::2].sum(0), dtype)
    _close(a.max(1, keepdims=True), x[::-1, 1::2].max(1, keepdims=True), dtype)
    _close(_nd(np.zeros((0, 3)), dev, dtype).sum(0), np.zeros(3), dtype)
    _close(_nd(np.zeros((3, 0)), dev, dtype).sum(1, keepdims=True), np.zeros((3, 1)), dtype)
    _close(_nd(np.array(2.5), dev, dtype).sum(), np.array(2.5), dtype)
    with pytest.raises(ValueError, match="zero-size"):
        _nd(np.zeros((0, 3)), dev, dtype).max(0)


def test_reduction_axis_out_of_range(dev):
    a = _nd(np.zeros((2, 3)), dev, "float32")
    with pytest.raises(ValueError, match=r"axis.*2 dimensions"):
        a.sum(2)
    with pytest.raises(ValueError, match=r"axis"):
        a.max((0, -3))


# ---- pad -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("pads", [((0, 0), (0, 0)), ((1, 2), (0, 3)), ((0, 1), (2, 0))])
def test_pad(dev, dtype, pads):
    x = _np((3, 4), dtype, 13)
    a = _nd(x, dev, dtype)
    _close(a.pad(pads), np.pad(x, pads), dtype)
    _close(a.permute((1, 0)).pad(pads), np.pad(x.T, pads), dtype)


def test_pad_bad_arg(dev):
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        _nd(np.zeros((3, 4)), dev, "float32").pad(((1, 1),))


# ---- mixing dtypes and devices -------------------------------------------------------------------
def test_mixed_float_dtypes_promote(dev):
    if "float64" not in dev.dtypes:
        pytest.skip("backend has one dtype")
    x, y = np.array([1.5, -2.25, 3.0]), np.array([0.1, 0.2, 0.3])
    a, b = _nd(x, dev, "float32"), _nd(y, dev, "float64")
    for out, want in ((a + b, x.astype(np.float32).astype(np.float64) + y), (b * a, y * x.astype(np.float32))):
        assert out.dtype == "float64"
        np.testing.assert_array_equal(out.numpy(), want)


def test_device_mismatch(dev):
    from needle.testing import backend_device
    other = nd.cpu_numpy() if dev != nd.cpu_numpy() else backend_device("reference")
    a, b = _nd(np.ones(3), dev, "float32"), _nd(np.ones(3), other, "float32")
    with pytest.raises(ValueError, match="different devices"):
        a + b
    with pytest.raises(ValueError, match="different devices"):
        _nd(np.ones((2, 2)), dev, "float32") @ _nd(np.ones((2, 2)), other, "float32")
