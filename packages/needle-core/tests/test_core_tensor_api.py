"""Tensor API edges from API.md: numpy scalars as operands, dtype inference, tuple indexing, out_grad.

Expected values are hand-derived or computed with numpy in the test; gradients are checked
against central finite differences in float64.
"""
import warnings

import numpy as np
import pytest

import needle as ndl
from needle import ops
from needle.testing import register_reference_backend

NP = ndl.cpu_numpy()


def f32(x):
    return ndl.Tensor(np.asarray(x, dtype=np.float32), device=NP)


# ---- numpy scalars on either side ------------------------------------------------------------------
@pytest.mark.parametrize("expr, value, grad", [
    (lambda s, t: s * t, lambda x: 2.0 * x, lambda x: np.full_like(x, 2.0)),
    (lambda s, t: s + t, lambda x: 2.0 + x, lambda x: np.ones_like(x)),
    (lambda s, t: s - t, lambda x: 2.0 - x, lambda x: -np.ones_like(x)),
    (lambda s, t: s / t, lambda x: 2.0 / x, lambda x: -2.0 / x ** 2),
    (lambda s, t: s ** t, lambda x: 2.0 ** x, lambda x: np.log(2.0) * 2.0 ** x),
    (lambda s, t: t * s, lambda x: 2.0 * x, lambda x: np.full_like(x, 2.0)),
    (lambda s, t: t ** s, lambda x: x ** 2, lambda x: 2 * x),
])
@pytest.mark.parametrize("scalar", [np.float32(2.0), np.float64(2.0), np.int64(2)])
def test_numpy_scalar_operands_stay_in_the_graph(expr, value, grad, scalar):
    x = np.array([0.5, 1.0, 3.0], dtype=np.float32)
    t = f32(x)
    y = expr(scalar, t)
    assert isinstance(y, ndl.Tensor) and not y.is_leaf()
    assert y.dtype == "float32"  # a numpy scalar does not promote the tensor
    np.testing.assert_allclose(y.numpy(), value(x.astype(np.float64)), rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), grad(x.astype(np.float64)), rtol=1e-5)


def test_numpy_ufunc_on_a_tensor_is_an_error_not_a_silent_ndarray():
    with pytest.raises(TypeError):
        np.exp(f32([1.0]))
    # Conversions still work: np.asarray and numpy's comparisons read the data.
    np.testing.assert_allclose(np.asarray(f32([1.0, 2.0])), [1.0, 2.0])
    assert np.allclose(f32([1.0, 2.0]), [1.0, 2.0])


# ---- dtype inference (the course's numpy backend: numpy.array(x)) ------------------------------------
@pytest.mark.parametrize("value, expected", [
    (2.5, "float64"), ([1.5, 2.0], "float64"), ([[1.0], [2.0]], "float64"), (np.float64(1.0), "float64"),
    (np.ones(2), "float64"), (3, "int64"), ([1, 2], "int64"), (np.ones(2, np.float32), "float32"),
    (True, "bool"), (np.ones(2, np.uint8), "uint8"), (np.ones(2, np.int32), "int32"),
])
def test_dtype_none_follows_numpy_where_the_device_has_float64(value, expected):
    assert ndl.Tensor(value, device=NP).dtype == expected
    ref = register_reference_backend()  # no float64: every float becomes float32
    assert ndl.Tensor(value, device=ref).dtype == ("float32" if expected == "float64" else expected)


def test_explicit_dtype_wins_over_inference():
    assert ndl.Tensor(2.5, device=NP, dtype="float32").dtype == "float32"
    assert ndl.Tensor([1, 2], device=NP, dtype="float64").dtype == "float64"


def test_course_gradient_check_of_a_python_float_in_float64():
    # The course checks broadcast_to of ``Tensor(np.random.randn())`` (a Python float) with central
    # differences at tolerance 1e-6: the leaf must be float64 on the numpy backend for that to hold.
    x = ndl.Tensor(0.7314, device=NP)
    eps = 1e-4
    data = x.realize_cached_data()
    data.flat[0] += eps
    f1 = float(ops.broadcast_to(x, (3, 3, 3)).numpy().sum())
    data.flat[0] -= 2 * eps
    f2 = float(ops.broadcast_to(x, (3, 3, 3)).numpy().sum())
    data.flat[0] += eps
    assert abs((f1 - f2) / (2 * eps) - 27.0) < 1e-6
    ops.broadcast_to(x, (3, 3, 3)).sum().backward()
    assert x.grad.dtype == "float64" and x.grad.shape == ()
    np.testing.assert_allclose(x.grad.numpy(), 27.0)


# ---- TensorTuple indexing ---------------------------------------------------------------------------
def test_negative_tuple_index_gets_its_gradient():
    x = np.arange(12.0).reshape(3, 4)
    t = ndl.Tensor(x, device=NP)
    parts = ops.split(t, 0)
    last = parts[-1]
    np.testing.assert_allclose(last.numpy(), x[2])
    (last * 2.0 + parts[-3]).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), [[1.0] * 4, [0.0] * 4, [2.0] * 4])


def test_negative_index_of_an_unfolded_tuple_node():
    t = ndl.Tensor(np.array([1.0, 2.0]), device=NP)
    tup = ops.make_tuple(t * 1.0, t * 3.0)
    y = ops.TupleGetItem(-1)(tup, fold_const=False)
    y.sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), [3.0, 3.0])


def test_tuple_index_errors_name_the_index_and_length():
    parts = ops.split(ndl.Tensor(np.ones((2, 3)), device=NP), 0)
    for bad in (2, -3):
        with pytest.raises(IndexError, match=rf"index {bad}.*length 2"):
            parts[bad]
    with pytest.raises(IndexError, match=r"index 5.*length 2"):
        ops.make_tuple(f32([1.0]), f32([2.0]))[5]
    with pytest.raises(TypeError, match="int"):
        parts[0:1]


# ---- backward(out_grad) --------------------------------------------------------------------------
def test_out_grad_of_another_dtype_does_not_change_the_gradient_dtype():
    x = f32([1.0, 2.0, 3.0])
    (x * x).backward(ndl.Tensor(np.array([1.0, 0.5, 2.0]), device=NP))  # a float64 out_grad
    assert x.grad.dtype == "float32"
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 2.0, 12.0])
    y = ndl.Tensor(np.array([1.0, 2.0]), device=NP)
    (y * y).backward(f32([1.0, 1.0]))
    assert y.grad.dtype == "float64"
    np.testing.assert_allclose(y.grad.numpy(), [2.0, 4.0])


def test_out_grad_on_another_device_is_a_clear_error():
    ref = register_reference_backend()
    x = f32([1.0, 2.0])
    with pytest.raises(ValueError, match=r"backward: out_grad is on .*tensor is on cpu_numpy\(\)"):
        (x * x).backward(ndl.Tensor(np.ones(2, np.float32), device=ref))


# ---- power with a constant exponent ----------------------------------------------------------------
def test_power_of_a_negative_base_by_a_constant_exponent():
    # d(a ** b)/da = b * a ** (b - 1); log(a) (nan for a < 0) is only needed for b's gradient.
    a = ndl.Tensor(np.array([-2.0, 3.0]), device=NP)
    b = ndl.Tensor(np.array([2.0, 3.0]), device=NP, requires_grad=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value in log" from unused work
        (a ** b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [2 * -2.0, 3 * 9.0])
