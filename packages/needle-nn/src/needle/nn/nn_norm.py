"""Normalisation layers. Variances are computed in two passes (mean first, then the mean of
squared deviations), which loses less precision than E[x^2] - E[x]^2."""
from needle import init, ops
from needle.autograd import NDArray, Tensor, TensorOp, is_grad_enabled

from .nn_module import Module, Parameter


def _normalise(x, axes, kept):
    """(x - mean) / sqrt(var + eps) pieces over ``axes``: returns (centered, mean, var)."""
    count = 1
    for axis in axes:
        count *= x.shape[axis]
    mean = ops.summation(x, axes) / count
    centered = x - ops.broadcast_to(ops.reshape(mean, kept), x.shape)
    var = ops.summation(centered * centered, axes) / count
    return centered, mean, var


def _blend_into(running, batch, m):
    """``running = (1 - m) * running + m * batch`` on the stored arrays, keeping the buffer's dtype.

    A float64 input to a float32 layer is promoted (core's rule), so its batch statistics are
    float64; the buffer stays float32, as it is saved and loaded in the module's dtype.
    ``batch`` is a Tensor or an NDArray.
    """
    old = running.realize_cached_data()
    new = batch if isinstance(batch, NDArray) else batch.realize_cached_data()
    if new.dtype != old.dtype:
        new = new.astype(old.dtype)
    if old.is_compact():  # in place: the buffer stays the same across steps (needle.jit captures it)
        old.imul(1 - m).iadd(new * m)
    else:
        running.cached_data = old * (1 - m) + new * m


def _fused_kernels(x, weight, bias):
    """The backend's (batchnorm_forward, batchnorm_backward) for these operands, or None (compose)."""
    device, dtype = x.device, x.dtype
    if weight.dtype != dtype or bias.dtype != dtype or weight.device != device or bias.device != device:
        return None  # mixed dtypes are promoted by the composed ops
    forward, backward = device.fused("batchnorm_forward", dtype), device.fused("batchnorm_backward", dtype)
    return None if forward is None or backward is None else (forward, backward)


_TO_NHWC, _TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


class _BatchNormTrain(TensorOp):
    """Training-mode batch normalisation with the backend's fused kernels: of x (m, c) over its rows,
    or (``nchw``) of an NCHW x over all but its channel axis (its NHWC rows: an NCHW view of NHWC
    data, as ``nn.Conv`` returns, is normalised in place, without a copy).

    The batch mean and biased variance are left on the op (``mean``, ``var``) for the running
    statistics. Without a graph the gradient is one kernel call; with one (``create_graph``) it is
    also composed from ops, so it can be differentiated again.
    """

    def __init__(self, eps, kernels, nchw=False):
        self.eps, self.kernels, self.nchw = eps, kernels, nchw
        self.mean = self.var = None

    def _rows(self, a: NDArray) -> NDArray:
        if self.nchw:
            n, c, h, w = a.shape
            return a.permute(_TO_NHWC).compact().reshape((n * h * w, c))
        return a.compact()

    def _unrows(self, a: NDArray, shape) -> NDArray:
        if self.nchw:
            n, c, h, w = shape
            return a.reshape((n, h, w, c)).permute(_TO_NCHW)
        return a

    def compute(self, x: NDArray, weight: NDArray, bias: NDArray):
        shape = x.shape
        x, weight, bias = self._rows(x), weight.compact(), bias.compact()
        m, c = x.shape
        out = NDArray._fresh((m, c), x.device, x.dtype)
        self.mean, self.var = NDArray._fresh((c,), x.device, x.dtype), NDArray._fresh((c,), x.device, x.dtype)
        self.kernels[0](x._handle, weight._handle, bias._handle, out._handle, self.mean._handle, self.var._handle,
                        m, c, float(self.eps))
        return self._unrows(out, shape)

    def gradient(self, out_grad, node):
        x, weight, bias = node.inputs
        xd, wd = self._rows(x.realize_cached_data()), weight.realize_cached_data().compact()
        g = self._rows(out_grad.realize_cached_data())
        m, c = xd.shape
        grad_x = NDArray._fresh((m, c), xd.device, xd.dtype)
        grad_w, grad_b = NDArray._fresh((c,), xd.device, xd.dtype), NDArray._fresh((c,), xd.device, xd.dtype)
        self.kernels[1](xd._handle, g._handle, wd._handle, self.mean._handle, self.var._handle, grad_x._handle,
                        grad_w._handle, grad_b._handle, m, c, float(self.eps))
        values = (Tensor.make_const(self._unrows(grad_x, x.shape)), Tensor.make_const(grad_w),
                  Tensor.make_const(grad_b))
        if not is_grad_enabled():
            return values
        # A graph is wanted: the composed gradient's derivative, with the kernel's values exactly
        # (value + (graph - graph) is the value in floating point), so a gradient taken with a graph
        # equals one taken without (gradient checkpointing compares the two).
        if self.nchw:
            n, c, h, w = x.shape
            x2, g2 = (ops.reshape(ops.permute(t, _TO_NHWC), (n * h * w, c)) for t in (x, out_grad))
            graph = list(_graph_gradient(x2, weight, g2, self.eps))
            graph[0] = ops.permute(ops.reshape(graph[0], (n, h, w, c)), _TO_NCHW)
        else:
            graph = _graph_gradient(x, weight, out_grad, self.eps)
        return tuple(v + (t - t.detach()) for v, t in zip(values, graph))


def _graph_gradient(x, weight, g, eps):
    """The fused op's gradients composed from ops (differentiable again), statistics recomputed from x."""
    m, c = x.shape
    kept = (1, c)

    def wide(t):
        return ops.broadcast_to(ops.reshape(t, kept), x.shape)

    centered, _, var = _normalise(x, (0,), kept)
    inv = (var + eps) ** -0.5
    xhat = centered * wide(inv)
    grad_b = ops.summation(g, (0,))
    grad_w = ops.summation(g * xhat, (0,))
    grad_x = wide(weight * inv) * (g - wide(grad_b / m) - xhat * wide(grad_w / m))
    return grad_x, grad_w, grad_b


class BatchNorm1d(Module):
    """Normalise each feature of (N, dim) inputs over the batch.

    Training uses the batch's mean and biased variance and updates the running statistics
    ``new = (1 - momentum) * old + momentum * batch``; eval uses the running statistics.
    ``weight``/``bias`` are (dim,) Parameters; ``running_mean``/``running_var`` are (dim,) plain
    tensors (buffers: saved in the state dict, never optimised).
    """

    def __init__(self, dim, eps=1e-5, momentum=0.1, device=None, dtype="float32"):
        super().__init__()
        self.dim, self.eps, self.momentum = dim, eps, momentum
        self.weight = Parameter(init.ones(dim, device=device, dtype=dtype))
        self.bias = Parameter(init.zeros(dim, device=device, dtype=dtype))
        self.register_buffer("running_mean", init.zeros(dim, device=device, dtype=dtype))
        self.register_buffer("running_var", init.ones(dim, device=device, dtype=dtype))

    def extra_repr(self):
        return f"{self.dim}, eps={self.eps}, momentum={self.momentum}"

    def _fused(self, x, rows, nchw):
        """Training with the backend's fused kernels (one op each way instead of some twenty), else None."""
        kernels = _fused_kernels(x, self.weight, self.bias) if self.training and rows > 0 else None
        if kernels is None:
            return None
        op = _BatchNormTrain(self.eps, kernels, nchw)
        out = op(x, self.weight, self.bias)
        _blend_into(self.running_mean, op.mean, self.momentum)
        _blend_into(self.running_var, op.var, self.momentum)
        return out

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"BatchNorm1d({self.dim}): input must be (batch, {self.dim}), got shape {x.shape}")
        out = self._fused(x, x.shape[0], nchw=False)
        if out is not None:
            return out
        kept = (1, self.dim)
        if self.training:
            centered, mean, var = _normalise(x, (0,), kept)
            # Running statistics are data, not graph: update the stored arrays directly.
            _blend_into(self.running_mean, mean, self.momentum)
            _blend_into(self.running_var, var, self.momentum)
        else:
            centered = x - ops.broadcast_to(ops.reshape(self.running_mean.detach(), kept), x.shape)
            var = self.running_var.detach()
        std = ops.broadcast_to(ops.reshape((var + self.eps) ** 0.5, kept), x.shape)
        weight = ops.broadcast_to(ops.reshape(self.weight, kept), x.shape)
        bias = ops.broadcast_to(ops.reshape(self.bias, kept), x.shape)
        return weight * (centered / std) + bias


class LayerNorm1d(Module):
    """Normalise the last axis of inputs of any rank: ``weight * (x - mean) / sqrt(var + eps) + bias``.

    ``weight``/``bias`` are (dim,); the variance is the biased one.
    """

    def __init__(self, dim, eps=1e-5, device=None, dtype="float32"):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = Parameter(init.ones(dim, device=device, dtype=dtype))
        self.bias = Parameter(init.zeros(dim, device=device, dtype=dtype))

    @property
    def weights(self):
        """``weight`` under the name some course code uses (seed 000)."""
        return self.weight

    @weights.setter
    def weights(self, value):
        self.weight = value

    def extra_repr(self):
        return f"{self.dim}, eps={self.eps}"

    def forward(self, x):
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(f"LayerNorm1d({self.dim}): input must have {self.dim} features on its last axis, "
                             f"got shape {x.shape}")
        kept = x.shape[:-1] + (1,)
        centered, _, var = _normalise(x, (x.ndim - 1,), kept)
        std = ops.broadcast_to(ops.reshape((var + self.eps) ** 0.5, kept), x.shape)
        wide = (1,) * (x.ndim - 1) + (self.dim,)
        weight = ops.broadcast_to(ops.reshape(self.weight, wide), x.shape)
        bias = ops.broadcast_to(ops.reshape(self.bias, wide), x.shape)
        return weight * (centered / std) + bias
