"""Basic tensor initialisers. Random draws use numpy's global generator (``np.random.seed``).

Shapes are ``*ints`` or one tuple (``zeros(2, 3)`` or ``zeros((2, 3))``); ``device`` is a device or
a device name; ``dtype=None`` means float32. The top-level factories of ``needle`` (``ndl.zeros``,
``ndl.rand``, ...) are these functions.
"""
from numbers import Integral

from .. import _dtypes, backends
from ..autograd import Tensor


def _shape(shape, who):
    """``shape`` given as ``*ints`` or one tuple/list, as a tuple of non-negative ints."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, Integral):
            raise TypeError(f"{who}: shape must be ints (as *ints or one tuple), got {shape!r}")
        if s < 0:
            raise ValueError(f"{who}: shape must not have negative lengths, got {shape!r}")
    return tuple(int(s) for s in shape)


def _device(device):
    """``device`` as a device: None is the default device, a name goes through ``ndl.device``."""
    if device is None:
        return backends.default_device()
    return backends.device(device) if isinstance(device, str) else device


def _dtype(dtype, default="float32"):
    return default if dtype is None else _dtypes.name(dtype)


def _tensor(array, device, dtype, requires_grad):
    # ``array`` was just made on ``device`` with ``dtype``: wrap it (``Tensor(array)`` copies).
    return Tensor.make_const(array, requires_grad=requires_grad)


def rand(*shape, low=0.0, high=1.0, device=None, dtype="float32", requires_grad=False):
    """Uniform samples in [low, high) (``np.random.rand``, then scaled)."""
    shape, device, dtype = _shape(shape, "rand"), _device(device), _dtype(dtype)
    array = device.rand(*shape, dtype=dtype) * (high - low) + low
    return _tensor(array, device, dtype, requires_grad)


def randn(*shape, mean=0.0, std=1.0, device=None, dtype="float32", requires_grad=False):
    """Normal samples with the given mean and standard deviation (``np.random.randn``, then scaled)."""
    shape, device, dtype = _shape(shape, "randn"), _device(device), _dtype(dtype)
    array = device.randn(*shape, dtype=dtype) * std + mean
    return _tensor(array, device, dtype, requires_grad)


def constant(*shape, c=1.0, device=None, dtype="float32", requires_grad=False):
    """A tensor filled with ``c``."""
    shape, device, dtype = _shape(shape, "constant"), _device(device), _dtype(dtype)
    return _tensor(device.full(shape, c, dtype=dtype), device, dtype, requires_grad)


def ones(*shape, device=None, dtype="float32", requires_grad=False):
    """A tensor of ones."""
    return constant(*shape, c=1.0, device=device, dtype=dtype, requires_grad=requires_grad)


def zeros(*shape, device=None, dtype="float32", requires_grad=False):
    """A tensor of zeros."""
    return constant(*shape, c=0.0, device=device, dtype=dtype, requires_grad=requires_grad)


def randb(*shape, p=0.5, device=None, dtype="bool", requires_grad=False):
    """Bernoulli samples: True (1) where a uniform draw is <= p, else False (0), in ``dtype``."""
    shape, device, dtype = _shape(shape, "randb"), _device(device), _dtype(dtype, "bool")
    if dtype == "bool" and "bool" not in device.dtypes:  # a float-only (protocol-1) backend
        dtype = "float32"
    draws = device.rand(*shape, dtype="float32" if dtype not in ("float32", "float64") else dtype)
    mask = draws <= p  # bool on a protocol-2 backend, a float mask on a protocol-1 one
    return _tensor(mask if mask.dtype == dtype else mask.astype(dtype), device, dtype, requires_grad)


def one_hot(n, i, device=None, dtype="float32", requires_grad=False):
    """One-hot rows of length ``n`` for the integer labels ``i``."""
    device, dtype = _device(device), _dtype(dtype)
    return _tensor(device.one_hot(n, i, dtype=dtype), device, dtype, requires_grad)


def zeros_like(array, *, device=None, dtype=None, requires_grad=False):
    """Zeros with the shape of ``array``, and its dtype and device unless ``dtype``/``device`` say otherwise."""
    return zeros(*array.shape, dtype=dtype or array.dtype, device=device or array.device,
                 requires_grad=requires_grad)


def ones_like(array, *, device=None, dtype=None, requires_grad=False):
    """Ones with the shape of ``array``, and its dtype and device unless ``dtype``/``device`` say otherwise."""
    return ones(*array.shape, dtype=dtype or array.dtype, device=device or array.device,
                requires_grad=requires_grad)
