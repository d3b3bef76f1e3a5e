"""ops.softmax_cross_entropy_labels against numpy and finite differences, on the numpy backend
(the one-hot fallback) and the native CPU backend (its fused kernels), with and without a graph."""
import numpy as np
import pytest

import needle as ndl
from needle import ops
from needle.backend_ndarray import NDArray

NP = ndl.cpu_numpy()
CPU = ndl.cpu() if ndl.cpu().enabled() and ndl.cpu() != NP else None
DEVICES = [NP] + ([CPU] if CPU is not None else [])
rng = np.random.default_rng(7)


def T(x, device, requires_grad=True, dtype="float32"):
    return ndl.Tensor(np.asarray(x, dtype=dtype), device=device, dtype=dtype, requires_grad=requires_grad)


def np_loss_and_grad(z, labels):
    """Mean cross-entropy and its gradient (softmax - one_hot) / n, in float64."""
    shifted = z.astype(np.float64) - z.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    n, k = z.shape
    return -log_p[np.arange(n), labels].mean(), (np.exp(log_p) - np.eye(k)[labels]) / n


def label_forms(labels, device):
    """The ways a caller may pass labels: a device Tensor (float32), ints, floats, a list, a Tensor elsewhere."""
    other = NP if device is not NP else CPU
    forms = [("device tensor", T(labels, device, requires_grad=False)), ("int array", labels),
             ("float array", labels.astype(np.float64)), ("list", [int(v) for v in labels])]
    if other is not None:
        forms.append(("tensor elsewhere", T(labels, other, requires_grad=False)))
    return forms


@pytest.mark.parametrize("device", DEVICES, ids=str)
@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("n,k", [(1, 1), (6, 4), (13, 7), (64, 10), (37, 2003)])
def test_value_and_gradient_match_numpy(device, create_graph, n, k):
    z = rng.standard_normal((n, k)) * 10
    labels = rng.integers(0, k, n)
    want_loss, want_grad = np_loss_and_grad(z.astype(np.float32), labels)
    for form, given in label_forms(labels, device):
        tz = T(z, device)
        loss = ops.softmax_cross_entropy_labels(tz, given)
        assert loss.shape == () and loss.dtype == "float32" and loss.device == device, form
        np.testing.assert_allclose(loss.numpy(), want_loss, rtol=1e-5, atol=1e-6, err_msg=form)
        (loss * 3.0).backward(create_graph=create_graph)
        np.testing.assert_allclose(tz.grad.numpy(), 3.0 * want_grad, rtol=1e-4, atol=1e-7, err_msg=form)


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_gradient_matches_finite_differences(device):
    # Central differences of the op's own forward (the fused kernel on cpu) in float32: eps 1e-2
    # keeps the rounding error of the loss (~1e-7) well under the tolerance.
    z, labels = rng.standard_normal((3, 5)) * 2, np.array([4, 0, 2])
    y = T(labels, device, requires_grad=False)
    tz = T(z, device)
    ops.softmax_cross_entropy_labels(tz, y).backward(create_graph=False)
    eps, numeric = 1e-2, np.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        hi, lo = z.copy(), z.copy()
        hi[idx] += eps
        lo[idx] -= eps
        f_hi = float(ops.softmax_cross_entropy_labels(T(hi, device), y).numpy())
        f_lo = float(ops.softmax_cross_entropy_labels(T(lo, device), y).numpy())
        numeric[idx] = (f_hi - f_lo) / (2 * eps)
    np.testing.assert_allclose(tz.grad.numpy(), numeric, rtol=1e-2, atol=2e-4)


def test_float64_logits_on_numpy_match_finite_differences():
    z, labels = rng.standard_normal((4, 3)), [2, 0, 1, 1]
    tz = T(z, NP, dtype="float64")
    loss = ops.softmax_cross_entropy_labels(tz, labels)
    assert loss.dtype == "float64"
    loss.backward()
    eps, numeric = 1e-6, np.zeros_like(z)
    for idx in np.ndindex(*z.shape):
        hi, lo = z.copy(), z.copy()
        hi[idx] += eps
        lo[idx] -= eps
        numeric[idx] = (np_loss_and_grad(hi, labels)[0] - np_loss_and_grad(lo, labels)[0]) / (2 * eps)
    np.testing.assert_allclose(tz.grad.numpy(), numeric, rtol=1e-6, atol=1e-9)


BIG = np.array([[1e7, 1e7 + 1.0, 1e7 - 2.0], [-3e38, -3e38, -3e38]])  # exact in float32


@pytest.mark.parametrize("device", DEVICES, ids=str)
@pytest.mark.parametrize("create_graph", [False, True])
def test_large_magnitudes(device, create_graph):
    labels = np.array([1, 2])
    tz = T(BIG, device)
    loss = ops.softmax_cross_entropy_labels(tz, T(labels, device, requires_grad=False))
    want_loss, want_grad = np_loss_and_grad(BIG, labels)  # rows: log(1 + e^-1 + e^-3), log(3)
    np.testing.assert_allclose(loss.numpy(), want_loss, rtol=1e-5)
    loss.backward(create_graph=create_graph)
    np.testing.assert_allclose(tz.grad.numpy(), want_grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_gradient_with_a_graph_can_be_differentiated_again(device):
    # d/dz of sum(grad * c) with grad = (softmax(z) - y) / n: (diag(p) - p p^T) c / n per row
    z, c = rng.standard_normal((2, 3)), np.array([[1.0, -2.0, 0.5], [0.3, 0.0, -1.0]])
    tz = T(z, device)
    ops.softmax_cross_entropy_labels(tz, T([1, 0], device, requires_grad=False)).backward(create_graph=True)
    grad = tz.grad
    tz.grad = None
    ops.summation(grad * T(c, device, requires_grad=False)).backward()
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    want = np.stack([(np.diag(p[r]) - np.outer(p[r], p[r])) @ c[r] / 2 for r in range(2)])
    np.testing.assert_allclose(tz.grad.numpy(), want, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(CPU is None, reason="needs the native CPU backend")
@pytest.mark.parametrize("create_graph", [False, True])
def test_native_backend_matches_the_one_hot_fallback(create_graph):
    z, labels = rng.standard_normal((50, 31)) * 5, rng.integers(0, 31, 50)
    fused, composed = T(z, CPU), T(z, CPU)
    loss_f = ops.softmax_cross_entropy_labels(fused, T(labels, CPU, requires_grad=False))
    loss_c = ops.softmax_cross_entropy(composed, T(np.eye(31)[labels], CPU, requires_grad=False))
    np.testing.assert_allclose(loss_f.numpy(), loss_c.numpy(), rtol=1e-6)
    loss_f.backward(create_graph=create_graph)
    loss_c.backward(create_graph=create_graph)
    np.testing.assert_allclose(fused.grad.numpy(), composed.grad.numpy(), rtol=1e-5, atol=1e-8)


@pytest.mark.skipif(CPU is None, reason="needs the native CPU backend")
def test_native_step_builds_no_one_hot_and_reads_nothing_back(monkeypatch):
    # The fused path: labels on the device go straight to the kernels, which check them.
    z, labels = rng.standard_normal((8, 5)), rng.integers(0, 5, 8)
    tz, y = T(z, CPU), T(labels, CPU, requires_grad=False)

    def refuse(*args, **kwargs):
        raise AssertionError("the fused path built a one-hot or read an array back to the host")

    monkeypatch.setattr(CPU, "one_hot", refuse)
    monkeypatch.setattr(NDArray, "numpy", refuse)
    loss = ops.softmax_cross_entropy_labels(tz, y)
    loss.backward(create_graph=False)
    monkeypatch.undo()
    want_loss, want_grad = np_loss_and_grad(z.astype(np.float32), labels)
    np.testing.assert_allclose(loss.numpy(), want_loss, rtol=1e-5)
    np.testing.assert_allclose(tz.grad.numpy(), want_grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("device", DEVICES, ids=str)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0, 4.0, 1.5])
def test_labels_that_are_not_class_indices_raise(device, bad):
    z = T(np.zeros((2, 4)), device)
    for given in (T([0.0, bad], device, requires_grad=False), np.array([0.0, bad]), [0.0, bad]):
        with pytest.raises(ValueError, match="labels"):
            ops.softmax_cross_entropy_labels(z, given)


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_bad_shapes_raise(device):
    z = T(np.zeros((2, 4)), device)
    with pytest.raises(ValueError, match=r"labels of shape \(3,\) do not match logits of shape \(2, 4\)"):
        ops.softmax_cross_entropy_labels(z, T([0, 1, 2], device, requires_grad=False))
    with pytest.raises(ValueError, match=r"labels of shape \(2, 1\)"):
        ops.softmax_cross_entropy_labels(z, np.array([[0], [1]]))
    with pytest.raises(ValueError, match=r"logits must be \(n, k\), got shape \(8,\)"):
        ops.softmax_cross_entropy_labels(T(np.zeros(8), device), [0])


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_labels_that_require_grad_get_none(device):
    z, y = T(rng.standard_normal((3, 4)), device), T([0, 3, 1], device, requires_grad=True)
    ops.softmax_cross_entropy_labels(z, y).backward()
    assert y.grad is None and z.grad is not None


@pytest.mark.parametrize("label_dtype", ["uint8", "int32", "int64", "float32"])
def test_labels_of_any_integer_dtype_on_the_device(label_dtype):
    # The course feeds uint8 label Tensors to SoftmaxLoss: every integer dtype gives the same loss
    # and gradient as the numpy formula, with the labels used where they are.
    dev = ndl.cpu_numpy()
    rng = np.random.default_rng(4)
    z = rng.standard_normal((5, 4))
    y = np.array([3, 0, 1, 3, 2])
    logits = ndl.Tensor(z, device=dev, dtype="float32")
    loss = ops.softmax_cross_entropy_labels(logits, ndl.Tensor(y.astype(label_dtype), device=dev))
    shifted = z - z.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(loss.numpy(), -logp[np.arange(5), y].mean(), rtol=1e-5)
    loss.backward()
    want = (np.exp(logp) - np.eye(4)[y]) / 5
    np.testing.assert_allclose(logits.grad.numpy(), want, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="label"):
        ops.softmax_cross_entropy_labels(logits, ndl.Tensor(np.array([0, 1, 9, 0, 0], label_dtype), device=dev))
