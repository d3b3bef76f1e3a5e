"""Basic tensor initialisers. Random draws use numpy's global generator (``np.random.seed``)."""

from .. import backends
from ..autograd import Tensor


def _tensor(array, device, dtype, requires_grad):
    # ``array`` was just made on ``device`` with ``dtype``: wrap it (``Tensor(array)`` copies).
    return Tensor.make_const(array, requires_grad=requires_grad)


def rand(*shape, low=0.0, high=1.0, device=None, dtype="float32", requires_grad=False):
    """Uniform samples in [low, high)."""
    device = device or backends.default_device()
    array = device.rand(*shape, dtype=dtype) * (high - low) + low
    return _tensor(array, device, dtype, requires_grad)


def randn(*shape, mean=0.0, std=1.0, device=None, dtype="float32", requires_grad=False):
    """Normal samples with the given mean and standard deviation."""
    device = device or backends.default_device()
    array = device.randn(*shape, dtype=dtype) * std + mean
    return _tensor(array, device, dtype, requires_grad)


def constant(*shape, c=1.0, device=None, dtype="float32", requires_grad=False):
    """A tensor filled with ``c``."""
    device = device or backends.default_device()
    return _tensor(device.full(shape, c, dtype=dtype), device, dtype, requires_grad)


def ones(*shape, device=None, dtype="float32", requires_grad=False):
    """A tensor of ones."""
    return constant(*shape, c=1.0, device=device, dtype=dtype, requires_grad=requires_grad)


def zeros(*shape, device=None, dtype="float32", requires_grad=False):
    """A tensor of zeros."""
    return constant(*shape, c=0.0, device=device, dtype=dtype, requires_grad=requires_grad)


def randb(*shape, p=0.5, device=None, dtype="bool", requires_grad=False):
    """Bernoulli samples: True (1) where a uniform draw is <= p, else False (0), in ``dtype``."""
    device = device or backends.default_device()
    if dtype == "bool" and "bool" not in device.dtypes:  # a float-only (protocol-1) backend
        dtype = "float32"
    draws = device.rand(*shape, dtype="float32" if dtype not in ("float32", "float64") else dtype)
    mask = draws <= p  # bool on a protocol-2 backend, a float mask on a protocol-1 one
    return _tensor(mask if mask.dtype == dtype else mask.astype(dtype), device, dtype, requires_grad)


def one_hot(n, i, device=None, dtype="float32", requires_grad=False):
    """One-hot rows of length ``n`` for the integer labels ``i``."""
    device = device or backends.default_device()
    return _tensor(device.one_hot(n, i, dtype=dtype), device, dtype, requires_grad)


def zeros_like(array, *, device=None, requires_grad=False):
    """Zeros with the shape, dtype and device of ``array``."""
    device = device or array.device
    return zeros(*array.shape, dtype=array.dtype, device=device, requires_grad=requires_grad)


def ones_like(array, *, device=None, requires_grad=False):
    """Ones with the shape, dtype and device of ``array``."""
    device = device or array.device
    return ones(*array.shape, dtype=array.dtype, device=device, requires_grad=requires_grad)
