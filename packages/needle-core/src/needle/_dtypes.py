"""Dtype names, inference and promotion: the type rules of API.md ("Dtypes"), in one place.

A dtype is a plain string (``"float32"``), so ``tensor.dtype == "float32"`` holds. Promotion is
PyTorch's: float beats integer beats bool, wider beats narrower within a kind, and a Python
scalar only changes a tensor's dtype across kinds (an int scalar turns a bool tensor into int64,
a float scalar turns an integer or bool tensor into float32).

This module imports nothing from needle: every layer above may use it.
"""
import numpy as np

#: Every dtype needle knows, in promotion order within each kind.
ALL = ("bool", "uint8", "int32", "int64", "float32", "float64")
FLOATS = frozenset(("float32", "float64"))
INTEGERS = frozenset(("uint8", "int32", "int64"))
DEFAULT_FLOAT = "float32"
DEFAULT_INT = "int64"

_KIND = {"bool": 0, "uint8": 1, "int32": 1, "int64": 1, "float32": 2, "float64": 2}
_RANK = {name: i for i, name in enumerate(ALL)}
_RANGES = {"uint8": (0, 255), "int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}

_NAMES = {}  # what callers pass ("float32", np.float32, np.dtype(...)) -> its name, cached


def name(dtype):
    """The needle name of ``dtype`` (a name, numpy dtype or type, or ``float``/``int``/``bool``).

    Anything needle does not support (float16, complex, object, strings) is a TypeError that lists
    the supported names; nothing is cast silently.
    """
    try:
        return _NAMES[dtype]
    except (KeyError, TypeError):  # TypeError: an unhashable dtype-like
        pass
    if dtype is float:
        found = DEFAULT_FLOAT
    elif dtype is int:
        found = DEFAULT_INT
    else:
        try:
            found = np.dtype(dtype).name
        except TypeError:
            raise TypeError(f"dtype={dtype!r} is not a dtype; needle supports {', '.join(ALL)}") from None
    if found not in _KIND:
        raise TypeError(f"dtype {found!r} is not supported; needle supports {', '.join(ALL)}")
    try:
        if len(_NAMES) < 256:
            _NAMES[dtype] = found
    except TypeError:
        pass
    return found


def is_float(dtype):
    """True for float32 and float64."""
    return dtype in FLOATS


def of_value(value, float_dtype="float64"):
    """The dtype ``Tensor(value)`` infers (``dtype=None``) for a numpy array, scalar or nested list.

    What numpy infers, kept: Python bools give bool, ints int64, and a float64 result (a float64
    array, a Python float, a list of floats) gives ``float_dtype`` (the caller passes float64
    where the device has it, else float32). Unsupported inputs (None, complex, float16, objects)
    are a TypeError.
    """
    if value is None:
        raise TypeError("cannot make an array from None")
    dtype = value.dtype if isinstance(value, (np.ndarray, np.generic)) else np.asarray(value).dtype
    if dtype == np.float64:
        return float_dtype
    if dtype.kind == "O":
        raise TypeError(f"cannot make an array from {type(value).__name__} of mixed or unsupported values "
                        f"(numpy made dtype=object); needle supports {', '.join(ALL)}")
    return name(dtype)


def promote(a, b):
    """The dtype of a binary op between tensors of dtypes ``a`` and ``b`` (PyTorch's rule)."""
    if a == b:
        return a
    ka, kb = _KIND[a], _KIND[b]
    if ka != kb:
        return a if ka > kb else b
    if ka == 1 and "uint8" in (a, b):  # uint8 with a signed type: the signed one (int32 or int64)
        return b if a == "uint8" else a
    return a if _RANK[a] > _RANK[b] else b


def with_scalar(dtype, scalar):
    """The dtype of a binary op between a tensor of ``dtype`` and a Python scalar."""
    if isinstance(scalar, (bool, np.bool_)):
        return dtype
    if isinstance(scalar, (int, np.integer)):
        return DEFAULT_INT if dtype == "bool" else dtype
    return dtype if dtype in FLOATS else DEFAULT_FLOAT


class DynamicFloat(float):
    """A float scalar that needle.jit reads again (``getter()``) at every replay (see
    ``needle._jit.scalar``); kept as it is on its way to a kernel."""

    __slots__ = ("getter",)


def scalar_for(dtype, scalar):
    """``scalar`` as the Python number a kernel on ``dtype`` takes: int for integer and bool
    buffers (integers wrap modulo 2**bits, as the kernels' arithmetic does), float for floats."""
    if dtype in FLOATS:
        return scalar if type(scalar) is DynamicFloat else float(scalar)
    if dtype == "bool":
        return int(bool(scalar))
    value = int(scalar)
    lo, hi = _RANGES[dtype]
    if not lo <= value <= hi:
        span = hi - lo + 1
        value = (value - lo) % span + lo
    return value


def finfo_or_iinfo(dtype):
    """numpy's limits object for ``dtype`` (for callers that need the extreme values)."""
    return np.finfo(dtype) if dtype in FLOATS else np.iinfo(np.uint8 if dtype == "bool" else dtype)
