"""The optimisers' fused path (the backend's adam_step / sgd_step / rmsprop_step, on needle-cpu)
against hand-computed float64 steps, against the composed NDArray update on the same device (equal
bit for bit) and against the numpy backend's composed update; state, ``.grad`` and a tensor detached
before the step behave as on the composed path (parameters are updated in place, by the kernel itself
where the backend lists it in IN_PLACE_UPDATES); a backend
without the kernels, or operands in another dtype, take the composed path."""
import numpy as np
import pytest

import needle as ndl
from needle import nn, optim
from needle.optim import optimizer

NUMPY = ndl.cpu_numpy()
FUSED_KERNEL = optimizer._fused_kernel  # before any test patches it

rng = np.random.RandomState(0)
W0 = rng.randn(9, 13).astype(np.float32)
GRADS = [rng.randn(9, 13).astype(np.float32) for _ in range(4)]


def _native_cpu():
    dev = ndl.cpu()
    if not dev.enabled() or dev.backend_name != "cpu" or dev.optional("adam_step") is None:
        pytest.skip("needle-cpu with the fused optimiser kernels is not installed")
    return dev


def _use_path(monkeypatch, path):
    """Make the optimisers take ``path``: "composed" (no fused kernels anywhere) or "fused" (the
    backend's own where it has them); returns a list that records each fused kernel taken."""
    taken = []

    def pick(name, w, g, states):
        kernel = None if path == "composed" else FUSED_KERNEL(name, w, g, states)
        if kernel is not None:
            taken.append(name)
        return kernel

    monkeypatch.setattr(optimizer, "_fused_kernel", pick)
    return taken


# ---- hand-computed steps (float64) -----------------------------------------------------------------
def sgd_steps(lr, momentum=0.0, weight_decay=0.0):
    w, u, out = W0.astype(np.float64), 0.0, []
    for g in GRADS:
        g = g + weight_decay * w
        if momentum:
            u = g = momentum * u + (1 - momentum) * g
        w = w - lr * g
        out.append(w)
    return out


def adam_steps(lr, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False):
    w, m, v, out = W0.astype(np.float64), 0.0, 0.0, []
    for t, g in enumerate(GRADS, start=1):
        g = g if decoupled else g + weight_decay * w
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        w = w * (1 - lr * weight_decay) if decoupled else w
        w = w - lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)
        out.append(w)
    return out


def rmsprop_steps(lr, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0):
    w, v, buf, out = W0.astype(np.float64), 0.0, 0.0, []
    for g in GRADS:
        g = g + weight_decay * w
        v = alpha * v + (1 - alpha) * g * g
        d = g / (np.sqrt(v) + eps)
        if momentum:
            buf = d = momentum * buf + d
        w = w - lr * d
        out.append(w)
    return out


CASES = {  # name: (optimizer factory, hand-computed weights after each step, fused kernel)
    "sgd": (lambda ps: optim.SGD(ps, lr=0.1), sgd_steps(0.1), "sgd_step"),
    "sgd-momentum-decay": (lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
                           sgd_steps(0.1, 0.9, 0.01), "sgd_step"),
    "adam": (lambda ps: optim.Adam(ps, lr=0.01), adam_steps(0.01), "adam_step"),
    "adam-decay": (lambda ps: optim.Adam(ps, lr=0.05, beta1=0.8, beta2=0.95, weight_decay=0.1),
                   adam_steps(0.05, 0.8, 0.95, weight_decay=0.1), "adam_step"),
    "adamw": (lambda ps: optim.AdamW(ps, lr=0.05, weight_decay=0.1),
              adam_steps(0.05, weight_decay=0.1, decoupled=True), "adam_step"),
    "rmsprop": (lambda ps: optim.RMSprop(ps, lr=0.01), rmsprop_steps(0.01), "rmsprop_step"),
    "rmsprop-momentum-decay": (lambda ps: optim.RMSprop(ps, lr=0.01, alpha=0.9, weight_decay=0.05, momentum=0.5),
                               rmsprop_steps(0.01, 0.9, weight_decay=0.05, momentum=0.5), "rmsprop_step"),
}


def make(case, device):
    p = nn.Parameter(W0.copy(), device=device)
    return CASES[case][0]([p]), p


def run(opt, p, grads):
    """Weights after each step with ``grads``; checks what every step must keep as it was."""
    out = []
    for g in grads:
        grad = ndl.Tensor(g, device=p.device, requires_grad=False)
        held = p.detach()  # shares the parameter's data
        buffer = p.realize_cached_data()._handle
        p.grad = grad
        opt.step()
        np.testing.assert_array_equal(grad.numpy(), g)  # the gradient is never written into
        # Updated in place (needle.jit relies on it): the buffer stays, a detached tensor sees the new values.
        assert p.realize_cached_data()._handle is buffer
        np.testing.assert_array_equal(held.numpy(), p.numpy())
        assert p.is_leaf() and p.requires_grad and isinstance(p, nn.Parameter)
        assert p.device == held.device and p.dtype == "float32"
        out.append(p.numpy())
    return out


def check(got, expected, **tol):
    tol = tol or dict(rtol=1e-5, atol=1e-6)
    for step, (a, b) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(a, b, err_msg=f"step {step + 1}", **tol)


@pytest.mark.parametrize("case", sorted(CASES))
def test_fused_path_matches_hand_steps_and_the_composed_update(monkeypatch, case):
    dev = _native_cpu()
    taken = _use_path(monkeypatch, "fused")
    fused = run(*make(case, dev), GRADS)
    assert taken == [CASES[case][2]] * len(GRADS)
    check(fused, CASES[case][1])
    _use_path(monkeypatch, "composed")
    composed = run(*make(case, dev), GRADS)
    for a, b in zip(fused, composed):  # the kernel rounds as the composed kernels do
        np.testing.assert_array_equal(a, b)
    check(fused, run(*make(case, NUMPY), GRADS), rtol=1e-6, atol=1e-7)  # the numpy backend's fallback


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("listed", [True, False])
def test_fused_step_writes_into_the_parameter_only_where_the_backend_lists_it(monkeypatch, case, listed):
    # IN_PLACE_UPDATES: out is the parameter's own buffer (no new buffer, no copy); unlisted, out is a
    # buffer of its own that is copied in (today's path). Both equal the composed update bit for bit.
    dev = _native_cpu()
    name = CASES[case][2]
    monkeypatch.setitem(dev.__dict__, "_in_place_updates", frozenset({name} if listed else ()))
    aliased = []

    def pick(kernel_name, w, g, states):
        kernel = FUSED_KERNEL(kernel_name, w, g, states)
        out_at = 3 if kernel_name == "sgd_step" else 4

        def spy(*args):
            aliased.append(args[out_at] is args[0])
            return kernel(*args)
        return spy

    monkeypatch.setattr(optimizer, "_fused_kernel", pick)
    fused = run(*make(case, dev), GRADS)
    assert aliased == [listed] * len(GRADS)
    _use_path(monkeypatch, "composed")
    for a, b in zip(fused, run(*make(case, dev), GRADS)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", sorted(CASES))
def test_fallback_on_a_backend_without_the_kernels(monkeypatch, case):
    taken = _use_path(monkeypatch, "fused")
    assert NUMPY.optional(CASES[case][2]) is None
    check(run(*make(case, NUMPY), GRADS), CASES[case][1])
    assert taken == []


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("first,then", [("fused", "composed"), ("composed", "fused")])
def test_paths_share_the_optimiser_state(monkeypatch, case, first, then):
    # Two steps on one path, two on the other: the moments/momentum carry over either way.
    dev = _native_cpu()
    opt, p = make(case, dev)
    _use_path(monkeypatch, first)
    got = run(opt, p, GRADS[:2])
    _use_path(monkeypatch, then)
    check(got + run(opt, p, GRADS[2:]), CASES[case][1])


def test_fused_adam_state_is_the_moments(monkeypatch):
    dev = _native_cpu()
    _use_path(monkeypatch, "fused")
    opt, p = make("adam-decay", dev)
    run(opt, p, GRADS)
    w, m, v = W0.astype(np.float64), 0.0, 0.0
    for t, g in enumerate(GRADS, start=1):  # the hand-computed steps' moments (beta1=0.8, beta2=0.95, decay 0.1)
        g = g + 0.1 * w
        m, v = 0.8 * m + 0.2 * g, 0.95 * v + 0.05 * g * g
        w = w - 0.05 * (m / (1 - 0.8 ** t)) / (np.sqrt(v / (1 - 0.95 ** t)) + 1e-8)
    np.testing.assert_allclose(opt.m[p].numpy(), m, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(opt.v[p].numpy(), v, rtol=1e-5, atol=1e-6)


def test_fused_step_takes_a_strided_gradient(monkeypatch):
    # A gradient that is a transposed view (not compact) is read as its logical values.
    dev = _native_cpu()
    taken = _use_path(monkeypatch, "fused")
    opt, p = make("adam", dev)
    for g in GRADS:
        grad = ndl.ops.transpose(ndl.Tensor(g.T.copy(), device=dev, requires_grad=False))
        assert not grad.realize_cached_data().is_compact()
        p.grad = grad
        opt.step()
    assert taken == ["adam_step"] * len(GRADS)
    check([p.numpy()], CASES["adam"][1][-1:])


def test_operands_of_another_dtype_take_the_composed_path(monkeypatch):
    # A backend's kernel is used only when weights, gradient and state share device and dtype.
    calls = []
    monkeypatch.setitem(NUMPY._kernels, "sgd_step", lambda *args: calls.append(args))
    monkeypatch.setitem(NUMPY.__dict__, "_fused_dtypes", ("float32", "float64"))  # as a backend's FUSED_DTYPES
    w = NUMPY.full((3,), 1.0, dtype="float64")
    assert optimizer._fused_kernel("sgd_step", w, w.astype("float32"), ()) is None
    assert optimizer._fused_kernel("sgd_step", w, w, (None, w.astype("float32"))) is None
    assert optimizer._fused_kernel("sgd_step", w, w, (None, w)) is not None
    p = nn.Parameter(np.ones(3), device=NUMPY, dtype="float64")
    opt = optim.SGD([p], lr=0.5)
    p.grad = ndl.Tensor(np.full(3, 2.0, dtype=np.float32), device=NUMPY, dtype="float32", requires_grad=False)
    opt.step()  # float64 weights, float32 gradient: the gradient is cast to the weights' dtype first
    assert len(calls) == 1 and calls[0][1].dtype == "float64"
    assert p.dtype == "float64"
