# %% [markdown]
# # A backend in 30 lines
#
# A backend is any object with the kernels of the [backend protocol](../api/protocol.md): flat,
# one-dtype buffers and kernels that read and write them. All shapes, strides and broadcasting stay
# in needle-core, so a backend never sees more than a flat buffer and, for the few view kernels, a
# `(shape, strides, offset)` triple. Here is a complete protocol-2 backend on numpy, float32 plus the
# `bool` and `int64` buffers that comparisons and `argmax` write. A real backend replaces the numpy
# calls with its own code (C++, a GPU library) and is packaged with an entry point: see
# [Writing a backend](../writing-a-backend.md).

# %%
import types

import numpy as np
from numpy.lib.stride_tricks import as_strided

import needle as ndl
import needle.nn as nn
import needle.optim as optim
from needle.testing import register_test_backend


class Array:
    def __init__(self, size, dtype="float32"):
        self.array, self.dtype, self.size = np.empty(size, dtype), dtype, size

    def ptr(self):
        return self.array.ctypes.data


def view(a, shape, strides, offset):  # strides in elements
    step = a.array.itemsize
    return as_strided(a.array[offset:], shape, [s * step for s in strides], writeable=True)


def setitem(out, value, shape, strides, offset):
    view(out, shape, strides, offset)[...] = value


def kernels():
    k = dict(PROTOCOL_VERSION=2, DTYPES=("float32", "bool", "int64"), Array=Array)
    k.update(from_numpy=lambda x, out: out.array.__setitem__(slice(None), x.ravel()),
             to_numpy=lambda a, *view_args: view(a, *view_args).copy(),
             fill=lambda out, v: out.array.fill(v),
             compact=lambda a, out, *v: out.array.__setitem__(slice(None), view(a, *v).ravel()),
             ewise_setitem=lambda a, out, shape, *v: setitem(out, a.array.reshape(shape), shape, *v),
             scalar_setitem=lambda size, val, out, *v: setitem(out, val, *v),
             cast=lambda a, out: np.copyto(out.array, a.array, casting="unsafe"),
             where=lambda c, a, b, out: out.array.__setitem__(slice(None), np.where(c.array, a.array, b.array)),
             matmul=lambda a, b, out, m, n, p: np.matmul(a.array.reshape(m, n), b.array.reshape(n, p),
                                                         out=out.array.reshape(m, p)))
    binary = dict(add=np.add, mul=np.multiply, div=np.divide, maximum=np.maximum, minimum=np.minimum,
                  eq=np.equal, ge=np.greater_equal, power=np.power, **{n: getattr(np, f"logical_{n}") for n in
                                                                      ("and", "or", "xor")})
    for name, f in binary.items():
        k[f"ewise_{name}"] = lambda a, b, out, f=f: f(a.array, b.array, out=out.array)
        k[f"scalar_{name}"] = lambda a, v, out, f=f: f(a.array, np.array(v, a.dtype), out=out.array)
    for name, f in dict(log=np.log, exp=np.exp, tanh=np.tanh, not_=np.logical_not).items():
        k[f"ewise_{name.rstrip('_')}"] = lambda a, out, f=f: f(a.array, out=out.array)
    for name, f in dict(sum=np.sum, max=np.max, min=np.min, argmax=np.argmax, argmin=np.argmin).items():
        k[f"reduce_{name}"] = lambda a, out, n, f=f: out.array.__setitem__(
            slice(None), f(a.array.reshape(-1, n), axis=1))
    return types.SimpleNamespace(**k)


tiny = register_test_backend("tiny", kernels())
print("registered:", tiny, "enabled:", tiny.enabled(), tiny.disabled_reason or "")

# %% [markdown]
# The device works like any other: tensors, autograd, `needle.nn`. The results match the numpy
# backend that ships with needle-core.

# %%
x = ndl.Tensor([[1.0, -2.0, 3.0], [0.5, 4.0, -1.0]], device=tiny, requires_grad=True)
y = (ndl.relu(x) * x).sum()
y.backward()
print("y =", y.numpy(), " dy/dx =", x.grad.numpy().tolist())
print("argmax per row:", x.numpy().argmax(axis=1), "->", ndl.argmax(x, axis=1).numpy())
print("x > 0:", (x > 0).numpy().tolist(), (x > 0).dtype)

# %%
np.random.seed(0)
X = np.random.randn(256, 4).astype("float32")
target = (X @ np.array([1.0, -2.0, 0.5, 3.0], dtype="float32"))[:, None]
model = nn.Linear(4, 1, device=tiny)
opt = optim.SGD(model.parameters(), lr=0.1)
for _ in range(100):
    loss = nn.MSELoss()(model(ndl.Tensor(X, device=tiny)), ndl.Tensor(target, device=tiny))
    opt.reset_grad()
    loss.backward()
    opt.step()
print(f"linear regression on the tiny backend: loss {loss.item():.2e}, weights "
      f"{np.round(model.weight.numpy().ravel(), 3).tolist()}")

# %% [markdown]
# The conformance suite that every backend must pass runs the same way on a backend of your own, from a
# `conftest.py` that calls `register_test_backend("tiny", ...)`:
# `NEEDLE_TEST_BACKENDS=tiny python -m pytest --pyargs needle.testing`.
