"""Protocol 2 kernels of needle-cuda, every kernel on the dtypes the protocol gives it, against numpy.

Each test runs twice: on the numpy stand-in for CuPy (``stand-in``, see conftest.py: runs
anywhere, checks the kernels' Python) and on a real GPU (``gpu``: skipped, with the reason, where
CuPy or a device is missing). The oracle is numpy on the host, computed independently of the kernel.
"""
import numpy as np
import pytest
from needle.backend_ndarray import protocol
from needle_cuda import _backend, _cupy, _elementwise

ALL = ("float32", "float64", "int32", "int64", "uint8", "bool")
FLOATS = ("float32", "float64")
INTS = ("int32", "int64", "uint8")
NOT_BOOL = FLOATS + INTS


@pytest.fixture(params=["stand-in", pytest.param("gpu", marks=pytest.mark.gpu)])
def cuda(request):
    """The protocol module, on the numpy stand-in or on the GPU."""
    if request.param == "stand-in":
        return request.getfixturevalue("stand_in")
    _cupy.reset()
    reason = _cupy.unavailable_reason()
    if reason is not None:
        pytest.skip(f"needs a CUDA GPU: {reason}")
    return _backend


def values(dtype, n=64, seed=0, nan=False):
    """Test values of ``dtype`` with ties, both signs, the extremes of integers, NaN/inf when asked."""
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.integers(0, 2, n).astype(bool)
    if dtype in INTS:
        info = np.iinfo(dtype)
        x = rng.integers(max(info.min, -50), min(info.max, 50), n, endpoint=True).astype(dtype)
        x[:2] = np.array([info.min, info.max], dtype)[: min(n, 2)]
        return x
    x = rng.choice(np.array([-2.5, -1.0, 0.0, 0.5, 1.0, 3.0], dtype), n)
    x[: n // 2] += rng.uniform(-1, 1, n // 2).astype(dtype)
    if nan:
        x[3], x[7], x[11] = np.nan, np.inf, -np.inf
    return x


def up(cuda, x):
    x = np.ascontiguousarray(x)
    buf = cuda.Array(x.size, x.dtype.name)
    cuda.from_numpy(x, buf)
    return buf


def down(cuda, buf):
    return cuda.to_numpy(buf, (buf.size,), (1,), 0)


def run(cuda, name, inputs, out_dtype, *scalars, alias=None):
    """Run kernel ``name`` on device copies of ``inputs``; ``alias`` = index of the input used as ``out``."""
    bufs = [up(cuda, x) for x in inputs]
    out = bufs[alias] if alias is not None else cuda.Array(inputs[0].size, out_dtype)
    if scalars:
        getattr(cuda, name)(bufs[0], *scalars, out)
    else:
        getattr(cuda, name)(*bufs, out)
    got = down(cuda, out)
    assert got.dtype == np.dtype(out_dtype)
    return got


def same(got, expected):
    np.testing.assert_array_equal(got, np.asarray(expected).astype(got.dtype))


# ---- the declared surface -----------------------------------------------------------------------
def test_protocol_2_surface():
    assert _backend.PROTOCOL_VERSION == 2 and _backend.DTYPES == ALL
    assert protocol.missing_kernels(_backend) == []
    assert set(protocol.OPTIONAL_KERNELS_V2) <= set(protocol.optional_kernels(_backend))
    assert _backend.FUSED_DTYPES == () and not [k for k in protocol.FUSED_KERNELS if hasattr(_backend, k)]


@pytest.mark.parametrize("dtype", ALL)
def test_buffers_of_every_dtype(cuda, dtype):
    x = values(dtype)
    buf = up(cuda, x)
    assert (buf.size, buf.dtype) == (x.size, dtype)
    same(down(cuda, buf), x)
    fill = True if dtype == "bool" else (7 if dtype in INTS else -1.25)
    cuda.fill(buf, fill)
    same(down(cuda, buf), np.full(x.size, fill, dtype))
    # strided copies: a transposed view gathered, then written back reversed
    base = values(dtype, 24, seed=1)
    buf = up(cuda, base)
    out = cuda.Array(24, dtype)
    cuda.compact(buf, out, (4, 6), (1, 4), 0)
    same(down(cuda, out), base.reshape(6, 4).T.reshape(-1))
    cuda.ewise_setitem(out, buf, (24,), (-1,), 23)
    same(down(cuda, buf), base.reshape(6, 4).T.reshape(-1)[::-1])
    cuda.scalar_setitem(6, fill, buf, (2, 3), (12, 2), 1)
    expected = base.reshape(6, 4).T.reshape(-1)[::-1].copy()
    np.lib.stride_tricks.as_strided(expected[1:], (2, 3), (12 * expected.itemsize, 2 * expected.itemsize))[...] = fill
    same(down(cuda, buf), expected)


def test_unknown_dtypes_are_refused(cuda):
    for bad in ("float16", "int8", "complex64", object):
        with pytest.raises(TypeError, match="needle-cuda supports dtypes"):
            cuda.Array(3, bad)


# ---- elementwise -------------------------------------------------------------------------------------
ARITH = {"ewise_add": np.add, "ewise_sub": np.subtract, "ewise_mul": np.multiply}
SCALAR_ARITH = {"scalar_add": np.add, "scalar_mul": np.multiply, "scalar_rsub": lambda a, v: np.subtract(v, a)}
COMPARE = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
           "ge": np.greater_equal}
EXTREMES = {"maximum": np.maximum, "minimum": np.minimum}
LOGICAL = {"ewise_and": np.bitwise_and, "ewise_or": np.bitwise_or, "ewise_xor": np.bitwise_xor}


def scalar_for(dtype):
    return {"bool": 1, "uint8": 200, "int32": -7, "int64": 3}.get(dtype, 0.5)


@pytest.mark.parametrize("dtype", NOT_BOOL)
@pytest.mark.parametrize("name", sorted(ARITH) + sorted(SCALAR_ARITH))
def test_arithmetic_wraps_for_integers(cuda, name, dtype):
    a, b = values(dtype, seed=2), values(dtype, seed=3)
    with np.errstate(over="ignore"):
        if name in ARITH:
            expected = ARITH[name](a, b)  # numpy wraps too; the extremes in a and b overflow
            got = run(cuda, name, [a, b], dtype)
        else:
            val = scalar_for(dtype)
            expected = SCALAR_ARITH[name](a, a.dtype.type(val))
            got = run(cuda, name, [a], dtype, val)
    same(got, expected)


@pytest.mark.parametrize("dtype", NOT_BOOL)
def test_neg_and_abs(cuda, dtype):
    a = values(dtype, seed=4, nan=dtype in FLOATS)
    with np.errstate(over="ignore"):
        same(run(cuda, "ewise_neg", [a], dtype), np.negative(a))
        same(run(cuda, "ewise_abs", [a], dtype), np.abs(a))
    if dtype in ("int32", "int64"):
        info = np.iinfo(dtype)
        extremes = np.array([info.min, info.min + 1, -1, 0, info.max], dtype)
        same(run(cuda, "ewise_abs", [extremes], dtype), [info.min, info.max, 1, 0, info.max])
        same(run(cuda, "ewise_neg", [extremes], dtype), [info.min, info.max, 1, 0, info.min + 1])


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("op", sorted(COMPARE))
def test_comparisons_write_bool_with_ieee_nan_rules(cuda, op, dtype):
    a, b = values(dtype, seed=5, nan=dtype in FLOATS), values(dtype, seed=6, nan=dtype in FLOATS)
    b[::3] = a[::3]  # ties (NaN == NaN stays False)
    same(run(cuda, f"ewise_{op}", [a, b], "bool"), COMPARE[op](a, b))
    val = scalar_for(dtype)
    a[::5] = val
    same(run(cuda, f"scalar_{op}", [a], "bool", val), COMPARE[op](a, a.dtype.type(val)))


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("op", sorted(EXTREMES))
def test_maximum_minimum_propagate_nan(cuda, op, dtype):
    a, b = values(dtype, seed=7, nan=dtype in FLOATS), values(dtype, seed=8)
    same(run(cuda, f"ewise_{op}", [a, b], dtype), EXTREMES[op](a, b))
    val = scalar_for(dtype)
    same(run(cuda, f"scalar_{op}", [a], dtype, val), EXTREMES[op](a, a.dtype.type(val)))


@pytest.mark.parametrize("dtype", INTS + ("bool",))
def test_logical_ops_bitwise_on_integers_logical_on_bool(cuda, dtype):
    a, b = values(dtype, seed=9), values(dtype, seed=10)
    for name, fn in LOGICAL.items():
        same(run(cuda, name, [a, b], dtype), fn(a, b))
    same(run(cuda, "ewise_not", [a], dtype), np.invert(a))
    if dtype == "bool":
        same(run(cuda, "ewise_not", [a], dtype), ~a)


@pytest.mark.parametrize("dtype", FLOATS)
def test_float_only_kernels(cuda, dtype):
    a, b = np.abs(values(dtype, seed=11)) + 0.5, np.abs(values(dtype, seed=12)) + 0.5
    tol = dict(rtol=2e-6 if dtype == "float32" else 1e-13)
    for name, fn in {"ewise_div": np.divide, "ewise_power": np.power}.items():
        np.testing.assert_allclose(run(cuda, name, [a, b], dtype), fn(a, b), **tol)
    for name, fn in {"scalar_div": np.divide, "scalar_power": np.power, "scalar_rdiv": lambda x, v: v / x}.items():
        np.testing.assert_allclose(run(cuda, name, [a], dtype, 1.5), fn(a, a.dtype.type(1.5)), **tol)
    for name, fn in {"ewise_log": np.log, "ewise_exp": np.exp, "ewise_tanh": np.tanh, "ewise_sqrt": np.sqrt,
                     "ewise_relu": lambda x: np.maximum(x, 0), "ewise_sigmoid": lambda x: 1 / (1 + np.exp(-x))}.items():
        np.testing.assert_allclose(run(cuda, name, [a - 1.0], dtype) if name in ("ewise_relu", "ewise_sigmoid",
                                                                                  "ewise_tanh")
                                   else run(cuda, name, [a], dtype),
                                   fn(a - 1.0) if name in ("ewise_relu", "ewise_sigmoid", "ewise_tanh") else fn(a),
                                   **tol)


@pytest.mark.parametrize("dtype", ALL)
def test_where(cuda, dtype):
    cond, a, b = values("bool", seed=13), values(dtype, seed=14, nan=dtype in FLOATS), values(dtype, seed=15)
    same(run(cuda, "where", [cond, a, b], dtype), np.where(cond, a, b))


# ---- aliasing: out may be any input of an elementwise kernel -----------------------------------------
def _alias_cases():
    for dtype in ALL:
        names = ["ewise_maximum", "ewise_minimum"] + [f"ewise_{op}" for op in COMPARE if dtype == "bool"]
        if dtype != "bool":
            names += sorted(ARITH)
        if dtype in FLOATS:
            names += ["ewise_div", "ewise_power"]
        else:
            names += sorted(LOGICAL)
        for name in names:
            for alias in (0, 1):
                yield name, dtype, alias


@pytest.mark.parametrize("name,dtype,alias", list(_alias_cases()))
def test_binary_kernels_with_out_equal_to_an_input(cuda, name, dtype, alias):
    a, b = values(dtype, seed=16), values(dtype, seed=17)
    if dtype in FLOATS:
        a, b = np.abs(a) + 0.5, np.abs(b) + 0.5
    fn = {**ARITH, **LOGICAL, "ewise_maximum": np.maximum, "ewise_minimum": np.minimum, "ewise_div": np.divide,
          "ewise_power": np.power, **{f"ewise_{k}": v for k, v in COMPARE.items()}}[name]
    with np.errstate(over="ignore"):
        expected = fn(a, b)
    got = run(cuda, name, [a, b], dtype, alias=alias)
    if dtype in FLOATS:
        np.testing.assert_allclose(got, expected, rtol=2e-6)
    else:
        same(got, expected)


@pytest.mark.parametrize("dtype", ALL)
def test_unary_scalar_where_cast_with_out_equal_to_an_input(cuda, dtype):
    a, b, cond = values(dtype, seed=18), values(dtype, seed=19), values("bool", seed=20)
    with np.errstate(over="ignore"):
        if dtype != "bool":
            same(run(cuda, "ewise_neg", [a], dtype, alias=0), np.negative(a))
            same(run(cuda, "scalar_add", [a], dtype, 3, alias=0), a + a.dtype.type(3))
            same(run(cuda, "scalar_rsub", [a], dtype, 3, alias=0), a.dtype.type(3) - a)
        same(run(cuda, "scalar_maximum", [a], dtype, 1, alias=0), np.maximum(a, a.dtype.type(1)))
    for alias in (1, 2):
        same(run(cuda, "where", [cond, a, b], dtype, alias=alias), np.where(cond, a, b))
    buf = up(cuda, a)
    cuda.cast(buf, buf)  # between equal dtypes: a copy onto itself
    same(down(cuda, buf), a)
    if dtype == "bool":
        same(run(cuda, "where", [cond, a, b], dtype, alias=0), np.where(cond, a, b))


# ---- cast -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("src", ALL)
@pytest.mark.parametrize("dst", ALL)
def test_cast_between_every_pair_of_dtypes(cuda, src, dst):
    x = values(src, seed=21)
    if src in FLOATS and dst in INTS:  # values whose truncation is in range: numpy's cast is the oracle
        info = np.iinfo(dst)
        x = np.clip(x * 7, max(info.min, -1e6), min(info.max, 1e6)).astype(src)
        x[:4] = np.array([-0.75, 0.75, -0.0, 2.999], src) if dst != "uint8" else np.array([0.75, 254.9, 0, 3.5], src)
    if src in INTS and dst in FLOATS + INTS:
        pass  # int -> int wraps, int -> float rounds: numpy's astype computes both the same way
    got = run(cuda, "cast", [x], dst)
    same(got, x.astype(dst))


@pytest.mark.parametrize("src", FLOATS)
@pytest.mark.parametrize("dst", INTS)
def test_cast_float_to_int_never_undefined_nan_zero_out_of_range_saturates(cuda, src, dst):
    info = np.iinfo(dst)
    x = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, float(info.max) * 4, float(info.min) * 4 - 8,
                  info.min, -1.5, 1.5], src)
    got = run(cuda, "cast", [x], dst)
    expected = [0, info.max, info.min, info.max, info.min, info.max, info.min, info.min,
                info.min if dst == "uint8" else -1, 1]
    same(got, expected)


def test_cast_to_bool_is_nonzero_and_from_bool_gives_0_and_1(cuda):
    x = np.array([0.0, -0.0, np.nan, 0.25, -3.0, np.inf], np.float32)
    same(run(cuda, "cast", [x], "bool"), [False, False, True, True, True, True])
    b = np.array([True, False, True])
    for dst in NOT_BOOL:
        same(run(cuda, "cast", [b], dst), [1, 0, 1])


@pytest.mark.parametrize("src,dst,lo,hi", [("float32", "int32", -2.0**31, 2.0**31), ("float64", "int32", -2.0**31 - 1,
                                                                                      2.0**31),
                                           ("float32", "int64", -2.0**63, 2.0**63), ("float64", "uint8", -1.0, 256.0)])
def test_cast_bounds_are_the_exact_limits_of_truncation(src, dst, lo, hi):
    got = _elementwise.cast_bounds(src, dst)
    assert (float(got[0]), float(got[1])) == (lo, hi)
    assert (int(got[2]), int(got[3])) == (np.iinfo(dst).min, np.iinfo(dst).max)


# ---- reductions -------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("groups,size", [(1, 1), (4, 16), (3, 7), (0, 5)])
def test_reductions(cuda, dtype, groups, size):
    x = values(dtype, groups * size, seed=22, nan=dtype in FLOATS and groups * size > 11)
    rows = x.reshape(groups, size)
    buf = up(cuda, x)

    def reduce(name, out_dtype):
        out = cuda.Array(groups, out_dtype)
        getattr(cuda, name)(buf, out, size)
        return down(cuda, out)
    if dtype != "bool":
        with np.errstate(over="ignore", invalid="ignore"):  # integers wrap; inf + -inf is NaN
            expected = rows.sum(axis=1, dtype=dtype)
            got = reduce("reduce_sum", dtype)
        if dtype in FLOATS:
            np.testing.assert_allclose(got, expected, rtol=1e-5)
        else:
            same(got, expected)
    if groups:
        same(reduce("reduce_max", dtype), rows.max(axis=1))
        same(reduce("reduce_min", dtype), rows.min(axis=1))
        same(reduce("reduce_argmax", "int64"), rows.argmax(axis=1))
        same(reduce("reduce_argmin", "int64"), rows.argmin(axis=1))


@pytest.mark.parametrize("dtype", FLOATS)
def test_arg_reductions_first_nan_and_first_tie_win(cuda, dtype):
    rows = np.array([[1, 3, 3, 0], [np.nan, 5, np.nan, -1], [2, np.nan, 9, np.nan], [-1, -1, 4, 4],
                     [np.inf, -np.inf, np.inf, 0]], dtype)
    buf = up(cuda, rows.reshape(-1))
    for name, expected in (("reduce_argmax", [1, 0, 1, 2, 0]), ("reduce_argmin", [3, 0, 1, 0, 1])):
        out = cuda.Array(5, "int64")
        getattr(cuda, name)(buf, out, 4)
        same(down(cuda, out), expected)
        assert expected == list(getattr(np, name[7:])(rows, axis=1))  # numpy agrees


def test_bool_reductions_are_any_and_all(cuda):
    rows = np.array([[False, True, True], [False, False, False], [True, True, True]])
    buf = up(cuda, rows.reshape(-1))
    for name, dtype, expected in (("reduce_max", "bool", [True, False, True]), ("reduce_min", "bool",
                                                                                  [False, False, True]),
                                  ("reduce_argmax", "int64", [1, 0, 0]), ("reduce_argmin", "int64", [0, 0, 0])):
        out = cuda.Array(3, dtype)
        getattr(cuda, name)(buf, out, 3)
        same(down(cuda, out), expected)


def test_empty_extreme_reductions_are_refused(cuda):
    buf = cuda.Array(0, "int32")
    for name in ("reduce_max", "reduce_min", "reduce_argmax", "reduce_argmin"):
        with pytest.raises(ValueError, match="zero-size reduction"):
            getattr(cuda, name)(buf, cuda.Array(2, "int64" if "arg" in name else "int32"), 0)


# ---- matmul on integers -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", INTS)
@pytest.mark.parametrize("impl", ["cublas", "tiled"])
def test_integer_matmul_wraps(cuda, dtype, impl):
    rng = np.random.default_rng(23)
    info = np.iinfo(dtype)
    a = rng.integers(info.min, info.max, (2, 5, 7), dtype=dtype, endpoint=True)
    b = rng.integers(info.min, info.max, (2, 7, 3), dtype=dtype, endpoint=True)
    with np.errstate(over="ignore"):
        expected = a @ b  # numpy's integer matmul wraps
    out = cuda.Array(2 * 5 * 3, dtype)
    with cuda.matmul_impl(impl):
        cuda.matmul_batched(up(cuda, a), up(cuda, b), out, 2, 5, 7, 3)
        same(down(cuda, out).reshape(2, 5, 3), expected)
        cuda.matmul(up(cuda, a[0]), up(cuda, b[0]), out, 5, 7, 3)
        same(down(cuda, out)[:15].reshape(5, 3), expected[0])


@pytest.mark.parametrize("dtype", FLOATS)
def test_float_matmul_both_implementations(cuda, dtype):
    rng = np.random.default_rng(24)
    a, b = rng.uniform(-1, 1, (37, 21)).astype(dtype), rng.uniform(-1, 1, (21, 18)).astype(dtype)
    for impl in ("cublas", "tiled"):
        out = cuda.Array(37 * 18, dtype)
        with cuda.matmul_impl(impl):
            cuda.matmul(up(cuda, a), up(cuda, b), out, 37, 21, 18)
        np.testing.assert_allclose(down(cuda, out).reshape(37, 18), a.astype(np.float64) @ b,
                                   rtol=1e-4 if dtype == "float32" else 1e-12, atol=1e-5)


# ---- gather_rows / scatter_add_rows -----------------------------------------------------------------
@pytest.mark.parametrize("dtype", ALL)
def test_gather_rows(cuda, dtype):
    table = values(dtype, 5 * 3, seed=25).reshape(5, 3)
    idx = np.array([4, 0, 0, 2, 4, 1], np.int64)
    out = cuda.Array(idx.size * 3, dtype)
    cuda.reset_transfer_stats()
    cuda.gather_rows(up(cuda, table), up(cuda, idx), out, 5, 3, idx.size)
    assert cuda.transfer_stats()["d2h"] == 1  # the index check's one scalar, never the indexes
    same(down(cuda, out).reshape(-1, 3), table[idx])


@pytest.mark.parametrize("dtype", NOT_BOOL)
def test_scatter_add_rows_accumulates_repeated_indexes(cuda, dtype):
    g = values(dtype, 6 * 2, seed=26).reshape(6, 2)
    start = values(dtype, 4 * 2, seed=27).reshape(4, 2)
    idx = np.array([3, 0, 3, 3, 1, 0], np.int64)
    out = up(cuda, start)
    cuda.scatter_add_rows(up(cuda, g), up(cuda, idx), out, 4, 2, idx.size)
    expected = start.copy()
    with np.errstate(over="ignore"):
        np.add.at(expected, idx, g)  # wraps for integers
    if dtype in FLOATS:
        np.testing.assert_allclose(down(cuda, out).reshape(4, 2), expected, rtol=1e-6)
    else:
        same(down(cuda, out).reshape(4, 2), expected)


@pytest.mark.parametrize("name", ["gather_rows", "scatter_add_rows"])
def test_row_kernels_name_the_first_bad_index_and_touch_nothing(cuda, name):
    data = up(cuda, np.arange(8, dtype=np.float32))  # 3 rows of 2 to gather from, or 4 rows of 2 to add
    before = np.full(8, 9, np.float32)
    out = up(cuda, before)
    for idx, first, pos in (([0, 3, -1, 7], 3, 1), ([2, -1], -1, 1), ([1, 2, 2, 3], 3, 3)):
        with pytest.raises(IndexError, match=rf"{name}: index {first} at position {pos} is out of range for 3 rows"):
            getattr(cuda, name)(data, up(cuda, np.array(idx, np.int64)), out, 3, 2, len(idx))
        same(down(cuda, out), before)
    getattr(cuda, name)(data, up(cuda, np.array([], np.int64)), out, 3, 2, 0)  # nothing to do
    same(down(cuda, out), before)


def test_row_kernels_check_buffers(cuda):
    f32, i64 = (lambda n: cuda.Array(n, "float32")), (lambda n: cuda.Array(n, "int64"))
    with pytest.raises(TypeError, match="idx must be an int64 buffer, got int32"):
        cuda.gather_rows(f32(6), cuda.Array(2, "int32"), f32(4), 3, 2, 2)
    with pytest.raises(TypeError, match="differ in dtype"):
        cuda.gather_rows(f32(6), i64(2), cuda.Array(4, "float64"), 3, 2, 2)
    with pytest.raises(ValueError, match=r"buffer out has 3 elements, 4 needed"):
        cuda.gather_rows(f32(6), i64(2), f32(3), 3, 2, 2)
    with pytest.raises(ValueError, match=r"buffer a has 5 elements, 6 needed"):
        cuda.gather_rows(f32(5), i64(2), f32(4), 3, 2, 2)
    with pytest.raises(ValueError, match=r"buffer idx has 1 elements, 2 needed"):
        cuda.scatter_add_rows(f32(4), i64(1), f32(6), 3, 2, 2)
    with pytest.raises(TypeError, match="not defined on bool"):
        cuda.scatter_add_rows(cuda.Array(4, "bool"), i64(2), cuda.Array(6, "bool"), 3, 2, 2)


def test_new_kernels_make_no_host_transfers(cuda):
    a, b, c = up(cuda, values("int64", seed=28)), up(cuda, values("int64", seed=29)), up(cuda, values("bool", seed=30))
    f = up(cuda, values("float32", seed=31, nan=True))
    out, mask, idx = cuda.Array(64, "int64"), cuda.Array(64, "bool"), cuda.Array(8, "int64")
    cuda.reset_transfer_stats()
    cuda.cast(f, out)
    cuda.where(c, a, b, out)
    for name in ("ewise_add", "ewise_mul", "ewise_minimum", "ewise_and", "ewise_xor"):
        getattr(cuda, name)(a, b, out)
    for name in ("ewise_eq", "ewise_lt", "ewise_ne"):
        getattr(cuda, name)(a, b, mask)
    cuda.scalar_gt(f, 0.5, mask)
    cuda.ewise_not(c, mask)
    cuda.ewise_abs(a, out)
    cuda.reduce_sum(a, idx, 8)
    cuda.reduce_argmax(f, idx, 8)
    cuda.reduce_argmin(a, idx, 8)
    cuda.reduce_min(a, idx, 8)
    cuda.matmul(a, b, out, 8, 8, 8)
    assert cuda.transfer_stats() == {"h2d": 0, "h2d_bytes": 0, "d2h": 0, "d2h_bytes": 0}
