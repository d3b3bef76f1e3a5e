"""Convolutional layers on NCHW tensors: Conv, BatchNorm2d, MaxPool2d, AvgPool2d.

The ops work on NHWC (channels last, so a convolution is one matmul over the channels); these
modules take and return NCHW, as the course's do, with one permute on each side.
"""
import math

from needle import init, ops

from .nn_module import Module, Parameter
from .nn_norm import BatchNorm1d

_TO_NHWC = (0, 2, 3, 1)
_TO_NCHW = (0, 3, 1, 2)


def _single(name, value):
    """The course passes ``kernel_size``/``stride`` as an int or a square pair: an int."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f"{name} must be an int or a square pair, got {value!r}")
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _check_nchw(layer, x, channels=None):
    if x.ndim != 4 or (channels is not None and x.shape[1] != channels):
        want = f"(N, {channels}, H, W)" if channels is not None else "(N, C, H, W)"
        raise ValueError(f"{layer}: input must be NCHW {want}, got shape {x.shape}")


class Conv(Module):
    """2-D convolution with "same" padding (``kernel_size // 2``): NCHW in, NCHW out.

    ``Conv(in_channels, out_channels, kernel_size, stride=1, bias=True, device=None, dtype="float32")``.
    ``weight`` is (k, k, in, out) from ``kaiming_uniform(in*k*k, out*k*k, shape=...)``; ``bias``
    is (out,) uniform in +-1/sqrt(in*k*k), drawn after the weight.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, bias=True, device=None, dtype="float32"):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _single("kernel_size", kernel_size)
        self.stride = _single("stride", stride)
        self.padding = self.kernel_size // 2
        k = self.kernel_size
        self.weight = Parameter(init.kaiming_uniform(in_channels * k * k, out_channels * k * k,
                                                     shape=(k, k, in_channels, out_channels),
                                                     device=device, dtype=dtype))
        self.bias = None
        if bias:
            bound = 1.0 / math.sqrt(in_channels * k * k)
            self.bias = Parameter(init.rand(out_channels, low=-bound, high=bound, device=device, dtype=dtype))

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"bias={self.bias is not None}")

    def forward(self, x):
        _check_nchw("Conv", x, self.in_channels)
        x = ops.permute(x, _TO_NHWC)
        bias = self.bias
        if bias is not None and bias.dtype == self.weight.dtype == x.dtype:  # the conv adds it: one op
            out = ops.conv(x, self.weight, stride=self.stride, padding=self.padding, bias=bias)
        else:
            out = ops.conv(x, self.weight, stride=self.stride, padding=self.padding)
            if bias is not None:  # mixed dtypes: promoted by the add
                out = out + ops.broadcast_to(ops.reshape(bias, (1, 1, 1, self.out_channels)), out.shape)
        return ops.permute(out, _TO_NCHW)


class BatchNorm2d(BatchNorm1d):
    """Batch normalisation of each channel of NCHW inputs, over the batch and both spatial axes.

    Same parameters, buffers and running-statistics rule as :class:`BatchNorm1d` (``dim`` is the
    number of channels).
    """

    def forward(self, x):
        _check_nchw(f"BatchNorm2d({self.dim})", x, self.dim)
        n, c, h, w = x.shape
        out = self._fused(x, n * h * w, nchw=True)  # on the NCHW tensor itself: no permute ops
        if out is not None:
            return out
        flat = ops.reshape(ops.permute(x, _TO_NHWC), (n * h * w, c))
        out = super().forward(flat)
        return ops.permute(ops.reshape(out, (n, h, w, c)), _TO_NCHW)


class _Pool2d(Module):
    _op = None

    def __init__(self, kernel_size, stride=None, padding=0, device=None, dtype="float32"):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"

    def forward(self, x):
        _check_nchw(type(self).__name__, x)
        pool = type(self)._op
        return ops.permute(pool(ops.permute(x, _TO_NHWC), self.kernel_size, self.stride, self.padding), _TO_NCHW)


class MaxPool2d(_Pool2d):
    """Max over (k, k) windows of NCHW inputs (stride defaults to ``kernel_size``; padding counts as -inf)."""

    _op = staticmethod(ops.max_pool2d)


class AvgPool2d(_Pool2d):
    """Mean over (k, k) windows of NCHW inputs (stride defaults to ``kernel_size``; zero padding counts)."""

    _op = staticmethod(ops.avg_pool2d)
