"""The kernel-level conformance suite catches what it is meant to catch, run as a third-party
author runs it (a test file and a conftest registering the backend, in a fresh pytest).

- A backend whose ``ewise_div`` is reciprocal-then-multiply (``out = 1 / b; out *= a``) is right
  whenever ``out`` is a buffer of its own, and wrong for ``a /= b``: the aliasing checks fail
  on it, and nothing else does (issue 15: such a backend passed the whole suite and trained Adam
  wrongly).
- A protocol-1 backend (float dtypes, comparisons as 1.0/0.0 masks, no protocol-2 kernel) passes,
  its protocol-2 kernels skipped with the reason.
"""
import os
import re
import subprocess
import sys

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
