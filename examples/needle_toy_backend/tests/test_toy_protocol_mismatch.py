"""The installed toy backend, built for a protocol core cannot drive, is refused by core; the rest still works.

needle-core 0.2 drives protocols 1 and 2: a toy claiming protocol 3 (newer) or 0 (older) is refused, one
claiming protocol 1 is driven for its float dtypes only.

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


SPOKEN = ", ".join(map(str, protocol.SUPPORTED_PROTOCOLS))  # needle-core 0.2 drives protocols 1 and 2


@pytest.mark.parametrize("version, upgrade", [(max(protocol.SUPPORTED_PROTOCOLS) + 1, "needle-core"),
                                              (min(protocol.SUPPORTED_PROTOCOLS) - 1, "needle-toy-backend")])
def test_a_toy_for_a_protocol_core_cannot_drive_is_refused_naming_the_versions(monkeypatch, fresh_registry, version,
                                                                               upgrade):
    monkeypatch.setattr(toy_backend, "PROTOCOL_VERSION", version)
    dev = ndl.device("toy")
    assert not dev.enabled()
    assert dev.disabled_reason == (
        f"backend 'toy' from distribution 'needle-toy-backend' implements backend protocol version {version}, "
        f"but needle-core {ndl.__version__} implements versions {SPOKEN}; install matching versions "
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
    dev = ndl.device("toy")
    assert dev.enabled()
    assert tuple(dev.dtypes) == ("float32", "int64", "uint8", "bool")  # what it declares, no more


def test_a_toy_declaring_protocol_1_is_driven_for_float32_only(monkeypatch, fresh_registry):
    # The older protocol core still speaks: the device loads, but offers only the float dtypes it declares.
    monkeypatch.setattr(toy_backend, "PROTOCOL_VERSION", 1)
    dev = ndl.device("toy")
    assert dev.enabled()
    assert tuple(dev.dtypes) == ("float32",)
    with pytest.raises(TypeError, match=r"does not support dtype 'int64'; it supports float32 \(it implements "):
        ndl.Tensor(np.arange(3), device=dev, dtype="int64")
    a = np.array([1.5, -2.0, 3.0], dtype=np.float32)
    np.testing.assert_allclose((ndl.Tensor(a, device=dev) * 2).numpy(), a * 2)
