"""Which backends the conformance suite runs on, and in-process test backends.

``NEEDLE_TEST_BACKENDS=numpy,cpu`` picks backends by name; else ``NEEDLE_BACKEND`` picks one;
else every enabled backend runs (the in-process ``reference`` backend included). A backend
picked by name that is not installed or cannot run here is an error, not a skip (a typo must
not pass as "all skipped"), unless ``NEEDLE_TEST_ALLOW_MISSING=1``.
"""
import os

from .. import backends
from . import _reference_backend

#: Comma-separated backend names the conformance suite runs on.
NEEDLE_TEST_BACKENDS = "NEEDLE_TEST_BACKENDS"
#: Set to 1 to skip, rather than fail, the tests of a named backend that is not enabled here.
NEEDLE_TEST_ALLOW_MISSING = "NEEDLE_TEST_ALLOW_MISSING"
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


def _named_by():
    """The environment variable that names the backends to test, or None (every enabled one)."""
    if os.environ.get(NEEDLE_TEST_BACKENDS) is not None:
        return NEEDLE_TEST_BACKENDS
    requested = os.environ.get("NEEDLE_BACKEND", "").strip()
    if requested and requested.lower() != "nd":
        return "NEEDLE_BACKEND"
    return None


def selected_backends():
    """Names of the backends the conformance suite runs on (see the module docstring)."""
    register_reference_backend()
    variable = _named_by()
    if variable is not None:
        names = os.environ[variable].split(",") if variable == NEEDLE_TEST_BACKENDS else [os.environ[variable]]
        return list(dict.fromkeys(canonical_name(n) for n in names if n.strip()))
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


def missing_allowed():
    """True when ``NEEDLE_TEST_ALLOW_MISSING`` asks to skip the tests of backends that cannot run."""
    return os.environ.get(NEEDLE_TEST_ALLOW_MISSING, "").strip().lower() in ("1", "true", "yes")


def not_enabled_message(name):
    """None when backend ``name`` can run here, else the error that says which backend, named where,
    and why it cannot run."""
    device = backend_device(name)
    if device.enabled():
        return None
    where = _named_by() or "the backend list"
    return (f"backend {name!r} named in {where} is not enabled: {device.disabled_reason} "
            f"(fix the name or install the backend; set {NEEDLE_TEST_ALLOW_MISSING}=1 to skip its tests instead)")
