"""The float64 GEMM (_core._gemm_f64) against numpy float64 matmul, on every ISA and at 1 and 2 threads."""
import numpy as np
import pytest

import needle_cpu
from needle_cpu import _core

EPS = np.finfo(np.float64).eps


@pytest.fixture(params=[1, 2])
def threads(request):
    """Run the test with the kernel pool at 1 thread (Goto's schedule) and 2 (a block of C per thread)."""
    before = needle_cpu.get_num_threads()
    needle_cpu.set_num_threads(request.param)
    yield request.param
    needle_cpu.set_num_threads(before)


def assert_gemm_close(got, a, b):
    # Each of got and numpy's result is within gamma_n * (|a| @ |b|) of the exact product, with
    # gamma_n = n u / (1 - n u) and u = eps / 2 (any summation order, FMA or not), so they differ
    # by at most about n * eps * (|a| @ |b|).
    n = a.shape[1]
    expected = a @ b
    bound = (n + 2) * EPS * (np.abs(a) @ np.abs(b))
    assert got.shape == expected.shape and got.dtype == np.float64
    err = np.abs(got - expected)
    assert np.all(err <= bound), f"max error {err.max()} above the float64 bound (n={n})"


# 1, primes, sizes around the 12x16 / 6x8 / 4x4 register tiles, the 48/96-row and 256/512-deep
# cache blocks, B read in place (at most 2**13 doubles, or m <= 192 with rows of <= 128 doubles),
# B packed per thread in 512- or 1024-column blocks, and the 2048-column block of the one-thread
# schedule.
SHAPES = [(1, 1, 1), (1, 7, 1), (1, 1, 13), (2, 3, 5), (5, 1, 7), (12, 16, 16), (6, 8, 8), (13, 17, 19),
          (11, 40, 31), (97, 257, 33), (127, 127, 127), (64, 784, 128), (200, 300, 129), (3, 1000, 5),
          (1, 1024, 1000), (1000, 3, 2), (1000, 600, 1), (2, 513, 700), (193, 520, 257), (301, 260, 2100),
          (100, 530, 1100)]


@pytest.mark.parametrize("m,n,p", SHAPES)
def test_gemm_f64_matches_numpy(isa, threads, rng, m, n, p):
    a = rng.standard_normal((m, n))
    b = rng.standard_normal((n, p))
    assert_gemm_close(_core._gemm_f64(a, b), a, b)


def test_gemm_f64_every_edge_tile_is_exact(isa, rng):
    # Small integers multiply and add exactly in float64 in any order, so every tile, edges
    # included, must equal numpy's result bit for bit: a misplaced row, column or k shows.
    for n, cols in ((5, [1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 24, 33]), (530, [17, 31, 129, 130, 260])):
        for m in range(1, 26):
            for p in cols:
                a = rng.integers(-8, 9, (m, n)).astype(np.float64)
                b = rng.integers(-8, 9, (n, p)).astype(np.float64)
                np.testing.assert_array_equal(_core._gemm_f64(a, b), a @ b, err_msg=f"m={m} n={n} p={p}")


# One shape per schedule: B read in place; a block of C per thread (2 threads); B packed by all
# threads together (1 thread, or more than 4); and products too small to split.
@pytest.mark.parametrize("m,n,p", [(150, 170, 40), (64, 784, 128), (200, 300, 300), (50, 300, 600), (9, 9, 9),
                                   (5, 2000, 70), (410, 270, 2090)])
def test_gemm_f64_thread_counts_agree(isa, rng, m, n, p):
    a = rng.integers(-8, 9, (m, n)).astype(np.float64)
    b = rng.integers(-8, 9, (n, p)).astype(np.float64)
    before = needle_cpu.get_num_threads()
    try:
        for t in (1, 2, 3, 6):
            needle_cpu.set_num_threads(t)
            np.testing.assert_array_equal(_core._gemm_f64(a, b), a @ b, err_msg=f"threads={t}")
    finally:
        needle_cpu.set_num_threads(before)


@pytest.mark.parametrize("m,n,p", [(0, 3, 4), (3, 0, 4), (3, 4, 0), (0, 0, 0), (1, 0, 1)])
def test_gemm_f64_empty(isa, m, n, p):
    got = _core._gemm_f64(np.ones((m, n)), np.ones((n, p)))
    assert got.shape == (m, p) and got.dtype == np.float64
    np.testing.assert_array_equal(got, np.zeros((m, p)))


def test_gemm_f64_special_values(isa):
    # inf and nan as the plain sum of products gives them (0 * inf is nan, inf - inf too).
    a = np.array([[np.inf, 1.0, 0.0], [0.0, 0.0, 1.0], [np.nan, 2.0, 3.0], [np.inf, 0.0, 1.0]])
    b = np.array([[1.0, 0.0], [1.0, 1.0], [-np.inf, 2.0]])
    with np.errstate(invalid="ignore"):
        expected = (a[:, :, None] * b[None, :, :]).sum(axis=1)
    np.testing.assert_array_equal(_core._gemm_f64(a, b), expected)


def test_gemm_f64_leaves_inputs_alone(rng):
    a = rng.standard_normal((40, 30))
    b = rng.standard_normal((30, 50))
    a0, b0 = a.copy(), b.copy()
    c = _core._gemm_f64(a, b)
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)
    assert not np.shares_memory(c, a) and not np.shares_memory(c, b)
    assert_gemm_close(_core._gemm_f64(a, a.T.copy()), a, a.T)


def test_gemm_f64_rejects_bad_arguments():
    a, b = np.ones((3, 4)), np.ones((4, 5))
    with pytest.raises(ValueError, match=r"a is 3 x 4 but b is 5 x 4 \(b needs 4 rows\)"):
        _core._gemm_f64(a, np.ones((5, 4)))
    with pytest.raises(ValueError, match="a must be 2-D, got 1-D"):
        _core._gemm_f64(np.ones(4), b)
    with pytest.raises(ValueError, match="b must be 2-D, got 3-D"):
        _core._gemm_f64(a, np.ones((1, 4, 5)))
    with pytest.raises(ValueError, match="b must be C-contiguous"):
        _core._gemm_f64(a, np.ones((5, 4)).T)
    with pytest.raises(ValueError, match="a must be C-contiguous"):
        _core._gemm_f64(np.ones((3, 8))[:, ::2], b)
    with pytest.raises(TypeError, match="a must have dtype float64, got float32"):
        _core._gemm_f64(a.astype(np.float32), b)
    with pytest.raises(TypeError, match="b must have dtype float64, got int64"):
        _core._gemm_f64(a, b.astype(np.int64))
    with pytest.raises(TypeError, match="b must be a numpy array"):
        _core._gemm_f64(a, [[1.0] * 5] * 4)
