"""The fused softmax cross-entropy kernels against float64 numpy, on every ISA.

Row lengths straddle the vector widths (8, 16) and include 1 and primes; batches cross the
threading grain; logits reach |z| ~ 1e7 and -3e38. The bindings refuse labels that are not class
indices (naming the bad one), short buffers and outputs that share a buffer.
"""
import numpy as np
import pytest

from needle_cpu import _backend as B


def to_buffer(x):
    x = np.ascontiguousarray(x, dtype=np.float32)
    buf = B.Array(x.size)
    B.from_numpy(x, buf)
    return buf


def read(buf, shape):
    return np.asarray(buf).copy().reshape(shape)  # the buffer protocol, independent of the kernels


def numpy_softmax_xent(z, labels):
    """(softmax, per-row loss) in float64, shifted by the row max first."""
    shifted = z.astype(np.float64) - z.max(1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(1))
    return np.exp(shifted - log_sum[:, None]), log_sum - shifted[np.arange(len(labels)), labels]


def run_forward(z, labels):
    m, k = z.shape
    probs, loss = to_buffer(np.full(m * k, 7.0)), to_buffer(np.full(m, 7.0))
    B.softmax_xent_forward(to_buffer(z), to_buffer(labels), probs, loss, m, k)
    return read(probs, (m, k)), read(loss, (m,))


# (m, k): one class, vector edges, primes, the MLP's (64, 10), rows that run on two threads, long rows
SHAPES = [(1, 1), (5, 1), (1, 2), (3, 7), (4, 8), (5, 15), (6, 16), (7, 17), (13, 31), (3, 33), (64, 10),
          (97, 127), (200, 2000), (2, 40009)]


@pytest.mark.parametrize("m,k", SHAPES)
def test_forward_matches_numpy(isa, rng, m, k):
    z = (rng.standard_normal((m, k)) * 8).astype(np.float32)
    labels = rng.integers(0, k, m)
    probs, loss = run_forward(z, labels.astype(np.float32))
    want_probs, want_loss = numpy_softmax_xent(z, labels)
    np.testing.assert_allclose(probs, want_probs, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5, atol=1e-5)


def test_forward_at_large_magnitudes(isa):
    # Exact in float32: a max of 1e7 must not swallow the log-sum term, nor -3e38 overflow to -inf.
    z = np.array([[1e7, 1e7 + 1.0, 1e7 - 2.0, 1e7], [-3e38, -3e38, -3e38, -3e38],
                  [3e38, -3e38, 0.0, 3e38], [88.0, -1e30, 87.0, -88.0]], dtype=np.float32)
    labels = np.array([1, 2, 0, 3])
    probs, loss = run_forward(z, labels.astype(np.float32))
    want_probs, want_loss = numpy_softmax_xent(z, labels)
    assert np.isfinite(probs).all() and np.isfinite(loss).all()
    np.testing.assert_allclose(probs, want_probs, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(loss[:2], [np.log(1 + 2 * np.exp(-1.0) + np.exp(-3.0)), np.log(4.0)], rtol=1e-6)


def test_forward_propagates_nan(isa):
    z = np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]], dtype=np.float32)
    probs, loss = run_forward(z, np.array([0.0, 2.0], dtype=np.float32))
    assert np.isnan(probs[0]).all() and np.isnan(loss[0])
    np.testing.assert_allclose(loss[1], numpy_softmax_xent(z[1:], np.array([2]))[1][0], rtol=1e-6)


@pytest.mark.parametrize("m,k", SHAPES)
def test_backward_is_probs_minus_one_hot_times_scale(isa, rng, m, k):
    probs = rng.uniform(0, 1, (m, k)).astype(np.float32)  # any values: the kernel only subtracts and scales
    labels = rng.integers(0, k, m)
    scale = np.float32(-0.37)
    out = to_buffer(np.full(m * k, 7.0))
    B.softmax_xent_backward(to_buffer(probs), to_buffer(labels.astype(np.float32)), to_buffer([scale]), out, m, k)
    # float32 oracle: one rounding for p - y, one for the product, as the kernel does
    want = (probs - np.eye(k, dtype=np.float32)[labels]) * scale
    np.testing.assert_array_equal(read(out, (m, k)), want)


def test_empty_batch_writes_nothing():
    probs, loss = B.Array(0), B.Array(0)
    B.softmax_xent_forward(B.Array(0), B.Array(0), probs, loss, 0, 5)
    out = to_buffer([7.0])
    B.softmax_xent_backward(B.Array(0), B.Array(0), to_buffer([1.0]), out, 0, 5)
    np.testing.assert_array_equal(read(out, (1,)), [7.0])


def forward_args(m=3, k=4):
    labels = to_buffer([0, 3, 1][:m] + [0] * max(0, m - 3))
    return dict(z=to_buffer(np.zeros(m * k)), labels=labels, probs=B.Array(m * k), loss_rows=B.Array(m), m=m, k=k)


def backward_args(m=3, k=4):
    labels = to_buffer([0, 3, 1][:m] + [0] * max(0, m - 3))
    return dict(probs=to_buffer(np.zeros(m * k)), labels=labels, scale=to_buffer([1.0]), out=B.Array(m * k), m=m, k=k)


BAD_LABELS = [(2.5, r"labels\[1\] = 2\.5"), (np.nan, r"labels\[1\] = nan"), (np.inf, r"labels\[1\] = inf"),
              (-1.0, r"labels\[1\] = -1"), (4.0, r"labels\[1\] = 4\b"), (1e30, r"labels\[1\] = 1\.0*2?e\+30")]


@pytest.mark.parametrize("bad,match", BAD_LABELS)
@pytest.mark.parametrize("kernel,make_args", [(B.softmax_xent_forward, forward_args),
                                              (B.softmax_xent_backward, backward_args)])
def test_labels_must_be_class_indices(kernel, make_args, bad, match):
    args = make_args()
    args["labels"] = to_buffer([0.0, bad, 1.0])
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 4\), got " + match):
        kernel(**args)


def test_zero_classes_have_no_valid_label():
    with pytest.raises(ValueError, match=r"in \[0, 0\), got labels\[0\] = 0"):
        B.softmax_xent_forward(**forward_args(k=0))


@pytest.mark.parametrize("change,match", [
    (dict(m=-1), "m=-1"),
    (dict(k=5), "buffer z has 12 elements, needs at least 15"),
    (dict(m=4), "buffer z has 12 elements, needs at least 16"),
    (dict(labels=to_buffer([0, 1])), "buffer labels has 2 elements, needs at least 3"),
    (dict(probs=B.Array(11)), "buffer probs has 11 elements"),
    (dict(loss_rows=B.Array(2)), "buffer loss_rows has 2 elements"),
    ("loss_rows=probs", "two outputs are the same buffer"),
    ("probs=z", "an output is also an input"),
    ("loss_rows=labels", "an output is also an input"),
])
def test_forward_refuses_bad_arguments(refuses, change, match):
    refuses(B.softmax_xent_forward, forward_args(), change, match)


@pytest.mark.parametrize("change,match", [
    (dict(k=-2), "k=-2"),
    (dict(probs=B.Array(11)), "buffer probs has 11 elements"),
    (dict(scale=B.Array(0)), "buffer scale has 0 elements, needs at least 1"),
    (dict(out=B.Array(5)), "buffer out has 5 elements"),
    ("out=probs", "an output is also an input"),
    ("scale=out", "an output is also an input"),
])
def test_backward_refuses_bad_arguments(refuses, change, match):
    refuses(B.softmax_xent_backward, backward_args(), change, match)
