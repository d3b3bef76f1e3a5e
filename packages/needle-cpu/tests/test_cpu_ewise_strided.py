"""ewise_binary_strided (binary float32 ops on strided/broadcast views, read in place) vs numpy."""
import numpy as np
import pytest
from numpy.lib.stride_tricks import as_strided

import needle
from needle.backend_ndarray import NDArray
from needle_cpu import _backend as B

CPU = needle.device("cpu")
OPS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}
# (buffer size, shape, strides, offset): transposes, steps, broadcasts (stride 0), negative strides, empties.
VIEWS = [
    (12, (3, 4), (4, 1), 0), (12, (4, 3), (1, 4), 0), (12, (2, 2), (8, 2), 1), (1, (), (), 0),
    (5, (5, 3), (1, 0), 0), (10, (0, 3), (3, 1), 0), (7, (7,), (-1,), 6), (60, (3, 4, 5), (20, 1, 4), 0),
    (60, (5, 3, 2), (1, 20, 10), 0), (120, (2, 3, 4, 5), (60, 5, 15, 1), 0), (50, (4, 50), (0, 1), 0),
    (400000, (500, 400), (1, 1000), 3),
]


def to_buffer(x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    buf = B.Array(x.size)
    B.from_numpy(x, buf)
    return buf


def numpy_view(flat, shape, strides, offset):
    return as_strided(flat[offset:], shape=shape, strides=tuple(s * 4 for s in strides))


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("size,shape,strides,offset", VIEWS)
def test_kernel_matches_numpy_on_views(op, size, shape, strides, offset):
    rng = np.random.default_rng(0)
    flat_a = rng.standard_normal(size).astype(np.float32)
    flat_b = (rng.random(size) + 0.5).astype(np.float32)  # away from 0: division
    out = B.Array(int(np.prod(shape)))
    # a is the strided view; b the same view of another buffer, then a compact operand.
    B.ewise_binary_strided(op, to_buffer(flat_a), strides, offset, to_buffer(flat_b), strides, offset, out, shape)
    expect = OPS[op](numpy_view(flat_a, shape, strides, offset), numpy_view(flat_b, shape, strides, offset))
    np.testing.assert_array_equal(B.to_numpy(out, shape, compact_strides(shape), 0), expect)


def compact_strides(shape):
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


@pytest.mark.parametrize("a_shape,b_shape", [
    ((6, 5), (5,)), ((6, 5), (6, 1)), ((2, 3, 4), (1, 3, 1)), ((2, 3, 4), (2, 3, 1)), ((4, 1), (1, 7)),
    ((3, 1, 5), (1, 4, 1)), ((200, 300), (300,)), ((300, 200), (300, 1)), ((0, 3), (3,))])
@pytest.mark.parametrize("op", ["__add__", "__sub__", "__mul__", "__truediv__"])
def test_broadcast_binary_ops_match_numpy(a_shape, b_shape, op):
    # Oracle: numpy's broadcasting. The NDArray path reads the broadcast operand in place.
    rng = np.random.default_rng(1)
    x = rng.standard_normal(a_shape).astype(np.float32)
    y = (rng.random(b_shape) + 0.5).astype(np.float32)
    for p, q in ((x, y), (y, x)):
        got = getattr(NDArray(p, device=CPU), op)(NDArray(q, device=CPU))
        np.testing.assert_allclose(got.numpy(), getattr(p, op)(q), rtol=1e-6)


def test_non_compact_same_shape_operands():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 6)).astype(np.float32)
    y = rng.standard_normal((6, 8)).astype(np.float32)
    a = NDArray(x, device=CPU)[1:7:2, ::2]  # a stepped slice
    b = NDArray(y, device=CPU).permute((1, 0))[1:7:2, ::2]
    np.testing.assert_allclose((a * b).numpy(), x[1:7:2, ::2] * y.T[1:7:2, ::2], rtol=1e-6)


def test_kernel_refuses_bad_arguments():
    buf, out = to_buffer(np.ones(6)), B.Array(6)
    with pytest.raises(ValueError, match="op must be"):
        B.ewise_binary_strided("pow", buf, (3, 1), 0, buf, (3, 1), 0, out, (2, 3))
    with pytest.raises((ValueError, IndexError), match="outside"):
        B.ewise_binary_strided("add", buf, (3, 1), 1, buf, (3, 1), 0, out, (2, 3))
    with pytest.raises(TypeError):
        B.ewise_binary_strided("add", B.Array(6, "float64"), (3, 1), 0, buf, (3, 1), 0, out, (2, 3))
    with pytest.raises(ValueError, match="out"):
        B.ewise_binary_strided("add", buf, (3, 1), 0, buf, (3, 1), 0, B.Array(5), (2, 3))


def test_out_aliasing_an_operand_is_computed_through_a_copy():
    x = np.arange(6, dtype=np.float32)
    buf = to_buffer(x)
    B.ewise_binary_strided("add", buf, (1, 0), 0, buf, (3, 1), 0, buf, (2, 3))  # x[i] + x[3i+j]... into x
    expect = np.add(np.broadcast_to(x[:2, None], (2, 3)), x.reshape(2, 3)).reshape(-1)
    np.testing.assert_array_equal(B.to_numpy(buf, (6,), (1,), 0), expect)
