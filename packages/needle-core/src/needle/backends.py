"""Backends and devices: the public face of the plugin registry.

Writing a backend
-----------------
A distribution declares a module under the ``needle.backends`` entry-point group::

    [project.entry-points."needle.backends"]
    mybackend = "mypkg._plugin"

and that module implements the ``needle_backends()`` hook (:mod:`needle._hookspecs`)::

    from needle.backends import BackendSpec, hookimpl

    @hookimpl
    def needle_backends():
        def load():
            from . import _backend      # the protocol module; may be heavy or raise
            return _backend
        return [BackendSpec(name="mybackend", load=load)]

``load`` runs on the first use of the device, never at ``import needle``. The module it
returns implements :mod:`needle.backend_ndarray.protocol`; optionally ``unavailable_reason()``
(None, or a sentence why it cannot run here), ``device_count()``, and ``for_device(index)``
returning the protocol bound to device ``index`` (used for indices above 0).

Devices
-------
``cpu()`` is needle-cpu when it is installed and usable, else the numpy backend
(``NEEDLE_BACKEND=numpy``/``np`` forces numpy); ``cpu_numpy()`` is always numpy;
``device("cpu")`` is strictly needle-cpu. ``cuda(i)`` can always be called. A device whose
backend is missing or cannot run still exists: ``enabled()`` is False, ``disabled_reason``
says why (and what to install), and using it raises :class:`DeviceUnavailableError` with
that reason.

Failures and environment variables
----------------------------------
A plugin that fails to import or register (an exception, ``SystemExit``, or an import that
takes longer than ``NEEDLE_PLUGIN_TIMEOUT``) gives a :class:`NeedlePluginWarning` naming the
entry point, its distribution and the exception; everything else keeps working, and the
``disabled_reason`` of the device it would have provided says that it failed and why. A
``KeyboardInterrupt`` during a plugin's import is re-raised with a note naming the plugin.
Two plugins claiming one backend name make that name unusable (its device is disabled and
the reason names both distributions); other backends are unaffected.

- ``NEEDLE_PLUGINS_STRICT=1``: those warnings become :class:`PluginLoadError` /
  :class:`BackendConflictError`, raised on the first device lookup.
- ``NEEDLE_DISABLE_PLUGIN_AUTOLOAD=1``: load only the entry points (or distributions) named
  in ``NEEDLE_PLUGINS=a,b``; the numpy backend is always there.
- ``NEEDLE_PLUGIN_TIMEOUT``: seconds one plugin's import may take (default 30; ``0``: no
  limit). The import runs in a daemon thread; one that blocks is left there, reported failed.
- ``NEEDLE_BACKEND``: the default device, read once when needle is imported: ``numpy``/``np``/
  ``cpu_numpy``, ``nd`` (same as unset: :func:`cpu`), ``cpu``, ``cuda`` or a plugin's name.

``python -m needle`` prints all of this for the current environment.
"""
import os

from . import _env
from ._device import BackendDevice, DeviceUnavailableError
from ._hookspecs import BackendSpec, hookimpl
from ._registry import (
    ENTRY_POINT_GROUP,
    INSTALL_HINTS,
    BackendConflictError,
    NeedlePluginWarning,
    PluginLoadError,
    check_index,
    registry,
)

__all__ = [
    "BackendSpec", "hookimpl", "ENTRY_POINT_GROUP", "cpu", "cuda", "cpu_numpy", "device",
    "default_device", "all_devices", "available_backends", "register_plugin", "unregister_plugin",
    "reset", "BackendDevice", "DeviceUnavailableError", "BackendConflictError", "PluginLoadError",
    "NeedlePluginWarning",
]

_NUMPY_ALIASES = ("numpy", "np", "cpu_numpy")


def _read_requested_backend():
    """NEEDLE_BACKEND, normalised (tests call this again after changing the variable)."""
    return os.environ.get(_env.NEEDLE_BACKEND, "").strip().lower()


#: NEEDLE_BACKEND as it was when needle was imported.
_REQUESTED_BACKEND = _read_requested_backend()


_devices = {}       # (backend name, index) -> BackendDevice; one object per device
_default = []       # [the default device] once computed; emptied by reset()
_warned_cpu = []    # [True] once we said needle-cpu is installed but unusable


def _device_for(backend_name, index=0):
    key = (backend_name, index)
    dev = _devices.get(key)
    if dev is None:
        shown = "cpu_numpy" if backend_name == "numpy" else backend_name
        dev = _devices[key] = BackendDevice(shown, backend_name, registry, index, restore=_restore_device)
    return dev


def cpu_numpy():
    """The built-in numpy backend; always available."""
    return _device_for("numpy")


def cpu():
    """needle-cpu when it is installed and usable, else the numpy backend.

    ``NEEDLE_BACKEND=numpy`` (or ``np``) at import makes this the numpy backend. When
    needle-cpu is installed but cannot be used, this warns once and falls back on numpy.
    """
    if _REQUESTED_BACKEND in _NUMPY_ALIASES:
        return cpu_numpy()
    native = _device_for("cpu")
    if native.enabled():
        return native
    if registry.has("cpu") and not _warned_cpu:
        _warned_cpu.append(True)
        import warnings
        warnings.warn(f"needle-cpu is installed but cannot be used ({native.disabled_reason}); "
                      f"ndl.cpu() is the numpy backend", NeedlePluginWarning, stacklevel=2)
    return cpu_numpy()


def cuda(index=0):
    """CUDA device ``index``; a disabled device (``enabled()`` False) when no GPU or no needle-cuda."""
    return _device_for("cuda", check_index(index))


def device(name, index=0):
    """The device of the backend called ``name``; ``"numpy"``/``"np"`` give :func:`cpu_numpy`.

    ``device("cpu")`` is strictly needle-cpu (disabled when it is not installed); ``"nd"`` means
    :func:`cpu`. A device passes through unchanged. Unknown names give a disabled device whose
    ``disabled_reason`` lists what is installed.
    """
    if isinstance(name, BackendDevice):
        return name
    if not isinstance(name, str):
        raise TypeError(f"device: name must be a str such as 'cpu' or 'cuda', got {name!r}")
    index = check_index(index)
    name = name.strip().lower()
    if name in _NUMPY_ALIASES:
        if index:
            raise ValueError(f"device: the numpy backend has one device, got index {index}")
        return cpu_numpy()
    if name == "nd":
        return cpu()
    return _device_for(name, index)


def default_device():
    """The device ``NEEDLE_BACKEND`` named when needle was imported; :func:`cpu` when unset or ``nd``.

    Raises :class:`DeviceUnavailableError` when the variable names a backend that is not
    installed (the message lists those that are) or one that cannot run here.
    """
    if _default:
        return _default[0]
    name = _REQUESTED_BACKEND
    if name in ("", "nd"):
        dev = cpu()
    else:
        dev = device(name)
        reason = dev.disabled_reason
        if reason is not None:
            if (not registry.has(dev.backend_name) and dev.backend_name not in registry.conflicts
                    and not registry.failed_plugins_for(dev.backend_name)):
                hint = f" (`{INSTALL_HINTS[name]}`)" if name in INSTALL_HINTS else ""
                valid = ["numpy (or np)", "nd"] + [n for n in registry.names() if n != "numpy"]
                raise DeviceUnavailableError(
                    f"{_env.NEEDLE_BACKEND}={name!r} names no installed backend{hint}; valid values here: "
                    f"{', '.join(valid)}; unset it to use {cpu()!r}")
            raise DeviceUnavailableError(f"{_env.NEEDLE_BACKEND}={name!r} picks {dev!r}, which is not "
                                         f"available: {reason}")
    _default.append(dev)
    return dev


def all_devices():
    """One device per registered backend (device 0 of each), enabled or not."""
    return [cpu_numpy() if name == "numpy" else _device_for(name) for name in registry.names()]


def available_backends():
    """Names of the registered backends, enabled or not (see ``device(name).enabled()``)."""
    return registry.names()


def register_plugin(plugin, name=None, distribution="(in-process)"):
    """Register a plugin object (module or instance with a ``@hookimpl needle_backends``) in-process.

    Unlike an entry point, problems raise: :class:`PluginLoadError` for a broken plugin,
    :class:`BackendConflictError` when a backend name is already taken. Forgotten by :func:`reset`.
    """
    registry.register_plugin(plugin, name=name, distribution=distribution)
    _forget_devices()


def unregister_plugin(name):
    """Remove a plugin registered with :func:`register_plugin` and the backends it gave."""
    registry.unregister_plugin(name)
    _forget_devices()


def _forget_devices():
    _devices.clear()
    _default.clear()
    _warned_cpu.clear()


def reset():
    """Forget every discovered plugin, in-process plugin and cached device (for tests).

    The next device lookup discovers the entry points again and re-reads
    ``NEEDLE_PLUGINS_STRICT``, ``NEEDLE_DISABLE_PLUGIN_AUTOLOAD`` and ``NEEDLE_PLUGINS``
    (``NEEDLE_BACKEND`` is only read at import).
    """
    registry.reset()
    _forget_devices()


def _restore_device(backend_name, index):
    """Unpickle a device: the same device of this process's registry."""
    return cpu_numpy() if backend_name == "numpy" else _device_for(backend_name, index)
