"""Fuzzing, layer (b): hostile calls straight into ``needle_cpu._core`` (see fuzz_native.py).

Each case runs in a sandbox worker process (needle.testing.sandbox), so a crash, a sanitizer
report or a hang fails the case with its reproducer and the run goes on. How many cases:
``NEEDLE_FUZZ_NATIVE_EXAMPLES`` (default 2500: the bounded profile of the default test run; the
``sanitize`` nox session runs many more). ``NEEDLE_FUZZ_SEED`` picks the seed (default: fixed,
so CI is reproducible; ``random`` for a new one each run).
"""
import os
import sys
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from needle.testing.sandbox import Crash, Sandbox, load_runner  # noqa: E402

RUNNER = f"{Path(__file__).resolve().with_name('fuzz_native.py')}:run"
fuzz_native = sys.modules[load_runner(RUNNER).__module__]  # the file the worker runs (not a package)
EXAMPLES = int(os.environ.get("NEEDLE_FUZZ_NATIVE_EXAMPLES", "2500"))
SIGNATURES = fuzz_native._signatures()


def _settings(examples):
    seeded = os.environ.get("NEEDLE_FUZZ_SEED", "0") != "random"
    return settings(max_examples=examples, deadline=None, database=None, derandomize=seeded,
                    suppress_health_check=list(HealthCheck), print_blob=True)


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(RUNNER, timeout=float(os.environ.get("NEEDLE_FUZZ_TIMEOUT", "60"))) as box:
        yield box
        stats = os.environ.get("NEEDLE_FUZZ_STATS")
        if stats:
            with open(stats, "a") as f:
                f.write(f"native {box.cases} cases, {box.crashes} crashes, {box.restarts} worker starts\n")


def check(sandbox, case):
    outcome = sandbox.run(case)
    if isinstance(outcome, Crash):
        pytest.fail(outcome.report(), pytrace=False)
    assert outcome.status == "ok", (f"{outcome.error}: {outcome.message}\nreproducer: {sandbox.reproducer(case)}\n"
                                    f"{outcome.detail}")


def test_fuzz_native(sandbox):
    @_settings(EXAMPLES)
    @given(case=fuzz_native.native_case(SIGNATURES))
    def inner(case):
        check(sandbox, case)

    inner()


def test_sandbox_reports_a_crash_with_its_reproducer(tmp_path):
    """The harness itself: a case that kills the worker is a Crash naming the signal and the case."""
    runner = tmp_path / "crashy.py"
    runner.write_text("import os\n"
                      "def run(case):\n"
                      "    if case == 'die':\n"
                      "        os.abort()\n"
                      "    return case\n")
    with Sandbox(f"{runner}:run", timeout=30) as box:
        assert box.run("hello").value == "hello"
        crash = box.run("die")
        assert isinstance(crash, Crash) and "SIGABRT" in crash.how and crash.alone
        assert "'die'" in crash.reproducer
        assert box.run(("still", "alive")).value == ("still", "alive")
