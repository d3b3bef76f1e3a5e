"""A training step must not grow the graph or leak tensors (ndl.autograd.TENSOR_COUNTER)."""
import gc

import numpy as np
import pytest

import needle as ndl
from needle import nn, optim


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9, weight_decay=1e-4),
    lambda ps: optim.Adam(ps, lr=0.001, weight_decay=1e-4),
    lambda ps: optim.AdamW(ps),
    lambda ps: optim.RMSprop(ps, momentum=0.5),
], ids=["sgd-momentum", "adam", "adamw", "rmsprop"])
def test_live_tensor_count_is_flat_over_100_steps(make):
    np.random.seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.BatchNorm1d(16), nn.Dropout(0.1), nn.Linear(16, 4))
    opt = make(model.parameters())
    X = ndl.Tensor(np.random.randn(32, 8).astype(np.float32), requires_grad=False)
    y = np.random.randint(0, 4, size=32)
    loss_fn = nn.SoftmaxLoss()

    def train_step():
        opt.reset_grad()
        loss = loss_fn(model(X), y)
        loss.backward()
        optim.clip_grad_norm(model.parameters(), 10.0)
        opt.step()

    # With the gradients kept, each .grad may hold its forward graph (a constant amount);
    # after reset_grad nothing but the model, its buffers and the inputs may stay alive.
    kept, after_reset = [], []
    gc.collect()
    gc.disable()  # counts must fall by reference counting alone: a cycle would show up as growth
    try:
        for _ in range(101):
            train_step()
            kept.append(ndl.autograd.TENSOR_COUNTER)
            opt.reset_grad()
            after_reset.append(ndl.autograd.TENSOR_COUNTER)
    finally:
        gc.enable()
    assert min(kept) == max(kept), f"live tensors with grads kept grew: {kept[:3]} ... {kept[-3:]}"
    assert min(after_reset) == max(after_reset), f"live tensors grew: {after_reset[:3]} ... {after_reset[-3:]}"
    for p in model.parameters():
        assert p.is_leaf() and p.inputs == []
