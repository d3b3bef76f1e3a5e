"""Backends and devices: the public face of the plugin registry.

A backend distribution registers a module under the ``needle.backends`` entry-point group;
that module implements ``needle_backends()`` (see :mod:`needle._hookspecs`) with
:data:`hookimpl` and returns :class:`BackendSpec` objects.
"""
import os
from dataclasses import dataclass, field
from typing import Callable

import pluggy

from . import _env
from ._device import BackendDevice, DeviceUnavailableError
from ._registry import (
    ENTRY_POINT_GROUP,
    BackendConflictError,
    NeedlePluginWarning,
    PluginLoadError,
    registry,
)

hookimpl = pluggy.HookimplMarker("needle")

__all__ = [
    "BackendSpec", "hookimpl", "ENTRY_POINT_GROUP", "cpu", "cuda", "cpu_numpy", "device",
    "default_device", "all_devices", "available_backends", "register_plugin", "unregister_plugin",
    "BackendDevice", "DeviceUnavailableError", "BackendConflictError", "PluginLoadError",
    "NeedlePluginWarning",
]

#: NEEDLE_BACKEND as it was when needle was imported.
_REQUESTED_BACKEND = os.environ.get(_env.NEEDLE_BACKEND, "").strip().lower()
_NUMPY_ALIASES = ("numpy", "np", "cpu_numpy")


@dataclass
class BackendSpec:
    """A backend a plugin provides.

    ``load`` imports and returns the protocol module; core calls it on first use, so a
    heavy or failing import (CuPy with no GPU) never slows or breaks ``import needle``.
    """

    name: str
    load: Callable[[], object]
    distribution: str = ""
    description: str = ""
    plugin_name: str = field(default="", repr=False)


_devices = {}


def _device_for(backend_name, index=0):
    key = (backend_name, index)
    if key not in _devices:
        shown = "cpu_numpy" if backend_name == "numpy" else backend_name
        _devices[key] = BackendDevice(shown, backend_name, registry, index)
    return _devices[key]


def cpu_numpy():
    """The built-in numpy backend; always available."""
    return _device_for("numpy")


def cpu():
    """The native CPU backend (needle-cpu) when installed and usable, else the numpy backend.

    ``NEEDLE_BACKEND=numpy`` (or ``np``) makes this the numpy backend too.
    """
    if _REQUESTED_BACKEND in _NUMPY_ALIASES:
        return cpu_numpy()
    native = _device_for("cpu")
    return native if native.enabled() else cpu_numpy()


def cuda(index=0):
    """The CUDA device ``index``; a disabled device (``enabled()`` False) when unavailable."""
    return _device_for("cuda", int(index))


def device(name, index=0):
    """The device of the backend called ``name`` (``"numpy"``/``"np"`` for the numpy backend).

    ``device("cpu")`` is strictly needle-cpu; it is disabled when that is not installed.
    """
    name = str(name).strip().lower()
    if name in _NUMPY_ALIASES:
        return cpu_numpy()
    if name == "nd":
        return cpu()
    return _device_for(name, index)


def default_device():
    """The device named by ``NEEDLE_BACKEND`` when needle was imported, else :func:`cpu`."""
    name = _REQUESTED_BACKEND
    if name in ("", "nd"):
        return cpu()
    dev = device(name)
    if not dev.enabled() and not registry.has(dev.backend_name):
        raise DeviceUnavailableError(
            f"{_env.NEEDLE_BACKEND}={name!r} names no installed backend; installed: "
            f"{', '.join(['np'] + [n for n in registry.names() if n != 'numpy'])}")
    return dev


def all_devices():
    """One device per registered backend, enabled or not."""
    return [cpu_numpy() if name == "numpy" else _device_for(name) for name in registry.names()]


def available_backends():
    """Names of the registered backends."""
    return registry.names()


def register_plugin(plugin, name=None, distribution="(in-process)"):
    """Register a plugin object in-process, as an entry point would be."""
    registry.register_plugin(plugin, name=name, distribution=distribution)


def unregister_plugin(name):
    """Remove a plugin registered with :func:`register_plugin`."""
    registry.unregister_plugin(name)
    for key in [k for k in _devices if not registry.has(k[0]) or k[0] == name]:
        del _devices[key]


def reset():
    """Forget every discovered plugin and cached device (for tests)."""
    registry.reset()
    _devices.clear()
