"""Normalisation layers. Variances are computed in two passes (mean first, then the mean of
squared deviations), which loses less precision than E[x^2] - E[x]^2."""
from needle import init, ops

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
    """
    old, new = running.realize_cached_data(), batch.realize_cached_data()
    if new.dtype != old.dtype:
        new = new.astype(old.dtype)
    if old.is_compact():  # in place: the buffer stays the same across steps (needle.jit captures it)
        old.imul(1 - m).iadd(new * m)
    else:
        running.cached_data = old * (1 - m) + new * m


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

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"BatchNorm1d({self.dim}): input must be (batch, {self.dim}), got shape {x.shape}")
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
