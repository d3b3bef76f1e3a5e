"""Conformance, level 1: the raw protocol kernels of a backend against numpy, on flat buffers.

Every required kernel of the backend's protocol version, and every optional kernel it
provides, at sizes 0, 1, odd and prime, on each dtype the backend declares that the kernel
runs on (protocol.py: every dtype, all but bool, floats only, or integers and bool). Integer
results are checked against exact arithmetic wrapped modulo 2**bits; comparisons write bool
(protocol 2) or 1.0/0.0 masks in the input's dtype (protocol 1). The protocol-2 kernels
(cast, where, arg-reductions, logical, gather/scatter) and the aliasing rule (``out`` the
same buffer as an input) are checked by the tests imported at the end of this module.
"""
import numpy as np
import pytest

from needle.backend_ndarray import contract, protocol
from needle.testing._kernel_helpers import (
    BINARY, COMPARE, FLOATS, POSITIVE, SCALAR, SCALAR_COMPARE, UNARY, buf, check, check_mask, data, dtypes_for,
    exact, fused_dtypes, kernel, mask_dtype, operands, read, rtol, scalars, small, version,
)

SIZES = [0, 1, 2, 7, 31, 257]

# The names the fused-kernel tests below were written with.
_buf, _read, _data, _rtol = buf, read, data, rtol


def test_protocol_surface(dev):
    mod = dev.backend
    declared = getattr(mod, "PROTOCOL_VERSION", None)
    assert declared in protocol.SUPPORTED_PROTOCOLS
    assert protocol.missing_kernels(mod) == []
    assert "float32" in dev.dtypes, "every backend must support float32"
    unknown = [d for d in getattr(mod, "DTYPES", ()) if d not in protocol.ALL_DTYPES]
    assert unknown == [], f"DTYPES holds names needle does not know: {unknown} (known: {protocol.ALL_DTYPES})"
    if declared >= 2:
        missing = [d for d in ("bool", "int64") if d not in dev.dtypes]
        assert missing == [], (f"a protocol-2 backend must declare {missing}: comparisons write bool buffers "
                               "and reduce_argmax/argmin int64 ones")


@pytest.mark.parametrize("n", SIZES)
def test_array_roundtrip(dev, n):
    for dtype in dtypes_for(dev):
        x = data(n, dtype)
        a = buf(dev, x, dtype)
        assert a.size == n
        assert a.dtype == dtype
        assert isinstance(a.ptr(), int)
        got = read(dev, a)
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, x)


def test_array_distinct_buffers(dev):
    for dtype in dtypes_for(dev):
        a, b = dev.Array(4, dtype), dev.Array(4, dtype)
        assert a.ptr() != b.ptr()


def test_unsupported_dtype_raises(dev):
    if "int8" in dev.dtypes:
        pytest.skip("backend claims int8")
    with pytest.raises((TypeError, ValueError)):
        dev.Array(3, "int8")
    if version(dev) >= 2:  # a dtype needle knows but the backend does not declare is refused too
        for dtype in (d for d in protocol.ALL_DTYPES if d not in dev.dtypes):
            with pytest.raises((TypeError, ValueError)):
                dev.Array(3, dtype)


@pytest.mark.parametrize("n", SIZES)
def test_fill(dev, n):
    for dtype in dtypes_for(dev):
        for value in scalars(dtype):
            a = dev.Array(n, dtype)
            dev.fill(a, value)
            np.testing.assert_array_equal(read(dev, a), np.full(n, value, dtype), err_msg=f"{dtype} {value}")


# (shape, strides, offset) views over a buffer of 60 elements: transposed, stepped,
# broadcast (stride 0), reversed (negative strides), empty and 0-d.
VIEWS = [
    ((3, 4), (4, 1), 0),
    ((4, 3), (1, 4), 0),
    ((2, 3), (10, 3), 5),
    ((3, 5), (0, 1), 2),
    ((4,), (-3, ), 11),
    ((2, 3, 2), (-20, 5, -1), 41),
    ((0, 3), (3, 1), 0),
    ((), (), 7),
    ((5, 1, 2), (12, 1, 7), 3),
]


@pytest.mark.parametrize("shape,strides,offset", VIEWS, ids=[str(v) for v in VIEWS])
def test_strided_read_and_compact(dev, shape, strides, offset):
    for dtype in dtypes_for(dev):
        base = data(60, dtype)
        expected = np.lib.stride_tricks.as_strided(
            base[offset:], shape, tuple(s * base.itemsize for s in strides)) if shape else base[offset]
        expected = np.array(expected, dtype=dtype).reshape(shape)
        a = buf(dev, base, dtype)
        got = np.asarray(dev.to_numpy(a, shape, strides, offset))
        assert got.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(got, expected)
        out = dev.Array(expected.size, dtype)
        dev.compact(a, out, shape, strides, offset)
        np.testing.assert_array_equal(read(dev, out), expected.reshape(-1))
        np.testing.assert_array_equal(read(dev, a), base)  # the source is untouched


# Views without repeated elements (no stride 0), as setitem targets.
WRITE_VIEWS = [v for v in VIEWS if 0 not in v[1]]


@pytest.mark.parametrize("shape,strides,offset", WRITE_VIEWS, ids=[str(v) for v in WRITE_VIEWS])
def test_ewise_and_scalar_setitem(dev, shape, strides, offset):
    for dtype in dtypes_for(dev):
        base = data(60, dtype)
        size = int(np.prod(shape))
        index = offset + sum(np.arange(n).reshape((-1,) + (1,) * (len(shape) - k - 1)) * s
                             for k, (n, s) in enumerate(zip(shape, strides)))
        index = np.broadcast_to(index, shape).reshape(-1)
        values = data(size, dtype, seed=9)
        if dtype in FLOATS:
            values += 10

        out = buf(dev, base, dtype)
        dev.ewise_setitem(buf(dev, values, dtype), out, shape, strides, offset)
        expected = base.copy()
        expected[index] = values
        np.testing.assert_array_equal(read(dev, out), expected)

        value = scalars(dtype)[1]
        out = buf(dev, base, dtype)
        dev.scalar_setitem(size, value, out, shape, strides, offset)
        expected = base.copy()
        expected[index] = value
        np.testing.assert_array_equal(read(dev, out), expected)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_kernels(dev, name, n):
    fn = kernel(dev, name)
    for dtype in dtypes_for(dev, name):
        a, b = operands(n, dtype, positive=name in POSITIVE)
        out = dev.Array(n, dtype)
        fn(buf(dev, a, dtype), buf(dev, b, dtype), out)
        check(read(dev, out), BINARY[name](exact(a), exact(b)), dtype, tol=4, msg=f"{name} {dtype}")


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", sorted(COMPARE))
def test_comparison_kernels(dev, name, n):
    fn = kernel(dev, name)
    for dtype in dtypes_for(dev, name):
        a, b = operands(n, dtype)
        out = dev.Array(n, mask_dtype(dev, dtype))
        fn(buf(dev, a, dtype), buf(dev, b, dtype), out)
        check_mask(dev, read(dev, out), COMPARE[name](a, b), dtype, msg=f"{name} {dtype}")


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", sorted(SCALAR))
def test_scalar_kernels(dev, name, n):
    fn = kernel(dev, name)
    for dtype in dtypes_for(dev, name):
        a, _ = operands(n, dtype, positive=name in POSITIVE)
        if dtype in FLOATS:
            a[: n // 4] = 1.5  # equal to one of the scalars
        for val in scalars(dtype):
            out = dev.Array(n, dtype)
            fn(buf(dev, a, dtype), val, out)
            check(read(dev, out), SCALAR[name](exact(a), val), dtype, tol=4, msg=f"{name} {dtype} val={val}")


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", sorted(SCALAR_COMPARE))
def test_scalar_comparison_kernels(dev, name, n):
    fn = kernel(dev, name)
    for dtype in dtypes_for(dev, name):
        a, _ = operands(n, dtype)
        for val in scalars(dtype):
            a[: n // 4] = val  # ties
            out = dev.Array(n, mask_dtype(dev, dtype))
            fn(buf(dev, a, dtype), val, out)
            check_mask(dev, read(dev, out), SCALAR_COMPARE[name](exact(a), val), dtype, msg=f"{name} {dtype} {val}")


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_kernels(dev, name, n):
    fn = kernel(dev, name)
    for dtype in dtypes_for(dev, name):
        a, _ = operands(n, dtype, positive=name in POSITIVE)
        if name == "ewise_sigmoid" and n:
            a[0] = -100.0  # must stay finite far out
        out = dev.Array(n, dtype)
        fn(buf(dev, a, dtype), out)
        got = read(dev, out)
        if dtype in FLOATS:
            assert np.all(np.isfinite(got)), f"{name} {dtype}: {got}"
        check(got, UNARY[name](exact(a)), dtype, tol=4, atol=1e-7, msg=f"{name} {dtype}")


MATMUL_SIZES = [(1, 1, 1), (1, 7, 1), (2, 3, 4), (7, 1, 5), (13, 17, 11), (5, 0, 3), (64, 65, 33)]


def _fill_value(dtype):
    return 123.0 if dtype in FLOATS else 123


@pytest.mark.parametrize("m,n,p", MATMUL_SIZES)
def test_matmul_kernel(dev, m, n, p):
    for dtype in dtypes_for(dev, "matmul"):
        a, b = small(m * n, dtype, 3).reshape(m, n), small(n * p, dtype, 4).reshape(n, p)
        out = dev.Array(m * p, dtype)
        dev.fill(out, _fill_value(dtype))  # the kernel must overwrite, not accumulate
        dev.matmul(buf(dev, a, dtype), buf(dev, b, dtype), out, m, n, p)
        # Integers: exact products, wrapped (uint8 sums of 65 products do wrap).
        check(read(dev, out).reshape(m, p), exact(a) @ exact(b), dtype, tol=10,
              atol=1e-5 if dtype == "float32" else 1e-12, msg=f"matmul {dtype}")


REDUCE = {"reduce_sum": lambda x: x.sum(axis=1), "reduce_max": lambda x: x.max(axis=1),
          "reduce_min": lambda x: x.min(axis=1)}


@pytest.mark.parametrize("groups,reduce_size", [(1, 1), (1, 7), (5, 1), (3, 13), (0, 4), (4, 257), (6, 0)])
@pytest.mark.parametrize("name", sorted(REDUCE))
def test_reduce_kernels(dev, name, groups, reduce_size):
    if name != "reduce_sum" and reduce_size == 0:
        pytest.skip("max/min over an empty group is undefined (core refuses it before calling the kernel)")
    fn = kernel(dev, name)
    for dtype in dtypes_for(dev, name):
        a = data(groups * reduce_size, dtype, 5).reshape(groups, reduce_size)
        out = dev.Array(groups, dtype)
        fn(buf(dev, a, dtype), out, reduce_size)
        expected = REDUCE[name](exact(a)) if groups else np.zeros(0)
        if reduce_size == 0:
            expected = np.zeros(groups, dtype=int)
        check(read(dev, out), expected, dtype, tol=10, atol=1e-6 if dtype == "float32" else 1e-12,
              msg=f"{name} {dtype}")


# ---- optional kernels ---------------------------------------------------------------------------
def _optional(dev, name):
    found = dev.optional(name)
    if found is None:
        pytest.skip(f"backend has no optional kernel {name} (core's fallback is tested by the NDArray suite)")
    return found


def test_optional_kernel_names_are_known(dev):
    known = protocol.OPTIONAL_KERNELS + protocol.OPTIONAL_KERNELS_V2
    unknown = [n for n in getattr(dev.backend, "OPTIONAL_KERNELS", ()) if n not in known]
    assert unknown == [], f"backend advertises optional kernels core does not know: {unknown}"


@pytest.mark.parametrize("batch,m,n,p", [(1, 1, 1, 1), (3, 2, 5, 7), (0, 2, 3, 4), (4, 13, 1, 11)])
def test_optional_matmul_batched(dev, batch, m, n, p):
    fn = _optional(dev, "matmul_batched")
    for dtype in dtypes_for(dev, "matmul_batched"):
        a = small(batch * m * n, dtype, 6).reshape(batch, m, n)
        b = small(batch * n * p, dtype, 7).reshape(batch, n, p)
        out = dev.Array(batch * m * p, dtype)
        fn(buf(dev, a, dtype), buf(dev, b, dtype), out, batch, m, n, p)
        check(read(dev, out).reshape(batch, m, p), exact(a) @ exact(b), dtype, tol=10,
              atol=1e-5 if dtype == "float32" else 1e-12, msg=f"matmul_batched {dtype}")


@pytest.mark.parametrize("n,h,w,c_in,c_out,k,s", [(1, 1, 1, 1, 1, 1, 1), (2, 7, 5, 3, 4, 3, 1),
                                                  (1, 9, 8, 2, 5, 3, 2), (3, 6, 6, 1, 2, 2, 3)])
def test_optional_conv2d_nhwc(dev, n, h, w, c_in, c_out, k, s):
    kernel = _optional(dev, "conv2d_nhwc")
    for dtype in fused_dtypes(dev):
        a = _data(n * h * w * c_in, dtype, 8).reshape(n, h, w, c_in)
        b = _data(k * k * c_in * c_out, dtype, 9).reshape(k, k, c_in, c_out)
        ho, wo = (h - k) // s + 1, (w - k) // s + 1
        out = dev.Array(n * ho * wo * c_out, dtype)
        kernel(_buf(dev, a, dtype), _buf(dev, b, dtype), out, n, h, w, c_in, c_out, k, k, s, s)
        # Oracle: a direct loop over output pixels, in float64.
        expected = np.zeros((n, ho, wo, c_out))
        for i in range(ho):
            for j in range(wo):
                patch = a[:, i * s:i * s + k, j * s:j * s + k, :].astype(np.float64)
                expected[:, i, j, :] = np.einsum("nabc,abcd->nd", patch, b.astype(np.float64))
        np.testing.assert_allclose(_read(dev, out).reshape(expected.shape), expected, rtol=_rtol(dtype) * 10,
                                   atol=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("m,n,p", [(1, 1, 1), (5, 7, 3), (17, 33, 65), (0, 3, 4), (4, 0, 6)])
def test_fused_matmul_bias(dev, m, n, p):
    kernel = _optional(dev, "matmul_bias")
    for dtype in fused_dtypes(dev):
        a, b = _data(m * n, dtype, 10).reshape(m, n), _data(n * p, dtype, 11).reshape(n, p)
        bias = _data(p, dtype, 12)
        out = dev.Array(m * p, dtype)
        kernel(_buf(dev, a, dtype), _buf(dev, b, dtype), _buf(dev, bias, dtype), out, m, n, p)
        expected = a.astype(np.float64) @ b.astype(np.float64) + bias.astype(np.float64)
        np.testing.assert_allclose(_read(dev, out).reshape(m, p), expected, rtol=_rtol(dtype) * 10,
                                   atol=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("m,n,p", [(1, 1, 1), (5, 7, 3), (13, 1, 11), (17, 33, 65), (97, 64, 131), (0, 3, 4),
                                   (4, 0, 6), (3, 5, 0)])
def test_fused_matmul_tn(dev, m, n, p):
    kernel = _optional(dev, "matmul_tn")
    for dtype in fused_dtypes(dev):
        a, b = _data(n * m, dtype, 15).reshape(n, m), _data(n * p, dtype, 16).reshape(n, p)
        out = dev.Array(m * p, dtype)
        dev.fill(out, 7.0)  # every element is written, n == 0 included
        kernel(_buf(dev, a, dtype), _buf(dev, b, dtype), out, m, n, p)
        expected = a.astype(np.float64).T @ b.astype(np.float64)
        np.testing.assert_allclose(_read(dev, out).reshape(m, p), expected, rtol=_rtol(dtype) * 10,
                                   atol=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("m,n,p", [(1, 1, 1), (5, 7, 3), (13, 1, 11), (17, 33, 65), (97, 64, 131), (0, 3, 4),
                                   (4, 0, 6), (3, 5, 0)])
def test_fused_matmul_nt(dev, m, n, p):
    kernel = _optional(dev, "matmul_nt")
    for dtype in fused_dtypes(dev):
        a, b = _data(m * n, dtype, 17).reshape(m, n), _data(p * n, dtype, 18).reshape(p, n)
        out = dev.Array(m * p, dtype)
        dev.fill(out, 7.0)  # every element is written, n == 0 included
        kernel(_buf(dev, a, dtype), _buf(dev, b, dtype), out, m, n, p)
        expected = a.astype(np.float64) @ b.astype(np.float64).T
        np.testing.assert_allclose(_read(dev, out).reshape(m, p), expected, rtol=_rtol(dtype) * 10,
                                   atol=1e-5 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("n", [0, 1, 31, 257])
def test_fused_ewise_relu_backward(dev, n):
    kernel = _optional(dev, "ewise_relu_backward")
    for dtype in fused_dtypes(dev):
        a, g = _data(n, dtype, 13), _data(n, dtype, 14)
        if n:
            a[0] = 0.0  # at zero the gradient is 0 (the mask is a > 0)
        out = dev.Array(n, dtype)
        kernel(_buf(dev, a, dtype), _buf(dev, g, dtype), out)
        np.testing.assert_array_equal(_read(dev, out), np.where(a > 0, g, 0).astype(dtype))


# ---- fused LSTM cell ------------------------------------------------------------------------------
def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _lstm_tol(dtype):
    return dict(rtol=_rtol(dtype) * 10, atol=1e-6 if dtype == "float32" else 1e-12)


# (steps, batch, hid, t): one step, the last of several, empty batch or width, odd widths
LSTM_SHAPES = [(1, 1, 1, 0), (3, 2, 5, 2), (2, 3, 17, 0), (4, 5, 33, 1), (2, 0, 4, 1), (2, 3, 0, 1)]


@pytest.mark.parametrize("steps,batch,hid,t", LSTM_SHAPES)
def test_fused_lstm_cell_forward(dev, steps, batch, hid, t):
    kernel = _optional(dev, "lstm_cell_forward")
    for dtype in fused_dtypes(dev):
        x = _data(steps * batch * 4 * hid, dtype, 20, -3.0, 3.0).reshape(steps, batch, 4 * hid)
        hw = _data(batch * 4 * hid, dtype, 21, -3.0, 3.0).reshape(batch, 4 * hid)
        c_prev = _data(batch * hid, dtype, 22).reshape(batch, hid)
        if hw.size:
            hw[0, 0], hw[-1, -1] = 100.0, -100.0  # saturated gates stay finite
        gates, c, tc, h = _buf(dev, hw, dtype), *(dev.Array(batch * hid, dtype) for _ in range(3))
        out = _buf(dev, np.zeros((steps, batch, hid)), dtype)
        kernel(gates, _buf(dev, x, dtype), _buf(dev, c_prev, dtype), c, tc, h, out, t, batch, hid)
        # Oracle: the LSTM cell's formulas in float64.
        z = hw.astype(np.float64) + x[t]
        i, f, g, o = (z[:, k * hid:(k + 1) * hid] for k in range(4))
        act = np.concatenate([_sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)], axis=1)
        want_c = _sigmoid(f) * c_prev + _sigmoid(i) * np.tanh(g)
        want_h = _sigmoid(o) * np.tanh(want_c)
        tol = _lstm_tol(dtype)
        np.testing.assert_allclose(_read(dev, gates).reshape(act.shape), act, **tol)
        np.testing.assert_allclose(_read(dev, c).reshape(want_c.shape), want_c, **tol)
        np.testing.assert_allclose(_read(dev, tc).reshape(want_c.shape), np.tanh(want_c), **tol)
        np.testing.assert_allclose(_read(dev, h).reshape(want_h.shape), want_h, **tol)
        seq = _read(dev, out).reshape(steps, batch, hid)
        np.testing.assert_allclose(seq[t], want_h, **tol)
        np.testing.assert_array_equal(np.delete(seq, t, axis=0), 0)  # other steps untouched


@pytest.mark.parametrize("steps,batch,hid,t", LSTM_SHAPES)
def test_fused_lstm_cell_backward(dev, steps, batch, hid, t):
    kernel = _optional(dev, "lstm_cell_backward")
    for dtype in fused_dtypes(dev):
        n = batch * hid
        act = np.concatenate([_data(n, dtype, 23, 0.0, 1.0).reshape(batch, hid),
                              _data(n, dtype, 24, 0.0, 1.0).reshape(batch, hid),
                              _data(n, dtype, 25, -1.0, 1.0).reshape(batch, hid),
                              _data(n, dtype, 26, 0.0, 1.0).reshape(batch, hid)], axis=1)
        c_prev, tc = _data(n, dtype, 27).reshape(batch, hid), _data(n, dtype, 28, -1.0, 1.0).reshape(batch, hid)
        dh, dc0 = _data(n, dtype, 29).reshape(batch, hid), _data(n, dtype, 30).reshape(batch, hid)
        g_out = _data(steps * n, dtype, 31).reshape(steps, batch, hid)
        dc, dg = _buf(dev, dc0, dtype), dev.Array(4 * n, dtype)
        d_gates = _buf(dev, np.zeros((steps, batch, 4 * hid)), dtype)
        kernel(_buf(dev, dh, dtype), _buf(dev, g_out, dtype), _buf(dev, act, dtype), _buf(dev, c_prev, dtype),
               _buf(dev, tc, dtype), dc, dg, d_gates, t, batch, hid)
        # Oracle: the chain rule through c = sf c_prev + si tg, h = so tanh(c), in float64.
        si, sf, tg, so = (act[:, k * hid:(k + 1) * hid].astype(np.float64) for k in range(4))
        dh_t = dh + g_out[t].astype(np.float64)
        dc_t = dc0 + dh_t * so * (1 - tc.astype(np.float64) ** 2)
        want = np.concatenate([dc_t * tg * si * (1 - si), dc_t * c_prev * sf * (1 - sf), dc_t * si * (1 - tg ** 2),
                               dh_t * tc * so * (1 - so)], axis=1)
        tol = _lstm_tol(dtype)
        np.testing.assert_allclose(_read(dev, dg).reshape(want.shape), want, **tol)
        seq = _read(dev, d_gates).reshape(steps, batch, 4 * hid)
        np.testing.assert_allclose(seq[t], want, **tol)
        np.testing.assert_array_equal(np.delete(seq, t, axis=0), 0)
        np.testing.assert_allclose(_read(dev, dc).reshape(dc0.shape), dc_t * sf, **tol)


# ---- fused optimiser updates --------------------------------------------------------------------
OPTIM_SIZES = [0, 1, 31, 257]


def _optim_case(dev, n, dtype, seed):
    """Weights, gradient, a first and a second moment (v >= 0.1) as numpy arrays and as buffers."""
    w, g = _data(n, dtype, seed), _data(n, dtype, seed + 1)
    m, v = _data(n, dtype, seed + 2), _data(n, dtype, seed + 3, 0.1, 2.0)
    return (w, g, m, v), tuple(_buf(dev, x, dtype) for x in (w, g, m, v))


def _optim_out(dev, name, in_place, w, n, dtype):
    """The step's ``out``: a buffer of its own, or (``in_place``) the weights' buffer ``w`` itself, checked
    only where the backend lists ``name`` in ``IN_PLACE_UPDATES`` (contract.PARAM_IN_PLACE)."""
    if not in_place:
        return dev.Array(n, dtype)
    if name not in getattr(dev.backend, "IN_PLACE_UPDATES", ()):
        pytest.skip(f"backend does not list {name} in IN_PLACE_UPDATES: out is always a buffer of its own")
    return w


def test_in_place_updates_name_optimiser_steps_the_backend_has(dev):
    steps = [k.name for k in contract.KERNELS if k.aliasing == contract.PARAM_IN_PLACE]
    listed = getattr(dev.backend, "IN_PLACE_UPDATES", ())
    assert [n for n in listed if n not in steps or dev.optional(n) is None] == [], listed


def _check_optim(dev, dtype, bufs, arrays, want):
    """Each buffer in ``bufs`` holds the float64 oracle value of the same place in ``want`` (None:
    the buffer must still hold its input in ``arrays``, unchanged)."""
    tol = dict(rtol=_rtol(dtype) * 10, atol=1e-6 if dtype == "float32" else 1e-12)
    for buffer, before, expected in zip(bufs, arrays, want):
        if expected is None:
            np.testing.assert_array_equal(_read(dev, buffer), before)
        else:
            np.testing.assert_allclose(_read(dev, buffer), expected, **tol)


@pytest.mark.parametrize("n", OPTIM_SIZES)
@pytest.mark.parametrize("weight_decay,decoupled", [(0.0, False), (0.1, False), (0.1, True)])
@pytest.mark.parametrize("t", [1, 3])
@pytest.mark.parametrize("in_place", [False, True])  # out=param: IN_PLACE_UPDATES
def test_fused_adam_step(dev, n, weight_decay, decoupled, t, in_place):
    kernel = _optional(dev, "adam_step")
    lr, b1, b2, eps = 0.05, 0.8, 0.95, 1e-3  # a large eps, so that its place in the formula shows
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t
    for dtype in fused_dtypes(dev):
        arrays, (w, g, m, v) = _optim_case(dev, n, dtype, 40)
        out = _optim_out(dev, "adam_step", in_place, w, n, dtype)
        kernel(w, g, m, v, out, lr, b1, b2, eps, weight_decay, c1, c2, decoupled)
        # Oracle: Adam in float64, L2 decay added to the gradient or (decoupled, AdamW) on the weights.
        w0, g0, m0, v0 = (x.astype(np.float64) for x in arrays)
        grad = g0 if decoupled else g0 + weight_decay * w0
        m1, v1 = b1 * m0 + (1 - b1) * grad, b2 * v0 + (1 - b2) * grad ** 2
        start = w0 * (1 - lr * weight_decay) if decoupled else w0
        new = start - lr * (m1 / c1) / (np.sqrt(v1 / c2) + eps)
        _check_optim(dev, dtype, (w, g, m, v, out), arrays + (None,), (new if in_place else None, None, m1, v1, new))


@pytest.mark.parametrize("n", OPTIM_SIZES)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
@pytest.mark.parametrize("in_place", [False, True])  # out=param: IN_PLACE_UPDATES
def test_fused_sgd_step(dev, n, momentum, weight_decay, in_place):
    kernel = _optional(dev, "sgd_step")
    lr = 0.1
    for dtype in fused_dtypes(dev):
        arrays, (w, g, u, _) = _optim_case(dev, n, dtype, 50)
        out = _optim_out(dev, "sgd_step", in_place, w, n, dtype)
        kernel(w, g, u if momentum else None, out, lr, momentum, weight_decay)
        # Oracle: the course's momentum rule in float64.
        w0, g0, u0 = (x.astype(np.float64) for x in arrays[:3])
        grad = g0 + weight_decay * w0
        u1 = momentum * u0 + (1 - momentum) * grad if momentum else None
        new = w0 - lr * (u1 if momentum else grad)
        _check_optim(dev, dtype, (w, g, u, out), arrays[:3] + (None,), (new if in_place else None, None, u1, new))


@pytest.mark.parametrize("n", OPTIM_SIZES)
@pytest.mark.parametrize("momentum", [0.0, 0.5])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("in_place", [False, True])  # out=param: IN_PLACE_UPDATES
def test_fused_rmsprop_step(dev, n, momentum, weight_decay, in_place):
    kernel = _optional(dev, "rmsprop_step")
    lr, alpha, eps = 0.01, 0.9, 1e-3
    for dtype in fused_dtypes(dev):
        arrays, (w, g, buf, v) = _optim_case(dev, n, dtype, 60)
        out = _optim_out(dev, "rmsprop_step", in_place, w, n, dtype)
        kernel(w, g, v, buf if momentum else None, out, lr, alpha, eps, weight_decay, momentum)
        # Oracle: RMSprop in float64; with momentum the step is the buffer's.
        w0, g0, b0, v0 = (x.astype(np.float64) for x in arrays)
        grad = g0 + weight_decay * w0
        v1 = alpha * v0 + (1 - alpha) * grad ** 2
        step = grad / (np.sqrt(v1) + eps)
        b1 = momentum * b0 + step if momentum else None
        new = w0 - lr * (b1 if momentum else step)
        _check_optim(dev, dtype, (w, g, buf, v, out), arrays + (None,), (new if in_place else None, None, b1, v1, new))


# ---- fused softmax cross-entropy with class labels ------------------------------------------------
# (m, k): one class, one row, odd and prime widths, the MLP's (64, 10), an empty batch
XENT_SHAPES = [(1, 1), (4, 1), (1, 7), (5, 13), (31, 17), (64, 10), (0, 5)]


def _xent_labels(m, k, seed):
    return np.random.RandomState(seed + m * 31 + k).randint(0, k, m)


def _np_softmax_xent(z, labels):
    """(softmax, per-row loss) in float64, shifted by the row max first."""
    shifted = z.astype(np.float64) - z.max(1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(1))
    return np.exp(shifted - log_sum[:, None]), log_sum - shifted[np.arange(len(labels)), labels]


def _run_xent_forward(dev, kernel, z, labels, dtype):
    m, k = z.shape
    probs, rows = _buf(dev, np.full(m * k, 7.0), dtype), _buf(dev, np.full(m, 7.0), dtype)
    kernel(_buf(dev, z, dtype), _buf(dev, labels, dtype), probs, rows, m, k)
    return _read(dev, probs).reshape(m, k), _read(dev, rows)


@pytest.mark.parametrize("m,k", XENT_SHAPES)
def test_fused_softmax_xent_forward(dev, m, k):
    kernel = _optional(dev, "softmax_xent_forward")
    for dtype in fused_dtypes(dev):
        z, labels = _data(m * k, dtype, 40, -20.0, 20.0).reshape(m, k), _xent_labels(m, k, 41)
        probs, rows = _run_xent_forward(dev, kernel, z, labels, dtype)
        want_probs, want_rows = _np_softmax_xent(z, labels)
        tol = dict(rtol=_rtol(dtype) * 10, atol=1e-6 if dtype == "float32" else 1e-12)
        np.testing.assert_allclose(probs, want_probs, **tol)
        np.testing.assert_allclose(rows, want_rows, **tol)


def test_fused_softmax_xent_forward_at_large_magnitudes(dev):
    # Exact in float32: the log-sum term must survive next to a max of 1e7, and -3e38 rows stay finite.
    kernel = _optional(dev, "softmax_xent_forward")
    z = np.array([[1e7, 1e7 + 1.0, 1e7 - 2.0], [-3e38, -3e38, -3e38], [3e38, 0.0, -3e38]])
    labels = np.array([1, 2, 0])
    for dtype in fused_dtypes(dev):
        probs, rows = _run_xent_forward(dev, kernel, z, labels, dtype)
        want_probs, want_rows = _np_softmax_xent(z, labels)
        np.testing.assert_allclose(probs, want_probs, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(rows, want_rows, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("m,k", XENT_SHAPES)
def test_fused_softmax_xent_backward(dev, m, k):
    kernel = _optional(dev, "softmax_xent_backward")
    for dtype in fused_dtypes(dev):
        probs, labels = _data(m * k, dtype, 42, 0.0, 1.0).reshape(m, k), _xent_labels(m, k, 43)
        out = _buf(dev, np.full(m * k, 7.0), dtype)
        kernel(_buf(dev, probs, dtype), _buf(dev, labels, dtype), _buf(dev, [-0.37], dtype), out, m, k)
        want = (probs.astype(np.float64) - np.eye(k)[labels]) * -0.37
        np.testing.assert_allclose(_read(dev, out).reshape(m, k), want, rtol=_rtol(dtype) * 10,
                                   atol=1e-6 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("bad", [2.5, np.nan, np.inf, -1.0, 3.0])
def test_fused_softmax_xent_kernels_refuse_labels_that_are_not_class_indices(dev, bad):
    forward, backward = _optional(dev, "softmax_xent_forward"), _optional(dev, "softmax_xent_backward")
    for dtype in fused_dtypes(dev):
        labels = _buf(dev, [0.0, bad], dtype)
        with pytest.raises(ValueError, match="labels"):
            forward(_buf(dev, np.zeros(6), dtype), labels, dev.Array(6, dtype), dev.Array(2, dtype), 2, 3)
        with pytest.raises(ValueError, match="labels"):
            backward(_buf(dev, np.zeros(6), dtype), labels, _buf(dev, [1.0], dtype), dev.Array(6, dtype), 2, 3)


# ---- protocol 2's new kernels and the aliasing rule (collected with this module) ----------------
from needle.testing._conformance_protocol2 import *  # noqa: E402,F401,F403
