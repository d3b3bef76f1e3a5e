"""Needle's backend conformance suite on the installed "toy" backend.

Same as ``NEEDLE_TEST_BACKENDS=toy pytest --pyargs needle.testing``; this file lets a plain
``pytest`` in this folder run it. NEEDLE_TEST_BACKENDS, when set, still picks the backends.
"""
import os

from needle.testing.fixtures import dev, dtype, tol  # noqa: F401  (the suite's fixtures)
from needle.testing.test_conformance_kernels import *  # noqa: F401,F403
from needle.testing.test_conformance_ndarray import *  # noqa: F401,F403
from needle.testing.test_conformance_ops import *  # noqa: F401,F403

BACKENDS = [n.strip() for n in os.environ.get("NEEDLE_TEST_BACKENDS", "toy").split(",") if n.strip()]


def pytest_generate_tests(metafunc):
    # Module-level hook: it parametrises the suite here without a conftest that could leak into other folders.
    if "needle_backend" in metafunc.fixturenames:
        metafunc.parametrize("needle_backend", BACKENDS, ids=BACKENDS)
