"""pytest fixtures of the conformance suite; ``from needle.testing.fixtures import *`` in a conftest.

``needle_backend`` is parametrised (ids ``[numpy]``, ``[cpu]``, ...) over
:func:`needle.testing.selected_backends`; ``dev`` is its device and skips, with the
device's reason, when that backend is not enabled here; ``dtype`` is float64 where the
backend has it, else float32; ``tol`` holds forward and gradient tolerances for ``dtype``.
"""
from types import SimpleNamespace

import pytest

from ._backends import backend_device, selected_backends

__all__ = ["pytest_generate_tests", "dev", "dtype", "tol"]


def pytest_generate_tests(metafunc):
    if "needle_backend" in metafunc.fixturenames:
        names = selected_backends()
        metafunc.parametrize("needle_backend", names, ids=names)


@pytest.fixture
def dev(needle_backend):
    """The device of the backend under test."""
    device = backend_device(needle_backend)
    if not device.enabled():
        pytest.skip(f"backend {needle_backend!r} is not enabled: {device.disabled_reason}")
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
