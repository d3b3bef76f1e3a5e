"""``needle.jit``: capture a function's kernels once, replay them without its Python.

See :func:`jit`. The recorder (``_record``) wraps the backend modules at the protocol boundary;
the replay plan (``_replay``) binds the recorded kernels to buffers; ``_fuse`` merges runs of
elementwise kernels where the backend can run them as one pass.
"""
import functools
import gc
import sys

import numpy as np

from .. import autograd as _autograd
from .. import backends as _backends
from ..autograd import Tensor as _Tensor
from ..backend_ndarray.ndarray import NDArray as _NDArray
from . import _record, _replay
from ._record import CaptureError, host_step, recording, scalar, validation_read

__all__ = ["jit", "Captured", "CaptureError", "scalar", "host_step", "recording", "validation_read"]

#: Signatures kept per captured function (the least recently used is dropped beyond this).
MAX_SIGNATURES = 8


def jit(fn):
    """Capture ``fn`` (forward, loss, backward and optimiser step of a training step, say) and
    replay it without its Python.

    The first call with a signature (the shapes, strides, dtypes and devices of the Tensor and
    NDArray arguments, and the values of the other arguments) runs ``fn`` eagerly, the second
    runs it again while recording the backend kernels it launches, and later calls replay that
    record with the new inputs' buffers. Parameters, optimiser state and BatchNorm statistics are
    updated in place, so a replayed step equals the eager one bit for bit. A new signature
    records again (up to :data:`MAX_SIGNATURES` are kept).

    What a replay does not see: Python state fn reads besides its arguments (``module.training``,
    hyper-parameters other than the optimisers' ``lr``) is fixed when recording -- call
    ``.reset()`` after changing it; ``.grad`` of the input tensors is not set; values are not
    checked (labels out of range). fn may return Tensors, NDArrays and Python scalars, and
    tuples, lists and dicts of them; returned tensors are new each call (no graph).
    """
    if not callable(fn):
        raise TypeError(f"needle.jit: expected a callable (a function or a method), got {type(fn).__name__}")
    return Captured(fn)


class Captured:
    """A function wrapped by :func:`jit`: call it as fn."""

    def __init__(self, fn, fuse=True):
        self.fn = fn
        self.fuse = fuse
        self._plans = {}     # signature -> _Entry
        self._seen = set()   # signatures run eagerly once
        self.__wrapped__ = fn
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__name__ = getattr(fn, "__name__", type(fn).__name__)

    def __repr__(self):
        return f"needle.jit({self.fn!r})"

    def __get__(self, obj, objtype=None):
        # ``@needle.jit`` on a method: the instance becomes the first argument (a signature per instance).
        return self if obj is None else functools.partial(self, obj)

    def reset(self):
        """Forget every recording: the next calls run eagerly and record again."""
        self._plans.clear()
        self._seen.clear()

    @property
    def plans(self):
        """The compiled recordings, by signature (for inspection: kernel counts, arena bytes)."""
        return dict(self._plans)

    def __call__(self, *args, **kwargs):
        key, inputs = _signature(args, kwargs)
        entry = self._plans.get(key)
        if entry is not None:
            self._plans[key] = self._plans.pop(key)  # most recently used last
            return entry.replay(inputs)
        if _record.recording() is not None:  # called inside another capture: just run
            return self.fn(*args, **kwargs)
        self._check_devices(inputs)
        if key not in self._seen:
            if len(self._seen) >= 8 * MAX_SIGNATURES:  # bounded, like the recordings
                self._seen.clear()
            self._seen.add(key)
            result = self.fn(*args, **kwargs)
            _flatten_result(result)  # the same error on the first call as on the recorded one
            return result
        entry, result = _Entry.record(self.fn, args, kwargs, inputs, self.fuse)
        self._plans[key] = entry
        while len(self._plans) > MAX_SIGNATURES:
            self._plans.pop(next(iter(self._plans)))
        return result

    def _check_devices(self, inputs):
        """Inputs on a device that none of the recorded state lives on: a clear error, not a
        failure deep in an op."""
        if not self._plans:
            return
        state_devices = next(reversed(self._plans.values())).state_devices
        if not state_devices:
            return
        for i, array in enumerate(inputs):
            if array._device not in state_devices:
                devices = ", ".join(sorted(repr(d) for d in state_devices))
                raise ValueError(f"needle.jit: input {i} is on {array._device!r}, but the captured function's state "
                                 f"(parameters, optimiser state) is on {devices}; move the input there with "
                                 f".to(device) before the call")


class _Entry:
    """One signature's plan and how to give back its outputs."""

    def __init__(self, plan, treedef, state_devices):
        self.plan, self.treedef, self.state_devices = plan, treedef, state_devices

    @classmethod
    def record(cls, fn, args, kwargs, inputs, fuse):
        devices = _loaded_devices(inputs)
        before = np.random.get_state()
        tape, undo = _record.start(devices)
        try:
            input_slots = [tape.slot(a._handle, a._device) for a in inputs]
            result = fn(*args, **kwargs)
        finally:
            undo()
        leaves, treedef = _flatten_result(result)
        outputs, out_arrays = [], []
        for leaf in leaves:
            if isinstance(leaf, _PyLeaf):
                outputs.append(("py", leaf.value))
                continue
            array = leaf
            slot = tape.slot(array._handle, array._device)
            outputs.append((slot, array._shape, array._strides, array._offset, array._dtype, array._device))
            out_arrays.append(array)
        del result, leaves
        leaf = array = None
        _check_draws(tape, before)
        lost = tape.unused_dynamics()
        if lost:
            raise CaptureError(f"needle.jit: {len(lost)} scalar(s) made with needle._jit.scalar (value "
                               f"{float(lost[0])}) did not reach a kernel as they were (converted on the way); "
                               f"the replay could not update them")
        state_slots = _state_slots(tape, input_slots, out_arrays)
        gc.collect()  # the recorded call's graph, cut above
        plan = _replay.Plan(tape, input_slots, outputs, state_slots, fuse=fuse)
        state_devices = {tape.devices[s] for s in tape.updated if s not in input_slots}
        entry = cls(plan, treedef, state_devices)
        # The recorded call's outputs: fresh copies, like a replay's (state buffers stay ours).
        fresh = iter([array.copy() for array in out_arrays])
        values = [value if slot == "py" else next(fresh) for slot, value, *_ in outputs]
        return entry, _unflatten(treedef, values)

    def replay(self, inputs):
        buffers = self.plan.run([a._handle for a in inputs])
        values = []
        for out in self.plan.outputs:
            if out[0] == "py":
                values.append(out[1])
                continue
            slot, shape, strides, offset, dtype, device = out
            handle = buffers.get(slot)
            if handle is None:  # an input returned as it is
                handle = inputs[self.plan.input_slots.index(slot)]._handle
            view = _NDArray._view(shape, strides, device, handle, offset, dtype)
            values.append(view.copy())
        return _unflatten(self.treedef, values)


def _state_slots(tape, input_slots, out_arrays):
    """Slots whose buffers a replay must keep: those made before the call (parameters, optimiser
    state, constants) and those made in it that outlive it (a new ``.grad``), found by reference
    count once fn's own references are gone. Buffers alive only inside the autograd graph that a
    new ``.grad`` still holds (the step's activations) are not state: they become temporaries."""
    gc.collect()  # fn's graph can hold cycles
    inputs = set(input_slots)
    held = {}
    for array in out_arrays:
        slot = tape.slot_of(array._handle)
        held[slot] = held.get(slot, 0) + 1
    graph_only, graph_roots = _graph_only_references(tape)
    state = []
    handles = tape.handles
    for slot in range(len(handles)):
        if slot in inputs:
            continue
        # The tape's list and getrefcount's argument hold two references; outputs one each.
        refs = sys.getrefcount(handles[slot]) - 2 - held.get(slot, 0)
        handle = handles[slot]
        if slot not in tape.allocated:
            if refs <= 0 and slot in tape.read:
                raise CaptureError(
                    f"needle.jit: fn read a buffer made before the call (shape of {handle.size} elements, "
                    f"{tape.devices[slot]!r}) and then dropped it: state was replaced by a new array instead of "
                    f"being updated in place (e.g. `p.data = p.data - lr * p.grad`), so a replay would read the "
                    f"old values. Update state in place (NDArray.iadd/isub/imul, an optimiser of needle.optim)")
            state.append(slot)
        elif refs > graph_only.get(slot, 0):
            state.append(slot)
        del handle
    # A replay keeps no graph: the nodes held from outside become leaves (as a replayed step's .grad
    # is), which frees the recorded call's activations instead of keeping them beside the arena.
    for node in graph_roots:
        node.inputs, node.op = [], None
    return state


def _graph_only_references(tape):
    """(slot -> how many of its buffer's references come from arrays held only by autograd nodes
    that nothing but other nodes' ``inputs`` refers to (the graph behind a new ``.grad``), the
    nodes of the call held from outside the graph)."""
    allocated = tape.allocated
    edges, nodes, arrays = {}, [], []
    value_type = _autograd.Value
    for obj in gc.get_objects():
        kind = type(obj)  # not isinstance: it would read __class__ of every object (lazy modules warn)
        if issubclass(kind, value_type):
            for x in obj.inputs or ():
                edges[id(x)] = edges.get(id(x), 0) + 1
            data = obj.cached_data
            if isinstance(data, _NDArray) and tape.slot_of(data._handle) in allocated:
                nodes.append(obj)
        elif kind is _NDArray and tape.slot_of(obj._handle) in allocated:
            arrays.append(obj)
    obj = data = x = None
    internal = {}  # id(array) -> how many graph-only nodes hold it
    held = []      # nodes held from outside the graph (a new .grad)
    for i in range(len(nodes)):
        # Our list and getrefcount's argument hold two references; graph edges the counted ones.
        if sys.getrefcount(nodes[i]) - 2 <= edges.get(id(nodes[i]), 0):
            key = id(nodes[i].cached_data)
            internal[key] = internal.get(key, 0) + 1
        else:
            held.append(nodes[i])

    counts = {}
    for i in range(len(arrays)):
        holders = internal.get(id(arrays[i]), 0)
        if holders and sys.getrefcount(arrays[i]) - 2 <= holders:
            slot = tape.slot_of(arrays[i]._handle)
            counts[slot] = counts.get(slot, 0) + 1
    return counts, held


def _check_draws(tape, before):
    """Random draws that did not go through device.rand/randn (numpy called directly, needle.randint)
    cannot be replayed: compare numpy's generator after the call with the recorded draws redone."""
    after = np.random.get_state()
    np.random.set_state(before)
    try:
        for kind, recipe, *_ in tape.steps:
            if kind == "draw":
                recipe[1](*recipe[2])
        redone = np.random.get_state()
    finally:
        np.random.set_state(after)
    if not (redone[0] == after[0] and np.array_equal(redone[1], after[1]) and redone[2:] == after[2:]):
        raise CaptureError("needle.jit: fn drew random numbers other than through a device's rand/randn "
                           "(needle.init, nn.Dropout): numpy's generator called directly, or needle.randint. "
                           "Those draws would be frozen in the replay; make them outside fn and pass them in")


def _loaded_devices(inputs):
    devices = {a._device for a in inputs}
    devices.update(d for d in _backends._devices.values() if d._backend is not None)
    return [d for d in devices if d._backend is not None or d.enabled()]


# ---- arguments and results ---------------------------------------------------------------
class _PyLeaf:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


_SCALARS = (bool, int, float, str, bytes, type(None), complex)


class _Identity:
    """An argument compared by identity in a signature (and kept alive while the signature is)."""

    __slots__ = ("obj",)

    def __init__(self, obj):
        self.obj = obj

    def __hash__(self):
        return id(self.obj)

    def __eq__(self, other):
        return type(other) is _Identity and other.obj is self.obj


def _signature(args, kwargs):
    """(hashable key, input NDArrays) of a call."""
    inputs, key = [], []
    _walk_args(args, inputs, key, {})
    if kwargs:
        key.append("kw")
        _walk_args(tuple(sorted(kwargs.items())), inputs, key, {})
    key.append(_autograd.is_grad_enabled())
    return tuple(key), inputs


def _walk_args(value, inputs, key, handles):
    array = _array_of(value)
    if array is not None:
        handle = array._handle
        alias = handles.setdefault(id(handle), len(inputs))
        inputs.append(array)
        key.append(("t", array._shape, array._strides, array._offset, handle.size, array._dtype, array._device,
                    alias, getattr(value, "requires_grad", None)))
    elif isinstance(value, (tuple, list)):
        key.append((type(value).__name__, len(value)))
        for item in value:
            _walk_args(item, inputs, key, handles)
    elif isinstance(value, dict):
        key.append(("dict", tuple(value)))
        for item in value.values():
            _walk_args(item, inputs, key, handles)
    elif isinstance(value, np.ndarray):
        raise TypeError("needle.jit: a numpy array argument would be frozen into the recording; pass a needle "
                        "Tensor (needle.Tensor(array)) instead")
    elif isinstance(value, _SCALARS) or isinstance(value, np.generic):
        key.append((type(value).__name__, value))
    else:  # modules, optimisers, callables: by identity (held, so that an id is never reused)
        key.append(_Identity(value))


def _array_of(value):
    if isinstance(value, _Tensor):
        return value.realize_cached_data()
    if isinstance(value, _NDArray):
        return value
    return None


def _flatten_result(result):
    """(leaves, treedef): Tensors/NDArrays as NDArrays, Python scalars as _PyLeaf."""
    leaves = []

    def walk(value, where):
        array = _array_of(value)
        if array is not None:
            leaves.append(array)
            return "n" if array is value else "t"
        if isinstance(value, (tuple, list)):
            return (type(value), [walk(v, f"{where}[{i}]") for i, v in enumerate(value)])
        if isinstance(value, dict):
            return (dict, [(k, walk(v, f"{where}[{k!r}]")) for k, v in value.items()])
        if isinstance(value, (bool, int, float, complex, str, type(None))):
            leaves.append(_PyLeaf(value))
            return "p"
        raise TypeError(f"needle.jit: fn returned a {type(value).__name__} at {where}; a captured function may "
                        f"return Tensors, NDArrays and Python scalars, and tuples, lists and dicts of them")

    treedef = walk(result, "result")
    return leaves, treedef


def _unflatten(treedef, values):
    it = iter(values)

    def build(node):
        if node == "t":
            return _as_tensor(next(it))
        if node in ("n", "p"):
            return next(it)
        kind, items = node
        if kind is dict:
            return {k: build(v) for k, v in items}
        return kind(build(v) for v in items)

    return build(treedef)


def _as_tensor(array):
    return _Tensor.make_const(array)
