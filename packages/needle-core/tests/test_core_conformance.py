"""Run the backend conformance suite (needle.testing) as part of needle-core's own tests.

By default on every enabled backend, including the in-process ``reference`` backend that
has only the required kernels, so core's fallbacks run too. NEEDLE_TEST_BACKENDS narrows it.
"""
from needle.testing.test_conformance_kernels import *  # noqa: F401,F403
from needle.testing.test_conformance_ndarray import *  # noqa: F401,F403
from needle.testing.test_conformance_ops import *  # noqa: F401,F403
