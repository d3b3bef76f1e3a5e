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


def _run_suite(cwd, args, **env_vars):
    env = dict(os.environ, **env_vars)
    env.pop("NEEDLE_BACKEND", None)
    if "NEEDLE_TEST_ALLOW_MISSING" not in env_vars:
        env.pop("NEEDLE_TEST_ALLOW_MISSING", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stdout + proc.stderr


_NOT_ENABLED = "backend 'no_such_backend' named in NEEDLE_TEST_BACKENDS is not enabled: no backend named "


def test_a_backend_named_but_not_installed_fails_the_run_with_the_reason(tmp_path):
    # Before: a typo gave "1 passed, 1 skipped" and exit status 0.
    rc, out = _run_suite(tmp_path, ["--pyargs", "needle.testing.test_conformance_kernels", "-k", "protocol_surface"],
                         NEEDLE_TEST_BACKENDS="numpy,no_such_backend")
    assert rc != 0, out
    assert _NOT_ENABLED + "'no_such_backend' is installed" in out, out
    assert "NEEDLE_TEST_ALLOW_MISSING=1" in out, out
    assert " passed" not in out and " skipped" not in out, out  # nothing ran


def test_allow_missing_skips_a_named_backend_visibly(tmp_path):
    rc, out = _run_suite(tmp_path, ["--pyargs", "needle.testing.test_conformance_kernels", "-k", "protocol_surface"],
                         NEEDLE_TEST_BACKENDS="numpy,no_such_backend", NEEDLE_TEST_ALLOW_MISSING="1")
    assert rc == 0, out
    assert "1 passed, 1 skipped" in out, out
    assert _NOT_ENABLED in out, out


def test_a_test_file_with_its_own_backend_list_fails_too(tmp_path):
    # The toy and template backends parametrise the suite in their own test file, with a fixed default.
    (tmp_path / "test_mine.py").write_text(
        "from needle.testing.fixtures import dev, dtype, tol  # noqa\n"
        "from needle.testing.test_conformance_kernels import test_protocol_surface  # noqa\n"
        "def pytest_generate_tests(metafunc):\n"
        "    if 'needle_backend' in metafunc.fixturenames:\n"
        "        metafunc.parametrize('needle_backend', ['numpy', 'no_such_backend'])\n")
    rc, out = _run_suite(tmp_path, ["test_mine.py"], NEEDLE_TEST_BACKENDS="numpy,no_such_backend")
    assert rc != 0, out
    assert "1 passed, 1 error" in out, out  # an error at setup of the missing backend's test
    assert _NOT_ENABLED in out, out
