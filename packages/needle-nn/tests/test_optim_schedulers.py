"""Learning-rate schedules against hand-computed sequences; the optimiser uses the new rate."""
import math

import numpy as np
import pytest

import needle as ndl
from needle import nn, optim


def sequence(scheduler, n):
    out = [scheduler.get_lr()]
    for _ in range(n):
        out.append(scheduler.step())
    return out


def sgd(lr=1.0):
    return optim.SGD([nn.Parameter(np.zeros(1))], lr=lr)


def test_step_lr():
    opt = sgd(1.0)
    lrs = sequence(optim.StepLR(opt, step_size=2, gamma=0.5), 6)
    np.testing.assert_allclose(lrs, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.125])
    assert opt.lr == pytest.approx(0.125)


def test_cosine_annealing():
    opt = sgd(1.0)
    lrs = sequence(optim.CosineAnnealingLR(opt, T_max=4, eta_min=0.1), 5)
    half = (1 + math.sqrt(0.5)) / 2  # (1 + cos(pi/4)) / 2
    np.testing.assert_allclose(lrs, [1.0, 0.1 + 0.9 * half, 0.55, 0.1 + 0.9 * (1 - half), 0.1, 0.1])


def test_linear_warmup():
    opt = sgd(2.0)
    sched = optim.LinearWarmup(opt, warmup_steps=4, start_factor=0.2)
    assert opt.lr == pytest.approx(0.4)  # the first step already uses the warm-up rate
    np.testing.assert_allclose(sequence(sched, 5), [0.4, 0.8, 1.2, 1.6, 2.0, 2.0])


def test_optimizer_uses_scheduled_rate():
    p = nn.Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    sched = optim.StepLR(opt, step_size=1, gamma=0.1)
    for _ in range(3):
        p.grad = ndl.Tensor(np.ones(1, dtype=np.float32), requires_grad=False)
        opt.step()
        sched.step()
    np.testing.assert_allclose(p.numpy(), [-(1.0 + 0.1 + 0.01)], rtol=1e-6)


def test_scheduler_argument_errors():
    with pytest.raises(ValueError, match="step_size"):
        optim.StepLR(sgd(), step_size=0)
    with pytest.raises(ValueError, match="T_max"):
        optim.CosineAnnealingLR(sgd(), T_max=0)
    with pytest.raises(ValueError, match="start_factor"):
        optim.LinearWarmup(sgd(), warmup_steps=3, start_factor=2.0)
