"""Replay: turn a recorded :class:`~needle._jit._record.Tape` into a plan of bound kernel calls.

Every buffer of the record gets a home for the replays:

- the inputs' slots are bound to the new inputs' buffers at each call;
- *state* (buffers made before the call -- parameters, optimiser state, constants -- and
  buffers made during it that outlive it: new ``.grad`` arrays) keeps the recorded buffer, so a
  replay updates it exactly as the eager step did;
- every other buffer (a temporary of the step) lives in an *arena* allocated once: temporaries
  whose lifetimes do not overlap share one buffer (same size and dtype).

Kernels whose arguments never change are bound once (``functools.partial``); the replay is then
a loop of calls with no Python of fn's. Outputs are copied into fresh buffers, so a returned
tensor is never one the next call overwrites.
"""
import functools

import numpy as np

from . import _fuse


class Plan:
    """The compiled record of one signature."""

    def __init__(self, tape, input_slots, outputs, state_slots, fuse=True):
        self.input_slots = input_slots
        self.outputs = outputs  # [(slot, shape, strides, offset, dtype, device)] or ("py", value)
        steps = tape.steps
        # Buffers are placed kernel by kernel first: a fused run then works on the shared buffers
        # as the kernels would one after another (each is elementwise, so block by block is the same).
        buffers, self.arena_bytes, self.temporary_bytes = _place(tape, steps, input_slots, state_slots, outputs)
        if fuse:
            steps = _fuse.fuse(steps, tape, set(input_slots))
        self.buffers = buffers
        self.calls, self.rebinds = _bind(steps, buffers, input_slots)
        self.kernel_count = sum(1 for s in steps if s[0] in ("kernel", "program"))
        self.fused_kernels = sum(len(s[2][2]) for s in steps if s[0] == "program")
        self.step_count = len(steps)

    def run(self, handles):
        """Replay with ``handles`` (the new inputs' buffers, in input order); returns output arrays."""
        for args, pos, i in self.rebinds:
            args[pos] = handles[i]
        try:
            for call in self.calls:
                call()
        finally:
            for args, pos, _ in self.rebinds:
                args[pos] = None
        return self.buffers


def _lifetimes(steps, slots_of_interest):
    first, last = {}, {}
    for i, step in enumerate(steps):
        for slot in _step_slots(step):
            if slot in slots_of_interest:
                first.setdefault(slot, i)
                last[slot] = i
    return first, last


def _step_slots(step):
    kind, _, spec, _ = step
    if kind == "kernel":
        return [value for k, value in spec if k == "s"]
    if kind == "draw":
        return [spec]
    if kind == "program":
        return list(spec[0])
    return []


def _place(tape, steps, input_slots, state_slots, outputs):
    """slot -> buffer for every non-input slot; temporaries share arena buffers by lifetime."""
    buffers = {}
    for slot in state_slots:
        buffers[slot] = tape.handles[slot]
    temporaries = set(tape.allocated) - set(state_slots) - set(input_slots)
    first, last = _lifetimes(steps, temporaries)
    end = len(steps)
    for out in outputs:
        if out[0] != "py" and out[0] in temporaries:
            last[out[0]] = end
    starts = {}
    for slot, i in first.items():
        starts.setdefault(i, []).append(slot)
    ends = {}
    for slot, i in last.items():
        ends.setdefault(i, []).append(slot)
    free = {}  # (device, size, dtype) -> [buffer]
    arena_bytes = temporary_bytes = 0
    for i in range(end + 1):
        for slot in sorted(starts.get(i, ())):
            size, dtype = tape.allocated[slot]
            device = tape.devices[slot]
            key = (device, size, dtype)
            nbytes = size * np.dtype(dtype).itemsize
            temporary_bytes += nbytes
            pool = free.get(key)
            if pool:
                buffers[slot] = pool.pop()
            else:
                buffers[slot] = device.mod.Array(size, dtype)
                arena_bytes += nbytes
        for slot in ends.get(i, ()):
            size, dtype = tape.allocated[slot]
            free.setdefault((tape.devices[slot], size, dtype), []).append(buffers[slot])
    return buffers, arena_bytes, temporary_bytes


def _bind(steps, buffers, input_slots):
    """Callables for the steps, and (args list, position, input index) to fill per call."""
    where = {slot: i for i, slot in enumerate(input_slots)}
    calls, rebinds = [], []
    for kind, fn, spec, _ in steps:
        if kind == "host":
            calls.append(fn)
            continue
        if kind == "draw":
            calls.append(_draw_call(fn, buffers[spec]))
            continue
        if kind == "program":
            slots, code, values, n = spec
            calls.append(functools.partial(fn, [buffers[s] for s in slots], code, values, n, _fuse.BLOCK))
            continue
        args, dynamic, rebind = [], [], []
        for pos, (k, value) in enumerate(spec):
            if k == "s":
                if value in where:
                    args.append(None)
                    rebind.append((pos, where[value]))
                else:
                    args.append(buffers[value])
            elif k == "d":
                args.append(None)
                dynamic.append((pos, value))
            else:
                args.append(value)
        if not dynamic and not rebind:
            calls.append(functools.partial(fn, *args))
            continue
        rebinds.extend((args, pos, i) for pos, i in rebind)
        calls.append(_late_call(fn, args, dynamic))
    return calls, rebinds


def _late_call(fn, args, dynamic):
    def call():
        for pos, getter in dynamic:
            args[pos] = getter()
        fn(*args)
    return call


def _draw_call(recipe, out):
    from_numpy, sampler, shape, dtype = recipe

    def call():
        from_numpy(np.asarray(sampler(*shape), dtype=dtype, order="C"), out)
    return call
