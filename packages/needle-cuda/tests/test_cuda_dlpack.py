"""needle-cuda's DLPack kernels (``_dlpack.py``): on the numpy stand-in for CuPy (host memory standing in
for device memory), and through needle with CuPy and PyTorch on a GPU (skipped without one).
"""
import gc

import numpy as np
import pytest

import needle as ndl
from needle_cuda import _backend


class _Producer:
    """Hands a capsule to a consumer, as a tensor's __dlpack__ would."""

    def __init__(self, capsule, device=(1, 0)):
        self.capsule, self.device = capsule, device

    def __dlpack__(self, **kwargs):
        return self.capsule

    def __dlpack_device__(self):
        return self.device


def test_stand_in_export_shares_the_strided_view(stand_in):
    a = stand_in.Array(12, "float32")
    stand_in.from_numpy(np.arange(12, dtype="float32"), a)
    assert stand_in.dlpack_device(a) == (2, 0)
    y = np.from_dlpack(_Producer(stand_in.dlpack_export(a, (3, 2), (1, 4), 1, max_version=(1, 0))))
    expected = 1 + np.arange(3)[:, None] + 4 * np.arange(2)[None, :]  # element (i, j) at 1 + i + 4 j
    np.testing.assert_array_equal(y, expected.astype("float32"))
    y[0, 1] = -1.0
    assert stand_in.to_numpy(a, (12,), (1,), 0)[5] == -1.0
    with pytest.raises(ValueError, match="outside"):
        stand_in.dlpack_export(a, (4, 4), (4, 1), 0)


def test_stand_in_import_adopts_the_memory(stand_in):
    x = np.arange(20, dtype="int64").reshape(4, 5)
    # The stand-in's pointers need a contiguous allocation: strided imports are checked on a GPU below
    # (and the same extent logic on the numpy backend by the conformance suite).
    for view in (x, x[1:], x[2]):
        array, shape, strides, offset = stand_in.dlpack_import(view)
        got = stand_in.to_numpy(array, shape, strides, offset)
        np.testing.assert_array_equal(got, view)
    array, shape, strides, offset = stand_in.dlpack_import(x)
    stand_in.fill(array, 3)
    assert (x == 3).all()
    empty = stand_in.dlpack_import(np.zeros((2, 0), dtype="float32"))
    assert empty[0].size == 0 and empty[1] == (2, 0)
    with pytest.raises(TypeError, match="float16"):
        stand_in.dlpack_import(np.zeros(2, dtype="float16"))


# ---- on a GPU -----------------------------------------------------------------------------------

REASON = _backend.unavailable_reason()
gpu = pytest.mark.skipif(REASON is not None, reason=f"needs a CUDA GPU: {REASON}")


@pytest.mark.gpu
@gpu
def test_gpu_cupy_round_trip_shares_device_memory():
    import cupy as cp

    for dtype in ("bool", "uint8", "int32", "int64", "float32", "float64"):
        x = cp.arange(12).reshape(3, 4).astype(dtype)
        t = ndl.from_dlpack(x)
        assert t.device == ndl.cuda(0) and t.dtype == dtype and t.__dlpack_device__() == (2, 0)
        data = t.realize_cached_data()
        assert data._handle.ptr() + data.offset * x.itemsize == x.data.ptr
        back = cp.from_dlpack(t)
        assert back.data.ptr == x.data.ptr
        back[1, 1] = 0
        assert t.numpy()[1, 1] == 0
    x = cp.arange(24, dtype="float32").reshape(4, 6)
    t = ndl.from_dlpack(x[:, 1::2].T)
    del x
    gc.collect()
    np.testing.assert_array_equal(t.numpy(), np.arange(24, dtype="float32").reshape(4, 6)[:, 1::2].T)
    with pytest.raises(ValueError, match="not in host memory"):
        t.numpy(copy=False)
    with pytest.raises(TypeError, match="float16"):
        ndl.from_dlpack(cp.zeros(2, dtype="float16"))


@pytest.mark.gpu
@gpu
def test_gpu_torch_cuda_round_trip():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("this PyTorch build has no CUDA")
    x = torch.arange(6, dtype=torch.float32, device="cuda").reshape(2, 3)
    t = ndl.from_dlpack(x)
    back = torch.from_dlpack(t)
    assert back.data_ptr() == x.data_ptr()
    back[0, 0] = 7.0
    assert t.numpy()[0, 0] == 7.0
