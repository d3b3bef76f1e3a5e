"""needle-cuda's memory statistics on the numpy stand-in for CuPy (no GPU needed): the counts follow
the Array buffers a test allocates and frees, per device; empty_cache goes to CuPy's memory pool."""
import gc

import pytest
from needle_cuda import _cupy


@pytest.fixture
def two_devices(stand_in, monkeypatch):
    fake = _cupy._import_cupy()  # the stand-in, now with two devices
    monkeypatch.setattr(fake.cuda.runtime, "getDeviceCount", lambda: 2)
    _cupy.reset()
    gc.collect()
    gc.disable()
    yield stand_in, fake
    gc.enable()


def test_counts_follow_buffers_per_device(two_devices):
    backend, _ = two_devices
    dev1 = backend.for_device(1)
    base0, base1 = backend.memory_stats()["allocated_bytes"], dev1.memory_stats()["allocated_bytes"]
    a = backend.Array(100, "float32")
    b = dev1.Array(10, "float64")
    assert backend.memory_stats()["allocated_bytes"] == base0 + 400
    assert dev1.memory_stats()["allocated_bytes"] == base1 + 80
    backend.reset_peak_memory_stats()
    del a
    stats = backend.memory_stats()
    assert stats["allocated_bytes"] == base0 and stats["peak_allocated_bytes"] == base0 + 400
    backend.reset_peak_memory_stats()
    assert backend.memory_stats()["peak_allocated_bytes"] == base0
    del b
    assert dev1.memory_stats()["allocated_bytes"] == base1
    assert dev1.memory_stats()["peak_allocated_bytes"] >= base1 + 80


def test_device_methods_and_empty_cache_use_the_pool(two_devices):
    import needle as ndl
    backend, fake = two_devices
    pool = fake.get_default_memory_pool()
    dev = ndl.device("cuda")
    assert dev.enabled(), dev.disabled_reason
    base = dev.memory_allocated()
    x = dev.empty((8, 8), dtype="float32")
    assert dev.memory_allocated() == base + 256
    assert dev.max_memory_allocated() >= base + 256
    pool.held[1] = 4096
    with fake.cuda.Device(1):
        assert backend.memory_stats()["reserved_bytes"] == 4096
    assert backend.memory_stats()["reserved_bytes"] == 0
    ndl.device("cuda", 1).empty_cache()
    assert pool.freed == [1] and pool.held == {}
    dev.empty_cache()
    assert pool.freed == [1, 0]
    del x
    assert dev.memory_allocated() == base
