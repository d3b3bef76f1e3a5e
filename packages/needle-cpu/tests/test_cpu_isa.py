"""Run-time ISA choice: what the CPU reports, the NEEDLE_CPU_ISA cap, set_isa's errors."""
import os
import platform
import subprocess
import sys

import pytest

from needle_cpu import _core

LEVELS = ["generic", "avx2", "avx512"]  # each level's kernels need everything below it


def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (Linux), or None where unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def isa_in_subprocess(value):
    env = {k: v for k, v in os.environ.items() if k != "NEEDLE_CPU_ISA"}
    if value is not None:
        env["NEEDLE_CPU_ISA"] = value
    out = subprocess.run([sys.executable, "-c", "import needle_cpu; print(needle_cpu.isa())"], env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip(), out.stderr


def best():
    return _core.supported_isas()[-1]


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or cpu_flags() is None,
                    reason="needs an x86-64 CPU with /proc/cpuinfo")
def test_supported_isas_match_cpuinfo():
    flags = cpu_flags()
    expected = ["generic"]
    if {"avx2", "fma"} <= flags:
        expected.append("avx2")
        if {"avx512f", "avx512vl", "avx512dq"} <= flags:
            expected.append("avx512")
    assert _core.supported_isas() == expected
    assert _core.cpu_has_avx2() == ("avx2" in expected)
    assert _core.cpu_has_avx512() == ("avx512" in expected)


def test_default_is_the_best_supported():
    assert isa_in_subprocess(None)[0] == best()


@pytest.mark.parametrize("name", LEVELS)
def test_env_var_caps_the_isa(name):
    # Asking for more than the CPU has gives the best it has, never a kernel it cannot run.
    want = min(LEVELS.index(name), LEVELS.index(best()))
    assert isa_in_subprocess(name)[0] == LEVELS[want]


def test_env_var_unknown_name_warns_and_uses_the_best():
    isa, err = isa_in_subprocess("avx1024")
    assert isa == best()
    assert "NEEDLE_CPU_ISA=avx1024" in err


def test_set_isa_rejects_unknown_names():
    with pytest.raises(ValueError, match="'sse9'"):
        _core.set_isa("sse9")


@pytest.mark.parametrize("name", LEVELS)
def test_set_isa_round_trip_or_refuse(name):
    before = _core.get_isa()
    try:
        if name in _core.supported_isas():
            _core.set_isa(name)
            assert _core.get_isa() == name
        else:
            with pytest.raises(RuntimeError, match=name):
                _core.set_isa(name)
            assert _core.get_isa() == before
    finally:
        _core.set_isa(before)
