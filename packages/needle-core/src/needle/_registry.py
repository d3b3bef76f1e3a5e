"""The plugin registry: finds backends through pluggy and the ``needle.backends`` entry points.

Discovery is lazy (first device lookup) and cached. Each entry point loads on its own, so
one broken plugin warns, naming its distribution and the real exception, and the rest load.
"""
import importlib.metadata
import traceback
import warnings

import pluggy

from . import _env, _hookspecs
from .backend_ndarray import protocol

ENTRY_POINT_GROUP = "needle.backends"


class PluginLoadError(RuntimeError):
    """A plugin failed to load while NEEDLE_PLUGINS_STRICT is set."""


class BackendConflictError(RuntimeError):
    """Two distributions register a backend under one name."""


class NeedlePluginWarning(UserWarning):
    """A plugin could not be loaded; the other backends keep working."""


def _iter_entry_points():
    """Entry points of our group (a seam for tests that fake installed distributions)."""
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _describe(exc):
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


class Registry:
    """Backends by name, with the plugin that registered each and any load failure."""

    def __init__(self):
        self.reset()

    def reset(self):
        self._discovered = False
        self.pm = None
        self.specs = {}          # backend name -> BackendSpec
        self.conflicts = {}      # backend name -> [distribution, ...]
        self.plugin_errors = []  # (entry point name, distribution, message)
        self._loaded = {}        # (backend name, index) -> (module or None, reason or None)
        self._extra = []         # plugins registered in-process before discovery

    # ---- discovery --------------------------------------------------------------------
    def register_plugin(self, plugin, name=None, distribution="(in-process)"):
        """Register a plugin object (module or instance implementing the hooks)."""
        if not self._discovered:
            self._extra.append((plugin, name, distribution))
            return
        self._add_plugin(plugin, name, distribution)

    def unregister_plugin(self, name):
        """Remove an in-process plugin and the backends it gave."""
        self._extra = [e for e in self._extra if e[1] != name]
        if self.pm is not None and self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        for backend, spec in list(self.specs.items()):
            if spec.plugin_name == name:
                del self.specs[backend]
                self._loaded = {k: v for k, v in self._loaded.items() if k[0] != backend}

    def discover(self):
        if self._discovered:
            return
        self._discovered = True
        self.pm = pluggy.PluginManager("needle")
        self.pm.add_hookspecs(_hookspecs)
        from . import _builtin_plugin
        self._add_plugin(_builtin_plugin, "numpy", "needle-core")
        for plugin, name, dist in self._extra:
            self._add_plugin(plugin, name, dist)
        self._extra = []
        only = set(_env.names(_env.NEEDLE_PLUGINS)) if _env.flag(_env.NEEDLE_DISABLE_PLUGIN_AUTOLOAD) else None
        for ep in _iter_entry_points():
            if only is not None and ep.name not in only:
                continue
            dist = ep.dist.name if getattr(ep, "dist", None) is not None else "(unknown distribution)"
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not break `import needle`
                self._fail(ep.name, dist, f"import of {ep.value!r} failed: {_describe(exc)}", exc)
                continue
            self._add_plugin(plugin, ep.name, dist)

    def _fail(self, name, dist, message, exc=None):
        self.plugin_errors.append((name, dist, message))
        text = f"needle plugin {name!r} from distribution {dist!r} could not be loaded: {message}"
        if _env.flag(_env.NEEDLE_PLUGINS_STRICT):
            raise PluginLoadError(text + f" (unset {_env.NEEDLE_PLUGINS_STRICT} to skip it)") from exc
        warnings.warn(text, NeedlePluginWarning, stacklevel=4)

    def _add_plugin(self, plugin, name, dist):
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:
            self._fail(name, dist, f"registration failed: {_describe(exc)}", exc)
            return
        specs = []
        for impl in self.pm.hook.needle_backends.get_hookimpls():
            if impl.plugin is plugin:
                try:
                    specs = list(impl.function() or [])
                except Exception as exc:
                    self.pm.unregister(plugin)
                    self._fail(name, dist, f"needle_backends() raised {_describe(exc)}", exc)
                    return
        for spec in specs:
            spec.distribution = spec.distribution or dist
            spec.plugin_name = name
            taken = self.specs.get(spec.name)
            if taken is not None or spec.name in self.conflicts:
                owners = self.conflicts.setdefault(spec.name, [taken.distribution] if taken else [])
                owners.append(spec.distribution)
                self.specs.pop(spec.name, None)
                message = (f"backend name {spec.name!r} is claimed by distributions "
                           f"{' and '.join(map(repr, owners))}; uninstall one of them")
                if _env.flag(_env.NEEDLE_PLUGINS_STRICT):
                    raise BackendConflictError(message)
                warnings.warn(message, NeedlePluginWarning, stacklevel=4)
                continue
            self.specs[spec.name] = spec

    # ---- lookup -----------------------------------------------------------------------
    def names(self):
        self.discover()
        return sorted(self.specs)

    def has(self, name):
        self.discover()
        return name in self.specs

    def load(self, name, index=0):
        """(module, None) for a usable backend, or (None, reason) for one that is not."""
        self.discover()
        key = (name, index)
        if key not in self._loaded:
            self._loaded[key] = self._load(name, index)
        return self._loaded[key]

    def _load(self, name, index):
        if name in self.conflicts:
            return None, (f"backend name {name!r} is claimed by distributions "
                          f"{' and '.join(map(repr, self.conflicts[name]))}; uninstall one of them")
        spec = self.specs.get(name)
        if spec is None:
            hint = _INSTALL_HINTS.get(name, "")
            return None, f"no backend named {name!r} is installed{hint} (installed: {', '.join(sorted(self.specs))})"
        try:
            module = spec.load()
        except Exception as exc:
            return None, (f"backend {name!r} from distribution {spec.distribution!r} failed to load: "
                          f"{_describe(exc)}")
        version = getattr(module, "PROTOCOL_VERSION", None)
        if version != protocol.PROTOCOL_VERSION:
            return None, (f"backend {name!r} from distribution {spec.distribution!r} implements protocol "
                          f"version {version}, but needle-core {_core_version()} needs version "
                          f"{protocol.PROTOCOL_VERSION}")
        missing = protocol.missing_kernels(module)
        if missing:
            return None, (f"backend {name!r} from distribution {spec.distribution!r} lacks required "
                          f"kernels: {', '.join(missing)}")
        check = getattr(module, "unavailable_reason", None)
        reason = check() if check is not None else None
        if reason is None and index:
            count = getattr(module, "device_count", lambda: 1)()
            if index >= count:
                reason = f"device index {index} is out of range: backend {name!r} has {count} device(s)"
        return (None, reason) if reason else (module, None)


_INSTALL_HINTS = {
    "cpu": "; install it with `pip install needle-cpu`",
    "cuda": "; install it with `pip install needle-cuda[cuda12]` (or [cuda13])",
}


def _core_version():
    from .version import __version__
    return __version__


registry = Registry()
