"""Recording: run fn once with every device's kernels wrapped, and write down what they did.

The recorder sits at the backend-protocol boundary: each device's backend module is swapped
for a :class:`_RecordingBackend` for the length of the call (``BackendDevice._use_module``), so
every kernel NDArray, the ops, nn and the optimisers launch -- on any backend, third-party ones
too -- passes through :meth:`Tape.call`. Buffers (the backend's ``Array`` handles) become
numbered *slots*; everything else a kernel takes (shapes, strides, scalars, host arrays) is
kept as a constant, except the scalars made with :func:`scalar` (read again at each replay),
the steps added with :func:`host_step` (Python run again at each replay), and random draws
(``device.rand``/``randn``: numpy's global generator is called again, in the same order).
"""
import contextlib
import os
import sys

import numpy as np

from .._dtypes import DynamicFloat


class CaptureError(RuntimeError):
    """fn cannot be captured (it reads values on the host, replaces state it read, ...)."""


#: Kernels that only report on the backend: run, never recorded.
_PASS_THROUGH = frozenset({"memory_stats", "reset_peak_memory_stats", "empty_cache", "dlpack_device"})
#: Kernels that hand memory or values to the host: a captured fn cannot use them.
_HOST_READS = frozenset({"to_numpy", "dlpack_export", "dlpack_import"})

_NEEDLE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_active = None  # the Tape being recorded, or None
_checks = 0     # depth of validation_read() blocks: host reads there are allowed while recording


@contextlib.contextmanager
def validation_read():
    """A block whose host reads of values only validate (labels in range): allowed while needle.jit
    records, and not repeated by a replay (which does not check values)."""
    global _checks
    _checks += 1
    try:
        yield
    finally:
        _checks -= 1


def recording():
    """The tape being recorded now, or None."""
    return _active


def scalar(getter):
    """``getter()``, a float; while needle.jit records, a float that each replay reads again.

    Optimisers pass their learning rate and per-step factors (Adam's bias corrections) through
    this, so that a replayed step uses the values of that step, not those of the recorded one.
    """
    value = getter()
    tape = _active
    if tape is None:
        return value
    value = DynamicFloat(value)
    value.getter = getter
    tape.dynamics[id(value)] = value
    return value


def host_step(fn):
    """Call ``fn()`` now and, while needle.jit records, again at this point of every replay
    (Python state that a step advances: an optimiser's step count)."""
    tape = _active
    if tape is not None:
        tape.steps.append(("host", fn, None, None))
    fn()


def _user_frame():
    """``file:line`` of the innermost frame outside needle (the user's call that read a value)."""
    frame = sys._getframe(2)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_NEEDLE_DIR + os.sep) and "/needle/" not in path.replace(os.sep, "/"):
            return f"{frame.f_code.co_filename}:{frame.f_lineno} ({frame.f_code.co_name})"
        frame = frame.f_back
    return "an unknown place"


class Tape:
    """What one recorded call did: ``steps`` in order over numbered buffer ``slots``.

    A step is ``("kernel", fn, args, name)`` with args a tuple of ``("s", slot)`` (a buffer),
    ``("c", value)`` (a constant) or ``("d", getter)`` (a dynamic scalar); ``("host", fn, None,
    None)``; or ``("draw", (from_numpy, sampler, shape, dtype), slot, "from_numpy")`` (host random
    numbers into a buffer).
    """

    def __init__(self):
        self.steps = []
        self.handles = []       # slot -> the handle seen while recording (kept alive: ids stay unique)
        self.devices = []       # slot -> the device whose kernel first saw it
        self._slot_of = {}      # id(handle) -> slot
        self.allocated = {}     # slot -> (size, dtype) for buffers made during the call
        self.dynamics = {}      # id -> DynamicFloat made during the call (each must reach a kernel)
        self._used_dynamics = set()
        self.read = set()       # slots of buffers made before the call that the call reads
        self.updated = set()    # ... and that it writes (parameters, optimiser state: the call's state)
        self._pending_draw = None

    def slot(self, handle, device):
        slot = self._slot_of.get(id(handle))
        if slot is None:
            slot = self._slot_of[id(handle)] = len(self.handles)
            self.handles.append(handle)
            self.devices.append(device)
        return slot

    def slot_of(self, handle):
        return self._slot_of.get(id(handle))

    def call(self, device, name, kernel, handle_type, args):
        """Run ``kernel(*args)`` for real and append it to the tape."""
        if name in _PASS_THROUGH:
            return kernel(*args)
        if name == "to_numpy" and _checks:
            return kernel(*args)
        if name in _HOST_READS:
            what = "reads a tensor's values on the host" if name == "to_numpy" else f"hands memory out ({name})"
            raise CaptureError(
                f"needle.jit: fn {what} at {_user_frame()} (.numpy(), .item(), .tolist(), bool(t), float(t), "
                f"printing a tensor, or Python control flow on a tensor's value) while it is being captured. A "
                f"captured function runs no Python when replayed, so it cannot look at values: move the read "
                f"out of fn (return the tensor and read it after the call)")
        if name == "Array":
            handle = kernel(*args)
            slot = self.slot(handle, device)
            self.allocated[slot] = (int(args[0]), str(args[1]) if len(args) > 1 else "float32")
            return handle
        spec = []
        for arg in args:
            if isinstance(arg, handle_type):
                spec.append(("s", self.slot(arg, device)))
            elif type(arg) is DynamicFloat:
                self._used_dynamics.add(id(arg))
                spec.append(("d", arg.getter))
            else:
                spec.append(("c", arg))
        if any(kind == "d" for kind, _ in spec):  # the kernel gets plain floats, as in an eager call
            args = tuple(float(a) if type(a) is DynamicFloat else a for a in args)
        draw, self._pending_draw = self._pending_draw, None
        result = kernel(*args)
        if result is not None:
            raise CaptureError(f"needle.jit: kernel {name!r} of backend {device.backend_name!r} returned a value to "
                               f"Python while fn was being captured; fn cannot be captured")
        if name == "from_numpy" and draw is not None and draw[0] is args[0]:
            self.steps.append(("draw", (kernel,) + draw[1], spec[1][1], name))
        else:
            self.steps.append(("kernel", kernel, tuple(spec), name))
        self._note_access(name, spec)
        return None

    def _note_access(self, name, spec):
        # A buffer that existed before the call and is read in it is state (or a constant); the
        # protocol puts a kernel's output last, so every buffer argument before it is read.
        slots = [value for kind, value in spec if kind == "s"]
        for slot in slots[:-1]:
            if slot not in self.allocated:
                self.read.add(slot)
        if slots and slots[-1] not in self.allocated:
            self.updated.add(slots[-1])

    def note_draw(self, host_array, recipe):
        """The next from_numpy of ``host_array`` is a random draw made by ``recipe``."""
        self._pending_draw = (host_array, recipe)

    def unused_dynamics(self):
        return [v for k, v in self.dynamics.items() if k not in self._used_dynamics]


class _RecordingBackend:
    """Stands in for a backend module while recording: kernels are wrapped, other attributes pass."""

    def __init__(self, device, module, tape):
        self._device, self._module, self._tape = device, module, tape
        array_type = getattr(module, "Array", None)
        self._handle_type = array_type if isinstance(array_type, type) else _NoHandles

    def __getattr__(self, name):
        attr = getattr(self._module, name)
        if not callable(attr) or name.startswith("__") or isinstance(attr, type) and name != "Array":
            return attr
        device, tape, handle_type = self._device, self._tape, self._handle_type

        def recorded(*args):
            return tape.call(device, name, attr, handle_type, args)

        recorded.__name__ = name
        setattr(self, name, recorded)
        return recorded


class _NoHandles:
    pass


def _drawing(device, tape, sampler_name):
    """A device.rand/randn stand-in that tells the tape the next upload is a random draw."""
    sampler = getattr(np.random, sampler_name)

    def draw(*shape, dtype="float32"):
        host = np.asarray(sampler(*shape), dtype=dtype, order="C")
        tape.note_draw(host, (sampler, shape, dtype))
        return device._from_numpy(host, dtype)

    return draw


def start(devices):
    """Begin recording the kernels of ``devices`` (loaded BackendDevices); returns the tape and an undo."""
    global _active
    if _active is not None:
        raise CaptureError("needle.jit: a captured function was called while another one is being captured "
                           "(nested needle.jit calls are not supported)")
    tape = Tape()
    swapped = []
    try:
        for device in devices:
            module = device.mod
            device._use_module(_RecordingBackend(device, module, tape))
            device.rand = _drawing(device, tape, "rand")
            device.randn = _drawing(device, tape, "randn")
            swapped.append((device, module))
    except BaseException:
        _undo(swapped)
        raise
    _active = tape

    def undo():
        global _active
        _active = None
        _undo(swapped)

    return tape, undo


def _undo(swapped):
    for device, module in swapped:
        device._use_module(module)
        for name in ("rand", "randn"):
            device.__dict__.pop(name, None)
