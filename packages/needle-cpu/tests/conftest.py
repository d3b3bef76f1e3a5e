"""Shared fixtures: the backend module, and a parameter running each test on both ISAs."""
import numpy as np
import pytest

from needle_cpu import _backend, _core

ISAS = ["generic"] + (["avx2"] if _core.cpu_has_avx2() else [])


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the test with the kernels of one ISA (portable fallback and AVX2 where the CPU has it)."""
    before = _core.get_isa()
    _core.set_isa(request.param)
    yield request.param
    _core.set_isa(before)


@pytest.fixture
def backend():
    return _backend


@pytest.fixture
def rng():
    return np.random.default_rng(0)
