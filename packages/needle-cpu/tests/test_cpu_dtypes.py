"""Protocol 2 on every dtype: each kernel against numpy, called straight through the protocol module.

Integer results are compared exactly (numpy wraps as the kernels must), float ones exactly where
both round once and to a tolerance where libm is involved. Sizes straddle the vector widths and the
threading grain (2**15 elements per thread).
"""
import numpy as np
import pytest

from needle_cpu import _backend as B

DTYPES = ["float32", "float64", "int32", "int64", "uint8", "bool"]
FLOATS = ["float32", "float64"]
INTS = ["int32", "int64", "uint8"]
NUMERIC = FLOATS + INTS
INT_BOOL = INTS + ["bool"]
SIZES = [0, 1, 7, 33, 1000, 70001]


def make(x, dtype):
    x = np.ascontiguousarray(x, dtype=dtype)
    buf = B.Array(x.size, dtype)
    B.from_numpy(x, buf)
    return buf


def read(buf):
    return np.asarray(buf).copy()  # the buffer protocol: independent of the kernels under test


def data(rng, n, dtype, special=False):
    """Random values of `dtype` with many ties; for floats, NaN/inf/-0 too when `special`."""
    if dtype == "bool":
        return rng.random(n) < 0.5
    if dtype in FLOATS:
        x = (rng.standard_normal(n) * 3).astype(dtype)
        x[::5] = np.round(x[::5])
        if special and n >= 8:
            x[1::97] = np.nan
            x[2::89] = np.inf
            x[3::83] = -np.inf
            x[4::79] = -0.0
        return x
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    x[::5] = rng.integers(0, 3, x[::5].size).astype(dtype)  # ties
    return x


def cases(table):
    """(kernel, dtype) for every dtype the kernel takes (the table maps a name to (oracle, dtypes))."""
    return [(name, dtype) for name, (_, dtypes) in sorted(table.items()) for dtype in dtypes]


def scalar_for(dtype):
    return {"float32": 1.5, "float64": -2.25, "int32": -7, "int64": 2**40 + 3, "uint8": 200, "bool": 1}[dtype]


# ---------------------------------------------------------------- creation, copies, buffer protocol
@pytest.mark.parametrize("dtype", DTYPES)
def test_array_dtype_and_buffer_protocol(dtype):
    for n in (0, 1, 17, 100000):
        buf = B.Array(n, dtype)
        assert buf.dtype == dtype and buf.size == n and buf.ptr() % 64 == 0
        view = np.asarray(buf)
        assert view.dtype == np.dtype(dtype) and view.shape == (n,)
        mv = memoryview(buf)
        assert mv.itemsize == np.dtype(dtype).itemsize and mv.nbytes == n * mv.itemsize
    assert repr(B.Array(3, dtype)) == f"needle_cpu.Array(size=3, dtype='{dtype}')"
    assert B.Array(2, np.dtype(dtype)).dtype == dtype


@pytest.mark.parametrize("bad", ["float16", "complex64", "int8", "str", None, 3])
def test_array_refuses_other_dtypes(bad):
    with pytest.raises(TypeError, match=r"supports dtypes \('float32', 'float64', 'int32', 'int64', 'uint8', 'bool'\), "
                                        r"got dtype="):
        B.Array(4, bad)


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_to_numpy_fill_setitem(rng, dtype):
    x = data(rng, 24, dtype)
    buf = make(x, dtype)
    np.testing.assert_array_equal(read(buf), x)
    got = B.to_numpy(buf, (4, 6), (6, 1), 0)
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, x.reshape(4, 6))
    np.testing.assert_array_equal(B.to_numpy(buf, (6, 4), (1, 6), 0), x.reshape(4, 6).T)  # a transposed view
    out = B.Array(12, dtype)
    B.compact(buf, out, (3, 4), (1, 6), 2)
    want = np.array([[x[2 + i + 6 * j] for j in range(4)] for i in range(3)], dtype).ravel()
    np.testing.assert_array_equal(read(out), want)
    big = data(rng, 64 * 40, dtype)  # the blocked transposed gather
    bbuf, bout = make(big, dtype), B.Array(64 * 40, dtype)
    B.compact(bbuf, bout, (40, 64), (1, 40), 0)
    np.testing.assert_array_equal(read(bout), big.reshape(64, 40).T.ravel())
    v = scalar_for(dtype)
    B.fill(out, v)
    np.testing.assert_array_equal(read(out), np.full(12, v, dtype))
    B.scalar_setitem(3, 0, out, (3,), (4,), 1)
    want = np.full(12, v, dtype)
    want[1::4] = 0
    np.testing.assert_array_equal(read(out), want)
    B.ewise_setitem(make(x[:6], dtype), out, (2, 3), (1, 2), 0)
    want[[0, 2, 4, 1, 3, 5]] = x[:6]  # out seen as shape (2, 3), strides (1, 2): elements 0, 2, 4 / 1, 3, 5
    np.testing.assert_array_equal(read(out), want)


def test_int64_scalar_is_exact():
    big = 2**62 + 1  # no double holds it
    out = B.Array(3, "int64")
    B.fill(out, big)
    np.testing.assert_array_equal(read(out), np.full(3, big, np.int64))
    a = make(np.array([0, 1, -1], np.int64), "int64")
    B.scalar_add(a, 2**63 - 1, out)
    np.testing.assert_array_equal(read(out), np.array([2**63 - 1, -(2**63), 2**63 - 2], np.int64))
    eq = B.Array(3, "bool")
    B.scalar_eq(make(np.array([2**53, 2**53 + 1, 0], np.int64), "int64"), 2**53 + 1, eq)
    np.testing.assert_array_equal(read(eq), [False, True, False])


@pytest.mark.parametrize("dtype,val", [("uint8", 256), ("uint8", -1), ("bool", 2), ("int32", 2**31),
                                       ("int64", 2**63), ("int64", -(2**63) - 1)])
def test_scalar_out_of_range_is_value_error(dtype, val):
    with pytest.raises(ValueError, match=f"scalar_maximum: val={val} is out of range for {dtype}"):
        B.scalar_maximum(B.Array(2, dtype), val, B.Array(2, dtype))


@pytest.mark.parametrize("dtype", INTS + ["bool"])
def test_float_scalar_for_integer_buffer_is_type_error(dtype):
    with pytest.raises(TypeError, match=f"fill: val must be an int for a {dtype} buffer, got 1.5"):
        B.fill(B.Array(2, dtype), 1.5)


def test_int_scalar_for_float_buffer():
    out = B.Array(2, "float64")
    B.fill(out, 3)
    np.testing.assert_array_equal(read(out), [3.0, 3.0])
    B.scalar_mul(out, np.int64(2), out)
    np.testing.assert_array_equal(read(out), [6.0, 6.0])


# ---------------------------------------------------------------- elementwise
BINARY = {
    "ewise_add": (np.add, NUMERIC), "ewise_sub": (np.subtract, NUMERIC), "ewise_mul": (np.multiply, NUMERIC),
    "ewise_div": (np.divide, FLOATS), "ewise_power": (np.power, FLOATS),
    "ewise_maximum": (np.maximum, DTYPES), "ewise_minimum": (np.minimum, DTYPES),
    "ewise_and": (np.bitwise_and, INT_BOOL), "ewise_or": (np.bitwise_or, INT_BOOL),
    "ewise_xor": (np.bitwise_xor, INT_BOOL),
}
COMPARE = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
           "ge": np.greater_equal}


def binary_inputs(rng, n, dtype, name):
    a, b = data(rng, n, dtype, special=True), data(rng, n, dtype, special=True)
    b[::3] = a[::3]
    if name == "ewise_power":
        a, b = np.abs(a), np.clip(b, -3, 3)
    return a, b


def check_close(got, want, dtype, name):
    if dtype in FLOATS and name in ("ewise_div", "ewise_power", "scalar_div", "scalar_power", "scalar_rdiv"):
        np.testing.assert_allclose(got, want, rtol=2e-6 if dtype == "float32" else 1e-15, atol=0)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name,dtype", cases(BINARY))
def test_binary(isa, rng, name, dtype, n):
    fn, _ = BINARY[name]
    a, b = binary_inputs(rng, n, dtype, name)
    out = B.Array(n, dtype)
    with np.errstate(all="ignore"):
        want = fn(a, b)
    getattr(B, name)(make(a, dtype), make(b, dtype), out)
    assert read(out).dtype == want.dtype
    check_close(read(out), want, dtype, name)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", sorted(COMPARE))
def test_compare_writes_bool(isa, rng, op, dtype, n):
    a, b = data(rng, n, dtype, special=True), data(rng, n, dtype, special=True)
    b[::3] = a[::3]
    out = B.Array(n, "bool")
    getattr(B, f"ewise_{op}")(make(a, dtype), make(b, dtype), out)
    np.testing.assert_array_equal(read(out), COMPARE[op](a, b))
    v = scalar_for(dtype)
    if n:
        a[::4] = v
    getattr(B, f"scalar_{op}")(make(a, dtype), v, out)
    np.testing.assert_array_equal(read(out), COMPARE[op](a, np.array(v, dtype)))


def test_compare_nan_rules():
    a = make(np.array([np.nan, 1.0, np.nan]), "float64")
    b = make(np.array([np.nan, np.nan, 2.0]), "float64")
    out = B.Array(3, "bool")
    for op in COMPARE:
        getattr(B, f"ewise_{op}")(a, b, out)
        assert read(out).tolist() == ([True] * 3 if op == "ne" else [False] * 3), op
        getattr(B, f"scalar_{op}")(a, float("nan"), out)
        assert read(out).tolist() == ([True] * 3 if op == "ne" else [False] * 3), op


SCALAR = {
    "scalar_add": (np.add, NUMERIC), "scalar_mul": (np.multiply, NUMERIC), "scalar_div": (np.divide, FLOATS),
    "scalar_power": (np.power, FLOATS), "scalar_maximum": (np.maximum, DTYPES),
    "scalar_minimum": (np.minimum, DTYPES), "scalar_rsub": (lambda a, v: np.subtract(v, a), NUMERIC),
    "scalar_rdiv": (lambda a, v: np.divide(v, a), FLOATS),
}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name,dtype", cases(SCALAR))
def test_scalar(isa, rng, name, dtype, n):
    fn, _ = SCALAR[name]
    a = data(rng, n, dtype, special=True)
    v = scalar_for(dtype)
    if name == "scalar_power":
        a, v = np.abs(a), 1.7
    out = B.Array(n, dtype)
    getattr(B, name)(make(a, dtype), v, out)
    with np.errstate(all="ignore"):
        want = fn(a, np.array(v, dtype))
    check_close(read(out), want, dtype, name)


def _sigmoid(x):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


# float32 math has its own SIMD kernels (test_cpu_ewise.py): here float64's.
UNARY = {
    "ewise_neg": (np.negative, NUMERIC), "ewise_abs": (np.abs, NUMERIC),
    "ewise_not": (lambda a: np.logical_not(a) if a.dtype == bool else np.invert(a), INT_BOOL),
    "ewise_log": (np.log, ["float64"]), "ewise_exp": (np.exp, ["float64"]), "ewise_tanh": (np.tanh, ["float64"]),
    "ewise_sqrt": (np.sqrt, ["float64"]), "ewise_sigmoid": (_sigmoid, ["float64"]),
    "ewise_relu": (lambda a: np.where(a > 0, a, np.where(np.isnan(a), a, 0)), ["float64"]),
}


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name,dtype", cases(UNARY))
def test_unary(isa, rng, name, dtype, n):
    fn, _ = UNARY[name]
    a = data(rng, n, dtype, special=True)
    out = B.Array(n, dtype)
    getattr(B, name)(make(a, dtype), out)
    with np.errstate(all="ignore"):
        want = fn(a)
    if dtype == "float64" and name not in ("ewise_neg", "ewise_abs", "ewise_relu", "ewise_sqrt"):
        np.testing.assert_allclose(read(out), want, rtol=1e-15, atol=0)
    else:
        np.testing.assert_array_equal(read(out), want)


def test_abs_float32(rng):
    a = data(rng, 1000, "float32", special=True)
    out = B.Array(1000, "float32")
    B.ewise_abs(make(a, "float32"), out)
    np.testing.assert_array_equal(read(out), np.abs(a))


def test_integer_arithmetic_wraps():
    i32 = np.iinfo(np.int32)
    a = make(np.array([i32.max, i32.min, i32.min, 7], np.int32), "int32")
    b = make(np.array([1, -1, i32.min, i32.max], np.int32), "int32")
    out = B.Array(4, "int32")
    B.ewise_add(a, b, out)
    assert read(out).tolist() == [i32.min, i32.max, 0, i32.max + 7 - 2**32]
    B.ewise_mul(a, b, out)
    assert read(out).tolist() == [i32.max, i32.min, 0, (7 * i32.max + 2**31) % 2**32 - 2**31]
    B.ewise_sub(a, b, out)
    assert read(out).tolist() == [i32.max - 1, i32.min + 1, 0, 7 - i32.max]
    B.ewise_neg(a, out)
    assert read(out).tolist() == [-i32.max, i32.min, i32.min, -7]
    B.ewise_abs(a, out)
    assert read(out).tolist() == [i32.max, i32.min, i32.min, 7]
    u = make(np.array([255, 0, 128], np.uint8), "uint8")
    uo = B.Array(3, "uint8")
    B.scalar_add(u, 1, uo)
    assert read(uo).tolist() == [0, 1, 129]
    B.scalar_rsub(u, 0, uo)
    assert read(uo).tolist() == [1, 0, 128]
    B.scalar_mul(u, 2, uo)
    assert read(uo).tolist() == [254, 0, 0]
    i64 = np.iinfo(np.int64)
    a64 = make(np.array([i64.max, i64.min], np.int64), "int64")
    o64 = B.Array(2, "int64")
    B.scalar_add(a64, 1, o64)
    assert read(o64).tolist() == [i64.min, i64.min + 1]
    B.scalar_mul(a64, 3, o64)
    assert read(o64).tolist() == [(3 * i64.max + 2**63) % 2**64 - 2**63, i64.min]
    s = B.Array(1, "int32")
    B.reduce_sum(make(np.full(3, i32.max, np.int32), "int32"), s, 3)
    assert read(s).tolist() == [(3 * i32.max + 2**31) % 2**32 - 2**31]


def test_bool_bytes_other_than_one_read_as_true():
    a = B.Array(4, "bool")
    np.asarray(a).view(np.uint8)[:] = [0, 1, 2, 255]  # written behind the kernels' back
    b = make(np.array([True, True, True, True]), "bool")
    out = B.Array(4, "bool")
    B.ewise_and(a, b, out)
    assert np.asarray(out).view(np.uint8).tolist() == [0, 1, 1, 1]
    B.ewise_not(a, out)
    assert np.asarray(out).view(np.uint8).tolist() == [1, 0, 0, 0]
    B.ewise_eq(a, b, out)
    assert np.asarray(out).view(np.uint8).tolist() == [0, 1, 1, 1]
    B.cast(a, out)
    assert np.asarray(out).view(np.uint8).tolist() == [0, 1, 1, 1]
    i = B.Array(4, "int32")
    B.cast(a, i)
    assert read(i).tolist() == [0, 1, 1, 1]


# ---------------------------------------------------------------- cast, where
@pytest.mark.parametrize("n", [0, 1, 33, 70001])
@pytest.mark.parametrize("to", DTYPES)
@pytest.mark.parametrize("frm", DTYPES)
def test_cast(rng, frm, to, n):
    a = data(rng, n, frm, special=True)
    if frm in FLOATS and n:
        a[::7] *= 1e12  # out of every integer range but int64's
    out = B.Array(n, to)
    B.cast(make(a, frm), out)
    got = read(out)
    if to == "bool":
        np.testing.assert_array_equal(got, a != 0)  # NaN is True
        return
    if frm in FLOATS and to in INTS:
        info = np.iinfo(to)
        t = np.trunc(a)
        ok = np.isfinite(a) & (t >= info.min) & (t <= info.max)
        np.testing.assert_array_equal(got[ok], t[ok].astype(to))
        return
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(got, a.astype(to))


@pytest.mark.parametrize("to", INTS)
@pytest.mark.parametrize("frm", FLOATS)
def test_cast_float_specials_to_int_are_defined(frm, to):
    info = np.iinfo(to)
    a = make(np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, -0.9, 0.9, -1.5, 255.9], frm), frm)
    out = B.Array(9, to)
    B.cast(a, out)
    got = read(out).tolist()
    assert got[:5] == [0, info.max, info.min, info.max, info.min]  # NaN -> 0, beyond the range: its nearest end
    assert got[5:7] == [0, 0]  # truncation toward zero
    assert got[7] == (-1 if to != "uint8" else 0) and got[8] == 255


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_where(isa, rng, dtype, n):
    cond = rng.random(n) < 0.4
    a, b = data(rng, n, dtype), data(rng, n, dtype)
    want = np.where(cond, a, b)
    cbuf, abuf, bbuf = make(cond, "bool"), make(a, dtype), make(b, dtype)
    out = B.Array(n, dtype)
    B.where(cbuf, abuf, bbuf, out)
    np.testing.assert_array_equal(read(out), want)
    B.where(cbuf, abuf, bbuf, abuf)  # out is a
    np.testing.assert_array_equal(read(abuf), want)
    abuf = make(a, dtype)
    B.where(cbuf, abuf, bbuf, bbuf)  # out is b
    np.testing.assert_array_equal(read(bbuf), want)


# ---------------------------------------------------------------- reductions
SHAPES = [(1, 1), (3, 7), (5, 33), (1000, 3), (7, 1000), (1, 70001), (1, 200003)]
# float32 sums are test_cpu_ewise.py's (their own SIMD kernel); bool is not summed.
REDUCE = {"reduce_sum": (np.sum, ["float64"] + INTS), "reduce_max": (np.max, DTYPES), "reduce_min": (np.min, DTYPES)}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name,dtype", cases(REDUCE))
def test_reduce(isa, rng, name, dtype, shape):
    fn, _ = REDUCE[name]
    rows, size = shape
    a = data(rng, rows * size, dtype, special=(name != "reduce_sum"))
    out = B.Array(rows, dtype)
    getattr(B, name)(make(a, dtype), out, size)
    want = fn(a.reshape(rows, size), axis=1, **({"dtype": dtype} if name == "reduce_sum" else {}))
    if name == "reduce_sum" and dtype == "float64":
        np.testing.assert_allclose(read(out), want, rtol=1e-12, atol=1e-9)
    else:
        np.testing.assert_array_equal(read(out), want)


def test_reduce_sum_empty_rows():
    for dtype in NUMERIC:
        out = B.Array(3, dtype)
        B.fill(out, 5)
        B.reduce_sum(B.Array(0, dtype), out, 0)
        np.testing.assert_array_equal(read(out), np.zeros(3, dtype))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["reduce_argmax", "reduce_argmin"])
def test_argreduce(isa, rng, name, dtype, shape):
    rows, size = shape
    a = data(rng, rows * size, dtype)
    if dtype in INTS:
        a = a % 4  # many ties
    out = B.Array(rows, "int64")
    getattr(B, name)(make(a, dtype), out, size)
    fn = np.argmax if name == "reduce_argmax" else np.argmin
    np.testing.assert_array_equal(read(out), fn(a.reshape(rows, size), axis=1))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("size", [5, 100, 70001, 200003])
def test_argreduce_ties_and_nan(dtype, size):
    a = np.zeros(size, dtype)
    a[size // 3] = a[size - 1] = 7  # two maxima: the first wins
    a[size // 4] = a[size // 2] = -7
    for name, fn in (("reduce_argmax", np.argmax), ("reduce_argmin", np.argmin)):
        out = B.Array(1, "int64")
        getattr(B, name)(make(a, dtype), out, size)
        assert read(out)[0] == fn(a)
    a[size // 2 + 1] = np.nan
    a[size - 2] = np.nan  # the first NaN wins, for max and min alike
    for name in ("reduce_argmax", "reduce_argmin"):
        out = B.Array(1, "int64")
        getattr(B, name)(make(a, dtype), out, size)
        assert read(out)[0] == size // 2 + 1 == np.argmax(a) == np.argmin(a)
    m = B.Array(1, dtype)
    B.reduce_min(make(a, dtype), m, size)
    assert np.isnan(read(m)[0])


def test_argreduce_bool_and_zero_size():
    a = make(np.array([False, False, True, True, False]), "bool")
    out = B.Array(1, "int64")
    B.reduce_argmax(a, out, 5)
    assert read(out)[0] == 2
    B.reduce_argmin(a, out, 5)
    assert read(out)[0] == 0
    with pytest.raises(ValueError, match="zero-size"):
        B.reduce_argmax(B.Array(0, "int32"), B.Array(2, "int64"), 0)
    with pytest.raises(ValueError, match="out must not be a"):
        x = B.Array(4, "int64")
        B.reduce_argmax(x, x, 1)


# ---------------------------------------------------------------- matmul
MATMUL_SHAPES = [(0, 3, 4), (3, 0, 4), (1, 1, 1), (5, 7, 3), (33, 130, 257), (70, 40, 300)]


def matmul_oracle(a, b, dtype):
    """numpy's product for floats; for integers the exact product (Python ints) reduced modulo 2**bits."""
    if dtype in FLOATS:
        return a @ b
    return _wrap(a.astype(object) @ b.astype(object), dtype)


def _wrap(x, dtype):
    bits = np.iinfo(dtype).bits
    x = np.asarray(x, dtype=object) % (1 << bits)
    if np.iinfo(dtype).min < 0:
        x = np.where(x >= (1 << (bits - 1)), x - (1 << bits), x)
    return x.astype(dtype)


@pytest.mark.parametrize("shape", MATMUL_SHAPES)
@pytest.mark.parametrize("dtype", ["float64"] + INTS)
def test_matmul(rng, dtype, shape):
    m, n, p = shape
    a, b = data(rng, m * n, dtype).reshape(m, n), data(rng, n * p, dtype).reshape(n, p)
    if dtype == "int64" and m * n * p > 10**5:
        a, b = a % 1000, b % 1000  # keep the object-dtype oracle quick
    out = B.Array(m * p, dtype)
    B.matmul(make(a, dtype), make(b, dtype), out, m, n, p)
    want = matmul_oracle(a, b, dtype)
    if dtype == "float64":
        np.testing.assert_allclose(read(out).reshape(m, p), want, rtol=1e-12, atol=1e-12)
    else:
        np.testing.assert_array_equal(read(out).reshape(m, p), want)


@pytest.mark.parametrize("dtype", ["float64", "int32", "uint8"])
def test_matmul_batched_and_alias(rng, dtype):
    batch, m, n, p = 3, 5, 6, 4
    a, b = data(rng, batch * m * n, dtype), data(rng, batch * n * p, dtype)
    out = B.Array(batch * m * p, dtype)
    B.matmul_batched(make(a, dtype), make(b, dtype), out, batch, m, n, p)
    want = np.stack([matmul_oracle(x, y, dtype) for x, y in zip(a.reshape(batch, m, n), b.reshape(batch, n, p))])
    np.testing.assert_allclose(read(out).reshape(batch, m, p), want, rtol=1e-12)
    sq = data(rng, 36, dtype)
    abuf = make(sq, dtype)
    B.matmul(abuf, abuf, abuf, 6, 6, 6)  # out is a and b: through a scratch buffer
    np.testing.assert_allclose(read(abuf).reshape(6, 6), matmul_oracle(sq.reshape(6, 6), sq.reshape(6, 6), dtype),
                               rtol=1e-12)


def test_matmul_refuses_bool_and_mixed():
    with pytest.raises(TypeError, match=r"matmul: a has dtype bool, expected one of \(uint8, int32, int64, float32, "
                                        r"float64\)"):
        B.matmul(B.Array(4, "bool"), B.Array(4, "bool"), B.Array(4, "bool"), 2, 2, 2)
    with pytest.raises(TypeError, match=r"matmul: b has dtype float32, expected float64 \(the dtype of a\)"):
        B.matmul(B.Array(4, "float64"), B.Array(4), B.Array(4, "float64"), 2, 2, 2)
    with pytest.raises(TypeError, match="matmul_batched: out has dtype int64, expected int32"):
        B.matmul_batched(B.Array(4, "int32"), B.Array(4, "int32"), B.Array(4, "int64"), 1, 2, 2, 2)


# ---------------------------------------------------------------- gather / scatter
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("rows,row_size,idx", [(5, 3, [4, 0, 4, 2, 0, 0]), (1, 1, [0]), (4, 2, []),
                                               (3, 70001, [2, 2])])
def test_gather_scatter_rows(rng, dtype, rows, row_size, idx):
    idx = np.array(idx, np.int64)
    count = idx.size
    a = data(rng, rows * row_size, dtype).reshape(rows, row_size)
    out = B.Array(count * row_size, dtype)
    B.gather_rows(make(a, dtype), make(idx, "int64"), out, rows, row_size, count)
    np.testing.assert_array_equal(read(out).reshape(count, row_size), a[idx])
    if dtype == "bool":
        with pytest.raises(TypeError, match="scatter_add_rows: g has dtype bool"):
            B.scatter_add_rows(_zeros(count * row_size, dtype), make(idx, "int64"), B.Array(a.size, dtype), rows,
                               row_size, count)
        return
    g = data(rng, count * row_size, dtype).reshape(count, row_size)
    base = data(rng, rows * row_size, dtype).reshape(rows, row_size)
    obuf = make(base, dtype)
    B.scatter_add_rows(make(g, dtype), make(idx, "int64"), obuf, rows, row_size, count)
    want = base.copy()
    with np.errstate(all="ignore"):
        np.add.at(want, idx, g)  # repeated indices accumulate (integers wrap)
    if dtype in FLOATS:
        np.testing.assert_allclose(read(obuf).reshape(rows, row_size), want, rtol=1e-6)
    else:
        np.testing.assert_array_equal(read(obuf).reshape(rows, row_size), want)


@pytest.mark.parametrize("bad", [5, -1, 2**40])
def test_gather_scatter_bad_index(bad):
    idx = make(np.array([0, 1, bad, 7], np.int64), "int64")
    a = make(np.arange(10, dtype=np.float64), "float64")
    out = make(np.full(8, -1.0), "float64")
    with pytest.raises(IndexError, match=rf"gather_rows: idx\[2\] = {bad} is out of range for 5 rows"):
        B.gather_rows(a, idx, out, 5, 2, 4)
    np.testing.assert_array_equal(read(out), np.full(8, -1.0))  # nothing written
    with pytest.raises(IndexError, match=rf"scatter_add_rows: idx\[2\] = {bad} is out of range for 5 rows"):
        B.scatter_add_rows(out, idx, a, 5, 2, 4)
    np.testing.assert_array_equal(read(a), np.arange(10.0))
    with pytest.raises(TypeError, match="gather_rows: idx has dtype int32, expected int64"):
        B.gather_rows(a, B.Array(4, "int32"), out, 5, 2, 4)
    with pytest.raises(ValueError, match="idx has 4 elements, needs at least 5"):
        B.gather_rows(a, idx, B.Array(10, "float64"), 5, 2, 5)
    with pytest.raises(ValueError, match="out must not be a"):
        B.gather_rows(a, make(np.zeros(2, np.int64), "int64"), a, 5, 2, 2)


# ---------------------------------------------------------------- aliasing: out is an input
@pytest.mark.parametrize("dtype", DTYPES)
def test_elementwise_aliasing(rng, dtype):
    n = 70001
    a, b = data(rng, n, dtype), data(rng, n, dtype)
    for name, (fn, dtypes) in BINARY.items():
        if dtype not in dtypes or name == "ewise_power":
            continue
        with np.errstate(all="ignore"):
            want, want_aa = fn(a, b), fn(a, a)
        for which in ("a", "b", "both"):
            abuf, bbuf = make(a, dtype), make(b, dtype)
            if which == "a":
                getattr(B, name)(abuf, bbuf, abuf)
                got, w = read(abuf), want
            elif which == "b":
                getattr(B, name)(abuf, bbuf, bbuf)
                got, w = read(bbuf), want
            else:
                getattr(B, name)(abuf, abuf, abuf)
                got, w = read(abuf), want_aa
            check_close(got, w, dtype, name)
    for name, (fn, dtypes) in SCALAR.items():
        if dtype not in dtypes or name == "scalar_power":
            continue
        abuf = make(a, dtype)
        getattr(B, name)(abuf, scalar_for(dtype), abuf)
        with np.errstate(all="ignore"):
            check_close(read(abuf), fn(a, np.array(scalar_for(dtype), dtype)), dtype, name)
    for name, (fn, dtypes) in UNARY.items():
        if dtype not in dtypes:
            continue
        abuf = make(a, dtype)
        getattr(B, name)(abuf, abuf)
        with np.errstate(all="ignore"):
            want = fn(a)
        if dtype == "float64" and name not in ("ewise_neg", "ewise_abs", "ewise_relu", "ewise_sqrt"):
            np.testing.assert_allclose(read(abuf), want, rtol=1e-15)
        else:
            np.testing.assert_array_equal(read(abuf), want)
    if dtype == "bool":  # comparisons on bool may write into an input
        abuf, bbuf = make(a, dtype), make(b, dtype)
        B.ewise_ge(abuf, bbuf, abuf)
        np.testing.assert_array_equal(read(abuf), a >= b)
    abuf = make(a, dtype)
    B.cast(abuf, abuf)  # a cast between equal dtypes may be in place
    np.testing.assert_array_equal(read(abuf), a)


# ---------------------------------------------------------------- wrong dtypes are TypeErrors
def _arr(dtype, n=4):
    return B.Array(n, dtype)


TYPE_ERRORS = [
    ("ewise_add", lambda: B.ewise_add(_arr("float32"), _arr("float32"), _arr("int32")),
     r"ewise_add: out has dtype int32, expected float32 \(the dtype of a\)"),
    ("ewise_add", lambda: B.ewise_add(_arr("int32"), _arr("int64"), _arr("int32")),
     r"ewise_add: b has dtype int64, expected int32 \(the dtype of a\)"),
    ("ewise_add", lambda: B.ewise_add(_arr("bool"), _arr("bool"), _arr("bool")), r"ewise_add: a has dtype bool"),
    ("ewise_log", lambda: B.ewise_log(_arr("int32"), _arr("int32")),
     r"ewise_log: a has dtype int32, expected one of \(float32, float64\)"),
    ("ewise_exp", lambda: B.ewise_exp(_arr("float32"), _arr("float64")), r"ewise_exp: out has dtype float64"),
    ("ewise_and", lambda: B.ewise_and(_arr("float32"), _arr("float32"), _arr("float32")),
     r"ewise_and: a has dtype float32, expected one of \(bool, uint8, int32, int64\)"),
    ("ewise_not", lambda: B.ewise_not(_arr("float64"), _arr("float64")), r"ewise_not: a has dtype float64"),
    ("ewise_div", lambda: B.ewise_div(_arr("int64"), _arr("int64"), _arr("int64")), r"ewise_div: a has dtype int64"),
    ("ewise_power", lambda: B.ewise_power(_arr("uint8"), _arr("uint8"), _arr("uint8")), r"ewise_power: a has"),
    ("scalar_div", lambda: B.scalar_div(_arr("int32"), 2, _arr("int32")), r"scalar_div: a has dtype int32"),
    ("scalar_power", lambda: B.scalar_power(_arr("int32"), 2, _arr("int32")), r"scalar_power: a has dtype int32"),
    ("scalar_rdiv", lambda: B.scalar_rdiv(_arr("uint8"), 2, _arr("uint8")), r"scalar_rdiv: a has dtype uint8"),
    ("ewise_neg", lambda: B.ewise_neg(_arr("bool"), _arr("bool")), r"ewise_neg: a has dtype bool"),
    ("ewise_eq", lambda: B.ewise_eq(_arr("int32"), _arr("int32"), _arr("int32")),
     r"ewise_eq: out has dtype int32, expected bool"),
    ("ewise_lt", lambda: B.ewise_lt(_arr("float32"), _arr("float32"), _arr("float32")),
     r"ewise_lt: out has dtype float32, expected bool"),
    ("ewise_ge", lambda: B.ewise_ge(_arr("float32"), _arr("float64"), _arr("bool")),
     r"ewise_ge: b has dtype float64, expected float32"),
    ("scalar_gt", lambda: B.scalar_gt(_arr("uint8"), 1, _arr("uint8")), r"scalar_gt: out has dtype uint8"),
    ("where", lambda: B.where(_arr("float32"), _arr("float32"), _arr("float32"), _arr("float32")),
     r"where: cond has dtype float32, expected bool"),
    ("where", lambda: B.where(_arr("bool"), _arr("int32"), _arr("int64"), _arr("int32")), r"where: b has dtype int64"),
    ("reduce_sum", lambda: B.reduce_sum(_arr("bool"), _arr("bool", 1), 4), r"reduce_sum: a has dtype bool"),
    ("reduce_max", lambda: B.reduce_max(_arr("int32"), _arr("int64", 1), 4), r"reduce_max: out has dtype int64"),
    ("reduce_argmax", lambda: B.reduce_argmax(_arr("float32"), _arr("float32", 1), 4),
     r"reduce_argmax: out has dtype float32, expected int64"),
    ("compact", lambda: B.compact(_arr("float32"), _arr("float64"), (4,), (1,), 0), r"compact: out has dtype float64"),
    ("ewise_setitem", lambda: B.ewise_setitem(_arr("int32"), _arr("int64"), (4,), (1,), 0),
     r"ewise_setitem: a has dtype int32, expected int64 \(the dtype of out\)"),
    ("scatter_add_rows", lambda: B.scatter_add_rows(_arr("int32"), _arr("int64", 1), _arr("int64"), 2, 2, 1),
     r"scatter_add_rows: out has dtype int64"),
    ("matmul_tiled", lambda: B.matmul_tiled(_arr("float64", 64), _arr("float64", 64), _arr("float64", 64), 8, 8, 8),
     r"matmul_tiled: a has dtype float64, expected float32"),
]


@pytest.mark.parametrize("kernel,call,message", TYPE_ERRORS,
                         ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(TYPE_ERRORS)])
def test_wrong_dtype_is_type_error(kernel, call, message):
    with pytest.raises(TypeError, match=message):
        call()


def _zeros(n, dtype="float32"):
    buf = B.Array(n, dtype)
    B.fill(buf, 0)
    return buf


def _fused_calls(dt):
    f = lambda n=8: _zeros(n, dt)  # noqa: E731
    g = lambda n=8: _zeros(n)  # noqa: E731  float32
    return {
        "matmul_bias": lambda: B.matmul_bias(f(4), g(4), g(2), g(4), 2, 2, 2),
        "matmul_tn": lambda: B.matmul_tn(f(4), g(4), g(4), 2, 2, 2),
        "matmul_nt": lambda: B.matmul_nt(f(4), g(4), g(4), 2, 2, 2),
        "ewise_relu_backward": lambda: B.ewise_relu_backward(f(4), g(4), g(4)),
        "lstm_cell_forward": lambda: B.lstm_cell_forward(f(8), g(8), g(2), g(2), g(2), g(2), g(2), 0, 1, 2),
        "lstm_cell_backward": lambda: B.lstm_cell_backward(f(2), g(2), g(8), g(2), g(2), g(2), g(8), g(8), 0, 1, 2),
        "adam_step": lambda: B.adam_step(f(4), g(4), g(4), g(4), g(4), 0.1, 0.9, 0.99, 1e-8, 0.0, 0.1, 0.01, False),
        "sgd_step": lambda: B.sgd_step(f(4), g(4), None, g(4), 0.1, 0.0, 0.0),
        "rmsprop_step": lambda: B.rmsprop_step(f(4), g(4), g(4), None, g(4), 0.1, 0.9, 1e-8, 0.0, 0.0),
        "softmax_xent_forward": lambda: B.softmax_xent_forward(f(4), g(2), g(4), g(2), 2, 2),
        "softmax_xent_backward": lambda: B.softmax_xent_backward(f(4), g(2), g(1), g(4), 2, 2),
        "conv2d_nhwc": lambda: B.conv2d_nhwc(f(4), g(1), g(4), 1, 2, 2, 1, 1, 1, 1, 1, 1),
        "conv2d_nhwc_padded": lambda: B.conv2d_nhwc_padded(f(4), g(9), g(4), 1, 2, 2, 1, 1, 3, 3, 1, 1, 1, 1),
        "conv2d_nhwc_grad_weight_padded": lambda: B.conv2d_nhwc_grad_weight_padded(
            f(4), g(4), g(9), 1, 2, 2, 1, 1, 3, 3, 1, 1, 1, 1),
        "conv2d_nhwc_grad_input_padded": lambda: B.conv2d_nhwc_grad_input_padded(
            f(4), g(9), g(4), 1, 2, 2, 1, 1, 3, 3, 1, 1, 1, 1),
    }


@pytest.mark.parametrize("dtype", ["float64", "int32", "bool"])
@pytest.mark.parametrize("kernel", sorted(_fused_calls("float32")))
def test_fused_kernels_are_float32_only(kernel, dtype):
    assert B.FUSED_DTYPES == ("float32",)
    first = {"lstm_cell_forward": "gates", "lstm_cell_backward": "dh", "softmax_xent_forward": "z",
             "softmax_xent_backward": "probs",
             "conv2d_nhwc_grad_input_padded": "g"}.get(kernel, "param" if kernel.endswith("_step") else "a")
    with pytest.raises(TypeError, match=rf"{kernel}: {first} has dtype {dtype}, expected float32"):
        _fused_calls(dtype)[kernel]()
    _fused_calls("float32")[kernel]()  # the same call on float32 runs


def test_legacy_float_mask_comparisons_still_work():
    # A core still on protocol 1 passes a float32 out to eq/ge; it gets the 1.0/0.0 mask.
    a = make(np.array([1.0, 2.0, np.nan], np.float32), "float32")
    b = make(np.array([1.0, 3.0, np.nan], np.float32), "float32")
    out = B.Array(3)
    B.ewise_eq(a, b, out)
    assert read(out).tolist() == [1.0, 0.0, 0.0]
    B.scalar_ge(a, 2.0, out)
    assert read(out).tolist() == [0.0, 1.0, 0.0]


def test_protocol_module_declares_protocol_2():
    from needle.backend_ndarray import protocol
    assert B.PROTOCOL_VERSION == 2 and set(B.DTYPES) == set(protocol.ALL_DTYPES)
    assert protocol.missing_kernels(B) == []
    assert set(protocol.OPTIONAL_KERNELS_V2) <= set(protocol.optional_kernels(B))
