"""needle-cpu's DLPack capsules (src/dlpack.cc): ownership, the deleters, copies, and hostile capsules.

The exchange through needle (values, sharing, views, PyTorch) is in the conformance suite,
test_conformance_dlpack.py; here the capsules themselves, with numpy as the other side.
"""
import gc
import sys
import weakref

import numpy as np
import pytest

from needle_cpu import _backend as B
from needle_cpu import _core


def _filled(values, dtype="float32"):
    a = B.Array(len(values), dtype)
    B.from_numpy(np.asarray(values, dtype=dtype), a)
    return a


def test_export_holds_the_buffer_until_the_consumer_releases_it():
    a = _filled(np.arange(6))
    before = sys.getrefcount(a)
    capsule = B.dlpack_export(a, (2, 3), (3, 1), 0)
    assert sys.getrefcount(a) == before + 1
    y = _core.from_dlpack_capsule(capsule)[0]  # a needle-cpu Array over the same memory, as a consumer
    del capsule
    gc.collect()
    assert sys.getrefcount(a) == before + 1  # the consumer holds it now
    assert y.ptr() == a.ptr()
    del y
    gc.collect()
    assert sys.getrefcount(a) == before


def test_unused_capsules_release_the_buffer():
    a = _filled([1.0, 2.0])
    before = sys.getrefcount(a)
    for version in (None, (1, 0)):
        capsule = B.dlpack_export(a, (2,), (1,), 0, max_version=version)
        del capsule
        assert sys.getrefcount(a) == before


def test_versioned_export_is_writable_for_numpy():
    a = _filled(np.zeros(4))
    wrapper = type("P", (), {"__dlpack__": lambda s, **k: B.dlpack_export(a, (4,), (1,), 0, max_version=(1, 0)),
                             "__dlpack_device__": lambda s: (1, 0)})()
    y = np.from_dlpack(wrapper)
    assert y.flags.writeable
    y[2] = 5.0
    np.testing.assert_array_equal(B.to_numpy(a, (4,), (1,), 0), [0, 0, 5, 0])


def test_export_checks_the_view():
    a = _filled(np.arange(4))
    with pytest.raises(ValueError, match="outside"):
        B.dlpack_export(a, (5,), (1,), 0)
    with pytest.raises(ValueError, match="outside"):
        B.dlpack_export(a, (2,), (1,), 3)
    with pytest.raises(TypeError, match="needle_cpu.Array"):
        B.dlpack_export(np.zeros(4), (4,), (1,), 0)


def test_import_adopts_the_memory_and_calls_the_deleter_once():
    x = np.arange(8, dtype="int64")
    alive = weakref.ref(x)
    array, shape, strides, offset, copied = _core.from_dlpack_capsule(x.__dlpack__())
    assert not copied and array.ptr() == x.ctypes.data and (shape, strides, offset) == ([8], [1], 0)
    del x
    gc.collect()
    assert alive() is not None  # the Array keeps the producer alive
    np.testing.assert_array_equal(B.to_numpy(array, (8,), (1,), 0), np.arange(8))
    del array
    gc.collect()
    assert alive() is None  # and lets it go when it dies


def test_import_of_negative_strides_starts_at_the_lowest_address():
    x = np.arange(12, dtype="float32").reshape(3, 4)
    view = x[::-1, ::-2]
    array, shape, strides, offset, copied = _core.from_dlpack_capsule(view.__dlpack__())
    assert not copied and strides == [-4, -2] and array.ptr() == x.ctypes.data + 4
    np.testing.assert_array_equal(B.to_numpy(array, shape, strides, offset), view)


def test_import_copies_misaligned_and_read_only_memory():
    raw = np.zeros(4 * 5 + 1, dtype="uint8")
    misaligned = np.ndarray((5,), dtype="float32", buffer=raw, offset=1)
    misaligned[:] = [1, 2, 3, 4, 5]
    array, shape, strides, offset, copied = _core.from_dlpack_capsule(misaligned.__dlpack__())
    assert copied and array.ptr() % 4 == 0
    np.testing.assert_array_equal(B.to_numpy(array, shape, strides, offset), [1, 2, 3, 4, 5])
    ro = np.arange(3, dtype="float64")
    ro.flags.writeable = False
    array, shape, strides, offset, copied = _core.from_dlpack_capsule(ro.__dlpack__(max_version=(1, 0)))
    assert copied and array.ptr() != ro.ctypes.data
    np.testing.assert_array_equal(B.to_numpy(array, shape, strides, offset), [0, 1, 2])


def test_import_refuses_used_foreign_and_non_capsules():
    capsule = np.arange(3.0).__dlpack__()
    _core.from_dlpack_capsule(capsule)
    with pytest.raises(ValueError, match="used_dltensor"):
        _core.from_dlpack_capsule(capsule)
    with pytest.raises(TypeError, match="capsule"):
        _core.from_dlpack_capsule(np.arange(3.0))
    with pytest.raises(TypeError, match="float16"):
        _core.from_dlpack_capsule(np.zeros(2, dtype="float16").__dlpack__())
    with pytest.raises(TypeError, match="complex64"):
        _core.from_dlpack_capsule(np.zeros(2, dtype="complex64").__dlpack__())
    refused = np.zeros(2, dtype="int16").__dlpack__()
    with pytest.raises(TypeError, match="int16"):
        _core.from_dlpack_capsule(refused)
    del refused  # a refused capsule stays unused and frees its tensor itself
    gc.collect()


def test_imported_buffers_run_every_kernel_path():
    x = np.arange(-6, 6, dtype="float32").reshape(3, 4)
    array, shape, strides, offset, _ = _core.from_dlpack_capsule(x.__dlpack__())
    out = B.Array(12)
    B.ewise_relu(array, out)
    np.testing.assert_array_equal(B.to_numpy(out, (12,), (1,), 0), np.maximum(x.ravel(), 0))
    B.fill(array, 2.0)  # writes land in numpy's memory
    np.testing.assert_array_equal(x, np.full((3, 4), 2.0))
