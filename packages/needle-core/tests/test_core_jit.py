"""needle.jit without nn: replays against numpy, per-signature recording, fresh outputs, the
host-read guard and the errors for bad input."""
import numpy as np
import pytest

import needle as ndl
from needle._jit import CaptureError

DEVICES = [ndl.cpu_numpy()] + ([ndl.cpu()] if ndl.cpu().enabled() and ndl.cpu() is not ndl.cpu_numpy() else [])


@pytest.fixture(params=DEVICES, ids=repr)
def dev(request):
    return request.param


def tensor(a, dev, requires_grad=False):
    return ndl.Tensor(np.asarray(a, dtype=np.float32), device=dev, requires_grad=requires_grad)


def test_replay_computes_with_the_new_inputs(dev):
    rng = np.random.RandomState(0)
    w_np = rng.randn(4, 3).astype(np.float32)
    w = tensor(w_np, dev)

    def f(x, y):
        h = (x @ w).relu()
        return (h * y).sum(axes=(1,)), h.exp() - 1.0

    g = ndl.jit(f)
    for _ in range(5):
        x_np, y_np = rng.randn(5, 4).astype(np.float32), rng.randn(5, 3).astype(np.float32)
        s, e = g(tensor(x_np, dev), tensor(y_np, dev))
        h = np.maximum(x_np @ w_np, 0)
        np.testing.assert_allclose(s.numpy(), (h * y_np).sum(1), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(e.numpy(), np.exp(h) - 1, rtol=1e-5, atol=1e-5)
    (plan,) = g.plans.values()
    assert plan.plan.kernel_count > 0


def test_replay_runs_no_python_of_fn(dev):
    calls = []

    def f(x):
        calls.append(1)
        return x * 2.0

    g = ndl.jit(f)
    for i in range(5):
        np.testing.assert_array_equal(g(tensor([i, 1.0], dev)).numpy(), [2.0 * i, 2.0])
    assert len(calls) == 2  # an eager warm-up call and the recorded one


def test_new_signatures_record_again_and_the_cache_is_bounded(dev):
    g = ndl.jit(lambda x: x + 1.0)
    for n in range(1, 12):
        for _ in range(3):
            np.testing.assert_array_equal(g(tensor(np.arange(n), dev)).numpy(), np.arange(n) + 1.0)
    from needle import _jit
    assert len(g.plans) == _jit.MAX_SIGNATURES


def test_outputs_are_fresh_each_call(dev):
    g = ndl.jit(lambda x: (x * 3.0, x))
    first, same = g(tensor([1.0, 2.0], dev))
    for v in ([5.0, 6.0], [7.0, 8.0], [9.0, 1.0]):
        out, back = g(tensor(v, dev))
        np.testing.assert_array_equal(out.numpy(), np.float32(v) * 3)
        np.testing.assert_array_equal(back.numpy(), v)
    np.testing.assert_array_equal(first.numpy(), [3.0, 6.0])  # never overwritten by later calls
    np.testing.assert_array_equal(same.numpy(), [1.0, 2.0])


def test_python_scalars_and_structures_come_back(dev):
    g = ndl.jit(lambda x, k: {"y": [x * k, k], "n": None})
    for _ in range(3):
        out = g(tensor([1.0, 2.0], dev), 2.0)
        np.testing.assert_array_equal(out["y"][0].numpy(), [2.0, 4.0])
        assert out["y"][1] == 2.0 and out["n"] is None
    out = g(tensor([1.0, 2.0], dev), 3.0)  # another scalar value: another signature, not a stale one
    np.testing.assert_array_equal(out["y"][0].numpy(), [3.0, 6.0])


def test_gradients_of_gradients(dev):
    # d/dx of sum(d/dx sum(x**3)) = d/dx sum(3 x**2) = 6 x
    def f(x):
        y = (x * x * x).sum()
        y.backward()
        first = x.grad
        x.grad = None
        first.sum().backward()
        return first, x.grad

    g = ndl.jit(f)
    for v in ([1.0, -2.0], [0.5, 3.0], [2.0, 2.0], [-1.0, 4.0]):
        x_np = np.float32(v)
        first, second = g(tensor(v, dev, requires_grad=True))
        np.testing.assert_allclose(first.numpy(), 3 * x_np ** 2, rtol=1e-6)
        np.testing.assert_allclose(second.numpy(), 6 * x_np, rtol=1e-6)


@pytest.mark.parametrize("read", ["numpy", "item", "bool", "float", "tolist"])
def test_reading_values_while_recording_is_a_clear_error(dev, read):
    def f(x):
        s = x.sum()
        if read == "numpy":
            s.numpy()
        elif read == "item":
            s.item()
        elif read == "bool":
            bool(s > 0)
        elif read == "float":
            float(s)
        else:
            s.tolist()
        return s

    g = ndl.jit(f)
    g(tensor([1.0], dev))  # the eager warm-up call reads freely
    with pytest.raises(CaptureError, match=r"reads a tensor's values.*test_core_jit\.py:\d+.*move the read out of fn"):
        g(tensor([1.0], dev))


def test_the_device_is_restored_after_a_failed_recording(dev):
    def f(x):
        return x * float(x.sum())

    g = ndl.jit(f)
    g(tensor([1.0], dev))
    with pytest.raises(CaptureError):
        g(tensor([1.0], dev))
    assert float((tensor([2.0], dev) * 2.0).sum()) == 4.0  # kernels run for real again
    assert "to_numpy" not in vars(type(dev))


def test_bad_input_errors(dev):
    with pytest.raises(TypeError, match="expected a callable"):
        ndl.jit(3)
    g = ndl.jit(lambda x: object())
    with pytest.raises(TypeError, match="returned a object at result"):
        g(tensor([1.0], dev))
    with pytest.raises(TypeError, match="numpy array argument"):
        ndl.jit(lambda a: a)(np.ones(2))


def test_inputs_on_another_device_than_the_state_are_a_clear_error():
    if len(DEVICES) < 2:
        pytest.skip("needs needle-cpu besides the numpy backend")
    w = tensor([1.0, 2.0], DEVICES[1])

    def f(x):
        w.cached_data.iadd(x.realize_cached_data())  # state updated in place
        return x * 1.0

    g = ndl.jit(f)
    for _ in range(3):
        g(tensor([1.0, 1.0], DEVICES[1]))
    with pytest.raises(ValueError, match=r"input 0 is on cpu_numpy\(\).*state.*cpu\(\)"):
        g(tensor([1.0, 1.0], DEVICES[0]))


def test_state_replaced_instead_of_updated_is_a_clear_error(dev):
    box = {"w": tensor([1.0, 2.0], dev)}

    def f(x):
        box["w"] = box["w"] + x  # a new array each call: a replay would read the old one
        return box["w"]

    g = ndl.jit(f)
    g(tensor([1.0, 1.0], dev))
    with pytest.raises(CaptureError, match="updated in place"):
        g(tensor([1.0, 1.0], dev))


def test_random_draws_are_drawn_again_in_the_eager_order(dev):
    def f(x):
        return x + ndl.init.rand(3, device=x.device), x * ndl.init.randn(3, device=x.device)

    results = []
    for fn in (f, ndl.jit(f)):
        np.random.seed(7)
        results.append([[a.numpy() for a in fn(tensor([1.0, 2.0, 3.0], dev))] for _ in range(5)]
                       + [np.random.rand(2)])
    for eager, replayed in zip(results[0], results[1]):
        for a, b in zip(eager, replayed):
            np.testing.assert_array_equal(a, b)


def test_draws_outside_the_device_are_refused(dev):
    def f(x):
        return x + ndl.Tensor(np.random.rand(2).astype(np.float32), device=x.device)

    g = ndl.jit(f)
    g(tensor([1.0, 2.0], dev))
    with pytest.raises(CaptureError, match="drew random numbers"):
        g(tensor([1.0, 2.0], dev))


def test_temporaries_share_memory(dev):
    def f(x):
        for _ in range(20):
            x = (x * 1.5 + 1.0).relu()
        return x

    g = ndl.jit(f)
    x_np = np.linspace(-1, 1, 1000).astype(np.float32)
    for _ in range(3):
        out = g(tensor(x_np, dev))
    want = x_np
    for _ in range(20):
        want = np.maximum(want * np.float32(1.5) + np.float32(1.0), 0)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-6)
    (entry,) = g.plans.values()
    assert entry.plan.arena_bytes <= 3 * 4000 < entry.plan.temporary_bytes


def test_fused_elementwise_runs_equal_eager_bit_for_bit():
    dev = ndl.cpu()
    if not dev.enabled() or getattr(dev.mod, "ewise_program", None) is None:
        pytest.skip("needs needle-cpu with ewise_program")
    rng = np.random.RandomState(3)

    def f(x, y):
        z = ((x * 1.7 + y) / (y.abs() + 0.5)).relu()
        t = (z - x).exp() * 0.25 + (x.tanh() - y.sigmoid() * 3.0)
        return t - z ** 2.0 + 1.0 / (z + 1.0) + ndl.maximum(t, z)

    for n in (1, 7, 4095, 4096, 4097, 20000):
        g = ndl.jit(f)
        for _ in range(3):
            x_np, y_np = rng.randn(n).astype(np.float32), rng.randn(n).astype(np.float32)
            got = g(tensor(x_np, dev), tensor(y_np, dev)).numpy()
            want = f(tensor(x_np, dev), tensor(y_np, dev)).numpy()
            np.testing.assert_array_equal(got, want)
        (entry,) = g.plans.values()
        assert entry.plan.fused_kernels >= 4, entry.plan.fused_kernels


def test_a_method_can_be_captured(dev):
    class Scaler:
        def __init__(self, k):
            self.k = k

        @ndl.jit
        def apply(self, x):
            return x * self.k

    two, three = Scaler(2.0), Scaler(3.0)
    for _ in range(3):
        np.testing.assert_array_equal(two.apply(tensor([1.0, 2.0], dev)).numpy(), [2.0, 4.0])
        np.testing.assert_array_equal(three.apply(tensor([1.0, 2.0], dev)).numpy(), [3.0, 6.0])
