"""needle.init: numpy's global generator in the documented order, and the course's formulas."""
import math

import numpy as np
import pytest

import needle as ndl
from needle import init

NP = ndl.cpu_numpy()


def test_rand_and_randn_follow_numpy_global_generator():
    np.random.seed(3)
    expected_u = np.random.rand(4, 5) * 3.0 - 1.0
    expected_n = np.random.randn(2, 3) * 0.5 + 2.0
    np.random.seed(3)
    u = init.rand(4, 5, low=-1.0, high=2.0)
    n = init.randn(2, 3, mean=2.0, std=0.5)
    np.testing.assert_allclose(u.numpy(), expected_u, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(n.numpy(), expected_n, rtol=1e-6, atol=1e-6)
    assert u.dtype == n.dtype == "float32"
    assert not u.requires_grad


def test_seeded_runs_are_reproducible():
    def draw():
        return [init.kaiming_uniform(5, 7).numpy(), init.xavier_normal(3, 4).numpy(),
                init.randb(10, p=0.3).numpy(), init.randn(6).numpy()]

    np.random.seed(11)
    first = draw()
    ndl.manual_seed(11)
    second = draw()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_randb_is_rand_le_p():
    np.random.seed(4)
    expected = np.random.rand(50, 20) <= 0.3
    np.random.seed(4)
    got = init.randb(50, 20, p=0.3)
    np.testing.assert_array_equal(got.numpy(), expected.astype(np.float32))


def test_constant_ones_zeros_like():
    c = init.constant(2, 3, c=4.5, requires_grad=True)
    np.testing.assert_array_equal(c.numpy(), np.full((2, 3), 4.5))
    assert c.requires_grad and c.dtype == "float32"
    np.testing.assert_array_equal(init.ones(3).numpy(), np.ones(3))
    np.testing.assert_array_equal(init.zeros(1, 2).numpy(), np.zeros((1, 2)))
    x = ndl.Tensor(np.ones((2, 2)), device=NP)  # float64 on the numpy backend
    z, o = init.zeros_like(x), init.ones_like(x)
    assert z.shape == o.shape == (2, 2) and z.dtype == o.dtype == "float64" and z.device == NP
    np.testing.assert_array_equal(o.numpy(), np.ones((2, 2)))
    assert init.zeros(2, dtype="float64", device=NP).dtype == "float64"


def test_one_hot():
    got = init.one_hot(4, ndl.Tensor(np.array([2.0, 0.0, 3.0]), device=NP), device=NP)
    np.testing.assert_array_equal(got.numpy(), np.eye(4)[[2, 0, 3]])
    np.testing.assert_array_equal(init.one_hot(3, np.array([1, 1])).numpy(), [[0, 1, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match="labels"):
        init.one_hot(3, np.array([0.5]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        init.one_hot(3, np.array([3]))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, -1.0, 2.5])
def test_one_hot_rejects_labels_that_are_not_class_indices(bad):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an error, not a numpy cast warning first
        with pytest.raises(ValueError, match="labels"):
            init.one_hot(3, np.array([0.0, bad]), device=NP)



def test_xavier_uniform_bound_and_values():
    fan_in, fan_out, gain = 40, 60, 1.5
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    np.random.seed(0)
    expected = np.random.rand(fan_in, fan_out) * 2 * a - a
    np.random.seed(0)
    w = init.xavier_uniform(fan_in, fan_out, gain=gain).numpy()
    assert w.shape == (fan_in, fan_out)
    np.testing.assert_allclose(w, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(w).max() <= a and np.abs(w).max() > 0.98 * a


def test_xavier_normal_std():
    fan_in, fan_out = 300, 200
    np.random.seed(1)
    w = init.xavier_normal(fan_in, fan_out, gain=2.0).numpy()
    std = 2.0 * math.sqrt(2.0 / (fan_in + fan_out))
    assert abs(w.std() / std - 1) < 0.02
    assert abs(w.mean()) < 0.01 * std * 10


def test_kaiming_uniform_bound_and_shape():
    fan_in, fan_out = 50, 300
    bound = math.sqrt(2.0) * math.sqrt(3.0 / fan_in)
    np.random.seed(2)
    expected = np.random.rand(fan_in, fan_out) * 2 * bound - bound
    np.random.seed(2)
    w = init.kaiming_uniform(fan_in, fan_out).numpy()
    np.testing.assert_allclose(w, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.03
    conv = init.kaiming_uniform(3 * 9, 8 * 9, shape=(3, 3, 3, 8))
    assert conv.shape == (3, 3, 3, 8)
    assert np.abs(conv.numpy()).max() <= math.sqrt(2.0) * math.sqrt(3.0 / 27)


def test_kaiming_normal_std():
    fan_in = 200
    np.random.seed(3)
    w = init.kaiming_normal(fan_in, 400).numpy()
    assert abs(w.std() / (math.sqrt(2.0) / math.sqrt(fan_in)) - 1) < 0.02
    with pytest.raises(ValueError, match="nonlinearity"):
        init.kaiming_normal(3, 4, nonlinearity="swish")


def test_init_kwargs_device_dtype_requires_grad():
    w = init.kaiming_uniform(3, 4, device=NP, dtype="float64", requires_grad=True)
    assert w.device == NP and w.dtype == "float64" and w.requires_grad and w.is_leaf()


_DEVICES = [NP] + ([ndl.cpu()] if ndl.cpu().enabled() and ndl.cpu() != NP else [])


@pytest.mark.parametrize("device", _DEVICES, ids=str)
def test_one_hot_of_labels_already_on_the_device(device):
    # Tensor labels on the device take the on-device path: same rows as numpy's identity.
    labels = np.array([[3, 0, 2], [1, 1, 3]], dtype=np.float32)
    got = init.one_hot(4, ndl.Tensor(labels, device=device, requires_grad=False), device=device)
    assert got.shape == (2, 3, 4) and got.device == device and got.dtype == "float32"
    np.testing.assert_array_equal(got.numpy(), np.eye(4)[labels.astype(int)])


@pytest.mark.parametrize("device", _DEVICES, ids=str)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0, 4.0, 1.5])
def test_one_hot_of_bad_labels_on_the_device_raises(device, bad):
    labels = ndl.Tensor(np.array([0.0, bad], dtype=np.float32), device=device, requires_grad=False)
    with pytest.raises(ValueError, match="labels"):
        init.one_hot(4, labels, device=device)


def test_randb_is_bool_by_default_and_follows_the_draws():
    np.random.seed(3)
    want = np.random.rand(4, 5) <= 0.3
    np.random.seed(3)
    mask = ndl.init.randb(4, 5, p=0.3, device=ndl.cpu_numpy())
    assert mask.dtype == "bool" and not mask.requires_grad
    np.testing.assert_array_equal(mask.numpy(), want)
    np.random.seed(3)
    as_float = ndl.init.randb(4, 5, p=0.3, device=ndl.cpu_numpy(), dtype="float32")
    assert as_float.dtype == "float32"
    np.testing.assert_array_equal(as_float.numpy(), want.astype(np.float32))
