"""needle's backend conformance suite on "mybackend" (the same as
``NEEDLE_TEST_BACKENDS=mybackend pytest --pyargs needle.testing``). Install the package first:
``pip install -e .[test]``, then run ``pytest``.
"""
import os

from needle.testing.fixtures import dev, dtype, tol  # noqa: F401  (the suite's fixtures)
from needle.testing.test_conformance_kernels import *  # noqa: F401,F403
from needle.testing.test_conformance_ndarray import *  # noqa: F401,F403
from needle.testing.test_conformance_ops import *  # noqa: F401,F403

BACKENDS = [n.strip() for n in os.environ.get("NEEDLE_TEST_BACKENDS", "mybackend").split(",") if n.strip()]


def pytest_generate_tests(metafunc):
    # Module-level hook, not a conftest: it cannot leak into other test folders.
    if "needle_backend" in metafunc.fixturenames:
        metafunc.parametrize("needle_backend", BACKENDS, ids=BACKENDS)
