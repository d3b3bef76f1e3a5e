"""Matmul kernels (packed GEMM, transposed A or B, batched, fused bias, course tiled) against numpy, on every ISA."""
import numpy as np
import pytest

from needle_cpu import _backend as B


def to_buffer(x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    buf = B.Array(x.size)
    B.from_numpy(x, buf)
    return buf


def from_buffer(buf, shape):
    return np.asarray(buf).copy().reshape(shape)


def reference(a, b):
    return a.astype(np.float64) @ b.astype(np.float64)


def assert_matmul_close(got, a, b):
    # float32 accumulation over n terms: scale the tolerance with sqrt(n) and the magnitudes.
    n = a.shape[-1]
    scale = np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)
    expected = reference(a, b)
    assert np.all(np.abs(got - expected) <= 1e-6 * np.sqrt(max(n, 1)) * 4 * scale + 1e-30), \
        f"max error {np.max(np.abs(got - expected))}"


# 1, primes, sizes around the 12x32 / 6x16 / 4x8 register tiles and the 96/256/512 cache blocks; B
# of at most 2**14 floats, or any B when m <= 192 (split by columns only up to 128 rows), is read in
# place by the AVX-512 kernel (one k block or several, one thread or more), other B is packed.
SHAPES = [(1, 1, 1), (1, 7, 1), (1, 1, 13), (2, 3, 5), (5, 1, 7), (6, 16, 16), (7, 17, 19), (13, 11, 97),
          (12, 5, 32), (11, 40, 31), (24, 64, 64), (25, 33, 65), (31, 37, 41), (64, 64, 64), (97, 257, 33),
          (127, 127, 127), (128, 300, 17), (50, 600, 27), (1000, 128, 127), (37, 70, 300), (200, 513, 129),
          (300, 129, 130), (3, 1000, 5), (1, 1024, 1000), (1000, 3, 2), (301, 260, 4100), (100, 600, 700),
          (190, 300, 1000)]


@pytest.mark.parametrize("m,n,p", SHAPES)
def test_matmul(isa, rng, m, n, p):
    a = rng.standard_normal((m, n)).astype(np.float32)
    b = rng.standard_normal((n, p)).astype(np.float32)
    out = B.Array(m * p)
    B.matmul(to_buffer(a), to_buffer(b), out, m, n, p)
    assert_matmul_close(from_buffer(out, (m, p)), a, b)


@pytest.mark.parametrize("m,n,p", SHAPES + [(64, 784, 128), (784, 64, 128), (193, 300, 256), (20, 1100, 257)])
def test_matmul_tn(isa, rng, m, n, p):
    a = rng.standard_normal((n, m)).astype(np.float32)  # out = a.T @ b
    b = rng.standard_normal((n, p)).astype(np.float32)
    out = B.Array(m * p)
    B.matmul_tn(to_buffer(a), to_buffer(b), out, m, n, p)
    assert_matmul_close(from_buffer(out, (m, p)), a.T, b)


# m <= 64 rows against n >= 256 and p > m: computed as (b @ a.T).T, b read in place (AVX-512).
@pytest.mark.parametrize("m,n,p", SHAPES + [(16, 512, 784), (16, 512, 512), (16, 512, 10), (64, 784, 128),
                                            (20, 1100, 257), (1, 17, 100), (3, 257, 1), (100, 3, 257),
                                            (64, 256, 65), (65, 300, 100), (1, 256, 2), (33, 1030, 40)])
def test_matmul_nt(isa, rng, m, n, p):
    a = rng.standard_normal((m, n)).astype(np.float32)
    b = rng.standard_normal((p, n)).astype(np.float32)  # out = a @ b.T
    out = B.Array(m * p)
    B.fill(out, 7.0)
    B.matmul_nt(to_buffer(a), to_buffer(b), out, m, n, p)
    assert_matmul_close(from_buffer(out, (m, p)), a, b.T)


@pytest.mark.parametrize("transposed", [False, True, "b"])
def test_matmul_every_edge_tile(isa, rng, transposed):
    # Every row count of a 12-row tile (two tiles deep) against column counts around the 16/32
    # vector halves, with B read in place (small, or m <= 192 and p <= 256) and packed (p > 256),
    # A read in place and packed (row-major, or transposed for matmul_tn).
    for n, cols in ((5, [1, 2, 15, 16, 17, 31, 32, 33, 48, 63, 65]), (260, [65, 79, 95, 96, 257, 289])):
        for m in range(1, 26):
            for p in cols:
                a = rng.standard_normal((m, n)).astype(np.float32)
                b = rng.standard_normal((n, p)).astype(np.float32)
                out = B.Array(m * p)
                if transposed == "b":
                    B.matmul_nt(to_buffer(a), to_buffer(b.T), out, m, n, p)
                elif transposed:
                    B.matmul_tn(to_buffer(a.T), to_buffer(b), out, m, n, p)
                else:
                    B.matmul(to_buffer(a), to_buffer(b), out, m, n, p)
                assert_matmul_close(from_buffer(out, (m, p)), a, b)


@pytest.mark.parametrize("m,n,p", [(0, 3, 4), (3, 0, 4), (3, 4, 0), (0, 0, 0)])
@pytest.mark.parametrize("kernel", ["matmul", "matmul_tn", "matmul_nt"])
def test_matmul_empty(isa, m, n, p, kernel):
    out = B.Array(m * p)
    B.fill(out, 7.0)
    getattr(B, kernel)(B.Array(m * n), B.Array(n * p), out, m, n, p)
    np.testing.assert_array_equal(from_buffer(out, (m, p)), np.zeros((m, p), np.float32))


def test_matmul_uses_prefix_of_larger_buffers(isa, rng):
    a = rng.standard_normal(50).astype(np.float32)
    b = rng.standard_normal(60).astype(np.float32)
    out = B.Array(30)
    B.fill(out, 3.0)
    B.matmul(to_buffer(a), to_buffer(b), out, 4, 5, 6)
    got = np.asarray(out).copy()
    assert_matmul_close(got[:24].reshape(4, 6), a[:20].reshape(4, 5), b[:30].reshape(5, 6))
    np.testing.assert_array_equal(got[24:], 3.0)


def test_matmul_out_aliases_input(isa, rng):
    a = rng.standard_normal((9, 9)).astype(np.float32)
    buf = to_buffer(a)
    B.matmul(buf, buf, buf, 9, 9, 9)
    assert_matmul_close(from_buffer(buf, (9, 9)), a, a)


@pytest.mark.parametrize("n", [9, 300])
def test_matmul_tn_out_aliases_input(isa, rng, n):
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    buf = to_buffer(a)
    B.matmul_tn(buf, buf, buf, n, n, n)
    assert_matmul_close(from_buffer(buf, (n, n)), a.T, a)
    a_buf, b_buf = to_buffer(a), to_buffer(b)
    B.matmul_tn(a_buf, b_buf, b_buf, n, n, n)
    assert_matmul_close(from_buffer(b_buf, (n, n)), a.T, b)
    B.matmul_tn(a_buf, to_buffer(b), a_buf, n, n, n)
    assert_matmul_close(from_buffer(a_buf, (n, n)), a.T, b)


@pytest.mark.parametrize("n", [9, 300])
def test_matmul_nt_out_aliases_input(isa, rng, n):
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    buf = to_buffer(a)
    B.matmul_nt(buf, buf, buf, n, n, n)
    assert_matmul_close(from_buffer(buf, (n, n)), a, a.T)
    a_buf, b_buf = to_buffer(a), to_buffer(b)
    B.matmul_nt(a_buf, b_buf, b_buf, n, n, n)
    assert_matmul_close(from_buffer(b_buf, (n, n)), a, b.T)
    B.matmul_nt(a_buf, to_buffer(b), a_buf, n, n, n)
    assert_matmul_close(from_buffer(a_buf, (n, n)), a, b.T)


@pytest.mark.parametrize("m,n,p", [(1, 1, 1), (7, 5, 3), (33, 65, 17), (200, 300, 100), (64, 300, 520)])
def test_matmul_bias(isa, rng, m, n, p):
    a = rng.standard_normal((m, n)).astype(np.float32)
    b = rng.standard_normal((n, p)).astype(np.float32)
    bias = rng.standard_normal(p).astype(np.float32)
    out = B.Array(m * p)
    B.matmul_bias(to_buffer(a), to_buffer(b), to_buffer(bias), out, m, n, p)
    got = from_buffer(out, (m, p)) - bias
    assert_matmul_close(got, a, b)


@pytest.mark.parametrize("batch,m,n,p", [(1, 3, 4, 5), (5, 1, 1, 1), (7, 6, 16, 16), (3, 13, 17, 19),
                                         (64, 8, 8, 8), (2, 150, 90, 70), (0, 3, 3, 3)])
def test_matmul_batched(isa, rng, batch, m, n, p):
    a = rng.standard_normal((batch, m, n)).astype(np.float32)
    b = rng.standard_normal((batch, n, p)).astype(np.float32)
    out = B.Array(batch * m * p)
    B.matmul_batched(to_buffer(a), to_buffer(b), out, batch, m, n, p)
    got = from_buffer(out, (batch, m, p))
    for i in range(batch):
        assert_matmul_close(got[i], a[i], b[i])


def _tile(x, t):
    r, c = x.shape
    return x.reshape(r // t, t, c // t, t).transpose(0, 2, 1, 3).copy()


@pytest.mark.parametrize("m,n,p", [(8, 8, 8), (16, 24, 8), (32, 64, 40)])
def test_matmul_tiled(rng, m, n, p):
    t = B.__tile_size__
    assert t == 8
    a = rng.standard_normal((m, n)).astype(np.float32)
    b = rng.standard_normal((n, p)).astype(np.float32)
    out = B.Array(m * p)
    B.matmul_tiled(to_buffer(_tile(a, t)), to_buffer(_tile(b, t)), out, m, n, p)
    got = from_buffer(out, (m // t, p // t, t, t)).transpose(0, 2, 1, 3).reshape(m, p)
    assert_matmul_close(got, a, b)


def test_matmul_tiled_rejects_untiled_sizes():
    with pytest.raises(ValueError, match="multiples of the tile size"):
        B.matmul_tiled(B.Array(81), B.Array(81), B.Array(81), 9, 9, 9)


# One shape per schedule at 2 threads (B read in place, split by columns or also by rows; a block
# of C per thread; a transposed B of a few columns packed once, A read in place (matmul_nt of a few
# rows); and, at 6 threads, B packed by all threads together), and products too small to split.
@pytest.mark.parametrize("m,n,p", [(150, 170, 190), (64, 784, 128), (200, 300, 300), (50, 300, 600), (9, 9, 9),
                                   (5, 2000, 70), (40, 600, 300), (160, 300, 600)])
def test_thread_counts_agree(isa, rng, m, n, p):
    import needle_cpu
    a = rng.standard_normal((m, n)).astype(np.float32)
    b = rng.standard_normal((n, p)).astype(np.float32)
    bias = rng.standard_normal(p).astype(np.float32)
    before = needle_cpu.get_num_threads()
    try:
        for threads in (1, 2, 3, 6):
            needle_cpu.set_num_threads(threads)
            out = B.Array(m * p)
            B.matmul(to_buffer(a), to_buffer(b), out, m, n, p)
            assert_matmul_close(from_buffer(out, (m, p)), a, b)
            B.matmul_tn(to_buffer(a.T), to_buffer(b), out, m, n, p)
            assert_matmul_close(from_buffer(out, (m, p)), a, b)
            B.matmul_nt(to_buffer(a), to_buffer(b.T), out, m, n, p)
            assert_matmul_close(from_buffer(out, (m, p)), a, b)
            B.matmul_bias(to_buffer(a), to_buffer(b), to_buffer(bias), out, m, n, p)
            assert_matmul_close(from_buffer(out, (m, p)) - bias, a, b)
    finally:
        needle_cpu.set_num_threads(before)


def _conv_reference(a, b, sh, sw):
    n, h, w, _ = a.shape
    kh, kw, _, c_out = b.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.zeros((n, ho, wo, c_out))
    for p in range(kh):
        for q in range(kw):
            patch = a[:, p:p + sh * (ho - 1) + 1:sh, q:q + sw * (wo - 1) + 1:sw, :].astype(np.float64)
            out += patch @ b[p, q].astype(np.float64)
    return out


@pytest.mark.parametrize("n,h,w,c_in,c_out,kh,kw,sh,sw", [
    (1, 1, 1, 1, 1, 1, 1, 1, 1), (2, 5, 7, 3, 4, 3, 3, 1, 1), (3, 9, 8, 2, 5, 3, 2, 2, 3),
    (2, 34, 34, 16, 32, 3, 3, 1, 1), (1, 6, 6, 3, 7, 6, 6, 1, 1), (4, 11, 13, 5, 3, 1, 1, 2, 2),
])
def test_conv2d_nhwc(isa, rng, n, h, w, c_in, c_out, kh, kw, sh, sw):
    a = rng.standard_normal((n, h, w, c_in)).astype(np.float32)
    b = rng.standard_normal((kh, kw, c_in, c_out)).astype(np.float32)
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = B.Array(n * ho * wo * c_out)
    B.conv2d_nhwc(to_buffer(a), to_buffer(b), out, n, h, w, c_in, c_out, kh, kw, sh, sw)
    got = from_buffer(out, (n, ho, wo, c_out))
    np.testing.assert_allclose(got, _conv_reference(a, b, sh, sw), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n,h,w,c_in,c_out,kh,kw,sh,sw", [
    (1, 1, 1, 1, 1, 1, 1, 1, 1), (2, 5, 7, 3, 4, 3, 3, 1, 1), (3, 9, 8, 2, 5, 3, 2, 2, 3),
    (2, 34, 34, 32, 17, 3, 3, 1, 1),  # 2 * 32 * 32 rows: several blocks of gathered windows
    (1, 6, 6, 3, 7, 6, 6, 1, 1), (4, 11, 13, 5, 3, 1, 1, 2, 2),
])
def test_conv2d_nhwc_grad_weight(isa, rng, n, h, w, c_in, c_out, kh, kw, sh, sw):
    a = rng.standard_normal((n, h, w, c_in)).astype(np.float32)
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    g = rng.standard_normal((n, ho, wo, c_out)).astype(np.float32)
    out = to_buffer(np.full(kh * kw * c_in * c_out, 7.0))
    B.conv2d_nhwc_grad_weight(to_buffer(a), to_buffer(g), out, n, h, w, c_in, c_out, kh, kw, sh, sw)
    want = np.zeros((kh, kw, c_in, c_out))
    for p in range(kh):
        for q in range(kw):
            patch = a[:, p:p + sh * (ho - 1) + 1:sh, q:q + sw * (wo - 1) + 1:sw, :].astype(np.float64)
            want[p, q] = np.einsum("nijc,nijd->cd", patch, g.astype(np.float64))
    got = from_buffer(out, (kh, kw, c_in, c_out))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)


# Padded variants: ResNet9's tiny images (taps that only read padding are left out), padding wider than
# the kernel, uneven (ph, pw), strides past the image, and more rows than one gathered block.
PADDED_CASES = [
    (3, 1, 1, 5, 6, 3, 3, 1, 1, 1, 1), (2, 2, 2, 4, 3, 3, 3, 2, 2, 1, 1), (2, 4, 4, 3, 5, 3, 3, 2, 2, 1, 1),
    (1, 2, 3, 2, 3, 3, 3, 1, 1, 2, 2), (2, 5, 7, 3, 4, 3, 2, 2, 3, 1, 0), (1, 1, 1, 2, 2, 1, 1, 2, 2, 1, 1),
    (2, 3, 3, 2, 3, 5, 5, 1, 1, 1, 1), (2, 9, 8, 3, 2, 7, 7, 4, 4, 3, 3), (2, 34, 34, 17, 5, 3, 3, 1, 1, 1, 1),
    (2, 3, 4, 2, 3, 1, 2, 1, 1, 1, 2),  # padding at least the kernel: stride 1 adds windows back too
]


def _padded_input(a, ph, pw):
    return np.pad(a, ((0, 0), (ph, ph), (pw, pw), (0, 0)))


@pytest.mark.parametrize("n,h,w,c_in,c_out,kh,kw,sh,sw,ph,pw", PADDED_CASES)
def test_conv2d_nhwc_padded(isa, rng, n, h, w, c_in, c_out, kh, kw, sh, sw, ph, pw):
    a = rng.standard_normal((n, h, w, c_in)).astype(np.float32)
    b = rng.standard_normal((kh, kw, c_in, c_out)).astype(np.float32)
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    out = to_buffer(np.full(n * ho * wo * c_out, 7.0))
    B.conv2d_nhwc_padded(to_buffer(a), to_buffer(b), out, n, h, w, c_in, c_out, kh, kw, sh, sw, ph, pw)
    want = _conv_reference(_padded_input(a, ph, pw), b, sh, sw)
    np.testing.assert_allclose(from_buffer(out, (n, ho, wo, c_out)), want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n,h,w,c_in,c_out,kh,kw,sh,sw,ph,pw", PADDED_CASES)
def test_conv2d_nhwc_grad_weight_padded(isa, rng, n, h, w, c_in, c_out, kh, kw, sh, sw, ph, pw):
    a = rng.standard_normal((n, h, w, c_in)).astype(np.float32)
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    g = rng.standard_normal((n, ho, wo, c_out)).astype(np.float32)
    out = to_buffer(np.full(kh * kw * c_in * c_out, 7.0))  # every element is written, dead taps with 0
    B.conv2d_nhwc_grad_weight_padded(to_buffer(a), to_buffer(g), out, n, h, w, c_in, c_out, kh, kw, sh, sw, ph, pw)
    ap = _padded_input(a, ph, pw).astype(np.float64)
    want = np.zeros((kh, kw, c_in, c_out))
    for p in range(kh):
        for q in range(kw):
            patch = ap[:, p:p + sh * (ho - 1) + 1:sh, q:q + sw * (wo - 1) + 1:sw, :]
            want[p, q] = np.einsum("nijc,nijd->cd", patch, g.astype(np.float64))
    np.testing.assert_allclose(from_buffer(out, (kh, kw, c_in, c_out)), want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("n,h,w,c_in,c_out,kh,kw,sh,sw,ph,pw", PADDED_CASES + [(3, 8, 8, 16, 32, 3, 3, 2, 2, 1, 1)])
def test_conv2d_nhwc_grad_input_padded(isa, rng, n, h, w, c_in, c_out, kh, kw, sh, sw, ph, pw):
    b = rng.standard_normal((kh, kw, c_in, c_out)).astype(np.float32)
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    g = rng.standard_normal((n, ho, wo, c_out)).astype(np.float32)
    out = to_buffer(np.full(n * h * w * c_in, 7.0))  # every element is written
    B.conv2d_nhwc_grad_input_padded(to_buffer(g), to_buffer(b), out, n, h, w, c_in, c_out, kh, kw, sh, sw, ph, pw)
    # The adjoint of the forward: each tap's g @ b[p, q]^T added at its window offsets, padding cropped.
    want = np.zeros((n, h + 2 * ph, w + 2 * pw, c_in))
    for p in range(kh):
        for q in range(kw):
            want[:, p:p + sh * (ho - 1) + 1:sh, q:q + sw * (wo - 1) + 1:sw, :] += g.astype(np.float64) @ b[p, q].T
    want = want[:, ph:ph + h, pw:pw + w, :]
    np.testing.assert_allclose(from_buffer(out, (n, h, w, c_in)), want, rtol=1e-4, atol=1e-3)


def test_conv2d_nhwc_padded_rejects_bad_arguments():
    for k, second in ((B.conv2d_nhwc_padded, 9), (B.conv2d_nhwc_grad_weight_padded, 1)):
        with pytest.raises(ValueError, match="smaller than the kernel"):
            k(B.Array(1), B.Array(second), B.Array(9), 1, 1, 1, 1, 1, 5, 5, 1, 1, 1, 1)
        with pytest.raises(ValueError, match="stride"):
            k(B.Array(1), B.Array(second), B.Array(9), 1, 1, 1, 1, 1, 3, 3, 0, 1, 1, 1)
        with pytest.raises(ValueError, match="must be in"):
            k(B.Array(1), B.Array(second), B.Array(9), 1, 1, 1, 1, 1, 3, 3, 1, 1, -1, 1)
        with pytest.raises(ValueError, match="buffer a"):
            k(B.Array(1), B.Array(second), B.Array(9), 1, 2, 1, 1, 1, 3, 3, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="buffer out"):
        B.conv2d_nhwc_padded(B.Array(1), B.Array(9), B.Array(0), 1, 1, 1, 1, 1, 3, 3, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="buffer out"):
        B.conv2d_nhwc_grad_weight_padded(B.Array(1), B.Array(1), B.Array(8), 1, 1, 1, 1, 1, 3, 3, 1, 1, 1, 1)
    k = B.conv2d_nhwc_grad_input_padded
    with pytest.raises(ValueError, match="smaller than the kernel"):
        k(B.Array(1), B.Array(9), B.Array(1), 1, 1, 1, 1, 1, 5, 5, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="buffer g"):
        k(B.Array(0), B.Array(9), B.Array(1), 1, 1, 1, 1, 1, 3, 3, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="buffer b"):
        k(B.Array(1), B.Array(8), B.Array(1), 1, 1, 1, 1, 1, 3, 3, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="buffer out"):
        k(B.Array(1), B.Array(9), B.Array(0), 1, 1, 1, 1, 1, 3, 3, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="must be in"):
        k(B.Array(1), B.Array(9), B.Array(1), 1, 1, 1, 1, 1, 3, 3, 1, 1, 1, -3)
    g = B.Array(9)
    with pytest.raises(ValueError, match="an output is also an input"):
        k(g, B.Array(9), g, 1, 3, 3, 1, 1, 3, 3, 1, 1, 1, 1)
    a = B.Array(9)
    with pytest.raises(ValueError, match="must not be"):
        B.conv2d_nhwc_padded(a, B.Array(9), a, 1, 3, 3, 1, 1, 3, 3, 1, 1, 1, 1)


def test_conv2d_nhwc_grad_weight_rejects_bad_arguments():
    k = B.conv2d_nhwc_grad_weight
    with pytest.raises(ValueError, match="smaller than the kernel"):
        k(B.Array(4), B.Array(1), B.Array(9), 1, 2, 2, 1, 1, 3, 3, 1, 1)
    with pytest.raises(ValueError, match="stride"):
        k(B.Array(9), B.Array(1), B.Array(9), 1, 3, 3, 1, 1, 3, 3, 1, 0)
    with pytest.raises(ValueError, match="buffer g"):
        k(B.Array(50), B.Array(8), B.Array(9), 2, 5, 5, 1, 1, 3, 3, 1, 1)
    with pytest.raises(ValueError, match="buffer out"):
        k(B.Array(50), B.Array(18), B.Array(8), 2, 5, 5, 1, 1, 3, 3, 1, 1)
    with pytest.raises(ValueError, match="must be in"):
        k(B.Array(50), B.Array(18), B.Array(9), -2, 5, 5, 1, 1, 3, 3, 1, 1)
    a = B.Array(50)
    with pytest.raises(ValueError, match="an output is also an input"):
        k(a, B.Array(18), a, 2, 5, 5, 1, 1, 3, 3, 1, 1)


def test_conv2d_nhwc_rejects_bad_sizes():
    with pytest.raises(ValueError, match="smaller than the kernel"):
        B.conv2d_nhwc(B.Array(4), B.Array(9), B.Array(1), 1, 2, 2, 1, 1, 3, 3, 1, 1)
    with pytest.raises(ValueError, match="stride"):
        B.conv2d_nhwc(B.Array(9), B.Array(9), B.Array(1), 1, 3, 3, 1, 1, 3, 3, 0, 1)
    with pytest.raises(ValueError, match="buffer a"):
        B.conv2d_nhwc(B.Array(8), B.Array(9), B.Array(1), 1, 3, 3, 1, 1, 3, 3, 1, 1)
    with pytest.raises(ValueError, match="buffer out"):
        B.conv2d_nhwc(B.Array(50), B.Array(9), B.Array(8), 2, 5, 5, 1, 1, 3, 3, 1, 1)
