"""Central finite differences against autograd: ``gradcheck`` for users and the suite."""
import numpy as np

from ..autograd import Tensor, TensorTuple


def _as_numpy_out(out):
    if isinstance(out, TensorTuple):
        return [t.numpy() for t in out.tuple()]
    return [out.numpy()]


def numerical_gradients(f, *args, eps=1e-6, weights=None):
    """d(sum(weights * f(*args)))/d(arg) for each Tensor arg, by central differences."""
    arrays = [a.numpy().astype(np.float64) for a in args]
    if weights is None:
        weights = [np.ones_like(o) for o in _as_numpy_out(f(*args))]

    def objective(values):
        tensors = [Tensor(v.astype(a.dtype), device=a.device, dtype=a.dtype, requires_grad=False)
                   for v, a in zip(values, args)]
        return sum(float((w * o).sum()) for w, o in zip(weights, _as_numpy_out(f(*tensors))))

    grads = []
    for i, base in enumerate(arrays):
        grad = np.zeros_like(base)
        flat, gflat = base.reshape(-1), grad.reshape(-1)
        for j in range(flat.size):
            keep = flat[j]
            flat[j] = keep + eps
            plus = objective(arrays)
            flat[j] = keep - eps
            minus = objective(arrays)
            flat[j] = keep
            gflat[j] = (plus - minus) / (2 * eps)
        grads.append(grad)
    return grads


def gradcheck(f, *args, eps=1e-6, atol=1e-5, rtol=1e-4, seed=0):
    """Check autograd's gradients of ``f`` at ``args`` (Tensors) against finite differences.

    The output is contracted with fixed random weights, so every output element counts.
    Use float64 inputs for tight tolerances. Returns the autograd gradients (numpy arrays);
    raises AssertionError naming the argument and the largest error when they disagree.
    """
    rng = np.random.RandomState(seed)
    args = [a if isinstance(a, Tensor) else Tensor(np.asarray(a, dtype=np.float64)) for a in args]
    out = f(*args)
    outs = out.tuple() if isinstance(out, TensorTuple) else [out]
    weights = [rng.standard_normal(o.shape) for o in outs]
    loss = None
    for o, w in zip(outs, weights):
        term = (o * Tensor(w, device=o.device, dtype=o.dtype, requires_grad=False)).sum()
        loss = term if loss is None else loss + term
    for a in args:
        a.grad = None
    loss.backward()
    numeric = numerical_gradients(f, *args, eps=eps, weights=weights)
    computed = []
    for i, (a, num) in enumerate(zip(args, numeric)):
        if a.grad is None:
            got = np.zeros_like(num)
        else:
            got = a.grad.numpy()
            if got.shape != a.shape:
                raise AssertionError(f"gradcheck: gradient of argument {i} has shape {got.shape}, "
                                     f"argument has shape {a.shape}")
            if a.grad.dtype != a.dtype:
                raise AssertionError(f"gradcheck: gradient of argument {i} has dtype {a.grad.dtype}, "
                                     f"argument has dtype {a.dtype}")
        if not np.allclose(got, num, atol=atol, rtol=rtol):
            err = np.max(np.abs(got - num))
            raise AssertionError(f"gradcheck: argument {i} (shape {a.shape}): autograd and finite "
                                 f"differences differ by up to {err:.3g}\nautograd:\n{got}\nnumeric:\n{num}")
        computed.append(got)
    return computed
