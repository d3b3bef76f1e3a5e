"""Module tree (parameters, children, train/eval) and state_dict / load_state_dict."""
import numpy as np
import pytest

import needle as ndl
from needle import nn


class Block(nn.Module):
    """A user module in the course's style: parameters in attributes, a list and a dict."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(3, 4)
        self.layers = [nn.BatchNorm1d(4), nn.ReLU()]
        self.heads = {"out": nn.Linear(4, 2)}
        self.scale = nn.Parameter(np.ones((1, 2)))
        self.cache = ndl.Tensor(np.zeros(2))  # a plain tensor: neither parameter nor buffer

    def forward(self, x):
        h = self.first(x)
        for layer in self.layers:
            h = layer(h)
        return self.heads["out"](h) * ndl.broadcast_to(self.scale, (x.shape[0], 2))


def names(model):
    return [n for n, _ in model.named_parameters()]


def test_parameters_children_and_modes():
    model = Block()
    params = model.parameters()
    assert isinstance(params, list)
    expected = [model.first.weight, model.first.bias, model.layers[0].weight, model.layers[0].bias,
                model.heads["out"].weight, model.heads["out"].bias, model.scale]
    assert [id(p) for p in params] == [id(p) for p in expected]
    assert names(model) == ["first.weight", "first.bias", "layers.0.weight", "layers.0.bias",
                            "heads.out.weight", "heads.out.bias", "scale"]
    assert [type(m).__name__ for m in model.children()] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert model.eval() is model
    assert not model.training and not any(m.training for m in model._children())
    model.train()
    assert model.training and all(m.training for m in model._children())


def test_shared_parameter_counted_once():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(model.parameters()) == 2
    assert list(model.state_dict()) == ["modules.0.weight", "modules.0.bias"]


def test_state_dict_contents_and_round_trip():
    np.random.seed(0)
    src = Block()
    x = ndl.Tensor(np.random.randn(5, 3).astype(np.float32))
    src(x)  # one training step moves the BatchNorm running statistics
    state = src.state_dict()
    assert list(state) == ["first.weight", "first.bias", "layers.0.weight", "layers.0.bias",
                           "layers.0.running_mean", "layers.0.running_var", "heads.out.weight", "heads.out.bias",
                           "scale"]
    assert all(isinstance(v, np.ndarray) for v in state.values())
    np.testing.assert_array_equal(state["layers.0.running_mean"], src.layers[0].running_mean.numpy())
    state["first.weight"][:] = 99  # a copy: the module is untouched
    assert not np.any(src.first.weight.numpy() == 99)

    np.random.seed(1)
    dst = Block()
    weight_obj = dst.first.weight
    dst.load_state_dict(src.state_dict())
    assert dst.first.weight is weight_obj and dst.first.weight.is_leaf()
    for (name, a), (_, b) in zip(src.state_dict().items(), dst.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    src.eval(), dst.eval()
    np.testing.assert_allclose(dst(x).numpy(), src(x).numpy(), rtol=1e-6)


def test_load_state_dict_accepts_tensors():
    src, dst = nn.Linear(2, 3), nn.Linear(2, 3)
    dst.load_state_dict({"weight": src.weight, "bias": src.bias.detach()})
    np.testing.assert_array_equal(dst.weight.numpy(), src.weight.numpy())


def test_load_state_dict_lists_every_problem():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    state = model.state_dict()
    del state["modules.0.bias"]
    state["modules.9.weight"] = np.zeros(3, dtype=np.float32)
    state["modules.0.weight"] = np.zeros((4, 3), dtype=np.float32)
    state["modules.1.running_var"] = state["modules.1.running_var"].astype(np.float64)
    before = model.modules[0].weight.numpy()
    with pytest.raises(nn.StateDictError) as info:
        model.load_state_dict(state)
    err = info.value
    assert err.missing == ["modules.0.bias"]
    assert err.unexpected == ["modules.9.weight"]
    assert err.mismatched == ["modules.0.weight", "modules.1.running_var"]
    message = str(err)
    for piece in ["4 problem(s)", "'modules.0.bias'", "'modules.9.weight'", "(4, 3) in the state dict, (3, 4)",
                  "dtype float64 in the state dict, float32"]:
        assert piece in message
    np.testing.assert_array_equal(model.modules[0].weight.numpy(), before)  # nothing loaded on error


def test_load_state_dict_non_strict():
    model = nn.Linear(2, 3)
    new_w = np.arange(6, dtype=np.float32).reshape(2, 3)
    model.load_state_dict({"weight": new_w, "extra": np.zeros(1)}, strict=False)
    np.testing.assert_array_equal(model.weight.numpy(), new_w)
    with pytest.raises(nn.StateDictError, match="shape"):
        model.load_state_dict({"weight": np.zeros((3, 2), dtype=np.float32)}, strict=False)


def test_repr_shows_tree_and_settings():
    model = nn.Sequential(nn.Linear(2, 3), nn.Residual(nn.Dropout(0.2)))
    assert repr(model) == ("Sequential(\n  (modules.0): Linear(in_features=2, out_features=3, bias=True)\n"
                           "  (modules.1): Residual(\n    (fn): Dropout(p=0.2)\n  )\n)")


def test_module_without_super_init_still_works():
    class Bare(nn.Module):
        def __init__(self):  # no super().__init__(): tolerated, as in much course code
            self.inner = nn.Dropout(0.5)

        def forward(self, x):
            return self.inner(x)

    bare = Bare()
    assert bare.training
    bare.eval()
    x = np.ones((2, 2), dtype=np.float32)
    np.testing.assert_array_equal(bare(ndl.Tensor(x)).numpy(), x)
    assert bare.parameters() == [] and bare.state_dict() == {}
