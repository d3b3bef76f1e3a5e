"""The recipes of docs/for-pytorch-users.md, checked against PyTorch (skipped without torch).

SGD with ``lr / (1 - momentum)`` takes PyTorch's steps; PyTorch's Linear and Conv2d weights, laid out as
the page says, give PyTorch's outputs.
"""
import numpy as np
import pytest

import needle as ndl
from needle import nn, optim

torch = pytest.importorskip("torch")


def _const(x):
    return ndl.Tensor(x, dtype="float64", requires_grad=False)


def test_sgd_with_lr_over_one_minus_momentum_takes_pytorchs_steps():
    rng = np.random.default_rng(0)
    w0, x = rng.standard_normal((3, 2)), rng.standard_normal((5, 3))
    lr, momentum, decay = 0.1, 0.9, 0.01
    p = nn.Parameter(ndl.Tensor(w0, dtype="float64"))
    opt = optim.SGD([p], lr=lr / (1 - momentum), momentum=momentum, weight_decay=decay)
    tp = torch.tensor(w0, requires_grad=True)
    topt = torch.optim.SGD([tp], lr=lr, momentum=momentum, weight_decay=decay)
    for _ in range(5):
        opt.reset_grad()
        ((_const(x) @ p).sum() * (p * p).sum()).backward()
        opt.step()
        topt.zero_grad()
        ((torch.tensor(x) @ tp).sum() * (tp * tp).sum()).backward()
        topt.step()
    np.testing.assert_allclose(p.numpy(), tp.detach().numpy(), rtol=1e-12, atol=1e-12)


def test_pytorch_linear_and_conv_weights_in_needles_layout():
    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 3).double()
    layer = nn.Linear(4, 3, dtype="float64")
    layer.weight = nn.Parameter(_const(lin.weight.detach().numpy().T))
    layer.bias = nn.Parameter(_const(lin.bias.detach().numpy().reshape(1, -1)))
    x = np.random.default_rng(1).standard_normal((2, 4))
    np.testing.assert_allclose(layer(_const(x)).numpy(), lin(torch.tensor(x)).detach().numpy(), rtol=1e-12)

    conv = torch.nn.Conv2d(2, 3, 3, padding=1).double()
    layer = nn.Conv(2, 3, 3, dtype="float64")
    layer.weight = nn.Parameter(_const(conv.weight.detach().permute(2, 3, 1, 0).numpy()))
    layer.bias = nn.Parameter(_const(conv.bias.detach().numpy()))
    x = np.random.default_rng(2).standard_normal((1, 2, 5, 5))
    np.testing.assert_allclose(layer(_const(x)).numpy(), conv(torch.tensor(x)).detach().numpy(), rtol=1e-10,
                               atol=1e-12)
