"""The plugin registry: finds backends through pluggy and the ``needle.backends`` entry points.

Behaviour (documented for users in :mod:`needle.backends`):

- Discovery is lazy (the first device lookup, never ``import needle``) and cached until
  :meth:`Registry.reset`.
- Each entry point loads on its own. One that fails (import error, ``SystemExit``, an import
  that takes longer than ``NEEDLE_PLUGIN_TIMEOUT`` seconds, a ``needle_backends()`` that
  raises or returns garbage, a reserved or malformed backend name) gives a
  :class:`NeedlePluginWarning` naming the entry point, its distribution and the real exception;
  the other plugins and the numpy backend keep working. ``NEEDLE_PLUGINS_STRICT=1`` raises
  :class:`PluginLoadError` instead. ``KeyboardInterrupt`` is re-raised, noting the plugin.
- The entry point's module is imported in a daemon thread that discovery waits on for at most
  ``NEEDLE_PLUGIN_TIMEOUT`` seconds (default 30; ``0`` imports in the calling thread, with no
  limit). An import that blocks forever is left running in that thread and reported as failed.
- A device whose backend would have come from a plugin that failed says so in its
  ``disabled_reason`` (the plugin, its distribution and why), not "no backend ... is installed".
- Two plugins claiming one backend name: neither gets it (we cannot tell which one the user
  meant); the device of that name is disabled and its reason names both distributions.
  ``NEEDLE_PLUGINS_STRICT=1`` raises :class:`BackendConflictError` instead.
- A backend's ``load()`` runs on first use of its device. A failure there (import error,
  protocol version mismatch, missing kernels, ``unavailable_reason()``) disables that device
  only, with the reason and a pip hint; it is not a plugin error, so strict mode ignores it.

Imports run one way inside needle-core: this module knows nothing of devices or arrays (it
hands out backend modules by name); :mod:`needle.backends` builds devices on top of it.
"""
import importlib.metadata
import operator
import os
import threading
import traceback
import warnings

import pluggy

from . import _builtin_plugin, _env, _hookspecs, version
from ._hookspecs import BackendSpec

ENTRY_POINT_GROUP = "needle.backends"

#: Names that always mean the built-in numpy backend (or "the native backends"), so no plugin may take them.
RESERVED_NAMES = ("numpy", "np", "cpu_numpy", "nd")

#: How to get the well-known backends when they are missing.
INSTALL_HINTS = {
    "cpu": "pip install needle-cpu",
    "cuda": "pip install needle-cuda[cuda12] (or needle-cuda[cuda13])",
}

_BUILTIN = "needle-core"

#: Seconds a plugin's import may take when NEEDLE_PLUGIN_TIMEOUT is unset.
DEFAULT_PLUGIN_TIMEOUT = 30.0

# Set in the threads that import plugins: a device lookup there must fail fast, not wait on discovery.
_importing = threading.local()


class PluginLoadError(RuntimeError):
    """A plugin failed to load while ``NEEDLE_PLUGINS_STRICT`` is set."""


class BackendConflictError(RuntimeError):
    """Two plugins register a backend under one name (raised in strict mode or by register_plugin)."""


class NeedlePluginWarning(UserWarning):
    """A plugin could not be loaded, or two claim one name; the other backends keep working."""


def _iter_entry_points():
    """Entry points of our group (the seam tests replace to fake installed distributions)."""
    eps = importlib.metadata.entry_points()
    if hasattr(eps, "select"):  # Python >= 3.10
        return list(eps.select(group=ENTRY_POINT_GROUP))
    return list(eps.get(ENTRY_POINT_GROUP, ()))  # pragma: no cover  (Python 3.9)


def _dist_name(ep):
    dist = getattr(ep, "dist", None)  # EntryPoint.dist exists from Python 3.10
    name = getattr(dist, "name", None) if dist is not None else None
    return name or "(unknown distribution)"


def _normalize(name):
    """Distribution-name normalisation (PEP 503 style), also applied to entry point names."""
    return name.strip().lower().replace("_", "-").replace(".", "-")


def describe_exception(exc):
    """``Type: message`` of an exception, on one line where the message has one."""
    return "".join(traceback.format_exception_only(type(exc), exc)).strip()


class PluginRecord:
    """One plugin seen during discovery: where it came from, what it gave, or why it failed."""

    __slots__ = ("name", "distribution", "value", "backends", "error")

    def __init__(self, name, distribution, value=""):
        self.name = name                  # entry point name, or the in-process plugin's name
        self.distribution = distribution  # distribution that declared it
        self.value = value                # entry point target ("pkg._plugin"); "" in-process
        self.backends = []                # backend names it provided
        self.error = None                 # why it failed, or None

    def origin(self):
        """``'dist' (entry point 'name' -> value)`` for messages."""
        where = f"entry point {self.name!r} -> {self.value}" if self.value else f"plugin {self.name!r}"
        return f"{self.distribution!r} ({where})"

    def __repr__(self):
        return f"PluginRecord({self.name!r}, {self.distribution!r}, backends={self.backends}, error={self.error!r})"


class _Failure(Exception):
    """A plugin problem on its way to a warning (or PluginLoadError in strict mode)."""


class _ImportTimedOut(Exception):
    """A plugin's import did not finish within the time limit."""


#: What a plugin may raise that is its failure, not the process's: SystemExit must not end the program.
_PLUGIN_ERRORS = (Exception, SystemExit)


def plugin_timeout():
    """``NEEDLE_PLUGIN_TIMEOUT`` in seconds: the default when unset, None for 0 or ``inf`` (no limit).

    A value that is not a number >= 0 warns and gives the default.
    """
    text = os.environ.get(_env.NEEDLE_PLUGIN_TIMEOUT, "").strip()
    if not text:
        return DEFAULT_PLUGIN_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not seconds >= 0:  # NaN too
        warnings.warn(f"{_env.NEEDLE_PLUGIN_TIMEOUT}={text!r} is not a number of seconds >= 0; using "
                      f"{DEFAULT_PLUGIN_TIMEOUT:g}", NeedlePluginWarning, stacklevel=4)
        return DEFAULT_PLUGIN_TIMEOUT
    return None if seconds in (0, float("inf")) else seconds


def _import_entry_point(ep, timeout):
    """``ep.load()``, in a daemon thread waited on for at most ``timeout`` seconds (None: here, unbounded)."""
    if timeout is None:
        return ep.load()
    outcome = []

    def run():
        _importing.active = True
        try:
            outcome.append((True, ep.load()))
        except BaseException as exc:  # handed to the waiting thread (a SystemExit here would vanish)
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name=f"needle-plugin-import-{ep.name}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive() or not outcome:
        raise _ImportTimedOut
    ok, value = outcome[0]
    if ok:
        return value
    raise value


def _name_in_interrupt(exc, record):
    """Say which plugin was loading when a KeyboardInterrupt went through discovery."""
    text = f"while needle was importing plugin {record.origin()}"
    if hasattr(exc, "add_note"):  # Python >= 3.11
        exc.add_note(text)
    else:  # pragma: no cover  (Python 3.10)
        warnings.warn(f"KeyboardInterrupt {text}", NeedlePluginWarning, stacklevel=5)


class Registry:
    """Backends by name, the plugin that registered each, and every load failure."""

    def __init__(self):
        self._lock = threading.RLock()  # discovery may be triggered from loader threads
        self.reset()

    def reset(self):
        """Forget discovery, loaded backends and in-process plugins (for tests)."""
        with self._lock:
            self._discovered = False
            self._discovering = False
            self.pm = None
            self.specs = {}         # backend name -> BackendSpec
            self.owners = {}        # backend name -> PluginRecord that provided it
            self.conflicts = {}     # backend name -> [PluginRecord, ...] (two or more claimants)
            self.plugins = []       # PluginRecord per plugin seen, failed ones included
            self.unmatched = []     # NEEDLE_PLUGINS names that matched no entry point
            self._modules = {}      # backend name -> (module or None, reason or None)
            self._bound = {}        # (backend name, index) -> (namespace or None, reason or None)

    @property
    def plugin_errors(self):
        """``(entry point, distribution, message)`` for each plugin that failed."""
        return [(r.name, r.distribution, r.error) for r in self.plugins if r.error is not None]

    # ---- discovery --------------------------------------------------------------------
    def discover(self, strict=None):
        """Load the built-in backend and every entry point once; ``strict=None`` reads the env."""
        if self._discovered:
            return
        reentered = ("a plugin looked up a needle device while needle was discovering plugins; "
                     "needle_backends() must only return BackendSpec objects")
        if getattr(_importing, "active", False):  # a plugin's import thread: waiting would deadlock
            raise RuntimeError(reentered)
        with self._lock:
            if self._discovered:
                return
            if self._discovering:
                raise RuntimeError(reentered)
            strict = _env.flag(_env.NEEDLE_PLUGINS_STRICT) if strict is None else strict
            self._discovering = True
            try:
                self._discover(strict)
            except BaseException:
                self.reset()  # strict mode: the next lookup raises again instead of seeing half a registry
                raise
            finally:
                self._discovering = False
            self._discovered = True

    def _discover(self, strict):
        self.pm = pluggy.PluginManager("needle")
        self.pm.add_hookspecs(_hookspecs)
        builtin = self._record(PluginRecord("numpy", _BUILTIN))
        self._add(builtin, self._specs_of(_builtin_plugin, builtin))

        only = None
        if _env.flag(_env.NEEDLE_DISABLE_PLUGIN_AUTOLOAD):
            only = {_normalize(n) for n in _env.names(_env.NEEDLE_PLUGINS)}
        seen_values = set()
        matched = set()
        timeout = plugin_timeout()
        try:
            entry_points = _iter_entry_points()
        except Exception as exc:  # corrupt metadata of some unrelated distribution: keep numpy working
            entry_points = []
            record = self._record(PluginRecord(ENTRY_POINT_GROUP, "(installed distributions)"))
            failure = _Failure(f"listing the entry points failed: {describe_exception(exc)}")
            failure.__cause__ = exc
            self._fail(record, failure, strict)
        for ep in entry_points:
            dist = _dist_name(ep)
            if only is not None:
                hits = only & {_normalize(ep.name), _normalize(dist)}
                if not hits:
                    continue
                matched |= hits
            # One distribution found twice on sys.path lists its entry point twice: load it once.
            if ep.value in seen_values:
                continue
            seen_values.add(ep.value)
            record = self._record(PluginRecord(ep.name, dist, ep.value))
            try:
                try:
                    plugin = _import_entry_point(ep, timeout)
                except _ImportTimedOut:
                    raise _Failure(f"importing {ep.value!r} did not finish within {timeout:g} seconds (it is left "
                                   f"running in a background thread; set {_env.NEEDLE_PLUGIN_TIMEOUT} to allow "
                                   f"more)") from None
                except _PLUGIN_ERRORS as exc:  # a broken plugin must not break (or end) the program
                    raise _Failure(f"importing {ep.value!r} failed: {describe_exception(exc)}") from exc
                except KeyboardInterrupt as exc:
                    _name_in_interrupt(exc, record)
                    raise
                self._add(record, self._specs_of(plugin, record))
            except _Failure as failure:
                self._fail(record, failure, strict)
        if only is not None:
            self.unmatched = sorted(only - matched - set(RESERVED_NAMES))
            if self.unmatched:
                installed = sorted({ep.name for ep in entry_points})
                warnings.warn(
                    f"{_env.NEEDLE_PLUGINS} names {', '.join(map(repr, self.unmatched))}, but no installed "
                    f"{ENTRY_POINT_GROUP!r} entry point or distribution is called that "
                    f"(installed entry points: {', '.join(installed) or 'none'})", NeedlePluginWarning, stacklevel=3)
        for name in sorted(self.conflicts):
            message = self.conflict_message(name)
            if strict:
                raise BackendConflictError(message + f" (or unset {_env.NEEDLE_PLUGINS_STRICT})")
            warnings.warn(message, NeedlePluginWarning, stacklevel=3)

    def _fail(self, record, failure, strict):
        record.error = str(failure)
        text = (f"needle plugin {record.name!r} from distribution {record.distribution!r} could not be "
                f"loaded: {record.error}")
        if strict:
            raise PluginLoadError(text + f" (unset {_env.NEEDLE_PLUGINS_STRICT} to skip it)") from failure.__cause__
        warnings.warn(text + "; the other backends still work", NeedlePluginWarning, stacklevel=4)

    def _specs_of(self, plugin, record):
        """Register ``plugin`` with pluggy and return the specs its needle_backends() gives."""
        key = f"{record.distribution}:{record.name}"  # unique even when two distributions use one entry point name
        try:
            self.pm.register(plugin, name=key)
        except Exception as exc:
            raise _Failure(f"registering it with pluggy failed: {describe_exception(exc)}") from exc
        impls = [impl for impl in self.pm.hook.needle_backends.get_hookimpls() if impl.plugin is plugin]
        if not impls:
            others = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or ())
            self.pm.unregister(plugin)
            found = f"; it implements unknown hooks {', '.join(others)}" if others else ""
            raise _Failure("it defines no needle_backends() hook (decorate it with @needle.backends.hookimpl)"
                           + found)
        try:
            result = impls[0].function()  # called per plugin, so one that raises is isolated
        except _PLUGIN_ERRORS as exc:
            self.pm.unregister(plugin)
            raise _Failure(f"needle_backends() raised {describe_exception(exc)}") from exc
        specs = [result] if isinstance(result, BackendSpec) else list(result or ())
        for spec in specs:
            problem = None
            if not isinstance(spec, BackendSpec):
                problem = f"needle_backends() returned {spec!r}, not a needle.backends.BackendSpec"
            elif not isinstance(spec.name, str) or not spec.name.strip():
                problem = f"needle_backends() returned a BackendSpec with an invalid name {spec.name!r}"
            elif not callable(spec.load):
                problem = f"BackendSpec {spec.name!r} has a load that is not callable: {spec.load!r}"
            elif spec.name.strip().lower() in RESERVED_NAMES and record.distribution != _BUILTIN:
                problem = (f"backend name {spec.name!r} is reserved for needle's numpy backend "
                           f"(reserved: {', '.join(RESERVED_NAMES)})")
            if problem:
                self.pm.unregister(plugin)
                raise _Failure(problem)
        return specs

    def _record(self, record):
        self.plugins.append(record)
        return record

    def _add(self, record, specs):
        """Enter a plugin's specs by name; a name seen before becomes a conflict."""
        for spec in specs:
            spec.name = spec.name.strip().lower()  # device() lower-cases what users type
            self._forget(spec.name)  # a lookup before registration may have cached "not installed"
            spec.distribution = record.distribution if record.value or not spec.distribution else spec.distribution
            spec.plugin_name = record.name
            record.backends.append(spec.name)
            if spec.name in self.conflicts:
                self.conflicts[spec.name].append(record)
            elif spec.name in self.specs:
                self.conflicts[spec.name] = [self.owners.pop(spec.name), record]
                del self.specs[spec.name]
            else:
                self.specs[spec.name] = spec
                self.owners[spec.name] = record

    def conflict_message(self, name):
        """The reason a backend name claimed by several plugins is unusable."""
        claimants = self.conflicts[name]
        dists = sorted({r.distribution for r in claimants})
        return (f"backend name {name!r} is claimed by more than one plugin: "
                f"{' and '.join(r.origin() for r in claimants)}; neither is used. Uninstall all but one "
                f"of the distributions {', '.join(map(repr, dists))} (pip uninstall NAME)")

    def register_plugin(self, plugin, name, distribution="(in-process)"):
        """Register a plugin object in-process; problems raise instead of warning."""
        with self._lock:
            self.discover()
            if name is None:
                name = getattr(plugin, "__name__", None) or type(plugin).__name__
            if any(r.name == name and not r.value for r in self.plugins if r.error is None):
                raise ValueError(f"a plugin named {name!r} is already registered in-process")
            record = PluginRecord(name, distribution)
            try:
                specs = self._specs_of(plugin, record)
            except _Failure as failure:
                raise PluginLoadError(f"in-process plugin {name!r} could not be registered: {failure}") from None
            for spec in specs:
                taken = spec.name.strip().lower()
                if taken in self.specs or taken in self.conflicts:
                    self.pm.unregister(plugin)
                    owner = self.owners[taken].origin() if taken in self.owners else "several plugins"
                    raise BackendConflictError(f"in-process plugin {name!r} cannot register backend {taken!r}: "
                                               f"it is already provided by {owner}")
            self._add(self._record(record), specs)

    def unregister_plugin(self, name):
        """Remove an in-process plugin and the backends it gave."""
        with self._lock:
            for record in [r for r in self.plugins if r.name == name and not r.value]:
                self.plugins.remove(record)
                plugin = self.pm.get_plugin(f"{record.distribution}:{record.name}") if self.pm else None
                if plugin is not None:
                    self.pm.unregister(plugin)
                for backend in record.backends:
                    if self.owners.get(backend) is record:
                        del self.specs[backend]
                        del self.owners[backend]
                        self._forget(backend)

    def _forget(self, backend):
        self._modules.pop(backend, None)
        for key in [k for k in self._bound if k[0] == backend]:
            del self._bound[key]

    # ---- lookup -----------------------------------------------------------------------
    def names(self):
        """Sorted names of the usable-by-name backends (conflicted names excluded)."""
        self.discover()
        return sorted(self.specs)

    def has(self, name):
        self.discover()
        return name in self.specs

    def load(self, name, index=0):
        """``(module, None)`` for a usable backend device, or ``(None, reason)`` for one that is not."""
        self.discover()
        key = (name, index)
        try:
            return self._bound[key]
        except KeyError:
            pass
        with self._lock:
            if key not in self._bound:
                self._bound[key] = self._bind(name, index)
            return self._bound[key]

    def _bind(self, name, index):
        module, reason = self._load_module(name)
        if module is None:
            return None, reason
        spec = self.specs[name]
        try:
            check = getattr(module, "unavailable_reason", None)
            reason = check() if check is not None else None
            if reason is None:
                counter = getattr(module, "device_count", None)
                count = counter() if counter is not None else 1
                if index >= count:
                    if count == 0:
                        reason = f"backend {name!r} reports no devices"
                    else:
                        reason = f"device index {index} is out of range: backend {name!r} has {count} device(s)"
            if reason is None and index:
                binder = getattr(module, "for_device", None)
                if binder is None:
                    reason = (f"backend {name!r} has {count} devices but no for_device(index) to bind "
                              f"device {index}")
                else:
                    module = binder(index)
        except _PLUGIN_ERRORS as exc:  # a plugin bug while probing: disable the device, say why
            reason = (f"backend {name!r} from distribution {spec.distribution!r} failed its availability "
                      f"check: {describe_exception(exc)}")
        return (None, str(reason)) if reason else (module, None)

    def failed_plugins_for(self, name):
        """Failed entry-point plugins that most likely provide backend ``name`` (by entry point or distribution)."""
        self.discover()
        return [r for r in self.plugins if r.error is not None and r.value and name in _names_it_could_provide(r)]

    def _missing_reason(self, name):
        """Why no plugin provides backend ``name``: a plugin that should have failed, or none is installed."""
        likely = self.failed_plugins_for(name)
        failed = [r for r in self.plugins if r.error is not None and r.value]
        if likely:
            return "; ".join(f"backend {name!r} is unavailable: plugin {r.origin()} failed to load: {r.error}; "
                             f"try `pip install --force-reinstall {r.distribution}`" for r in likely)
        installed = ", ".join(sorted(self.specs))
        hint = f"; install it with `{INSTALL_HINTS[name]}`" if name in INSTALL_HINTS else ""
        reason = f"no backend named {name!r} is installed{hint} (installed: {installed})"
        if failed:
            reason += "; plugins that failed to load: " + "; ".join(f"{r.origin()}: {r.error}" for r in failed)
        return reason

    def _load_module(self, name):
        if name not in self._modules:
            self._modules[name] = self._import_backend(name)
        return self._modules[name]

    def _import_backend(self, name):
        if name in self.conflicts:
            return None, self.conflict_message(name)
        spec = self.specs.get(name)
        if spec is None:
            return None, self._missing_reason(name)
        # Imported here, when a backend is first used: importing a submodule of backend_ndarray runs
        # that package's __init__, which sits above this module (it imports the device facade).
        from .backend_ndarray import protocol
        dist = spec.distribution
        reinstall = f"try `pip install --force-reinstall {dist}`" if dist not in ("", _BUILTIN) else ""
        try:
            module = spec.load()
        except _PLUGIN_ERRORS as exc:
            return None, (f"backend {name!r} from distribution {dist!r} failed to load: "
                          f"{describe_exception(exc)}" + (f"; {reinstall}" if reinstall else ""))
        version = getattr(module, "PROTOCOL_VERSION", None)
        if not isinstance(version, int) or isinstance(version, bool):
            return None, (f"backend {name!r} from distribution {dist!r} declares PROTOCOL_VERSION = {version!r}; "
                          f"it must be an int (needle-core {_core_version()} speaks versions "
                          f"{', '.join(map(str, protocol.SUPPORTED_PROTOCOLS))})")
        if version not in protocol.SUPPORTED_PROTOCOLS:
            newer = version > max(protocol.SUPPORTED_PROTOCOLS)
            upgrade = "needle-core" if newer else dist
            return None, (f"backend {name!r} from distribution {dist!r} implements backend protocol version "
                          f"{version}, but needle-core {_core_version()} implements versions "
                          f"{', '.join(map(str, protocol.SUPPORTED_PROTOCOLS))}; install matching versions "
                          f"(`pip install --upgrade {upgrade}`)")
        missing = protocol.missing_kernels(module)
        if missing:
            return None, (f"backend {name!r} from distribution {dist!r} lacks required kernels: "
                          f"{', '.join(missing)}" + (f"; {reinstall}" if reinstall else ""))
        return module, None


def _names_it_could_provide(record):
    """Backend names a failed plugin most likely provides: its entry point's name, its distribution's."""
    dist = _normalize(record.distribution)
    return {_normalize(record.name), dist, dist.removeprefix("needle-")}


def check_index(index):
    """A device index as an int >= 0, or a clear error."""
    try:
        index = operator.index(index)
    except TypeError:
        raise TypeError(f"device index must be an int, got {index!r}") from None
    if index < 0:
        raise ValueError(f"device index must be >= 0, got {index}")
    return index


def _core_version():
    return version.__version__


registry = Registry()
