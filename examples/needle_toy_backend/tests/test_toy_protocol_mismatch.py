"""The installed toy backend, built for another protocol version, is refused by core; the rest still works.

Runs against the real entry point of the pip-installed distribution (`nox -s third_party`), so the
message is the one a user of a mismatched plugin would read.
"""
import numpy as np
import pytest

import needle as ndl
from needle import backends
from needle.backend_ndarray import protocol

toy_backend = pytest.importorskip("needle_toy._backend", reason="needle-toy-backend is not installed")


@pytest.fixture
def fresh_registry():
    backends.reset()
    yield
    backends.reset()


@pytest.mark.parametrize("offset, upgrade", [(1, "needle-core"), (-1, "needle-toy-backend")])
def test_a_toy_for_another_protocol_is_refused_naming_both_versions(monkeypatch, fresh_registry, offset, upgrade):
    core = protocol.PROTOCOL_VERSION
    monkeypatch.setattr(toy_backend, "PROTOCOL_VERSION", core + offset)
    dev = ndl.device("toy")
    assert not dev.enabled()
    assert dev.disabled_reason == (
        f"backend 'toy' from distribution 'needle-toy-backend' implements backend protocol version {core + offset}, "
        f"but needle-core {ndl.__version__} implements version {core}; install matching versions "
        f"(`pip install --upgrade {upgrade}`)")
    with pytest.raises(backends.DeviceUnavailableError, match="implements backend protocol version"):
        ndl.Tensor(np.ones(3, dtype=np.float32), device=dev)
    # Everything else keeps working: the built-in backend computes as numpy does.
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = ndl.Tensor(a, device=ndl.cpu_numpy(), requires_grad=True)
    y = (x * x).sum()
    y.backward()
    np.testing.assert_allclose(y.numpy(), (a * a).sum())
    np.testing.assert_allclose(x.grad.numpy(), 2 * a)
    assert "toy" in backends.available_backends()  # still listed, so `python -m needle` shows the reason


def test_the_toy_with_its_own_version_loads(fresh_registry):
    assert toy_backend.PROTOCOL_VERSION == protocol.PROTOCOL_VERSION
    assert ndl.device("toy").enabled()
