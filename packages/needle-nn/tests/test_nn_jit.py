"""needle.jit on whole training steps: parameters, optimiser state and BatchNorm statistics after
captured steps equal those after eager steps bit for bit (Dropout's masks included), and the
in-place optimisers equal the algorithm they replaced (new arrays each step) bit for bit."""
import numpy as np
import pytest

import needle as ndl
from needle import nn, optim

DEVICES = [ndl.cpu_numpy()] + ([ndl.cpu()] if ndl.cpu().enabled() and ndl.cpu() is not ndl.cpu_numpy() else [])

OPTIMIZERS = {
    "adam": lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.01),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.01),
    "sgd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=0.01),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5),
}


@pytest.fixture(params=DEVICES, ids=repr)
def dev(request):
    return request.param


def _mlp_step(dev, opt_name, seed=0):
    np.random.seed(seed)
    model = nn.Sequential(nn.Linear(12, 16, device=dev), nn.BatchNorm1d(16, device=dev), nn.ReLU(),
                          nn.Dropout(0.25), nn.Linear(16, 4, device=dev))
    opt = OPTIMIZERS[opt_name](model.parameters())
    loss_fn = nn.SoftmaxLoss()

    def step(x, y):
        opt.reset_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return model, opt, step


def _batches(dev, n):
    rng = np.random.RandomState(1)
    return [(ndl.Tensor(rng.randn(8, 12).astype(np.float32), device=dev, requires_grad=False),
             ndl.Tensor(rng.randint(0, 4, 8).astype(np.float32), device=dev, requires_grad=False))
            for _ in range(n)]


def _state(model):
    """Parameters, their gradients (a replay updates the .grad arrays too) and buffers."""
    return ([p.numpy() for p in model.parameters()] + [p.grad.numpy() for p in model.parameters()]
            + [b.numpy() for _, b in model.named_buffers()])


@pytest.mark.parametrize("opt_name", sorted(OPTIMIZERS))
def test_captured_training_steps_equal_eager_ones_bit_for_bit(dev, opt_name):
    steps = 100 if opt_name == "adam" else 30
    data = _batches(dev, 10)
    runs = []
    for capture in (False, True):
        model, opt, step = _mlp_step(dev, opt_name)
        run = ndl.jit(step) if capture else step
        np.random.seed(3)  # Dropout's masks: the same draws in the same order
        losses = [run(*data[i % len(data)]).numpy() for i in range(steps)]
        runs.append((_state(model), losses, np.random.rand(4)))
    (eager, eager_losses, eager_rng), (captured, captured_losses, captured_rng) = runs
    for a, b in zip(eager, captured):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(eager_losses, captured_losses)
    np.testing.assert_array_equal(eager_rng, captured_rng)


def test_a_captured_step_keeps_the_buffers_and_changes_the_values(dev):
    model, opt, step = _mlp_step(dev, "adam")
    run = ndl.jit(step)
    data = _batches(dev, 3)
    run(*data[0])
    run(*data[1])
    handles = [p.realize_cached_data()._handle for p in model.parameters()]
    before = _state(model)
    run(*data[2])  # replayed
    assert [p.realize_cached_data()._handle for p in model.parameters()] == handles
    assert all(not np.array_equal(a, b) for a, b in zip(before, _state(model)))
    assert opt.t == 3  # the host step of the optimiser ran in the replay


def test_a_learning_rate_schedule_reaches_the_replay(dev):
    runs = []
    for capture in (False, True):
        model, opt, step = _mlp_step(dev, "sgd")
        run = ndl.jit(step) if capture else step
        np.random.seed(3)
        for i, (x, y) in enumerate(_batches(dev, 6)):
            opt.lr = 0.1 / (1 + i)
            run(x, y)
        runs.append(_state(model))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_eval_mode_reads_the_running_statistics_updated_by_replays(dev):
    model, _, step = _mlp_step(dev, "sgd")
    run = ndl.jit(step)
    for x, y in _batches(dev, 4):
        run(x, y)
    bn = model.modules[1]
    mean = bn.running_mean.numpy()
    assert not np.array_equal(mean, np.zeros_like(mean))
    model.eval()
    x = _batches(dev, 1)[0][0]
    h = model.modules[0](x).numpy()
    want = (h - mean) / np.sqrt(bn.running_var.numpy() + bn.eps) * bn.weight.numpy() + bn.bias.numpy()
    np.testing.assert_allclose(model.modules[1](model.modules[0](x)).numpy(), want, rtol=1e-4, atol=1e-5)


# ---- the in-place optimisers against the algorithm they replaced -------------------------------
def _old_adam(params, grads_per_step, lr, b1, b2, eps, decay):
    """Adam as needle.optim computed it before the in-place update (a new weight array each step),
    on the numpy backend's NDArrays: the reference for bit-for-bit equality."""
    ws = [p.realize_cached_data().copy() for p in params]
    m, v = [None] * len(ws), [None] * len(ws)
    for t, grads in enumerate(grads_per_step, start=1):
        c1, c2 = 1 - b1 ** t, 1 - b2 ** t
        for i, g in enumerate(grads):
            w = ws[i]
            g = (w * decay).iadd(g) if decay else g
            if m[i] is None:
                m[i], v[i] = g * (1 - b1), (g * g).imul(1 - b2)
            else:
                m[i].imul(b1).iadd(g * (1 - b1))
                v[i].imul(b2).iadd((g * g).imul(1 - b2))
            root2 = c2 ** 0.5
            ws[i] = w - (m[i] * (lr * root2 / c1)).idiv(v[i].sqrt().iadd(eps * root2))
    return [w.numpy() for w in ws]


def _old_sgd(params, grads_per_step, lr, momentum, decay):
    ws = [p.realize_cached_data().copy() for p in params]
    u = [None] * len(ws)
    for grads in grads_per_step:
        for i, g in enumerate(grads):
            w = ws[i]
            if decay:
                g = g + w * decay
            if momentum:
                if u[i] is None:
                    u[i] = g * (1 - momentum)
                else:
                    u[i].imul(momentum).iadd(g * (1 - momentum))
                g = u[i]
            ws[i] = w - g * lr
    return [w.numpy() for w in ws]


@pytest.mark.parametrize("which", ["adam", "sgd"])
def test_in_place_optimisers_equal_the_replaced_algorithm_bit_for_bit(which):
    dev = ndl.cpu_numpy()  # the composed update (no fused kernels)
    rng = np.random.RandomState(0)
    params = [nn.Parameter(rng.randn(*s).astype(np.float32), device=dev) for s in ((5, 3), (3,))]
    grads_np = [[rng.randn(*p.shape).astype(np.float32) for p in params] for _ in range(20)]
    grads_nd = [[ndl.Tensor(g, device=dev).realize_cached_data() for g in step] for step in grads_np]
    if which == "adam":
        want = _old_adam(params, grads_nd, 0.01, 0.9, 0.999, 1e-8, 0.01)
        opt = optim.Adam(params, lr=0.01, weight_decay=0.01)
    else:
        want = _old_sgd(params, grads_nd, 0.05, 0.9, 0.01)
        opt = optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=0.01)
    for step in grads_np:
        for p, g in zip(params, step):
            p.grad = ndl.Tensor(g, device=dev, requires_grad=False)
        opt.step()
    for p, w in zip(params, want):
        np.testing.assert_array_equal(p.numpy(), w)


@pytest.mark.parametrize("id_dtype", ["int64", "float32"])
def test_lstm_language_model_step_is_captured(dev, id_dtype):
    # nn.Embedding reads a Tensor's ids from its own buffer (checked on the host while recording),
    # so each replay gathers the rows of that call's ids.
    def build():
        np.random.seed(0)
        emb = nn.Embedding(20, 8, device=dev)
        lstm = nn.LSTM(8, 16, device=dev)
        head = nn.Linear(16, 20, device=dev)
        params = emb.parameters() + lstm.parameters() + head.parameters()
        opt = optim.SGD(params, lr=0.5)
        loss_fn = nn.SoftmaxLoss()

        def step(x, y):
            opt.reset_grad()
            out, _ = lstm(emb(x))
            loss = loss_fn(head(out.reshape((-1, 16))), y)
            loss.backward()
            opt.step()
            return loss

        return params, step

    rng = np.random.RandomState(2)
    data = [(ndl.Tensor(rng.randint(0, 20, (5, 3)), device=dev, dtype=id_dtype, requires_grad=False),
             ndl.Tensor(rng.randint(0, 20, 15).astype(np.float32), device=dev, requires_grad=False))
            for _ in range(4)]
    runs = []
    for capture in (False, True):
        params, step = build()
        run = ndl.jit(step) if capture else step
        losses = [run(*data[i % 4]).numpy() for i in range(8)]
        runs.append(([p.numpy() for p in params], losses))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
