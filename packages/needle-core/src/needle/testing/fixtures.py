"""pytest fixtures of the conformance suite; ``from needle.testing.fixtures import *`` in a conftest.

``needle_backend`` is parametrised (ids ``[numpy]``, ``[cpu]``, ...) over
:func:`needle.testing.selected_backends`; a backend named there that is not enabled here is a
collection error that says why (``dev`` fails the same way under a test file's own
parametrisation), or, with ``NEEDLE_TEST_ALLOW_MISSING=1``, a skip with the reason. ``dev`` is
the backend's device; ``dtype`` is float64 where the
backend has it, else float32; ``tol`` holds forward and gradient tolerances for ``dtype``.
"""
from types import SimpleNamespace

import pytest

from ._backends import backend_device, missing_allowed, not_enabled_message, selected_backends

__all__ = ["pytest_generate_tests", "dev", "dtype", "tol"]


def pytest_generate_tests(metafunc):
    """pytest hook: run each test that takes ``needle_backend`` once per backend of ``NEEDLE_TEST_BACKENDS``."""
    if "needle_backend" in metafunc.fixturenames:
        names = selected_backends()
        if not missing_allowed():
            problems = [m for m in map(not_enabled_message, names) if m]
            if problems:  # one error per test module, before any test runs
                pytest.fail("\n".join(problems), pytrace=False)
        metafunc.parametrize("needle_backend", names, ids=names)


@pytest.fixture
def dev(needle_backend):
    """The device of the backend under test."""
    device = backend_device(needle_backend)
    if not device.enabled():
        message = not_enabled_message(needle_backend)
        if missing_allowed():
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    return device


@pytest.fixture
def dtype(dev):
    """float64 where the backend declares it (tight gradient checks), else float32."""
    return "float64" if "float64" in dev.dtypes else "float32"


@pytest.fixture
def tol(dtype):
    """Tolerances for ``dtype``: forward (rtol, atol) and gradient (atol, rtol)."""
    if dtype == "float64":
        return SimpleNamespace(rtol=1e-10, atol=1e-12, grad_atol=1e-5, grad_rtol=1e-4)
    return SimpleNamespace(rtol=1e-5, atol=1e-5, grad_atol=2e-3, grad_rtol=2e-3)
