"""Conformance: DLPack exchange (API.md, "PyTorch habits", Interop) on every backend with the DLPack kernels.

``Tensor.__dlpack__``/``__dlpack_device__`` and ``needle.from_dlpack`` with numpy (>= 1.22) as the
other side, and PyTorch on the CPU when it is installed: values against numpy, shared memory checked by
pointer and by a write on one side read on the other, lifetimes (the producer deleted first), strided,
flipped, broadcast, 0-d and empty views, every dtype, and the errors for what cannot be shared. Backends
without the kernels (``protocol.DLPACK_KERNELS``) skip; host-memory tests skip on device backends.
"""
import gc

import numpy as np
import pytest

import needle as ndl
from needle.backend_ndarray.protocol import DLPACK_KERNELS

ALL = ("bool", "uint8", "int32", "int64", "float32", "float64")


@pytest.fixture
def host(dev):
    """The device under test when it exchanges host memory through DLPack, else a skip."""
    missing = [k for k in DLPACK_KERNELS if dev.optional(k) is None]
    if missing:
        pytest.skip(f"backend {dev.backend_name!r} has no DLPack kernels ({', '.join(missing)})")
    if tuple(dev.dlpack_device(dev.Array(0, "float32"))) != (1, 0):
        pytest.skip(f"backend {dev.backend_name!r} does not hold host memory")
    return dev


def _values(dtype, shape=(3, 4)):
    x = np.arange(int(np.prod(shape))).reshape(shape)
    return (x % 3 == 0) if dtype == "bool" else x.astype(dtype)


def _tensor(x, dev):
    return ndl.Tensor(x, device=dev, dtype=str(x.dtype), requires_grad=False)


def _first_address(t):
    """Address of the first element of tensor ``t``'s view."""
    data = t.realize_cached_data()
    return data._handle.ptr() + data.offset * np.dtype(data.dtype).itemsize


def _dtypes(dev):
    return [d for d in ALL if d in dev.dtypes]


# ---- export: needle -> numpy ----------------------------------------------------------------


def test_export_to_numpy_shares_memory_every_dtype(host):
    for dtype in _dtypes(host):
        x = _values(dtype)
        t = _tensor(x, host)
        assert t.__dlpack_device__() == (1, 0)
        y = np.from_dlpack(t)
        assert y.dtype == np.dtype(dtype) and y.shape == (3, 4), dtype
        np.testing.assert_array_equal(y, x)
        assert y.ctypes.data == _first_address(t), dtype
        y[1, 2] = 0 if dtype != "bool" else not y[1, 2]
        assert t.numpy()[1, 2] == y[1, 2], f"{dtype}: a write through numpy is not seen by the tensor"


def test_export_strided_views_share_memory(host):
    x = np.arange(24, dtype="float32").reshape(4, 6)
    base = _tensor(x, host)
    data = base.realize_cached_data()
    views = {"transpose": (data.permute((1, 0)), x.T), "slice": (data[1:3, ::2], x[1:3, ::2]),
             "broadcast": (data[0:1, :].broadcast_to((3, 6)), np.broadcast_to(x[0:1], (3, 6)))}
    for name, (view, expected) in views.items():
        y = np.from_dlpack(ndl.Tensor.make_const(view))
        np.testing.assert_array_equal(y, expected, err_msg=name)
        assert np.shares_memory(y, np.from_dlpack(base)), name
    y = np.from_dlpack(ndl.Tensor.make_const(data[1:3, ::2]))
    y[0, 1] = -7.0
    assert base.numpy()[1, 2] == -7.0


def test_export_flipped_view_is_a_compact_copy(host):
    x = np.arange(12, dtype="float32").reshape(3, 4)
    base = _tensor(x, host)
    flipped = ndl.Tensor.make_const(base.realize_cached_data().flip((1,)))
    y = np.from_dlpack(flipped)
    np.testing.assert_array_equal(y, x[:, ::-1])
    assert not np.shares_memory(y, np.from_dlpack(base))
    with pytest.raises(BufferError, match="negative stride"):
        flipped.__dlpack__(copy=False)


def test_export_0d_and_empty(host):
    t = _tensor(np.array(2.5, dtype="float32"), host)
    y = np.from_dlpack(t)
    assert y.shape == () and y == np.float32(2.5)
    e = _tensor(np.zeros((0, 3), dtype="float32"), host)
    assert np.from_dlpack(e).shape == (0, 3)


def test_export_outlives_the_tensor(host):
    t = _tensor(np.arange(1000, dtype="float32"), host)
    y = np.from_dlpack(t)
    del t
    gc.collect()
    junk = [np.full(1000, -1.0, dtype="float32") for _ in range(50)]  # reuse freed memory, if any was freed
    junk += [_tensor(np.full(1000, -1.0, dtype="float32"), host) for _ in range(50)]
    np.testing.assert_array_equal(y, np.arange(1000, dtype="float32"))


def test_export_refuses_other_device_and_stream(host):
    t = _tensor(np.ones(3, dtype="float32"), host)
    with pytest.raises(BufferError, match="dl_device"):
        t.__dlpack__(dl_device=(2, 0))
    with pytest.raises(BufferError, match="stream"):
        t.__dlpack__(stream=1)
    capsule = t.__dlpack__()  # an unused capsule releases its reference when it dies
    del capsule, t
    gc.collect()


# ---- import: numpy -> needle ----------------------------------------------------------------


def test_import_from_numpy_shares_memory_every_dtype(host):
    for dtype in _dtypes(host):
        x = _values(dtype)
        t = ndl.from_dlpack(x, device=host)
        assert t.device == host and t.dtype == dtype and t.shape == (3, 4) and not t.requires_grad
        np.testing.assert_array_equal(t.numpy(), x)
        assert _first_address(t) == x.ctypes.data, dtype
        x[2, 3] = 1 if dtype != "bool" else not x[2, 3]
        assert t.numpy()[2, 3] == x[2, 3], f"{dtype}: a write through numpy is not seen by the tensor"
        t.numpy(copy=False)[0, 1] = 0
        assert x[0, 1] == 0, f"{dtype}: a write through the tensor is not seen by numpy"


def test_import_strided_and_flipped_numpy_views(host):
    x = np.arange(30, dtype="float64" if "float64" in host.dtypes else "float32").reshape(5, 6)
    for name, view in {"transpose": x.T, "slice": x[1:4, ::2], "flip": x[::-1, 1::2], "both": x[::-2, ::-3],
                       "broadcast": np.broadcast_to(x[2], (4, 6))}.items():
        t = ndl.from_dlpack(view, device=host)
        np.testing.assert_array_equal(t.numpy(), view, err_msg=name)
        np.testing.assert_array_equal((t * 2).numpy(), view * 2, err_msg=name)  # kernels read the view right
    t = ndl.from_dlpack(x[::-1, 1::2], device=host)
    x[4, 1] = 100.0  # element (0, 0) of the flipped view
    assert t.numpy()[0, 0] == 100.0


def test_import_0d_empty_and_read_only(host):
    t = ndl.from_dlpack(np.array(7, dtype="int64"), device=host)
    assert t.shape == () and t.dtype == "int64" and t.numpy() == 7
    assert ndl.from_dlpack(np.zeros((2, 0), dtype="float32"), device=host).shape == (2, 0)
    ro = np.arange(4, dtype="float32")
    ro.flags.writeable = False
    t = ndl.from_dlpack(ro, device=host)  # read-only memory: a copy that needle may write
    np.testing.assert_array_equal(t.numpy(), ro)
    t.numpy(copy=False)[0] = 5.0
    assert ro[0] == 0.0


def test_import_outlives_the_producer(host):
    x = np.arange(4096, dtype="float32") * 3
    t = ndl.from_dlpack(x, device=host)
    del x
    gc.collect()
    junk = [np.full(4096, -1.0, dtype="float32") for _ in range(50)]  # noqa: F841
    np.testing.assert_array_equal(t.numpy(), np.arange(4096, dtype="float32") * 3)
    np.testing.assert_array_equal((t + 1).numpy(), np.arange(4096, dtype="float32") * 3 + 1)


def test_needle_to_needle_round_trip_shares(host):
    t = _tensor(np.arange(6, dtype="int32").reshape(2, 3), host)
    u = ndl.from_dlpack(t, device=host)
    assert _first_address(u) == _first_address(t)
    np.testing.assert_array_equal(u.numpy(), t.numpy())


def test_import_copy_true_copies(host):
    x = np.arange(5, dtype="float32")
    t = ndl.from_dlpack(x, device=host, copy=True)
    x[0] = 9.0
    assert t.numpy()[0] == 0.0


class _Foreign:
    """A DLPack producer on another device, or of another dtype, to check the refusals."""

    def __init__(self, device=(1, 0), array=None):
        self.device, self.array = device, array

    def __dlpack_device__(self):
        return self.device

    def __dlpack__(self, **kwargs):
        return self.array.__dlpack__()


def test_import_errors_name_the_dtype_and_the_device(host):
    for bad in (np.zeros(3, dtype="float16"), np.zeros(3, dtype="complex64"), np.zeros(3, dtype="int16")):
        with pytest.raises(TypeError, match=str(bad.dtype).replace("complex64", "complex")):
            ndl.from_dlpack(bad, device=host)
    with pytest.raises(BufferError, match="ROCm"):
        ndl.from_dlpack(_Foreign((10, 0), np.zeros(3)))
    with pytest.raises(BufferError, match="CUDA"):
        ndl.from_dlpack(_Foreign((2, 0), np.zeros(3)), device=host)
    with pytest.raises(TypeError, match="__dlpack__"):
        ndl.from_dlpack([1.0, 2.0])


# ---- Tensor.numpy(copy=False) ---------------------------------------------------------------


def test_numpy_copy_false_shares_and_copy_true_copies(host):
    t = _tensor(np.arange(6, dtype="float32").reshape(2, 3), host)
    shared, copied = t.numpy(copy=False), t.numpy()
    shared[0, 0] = 42.0
    assert t.numpy()[0, 0] == 42.0 and copied[0, 0] == 0.0
    assert shared.ctypes.data == _first_address(t)
    sliced = ndl.Tensor.make_const(t.realize_cached_data()[:, 1:])
    np.testing.assert_array_equal(sliced.numpy(copy=False), t.numpy()[:, 1:])
    flipped = ndl.Tensor.make_const(t.realize_cached_data().flip((0,)))
    with pytest.raises(ValueError, match="negative stride"):
        flipped.numpy(copy=False)


# ---- PyTorch on the CPU -----------------------------------------------------------------------


def test_torch_round_trips_share_memory(host):
    torch = pytest.importorskip("torch")
    for dtype in _dtypes(host):
        x = torch.from_numpy(np.ascontiguousarray(_values(dtype)))
        t = ndl.from_dlpack(x, device=host)
        assert t.dtype == dtype and _first_address(t) == x.data_ptr(), dtype
        x[0, 0] = 1 if dtype != "bool" else True
        assert t.numpy()[0, 0] == x[0, 0].item(), dtype
        back = torch.from_dlpack(t)
        assert back.data_ptr() == x.data_ptr() and back.dtype == x.dtype, dtype
        back[1, 1] = 0 if dtype != "bool" else False
        assert t.numpy()[1, 1] == 0 and x[1, 1].item() == 0, dtype


def test_torch_strided_lifetimes_and_refusals(host):
    torch = pytest.importorskip("torch")
    x = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    for view in (x.t(), x[1:3, ::2], x.expand(2, 4, 6)):
        np.testing.assert_array_equal(ndl.from_dlpack(view, device=host).numpy(), view.numpy())
    t = ndl.from_dlpack(x[:, 1::2], device=host)
    del x
    gc.collect()
    junk = [torch.full((4, 6), -1.0) for _ in range(50)]  # noqa: F841
    np.testing.assert_array_equal(t.numpy(), np.arange(24, dtype="float32").reshape(4, 6)[:, 1::2])
    n = _tensor(np.arange(12, dtype="float32").reshape(3, 4), host)
    y = torch.from_dlpack(ndl.Tensor.make_const(n.realize_cached_data().permute((1, 0))))
    assert y.stride() == (1, 4)
    np.testing.assert_array_equal(y.numpy(), np.arange(12, dtype="float32").reshape(3, 4).T)
    del n
    gc.collect()
    np.testing.assert_array_equal(y.numpy(), np.arange(12, dtype="float32").reshape(3, 4).T)
    for bad in (torch.zeros(2, dtype=torch.bfloat16), torch.zeros(2, dtype=torch.float16)):
        with pytest.raises(TypeError, match="16"):
            ndl.from_dlpack(bad, device=host)
