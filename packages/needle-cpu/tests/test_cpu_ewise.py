"""Elementwise, scalar and reduction kernels against numpy, on awkward sizes and every ISA."""
import numpy as np
import pytest

from needle_cpu import _backend as B


def to_buffer(x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    buf = B.Array(x.size)
    B.from_numpy(x, buf)
    return buf


def from_buffer(buf):
    return np.asarray(buf).copy()  # the buffer protocol: independent of the kernels under test


# Sizes straddle the vector widths (8, 16), the unrolled lanes (32) and the threading grain (2**16).
SIZES = [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 97, 1000, 65537, 200003]

BINARY = {
    "ewise_add": np.add, "ewise_sub": np.subtract, "ewise_mul": np.multiply, "ewise_div": np.divide,
    "ewise_maximum": np.maximum,
    "ewise_eq": lambda a, b: (a == b).astype(np.float32), "ewise_ge": lambda a, b: (a >= b).astype(np.float32),
    "ewise_relu_backward": lambda x, g: np.where(x > 0, g, 0).astype(np.float32),
}
SCALAR = {
    "scalar_add": np.add, "scalar_mul": np.multiply, "scalar_div": np.divide, "scalar_maximum": np.maximum,
    "scalar_eq": lambda a, v: (a == v).astype(np.float32), "scalar_ge": lambda a, v: (a >= v).astype(np.float32),
    "scalar_rsub": lambda a, v: np.float32(v) - a, "scalar_rdiv": lambda a, v: np.float32(v) / a,
}
UNARY = {
    "ewise_neg": np.negative, "ewise_exp": np.exp, "ewise_tanh": np.tanh, "ewise_relu": lambda a: np.maximum(a, 0),
    "ewise_sigmoid": lambda a: (1 / (1 + np.exp(-a.astype(np.float64)))).astype(np.float32),
}


def _data(rng, n, positive=False):
    x = rng.standard_normal(n).astype(np.float32) * 3
    x[::5] = np.round(x[::5])  # ties for eq/ge/maximum
    if positive:
        x = np.abs(x) + np.float32(0.01)
    return x


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary(isa, rng, name, n):
    a, b = _data(rng, n), _data(rng, n)
    b[::3] = a[::3]
    if name == "ewise_div":
        b[b == 0] = 1.5
    out = B.Array(n)
    getattr(B, name)(to_buffer(a), to_buffer(b), out)
    np.testing.assert_allclose(from_buffer(out), BINARY[name](a, b), rtol=1e-6, atol=0)


@pytest.mark.parametrize("n", [0, 1, 9, 1000, 70001])
def test_ewise_power(isa, rng, n):
    a, b = _data(rng, n, positive=True), _data(rng, n) / 3
    out = B.Array(n)
    B.ewise_power(to_buffer(a), to_buffer(b), out)
    np.testing.assert_allclose(from_buffer(out), np.power(a, b), rtol=2e-6)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", sorted(SCALAR))
@pytest.mark.parametrize("val", [-1.5, 0.0, 2.0])
def test_scalar(isa, rng, name, n, val):
    if name in ("scalar_div",) and val == 0.0:
        val = 0.25
    a = _data(rng, n)
    if name == "scalar_rdiv":
        a[a == 0] = 0.5
    out = B.Array(n)
    getattr(B, name)(to_buffer(a), val, out)
    np.testing.assert_allclose(from_buffer(out), SCALAR[name](a, np.float32(val)), rtol=1e-6)


@pytest.mark.parametrize("n", [0, 1, 9, 1000, 70001])
@pytest.mark.parametrize("val", [0.0, 1.0, 2.0, 3.0, 0.5, -1.0, -2.5, 1.7])
def test_scalar_power(isa, rng, n, val):
    a = _data(rng, n, positive=True)
    out = B.Array(n)
    B.scalar_power(to_buffer(a), val, out)
    np.testing.assert_allclose(from_buffer(out), np.power(a, np.float32(val)), rtol=2e-6)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(isa, rng, name, n):
    a = _data(rng, n)
    out = B.Array(n)
    getattr(B, name)(to_buffer(a), out)
    np.testing.assert_allclose(from_buffer(out), UNARY[name](a), rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("n", SIZES)
def test_log_sqrt(isa, rng, n):
    a = _data(rng, n, positive=True)
    for name, ref in (("ewise_log", np.log), ("ewise_sqrt", np.sqrt)):
        out = B.Array(n)
        getattr(B, name)(to_buffer(a), out)
        np.testing.assert_allclose(from_buffer(out), ref(a), rtol=2e-6, atol=1e-7)


def test_math_over_full_range(isa):
    # exp/log/tanh/sigmoid across float32's range, including the special values numpy defines.
    x = np.concatenate([np.linspace(-110, 110, 20001, dtype=np.float32),
                        np.float32([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 88.7, 88.8, -103.0, -104.0])])
    for name, ref in (("ewise_exp", np.exp), ("ewise_tanh", np.tanh),
                      ("ewise_sigmoid", lambda v: (1 / (1 + np.exp(-v.astype(np.float64)))).astype(np.float32))):
        out = B.Array(x.size)
        with np.errstate(over="ignore"):
            expected = ref(x)
        getattr(B, name)(to_buffer(x), out)
        np.testing.assert_allclose(from_buffer(out), expected, rtol=3e-6, atol=1e-40, err_msg=name)
    pos = np.concatenate([np.logspace(-44, 38, 20001, dtype=np.float32),
                          np.float32([0.0, np.inf, -1.0, -np.inf, np.nan, 1.0, 1.4e-45, 3.4e38])])
    out = B.Array(pos.size)
    B.ewise_log(to_buffer(pos), out)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_allclose(from_buffer(out), np.log(pos), rtol=2e-6, atol=1e-7)


def test_math_special_values_exact(isa):
    # Limits that numpy gives exactly (IEEE): no approximation error allowed here.
    x = np.float32([np.inf, -np.inf, 30.0, -30.0, 0.0, -0.0, 1e-30, -1e-30])
    cases = {
        "ewise_tanh": [1.0, -1.0, 1.0, -1.0, 0.0, -0.0, 1e-30, -1e-30],
        "ewise_exp": [np.inf, 0.0, np.exp(np.float32(30.0)), np.exp(np.float32(-30.0)), 1.0, 1.0, 1.0, 1.0],
        "ewise_sigmoid": [1.0, 0.0, 1.0, None, 0.5, 0.5, 0.5, 0.5],
    }
    for name, expected in cases.items():
        out = B.Array(x.size)
        getattr(B, name)(to_buffer(x), out)
        got = from_buffer(out)
        for xi, gi, ei in zip(x, got, expected):
            if ei is None:
                continue
            if name == "ewise_exp" and abs(xi) == 30.0:
                np.testing.assert_allclose(gi, ei, rtol=2e-7, err_msg=f"{name}({xi})")
            else:
                assert gi == np.float32(ei) and np.signbit(gi) == np.signbit(np.float32(ei)), f"{name}({xi}) = {gi!r}"


def test_sigmoid_tanh_finite_at_extremes(isa):
    x = np.float32([-100.0, 100.0, -1e4, 1e4])
    for name in ("ewise_sigmoid", "ewise_tanh"):
        out = B.Array(4)
        getattr(B, name)(to_buffer(x), out)
        assert np.all(np.isfinite(from_buffer(out))), name


def test_nan_propagates_like_numpy(isa):
    a = np.float32([np.nan, 1.0, np.nan, -2.0, 0.0])
    b = np.float32([1.0, np.nan, np.nan, -3.0, np.nan])
    out = B.Array(5)
    B.ewise_maximum(to_buffer(a), to_buffer(b), out)
    np.testing.assert_array_equal(from_buffer(out), np.maximum(a, b))
    B.scalar_maximum(to_buffer(a), 0.5, out)
    np.testing.assert_array_equal(from_buffer(out), np.maximum(a, np.float32(0.5)))
    B.ewise_relu(to_buffer(a), out)
    np.testing.assert_array_equal(from_buffer(out), np.maximum(a, 0))


def test_in_place(isa, rng):
    a = _data(rng, 1001)
    buf = to_buffer(a)
    B.ewise_add(buf, buf, buf)
    np.testing.assert_allclose(from_buffer(buf), a + a)
    B.scalar_mul(buf, 0.5, buf)
    B.ewise_exp(buf, buf)
    np.testing.assert_allclose(from_buffer(buf), np.exp(a), rtol=2e-6)


def test_fill(isa):
    for n in (0, 1, 17, 100003):
        out = B.Array(n)
        B.fill(out, -2.5)
        np.testing.assert_array_equal(from_buffer(out), np.full(n, -2.5, np.float32))


@pytest.mark.parametrize("rows,size", [(1, 1), (1, 7), (3, 5), (0, 4), (5, 0), (1, 33), (7, 1000), (1, 300001),
                                       (2, 200003), (10007, 3), (64, 4096)])
def test_reductions(isa, rng, rows, size):
    a = rng.standard_normal((rows, size)).astype(np.float32)
    out = B.Array(rows)
    B.reduce_sum(to_buffer(a), out, size)
    np.testing.assert_allclose(from_buffer(out), a.astype(np.float64).sum(axis=1), rtol=1e-5,
                               atol=1e-5 * np.sqrt(max(size, 1)))
    if size:
        B.reduce_max(to_buffer(a), out, size)
        np.testing.assert_array_equal(from_buffer(out), a.max(axis=1))


@pytest.mark.parametrize("length", [3, 31, 32, 33, 64, 65, 200, 100003])
def test_reduce_max_nan_and_inf(isa, length):
    nan_at = sorted({0, 1, length // 2, length - 1})
    a = np.full((len(nan_at) + 3, length), -1.0, np.float32)
    a[np.arange(len(nan_at)), nan_at] = np.nan  # one nan per row, at the start, middle and end
    a[-3] = -np.inf
    a[-2, -1] = np.inf
    a[-1] = np.linspace(-5, 5, length)
    out = B.Array(a.shape[0])
    B.reduce_max(to_buffer(a), out, length)
    np.testing.assert_array_equal(from_buffer(out), a.max(axis=1))
