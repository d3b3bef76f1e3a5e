"""Shared fixtures: the backend module, and a parameter running each test on every ISA the CPU supports."""
import numpy as np
import pytest

from needle_cpu import _backend, _core

ISAS = _core.supported_isas()


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the test with the kernels of one ISA (portable fallback, AVX2 and AVX-512 where the CPU has them)."""
    before = _core.get_isa()
    _core.set_isa(request.param)
    yield request.param
    _core.set_isa(before)


@pytest.fixture
def refuses():
    """``refuses(kernel, args, change, match)``: ``kernel(**args)`` with ``change`` applied raises a
    ValueError matching ``match``. ``change`` is a dict of new arguments, or ``"x=y"``: argument y
    passed as x too (one buffer in two roles)."""
    def check(kernel, args, change, match):
        args = dict(args)
        if isinstance(change, str):
            name, other = change.split("=")
            args[name] = args[other]
        else:
            args.update(change)
        with pytest.raises(ValueError, match=match):
            kernel(**args)
    return check


@pytest.fixture
def backend():
    return _backend


@pytest.fixture
def rng():
    return np.random.default_rng(0)
