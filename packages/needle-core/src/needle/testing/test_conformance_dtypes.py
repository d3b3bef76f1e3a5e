"""Conformance, level 4: dtypes beyond float (API.md, "Dtypes") on every protocol-2 backend.

Integer and bool tensors, promotion in real ops, comparisons with numpy's NaN rules, logic,
``where``/``maximum``/``minimum``/``clip``/``abs`` with their gradients, ``argmax``/``argmin``,
reductions of integers, and integer and bool indexing with scatter-add gradients. numpy is the
oracle for values; gradients are checked against hand-derived values.
"""
import numpy as np
import pytest

import needle as ndl
from needle import ops

INTS = ("uint8", "int32", "int64")
ALL = ("bool",) + INTS + ("float32", "float64")


@pytest.fixture
def dev2(dev):
    """The backend's device when it speaks protocol 2 (integer and bool dtypes), else a skip."""
    if dev.protocol < 2:
        pytest.skip(f"backend {dev.backend_name!r} implements protocol 1 (floats only)")
    return dev


def _values(dtype, shape=(3, 4), seed=0):
    rng = np.random.RandomState(seed)
    if dtype == "bool":
        return rng.rand(*shape) < 0.5
    if dtype in INTS:
        return rng.randint(0, 9 if dtype == "uint8" else 20, shape).astype(dtype) - (0 if dtype == "uint8" else 7)
    return rng.uniform(-3, 3, shape).astype(dtype)


def _t(x, dev, dtype=None, requires_grad=None):
    return ndl.Tensor(x, device=dev, dtype=dtype, requires_grad=requires_grad)


def _supported(dev, *dtypes):
    missing = [d for d in dtypes if d not in dev.dtypes]
    if missing:
        pytest.skip(f"backend {dev.backend_name!r} lacks {', '.join(missing)}")


# ---- creation and requires_grad ------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL)
def test_round_trip_and_requires_grad(dev2, dtype):
    _supported(dev2, dtype)
    x = _values(dtype)
    t = _t(x, dev2)
    assert t.dtype == dtype and t.numpy().dtype == np.dtype(dtype)
    np.testing.assert_array_equal(t.numpy(), x)
    assert t.requires_grad == (dtype in ("float32", "float64"))
    if dtype not in ("float32", "float64"):
        with pytest.raises(TypeError, match=f"requires_grad=True needs a float dtype, got {dtype}"):
            _t(x, dev2, requires_grad=True)


def test_python_values_infer_numpy_dtypes(dev2):
    _supported(dev2, "int64", "bool", "uint8")
    assert _t(3, dev2).dtype == "int64" and _t([1, 2], dev2).dtype == "int64"
    assert _t(True, dev2).dtype == "bool" and _t([[True], [False]], dev2).dtype == "bool"
    assert _t(np.arange(3, dtype=np.uint8), dev2).dtype == "uint8"


@pytest.mark.parametrize("bad", [np.zeros(2, np.float16), np.array([1 + 2j]), None, np.array(["a"])])
def test_unsupported_values_are_refused(dev2, bad):
    with pytest.raises(TypeError, match="not supported|None|complex|cannot make"):
        _t(bad, dev2)


@pytest.mark.parametrize("src, dst", [("float32", "int32"), ("float64", "uint8"), ("int64", "float32"),
                                      ("bool", "float64"), ("int32", "bool"), ("float32", "float64")])
def test_astype_matches_numpy(dev2, src, dst):
    _supported(dev2, src, dst)
    x = _values(src)
    if dst == "uint8":
        x = np.abs(x)
    got = _t(x, dev2).astype(dst)
    assert got.dtype == dst
    np.testing.assert_array_equal(got.numpy(), x.astype(dst))


def test_gradient_flows_back_through_astype_between_floats(dev2):
    _supported(dev2, "float32", "float64")
    x = _t(np.array([1.5, -2.0], np.float32), dev2)
    y = (x.astype("float64") * 3.0).sum()
    y.backward()
    assert x.grad.dtype == "float32"
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


# ---- promotion in ops ----------------------------------------------------------------------------
@pytest.mark.parametrize("a", ALL)
@pytest.mark.parametrize("b", ALL)
def test_binary_ops_promote_like_pytorch(dev2, a, b):
    from needle._dtypes import promote
    _supported(dev2, a, b)
    x, y = _values(a, seed=1), _values(b, seed=2)
    want = promote(a, b)
    got = _t(x, dev2) * _t(y, dev2)
    assert got.dtype == want
    expected = (x.astype(want) & y.astype(want)) if want == "bool" else x.astype(want) * y.astype(want)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


def test_mixed_int_and_float_differentiate_with_respect_to_the_float(dev2, dtype):
    _supported(dev2, "int64")
    w = _t(np.array([0.5, -1.0, 2.0]), dev2, dtype=dtype)
    k = _t(np.array([3, -2, 5]), dev2)
    loss = (w * k + k).sum()
    assert loss.dtype == dtype and not k.requires_grad
    loss.backward()
    assert w.grad.dtype == dtype and k.grad is None
    np.testing.assert_array_equal(w.grad.numpy(), [3.0, -2.0, 5.0])


def test_integer_true_division_gives_float32(dev2):
    _supported(dev2, "int64", "float32")
    a, b = np.array([7, -7, 1]), np.array([2, 2, 3])
    got = _t(a, dev2) / _t(b, dev2)
    assert got.dtype == "float32"
    np.testing.assert_allclose(got.numpy(), a / b, rtol=1e-6)
    assert (_t(a, dev2) / 2).dtype == "float32"


def test_integer_arithmetic_wraps_and_keeps_its_dtype(dev2):
    _supported(dev2, "uint8", "int32")
    u = _t(np.array([250, 3], np.uint8), dev2)
    np.testing.assert_array_equal((u + 10).numpy(), np.array([250, 3], np.uint8) + np.uint8(10))
    assert (u + 10).dtype == "uint8" and (u * 2.5).dtype == "float32"
    big = _t(np.array([2**31 - 1], np.int32), dev2)
    np.testing.assert_array_equal((big + 1).numpy(), [-2**31])
    np.testing.assert_array_equal((_t(np.array([3, -2]), dev2) ** 2).numpy(), [9, 4])


def test_bool_arithmetic_is_logical(dev2):
    x, y = np.array([True, True, False, False]), np.array([True, False, True, False])
    np.testing.assert_array_equal((_t(x, dev2) + _t(y, dev2)).numpy(), x | y)
    np.testing.assert_array_equal((_t(x, dev2) * _t(y, dev2)).numpy(), x & y)
    assert (_t(x, dev2) + 1).dtype == "int64"
    with pytest.raises(TypeError, match="bool"):
        _t(x, dev2) - _t(y, dev2)


# ---- comparisons and logic -----------------------------------------------------------------------
COMPARE = {"==": (lambda a, b: a == b, np.equal), "!=": (lambda a, b: a != b, np.not_equal),
           "<": (lambda a, b: a < b, np.less), "<=": (lambda a, b: a <= b, np.less_equal),
           ">": (lambda a, b: a > b, np.greater), ">=": (lambda a, b: a >= b, np.greater_equal)}


@pytest.mark.parametrize("op", sorted(COMPARE))
def test_comparisons_give_bool_with_numpy_nan_rules(dev2, dtype, op):
    fn, ref = COMPARE[op]
    x = np.array([[1.0, np.nan, -2.0, 3.0], [np.nan, 0.0, 5.0, -np.inf]], dtype)
    y = np.array([1.0, 1.0, np.nan, 4.0], dtype)  # broadcast over the rows
    for got, want in ((fn(_t(x, dev2), _t(y, dev2)), ref(x, y)), (fn(_t(x, dev2), 1.0), ref(x, 1.0)),
                      (fn(_t(x, dev2), float("nan")), ref(x, np.nan))):
        assert got.dtype == "bool" and not got.requires_grad
        np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("dtype_", INTS)
@pytest.mark.parametrize("op", sorted(COMPARE))
def test_integer_comparisons(dev2, dtype_, op):
    _supported(dev2, dtype_)
    fn, ref = COMPARE[op]
    x, y = _values(dtype_, seed=3), _values(dtype_, seed=4)
    np.testing.assert_array_equal(fn(_t(x, dev2), _t(y, dev2)).numpy(), ref(x, y))
    np.testing.assert_array_equal(fn(_t(x, dev2), 4).numpy(), ref(x, 4))
    np.testing.assert_array_equal(fn(_t(x, dev2), 2.5).numpy(), ref(x, 2.5))


@pytest.mark.parametrize("dtype_", ("bool",) + INTS)
def test_logical_ops_match_numpy(dev2, dtype_):
    _supported(dev2, dtype_)
    x, y = _values(dtype_, seed=5), _values(dtype_, seed=6)
    a, b = _t(x, dev2), _t(y, dev2)
    np.testing.assert_array_equal((a & b).numpy(), x & y)
    np.testing.assert_array_equal((a | b).numpy(), x | y)
    np.testing.assert_array_equal((a ^ b).numpy(), x ^ y)
    np.testing.assert_array_equal((~a).numpy(), ~x)
    with pytest.raises(TypeError, match="integer or bool"):
        _t(np.ones(2), dev2) & _t(np.ones(2), dev2)


def test_float_mask_of_a_comparison_in_arithmetic(dev2, dtype):
    x = np.array([-1.0, 0.0, 2.0], dtype)
    got = _t(x, dev2) * (_t(x, dev2) > 0)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.numpy(), [0.0, 0.0, 2.0])


# ---- selection -----------------------------------------------------------------------------------
def test_where_values_and_gradients(dev2, dtype):
    cond = np.array([[True, False, True], [False, False, True]])
    a = _t(np.arange(6.0).reshape(2, 3), dev2, dtype=dtype)
    b = _t(np.array([10.0, 20.0, 30.0]), dev2, dtype=dtype)  # broadcast over rows
    out = ops.where(_t(cond, dev2), a, b)
    np.testing.assert_array_equal(out.numpy(), np.where(cond, np.arange(6.0).reshape(2, 3), [10, 20, 30]))
    (out * _t(np.array([[1.0, 2, 3], [4, 5, 6]]), dev2, dtype=dtype)).sum().backward()
    np.testing.assert_array_equal(a.grad.numpy(), [[1, 0, 3], [0, 0, 6]])
    np.testing.assert_array_equal(b.grad.numpy(), [4, 7, 0])  # column sums of the unpicked weights
    assert a.grad.dtype == dtype and b.grad.dtype == dtype
    scalar = ops.where(_t(cond, dev2), a, 0.0)
    np.testing.assert_array_equal(scalar.numpy(), np.where(cond, np.arange(6.0).reshape(2, 3), 0.0))


def test_maximum_minimum_share_ties_and_clip_abs_gradients(dev2, dtype):
    x = _t(np.array([1.0, 2.0, 3.0, -4.0]), dev2, dtype=dtype)
    y = _t(np.array([1.0, 5.0, 0.0, -4.0]), dev2, dtype=dtype)
    m = ops.maximum(x, y)
    np.testing.assert_array_equal(m.numpy(), [1, 5, 3, -4])
    m.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.5, 0, 1, 0.5])
    np.testing.assert_array_equal(y.grad.numpy(), [0.5, 1, 0, 0.5])
    n = ops.minimum(x, 2.0)
    np.testing.assert_array_equal(n.numpy(), [1, 2, 2, -4])
    n.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1, 0.5, 0, 1])
    c = ops.clip(x, -1.0, 2.0)
    np.testing.assert_array_equal(c.numpy(), [1, 2, 2, -1])
    c.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1, 1, 0, 0])
    z = _t(np.array([-2.0, 0.0, 3.0]), dev2, dtype=dtype)
    a = ops.abs(z)
    np.testing.assert_array_equal(a.numpy(), [2, 0, 3])
    a.sum().backward()
    np.testing.assert_array_equal(z.grad.numpy(), [-1, 0, 1])


def test_minimum_maximum_propagate_nan(dev2, dtype):
    x, y = np.array([np.nan, 1.0, 2.0], dtype), np.array([0.0, np.nan, 1.0], dtype)
    np.testing.assert_array_equal(ops.maximum(_t(x, dev2), _t(y, dev2)).numpy(), np.maximum(x, y))
    np.testing.assert_array_equal(ops.minimum(_t(x, dev2), _t(y, dev2)).numpy(), np.minimum(x, y))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
def test_argmax_argmin_first_index_and_nan(dev2, dtype, name):
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, np.nan, 5.0, np.nan], [-1.0, -1.0, -1.0, -1.0]], dtype)
    ref = getattr(np, name)
    for axis, keepdims in ((None, False), (0, False), (1, True), (-1, False)):
        got = getattr(ops, name)(_t(x, dev2), axis=axis, keepdims=keepdims)
        assert got.dtype == "int64" and not got.requires_grad
        np.testing.assert_array_equal(got.numpy(), ref(x, axis=axis, keepdims=keepdims))
    i = _values("int64", (5, 6), seed=8)
    np.testing.assert_array_equal(getattr(_t(i, dev2), name)(1).numpy(), ref(i, axis=1))


@pytest.mark.parametrize("dtype_", ("bool",) + INTS)
def test_integer_and_bool_reductions(dev2, dtype_):
    _supported(dev2, dtype_)
    x = _values(dtype_, (4, 5), seed=9)
    s = _t(x, dev2).sum(axes=1)
    assert s.dtype == "int64"
    np.testing.assert_array_equal(s.numpy(), x.sum(axis=1))
    m = ops.mean(_t(x, dev2))
    assert m.dtype == "float32"
    np.testing.assert_allclose(m.numpy(), x.mean(), rtol=1e-6)
    mx = _t(x, dev2).max(axes=0)
    assert mx.dtype == dtype_
    np.testing.assert_array_equal(mx.numpy(), x.max(axis=0))


# ---- integer and bool indexing -------------------------------------------------------------------
def test_integer_indexing_gathers_and_scatter_adds(dev2, dtype):
    w = _t(np.arange(12.0).reshape(4, 3), dev2, dtype=dtype)
    idx = np.array([[2, 0], [2, -1]])
    got = w[_t(idx, dev2)]
    assert got.shape == (2, 2, 3)
    np.testing.assert_array_equal(got.numpy(), np.arange(12.0).reshape(4, 3)[idx])
    weights = np.random.RandomState(0).rand(2, 2, 3)
    (got * _t(weights, dev2, dtype=dtype)).sum().backward()
    want = np.zeros((4, 3))
    np.add.at(want, idx.reshape(-1) % 4, weights.reshape(4, 3))
    np.testing.assert_allclose(w.grad.numpy(), want, rtol=1e-6)
    np.testing.assert_array_equal(w[[3, 1]].numpy(), np.arange(12.0).reshape(4, 3)[[3, 1]])


def test_bool_mask_selects_and_scatters_back(dev2, dtype):
    x = np.array([[1.0, -2.0, 3.0], [-4.0, 5.0, -6.0]], dtype)
    t = _t(x, dev2)
    picked = t[t > 0]
    np.testing.assert_array_equal(picked.numpy(), x[x > 0])
    (picked * 2.0).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), (x > 0) * 2.0)
    rows = t[np.array([False, True])]
    np.testing.assert_array_equal(rows.numpy(), x[[False, True]])


def test_index_out_of_range_is_an_index_error(dev2):
    with pytest.raises(IndexError, match="index 5 is out of bounds for axis 0 with size 3"):
        _t(np.zeros((3, 2)), dev2)[np.array([0, 5])]


def test_to_takes_a_dtype_or_a_device(dev2, dtype):
    _supported(dev2, "int32", "int64")
    x = _t(np.array([1.5, -2.5]), dev2, dtype=dtype)
    assert x.to(dev2) is x and x.to(dtype) is x
    y = x.to("int32")
    assert y.dtype == "int32" and y.device == dev2
    np.testing.assert_array_equal(y.numpy(), [1, -2])  # truncation toward zero, as numpy's astype
    assert x.to(dtype="int64").dtype == "int64" and x.to(np.int64).dtype == "int64"
