"""Which backends the conformance suite runs on, and in-process test backends.

``NEEDLE_TEST_BACKENDS=numpy,cpu`` picks backends by name; else ``NEEDLE_BACKEND`` picks one;
else every enabled backend runs (the in-process ``reference`` backend included).
"""
import os

from .. import backends
from . import _reference_backend

#: Comma-separated backend names the conformance suite runs on.
NEEDLE_TEST_BACKENDS = "NEEDLE_TEST_BACKENDS"
#: Name of the minimal in-process backend that ships with needle.testing.
REFERENCE = "reference"

_ALIASES = {"np": "numpy", "cpu_numpy": "numpy"}
_registered = {}  # backend name -> the plugin object we registered for it


class _InProcessPlugin:
    """A pluggy plugin object that provides one backend spec."""

    def __init__(self, name, load, distribution):
        self._spec = (name, load, distribution)

    @backends.hookimpl
    def needle_backends(self):
        name, load, distribution = self._spec
        return [backends.BackendSpec(name=name, load=load, distribution=distribution,
                                     description="registered in-process by needle.testing")]


def register_test_backend(name, backend=None, *, load=None, distribution="(in-process)"):
    """Register a backend module (or a ``load()`` callable returning one) under ``name``.

    It goes through the same plugin registry as an installed backend, so this is how to
    run the conformance suite on a backend that is not installed as a distribution: call
    it from your ``conftest.py`` and set ``NEEDLE_TEST_BACKENDS=name``. Calling it again
    with the same name is a no-op (it re-registers after ``needle.backends.reset()``).
    Returns the device.
    """
    if (backend is None) == (load is None):
        raise TypeError("register_test_backend: pass exactly one of backend= or load=")
    if load is None:
        def load():
            return backend
    if name not in backends.available_backends():
        plugin = _InProcessPlugin(name, load, distribution)
        backends.register_plugin(plugin, name=f"needle.testing:{name}", distribution=distribution)
        _registered[name] = plugin
    elif name not in _registered:
        spec_owner = backends.device(name)
        raise ValueError(f"register_test_backend: a backend named {name!r} is already registered "
                         f"({spec_owner!r}); pick another name")
    return backends.device(name)


def register_reference_backend():
    """Register the minimal ``reference`` backend (required kernels only, no float64); returns its device."""
    return register_test_backend(REFERENCE, _reference_backend, distribution="needle-core (needle.testing)")


def canonical_name(name):
    """The registry's name for a backend name users may spell as an alias (``np``)."""
    name = name.strip().lower()
    return _ALIASES.get(name, name)


def selected_backends():
    """Names of the backends the conformance suite runs on (see the module docstring)."""
    register_reference_backend()
    listed = os.environ.get(NEEDLE_TEST_BACKENDS)
    if listed is not None:
        return list(dict.fromkeys(canonical_name(n) for n in listed.split(",") if n.strip()))
    requested = os.environ.get("NEEDLE_BACKEND", "").strip()
    if requested and requested.lower() != "nd":
        return [canonical_name(requested)]
    names = []
    for name in backends.available_backends():
        if backends.device(name).enabled():
            names.append(name)
    return names


def backend_device(name):
    """The device for backend ``name`` (re-registering the in-process test backends if needed)."""
    name = canonical_name(name)
    if name == REFERENCE:
        return register_reference_backend()
    if name in _registered and name not in backends.available_backends():
        plugin = _registered.pop(name)
        return register_test_backend(name, load=plugin._spec[1], distribution=plugin._spec[2])
    return backends.device(name)
