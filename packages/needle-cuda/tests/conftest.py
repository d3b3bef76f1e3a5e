"""A numpy stand-in for CuPy, so that needle-cuda's kernel code runs on a machine without a GPU.

``stand_in`` (a fixture) makes needle_cuda import this instead of CuPy, through the
``_cupy._import_cupy`` seam: buffers are numpy arrays (an ndarray subclass with CuPy's ``.get``,
``.set``, ``.data.ptr`` and ``.device``), views over raw memory are numpy views over the same
allocation (numpy checks their bounds too), ufuncs and reductions are numpy's. The fused
``needle_*`` kernels are emulated from their C++ operation by :data:`FUSED`, and the tiled matmul by
running its launch plan block row by block row.

What it proves: the kernels' Python (which CuPy call, which dtype a scalar gets, which unsigned
view, which argument order a fused kernel gets, the index checks, the launch plan) computes what
numpy computes. What it cannot prove: that CuPy's and CUDA's semantics match numpy's. That is what
the GPU tests (test_cuda_gpu.py and the "gpu" parameter of test_cuda_kernels.py) check on a device,
and the NVRTC compile tests check of the C++.
"""
import types

import needle.backends as backends
import numpy as np
import pytest
from needle_cuda import _backend, _cupy, _kernels

_CURRENT_DEVICE = [0]


class FakeArray(np.ndarray):
    """A numpy array that answers CuPy's ndarray attributes needle-cuda uses."""

    def __array_finalize__(self, obj):
        self._device = getattr(obj, "_device", _CURRENT_DEVICE[0])

    @property
    def data(self):
        return _Pointer(self)

    @property
    def device(self):
        return types.SimpleNamespace(id=self._device)

    def get(self):
        return np.array(self, copy=True, subok=False)

    def set(self, host):
        np.copyto(self, host)


def _root(arr):
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


def _address(arr):
    return arr.__array_interface__["data"][0]


class _Pointer:
    """``ndarray.data``: an address inside one allocation; ``+ nbytes`` moves it."""

    def __init__(self, arr, extra=0):
        self.root = _root(arr)
        self.offset = _address(arr) - _address(self.root) + extra

    @property
    def ptr(self):
        return _address(self.root) + self.offset

    def __add__(self, nbytes):
        return _Pointer(self.root, self.offset + int(nbytes))


def _ndarray(shape, dtype=float, memptr=None, strides=None):
    """``cupy.ndarray(shape, dtype, memptr, strides)``: a view of memptr's allocation (bounds checked by numpy)."""
    if memptr is None:
        return np.ndarray.__new__(FakeArray, shape, dtype)
    return np.ndarray.__new__(FakeArray, shape, dtype, buffer=memptr.root, offset=memptr.offset, strides=strides)


def _empty(shape, dtype=float):
    return np.ndarray.__new__(FakeArray, shape, dtype)


class _Device:
    def __init__(self, index=None):
        self.id = _CURRENT_DEVICE[0] if index is None else int(index)

    def __enter__(self):
        self._previous, _CURRENT_DEVICE[0] = _CURRENT_DEVICE[0], self.id
        return self

    def __exit__(self, *exc):
        _CURRENT_DEVICE[0] = self._previous

    def synchronize(self):
        pass


def _cast_float_to_int(x, lo, hi, ymin, ymax, z):
    with np.errstate(invalid="ignore"):
        truncated = x.astype(z.dtype)  # unspecified where replaced below, as in the C++ operation
    z[...] = np.where(np.isnan(x), 0, np.where(x <= lo, ymin, np.where(x >= hi, ymax, truncated)))


#: The fused kernels' operations (``_kernels.ELEMENTWISE``) written with numpy: args as CuPy gets them.
FUSED = {
    "needle_ewise_sigmoid": lambda x, z: np.copyto(z, (0.5 * np.tanh(0.5 * x) + 0.5).astype(z.dtype)),
    "needle_where": lambda c, x, y, z: np.copyto(z, np.where(c, x, y)),
    "needle_abs_signed": lambda x, z: np.copyto(z, np.abs(x)),  # numpy wraps |INT_MIN| too
    "needle_cast_float_to_int": _cast_float_to_int,
}


class _ElementwiseKernel:
    def __init__(self, in_params, out_params, operation, name):
        self.name, self.nargs = name, len(in_params.split(",")) + len(out_params.split(","))

    def __call__(self, *args):
        assert len(args) == self.nargs, f"{self.name} takes {self.nargs} arguments (outputs included), got {len(args)}"
        assert args[-1].dtype != object
        FUSED[self.name](*args)


class _RawKernel:
    """The tiled matmul: each launch of the plan fills its (row blocks, batch) range, all columns."""

    def __init__(self, source, name):
        assert f"void {name}(" in source
        self.calls = []

    def __call__(self, grid, block, args):
        a, b, out, m, n, p, row_block0, batch0 = args
        m, n, p, row_block0, batch0 = (int(v) for v in (m, n, p, row_block0, batch0))
        tile = block[0]
        self.calls.append((grid, row_block0, batch0))
        for z in range(batch0, batch0 + grid[2]):
            rows = slice(row_block0 * tile, min(m, (row_block0 + grid[1]) * tile))
            cols = slice(0, min(p, grid[0] * tile))
            am = a[z * m * n:(z + 1) * m * n].reshape(m, n)
            bm = b[z * n * p:(z + 1) * n * p].reshape(n, p)
            out[z * m * p:(z + 1) * m * p].reshape(m, p)[rows, cols] = am[rows] @ bm[:, cols]


class _MemoryPool:
    """CuPy's default memory pool, as far as needle-cuda uses it: numpy frees each buffer at once, so
    the pool holds ``held[device]`` free bytes only where a test puts them; ``free_all_blocks`` drops them."""

    def __init__(self):
        self.held = {}
        self.freed = []  # the device of each free_all_blocks call

    def used_bytes(self):
        return 0

    def total_bytes(self):
        return self.held.get(_CURRENT_DEVICE[0], 0)

    def free_all_blocks(self):
        self.freed.append(_CURRENT_DEVICE[0])
        self.held.pop(_CURRENT_DEVICE[0], None)


def make_fake_cupy(device_count=1):
    """A module that needle_cuda can use as ``cupy``; names it does not define come from numpy."""
    fake = types.ModuleType("cupy")
    fake.__version__ = "0.0.0+numpy-stand-in"
    fake.cuda = types.SimpleNamespace(
        runtime=types.SimpleNamespace(getDeviceCount=lambda: device_count),
        nvrtc=types.SimpleNamespace(getVersion=lambda: (0, 0)), Device=_Device)
    fake.ndarray, fake.empty = _ndarray, _empty
    fake.ElementwiseKernel, fake.RawKernel = _ElementwiseKernel, _RawKernel
    pool = _MemoryPool()
    fake.get_default_memory_pool = lambda: pool
    fake.from_dlpack = lambda obj: np.from_dlpack(obj).view(FakeArray)  # host memory, standing in for the device's
    fake.__getattr__ = lambda name: getattr(np, name)
    return fake


@pytest.fixture
def stand_in(monkeypatch):
    """needle_cuda on the numpy stand-in for CuPy (one fake device); yields the protocol module."""
    def clear():
        _cupy.reset()
        _kernels._CACHE.clear()
        _backend._bound.clear()
        backends.reset()
        _CURRENT_DEVICE[0] = 0
    clear()
    fake = make_fake_cupy()
    monkeypatch.setattr(_cupy, "_import_cupy", lambda: fake)
    assert _cupy.unavailable_reason() is None
    yield _backend
    monkeypatch.undo()
    clear()
