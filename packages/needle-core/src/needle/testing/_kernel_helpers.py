"""Helpers of the kernel-level conformance tests: buffers, test data per dtype, exact oracles,
and protocol 2's rule of which kernel runs on which dtypes (protocol.py).

Oracles work in an exact domain: float64 for floats, Python ints (numpy object arrays) for
integers, then the result is rounded (floats) or wrapped modulo 2**bits (integers) into the
dtype, so integer overflow is checked against arithmetic that cannot overflow.
"""
import numpy as np
import pytest

from needle.backend_ndarray import protocol

FLOATS = protocol.FLOAT_DTYPES
INTEGERS = protocol.INTEGER_DTYPES

# Which dtypes each kernel runs on (protocol.py, "Kernels that run on EVERY declared dtype"...).
EVERY, NOT_BOOL, FLOAT_ONLY, INT_AND_BOOL = "every", "not bool", "float only", "int and bool"
KERNEL_RULE = {
    **dict.fromkeys(["ewise_add", "ewise_mul", "scalar_add", "scalar_mul", "matmul", "reduce_sum", "ewise_sub",
                     "scalar_rsub", "ewise_neg", "ewise_abs", "matmul_batched", "scatter_add_rows"], NOT_BOOL),
    **dict.fromkeys(["ewise_div", "scalar_div", "scalar_rdiv", "scalar_power", "ewise_power", "ewise_log",
                     "ewise_exp", "ewise_tanh", "ewise_sqrt", "ewise_sigmoid", "ewise_relu"], FLOAT_ONLY),
    **dict.fromkeys(["ewise_and", "ewise_or", "ewise_xor", "ewise_not"], INT_AND_BOOL),
}


def version(dev):
    """The protocol version the backend declares."""
    return getattr(dev.backend, "PROTOCOL_VERSION", 1)


def dtypes_for(dev, kernel=None):
    """The declared dtypes ``kernel`` must run on (every declared dtype without a kernel name)."""
    rule = KERNEL_RULE.get(kernel, EVERY)
    declared = dev.dtypes  # a protocol-1 backend: its float dtypes only
    if rule == NOT_BOOL:
        return [d for d in declared if d != "bool"]
    if rule == FLOAT_ONLY:
        return [d for d in declared if d in FLOATS]
    if rule == INT_AND_BOOL:
        return [d for d in declared if d not in FLOATS]
    return list(declared)


def fused_dtypes(dev):
    """The dtypes the fused kernels and conv2d_nhwc are checked on: ``FUSED_DTYPES`` (default
    float32) for protocol 2; the float dtypes for a protocol-1 backend, as before."""
    if version(dev) < 2:
        return list(dev.dtypes)
    return [d for d in getattr(dev.backend, "FUSED_DTYPES", ("float32",)) if d in dev.dtypes]


def mask_dtype(dev, dtype):
    """The dtype comparisons write: bool (protocol 2), or the input's own (protocol 1: 1.0/0.0)."""
    return "bool" if version(dev) >= 2 else dtype


def kernel(dev, name):
    """The backend's kernel ``name``; skips when it is optional (or of a newer protocol) and absent."""
    if name in protocol.required_kernels(version(dev)):
        return getattr(dev, name)
    found = dev.optional(name)
    if found is None:
        if name in protocol.REQUIRED_KERNELS_V2:
            pytest.skip(f"protocol-1 backend: no protocol-2 kernel {name} (core serves it float tensors only)")
        pytest.skip(f"backend has no optional kernel {name} (core's fallback is tested by the NDArray suite)")
    return found


def rtol(dtype):
    return 1e-5 if dtype == "float32" else 1e-12


def buf(dev, x, dtype):
    x = np.ascontiguousarray(x, dtype=dtype)
    out = dev.Array(x.size, dtype)
    dev.from_numpy(x, out)
    return out


def read(dev, a, size=None):
    size = a.size if size is None else size
    return np.asarray(dev.to_numpy(a, (size,), (1,), 0))


def data(n, dtype, seed=0, low=-2.0, high=2.0):
    """``n`` values of ``dtype``: uniform floats in [low, high); integers over a range that makes
    sums and products overflow, with the type's extremes first; random bools."""
    rng = np.random.RandomState(seed + n)
    if dtype in FLOATS:
        return rng.uniform(low, high, n).astype(dtype)
    if dtype == "bool":
        return rng.randint(0, 2, n).astype(bool)
    info = np.iinfo(dtype)
    x = rng.randint(max(info.min, -10**6), min(info.max, 10**6) + 1, n, dtype=np.int64).astype(dtype)
    x[: min(n, 2)] = [info.max, info.min][: min(n, 2)]
    return x


def small(n, dtype, seed=0):
    """Values of ``dtype`` small enough for matmul operands (integers in [-9, 9], or [0, 9])."""
    if dtype in FLOATS or dtype == "bool":
        return data(n, dtype, seed)
    low = 0 if dtype == "uint8" else -9
    return np.random.RandomState(seed + n).randint(low, 10, n).astype(dtype)


def scalars(dtype):
    """Scalars as core passes them: Python floats for float buffers, ints (in range) otherwise."""
    if dtype in FLOATS:
        return (1.5, -0.5, 3.0)
    if dtype == "bool":
        return (0, 1)
    if dtype == "uint8":
        return (3, 200, 0)
    return (3, -2, int(np.iinfo(dtype).max))


def exact(x):
    """``x`` in the exact domain of its dtype: float64, Python ints (object array) or bool."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        return x.astype(np.float64)
    if x.dtype.kind in "iu":
        return x.astype(object)
    return x


def wrap(x, dtype):
    """Exact integers ``x`` reduced modulo 2**bits into ``dtype``."""
    info = np.iinfo(dtype)
    span = int(info.max) - int(info.min) + 1
    return np.array([(int(v) - int(info.min)) % span + int(info.min) for v in np.ravel(x)],
                    dtype=dtype).reshape(np.shape(x))


def check(got, expected, dtype, tol=1.0, atol=0.0, msg=""):
    """``got`` (a kernel's output of ``dtype``) against the exact ``expected``."""
    got = np.asarray(got)
    assert got.dtype == np.dtype(dtype), f"{msg}: output dtype {got.dtype}, expected {dtype}"
    if dtype in FLOATS:
        np.testing.assert_allclose(got, np.asarray(expected, dtype=np.float64).astype(dtype),
                                   rtol=rtol(dtype) * tol, atol=atol, err_msg=msg)
    elif dtype == "bool":
        np.testing.assert_array_equal(got, np.asarray(expected, dtype=bool), err_msg=msg)
    else:
        np.testing.assert_array_equal(got, wrap(expected, dtype), err_msg=msg)


def check_mask(dev, got, expected, dtype, msg=""):
    """A comparison's output: bool (protocol 2) or 1.0/0.0 in the input's dtype (protocol 1)."""
    got = np.asarray(got)
    assert got.dtype == np.dtype(mask_dtype(dev, dtype)), f"{msg}: comparison wrote {got.dtype}"
    if got.dtype != np.bool_:
        assert np.isin(got, (0, 1)).all(), f"{msg}: a protocol-1 mask holds only 1.0 and 0.0, got {got}"
    np.testing.assert_array_equal(got.astype(bool), np.asarray(expected, dtype=bool), err_msg=msg)


def special_floats(dtype):
    """NaN, infinities, signed zeros, the type's extremes and ordinary values, for comparisons."""
    info = np.finfo(dtype)
    return np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.5, info.max, info.min, info.tiny, np.nan, 2.0],
                    dtype=dtype)


# ---- elementwise: name -> oracle on the exact domain (float64, Python ints, bool) --------------
BINARY = {
    "ewise_add": np.add, "ewise_mul": np.multiply, "ewise_div": np.divide, "ewise_maximum": np.maximum,
    "ewise_minimum": np.minimum, "ewise_sub": np.subtract, "ewise_power": np.power,
}
COMPARE = {
    "ewise_eq": np.equal, "ewise_ge": np.greater_equal, "ewise_ne": np.not_equal, "ewise_lt": np.less,
    "ewise_le": np.less_equal, "ewise_gt": np.greater,
}
SCALAR = {
    "scalar_add": np.add, "scalar_mul": np.multiply, "scalar_div": np.divide, "scalar_power": np.power,
    "scalar_maximum": np.maximum, "scalar_minimum": np.minimum, "scalar_rsub": lambda a, v: v - a,
    "scalar_rdiv": lambda a, v: v / a,
}
SCALAR_COMPARE = {
    "scalar_eq": np.equal, "scalar_ge": np.greater_equal, "scalar_ne": np.not_equal, "scalar_lt": np.less,
    "scalar_le": np.less_equal, "scalar_gt": np.greater,
}
UNARY = {
    "ewise_log": np.log, "ewise_exp": np.exp, "ewise_tanh": np.tanh, "ewise_neg": np.negative,
    "ewise_sqrt": np.sqrt, "ewise_relu": lambda a: np.maximum(a, 0), "ewise_sigmoid": lambda a: 1 / (1 + np.exp(-a)),
    "ewise_abs": np.abs,
}
LOGICAL = {"ewise_and": np.bitwise_and, "ewise_or": np.bitwise_or, "ewise_xor": np.bitwise_xor}
#: Kernels checked on positive operands only (their domain).
POSITIVE = {"ewise_power", "scalar_power", "ewise_log", "ewise_sqrt", "scalar_rdiv"}


def operands(n, dtype, positive=False):
    """Two arrays of ``n`` values of ``dtype`` with ties every third element (and no float zero in b)."""
    low = 0.5 if positive else -2.0
    a, b = data(n, dtype, 1, low), data(n, dtype, 2, low)
    b[::3] = a[::3]  # ties, for the comparisons, maximum and minimum
    if dtype in FLOATS:
        b[b == 0] = 1.0
    return a, b
