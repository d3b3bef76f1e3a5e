"""Gradient-ready hooks: call a function as soon as a leaf's ``.grad`` is final during backward.

The reverse sweep visits every user of a leaf before the leaf itself, so when it assigns a leaf's
``.grad`` no later step of the same sweep changes it. A hook registered here runs right there,
while the rest of the graph (the earlier layers) is still being differentiated. Uses: starting a
gradient's all-reduce while backward goes on (needle-dist), clipping or logging per layer,
offloading a gradient as soon as it exists.

    >>> import needle as ndl
    >>> w = ndl.Tensor([1.0, -2.0], requires_grad=True)
    >>> seen = []
    >>> handle = ndl.register_grad_ready_hook(w, lambda t: seen.append(t.grad.numpy().tolist()))
    >>> (w * w).sum().backward()
    >>> seen
    [[2.0, -4.0]]
    >>> handle.remove()

Only ``backward()`` fires hooks (not ``needle.autograd.gradients``, which sets no ``.grad``).
PyTorch's nearest equivalent is ``Tensor.register_post_accumulate_grad_hook``.
"""
import itertools
import weakref

__all__ = ["GradReadyHookHandle", "register_grad_ready_hook"]

# id(tensor) -> {key: fn}. Kept outside the tensor (so copying or pickling a tensor never copies
# its hooks) and dropped when the tensor is collected.
_HOOKS = {}
_keys = itertools.count()


class GradReadyHookHandle:
    """Returned by :func:`register_grad_ready_hook`; ``remove()`` unregisters the hook (idempotent)."""

    __slots__ = ("_hooks", "_key")

    def __init__(self, hooks, key):
        self._hooks, self._key = hooks, key

    def remove(self):
        self._hooks.pop(self._key, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def register_grad_ready_hook(tensor, fn):
    """Call ``fn(tensor)`` during each ``backward()`` as soon as ``tensor.grad`` is final.

    ``tensor``: a leaf Tensor that requires grad (a Parameter, or a Tensor made with
    ``requires_grad=True``); ``fn``: a callable taking the tensor. The hook runs once per backward
    pass that reaches ``tensor``, after ``tensor.grad`` holds the full gradient of that pass (the
    sum over all its uses) and before the sweep goes on to the tensors computed before it; it
    may read ``tensor.grad`` or replace it (e.g. with a clipped copy). Several hooks on one
    tensor run in the order they were registered. An exception in a hook stops the backward
    pass and propagates. Returns a handle whose ``remove()`` unregisters the hook; it also works
    as a context manager that removes the hook on exit.
    """
    if not callable(fn):
        raise TypeError(f"register_grad_ready_hook: fn must be callable, got {type(fn).__name__}")
    if not hasattr(tensor, "is_leaf") or not hasattr(tensor, "requires_grad"):
        raise TypeError(f"register_grad_ready_hook: tensor must be a needle Tensor, got {type(tensor).__name__}")
    if not tensor.is_leaf():
        raise ValueError("register_grad_ready_hook: tensor must be a leaf (a Parameter or a Tensor made with "
                         "requires_grad=True); a computed tensor gets no .grad")
    if not tensor.requires_grad:
        raise ValueError("register_grad_ready_hook: tensor does not require grad, so backward never gives it "
                         "a .grad (make it with requires_grad=True)")
    hooks = _HOOKS.get(id(tensor))
    if hooks is None:
        hooks = _HOOKS[id(tensor)] = {}
        weakref.finalize(tensor, _HOOKS.pop, id(tensor), None)
    key = next(_keys)
    hooks[key] = fn
    return GradReadyHookHandle(hooks, key)


def grad_ready(leaf):
    """Run ``leaf``'s hooks: the backward sweep calls this right after it assigns ``leaf.grad``."""
    hooks = _HOOKS.get(id(leaf)) if _HOOKS else None
    if hooks:
        for fn in list(hooks.values()):  # a hook may remove itself
            fn(leaf)
