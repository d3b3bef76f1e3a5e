"""The fused optimiser kernels (adam_step, sgd_step, rmsprop_step) on every ISA.

Oracle: the composed update's sequence of float32 operations written with numpy (each rounds once,
as each elementwise kernel does), so the fused pass must agree bit for bit, inf and nan included;
sizes straddle the vector widths (8, 16) and the threading grain; ``out`` is a buffer of its own or
``param`` itself (IN_PLACE_UPDATES). The bindings refuse buffers of another size, written buffers
shared with any other argument (but out may be param), and a momentum without its buffer.
"""
import numpy as np
import pytest

from needle_cpu import _backend as B

f32 = np.float32
SIZES = [1, 7, 8, 9, 15, 16, 17, 33, 1000, 100352, (1 << 16) + 5]


def to_buffer(x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    buf = B.Array(x.size)
    B.from_numpy(x, buf)
    return buf


def read(buf):
    return np.asarray(buf).copy()  # the buffer protocol, independent of the kernels


def case(rng, n, positive=False):
    x = rng.standard_normal(n).astype(np.float32)
    if positive:
        x = np.abs(x)
    if n >= 8:  # values the update must carry through as the composed kernels do
        x[:6] = [0.0, -0.0, 1e-40, 1e30, np.inf, np.nan]
        if positive:
            x[1] = 0.0
    return x


def adam_oracle(w, g, m, v, lr, b1, b2, eps, wd, c1, c2, decoupled):
    """needle.optim.Adam's composed update, operation by operation in float32."""
    if wd and not decoupled:
        g = w * f32(wd) + g
    m = m * f32(b1) + g * f32(1 - b1)
    v = v * f32(b2) + (g * g) * f32(1 - b2)
    if wd and decoupled:
        w = w * f32(1 - lr * wd)
    root2 = np.sqrt(c2)
    return m, v, w - (m * f32(lr * root2 / c1)) / (np.sqrt(v) + f32(eps * root2))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("wd,decoupled", [(0.0, False), (1e-4, False), (0.1, True)])
@pytest.mark.parametrize("in_place", [False, True])  # out a buffer of its own, or param itself
def test_adam_step_rounds_as_the_composed_update(isa, rng, n, wd, decoupled, in_place):
    w, g, m, v = case(rng, n), case(rng, n), case(rng, n), case(rng, n, positive=True)
    args = (2e-3, 0.9, 0.999, 1e-8, wd, 1 - 0.9 ** 3, 1 - 0.999 ** 3, decoupled)
    bw, bm, bv = to_buffer(w), to_buffer(m), to_buffer(v)
    out = bw if in_place else B.Array(n)
    with np.errstate(all="ignore"):
        want = adam_oracle(w, g, m, v, *args)
    B.adam_step(bw, to_buffer(g), bm, bv, out, *args)
    for got, expected in zip((read(bm), read(bv), read(out)), want):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("momentum,wd", [(0.0, 0.0), (0.0, 0.01), (0.9, 0.0), (0.9, 0.01)])
@pytest.mark.parametrize("in_place", [False, True])  # out a buffer of its own, or param itself
def test_sgd_step_rounds_as_the_composed_update(isa, rng, n, momentum, wd, in_place):
    w, g, u = case(rng, n), case(rng, n), case(rng, n)
    lr = 0.1
    with np.errstate(all="ignore"):
        step = g + w * f32(wd) if wd else g
        if momentum:
            u_want = step = u * f32(momentum) + step * f32(1 - momentum)
        want = w - step * f32(lr)
    bw, bu = to_buffer(w), to_buffer(u)
    out = bw if in_place else B.Array(n)
    B.sgd_step(bw, to_buffer(g), bu if momentum else None, out, lr, momentum, wd)
    np.testing.assert_array_equal(read(out), want)
    np.testing.assert_array_equal(read(bu), u_want if momentum else u)  # without momentum u is not touched


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("momentum,wd", [(0.0, 0.0), (0.0, 0.05), (0.5, 0.0), (0.5, 0.05)])
@pytest.mark.parametrize("in_place", [False, True])  # out a buffer of its own, or param itself
def test_rmsprop_step_rounds_as_the_composed_update(isa, rng, n, momentum, wd, in_place):
    w, g, v, buf = case(rng, n), case(rng, n), case(rng, n, positive=True), case(rng, n)
    lr, alpha, eps = 0.01, 0.99, 1e-8
    with np.errstate(all="ignore"):
        grad = g + w * f32(wd) if wd else g
        v_want = v * f32(alpha) + (grad * grad) * f32(1 - alpha)
        step = grad / (np.sqrt(v_want) + f32(eps))
        if momentum:
            buf_want = step = buf * f32(momentum) + step
        want = w - step * f32(lr)
    bw, bv, bb = to_buffer(w), to_buffer(v), to_buffer(buf)
    out = bw if in_place else B.Array(n)
    B.rmsprop_step(bw, to_buffer(g), bv, bb if momentum else None, out, lr, alpha, eps, wd, momentum)
    np.testing.assert_array_equal(read(out), want)
    np.testing.assert_array_equal(read(bv), v_want)
    np.testing.assert_array_equal(read(bb), buf_want if momentum else buf)


def test_weights_and_gradient_may_be_one_buffer(rng):
    # Both are only read: loss = 0.5 * w**2 gives grad == w, and a backend may hand over one buffer.
    w = case(rng, 41)[8:]
    both, m, v, out = to_buffer(w), to_buffer(np.zeros(33)), to_buffer(np.zeros(33)), B.Array(33)
    B.adam_step(both, both, m, v, out, 0.1, 0.9, 0.999, 1e-8, 0.0, 0.1, 0.001, False)
    np.testing.assert_array_equal(read(both), w)
    np.testing.assert_array_equal(read(out), adam_oracle(w, w, 0 * w, 0 * w, 0.1, 0.9, 0.999, 1e-8, 0.0, 0.1, 0.001,
                                                         False)[2])


def test_empty_buffers():
    e = [B.Array(0) for _ in range(5)]
    B.adam_step(*e, 0.1, 0.9, 0.999, 1e-8, 0.0, 0.1, 0.001, False)
    B.sgd_step(e[0], e[1], None, e[2], 0.1, 0.0, 0.0)
    B.rmsprop_step(e[0], e[1], e[2], e[3], e[4], 0.1, 0.9, 1e-8, 0.0, 0.5)


ADAM = ("param", "grad", "m", "v", "out")
SCALARS = dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, bias_c1=0.1, bias_c2=0.001,
               decoupled=False)


@pytest.mark.parametrize("change,match", [
    (dict(grad=B.Array(5)), "adam_step: buffer grad has 5 elements, needs 6"),
    (dict(v=B.Array(7)), "buffer v has 7 elements, needs 6"),
    (dict(out=B.Array(0)), "buffer out has 0 elements, needs 6"),
    ("out=grad", "an output is also an input"),
    ("m=grad", "an output is also an input"),
    ("m=param", "an output is also an input"),
    ("m=v", "two outputs are the same buffer"),
    ("out=v", "two outputs are the same buffer"),
    (dict(bias_c1=0.0), "bias corrections must be > 0"),
    (dict(bias_c2=-1.0), "bias corrections must be > 0"),
])
def test_adam_step_refuses_bad_arguments(refuses, change, match):
    refuses(B.adam_step, {name: B.Array(6) for name in ADAM} | SCALARS, change, match)


def test_sgd_and_rmsprop_refuse_bad_arguments():
    a = [B.Array(4) for _ in range(5)]
    with pytest.raises(ValueError, match="sgd_step: buffer u has 3 elements, needs 4"):
        B.sgd_step(a[0], a[1], B.Array(3), a[2], 0.1, 0.9, 0.0)
    with pytest.raises(ValueError, match="momentum=0.9.* needs a momentum buffer u"):
        B.sgd_step(a[0], a[1], None, a[2], 0.1, 0.9, 0.0)
    with pytest.raises(ValueError, match="sgd_step: an output is also an input"):
        B.sgd_step(a[0], a[1], a[1], a[2], 0.1, 0.9, 0.0)
    with pytest.raises(ValueError, match="sgd_step: two outputs are the same buffer"):
        B.sgd_step(a[0], a[1], a[2], a[2], 0.1, 0.9, 0.0)
    with pytest.raises(ValueError, match="rmsprop_step: buffer grad has 2 elements, needs 4"):
        B.rmsprop_step(a[0], B.Array(2), a[2], None, a[3], 0.1, 0.9, 1e-8, 0.0, 0.0)
    with pytest.raises(ValueError, match="momentum=0.5.* needs a momentum buffer buf"):
        B.rmsprop_step(a[0], a[1], a[2], None, a[3], 0.1, 0.9, 1e-8, 0.0, 0.5)
    with pytest.raises(ValueError, match="rmsprop_step: two outputs are the same buffer"):
        B.rmsprop_step(a[0], a[1], a[2], a[2], a[3], 0.1, 0.9, 1e-8, 0.0, 0.5)
    with pytest.raises(ValueError, match="rmsprop_step: an output is also an input"):
        B.rmsprop_step(a[0], a[1], a[2], None, a[1], 0.1, 0.9, 1e-8, 0.0, 0.0)
    # out may be param itself (IN_PLACE_UPDATES), but then no state buffer nor grad may be that buffer
    with pytest.raises(ValueError, match="rmsprop_step: an output is also an input"):
        B.rmsprop_step(a[0], a[1], a[0], None, a[0], 0.1, 0.9, 1e-8, 0.0, 0.0)
    with pytest.raises(ValueError, match="sgd_step: an output is also an input"):
        B.sgd_step(a[0], a[1], a[0], a[0], 0.1, 0.9, 0.0)
    with pytest.raises(ValueError, match="sgd_step: out is param and grad is the same buffer"):
        B.sgd_step(a[0], a[0], None, a[0], 0.1, 0.0, 0.0)
    with pytest.raises(TypeError):
        B.sgd_step(a[0], np.zeros(4, np.float32), None, a[2], 0.1, 0.0, 0.0)  # buffers only
