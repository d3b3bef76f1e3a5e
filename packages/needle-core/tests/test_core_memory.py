"""Device memory statistics: the counts follow the buffers a test allocates and frees."""
import gc

import numpy as np
import pytest

import needle as ndl
from needle.backend_ndarray import NDArray


@pytest.fixture(params=["numpy", "cpu"])
def device(request):
    dev = ndl.device(request.param)
    if not dev.enabled():
        pytest.skip(f"backend {request.param} is not available: {dev.disabled_reason}")
    gc.collect()
    gc.disable()  # no collection may free other tests' buffers while a test counts
    yield dev
    gc.enable()


def test_allocated_follows_buffers(device):
    base = device.memory_allocated()
    a = device.empty((1000,), dtype="float32")
    assert device.memory_allocated() == base + 4000
    b = device.empty((10, 30), dtype="float64")
    c = device.empty((7,), dtype="bool")
    assert device.memory_allocated() == base + 4000 + 2400 + 7
    view = a.reshape((10, 100))  # a view shares the buffer: no new bytes
    assert device.memory_allocated() == base + 6407
    del a
    assert device.memory_allocated() == base + 6407  # the view keeps the buffer alive
    del view, c
    assert device.memory_allocated() == base + 2400
    del b
    assert device.memory_allocated() == base


def test_peak_and_reset(device):
    device.reset_peak_memory_stats()
    base = device.memory_allocated()
    assert device.max_memory_allocated() == base
    big = device.empty((1 << 16,), dtype="float32")  # 256 KiB: goes through needle-cpu's block cache
    small = device.empty((100,), dtype="int64")
    del big
    assert device.memory_allocated() == base + 800
    assert device.max_memory_allocated() == base + (1 << 18) + 800
    device.empty_cache()  # gives cached blocks back; live buffers stay counted
    assert device.memory_allocated() == base + 800
    device.reset_peak_memory_stats()
    assert device.max_memory_allocated() == base + 800
    del small
    assert device.max_memory_allocated() == base + 800
    stats = device.memory_stats()
    assert stats["allocated_bytes"] == base and stats["peak_allocated_bytes"] == base + 800


def test_tensor_ops_count_their_results(device):
    x = ndl.Tensor(np.ones((64, 32), dtype=np.float32), device=device)
    base = device.memory_allocated()
    y = x * 2.0
    assert device.memory_allocated() == base + 64 * 32 * 4
    del y
    assert device.memory_allocated() == base


def test_a_backend_without_statistics_says_so():
    from needle._device import BackendDevice

    class Registry:
        def load(self, name, index):
            return type("M", (), {})(), None
    dev = BackendDevice("toy", "toy", Registry())
    with pytest.raises(NotImplementedError, match="backend 'toy' does not track memory.*MEMORY_KERNELS"):
        dev.memory_allocated()
    with pytest.raises(NotImplementedError, match="does not track memory"):
        dev.reset_peak_memory_stats()
    dev.empty_cache()  # nothing cached: a no-op


def test_numpy_array_that_fails_to_build_counts_nothing():
    dev = ndl.cpu_numpy()
    base = dev.memory_allocated()
    with pytest.raises(TypeError):
        dev.mod.Array(4, "complex64")
    gc.collect()
    assert dev.memory_allocated() == base
    assert isinstance(NDArray, type)
