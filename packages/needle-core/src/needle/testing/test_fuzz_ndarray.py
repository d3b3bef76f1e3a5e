"""Fuzzing, layer (a): NDArray views and ops on each backend under test, against numpy.

Random shapes (zero-size, 0-d and size 1 among them), random view chains (permute, broadcast_to,
slice, flip, reshape), all six dtypes, binary ops with promotion, reductions, setitem, and hostile
arguments that must raise ValueError, TypeError or IndexError (see _fuzz_ndarray.py). Every case runs
in a sandbox worker process (needle.testing.sandbox): a crash fails the case with its reproducer.
``NEEDLE_FUZZ_NDARRAY_EXAMPLES`` sets the number of cases per backend (default 1000);
``NEEDLE_FUZZ_SEED=random`` draws new cases each run (default: the same ones, reproducibly).
"""
import os

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from needle.testing import _fuzz_ndarray  # noqa: E402
from needle.testing.sandbox import Crash, Sandbox  # noqa: E402

EXAMPLES = int(os.environ.get("NEEDLE_FUZZ_NDARRAY_EXAMPLES", "1000"))
RUNNER = "needle.testing._fuzz_ndarray:run"


def test_fuzz_ndarray(dev, needle_backend):
    case_for = _fuzz_ndarray.strategies()
    with Sandbox(RUNNER, timeout=float(os.environ.get("NEEDLE_FUZZ_TIMEOUT", "60"))) as box:
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  derandomize=os.environ.get("NEEDLE_FUZZ_SEED", "0") != "random",
                  suppress_health_check=list(HealthCheck), print_blob=True)
        @given(case=case_for(needle_backend))
        def inner(case):
            outcome = box.run(case)
            if isinstance(outcome, Crash):
                pytest.fail(outcome.report(), pytrace=False)
            assert outcome.status == "ok", (f"{outcome.error}: {outcome.message}\n"
                                            f"reproducer: {box.reproducer(case)}\n{outcome.detail}")

        try:
            inner()
        finally:
            stats = os.environ.get("NEEDLE_FUZZ_STATS")
            if stats:
                with open(stats, "a") as f:
                    f.write(f"ndarray[{needle_backend}] {box.cases} cases, {box.crashes} crashes, "
                            f"{box.restarts} worker starts\n")
