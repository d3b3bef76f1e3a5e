"""Conformance, level 3: every Tensor op of API.md, forward against numpy, backward by gradcheck.

On a backend with float64 the check is tight (float64 finite differences on the backend
itself); on a float32-only backend the backend's own autograd is compared with float64
finite differences computed on the numpy backend from the same input values.
"""
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pytest

import needle as ndl
from needle import ops
from needle.testing import gradcheck


@dataclass
class Case:
    name: str
    fn: Callable          # Tensors -> Tensor or TensorTuple
    ref: Callable         # float64 numpy arrays -> array or list of arrays
    shapes: Sequence[tuple]
    domain: str = "any"   # "any", "pos" (> 0.5), "away0" (|x| > 0.1), or one letter per input
    grad: bool = True


def _logsumexp(x, axes=None):
    m = np.max(x, axis=axes, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axes, keepdims=True)) + m
    return np.squeeze(out, axis=axes) if axes is not None else out.reshape(())


def _dilate(x, axes, d):
    shape = tuple(s * (d + 1) if i in axes else s for i, s in enumerate(x.shape))
    out = np.zeros(shape)
    out[tuple(slice(None, None, d + 1) if i in axes else slice(None) for i in range(x.ndim))] = x
    return out


CASES = [
    # elementwise and scalar arithmetic, with broadcasting and Python scalars on either side
    Case("add", lambda a, b: a + b, np.add, [(3, 4), (3, 4)]),
    Case("add_broadcast", lambda a, b: ops.add(a, b), np.add, [(2, 3, 4), (3, 1)]),
    Case("add_0d", lambda a, b: a + b, np.add, [(), (2, 3)]),
    Case("add_empty", lambda a, b: a + b, np.add, [(0, 3), (1, 3)]),
    Case("add_scalar", lambda a: ops.add_scalar(a, 1.5), lambda a: a + 1.5, [(5,)]),
    Case("radd_scalar", lambda a: 1.5 + a, lambda a: 1.5 + a, [(1,)]),
    Case("sub_broadcast", lambda a, b: a - b, np.subtract, [(4, 1), (1, 5)]),
    Case("sub_scalar", lambda a: a - 2.0, lambda a: a - 2.0, [(2, 3)]),
    Case("rsub_scalar", lambda a: 2.0 - a, lambda a: 2.0 - a, [(2, 3)]),
    Case("multiply", lambda a, b: ops.multiply(a, b), np.multiply, [(2, 1, 3), (4, 3)]),
    Case("mul_scalar", lambda a: ops.mul_scalar(a, -3.0), lambda a: a * -3.0, [(7,)]),
    Case("rmul_scalar", lambda a: 2 * a, lambda a: 2 * a, [(3, 2)]),
    Case("divide", lambda a, b: ops.divide(a, b), np.divide, [(3, 4), (4,)], "ap"),
    Case("divide_scalar", lambda a: ops.divide_scalar(a, 3.0), lambda a: a / 3.0, [(2, 5)]),
    Case("rdivide_scalar", lambda a: 4.0 / a, lambda a: 4.0 / a, [(2, 3)], "pos"),
    Case("power", lambda a, b: ops.power(a, b), np.power, [(2, 3), (2, 3)], "pos"),
    Case("power_broadcast", lambda a, b: a ** b, np.power, [(2, 3), (3,)], "pos"),
    Case("power_scalar_3", lambda a: ops.power_scalar(a, 3), lambda a: a ** 3, [(2, 3)]),
    Case("power_scalar_half", lambda a: a ** 0.5, lambda a: a ** 0.5, [(5,)], "pos"),
    Case("power_scalar_neg", lambda a: a ** -2, lambda a: a ** -2.0, [(4,)], "pos"),
    Case("rpower_scalar", lambda a: 2.0 ** a, lambda a: 2.0 ** a, [(2, 3)]),
    Case("negate", lambda a: -a, np.negative, [(3, 2)]),
    # unary functions
    Case("log", ops.log, np.log, [(2, 5)], "pos"),
    Case("exp", ops.exp, np.exp, [(2, 5)]),
    Case("relu", ops.relu, lambda a: np.maximum(a, 0), [(3, 4)], "away0"),
    Case("tanh", ops.tanh, np.tanh, [(3, 4)]),
    Case("sigmoid", ops.sigmoid, lambda a: 1 / (1 + np.exp(-a)), [(3, 4)]),
    Case("sqrt", ops.sqrt, np.sqrt, [(3, 4)], "pos"),
    Case("exp_0d", ops.exp, np.exp, [()]),
    # shape ops
    Case("transpose", lambda a: ops.transpose(a), lambda a: np.swapaxes(a, -1, -2), [(2, 3, 4)]),
    Case("transpose_axes", lambda a: ops.transpose(a, (0, 2)), lambda a: np.swapaxes(a, 0, 2), [(2, 3, 4)]),
    Case("transpose_T", lambda a: a.T, lambda a: a.T, [(3, 5)]),
    Case("permute", lambda a: ops.permute(a, (2, 0, 1)), lambda a: a.transpose(2, 0, 1), [(2, 3, 4)]),
    Case("reshape", lambda a: ops.reshape(a, (4, 6)), lambda a: a.reshape(4, 6), [(2, 3, 4)]),
    Case("reshape_infer", lambda a: a.reshape((-1, 2)), lambda a: a.reshape(-1, 2), [(3, 4)]),
    Case("reshape_non_compact", lambda a: ops.reshape(ops.transpose(a), (12,)), lambda a: a.T.reshape(12),
         [(3, 4)]),
    Case("reshape_to_0d", lambda a: ops.reshape(a, ()), lambda a: a.reshape(()), [(1, 1)]),
    Case("broadcast_to", lambda a: ops.broadcast_to(a, (2, 3, 4)), lambda a: np.broadcast_to(a, (2, 3, 4)),
         [(3, 1)]),
    Case("broadcast_to_from_0d", lambda a: a.broadcast_to((2, 3)), lambda a: np.broadcast_to(a, (2, 3)), [()]),
    Case("broadcast_to_lead", lambda a: ops.broadcast_to(a, (4, 5)), lambda a: np.broadcast_to(a, (4, 5)),
         [(1,)]),
    # reductions
    Case("summation_all", lambda a: ops.summation(a), lambda a: np.sum(a), [(2, 3, 4)]),
    Case("summation_axis", lambda a: ops.summation(a, axes=1), lambda a: np.sum(a, axis=1), [(2, 3, 4)]),
    Case("summation_axes", lambda a: a.sum((0, 2)), lambda a: np.sum(a, axis=(0, 2)), [(2, 3, 4)]),
    Case("summation_neg_axis", lambda a: ops.summation(a, -1), lambda a: np.sum(a, axis=-1), [(3, 5)]),
    Case("summation_empty", lambda a: ops.summation(a, 0), lambda a: np.sum(a, axis=0), [(0, 3)]),
    Case("mean", lambda a: ops.mean(a, axes=(1,)), lambda a: np.mean(a, axis=1), [(3, 4)]),
    Case("mean_all", lambda a: ops.mean(a), lambda a: np.mean(a), [(3, 4)]),
    Case("max_all", lambda a: ops.max(a), lambda a: np.max(a), [(3, 4)]),
    Case("max_axis", lambda a: ops.max(a, axes=1), lambda a: np.max(a, axis=1), [(3, 5)]),
    Case("max_axes_keepdims", lambda a: ops.max(a, axes=(0, 2), keepdims=True),
         lambda a: np.max(a, axis=(0, 2), keepdims=True), [(2, 3, 4)]),
    Case("min_all", lambda a: ops.min(a), lambda a: np.min(a), [(3, 4)]),
    Case("min_dim_keepdim", lambda a: a.min(dim=1, keepdim=True), lambda a: np.min(a, axis=1, keepdims=True),
         [(3, 5)]),
    Case("min_axes", lambda a: ops.min(a, axis=(0, 2)), lambda a: np.min(a, axis=(0, 2)), [(2, 3, 4)]),
    Case("summation_keepdims", lambda a: a.sum(dim=(0, 2), keepdim=True),
         lambda a: np.sum(a, axis=(0, 2), keepdims=True), [(2, 3, 4)]),
    # matmul
    Case("matmul", lambda a, b: ops.matmul(a, b), np.matmul, [(3, 5), (5, 2)]),
    Case("matmul_1x1", lambda a, b: a @ b, np.matmul, [(1, 1), (1, 1)]),
    Case("matmul_batched", lambda a, b: a @ b, np.matmul, [(2, 3, 4), (2, 4, 5)]),
    Case("matmul_broadcast", lambda a, b: a.matmul(b), np.matmul, [(2, 1, 3, 4), (3, 4, 2)]),
    Case("matmul_2d_3d", lambda a, b: a @ b, np.matmul, [(3, 4), (2, 4, 5)]),
    Case("matmul_vec_vec", lambda a, b: a @ b, np.matmul, [(4,), (4,)]),
    Case("matmul_mat_vec", lambda a, b: a @ b, np.matmul, [(3, 4), (4,)]),
    Case("matmul_vec_batched", lambda a, b: a @ b, np.matmul, [(4,), (2, 4, 5)]),
    # logsumexp / logsoftmax
    Case("logsumexp_all", lambda a: ops.logsumexp(a), _logsumexp, [(3, 4)]),
    Case("logsumexp_axis", lambda a: ops.logsumexp(a, axes=(1,)), lambda a: _logsumexp(a, (1,)), [(3, 5)]),
    Case("logsumexp_axes", lambda a: ops.logsumexp(a, axes=(0, 2)), lambda a: _logsumexp(a, (0, 2)),
         [(2, 3, 4)]),
    Case("logsumexp_large", lambda a: ops.logsumexp(a * 1000.0, axes=1), lambda a: _logsumexp(a * 1000.0, (1,)),
         [(2, 3)], grad=False),
    Case("logsoftmax", lambda a: ops.logsoftmax(a), lambda a: a - _logsumexp(a, (1,))[:, None], [(3, 5)]),
    Case("logsoftmax_axis0", lambda a: ops.logsoftmax(a, axis=0),
         lambda a: a - _logsumexp(a, (0,))[None, :], [(4, 3)]),
    Case("softmax", lambda a: ops.softmax(a, dim=1), lambda a: np.exp(a - _logsumexp(a, (1,))[:, None]), [(3, 5)]),
    # tuples
    Case("stack", lambda a, b, c: ops.stack([a, b, c], 0), lambda a, b, c: np.stack([a, b, c], 0),
         [(2, 3)] * 3),
    Case("stack_last", lambda a, b: ops.stack([a, b], -1), lambda a, b: np.stack([a, b], -1), [(2, 3)] * 2),
    Case("split", lambda a: ops.split(a, 1), lambda a: [a[:, i] for i in range(a.shape[1])], [(2, 3, 2)]),
    Case("split_use", lambda a: ops.split(a, 0)[0] * ops.split(a, 0)[2], lambda a: a[0] * a[2], [(3, 4)]),
    Case("concatenate", lambda a, b: ops.concatenate([a, b], 1), lambda a, b: np.concatenate([a, b], 1),
         [(2, 3), (2, 1)]),
    Case("make_tuple", lambda a, b: ops.tuple_get_item(ops.make_tuple(a, b), 1), lambda a, b: b, [(2,), (3,)]),
    # indexing, flip, dilation, padding
    Case("getitem_int", lambda a: a[1], lambda a: a[1], [(3, 4)]),
    Case("getitem_steps", lambda a: a[:, ::-2], lambda a: a[:, ::-2], [(3, 5)]),
    Case("getitem_none_ellipsis", lambda a: a[..., None, 1:3], lambda a: a[..., None, 1:3], [(2, 3, 4)]),
    Case("getitem_negative", lambda a: a[-1, ::2, -3:-1], lambda a: a[-1, ::2, -3:-1], [(2, 5, 4)]),
    Case("flip", lambda a: ops.flip(a, (0, 2)), lambda a: np.flip(a, (0, 2)), [(2, 3, 4)]),
    Case("flip_one", lambda a: ops.flip(a, 1), lambda a: np.flip(a, 1), [(3, 4)]),
    Case("dilate", lambda a: ops.dilate(a, (0, 1), 2), lambda a: _dilate(a, (0, 1), 2), [(2, 3)]),
    Case("dilate_last", lambda a: ops.dilate(a, (2,), 1), lambda a: _dilate(a, (2,), 1), [(2, 2, 3)]),
    Case("undilate", lambda a: ops.undilate(a, (0, 1), 1), lambda a: a[::2, ::2], [(6, 4)]),
    Case("undilate_ragged", lambda a: ops.undilate(a, (1,), 2), lambda a: a[:, ::3], [(2, 7)]),
    Case("pad", lambda a: ops.pad(a, ((1, 0), (0, 2), (1, 1))), lambda a: np.pad(a, ((1, 0), (0, 2), (1, 1))),
         [(2, 3, 2)]),
    # inputs that are non-compact views (transposed, reversed, broadcast)
    Case("ewise_on_views", lambda a, b: ops.transpose(a)[::-1] * ops.exp(b[:, ::2]),
         lambda a, b: a.T[::-1] * np.exp(b[:, ::2]), [(3, 4), (4, 5)]),
    Case("reduce_on_view", lambda a: ops.summation(ops.transpose(a, (0, 2))[:, ::-1], (1, 2)),
         lambda a: np.swapaxes(a, 0, 2)[:, ::-1].sum((1, 2)), [(2, 3, 4)]),
    Case("matmul_on_views", lambda a, b: ops.transpose(a) @ ops.broadcast_to(b, (2, 3, 2))[:, ::-1],
         lambda a, b: a.T @ np.broadcast_to(b, (2, 3, 2))[:, ::-1], [(3, 3), (3, 2)]),
    # a small composite: the two-layer network's loss
    Case("mlp_loss", lambda x, w1, w2: ops.logsumexp(ops.relu(x @ w1) @ w2, axes=(1,)).sum(),
         lambda x, w1, w2: _logsumexp(np.maximum(x @ w1, 0) @ w2, (1,)).sum(), [(4, 3), (3, 5), (5, 2)]),
]


def _inputs(case, dtype, seed=0):
    rng = np.random.RandomState(seed)
    out = []
    for i, shape in enumerate(case.shapes):
        domain = case.domain
        if len(domain) == len(case.shapes) and domain not in ("any", "pos"):
            domain = {"a": "any", "p": "pos", "z": "away0"}[domain[i]]
        if domain == "pos":
            x = rng.uniform(0.5, 2.0, shape)
        elif domain == "away0":
            x = rng.uniform(0.1, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
        else:
            x = rng.uniform(-2.0, 2.0, shape)
        out.append(np.asarray(x).astype(dtype))
    return out


def _as_list(out):
    return list(out.tuple()) if isinstance(out, ndl.TensorTuple) else [out]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_op_forward(dev, dtype, tol, case):
    xs = _inputs(case, dtype)
    tensors = [ndl.Tensor(x, device=dev, dtype=dtype, requires_grad=True) for x in xs]
    got = _as_list(case.fn(*tensors))
    expected = case.ref(*[x.astype(np.float64) for x in xs])
    expected = expected if isinstance(expected, list) else [expected]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert g.shape == np.shape(e), f"{case.name}: shape {g.shape}, numpy gives {np.shape(e)}"
        assert g.dtype == dtype
        assert g.device == dev
        np.testing.assert_allclose(g.numpy(), e, rtol=tol.rtol * 10, atol=tol.atol * 10)


def _check_grad(fn, tensors, dev, dtype, tol):
    numeric_device = None if dtype == "float64" else ndl.cpu_numpy()
    return gradcheck(fn, *tensors, atol=tol.grad_atol, rtol=tol.grad_rtol, numeric_device=numeric_device)


@pytest.mark.parametrize("case", [c for c in CASES if c.grad], ids=[c.name for c in CASES if c.grad])
def test_op_gradient(dev, dtype, tol, case):
    xs = _inputs(case, dtype, seed=1)
    tensors = [ndl.Tensor(x, device=dev, dtype=dtype, requires_grad=True) for x in xs]
    _check_grad(case.fn, tensors, dev, dtype, tol)


def test_op_float32_on_float64_backend(dev, dtype):
    """float32 runs through every op (forward and gradient) on backends that also have float64."""
    if dtype != "float64":
        pytest.skip("float32 is this backend's only dtype: covered by test_op_forward/test_op_gradient")
    for case in CASES:
        xs = _inputs(case, "float32", seed=4)
        tensors = [ndl.Tensor(x, device=dev, dtype="float32") for x in xs]
        got = _as_list(case.fn(*tensors))
        expected = case.ref(*[x.astype(np.float64) for x in xs])
        for g, e in zip(got, expected if isinstance(expected, list) else [expected]):
            assert g.dtype == "float32", case.name
            np.testing.assert_allclose(g.numpy(), e, rtol=1e-4, atol=1e-4, err_msg=case.name)
        if case.grad:
            gradcheck(case.fn, *tensors, atol=2e-3, rtol=2e-3, numeric_dtype="float64")


def test_max_gradient_shared_between_ties(dev, dtype):
    x = ndl.Tensor(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]]), device=dev, dtype=dtype)
    ops.max(x, axes=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)
    y = ndl.Tensor(np.array([[1.0, 3.0], [3.0, 0.0]]), device=dev, dtype=dtype)
    ops.max(y).backward()
    np.testing.assert_allclose(y.grad.numpy(), [[0, 0.5], [0.5, 0]], rtol=1e-6)


def test_numerically_stable_activations(dev, dtype):
    x = ndl.Tensor(np.array([-100.0, -20.0, 0.0, 20.0, 100.0]), device=dev, dtype=dtype)
    for fn in (ops.sigmoid, ops.tanh):
        y = fn(x)
        y.sum().backward()
        assert np.all(np.isfinite(y.numpy())) and np.all(np.isfinite(x.grad.numpy()))
    z = ndl.Tensor(np.array([[1000.0, 0.0, -1000.0]]), device=dev, dtype=dtype)
    out = ops.logsoftmax(z)
    np.testing.assert_allclose(out.numpy(), [[0.0, -1000.0, -2000.0]], rtol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), [[-2.0, 1.0, 1.0]], atol=1e-6)


# ---- gradients of gradients ----------------------------------------------------------------------
def _grad_of(fn, seed=3):
    """x -> d(sum(w * fn(x, ...)))/dx as a graph tensor, so it can be differentiated again."""
    def first_derivative(*args):
        out = fn(*args)
        w = np.random.RandomState(seed).uniform(0.5, 1.5, out.shape)
        (out * ndl.Tensor(w, device=out.device, dtype=out.dtype, requires_grad=False)).sum().backward()
        return args[0].grad
    return first_derivative


SECOND_ORDER = [
    Case("cube", lambda a: a ** 3, None, [(2, 3)]),
    Case("exp", ops.exp, None, [(4,)]),
    Case("log", ops.log, None, [(4,)], "pos"),
    Case("tanh", ops.tanh, None, [(2, 3)]),
    Case("sigmoid", ops.sigmoid, None, [(2, 3)]),
    Case("sqrt", ops.sqrt, None, [(3,)], "pos"),
    Case("divide", lambda a, b: a / b, None, [(2, 3), (2, 3)], "ap"),
    Case("multiply", lambda a, b: a * b * a, None, [(2, 3), (3,)]),
    Case("matmul", lambda a, b: (a @ b) * (a @ b), None, [(2, 3), (3, 2)]),
    Case("logsumexp", lambda a: ops.logsumexp(a, axes=(1,)), None, [(2, 3)]),
    Case("logsoftmax", lambda a: ops.logsoftmax(a), None, [(2, 3)]),
    Case("summation", lambda a: ops.summation(a * a, axes=0), None, [(3, 2)]),
    Case("broadcast", lambda a: ops.broadcast_to(a, (2, 3)) * ops.broadcast_to(a, (2, 3)), None, [(3,)]),
    Case("stack_getitem", lambda a: ops.stack([a[0] * a[1], a[1]], 0), None, [(2, 2)]),
]


@pytest.mark.parametrize("case", SECOND_ORDER, ids=[c.name for c in SECOND_ORDER])
def test_gradient_of_gradient(dev, dtype, tol, case):
    xs = _inputs(case, dtype, seed=2)
    tensors = [ndl.Tensor(x, device=dev, dtype=dtype, requires_grad=True) for x in xs]
    _check_grad(_grad_of(case.fn), tensors, dev, dtype, tol)


# ---- errors at the API edge ----------------------------------------------------------------------
def test_op_errors_name_the_shapes(dev, dtype):
    a = ndl.Tensor(np.zeros((2, 3)), device=dev, dtype=dtype)
    b = ndl.Tensor(np.zeros((4, 5)), device=dev, dtype=dtype)
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        a + b
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        a @ b
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        ops.reshape(a, (4,))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 3\)"):
        ops.broadcast_to(a, (3, 3))
    with pytest.raises(ValueError, match="axes"):
        ops.summation(a, axes=2)
    with pytest.raises(ValueError, match="axes"):
        ops.logsumexp(a, axes=(0, -3))
