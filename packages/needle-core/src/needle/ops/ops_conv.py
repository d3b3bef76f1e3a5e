"""Convolution and pooling on NHWC tensors.

Forward convolution is one strided "im2col" view of the padded input, compacted once and
multiplied by the weight as a single matrix product: no Python loop over pixels. A backend
may advertise a native kernel instead (see :data:`CONV_KERNEL`); core falls back on
im2col + matmul when it does not.

Gradients are built from ops, so they are graph tensors (and can be differentiated again):
the input's gradient is a convolution of the (dilated) output gradient with the flipped
weight, as in the course; the weight's gradient is ``im2col(x)^T @ out_grad``.
Pooling is a window view (:func:`im2col`) reduced with ``max``/``mean``; the adjoint of the
window view, :func:`col2im`, adds every window back into place.
"""
import builtins
import math

from ..autograd import NDArray, Tensor, TensorOp, is_grad_enabled
from .ops_mathematic import (
    _check_pair, dilate, flip, get_item, matmul_tn, max, mean, pad, reshape, summation, transpose,
)

#: Optional backend kernel name: ``conv2d_nhwc(a, b, out, n, h, w, c_in, c_out, kh, kw, sh, sw)``
#: with ``a`` the compact, already padded input (n, h, w, c_in), ``b`` the compact weight
#: (kh, kw, c_in, c_out) and ``out`` the compact output (n, (h-kh)//sh+1, (w-kw)//sw+1, c_out).
CONV_KERNEL = "conv2d_nhwc"
#: Optional fused kernel for the weight gradient without a graph (see ``contract.Backend``).
GRAD_WEIGHT_KERNEL = "conv2d_nhwc_grad_weight"
#: Optional variants of both on the unpadded input, the zero padding applied inside the kernel.
PADDED_KERNEL = "conv2d_nhwc_padded"
GRAD_WEIGHT_PADDED_KERNEL = "conv2d_nhwc_grad_weight_padded"
#: Optional kernel for the input gradient without a graph: g @ W^T, its windows added back into place.
GRAD_INPUT_KERNEL = "conv2d_nhwc_grad_input_padded"


# ---- argument handling ---------------------------------------------------------------------------
def _pair(name, value, minimum):
    """``value`` (int or pair of ints) as a pair, each at least ``minimum``."""
    if isinstance(value, (tuple, list)):
        pair = tuple(value)
    else:
        pair = (value, value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def _out_size(size, kernel, stride):
    return (size - kernel) // stride + 1


# ---- NDArray helpers -------------------------------------------------------------------------------
def _windows(a: NDArray, kernel, stride) -> NDArray:
    """The (N, Ho, Wo, kh, kw, C) view of every window of compact ``a`` (N, H, W, C): no copy."""
    n, h, w, c = a.shape
    (kh, kw), (sh, sw) = kernel, stride
    s_n, s_h, s_w, s_c = a.strides
    shape = (n, _out_size(h, kh, sh), _out_size(w, kw, sw), kh, kw, c)
    return a.as_strided(shape, (s_n, s_h * sh, s_w * sw, s_h, s_w, s_c))


def im2col_array(a: NDArray, kernel, stride) -> NDArray:
    """Compact (N, Ho, Wo, kh, kw, C) copy of the windows of ``a`` (one strided copy)."""
    return _windows(a.compact(), kernel, stride).compact()


def col2im_array(cols: NDArray, in_shape, stride) -> NDArray:
    """Adjoint of :func:`im2col_array`: add each window of ``cols`` into an (N, H, W, C) array."""
    n, ho, wo, kh, kw, c = cols.shape
    sh, sw = stride
    out = cols.device.full(tuple(in_shape), 0.0, dtype=cols.dtype)
    if sh >= kh and sw >= kw:
        # Windows do not overlap (typical pooling): one scatter writes them all.
        out._assign(_windows(out, (kh, kw), stride), cols)
        return out
    # Overlapping windows: one strided add per kernel offset (kh * kw of them, not per pixel).
    for i in range(kh):
        for j in range(kw):
            view = (slice(None), slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw))
            out[view] = out[view] + cols[:, :, :, i, j, :].reshape((n, ho, wo, c))
    return out


def _pad_spatial(a: NDArray, padding) -> NDArray:
    (ph, pw) = padding
    return a.pad(((0, 0), (ph, ph), (pw, pw), (0, 0))) if (ph or pw) else a


def conv_array(a: NDArray, b: NDArray, stride, padding, padded=None) -> NDArray:
    """NHWC convolution of NDArrays: the backend's native kernel, else im2col + one matmul.

    ``padded``: a list that receives ``(input, padding)``, the compact input the kernel read and the
    padding still to apply to it (kept by :class:`Conv` for its weight gradient, so the backward pads
    nothing again)."""
    (sh, sw), (ph, pw) = stride, padding
    b = b.compact()
    kh, kw, _, c_out = b.shape
    kernel = a.device.fused(PADDED_KERNEL, a.dtype) if (ph or pw) else None
    if kernel is not None:  # zero padding applied inside the kernel: no padded copy
        a = a.compact()
        if padded is not None:
            padded.append((a, (ph, pw)))
        n, h, w, c_in = a.shape
        out = NDArray.make((n, _out_size(h + 2 * ph, kh, sh), _out_size(w + 2 * pw, kw, sw), c_out), device=a.device,
                           dtype=a.dtype)
        kernel(a._handle, b._handle, out._handle, n, h, w, c_in, c_out, kh, kw, sh, sw, ph, pw)
        return out
    a = _pad_spatial(a, padding).compact()
    if padded is not None:
        padded.append((a, (0, 0)))
    n, h, w, c_in = a.shape
    ho, wo = _out_size(h, kh, sh), _out_size(w, kw, sw)
    kernel = a.device.fused(CONV_KERNEL, a.dtype)
    if kernel is not None:
        out = NDArray.make((n, ho, wo, c_out), device=a.device, dtype=a.dtype)
        kernel(a._handle, b._handle, out._handle, n, h, w, c_in, c_out, kh, kw, sh, sw)
        return out
    cols = im2col_array(a, (kh, kw), (sh, sw)).reshape((n * ho * wo, kh * kw * c_in))
    return (cols @ b.reshape((kh * kw * c_in, c_out))).reshape((n, ho, wo, c_out))


# ---- window ops ------------------------------------------------------------------------------------
class Im2Col(TensorOp):
    """Every (kh, kw) window of an NHWC tensor: (N, H, W, C) -> (N, Ho, Wo, kh, kw, C)."""

    def __init__(self, kernel_size, stride=1):
        self.kernel = _pair("kernel_size", kernel_size, 1)
        self.stride = _pair("stride", stride, 1)

    def compute(self, a: NDArray):
        return im2col_array(a, self.kernel, self.stride)

    def gradient(self, out_grad, node):
        return Col2Im(node.inputs[0].shape, self.stride)(out_grad)


class Col2Im(TensorOp):
    """Adjoint of :class:`Im2Col`: windows (N, Ho, Wo, kh, kw, C) summed back into ``in_shape``."""

    def __init__(self, in_shape, stride=1):
        self.in_shape = tuple(in_shape)
        self.stride = _pair("stride", stride, 1)

    def compute(self, cols: NDArray):
        return col2im_array(cols, self.in_shape, self.stride)

    def gradient(self, out_grad, node):
        kh, kw = node.inputs[0].shape[3:5]
        return Im2Col((kh, kw), self.stride)(out_grad)


def _check_nhwc(name, a):
    if not isinstance(a, Tensor):
        raise TypeError(f"{name}: expected a Tensor, got {type(a).__name__}")
    if len(a.shape) != 4:
        raise ValueError(f"{name}: input must be NHWC with 4 dimensions, got shape {a.shape}")


def im2col(a, kernel_size, stride=1):
    """Windows of the NHWC tensor ``a``: shape (N, Ho, Wo, kh, kw, C), Ho = (H - kh) // stride + 1."""
    _check_nhwc("im2col", a)
    kernel, stride_ = _pair("kernel_size", kernel_size, 1), _pair("stride", stride, 1)
    if kernel[0] > a.shape[1] or kernel[1] > a.shape[2]:
        raise ValueError(f"im2col: kernel_size {kernel} is larger than the input's spatial size "
                         f"{a.shape[1:3]} (input shape {a.shape})")
    return Im2Col(kernel, stride_)(a)


def col2im(cols, in_shape, stride=1):
    """Sum the windows ``cols`` (N, Ho, Wo, kh, kw, C) back into an NHWC tensor of ``in_shape``."""
    in_shape, stride_ = tuple(in_shape), _pair("stride", stride, 1)
    n, ho, wo, kh, kw, c = cols.shape
    expect = (in_shape[0], _out_size(in_shape[1], kh, stride_[0]), _out_size(in_shape[2], kw, stride_[1]),
              kh, kw, in_shape[3])
    if len(in_shape) != 4 or cols.shape != expect:
        raise ValueError(f"col2im: windows of shape {cols.shape} do not fit in_shape {in_shape} with stride {stride}")
    return Col2Im(in_shape, stride_)(cols)


# ---- convolution -----------------------------------------------------------------------------------
def _crop_or_pad_array(a: NDArray, axis, start, length) -> NDArray:
    """:func:`_crop_or_pad` on an NDArray: ``a[start:start+length]`` along ``axis``, zero-filled past the end."""
    size = a.shape[axis]
    if start == 0 and length == size:
        return a
    stop = builtins.min(start + length, size)
    index = [slice(None)] * a.ndim
    index[axis] = slice(start, stop)
    a = a[tuple(index)]
    if stop - start < length:
        widths = [(0, 0)] * a.ndim
        widths[axis] = (0, length - (stop - start))
        a = a.pad(tuple(widths))
    return a


def _crop_or_pad(t, axis, start, length):
    """``t[start:start+length]`` along ``axis``, zero-filled where that runs past the end."""
    size = t.shape[axis]
    if start == 0 and length == size:
        return t
    stop = min(start + length, size)
    index = [slice(None)] * len(t.shape)
    index[axis] = slice(start, stop)
    t = get_item(t, tuple(index))
    if stop - start < length:
        widths = [(0, 0)] * len(t.shape)
        widths[axis] = (0, length - (stop - start))
        t = pad(t, widths)
    return t


class Conv(TensorOp):
    """NHWC convolution (cross-correlation, as in the course) of ``a`` with weight ``b``, plus an
    optional per-channel ``bias`` (a third input, (C_out,))."""

    def __init__(self, stride=1, padding=1):
        self.stride = _pair("stride", stride, 1)
        self.padding = _pair("padding", padding, 0)
        self._padded = None

    def compute(self, a: NDArray, b: NDArray, bias: NDArray = None):
        # The padded input is the weight gradient's operand: kept (not re-padded in the backward).
        padded = [] if is_grad_enabled() else None
        out = conv_array(a, b, self.stride, self.padding, padded)
        self._padded = padded[0] if padded else None
        if bias is not None:
            out = out + bias.reshape((1, 1, 1, bias.shape[0])).broadcast_to(out.shape)
        return out

    def gradient(self, out_grad, node):
        x, w = node.inputs[:2]
        bias = node.inputs[2] if len(node.inputs) > 2 else None
        if not is_grad_enabled():  # no graph wanted: the same gradients on the arrays, no graph ops
            grads = self._array_gradient(out_grad.realize_cached_data(), x, w, bias)
            return tuple(None if g is None else Tensor.make_const(g) for g in grads)
        # An input that needs no gradient (the images fed to a first layer) gets None: the
        # autograd skips it, and its convolution-sized work is never done.
        grad_x = self._grad_input(out_grad, x, w) if x.requires_grad else None
        grad_w = self._grad_weight(out_grad, x, w) if w.requires_grad else None
        if bias is None:
            return grad_x, grad_w
        return grad_x, grad_w, summation(out_grad, (0, 1, 2)) if bias.requires_grad else None

    def _array_gradient(self, g: NDArray, x, w, bias):
        """(grad_x, grad_w[, grad_bias]) as NDArrays, by the same algebra as the graph gradients below."""
        kh, kw, c_in, c_out = w.shape
        n, ho, wo = g.shape[:3]
        grads = [None, None]
        grad_input = g.device.fused(GRAD_INPUT_KERNEL, g.dtype) if x.requires_grad else None
        if grad_input is not None:  # no spread gradient, no flipped weight: W read transposed in place
            grads[0] = NDArray._fresh(tuple(x.shape), g.device, g.dtype)
            gc, wc = g.compact(), w.realize_cached_data().compact()
            grad_input(gc._handle, wc._handle, grads[0]._handle, n, x.shape[1], x.shape[2], c_in, c_out, kh, kw,
                       *self.stride, *self.padding)
        elif x.requires_grad:
            # The output gradient spread to stride 1 (one fill, one strided write; nothing to spread at
            # stride 1), then a correlation with the flipped weight, zero-padded by k - 1 - p.
            (sh, sw), pads, lengths = self.stride, [], []
            for k, p, size in zip((kh, kw), self.padding, x.shape[1:3]):
                pads.append(builtins.max(k - 1 - p, 0))
                lengths.append(size + 2 * p - k + 1)
            spread = g
            if (sh, sw) != (1, 1):
                spread = g.device.full((n, lengths[0], lengths[1], c_out), 0.0, dtype=g.dtype)
                spread[:, 0:(ho - 1) * sh + 1:sh, 0:(wo - 1) * sw + 1:sw, :] = g
            w_flip = w.realize_cached_data().flip((0, 1)).permute((0, 1, 3, 2))
            grad_x = conv_array(spread, w_flip, (1, 1), tuple(pads))
            for axis, (k, p, q, size) in enumerate(zip((kh, kw), self.padding, pads, x.shape[1:3]), start=1):
                grad_x = _crop_or_pad_array(grad_x, axis, p - (k - 1 - q), size)
            grads[0] = grad_x
        rows = n * ho * wo
        g2 = g.compact().reshape((rows, c_out)) if (w.requires_grad or bias is not None) else None
        if w.requires_grad:
            xp, (ph, pw) = self._padded or (x.realize_cached_data().compact(), self.padding)
            kernel = g.device.fused(GRAD_WEIGHT_PADDED_KERNEL, g.dtype) if (ph or pw) else None
            if kernel is not None:  # padding applied inside the kernel, as in the forward
                grads[1] = NDArray._fresh((kh, kw, c_in, c_out), g.device, g.dtype)
                kernel(xp._handle, g2._handle, grads[1]._handle, n, xp.shape[1], xp.shape[2], c_in, c_out, kh, kw,
                       *self.stride, ph, pw)
            else:
                xp = _pad_spatial(xp, (ph, pw)).compact()
                kernel = g.device.fused(GRAD_WEIGHT_KERNEL, g.dtype)
                if kernel is not None:  # the windows gathered a block at a time, never all at once
                    grads[1] = NDArray._fresh((kh, kw, c_in, c_out), g.device, g.dtype)
                    kernel(xp._handle, g2._handle, grads[1]._handle, n, xp.shape[1], xp.shape[2], c_in, c_out, kh,
                           kw, *self.stride)
                else:
                    cols = im2col_array(xp, (kh, kw), self.stride).reshape((rows, kh * kw * c_in))
                    grads[1] = cols.matmul_tn(g2).reshape((kh, kw, c_in, c_out))
        self._padded = None
        if bias is not None:
            grads.append(g2.sum(axis=0) if bias.requires_grad else None)
        return grads

    def _grad_input(self, out_grad, x, w):
        # Spread the output gradient back to stride 1 (dilate, then trim to the stride-1
        # output length, padded size - k + 1), then a full correlation with the flipped weight.
        kh, kw = w.shape[:2]
        h, wd = x.shape[1:3]
        g = out_grad
        pads = []
        for axis, (k, s, p, size) in enumerate(zip((kh, kw), self.stride, self.padding, (h, wd)), start=1):
            if s > 1:
                g = dilate(g, (axis,), s - 1)
                g = _crop_or_pad(g, axis, 0, size + 2 * p - k + 1)
            pads.append(builtins.max(k - 1 - p, 0))
        w_flip = transpose(flip(w, (0, 1)), (2, 3))  # (kh, kw, c_out, c_in)
        grad_x = Conv(1, tuple(pads))(g, w_flip)
        # Output index i of that correlation is padded-input position i + (k - 1 - q); keep
        # the positions of the unpadded input, zero-filling any the windows never reached.
        for axis, (k, p, q, size) in enumerate(zip((kh, kw), self.padding, pads, (h, wd)), start=1):
            grad_x = _crop_or_pad(grad_x, axis, p - (k - 1 - q), size)
        return grad_x

    def _grad_weight(self, out_grad, x, w):
        # (windows of the padded input)^T @ output gradient, as one matmul_tn (the backend's
        # kernel reads the windows transposed in place; without it, core transposes a copy).
        kh, kw, c_in, c_out = w.shape
        n, ho, wo = out_grad.shape[:3]
        ph, pw = self.padding
        xp = pad(x, ((0, 0), (ph, ph), (pw, pw), (0, 0))) if (ph or pw) else x
        rows = n * ho * wo
        cols = reshape(Im2Col((kh, kw), self.stride)(xp), (rows, kh * kw * c_in))
        g = reshape(out_grad, (rows, c_out))
        return reshape(matmul_tn(cols, g), (kh, kw, c_in, c_out))


def conv(a, b, stride=1, padding=1, bias=None):
    """2-D convolution: ``a`` NHWC (N, H, W, C_in), weight ``b`` (K, K, C_in, C_out).

    ``stride`` and ``padding`` (zero fill on both sides) are ints or (h, w) pairs; the
    output is (N, (H + 2p - K) // stride + 1, (W + 2p - K) // stride + 1, C_out). ``bias``, a
    (C_out,) Tensor of the inputs' dtype and device, is added to every output pixel (one op).
    """
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        bad = a if not isinstance(a, Tensor) else b
        raise TypeError(f"conv: expected Tensors, got {type(bad).__name__}")
    if len(a.shape) != 4:
        raise ValueError(f"conv: input a must be NHWC with 4 dimensions, got shape {a.shape}")
    if len(b.shape) != 4:
        raise ValueError(f"conv: weight b must be (K, K, C_in, C_out), got shape {b.shape}")
    if a.shape[3] != b.shape[2]:
        raise ValueError(f"conv: input a has {a.shape[3]} channels (shape {a.shape}) but weight b "
                         f"expects {b.shape[2]} (shape {b.shape})")
    a, b = _check_pair("conv", a, b)  # one device; a float32/float64 mix is promoted, as elsewhere
    stride_, padding_ = _pair("stride", stride, 1), _pair("padding", padding, 0)
    if bias is not None and (not isinstance(bias, Tensor) or tuple(bias.shape) != (b.shape[3],)
                             or bias.dtype != a.dtype or bias.device != a.device):
        raise ValueError(f"conv: bias must be a ({b.shape[3]},) Tensor of dtype {a.dtype} on {a.device}, got "
                         f"{getattr(bias, 'shape', type(bias).__name__)}")
    for size, k, p, dim in zip(a.shape[1:3], b.shape[:2], padding_, ("height", "width")):
        if size + 2 * p < k:
            raise ValueError(f"conv: kernel {dim} {k} exceeds the padded input {dim} {size + 2 * p} "
                             f"(input shape {a.shape}, padding {padding})")
    if bias is None:
        return Conv(stride_, padding_)(a, b)
    return Conv(stride_, padding_)(a, b, bias)


# ---- pooling ---------------------------------------------------------------------------------------
class _PadValue(TensorOp):
    """Pad the spatial axes of an NHWC tensor with a constant (``-inf`` for max pooling)."""

    def __init__(self, padding, value):
        self.padding = padding
        self.value = value

    def _inner(self, shape):
        (ph, pw) = self.padding
        return (slice(None), slice(ph, ph + shape[1]), slice(pw, pw + shape[2]), slice(None))

    def compute(self, a: NDArray):
        (ph, pw) = self.padding
        n, h, w, c = a.shape
        out = a.device.full((n, h + 2 * ph, w + 2 * pw, c), self.value, dtype=a.dtype)
        out[self._inner(a.shape)] = a
        return out

    def gradient(self, out_grad, node):
        return get_item(out_grad, self._inner(node.inputs[0].shape))


def _pool_args(name, a, kernel_size, stride, padding):
    _check_nhwc(name, a)
    kernel = _pair("kernel_size", kernel_size, 1)
    stride_ = kernel if stride is None else _pair("stride", stride, 1)
    padding_ = _pair("padding", padding, 0)
    if padding_[0] > kernel[0] // 2 or padding_[1] > kernel[1] // 2:
        raise ValueError(f"{name}: padding {padding} must be at most half the kernel_size {kernel_size}")
    for size, k, p in zip(a.shape[1:3], kernel, padding_):
        if size + 2 * p < k:
            raise ValueError(f"{name}: kernel_size {kernel_size} exceeds the padded input (input shape {a.shape})")
    return kernel, stride_, padding_


def max_pool2d(a, kernel_size, stride=None, padding=0):
    """Max pooling of the NHWC tensor ``a`` over (kh, kw) windows (stride defaults to the kernel).

    Padding counts as ``-inf``; the gradient is shared evenly between tied maxima.
    """
    kernel, stride_, padding_ = _pool_args("max_pool2d", a, kernel_size, stride, padding)
    if padding_ != (0, 0):
        a = _PadValue(padding_, -math.inf)(a)
    return max(Im2Col(kernel, stride_)(a), axes=(3, 4))


def avg_pool2d(a, kernel_size, stride=None, padding=0):
    """Average pooling of the NHWC tensor ``a`` (zero padding counts in the average)."""
    kernel, stride_, padding_ = _pool_args("avg_pool2d", a, kernel_size, stride, padding)
    if padding_ != (0, 0):
        a = pad(a, ((0, 0), (padding_[0],) * 2, (padding_[1],) * 2, (0, 0)))
    return mean(Im2Col(kernel, stride_)(a), axes=(3, 4))
