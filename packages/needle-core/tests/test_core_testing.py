"""needle.testing itself: gradcheck catches wrong gradients; backend selection and registration."""
import os
import subprocess
import sys

import numpy as np
import pytest

import needle as ndl
from needle import backends, testing
from needle.autograd import TensorOp
from needle.testing import _reference_backend, gradcheck, numerical_gradients

NP = ndl.cpu_numpy()


class _WrongSquare(TensorOp):
    """x**2 with a deliberately wrong gradient (x instead of 2x)."""

    def compute(self, a):
        return a * a

    def gradient(self, out_grad, node):
        return out_grad * node.inputs[0]


class _WrongShape(TensorOp):
    def compute(self, a):
        return a * 2.0

    def gradient(self, out_grad, node):
        return ndl.ops.summation(out_grad, axes=0)


def _t(x, device=NP):
    return ndl.Tensor(np.asarray(x, dtype=np.float64), device=device)


def test_numerical_gradients_hand_computed():
    (g,) = numerical_gradients(lambda x: x * x * x, _t([1.0, -2.0]))
    np.testing.assert_allclose(g, [3.0, 12.0], rtol=1e-8)
    ga, gb = numerical_gradients(lambda a, b: a * b, _t([2.0]), _t([5.0]), weights=[np.array([3.0])])
    np.testing.assert_allclose([ga[0], gb[0]], [15.0, 6.0], rtol=1e-8)


def test_gradcheck_returns_autograd_gradients():
    a, b = _t([[1.0, 2.0]]), _t([[3.0], [4.0]])
    ga, gb = gradcheck(lambda x, y: x @ y, a, b)
    w = np.random.RandomState(0).standard_normal((1, 1))  # gradcheck's seed-0 output weights
    np.testing.assert_allclose(ga, w @ b.numpy().T)
    np.testing.assert_allclose(gb, a.numpy().T @ w)


def test_gradcheck_catches_a_wrong_gradient():
    with pytest.raises(AssertionError, match=r"argument 0 \(shape \(3,\)\)"):
        gradcheck(lambda x: _WrongSquare()(x), _t([1.0, 2.0, 3.0]))


def test_gradcheck_catches_a_wrong_gradient_shape():
    with pytest.raises(AssertionError, match=r"gradient of argument 0 has shape \(3,\), argument has shape \(2, 3\)"):
        gradcheck(lambda x: _WrongShape()(x), _t(np.ones((2, 3))))


def test_gradcheck_float32_backend_with_numeric_device():
    ref = testing.register_reference_backend()
    x = ndl.Tensor(np.array([0.3, -0.7, 1.1]), device=ref)
    assert x.dtype == "float32"
    gradcheck(lambda t: ndl.tanh(t) * t, x, numeric_device=NP)
    with pytest.raises(AssertionError):
        gradcheck(lambda t: _WrongSquare()(t), x, numeric_device=NP)


def test_gradcheck_accepts_numpy_args():
    (g,) = gradcheck(lambda t: t * 3.0, np.array([1.0, 2.0]))
    w = np.random.RandomState(0).standard_normal(2)
    np.testing.assert_allclose(g, 3 * w, rtol=1e-5)


# ---- backend selection ---------------------------------------------------------------------------
def test_selected_backends_from_env(monkeypatch):
    monkeypatch.setenv("NEEDLE_TEST_BACKENDS", " np, reference ,numpy")
    assert testing.selected_backends() == ["numpy", "reference"]
    monkeypatch.setenv("NEEDLE_TEST_BACKENDS", "")
    assert testing.selected_backends() == []
    monkeypatch.delenv("NEEDLE_TEST_BACKENDS")
    monkeypatch.setenv("NEEDLE_BACKEND", "np")
    assert testing.selected_backends() == ["numpy"]
    monkeypatch.delenv("NEEDLE_BACKEND")
    default = testing.selected_backends()
    assert "numpy" in default and "reference" in default
    assert all(testing.backend_device(name).enabled() for name in default)


def test_register_test_backend_goes_through_the_registry():
    dev = testing.register_test_backend("needle_testing_copy", _reference_backend, distribution="tests")
    assert dev.enabled() and "needle_testing_copy" in backends.available_backends()
    assert testing.register_test_backend("needle_testing_copy", _reference_backend) == dev  # no-op
    a = ndl.Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), device=dev)
    np.testing.assert_allclose((a @ a - a).numpy(), [[6.0, 8.0], [12.0, 18.0]])
    assert dev.optional("ewise_sub") is None  # a minimal backend: core's fallbacks ran


def test_register_test_backend_rejects_bad_calls():
    with pytest.raises(ValueError, match="already registered"):
        testing.register_test_backend("numpy", _reference_backend)
    with pytest.raises(TypeError, match="exactly one"):
        testing.register_test_backend("x", _reference_backend, load=lambda: _reference_backend)


def test_reference_backend_has_only_required_kernels():
    from needle.backend_ndarray import protocol
    assert protocol.missing_kernels(_reference_backend) == []
    assert protocol.optional_kernels(_reference_backend) == []
    assert _reference_backend.PROTOCOL_VERSION == 2
    assert "float64" not in _reference_backend.DTYPES  # core's "device lacks this dtype" paths run on it


def test_pyargs_run_from_another_directory_skips_disabled_backends_visibly(tmp_path):
    env = dict(os.environ, NEEDLE_TEST_BACKENDS="numpy,no_such_backend")
    env.pop("NEEDLE_BACKEND", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "needle.testing.test_conformance_kernels", "-q", "-rs",
         "-p", "no:cacheprovider", "-k", "test_protocol_surface"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 passed, 1 skipped" in out, out
    assert "backend 'no_such_backend' is not enabled: " in out, out
