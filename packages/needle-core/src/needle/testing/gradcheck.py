"""Central finite differences against autograd: ``gradcheck`` for users and the suite.

Finite differences are only trustworthy in float64. On a backend that has no float64,
pass ``numeric_device=ndl.cpu_numpy()``: the numeric gradient is then computed there in
float64, from the same input values, and compared with the backend's own autograd.
"""
import numpy as np

from ..autograd import Tensor, TensorTuple


def _outputs(out):
    return list(out.tuple()) if isinstance(out, TensorTuple) else [out]


def _numeric_setup(args, numeric_device, numeric_dtype):
    """(device, dtype) for each arg where f is evaluated by finite differences."""
    setup = []
    for a in args:
        dev = numeric_device if numeric_device is not None else a.device
        dtype = numeric_dtype or ("float64" if "float64" in dev.dtypes else a.dtype)
        setup.append((dev, dtype))
    return setup


def numerical_gradients(f, *args, eps=None, weights=None, numeric_device=None, numeric_dtype=None):
    """d(sum(weights * f(*args)))/d(arg) for each Tensor arg, by central differences.

    ``f`` is evaluated on Tensors holding the args' values on ``numeric_device`` (default:
    each arg's own device) in ``numeric_dtype`` (default: float64 where that device has it).
    ``eps`` defaults to 1e-6 in float64 and 1e-3 otherwise. Returns float64 numpy arrays.
    """
    arrays = [a.numpy().astype(np.float64) for a in args]
    setup = _numeric_setup(args, numeric_device, numeric_dtype)
    if eps is None:
        eps = 1e-6 if all(dtype == "float64" for _, dtype in setup) else 1e-3

    def objective(values):
        tensors = [Tensor(v.astype(dtype), device=dev, dtype=dtype, requires_grad=a.requires_grad)
                   for v, a, (dev, dtype) in zip(values, args, setup)]
        outs = [o.numpy().astype(np.float64) for o in _outputs(f(*tensors))]
        if weights is None:
            return sum(float(o.sum()) for o in outs)
        return sum(float((np.asarray(w) * o).sum()) for w, o in zip(weights, outs))

    grads = []
    for base in arrays:
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


def gradcheck(f, *args, eps=None, atol=None, rtol=None, seed=0, numeric_device=None, numeric_dtype=None):
    """Check autograd's gradients of ``f`` at ``args`` (Tensors) against finite differences.

    The output (a Tensor or TensorTuple) is contracted with fixed random weights, so every
    output element counts. Tolerances default to ``atol=1e-5, rtol=1e-4`` when the numeric
    gradient is computed in float64 and the args are float64, else ``atol=rtol=2e-3``.
    Non-Tensor args are made float64 Tensors on the default device. ``f`` may call
    ``backward`` itself (to check a gradient of a gradient): the numeric evaluation passes
    Tensors with the args' ``requires_grad``.

    Returns the autograd gradients (numpy arrays); raises AssertionError naming the argument
    and the largest error when they disagree.
    """
    rng = np.random.RandomState(seed)
    args = [a if isinstance(a, Tensor) else Tensor(np.asarray(a, dtype=np.float64)) for a in args]
    outs = _outputs(f(*args))
    weights = [np.asarray(rng.standard_normal(o.shape)) for o in outs]
    loss = None
    for o, w in zip(outs, weights):
        term = (o * Tensor(w, device=o.device, dtype=o.dtype, requires_grad=False)).sum()
        loss = term if loss is None else loss + term
    for a in args:
        a.grad = None
    loss.backward()
    precise = all(a.dtype == "float64" and dtype == "float64"
                  for a, (_, dtype) in zip(args, _numeric_setup(args, numeric_device, numeric_dtype)))
    atol = atol if atol is not None else (1e-5 if precise else 2e-3)
    rtol = rtol if rtol is not None else (1e-4 if precise else 2e-3)
    numeric = numerical_gradients(f, *args, eps=eps, weights=weights, numeric_device=numeric_device,
                                  numeric_dtype=numeric_dtype)
    computed = []
    for i, (a, num) in enumerate(zip(args, numeric)):
        grad = getattr(a, "grad", None)
        if grad is None:
            got = np.zeros_like(num)
        else:
            got = grad.numpy()
            if got.shape != a.shape:
                raise AssertionError(f"gradcheck: gradient of argument {i} has shape {got.shape}, "
                                     f"argument has shape {a.shape}")
            if grad.dtype != a.dtype:
                raise AssertionError(f"gradcheck: gradient of argument {i} has dtype {grad.dtype}, "
                                     f"argument has dtype {a.dtype}")
            if grad.device != a.device:
                raise AssertionError(f"gradcheck: gradient of argument {i} is on {grad.device}, "
                                     f"argument is on {a.device}")
        if not np.allclose(got, num, atol=atol, rtol=rtol):
            err = np.max(np.abs(got - num))
            raise AssertionError(f"gradcheck: argument {i} (shape {a.shape}): autograd and finite "
                                 f"differences differ by up to {err:.3g}\nautograd:\n{got}\nnumeric:\n{num}")
        computed.append(got)
    return computed
