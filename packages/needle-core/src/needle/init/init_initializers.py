"""Xavier and Kaiming initialisers (course formulas, numpy's global generator)."""
import math

from .init_basic import rand, randn

_GAINS = {"relu": math.sqrt(2.0), "linear": 1.0, "tanh": 5.0 / 3.0, "sigmoid": 1.0}


def _gain(nonlinearity):
    if nonlinearity not in _GAINS:
        raise ValueError(f"nonlinearity must be one of {sorted(_GAINS)}, got {nonlinearity!r}")
    return _GAINS[nonlinearity]


def xavier_uniform(fan_in, fan_out, gain=1.0, **kwargs):
    """Uniform in [-a, a] with a = gain * sqrt(6 / (fan_in + fan_out)); shape (fan_in, fan_out)."""
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return rand(fan_in, fan_out, low=-a, high=a, **kwargs)


def xavier_normal(fan_in, fan_out, gain=1.0, **kwargs):
    """Normal with std = gain * sqrt(2 / (fan_in + fan_out)); shape (fan_in, fan_out)."""
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return randn(fan_in, fan_out, mean=0.0, std=std, **kwargs)


def kaiming_uniform(fan_in, fan_out, shape=None, nonlinearity="relu", **kwargs):
    """Uniform in [-b, b] with b = gain * sqrt(3 / fan_in); shape ``shape`` or (fan_in, fan_out)."""
    bound = _gain(nonlinearity) * math.sqrt(3.0 / fan_in)
    shape = tuple(shape) if shape is not None else (fan_in, fan_out)
    return rand(*shape, low=-bound, high=bound, **kwargs)


def kaiming_normal(fan_in, fan_out, shape=None, nonlinearity="relu", **kwargs):
    """Normal with std = gain / sqrt(fan_in); shape ``shape`` or (fan_in, fan_out)."""
    std = _gain(nonlinearity) / math.sqrt(fan_in)
    shape = tuple(shape) if shape is not None else (fan_in, fan_out)
    return randn(*shape, mean=0.0, std=std, **kwargs)
