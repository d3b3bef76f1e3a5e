"""Fusion: runs of consecutive elementwise kernels over buffers of one size become one call of
the backend's ``ewise_program`` (optional; needle-cpu has it), which runs them block by block so
the buffers stay in cache. Each element still goes through the same kernels in the same order,
so results are unchanged bit for bit; a backend without ``ewise_program`` replays as recorded.

A backend offers it with ``EWISE_PROGRAM_OPS`` (kernel name -> (kind, op) code) and
``ewise_program(buffers, code, values, n, block)``: see needle-cpu's ``ewise_program_bindings.cc``.
"""
from ..backend_ndarray.ndarray import compact_strides, prod

#: Elements per block: a few buffers of this many float32 stay in a core's L1/L2.
BLOCK = 4096


def fuse(steps, tape, inputs):
    """``steps`` with runs of fusable kernels replaced by ``("program", ewise_program, (slots, code,
    values, n), "ewise_program")`` steps; ``inputs`` are slots bound per call (never fused)."""
    fused, run, key = [], [], None
    for step in steps:
        item = _fusable(step, tape, inputs)
        if item is not None and item[0] == key:
            run.append((step, item[1]))
            continue
        _flush(run, key, fused)
        run, key = [], None
        if item is None:
            fused.append(step)
        else:
            run, key = [(step, item[1])], item[0]
    _flush(run, key, fused)
    return fused


def _flush(run, key, fused):
    if len(run) == 1:  # a single kernel: keep the recorded call (its own checks, its own threads)
        fused.append(run[0][0])
    if len(run) < 2:
        return
    device, n = key
    slots, code, values, index = [], [], [], {}
    for _, (kind, op, out, a, b, value) in run:
        for slot in (out, a, b):
            if slot is not None and slot not in index:
                index[slot] = len(slots)
                slots.append(slot)
        code.extend((kind, op, index[out], index.get(a, 0), index.get(b, 0)))
        values.append(value)
    fused.append(("program", device.mod.ewise_program, (tuple(slots), code, values, n), "ewise_program"))


def _fusable(step, tape, inputs):
    """((device, n), (kind, op, out, a, b, value)) for a kernel an elementwise program can run, else None."""
    if step[0] != "kernel":
        return None
    _, _, spec, name = step
    slots = [value for kind, value in spec if kind == "s"]
    if not slots or any(kind == "d" for kind, _ in spec) or any(s in inputs for s in slots):
        return None
    device = tape.devices[slots[-1]]
    ops = _program_ops(device)
    if ops is None:
        return None
    n = _float32_size(tape, slots[0])
    if n is None or n == 0 or any(_float32_size(tape, s) != n for s in slots[1:]):
        return None
    if name in ("compact", "ewise_setitem"):
        (_, a), (_, out), (_, shape), (_, strides), (_, offset) = spec
        if offset != 0 or tuple(strides) != compact_strides(tuple(shape)) or prod(shape) != n:
            return None
        return (device, n), (*ops["copy"], out, a, None, 0.0)
    code = ops.get(name)
    if code is None:
        return None
    values = [value for k, value in spec if k == "c"]
    if name == "fill":
        return (device, n), (*code, slots[0], None, None, float(values[0]))
    if len(values) == 1 and len(slots) == 2:  # scalar_*(a, val, out)
        if not isinstance(values[0], float):
            return None
        return (device, n), (*code, slots[1], slots[0], None, values[0])
    if values:
        return None
    if len(slots) == 3:  # binary (a, b, out)
        return (device, n), (*code, slots[2], slots[0], slots[1], 0.0)
    if len(slots) == 2:  # unary (a, out)
        return (device, n), (*code, slots[1], slots[0], None, 0.0)
    return None


_OPS = {}  # backend module -> its EWISE_PROGRAM_OPS, or None


def _program_ops(device):
    module = device.mod
    try:
        return _OPS[module]
    except KeyError:
        ops = getattr(module, "EWISE_PROGRAM_OPS", None) if getattr(module, "ewise_program", None) else None
        _OPS[module] = ops
        return ops
    except TypeError:  # an unhashable module stand-in
        return None


def _float32_size(tape, slot):
    allocated = tape.allocated.get(slot)
    if allocated is not None:
        size, dtype = allocated
    else:
        handle = tape.handles[slot]
        size, dtype = handle.size, str(handle.dtype)
    return size if dtype == "float32" else None
