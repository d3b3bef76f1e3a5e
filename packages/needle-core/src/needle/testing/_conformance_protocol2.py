"""Conformance, level 1 continued: protocol 2's kernels and the aliasing rule, against numpy.

Collected as part of ``test_conformance_kernels`` (which imports these tests), so the one
module a backend's own test file imports keeps running the whole kernel level. The kernels
of protocol 2 skip, saying so, on a protocol-1 backend.
"""
import itertools

import numpy as np
import pytest

from needle.testing._kernel_helpers import (
    BINARY, COMPARE, FLOATS, LOGICAL, POSITIVE, SCALAR, SCALAR_COMPARE, UNARY, buf, check, check_mask, data,
    dtypes_for, exact, kernel, mask_dtype, operands, read, scalars, special_floats,
)

SIZES = [0, 1, 2, 7, 31, 257]


# ---- comparisons, maximum and minimum with NaN (IEEE: every comparison with NaN is False but ne) ---
def _nan_pairs(dtype):
    x = special_floats(dtype)
    return [(x, np.roll(x, 1)), (x, x), (x, np.roll(x, 5))]


@pytest.mark.parametrize("name", sorted(COMPARE))
def test_comparisons_with_nan_and_infinities(dev, name):
    fn = kernel(dev, name)
    for dtype in [d for d in dev.dtypes if d in FLOATS]:
        for a, b in _nan_pairs(dtype):
            out = dev.Array(a.size, mask_dtype(dev, dtype))
            fn(buf(dev, a, dtype), buf(dev, b, dtype), out)
            with np.errstate(invalid="ignore"):
                expected = COMPARE[name](a, b)
            check_mask(dev, read(dev, out), expected, dtype, msg=f"{name} {dtype} {a} vs {b}")


@pytest.mark.parametrize("name", sorted(SCALAR_COMPARE))
def test_scalar_comparisons_with_nan_and_infinities(dev, name):
    fn = kernel(dev, name)
    for dtype in [d for d in dev.dtypes if d in FLOATS]:
        a = special_floats(dtype)
        for val in (float("nan"), float("inf"), float("-inf"), 0.0, -0.0, 1.0):
            out = dev.Array(a.size, mask_dtype(dev, dtype))
            fn(buf(dev, a, dtype), val, out)
            with np.errstate(invalid="ignore"):
                expected = SCALAR_COMPARE[name](a, np.dtype(dtype).type(val))
            check_mask(dev, read(dev, out), expected, dtype, msg=f"{name} {dtype} val={val}")


@pytest.mark.parametrize("name", ["ewise_maximum", "ewise_minimum", "scalar_maximum", "scalar_minimum"])
def test_maximum_and_minimum_propagate_nan(dev, name):
    fn = kernel(dev, name)
    oracle = np.maximum if name.endswith("maximum") else np.minimum
    for dtype in [d for d in dev.dtypes if d in FLOATS]:
        if name.startswith("ewise"):
            for a, b in _nan_pairs(dtype):
                out = dev.Array(a.size, dtype)
                fn(buf(dev, a, dtype), buf(dev, b, dtype), out)
                np.testing.assert_array_equal(read(dev, out), oracle(a, b), err_msg=f"{name} {dtype}")
        else:
            a = special_floats(dtype)
            for val in (float("nan"), 1.0, float("-inf")):
                out = dev.Array(a.size, dtype)
                fn(buf(dev, a, dtype), val, out)
                np.testing.assert_array_equal(read(dev, out), oracle(a, np.dtype(dtype).type(val)),
                                              err_msg=f"{name} {dtype} val={val}")


@pytest.mark.parametrize("name", ["reduce_max", "reduce_min"])
def test_reduce_max_and_min_propagate_nan(dev, name):
    fn = kernel(dev, name)
    for dtype in [d for d in dev.dtypes if d in FLOATS]:
        a = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan], [-np.inf, 2.0, np.inf], [0.0, -0.0, np.nan]],
                     dtype=dtype)
        out = dev.Array(4, dtype)
        fn(buf(dev, a, dtype), out, 3)
        expected = (np.max if name == "reduce_max" else np.min)(a, axis=1)
        np.testing.assert_array_equal(read(dev, out), expected, err_msg=f"{name} {dtype}")


# ---- cast --------------------------------------------------------------------------------------
_FLOAT_SOURCES = [np.nan, np.inf, -np.inf, -0.0, 0.0, 0.5, -0.5, -0.9, 1.5, -1.5, 2.7, -2.7, 100.9, 127.99, -128.5,
                  255.9, 256.0, 1e6 + 0.5, 16777216.0, -2147483520.0, 2147483520.0, 3e9, 1e20, 1e300]
_INT_SOURCES = [0, 1, -1, 7, 127, 128, 255, 256, -128, -129, 2 ** 31 - 1, -2 ** 31, 2 ** 31, 2 ** 53 + 1,
                2 ** 63 - 1, -2 ** 63]


def _in_range(value, dtype):
    """Whether the cast of ``value`` to ``dtype`` is specified (protocol.py, ``cast``)."""
    if dtype == "bool":
        return True
    if dtype in FLOATS:
        return not np.isfinite(value) or abs(float(value)) <= float(np.finfo(dtype).max)
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return False
        value = int(np.trunc(value))
    info = np.iinfo(dtype)
    return int(info.min) <= int(value) <= int(info.max)


def _cast_source(src, dst):
    """Values of ``src`` whose conversion to ``dst`` is specified: NaN, infinities and values out
    of the target's range are left out (the protocol leaves them unspecified)."""
    if src == "bool":
        return np.array([True, False, True, True, False])
    if src in FLOATS:
        with np.errstate(over="ignore"):
            values = np.array(_FLOAT_SOURCES, dtype=np.float64).astype(src)
        values = np.concatenate([values, data(31, src, 70, -300.0, 300.0)])
    else:
        info = np.iinfo(src)
        values = np.array([v for v in _INT_SOURCES if info.min <= v <= info.max], dtype=src)
        values = np.concatenate([values, data(31, src, 71)])
    return values[[_in_range(v, dst) for v in values]]


def test_cast_kernel_between_every_pair_of_declared_dtypes(dev):
    fn = kernel(dev, "cast")
    for src, dst in itertools.product(dev.dtypes, repeat=2):
        x = _cast_source(src, dst)
        for n in (0, 1, x.size):
            out = dev.Array(n, dst)
            fn(buf(dev, x[:n], src), out)
            got = read(dev, out)
            assert got.dtype == np.dtype(dst)
            # numpy's astype: floats truncate toward zero, x != 0 to bool (NaN is True), bool gives 0/1.
            np.testing.assert_array_equal(got, x[:n].astype(dst), err_msg=f"cast {src} -> {dst}: {x[:n]}")


# ---- where -------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", SIZES)
def test_where_kernel(dev, n):
    fn = kernel(dev, "where")
    cond = np.random.RandomState(n).randint(0, 2, n).astype(bool)
    for dtype in dtypes_for(dev, "where"):
        a, b = data(n, dtype, 80), data(n, dtype, 81)
        if dtype in FLOATS and n:
            a[0], b[-1] = np.nan, np.inf  # copied as they are, never compared
        out = dev.Array(n, dtype)
        fn(buf(dev, cond, "bool"), buf(dev, a, dtype), buf(dev, b, dtype), out)
        np.testing.assert_array_equal(read(dev, out), np.where(cond, a, b), err_msg=f"where {dtype}")


# ---- logical: bitwise on integers, logical on bool --------------------------------------------------
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", sorted(LOGICAL) + ["ewise_not"])
def test_logical_kernels(dev, name, n):
    fn = kernel(dev, name)
    for dtype in dtypes_for(dev, name):
        a, b = data(n, dtype, 90), data(n, dtype, 91)
        out = dev.Array(n, dtype)
        if name == "ewise_not":
            fn(buf(dev, a, dtype), out)
            expected = np.invert(a)
        else:
            fn(buf(dev, a, dtype), buf(dev, b, dtype), out)
            expected = LOGICAL[name](a, b)
        check(read(dev, out), expected, dtype, msg=f"{name} {dtype}")


# ---- argmax / argmin: int64 out, first index on ties, the first NaN wins ------------------------------
def _arg_cases(dtype):
    """(groups, reduce_size) arrays of ``dtype``: random ones of awkward sizes, then ties and NaN."""
    cases = [data(g * r, dtype, 100 + r).reshape(g, r) for g, r in [(1, 1), (1, 7), (5, 1), (3, 13), (0, 4),
                                                                     (4, 257)]]
    if dtype == "bool":
        cases.append(np.array([[False, True, True], [False, False, False], [True, True, True], [True, False, True]]))
    elif dtype in FLOATS:
        nan, inf = np.nan, np.inf
        cases.append(np.array([[1.0, nan, 3.0, nan], [nan, 1.0, 2.0, 3.0], [-inf, -inf, -inf, -inf],
                               [inf, nan, -inf, 0.0], [2.0, 5.0, 5.0, -1.0], [-0.0, 0.0, -0.0, 0.0]], dtype=dtype))
    else:
        info = np.iinfo(dtype)
        cases.append(np.array([[info.max, 0, info.max], [info.min, info.min, 1], [3, 3, 3], [0, info.min, info.max]],
                              dtype=dtype))
    return cases


@pytest.mark.parametrize("name", ["reduce_argmax", "reduce_argmin"])
def test_arg_reductions(dev, name):
    fn = kernel(dev, name)
    oracle = np.argmax if name == "reduce_argmax" else np.argmin
    for dtype in dtypes_for(dev, name):
        for a in _arg_cases(dtype):
            groups, size = a.shape
            out = dev.Array(groups, "int64")
            dev.fill(out, -7)  # every group is written
            fn(buf(dev, a, dtype), out, size)
            got = read(dev, out)
            assert got.dtype == np.int64, f"{name} wrote {got.dtype}, expected int64"
            expected = oracle(a, axis=1) if groups else np.zeros(0, np.int64)
            np.testing.assert_array_equal(got, expected, err_msg=f"{name} {dtype} of {a}")


# ---- gather_rows / scatter_add_rows (optional) -----------------------------------------------------
# (rows, row_size, indices): repeated indices, an empty row, no index at all, long rows.
GATHER_CASES = [(1, 1, [0]), (5, 3, [4, 0, 0, 2, 4, 1, 3]), (4, 0, [3, 1, 1]), (6, 2, []), (3, 257, [2, 2, 0, 1, 2])]


@pytest.mark.parametrize("rows,row_size,index", GATHER_CASES)
def test_gather_rows(dev, rows, row_size, index):
    fn = kernel(dev, "gather_rows")
    idx = np.array(index, dtype=np.int64)
    for dtype in dtypes_for(dev, "gather_rows"):
        a = data(rows * row_size, dtype, 110).reshape(rows, row_size)
        out = dev.Array(idx.size * row_size, dtype)
        fn(buf(dev, a, dtype), buf(dev, idx, "int64"), out, rows, row_size, idx.size)
        np.testing.assert_array_equal(read(dev, out).reshape(idx.size, row_size), a[idx], err_msg=f"{dtype}")


@pytest.mark.parametrize("rows,row_size,index", GATHER_CASES)
def test_scatter_add_rows(dev, rows, row_size, index):
    fn = kernel(dev, "scatter_add_rows")
    idx = np.array(index, dtype=np.int64)
    for dtype in dtypes_for(dev, "scatter_add_rows"):
        g = data(idx.size * row_size, dtype, 111).reshape(idx.size, row_size)
        start = data(rows * row_size, dtype, 112).reshape(rows, row_size)
        out = buf(dev, start, dtype)  # accumulated into, not cleared first
        fn(buf(dev, g, dtype), buf(dev, idx, "int64"), out, rows, row_size, idx.size)
        expected = exact(start)
        np.add.at(expected, idx, exact(g))  # repeated indices accumulate
        check(read(dev, out).reshape(rows, row_size), expected, dtype, tol=4, atol=1e-6, msg=f"{dtype}")


@pytest.mark.parametrize("bad", [[0, 1, 17, -3], [-1], [2, 5]])
@pytest.mark.parametrize("name", ["gather_rows", "scatter_add_rows"])
def test_gather_and_scatter_refuse_indices_out_of_range_before_writing(dev, name, bad):
    fn = kernel(dev, name)
    rows, row_size = 5, 2
    first_bad = next(i for i in bad if not 0 <= i < rows)
    dtype = "float32"
    idx = np.array(bad, dtype=np.int64)
    src = data(rows * row_size, dtype, 113)
    g = data(idx.size * row_size, dtype, 114)
    target = data(max(rows, idx.size) * row_size, dtype, 115)
    out = buf(dev, target, dtype)
    with pytest.raises(IndexError) as info:
        if name == "gather_rows":
            fn(buf(dev, src, dtype), buf(dev, idx, "int64"), out, rows, row_size, idx.size)
        else:
            fn(buf(dev, g, dtype), buf(dev, idx, "int64"), out, rows, row_size, idx.size)
    assert str(first_bad) in str(info.value), f"the error must name the first bad index {first_bad}: {info.value}"
    np.testing.assert_array_equal(read(dev, out), target)  # nothing was written


# ---- the aliasing rule: out may be the same buffer as any input of an elementwise kernel ----------
# A kernel that writes part of its result before it has read all of its inputs (``ewise_div`` as
# ``out = 1 / b; out *= a``) is right with a distinct out and wrong for ``a /= b``: each check runs
# the kernel in place and compares with numpy on the untouched inputs.
ALIAS_SIZES = [1, 7, 31]


def _aliased(dev, dtype, arrays, positions):
    """Buffers for ``arrays``; the ones at ``positions`` are one buffer (that of the first of them)."""
    bufs = [buf(dev, x, dtype) for x in arrays]
    shared = bufs[positions[0]]
    return [shared if i in positions else b for i, b in enumerate(bufs)], shared


@pytest.mark.parametrize("alias", ["out=a", "out=b", "out=a=b"])
@pytest.mark.parametrize("name", sorted(BINARY) + sorted(LOGICAL))
def test_aliasing_binary_kernels(dev, name, alias):
    fn = kernel(dev, name)
    oracle = BINARY.get(name) or LOGICAL[name]
    for dtype in dtypes_for(dev, name):
        for n in ALIAS_SIZES:
            a, b = operands(n, dtype, positive=name in POSITIVE)
            if alias == "out=a=b":
                b = a
            expected = oracle(exact(a), exact(b))
            (x, y), out = _aliased(dev, dtype, [a, b], {"out=a": [0], "out=b": [1], "out=a=b": [0, 1]}[alias])
            fn(x, y, out)
            check(read(dev, out), expected, dtype, tol=4, msg=f"{name} {dtype} with {alias}")


@pytest.mark.parametrize("alias", ["out=a", "out=b", "out=a=b"])
@pytest.mark.parametrize("name", sorted(COMPARE))
def test_aliasing_comparison_kernels(dev, name, alias):
    fn = kernel(dev, name)
    # out is bool (protocol 2) or of the input's dtype (protocol 1): it can alias inputs of that dtype.
    for dtype in [d for d in dtypes_for(dev, name) if mask_dtype(dev, d) == d]:
        for n in ALIAS_SIZES:
            a, b = operands(n, dtype)
            if alias == "out=a=b":
                b = a
            expected = COMPARE[name](a, b)
            (x, y), out = _aliased(dev, dtype, [a, b], {"out=a": [0], "out=b": [1], "out=a=b": [0, 1]}[alias])
            fn(x, y, out)
            check_mask(dev, read(dev, out), expected, dtype, msg=f"{name} {dtype} with {alias}")


@pytest.mark.parametrize("name", sorted(SCALAR) + sorted(SCALAR_COMPARE))
def test_aliasing_scalar_kernels(dev, name):
    fn = kernel(dev, name)
    comparison = name in SCALAR_COMPARE
    for dtype in dtypes_for(dev, name):
        if comparison and mask_dtype(dev, dtype) != dtype:
            continue
        for n in ALIAS_SIZES:
            a, _ = operands(n, dtype, positive=name in POSITIVE)
            for val in scalars(dtype):
                x = buf(dev, a, dtype)
                fn(x, val, x)
                if comparison:
                    check_mask(dev, read(dev, x), SCALAR_COMPARE[name](exact(a), val), dtype, msg=f"{name} {dtype}")
                else:
                    check(read(dev, x), SCALAR[name](exact(a), val), dtype, tol=4, msg=f"{name} {dtype} val={val}")


@pytest.mark.parametrize("name", sorted(UNARY) + ["ewise_not"])
def test_aliasing_unary_kernels(dev, name):
    fn = kernel(dev, name)
    for dtype in dtypes_for(dev, name):
        for n in ALIAS_SIZES:
            a, _ = operands(n, dtype, positive=name in POSITIVE)
            x = buf(dev, a, dtype)
            fn(x, x)
            expected = np.invert(a) if name == "ewise_not" else UNARY[name](exact(a))
            check(read(dev, x), expected, dtype, tol=4, atol=1e-7, msg=f"{name} {dtype} in place")


@pytest.mark.parametrize("alias", ["out=a", "out=b", "out=a=b", "out=cond"])
def test_aliasing_where(dev, alias):
    fn = kernel(dev, "where")
    for dtype in dtypes_for(dev, "where"):
        if alias == "out=cond" and dtype != "bool":
            continue
        for n in ALIAS_SIZES:
            cond = np.random.RandomState(n).randint(0, 2, n).astype(bool)
            a, b = data(n, dtype, 82), data(n, dtype, 83)
            if alias == "out=a=b":
                b = a
            expected = np.where(cond, a, b)
            c, x, y = buf(dev, cond, "bool"), buf(dev, a, dtype), buf(dev, b, dtype)
            if alias == "out=cond":
                fn(c, x, y, c)
                out = c
            else:
                y = x if alias == "out=a=b" else y
                out = y if alias == "out=b" else x
                fn(c, x, y, out)
            np.testing.assert_array_equal(read(dev, out), expected, err_msg=f"where {dtype} with {alias}")


def test_aliasing_cast_between_equal_dtypes(dev):
    fn = kernel(dev, "cast")
    for dtype in dev.dtypes:
        a = data(31, dtype, 84)
        x = buf(dev, a, dtype)
        fn(x, x)
        np.testing.assert_array_equal(read(dev, x), a, err_msg=f"cast {dtype} -> {dtype} in place")
