"""Gradient checkpointing: trade compute for memory, as ``torch.utils.checkpoint``.

``checkpoint(function, *args)`` runs ``function`` once and keeps only its inputs and its output;
backward runs it again (with the random state and module buffers it saw the first time, so Dropout
draws the same mask and BatchNorm's running statistics are updated once) and takes the gradients
from that recomputed graph. ``checkpoint_sequential(functions, segments, input)`` applies it to
consecutive runs of a Sequential's modules (or a list of callables).

How it sits in the autograd: the checkpointed call is one node, of op :class:`Checkpoint`, whose
inputs are the tensor arguments and every leaf the function's graph reached that needs a gradient
(the segment's parameters, whether it is a Module or a closure), so each gets its gradient from
the outer backward as without checkpointing. The node's gradient is one node of
:class:`CheckpointBackward`, whose compute recomputes the function and sweeps its graph into plain
gradient arrays (nothing of the recomputed graph survives it: that is where memory is saved), and
whose own gradient recomputes once more with a graph, so a gradient of a gradient works wherever
the function's ops support it.
"""
import contextlib

import numpy as np

from .. import autograd
from ..autograd import Tensor, TensorOp, TensorTupleOp, gradients, is_grad_enabled, no_grad

__all__ = ["checkpoint", "checkpoint_sequential", "Checkpoint", "CheckpointBackward"]


@contextlib.contextmanager
def _grad_mode(enabled):
    """Record the graph (or not) inside the block, whatever the caller's mode."""
    previous = autograd._grad_enabled
    autograd._grad_enabled = enabled
    try:
        yield
    finally:
        autograd._grad_enabled = previous


@contextlib.contextmanager
def _replay(rng_state, modules):
    """Run the block with numpy's global generator at ``rng_state`` and leave the generator and the
    modules' buffers (BatchNorm's running statistics) as they were before the block."""
    saved_rng = np.random.get_state()
    # Values, not just arrays: a module may update its buffers in place (BatchNorm does).
    buffers = [(t, t.cached_data, t.cached_data.copy()) for m in modules for _, t in m.named_buffers()]
    np.random.set_state(rng_state)
    try:
        yield
    finally:
        np.random.set_state(saved_rng)
        for tensor, data, values in buffers:
            tensor.cached_data = data
            if data.is_compact():
                data.device.compact(values._handle, data._handle, data.shape, data.strides, 0)
            else:
                tensor.cached_data = values


def _modules_of(function):
    """The modules (objects with ``named_buffers``) whose buffers a call of ``function`` may update."""
    owner = getattr(function, "__self__", None)  # a bound method: its module
    return [m for m in (function, owner) if callable(getattr(m, "named_buffers", None))]


class Checkpoint(TensorOp):
    """The op of a checkpointed call; see the module docstring.

    ``args`` are the call's arguments with each Tensor replaced by None (the node's first inputs are
    those Tensors, in order; the rest are the leaves the function reads). ``rng_state`` is numpy's
    global generator state before the first run; ``modules`` hold the buffers a replay must not change.
    """

    def __init__(self, function, args, n_tensor_args, rng_state, modules, data):
        self.function = function
        self.args = args
        self.n_tensor_args = n_tensor_args
        self.rng_state = rng_state
        self.modules = modules
        self._data = data  # the first run's output, handed out by the first compute

    def call(self, tensors):
        """``function`` on the stored arguments with their tensors taken from ``tensors``."""
        it = iter(tensors[:self.n_tensor_args])
        return self.function(*[next(it) if a is None else a for a in self.args])

    def compute(self, *arrays):
        data, self._data = self._data, None
        if data is None:  # computed again (a lazy graph realized late): replay without a graph
            with no_grad(), _replay(self.rng_state, self.modules):
                data = self.call([Tensor.make_const(a) for a in arrays]).realize_cached_data()
        return data

    def gradient(self, out_grad, node):
        need = [x.requires_grad for x in node.inputs]
        backward = CheckpointBackward(self, node.inputs, need)
        grads = backward(*node.inputs, out_grad)
        grads.realize_cached_data()
        missing = backward.missing
        out, k = [], 0
        for needed in need:
            if needed and k not in missing:
                out.append(grads[k])
            else:
                out.append(None)
            k += needed
        return tuple(out)


class CheckpointBackward(TensorTupleOp):
    """The gradients of a :class:`Checkpoint` node's inputs that need one (``need``), given the
    output's adjoint (the last input): one element per needed input, in order."""

    def __init__(self, forward, inputs, need):
        self.forward = forward
        self.inputs = inputs  # the checkpoint node's inputs: the leaves it reads are used in place
        self.need = need
        self.missing = set()  # positions (among the needed) the output does not reach

    def _recompute(self, args):
        """The function's output with a graph, from ``args`` (the tensor arguments) and the real leaves."""
        fwd = self.forward
        with _grad_mode(True), _replay(fwd.rng_state, fwd.modules):
            return fwd.call(args)

    def compute(self, *arrays):
        fwd = self.forward
        n = fwd.n_tensor_args
        # Fresh leaves for the arguments (the sweep must not run into the graph before them);
        # the leaves the function reads (parameters) are the real ones.
        args = [Tensor.make_const(a, requires_grad=need) for a, need in zip(arrays[:n], self.need[:n])]
        wrt = [x for x, need in zip(args + list(self.inputs[n:]), self.need) if need]
        out = self._recompute(args)
        seed = Tensor.make_const(arrays[-1])
        # Plain gradient arrays (no_grad): the recomputed graph dies with this frame.
        with no_grad():
            grads = gradients(out, seed, wrt)
        self.missing = {i for i, g in enumerate(grads) if g is None}
        return tuple(g.realize_cached_data() if g is not None else _empty(arrays[-1]) for g in grads)

    def gradient(self, out_grad, node):
        # Second order: recompute from the real inputs with a graph, take the first-order gradients
        # as graph tensors, and differentiate their sum against ``out_grad`` (the adjoints given).
        fwd = self.forward
        inputs, seed = list(node.inputs[:-1]), node.inputs[-1]
        outer = is_grad_enabled()
        with _grad_mode(True):
            out = self._recompute(inputs[:fwd.n_tensor_args])
            wrt = [x for x, need in zip(inputs, self.need) if need]
            first = gradients(out, seed, wrt)
            total, given = None, []
            for k, g in enumerate(first):
                if g is not None and k not in self.missing:
                    given.append(out_grad[k])
                    term = (g * given[-1]).sum()
                    total = term if total is None else total + term
            if total is None:
                return tuple(None for _ in node.inputs)
            ones = Tensor.make_const(total.device.full(total.shape, 1.0, dtype=total.dtype))
            # The sweep stops at the given adjoints too: the outer backward differentiates through them.
            second = gradients(total, ones, list(node.inputs) + given)[:len(node.inputs)]
        if not outer:
            second = [g.detach() if g is not None else None for g in second]
        return tuple(second)


def _empty(like):
    """A placeholder element for a gradient the output does not reach (never read)."""
    return like.device.empty((0,), dtype=like.dtype)


def checkpoint(function, *args):
    """``function(*args)``, keeping only the inputs for backward, which computes it again.

    Gradients (of the tensor arguments and of every tensor the function reads that needs one,
    such as a module's parameters) are the same as without checkpointing. The random state is
    replayed, so Dropout draws the same mask, and module buffers (BatchNorm's running statistics)
    are updated once, by the first run. Under :class:`needle.no_grad`, or when nothing needs a
    gradient, this is just ``function(*args)``. ``function`` must return one Tensor.
    """
    return _checkpoint(function, args, _modules_of(function) if callable(function) else [])


def _checkpoint(function, args, modules):
    if not callable(function):
        raise TypeError(f"checkpoint: function must be callable, got {type(function).__name__}")
    if not is_grad_enabled():
        return function(*args)
    rng_state = np.random.get_state()
    # The first run records a graph only to find the leaves the function reads; the graph (and every
    # activation in it) is dropped when this function returns, keeping the output's data alone.
    out = function(*args)
    if not isinstance(out, Tensor):
        raise TypeError(f"checkpoint: function must return a Tensor, got {type(out).__name__}")
    if not out.requires_grad:
        return out
    tensor_args = [a for a in args if isinstance(a, Tensor)]
    arg_ids = {id(a) for a in tensor_args}
    leaves = [node for node in autograd._topo_sort([out], only_requires_grad=True, stop=arg_ids)
              if node.is_leaf() and node.requires_grad and id(node) not in arg_ids]
    op = Checkpoint(function, [None if isinstance(a, Tensor) else a for a in args], len(tensor_args), rng_state,
                    modules, out.realize_cached_data())
    del out
    return Tensor.make_from_op(op, tensor_args + leaves)


def _as_functions(functions):
    """``functions`` as a list of callables: a Sequential's ``modules`` (duck-typed), or a list/tuple."""
    if callable(functions) and isinstance(getattr(functions, "modules", None), (list, tuple)):
        items = list(functions.modules)
    elif isinstance(functions, (list, tuple)):
        items = list(functions)
    else:
        raise TypeError(f"checkpoint_sequential: functions must be a Sequential or a list of callables, "
                        f"got {type(functions).__name__}")
    for i, fn in enumerate(items):
        if not callable(fn):
            raise TypeError(f"checkpoint_sequential: functions[{i}] is a {type(fn).__name__}, not callable")
    return items


def checkpoint_sequential(functions, segments, input):
    """Run ``functions`` (a Sequential or a list of callables) in order on ``input``, in ``segments``
    consecutive runs of about equal length, each checkpointed but the last (backward needs its
    activations at once). ``segments`` is an int from 1 to the number of functions."""
    items = _as_functions(functions)
    if isinstance(segments, bool) or not isinstance(segments, (int, np.integer)):
        raise TypeError(f"checkpoint_sequential: segments must be an int, got {type(segments).__name__}")
    if not 1 <= segments <= len(items):
        raise ValueError(f"checkpoint_sequential: segments must be in [1, {len(items)}] (the number of functions), "
                         f"got {segments}")
    bounds = np.linspace(0, len(items), int(segments) + 1).round().astype(int)
    x = input
    for k in range(int(segments)):
        chunk = items[bounds[k]:bounds[k + 1]]
        run = _Run(chunk)
        x = run(x) if k == segments - 1 else _checkpoint(run, (x,), [m for f in chunk for m in _modules_of(f)])
    return x


class _Run:
    """Functions applied in order (one segment of checkpoint_sequential)."""

    def __init__(self, functions):
        self.functions = functions

    def __call__(self, x):
        for fn in self.functions:
            x = fn(x)
        return x
