"""The binding layer: every bad size, offset or stride raises ValueError/TypeError, never crashes."""
import numpy as np
import pytest

from needle_cpu import _backend as B


def buf(n, value=1.0):
    b = B.Array(n)
    B.fill(b, value)
    return b


@pytest.mark.parametrize("shape,strides,offset", [
    ((3, 4), (4, 1), 1),          # one past the end
    ((13,), (1,), 0),             # longer than the buffer
    ((3,), (-1,), 1),             # negative stride walks below 0
    ((2,), (1,), -1),             # negative offset
    ((2, 2), (2**62, 1), 0),      # index overflow
    ((2,), (2**40,), 0),
    ((3, 4), (4,), 0),            # length mismatch
    ((-1, 4), (4, 1), 0),         # negative dimension
    ((2**40, 2**40), (0, 0), 0),  # element count overflow
])
def test_bad_views_raise(shape, strides, offset):
    a = buf(12)
    n = max(1, min(int(np.prod([max(s, 0) for s in shape])), 64))
    for call in (
        lambda: B.compact(a, B.Array(n), shape, strides, offset),
        lambda: B.to_numpy(a, shape, strides, offset),
        lambda: B.ewise_setitem(buf(n), a, shape, strides, offset),
        lambda: B.scalar_setitem(n, 0.0, a, shape, strides, offset),
    ):
        with pytest.raises(ValueError):
            call()
    np.testing.assert_array_equal(np.asarray(a), np.ones(12, np.float32))  # nothing was written


def test_empty_view_ignores_offset():
    a = buf(3)
    assert B.to_numpy(a, (0, 5), (5, 1), 100).shape == (0, 5)
    B.scalar_setitem(0, 2.0, a, (0,), (1,), 100)
    np.testing.assert_array_equal(np.asarray(a), np.ones(3, np.float32))


def test_compact_needs_matching_out():
    with pytest.raises(ValueError, match="out has 5 elements, needs 6"):
        B.compact(buf(6), B.Array(5), (2, 3), (3, 1), 0)
    with pytest.raises(ValueError, match="needs at least 6"):
        B.ewise_setitem(buf(5), buf(6), (2, 3), (3, 1), 0)


@pytest.mark.parametrize("name", ["ewise_add", "ewise_mul", "ewise_eq", "ewise_power"])
def test_binary_size_mismatch(name):
    with pytest.raises(ValueError, match="b has 3 elements"):
        getattr(B, name)(buf(4), buf(3), B.Array(4))
    with pytest.raises(ValueError, match="a has 5 elements"):
        getattr(B, name)(buf(5), buf(4), B.Array(4))


def test_unary_and_scalar_size_mismatch():
    with pytest.raises(ValueError):
        B.ewise_exp(buf(2), B.Array(3))
    with pytest.raises(ValueError):
        B.scalar_add(buf(3), 1.0, B.Array(2))


@pytest.mark.parametrize("m,n,p,sa,sb,so", [
    (2, 3, 4, 5, 12, 8), (2, 3, 4, 6, 11, 8), (2, 3, 4, 6, 12, 7), (-1, 3, 4, 6, 12, 8),
    (2**31, 2**31, 2**31, 6, 12, 8), (2**62, 2**62, 1, 1, 1, 1),
])
def test_matmul_bad_sizes(m, n, p, sa, sb, so):
    for call in (lambda: B.matmul(buf(sa), buf(sb), B.Array(so), m, n, p),
                 lambda: B.matmul_tn(buf(sa), buf(sb), B.Array(so), m, n, p),
                 lambda: B.matmul_nt(buf(sa), buf(sb), B.Array(so), m, n, p),
                 lambda: B.matmul_batched(buf(sa), buf(sb), B.Array(so), 1, m, n, p),
                 lambda: B.matmul_bias(buf(sa), buf(sb), buf(max(p, 0) if 0 <= p < 100 else 1), B.Array(so), m, n, p)):
        with pytest.raises(ValueError):
            call()


def test_matmul_tn_names_the_short_buffer():
    # a is (n x m): 3 x 2 for m, n, p = 2, 3, 4.
    with pytest.raises(ValueError, match="matmul_tn: buffer a has 5 elements, needs at least 6"):
        B.matmul_tn(buf(5), buf(12), B.Array(8), 2, 3, 4)
    with pytest.raises(ValueError, match="matmul_tn: buffer out has 7 elements, needs at least 8"):
        B.matmul_tn(buf(6), buf(12), B.Array(7), 2, 3, 4)


def test_matmul_nt_names_the_short_buffer():
    # a is (m x n) = 2 x 3 and b (p x n) = 4 x 3 for m, n, p = 2, 3, 4.
    with pytest.raises(ValueError, match="matmul_nt: buffer a has 5 elements, needs at least 6"):
        B.matmul_nt(buf(5), buf(12), B.Array(8), 2, 3, 4)
    with pytest.raises(ValueError, match="matmul_nt: buffer b has 11 elements, needs at least 12"):
        B.matmul_nt(buf(6), buf(11), B.Array(8), 2, 3, 4)
    with pytest.raises(ValueError, match="matmul_nt: buffer out has 7 elements, needs at least 8"):
        B.matmul_nt(buf(6), buf(12), B.Array(7), 2, 3, 4)
    with pytest.raises(ValueError, match="matmul_nt: p"):
        B.matmul_nt(buf(6), buf(12), B.Array(8), 2, 3, -4)


def test_matmul_bias_short_bias():
    with pytest.raises(ValueError, match="bias has 3 elements"):
        B.matmul_bias(buf(6), buf(12), buf(3), B.Array(8), 2, 3, 4)


def test_reduce_bad_sizes():
    with pytest.raises(ValueError):
        B.reduce_sum(buf(5), B.Array(2), 3)
    with pytest.raises(ValueError):
        B.reduce_sum(buf(5), B.Array(2), -1)
    with pytest.raises(ValueError, match="zero-size"):
        B.reduce_max(buf(5), B.Array(2), 0)
    out = B.Array(2)
    B.reduce_sum(buf(0), out, 0)
    np.testing.assert_array_equal(np.asarray(out), [0.0, 0.0])


def test_array_arguments():
    with pytest.raises(ValueError):
        B.Array(-1)
    with pytest.raises(ValueError):
        B.Array(2**70)
    with pytest.raises(TypeError):
        B.Array(2.5)
    with pytest.raises(TypeError):
        B.Array("10")
    assert B.Array(np.int64(3)).size == 3


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError):
        B.ewise_add(np.zeros(3, np.float32), buf(3), B.Array(3))
    with pytest.raises(TypeError):
        B.ewise_add(None, buf(3), B.Array(3))
    with pytest.raises(TypeError):
        B.compact(buf(3), B.Array(3), (3.0,), (1,), 0)
    with pytest.raises(TypeError):
        B.from_numpy(np.array(["a", "b"], dtype=object), B.Array(2))
    with pytest.raises(ValueError, match="array has 3 elements"):
        B.from_numpy(np.zeros(3), B.Array(4))


def test_numpy_integer_arguments_accepted():
    a = buf(6, 2.0)
    got = B.to_numpy(a, (np.int64(2), np.int32(3)), (np.int64(3), 1), np.int64(0))
    np.testing.assert_array_equal(got, np.full((2, 3), 2.0, np.float32))


def test_impossible_allocation_raises_memory_error():
    with pytest.raises(MemoryError, match="cannot allocate"):
        B.Array(2**50)


def test_buffer_view_keeps_buffer_alive():
    a = buf(10, 3.0)
    view = np.asarray(a)
    del a
    view[:] += 1
    np.testing.assert_array_equal(view, np.full(10, 4.0, np.float32))


def test_small_arrays_reused_keep_stats_and_checks():
    """Small Arrays reuse dead ones' memory (array_type.cc's free list): the live-bytes statistics stay
    exact, a reused block of another dtype holds what is written, and injected failures still fail."""
    from needle_cpu import _core as C
    base = C.memory_stats()["allocated_bytes"]
    for size, dtype, itemsize in ((16, "float32", 4), (8, "float64", 8), (64, "uint8", 1), (0, "int32", 4),
                                  (1000, "float32", 4), (6400, "float32", 4),
                                  (16383, "float32", 4), (16384, "float32", 4)):
        arrays = [C.Array(size, dtype) for _ in range(40)]   # more than a free list holds
        assert C.memory_stats()["allocated_bytes"] == base + 40 * size * itemsize
        for i, a in enumerate(arrays):
            np.asarray(a)[:] = i % 2
        for i, a in enumerate(arrays):
            np.testing.assert_array_equal(np.asarray(a), np.full(size, i % 2, dtype))
        del arrays, a
        assert C.memory_stats()["allocated_bytes"] == base
    C.Array(16)   # one on the free list now
    C._inject_alloc_failures(0, 1)
    try:
        with pytest.raises(MemoryError):
            C.Array(16)
    finally:
        C._inject_alloc_failures(0, 0)
    assert C.Array(size=16, dtype="int32").dtype == "int32" and C.Array(True).size == 1
