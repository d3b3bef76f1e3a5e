"""Gradient checkpointing (needle.utils.checkpoint) with modules: Dropout, BatchNorm, parameters.

The oracle is the same model run without checkpointing (same seeds): outputs, gradients of the
input and of every parameter, BatchNorm's running statistics and numpy's generator afterwards
must all be equal.
"""
import numpy as np
import pytest

import needle as ndl
from needle import nn
from needle.utils.checkpoint import checkpoint, checkpoint_sequential


def _device(name):
    dev = ndl.device(name)
    if not dev.enabled():
        pytest.skip(f"backend {name} is not available: {dev.disabled_reason}")
    return dev


@pytest.fixture(params=["numpy", "cpu"])
def device(request):
    return _device(request.param)


def _model(device):
    np.random.seed(0)
    return nn.Sequential(
        nn.Linear(6, 12, device=device), nn.ReLU(), nn.Dropout(0.3), nn.BatchNorm1d(12, device=device),
        nn.Linear(12, 12, device=device), nn.Tanh(), nn.Dropout(0.2), nn.BatchNorm1d(12, device=device),
        nn.Linear(12, 3, device=device))


def _run(device, segments, eval_mode=False):
    model = _model(device)
    if eval_mode:
        model.eval()
    x = ndl.Tensor(np.random.RandomState(1).randn(7, 6).astype(np.float32), device=device, requires_grad=True)
    np.random.seed(42)
    y = model(x) if segments is None else checkpoint_sequential(model, segments, x)
    (y * y).sum().backward()
    return {"y": y.numpy(), "x.grad": x.grad.numpy(), "rng after": np.random.rand(3),
            **{f"grad {n}": p.grad.numpy() for n, p in model.named_parameters()},
            **{f"buffer {n}": b.numpy() for n, b in model.named_buffers()}}


@pytest.mark.parametrize("segments", [1, 2, 3, 9])
def test_checkpoint_sequential_matches_plain_run(device, segments):
    want, got = _run(device, None), _run(device, segments)
    assert want.keys() == got.keys()
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_checkpoint_sequential_eval_mode(device):
    want, got = _run(device, None, eval_mode=True), _run(device, 3, eval_mode=True)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)


def test_checkpoint_of_a_module_and_of_a_closure(device):
    """Parameters reached through a module call or a closure get their gradients as without checkpointing."""
    def run(wrap):
        np.random.seed(3)
        lin, drop = nn.Linear(5, 4, device=device), nn.Dropout(0.5)
        w = ndl.Tensor(np.random.randn(4, 2).astype(np.float32), device=device)
        x = ndl.Tensor(np.random.randn(6, 5).astype(np.float32), device=device)
        block = lambda t: ndl.relu(drop(lin(t))) @ w  # noqa: E731
        np.random.seed(11)
        h = wrap(lin, x)
        out = wrap(block, x) + h.sum()
        out.sum().backward()
        return [out.numpy(), x.grad.numpy(), w.grad.numpy(), lin.weight.grad.numpy(), lin.bias.grad.numpy()]
    want, got = run(lambda f, *a: f(*a)), run(checkpoint)
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_checkpoint_sequential_of_a_list_of_callables(device):
    np.random.seed(5)
    layers = [nn.Linear(4, 4, device=device), ndl.tanh, nn.Linear(4, 2, device=device)]
    x0 = np.random.randn(3, 4).astype(np.float32)

    def run(seg):
        x = ndl.Tensor(x0, device=device)
        y = layers[2](ndl.tanh(layers[0](x))) if seg is None else checkpoint_sequential(layers, seg, x)
        y.sum().backward()
        return [y.numpy(), x.grad.numpy(), layers[0].weight.grad.numpy(), layers[2].weight.grad.numpy()]
    want = run(None)
    for seg in (1, 2, 3):
        for a, b in zip(want, run(seg)):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_checkpoint_under_no_grad_records_nothing(device):
    model = _model(device)
    x = ndl.Tensor(np.ones((2, 6), dtype=np.float32), device=device)
    with ndl.no_grad():
        y = checkpoint_sequential(model, 3, x)
        z = checkpoint(model, x)
    assert not y.requires_grad and y.is_leaf() and not z.requires_grad


def test_bad_arguments():
    model = nn.Sequential(nn.ReLU(), nn.ReLU())
    x = ndl.Tensor(np.ones((2, 2), dtype=np.float32))
    with pytest.raises(TypeError, match="function must be callable, got int"):
        checkpoint(3, x)
    for segments in (0, -1, 3):
        with pytest.raises(ValueError, match=r"segments must be in \[1, 2\]"):
            checkpoint_sequential(model, segments, x)
    with pytest.raises(TypeError, match="segments must be an int"):
        checkpoint_sequential(model, 1.5, x)
    with pytest.raises(TypeError, match=r"functions\[1\] is a str, not callable"):
        checkpoint_sequential([nn.ReLU(), "relu"], 1, x)
    with pytest.raises(TypeError, match="must return a Tensor"):
        checkpoint(lambda t: t.numpy(), x)
