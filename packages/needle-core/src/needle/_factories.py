"""PyTorch's tensor factories at the top level of ``needle``: ``tensor``, ``full``, ``empty``,
``arange``, ``linspace``, ``eye``, ``randint``, ``full_like`` (``zeros``, ``ones``, ``rand``, ``randn``,
``zeros_like`` and ``ones_like`` are :mod:`needle.init`'s own functions).

Each takes ``dtype=``, ``device=`` (a device or a name) and ``requires_grad=False``, with PyTorch's
default dtypes: float32 for floating values, int64 for integers (``arange`` of ints, ``randint``),
bool for bools. Values are made on the host with numpy (random ones from numpy's global generator,
as :mod:`needle.init` draws) and copied to the device once; ``full`` and ``full_like`` are
``init.constant``.
"""
import numpy as np

from . import _dtypes
from .autograd import Tensor
from .backend_ndarray.ndarray import NDArray
from .init import init_basic


def _leaf(values, dtype, device, requires_grad):
    """A leaf tensor of the host array ``values`` converted to ``dtype`` on ``device``."""
    device = init_basic._device(device)
    return Tensor.make_const(NDArray(values, device=device, dtype=dtype), requires_grad=requires_grad)


def _dtype_of(value):
    """PyTorch's default dtype for a Python/numpy scalar: bool, int64 or float32."""
    return _dtypes.of_value(value, float_dtype=_dtypes.DEFAULT_FLOAT)


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new leaf tensor holding a copy of ``data`` (a list, scalar, numpy array, Tensor or NDArray).

    As ``torch.tensor``: ``requires_grad`` defaults to False (``ndl.Tensor(...)``, the course's
    constructor, defaults to True); without ``dtype``, Python floats give float32, ints int64 and
    bools bool, while a numpy array, Tensor or NDArray keeps its dtype. ``requires_grad=True`` needs
    a float dtype.
    """
    if isinstance(data, Tensor):
        data = data.realize_cached_data()
    if isinstance(data, NDArray):
        device = data.device if device is None else device
        data = data.numpy()  # a copy, as torch.tensor copies
    elif dtype is None and not isinstance(data, (np.ndarray, np.generic)):
        dtype = _dtype_of(data)
    device = init_basic._device(device)
    return Tensor(np.array(data, copy=True), device=device, dtype=dtype, requires_grad=requires_grad)


def full(size, fill_value, *, dtype=None, device=None, requires_grad=False):
    """A tensor of shape ``size`` (an int or a tuple) filled with ``fill_value`` (``init.constant``);
    without ``dtype``, the fill value decides: float32 for a float, int64 for an int, bool for a bool."""
    size = (size,) if not isinstance(size, (tuple, list)) else tuple(size)
    dtype = _dtype_of(fill_value) if dtype is None else dtype
    return init_basic.constant(*size, c=fill_value, device=device, dtype=dtype, requires_grad=requires_grad)


def full_like(input, fill_value, *, dtype=None, device=None, requires_grad=False):  # noqa: A002 - PyTorch's name
    """``full`` with the shape of ``input``, and its dtype and device unless given."""
    return init_basic.constant(*input.shape, c=fill_value, device=device or input.device,
                               dtype=dtype or input.dtype, requires_grad=requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    """An uninitialised tensor of shape ``size`` (``*ints`` or one tuple), float32 by default
    (the device's ``empty``)."""
    size = init_basic._shape(size, "empty")
    device, dtype = init_basic._device(device), init_basic._dtype(dtype)
    return Tensor.make_const(device.empty(size, dtype=dtype), requires_grad=requires_grad)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    """Values from ``start`` up to (not including) ``end`` by ``step``; ``arange(n)`` is 0..n-1.

    Without ``dtype``: int64 when ``start``, ``end`` and ``step`` are all integers, else float32
    (PyTorch's rule). The values are ``start + i * step``, computed in float64 (or int64).
    """
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    ints = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (start, end, step))
    if dtype is None:
        dtype = _dtypes.DEFAULT_INT if ints else _dtypes.DEFAULT_FLOAT
    values = np.arange(start, end, step, dtype=np.int64 if ints else np.float64)
    return _leaf(values, dtype, device, requires_grad)


def linspace(start, end, steps, *, dtype=None, device=None, requires_grad=False):
    """``steps`` evenly spaced values from ``start`` to ``end`` inclusive (float32 by default)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"linspace: steps must be a non-negative int, got {steps!r}")
    values = np.linspace(start, end, int(steps), dtype=np.float64)
    return _leaf(values, init_basic._dtype(dtype), device, requires_grad)


def eye(n, m=None, *, dtype=None, device=None, requires_grad=False):
    """The ``n`` x ``m`` identity (``m`` defaults to ``n``), float32 by default."""
    for name, value in (("n", n), ("m", m)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0):
            raise ValueError(f"eye: {name} must be a non-negative int, got {value!r}")
    return _leaf(np.eye(n, n if m is None else m), init_basic._dtype(dtype), device, requires_grad)


def randint(low=0, high=None, size=None, *, dtype=None, device=None, requires_grad=False):
    """Integers drawn uniformly from [low, high) with ``np.random.randint`` (numpy's global generator),
    int64 by default: ``randint(high, size)`` or ``randint(low, high, size)``, as PyTorch."""
    if size is None and isinstance(high, (tuple, list)):  # randint(high, size)
        low, high, size = 0, low, high
    elif high is None:  # randint(high, size=...)
        low, high = 0, low
    if size is None:
        raise TypeError("randint: missing the size argument (a tuple of ints)")
    size = init_basic._shape((size,) if not isinstance(size, (tuple, list)) else (tuple(size),), "randint")
    if not low < high:
        raise ValueError(f"randint: needs low < high, got low={low}, high={high}")
    values = np.random.randint(low, high, size=size, dtype=np.int64)
    return _leaf(values, init_basic._dtype(dtype, _dtypes.DEFAULT_INT), device, requires_grad)


__all__ = ["arange", "empty", "eye", "full", "full_like", "linspace", "randint", "tensor"]
