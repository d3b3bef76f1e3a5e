"""Dropout: the course's mask (rand <= 1-p from numpy's global generator), scaling, eval."""
import numpy as np
import pytest

import needle as ndl
from needle import nn


def test_dropout_mask_and_scaling_match_numpy():
    x = np.random.RandomState(0).randn(50, 20).astype(np.float32)
    drop = nn.Dropout(p=0.3)
    np.random.seed(7)
    X = ndl.Tensor(x)
    out = drop(X)
    np.random.seed(7)
    keep = np.random.rand(50, 20) <= 0.7
    np.testing.assert_allclose(out.numpy(), x * keep / 0.7, rtol=1e-5, atol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(X.grad.numpy(), keep / 0.7, rtol=1e-5, atol=1e-6)


def test_dropout_eval_and_edge_probabilities():
    x = np.random.RandomState(1).randn(4, 5).astype(np.float32)
    drop = nn.Dropout(0.5).eval()
    assert not drop.training
    np.testing.assert_array_equal(drop(ndl.Tensor(x)).numpy(), x)
    np.testing.assert_array_equal(nn.Dropout(0.0)(ndl.Tensor(x)).numpy(), x)
    np.testing.assert_array_equal(nn.Dropout(1.0)(ndl.Tensor(x)).numpy(), np.zeros_like(x))
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="p must be in"):
            nn.Dropout(p)


def test_dropout_follows_train_eval_of_parent():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.9))
    model.eval()
    assert [m.training for m in model.modules] == [False, False]
    model.train()
    assert model.training and all(m.training for m in model.modules)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_dropout_draws_its_mask_for_every_p_in_training(p):
    # The course draws rand(shape) even for p = 0: later seeded draws must line up with it.
    x = ndl.Tensor(np.ones((3, 4), np.float32))
    np.random.seed(11)
    nn.Dropout(p)(x)
    after = np.random.rand()
    np.random.seed(11)
    np.random.rand(3, 4)
    assert after == np.random.rand()


def test_dropout_in_eval_draws_nothing():
    np.random.seed(5)
    nn.Dropout(0.5).eval()(ndl.Tensor(np.ones((3, 4), np.float32)))
    after = np.random.rand()
    np.random.seed(5)
    assert after == np.random.rand()
