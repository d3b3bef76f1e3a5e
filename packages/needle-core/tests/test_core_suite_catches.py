"""The kernel-level conformance suite catches what it is meant to catch, run as a third-party
author runs it (a test file and a conftest registering the backend, in a fresh pytest).

- A backend whose ``ewise_div`` is reciprocal-then-multiply (``out = 1 / b; out *= a``) is right
  whenever ``out`` is a buffer of its own, and wrong for ``a /= b``: the aliasing checks fail
  on it, and nothing else does (issue 15: such a backend passed the whole suite and trained Adam
  wrongly); the last test shows that Adam step.
- A protocol-1 backend (float dtypes, comparisons as 1.0/0.0 masks, no protocol-2 kernel) passes,
  its protocol-2 kernels skipped with the reason.
"""
import os
import re
import subprocess
import sys
import types

import numpy as np
import pytest

import needle as ndl
from needle.backend_ndarray import numpy_backend
from needle.testing import register_test_backend

CONFTEST = '''
import types

import numpy as np

from needle.backend_ndarray import numpy_backend, protocol
from needle.testing import register_test_backend


def _copy_of_numpy_backend(name):
    mod = types.ModuleType(name)
    mod.__dict__.update({k: v for k, v in vars(numpy_backend).items() if not k.startswith("__")})
    return mod


def reciprocal_div():
    mod = _copy_of_numpy_backend("reciprocal_div")

    def ewise_div(a, b, out):  # the bug: out is written before a is read
        np.divide(1, b.array, out=out.array)
        np.multiply(out.array, a.array, out=out.array)

    mod.ewise_div = ewise_div
    return mod


def protocol_1():
    mod = _copy_of_numpy_backend("protocol_1")
    mod.PROTOCOL_VERSION = 1
    mod.DTYPES = ("float32", "float64")
    for name in protocol.REQUIRED_KERNELS_V2 + protocol.OPTIONAL_KERNELS_V2:
        delattr(mod, name)

    def mask(fn, scalar):
        def kernel(a, b, out):  # protocol 1: 1.0/0.0 in the input's dtype
            out.array[:] = fn(a.array, b if scalar else b.array).astype(out.array.dtype)
        return kernel

    mod.ewise_eq, mod.ewise_ge = mask(np.equal, False), mask(np.greater_equal, False)
    mod.scalar_eq, mod.scalar_ge = mask(np.equal, True), mask(np.greater_equal, True)
    return mod


register_test_backend("reciprocal_div", reciprocal_div())
register_test_backend("protocol_1", protocol_1())
'''

SUITE = '''
from needle.testing.fixtures import *  # noqa: F401,F403
from needle.testing.test_conformance_kernels import *  # noqa: F401,F403
'''


def _run_kernel_suite(tmp_path, backend):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_suite.py").write_text(SUITE)
    env = dict(os.environ, NEEDLE_TEST_BACKENDS=backend)
    env.pop("NEEDLE_TEST_ALLOW_MISSING", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider", "test_suite.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    failed = re.findall(r"^FAILED test_suite\.py::(\S+)", out, re.MULTILINE)
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?)\b", out.splitlines()[-1])}
    return proc.returncode, out, failed, counts


def test_aliasing_checks_catch_a_reciprocal_then_multiply_division(tmp_path):
    rc, out, failed, counts = _run_kernel_suite(tmp_path, "reciprocal_div")
    assert rc == 1, out
    # Only the in-place division fails: out = a, and out = a = b (x /= x); out = b happens to be right.
    assert sorted(failed) == sorted(["test_aliasing_binary_kernels[reciprocal_div-ewise_div-out=a]",
                                     "test_aliasing_binary_kernels[reciprocal_div-ewise_div-out=a=b]"]), out
    assert counts["passed"] > 300, out  # every other check, ewise_div with a distinct out included, passes
    assert "ewise_div float32 with out=a" in out, out


def test_a_protocol_1_backend_passes_with_float_masks(tmp_path):
    rc, out, failed, counts = _run_kernel_suite(tmp_path, "protocol_1")
    assert rc == 0 and failed == [], out
    assert counts["passed"] > 200, out
    assert "protocol-1 backend: no protocol-2 kernel cast" in out, out
    assert "protocol-1 backend: no protocol-2 kernel where" in out, out


def _reciprocal_div_backend():
    mod = types.ModuleType("reciprocal_div_adam")
    mod.__dict__.update({k: v for k, v in vars(numpy_backend).items() if not k.startswith("__")})

    def ewise_div(a, b, out):  # out = 1 / b; out *= a: wrong when out is a
        np.divide(1, b.array, out=out.array)
        np.multiply(out.array, a.array, out=out.array)

    mod.ewise_div = ewise_div
    return mod


def _adam_oracle(w, x, steps, lr, beta1=0.9, beta2=0.999, eps=1e-8):
    """Adam on loss (w . x)**2 in float64, written out from its formulas."""
    w, m, v = w.astype(np.float64), np.zeros(w.shape), np.zeros(w.shape)
    for t in range(1, steps + 1):
        g = 2 * (w * x).sum() * x
        m, v = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g ** 2
        w = w - lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)
    return w


def test_the_reciprocal_division_trains_adam_wrongly():
    pytest.importorskip("needle.optim", reason="needs needle-nn")
    w0, x0 = np.array([[1.0, -2.0, 3.0]], np.float32), np.array([[0.5, 1.5, -1.0]], np.float32)

    def adam(dev, steps=2):
        w = ndl.Tensor(w0, device=dev, requires_grad=True)
        x = ndl.Tensor(x0, device=dev)
        opt = ndl.optim.Adam([w], lr=0.1)
        for _ in range(steps):
            opt.reset_grad()
            ((w * x).sum() ** 2).backward()
            opt.step()
        return w.numpy()

    expected = _adam_oracle(w0, x0, steps=2, lr=0.1)
    np.testing.assert_allclose(adam(ndl.cpu_numpy()), expected, rtol=1e-5)
    bad = register_test_backend("reciprocal_div_adam", _reciprocal_div_backend())
    got = adam(bad)
    assert not np.allclose(got, expected, rtol=1e-2), f"the in-place division went unnoticed: {got} == {expected}"
