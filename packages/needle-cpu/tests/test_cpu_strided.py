"""Strided kernels (compact, setitem, to_numpy) and NDArray views on device("cpu"), vs numpy."""
import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import needle
from needle.backend_ndarray import NDArray
from needle_cpu import _backend as B

CPU = needle.device("cpu")


def to_buffer(x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    buf = B.Array(x.size)
    B.from_numpy(x, buf)
    return buf


def numpy_view(flat, shape, strides, offset):
    return as_strided(flat[offset:], shape=shape, strides=tuple(s * 4 for s in strides))


# (buffer size, shape, strides, offset): transposes, steps, broadcasts (stride 0), negative strides, empties.
VIEWS = [
    (12, (3, 4), (4, 1), 0), (12, (4, 3), (1, 4), 0), (12, (2, 2), (8, 2), 1), (1, (), (), 0),
    (5, (5, 3), (1, 0), 0), (10, (0, 3), (3, 1), 0), (10, (3, 0), (1, 1), 9), (7, (7,), (-1,), 6),
    (60, (3, 4, 5), (20, 1, 4), 0), (60, (5, 3, 2), (1, 20, 10), 0), (120, (2, 3, 4, 5), (60, 5, 15, 1), 0),
    (200003, (200003,), (1,), 0), (400000, (500, 400), (1, 1000), 3), (90000, (300, 300), (-300, 1), 89700),
    # transposes (blocked copy path): odd sizes, batched, reversed, broadcast, big enough to thread
    (2997, (37, 81), (1, 37), 0), (7000, (2, 70, 50), (3500, 1, 70), 0), (4000, (40, 100), (1, -40), 3960),
    (64, (64, 9), (1, 0), 0), (8580, (4, 33, 65), (2145, 1, 33), 0), (1 << 20, (1024, 1024), (1, 1024), 0),
    (3 * 257 * 129, (3, 129, 257), (257 * 129, 1, 129), 0),
]


@pytest.mark.parametrize("size,shape,strides,offset", VIEWS)
def test_compact_and_to_numpy(isa, rng, size, shape, strides, offset):
    flat = rng.standard_normal(size).astype(np.float32)
    expected = numpy_view(flat, shape, strides, offset)
    n = int(np.prod(shape))
    out = B.Array(n)
    B.compact(to_buffer(flat), out, shape, strides, offset)
    np.testing.assert_array_equal(np.asarray(out).reshape(shape), expected)
    got = B.to_numpy(to_buffer(flat), shape, strides, offset)
    assert got.shape == tuple(shape) and got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("size,shape,strides,offset", [v for v in VIEWS if 0 not in v[2] or v[1][v[2].index(0)] <= 1])
def test_setitem(isa, rng, size, shape, strides, offset):
    flat = rng.standard_normal(size).astype(np.float32)
    n = int(np.prod(shape))
    values = rng.standard_normal(n).astype(np.float32)
    expected = flat.copy()
    numpy_view(expected, shape, strides, offset)[...] = values.reshape(shape)
    buf = to_buffer(flat)
    B.ewise_setitem(to_buffer(values), buf, shape, strides, offset)
    np.testing.assert_array_equal(np.asarray(buf), expected)

    expected = flat.copy()
    numpy_view(expected, shape, strides, offset)[...] = -4.25
    buf = to_buffer(flat)
    B.scalar_setitem(n, -4.25, buf, shape, strides, offset)
    np.testing.assert_array_equal(np.asarray(buf), expected)


def test_from_numpy_converts_any_layout():
    src = np.arange(24, dtype=np.float64).reshape(4, 6)[:, ::2].T  # non-contiguous float64
    buf = B.Array(src.size)
    B.from_numpy(src, buf)
    np.testing.assert_array_equal(np.asarray(buf), src.astype(np.float32).ravel())


def test_buffer_is_aligned_and_zero_copy():
    for n in (0, 1, 3, 1000, 1 << 20):
        buf = B.Array(n)
        assert buf.ptr() % 64 == 0 and buf.size == n and buf.dtype == "float32"
        view = np.asarray(buf)
        assert view.ctypes.data == buf.ptr() and view.shape == (n,)


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 3, 4), (1, 1, 1), (0, 4), (4, 1, 6)])
def test_ndarray_views(shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    a = NDArray(x, device=CPU)
    assert a.device == CPU
    np.testing.assert_array_equal(a.numpy(), x)
    axes = tuple(reversed(range(len(shape))))
    np.testing.assert_array_equal(a.permute(axes).compact().numpy(), x.transpose(axes))
    np.testing.assert_array_equal(a.flip(tuple(range(len(shape)))).numpy(), np.flip(x))
    big = tuple(2 * s + 1 for s in shape)
    np.testing.assert_array_equal(NDArray(np.ones(shape[:-1] + (1,), np.float32), device=CPU)
                                  .broadcast_to(shape).numpy(), np.ones(shape, np.float32))
    y = rng.standard_normal(big).astype(np.float32)
    b = NDArray(y, device=CPU)
    sl = tuple(slice(1, None, 2) for _ in shape)
    np.testing.assert_array_equal(b[sl].numpy(), y[sl])
    b[sl] = a
    y[sl] = x
    np.testing.assert_array_equal(b.numpy(), y)
    b[sl] = 2.5
    y[sl] = 2.5
    np.testing.assert_array_equal(b.numpy(), y)


def test_ndarray_ops(rng):
    x = rng.standard_normal((17, 23)).astype(np.float32)
    y = rng.standard_normal((23, 5)).astype(np.float32)
    a, b = NDArray(x, device=CPU), NDArray(y, device=CPU)
    np.testing.assert_allclose((a @ b).numpy(), x @ y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose((a.permute((1, 0)) @ a).numpy(), x.T @ x, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(a.sum(axis=0).numpy(), x.sum(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(a.max(axis=(0, 1)).numpy(), x.max())
    np.testing.assert_allclose((2.0 - a).numpy(), 2.0 - x)
    np.testing.assert_allclose((4.0 / (a * a + 1)).numpy(), 4.0 / (x * x + 1), rtol=1e-6)
    np.testing.assert_allclose(a.relu().numpy(), np.maximum(x, 0))
    np.testing.assert_allclose((a[2:9:3, ::-2] + 1).numpy(), x[2:9:3, ::-2] + 1)
    batched = rng.standard_normal((4, 3, 17, 23)).astype(np.float32)
    got = (NDArray(batched, device=CPU) @ b).numpy()
    np.testing.assert_allclose(got, batched @ y, rtol=1e-5, atol=1e-5)


def test_unsupported_dtype_raises_type_error():
    # Protocol 2: the six dtypes are supported (test_cpu_dtypes.py); anything else names itself and the set.
    with pytest.raises(TypeError, match="float16.*|.*'float32', 'float64', 'int32', 'int64', 'uint8', 'bool'"):
        B.Array(4, dtype="float16")
    with pytest.raises(TypeError, match="complex64"):
        B.Array(4, np.complex64)
    with pytest.raises(TypeError):
        B.Array(4, None)
    assert B.Array(4, np.float32).dtype == "float32"
    assert B.Array(4, np.int32).dtype == "int32"
