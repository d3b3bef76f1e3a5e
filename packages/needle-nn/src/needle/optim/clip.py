"""Gradient clipping by global norm."""
import math

from needle.autograd import Tensor


def clip_grad_norm(parameters, max_norm, eps=1e-6):
    """Scale all gradients so that their global L2 norm is at most ``max_norm``.

    The norm is taken over every gradient together. When it exceeds ``max_norm`` each
    ``.grad`` is replaced by a scaled copy (never modified in place) with factor
    ``max_norm / (norm + eps)``. Parameters without a gradient are skipped.
    Returns the norm before clipping, as a float.
    """
    if max_norm <= 0:
        raise ValueError(f"clip_grad_norm: max_norm must be > 0, got {max_norm}")
    params = [p for p in parameters if getattr(p, "grad", None) is not None]
    if not params:
        return 0.0
    grads = [p.grad.realize_cached_data() for p in params]
    # Sum on the device, one running sum per (device, dtype) since arrays of different kinds do
    # not add; one transfer to the host per sum at the end.
    totals = {}
    for g in grads:
        key = (str(g.device), g.dtype)
        square = (g * g).sum()
        totals[key] = square if key not in totals else totals[key] + square
    norm = math.sqrt(sum(float(total.numpy()) for total in totals.values()))
    scale = max_norm / (norm + eps)
    if scale < 1.0:
        for p, g in zip(params, grads):
            p.grad = Tensor.make_const(g * scale)
    return norm


#: PyTorch's name (there the trailing underscore marks in-place; here .grad is replaced).
clip_grad_norm_ = clip_grad_norm
