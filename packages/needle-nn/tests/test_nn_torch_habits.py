"""API.md "PyTorch habits" in needle-nn: Module.to / zero_grad / named_modules / buffers, Adam's
``betas=``, and ``needle.nn.functional``.

Each is checked against numpy or hand-derived values (so these run without PyTorch); the
``torch_`` tests also run the same call in PyTorch where it is installed.
"""
import warnings

import numpy as np
import pytest

import needle as ndl
import needle.nn.functional as F
from needle import nn, optim

RNG = np.random.default_rng(1)


def T(x, requires_grad=True, dtype=None):
    return ndl.Tensor(np.asarray(x), dtype=dtype, requires_grad=requires_grad)


def _model():
    np.random.seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Sequential(nn.ReLU(), nn.Linear(4, 2)))


# ---- Module ---------------------------------------------------------------------------------------
def test_named_modules_and_buffers():
    model = _model()
    names = [name for name, _ in model.named_modules()]
    assert names == ["", "modules.0", "modules.1", "modules.2", "modules.2.modules.0", "modules.2.modules.1"]
    assert model.named_modules()[0][1] is model and model.named_modules()[2][1] is model.modules[1]
    bn = model.modules[1]
    assert model.buffers() == [bn.running_mean, bn.running_var] or (
        model.buffers()[0] is bn.running_mean and model.buffers()[1] is bn.running_var)
    assert len(model.buffers()) == 2 and all(b is not p for b in model.buffers() for p in model.parameters())
    assert [n for n, _ in model.named_parameters()][:2] == ["modules.0.weight", "modules.0.bias"]
    assert nn.Linear(2, 2).buffers() == []


def test_zero_grad_drops_every_gradient():
    model = _model()
    model(T(RNG.standard_normal((5, 3)))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_module_to_dtype_in_place_and_returns_the_module():
    model = _model()
    params = model.parameters()
    before = [p.numpy() for p in params]
    assert model.to("float64") is model
    assert model.parameters() == params and all(a is b for a, b in zip(model.parameters(), params))
    assert all(p.dtype == "float64" for p in params) and all(b.dtype == "float64" for b in model.buffers())
    for p, old in zip(params, before):
        np.testing.assert_array_equal(p.numpy(), old.astype(np.float64))
        assert p.requires_grad and p.is_leaf()
    model.to(dtype=np.float32)
    assert all(p.dtype == "float32" for p in model.parameters())
    assert model.to(device=ndl.cpu_numpy()) is model
    assert all(p.device == ndl.cpu_numpy() for p in model.parameters() + model.buffers())
    with pytest.raises(TypeError, match="Module.to"):
        model.to(3)


def test_module_to_keeps_an_optimizer_working():
    model = nn.Linear(3, 1)
    opt = optim.SGD(model.parameters(), lr=0.1)
    model.to("float64")
    x = T(RNG.standard_normal((4, 3)), requires_grad=False, dtype="float64")
    w0 = model.weight.numpy().copy()
    model.zero_grad()
    model(x).sum().backward()
    opt.step()
    # d/dw sum(x @ w + b) = column sums of x
    np.testing.assert_allclose(model.weight.numpy(), w0 - 0.1 * x.numpy().sum(0, keepdims=True).T, rtol=1e-12)
    assert model.weight.dtype == "float64"


def test_module_to_converts_gradients_with_the_parameters():
    model = nn.Linear(2, 2)
    model(T(np.ones((1, 2)))).sum().backward()
    model.to("float64")
    assert model.weight.grad.dtype == "float64"


def test_module_to_keeps_integer_buffers():
    class Counter(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("steps", ndl.tensor([0]))
            self.w = nn.Parameter(np.ones(2))

    m = Counter().to("float64")
    assert m.steps.dtype == "int64" and m.w.dtype == "float64"


# ---- Adam betas ---------------------------------------------------------------------------------
def _run(opt_factory, steps=3):
    np.random.seed(2)
    w = nn.Parameter(np.random.randn(3, 2))
    opt = opt_factory([w])
    for _ in range(steps):
        opt.reset_grad()
        ((w * w).sum() + w.sum()).backward()
        opt.step()
    return w.numpy()


@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
def test_betas_is_beta1_beta2(cls):
    a = _run(lambda p: cls(p, lr=0.1, betas=(0.8, 0.95)))
    b = _run(lambda p: cls(p, lr=0.1, beta1=0.8, beta2=0.95))
    np.testing.assert_array_equal(a, b)
    opt = cls([nn.Parameter(np.ones(1))], betas=(0.5, 0.6))
    assert (opt.beta1, opt.beta2) == (0.5, 0.6)
    assert cls([nn.Parameter(np.ones(1))]).beta1 == 0.9  # the defaults stay


@pytest.mark.parametrize("cls", [optim.Adam, optim.AdamW])
def test_betas_with_beta1_or_beta2_is_a_type_error(cls):
    p = [nn.Parameter(np.ones(1))]
    with pytest.raises(TypeError, match="betas=.*beta1="):
        cls(p, beta1=0.9, betas=(0.8, 0.9))
    with pytest.raises(TypeError, match="betas=.*beta2="):
        cls(p, beta2=0.999, betas=(0.8, 0.9))
    with pytest.raises(TypeError, match="pair"):
        cls(p, betas=0.9)
    with pytest.raises(ValueError, match="beta1"):
        cls(p, betas=(1.5, 0.9))


def test_adam_by_hand_with_betas():
    # one step: m = (1-b1) g, v = (1-b2) g^2, w -= lr * (m/(1-b1)) / (sqrt(v/(1-b2)) + eps) = lr * sign(g)
    w = nn.Parameter(np.array([1.0, -2.0]))
    opt = optim.Adam([w], lr=0.5, betas=(0.7, 0.8), eps=0.0)
    (w * w).sum().backward()
    opt.step()
    np.testing.assert_allclose(w.numpy(), [0.5, -1.5])


# ---- functional ---------------------------------------------------------------------------------
X = RNG.standard_normal((4, 5))


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_activations():
    np.testing.assert_array_equal(F.relu(T(X)).numpy(), np.maximum(X, 0))
    np.testing.assert_allclose(F.sigmoid(T(X)).numpy(), 1 / (1 + np.exp(-X)), rtol=1e-12)
    np.testing.assert_allclose(F.tanh(T(X)).numpy(), np.tanh(X), rtol=1e-12)
    with pytest.raises(ValueError, match="inplace"):
        F.relu(T(X), inplace=True)


def test_softmax_and_log_softmax():
    np.testing.assert_allclose(F.softmax(T(X), dim=0).numpy(), _softmax(X, 0), rtol=1e-10)
    np.testing.assert_allclose(F.softmax(T(X), 1).numpy(), _softmax(X, 1), rtol=1e-10)
    np.testing.assert_allclose(F.log_softmax(T(X), dim=-1).numpy(), np.log(_softmax(X, 1)), rtol=1e-10)
    assert F.softmax(T(X), dim=1, dtype="float32").dtype == "float32"
    with pytest.warns(UserWarning, match="implicit dimension"):
        implicit = F.softmax(T(X))  # PyTorch's legacy choice: dim 1 for a 2-D input
    np.testing.assert_allclose(implicit.numpy(), _softmax(X, 1), rtol=1e-10)
    x3 = RNG.standard_normal((2, 3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(F.log_softmax(T(x3)).numpy(), np.log(_softmax(x3, 0)), rtol=1e-10)


def test_softmax_module_and_function_agree():
    np.testing.assert_array_equal(nn.Softmax(0)(T(X)).numpy(), F.softmax(T(X), dim=0).numpy())


def test_cross_entropy():
    labels = np.array([0, 4, 2, 2])
    expected = -np.log(_softmax(X, 1))[np.arange(4), labels]
    np.testing.assert_allclose(F.cross_entropy(T(X), ndl.tensor(labels)).numpy(), expected.mean(), rtol=1e-10)
    np.testing.assert_allclose(F.cross_entropy(T(X), labels, reduction="sum").numpy(), expected.sum(), rtol=1e-10)
    np.testing.assert_allclose(F.cross_entropy(T(X), labels.tolist()).numpy(),
                               nn.SoftmaxLoss()(T(X), labels).numpy())
    logits = T(X)
    F.cross_entropy(logits, labels).backward()
    onehot = np.eye(5)[labels]
    np.testing.assert_allclose(logits.grad.numpy(), (_softmax(X, 1) - onehot) / 4, rtol=1e-8, atol=1e-12)
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(T(X), labels, reduction="none")
    with pytest.raises(ValueError, match="cross_entropy"):
        F.cross_entropy(T(X[0]), labels)


def test_mse_loss():
    target = RNG.standard_normal((4, 5))
    np.testing.assert_allclose(F.mse_loss(T(X), T(target)).numpy(), ((X - target) ** 2).mean(), rtol=1e-12)
    np.testing.assert_allclose(F.mse_loss(T(X), target, reduction="sum").numpy(), ((X - target) ** 2).sum(),
                               rtol=1e-12)
    np.testing.assert_array_equal(F.mse_loss(T(X), target).numpy(), nn.MSELoss()(T(X), target).numpy())
    with pytest.raises(ValueError, match="shape"):
        F.mse_loss(T(X), target[:2])


def test_linear_takes_the_in_out_layout():
    w, b = RNG.standard_normal((5, 3)), RNG.standard_normal(3)
    np.testing.assert_allclose(F.linear(T(X), T(w), T(b)).numpy(), X @ w + b, rtol=1e-12)
    np.testing.assert_allclose(F.linear(T(X), T(w)).numpy(), X @ w, rtol=1e-12)
    x3 = RNG.standard_normal((2, 4, 5))
    np.testing.assert_allclose(F.linear(T(x3), T(w), T(b.reshape(1, 3))).numpy(), x3 @ w + b, rtol=1e-12)
    layer = nn.Linear(5, 3)
    np.testing.assert_array_equal(layer(T(X, dtype="float32")).numpy(),
                                  F.linear(T(X, dtype="float32"), layer.weight, layer.bias).numpy())
    with pytest.raises(ValueError, match=r"linear.*\(5, out_features\)"):
        F.linear(T(X), T(w.T))


def test_dropout_keeps_the_course_mask_rule():
    x = np.ones((50, 40))
    np.random.seed(4)
    got = F.dropout(T(x), p=0.3, training=True).numpy()
    np.random.seed(4)
    keep = np.random.rand(50, 40) <= 0.7
    np.testing.assert_allclose(got, keep / 0.7, rtol=1e-12)
    np.random.seed(4)
    np.testing.assert_array_equal(nn.Dropout(0.3)(T(x)).numpy(), got)
    assert F.dropout(T(x), 0.3, training=False).numpy().tolist() == x.tolist()
    assert F.dropout(T(x), p=1.0).numpy().max() == 0.0
    with pytest.raises(ValueError, match="p must be"):
        F.dropout(T(x), p=1.5)


def test_one_hot():
    labels = ndl.tensor([0, 2, 1, 2])
    got = F.one_hot(labels, 4)
    assert got.dtype == "int64" and got.numpy().tolist() == np.eye(4, dtype=np.int64)[[0, 2, 1, 2]].tolist()
    assert F.one_hot(labels).shape == (4, 3)  # num_classes=-1: max + 1
    assert F.one_hot(ndl.tensor([[1], [0]]), num_classes=2).shape == (2, 1, 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        F.one_hot(labels, 2)


def test_pad_flat_tuple_from_the_last_axis():
    x = RNG.standard_normal((2, 3, 4))
    np.testing.assert_array_equal(F.pad(T(x), (1, 2)).numpy(), np.pad(x, ((0, 0), (0, 0), (1, 2))))
    np.testing.assert_array_equal(F.pad(T(x), (1, 0, 0, 3)).numpy(), np.pad(x, ((0, 0), (0, 3), (1, 0))))
    np.testing.assert_allclose(F.pad(T(x), (0, 1, 2, 0, 1, 1), value=-2.0).numpy(),
                               np.pad(x, ((1, 1), (2, 0), (0, 1)), constant_values=-2.0), rtol=1e-12)
    t = T(x)
    (F.pad(t, (1, 1), value=5.0) * 2.0).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), np.full(x.shape, 2.0))
    with pytest.raises(ValueError, match="even"):
        F.pad(T(x), (1,))
    with pytest.raises(ValueError, match="mode"):
        F.pad(T(x), (1, 1), mode="reflect")
    with pytest.raises(ValueError, match="non-negative"):
        F.pad(T(x), (-1, 1))


# ---- the same calls in PyTorch ----------------------------------------------------------------------
@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def test_torch_functional(torch):
    tF = torch.nn.functional
    x = torch.tensor(X)
    w, b = RNG.standard_normal((5, 3)), RNG.standard_normal(3)
    labels = np.array([1, 0, 4, 4])
    target = RNG.standard_normal((4, 5))
    pairs = [
        (F.relu(T(X)), tF.relu(x)), (F.sigmoid(T(X)), tF.sigmoid(x)), (F.tanh(T(X)), tF.tanh(x)),
        (F.softmax(T(X), dim=0), tF.softmax(x, dim=0)), (F.log_softmax(T(X), dim=1), tF.log_softmax(x, dim=1)),
        (F.cross_entropy(T(X), ndl.tensor(labels)), tF.cross_entropy(x, torch.tensor(labels))),
        (F.cross_entropy(T(X), labels, reduction="sum"),
         tF.cross_entropy(x, torch.tensor(labels), reduction="sum")),
        (F.mse_loss(T(X), T(target)), tF.mse_loss(x, torch.tensor(target))),
        (F.mse_loss(T(X), T(target), reduction="sum"), tF.mse_loss(x, torch.tensor(target), reduction="sum")),
        # needle's weight is (in, out): PyTorch's is its transpose
        (F.linear(T(X), T(w), T(b)), tF.linear(x, torch.tensor(w.T), torch.tensor(b))),
        (F.linear(T(X), T(w)), tF.linear(x, torch.tensor(w.T))),
        (F.one_hot(ndl.tensor(labels), 6), tF.one_hot(torch.tensor(labels), 6)),
        (F.one_hot(ndl.tensor(labels)), tF.one_hot(torch.tensor(labels))),
        (F.pad(T(X), (1, 2)), tF.pad(x, (1, 2))),
        (F.pad(T(X), (0, 1, 3, 0), value=1.5), tF.pad(x, (0, 1, 3, 0), value=1.5)),
        (F.dropout(T(X), 0.4, training=False), tF.dropout(x, 0.4, training=False)),
    ]
    for got, expected in pairs:
        assert got.shape == tuple(expected.shape)
        assert got.dtype == str(expected.dtype).replace("torch.", "")
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-10, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for shape in ((4,), (2, 3), (2, 3, 4), (2, 3, 4, 5)):
            data = RNG.standard_normal(shape)
            np.testing.assert_allclose(F.softmax(T(data)).numpy(), tF.softmax(torch.tensor(data)).numpy(),
                                       rtol=1e-10)


def test_torch_cross_entropy_gradient(torch):
    labels = np.array([1, 0, 4, 4])
    t, x = T(X), torch.tensor(X, requires_grad=True)
    F.cross_entropy(t, labels).backward()
    torch.nn.functional.cross_entropy(x, torch.tensor(labels)).backward()
    np.testing.assert_allclose(t.grad.numpy(), x.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_torch_adam_with_betas(torch):
    init = RNG.standard_normal((3, 2))
    w = nn.Parameter(init.copy(), dtype="float64")
    tw = torch.tensor(init.copy(), requires_grad=True)
    opt = optim.Adam([w], lr=0.05, betas=(0.8, 0.95), eps=1e-8)
    topt = torch.optim.Adam([tw], lr=0.05, betas=(0.8, 0.95), eps=1e-8)
    for _ in range(4):
        opt.zero_grad()
        topt.zero_grad()
        ((w * w * w).sum() + w.sum()).backward()
        ((tw * tw * tw).sum() + tw.sum()).backward()
        opt.step()
        topt.step()
    np.testing.assert_allclose(w.numpy(), tw.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_torch_module_helpers(torch):
    model = _model()
    tmodel = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4),
                                 torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(4, 2)))
    assert len(model.named_modules()) == len(list(tmodel.named_modules()))
    assert len(model.buffers()) == len([b for n, b in tmodel.named_buffers() if "running" in n])
    assert model.to("float64") is model and tmodel.to(torch.float64) is tmodel
