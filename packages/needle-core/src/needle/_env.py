"""Environment variables Needle reads, named in one place."""
import os

#: Default backend, read at import: numpy/np/cpu_numpy, nd (the native backends: cpu()), cpu, cuda,
#: or a plugin's backend name.
NEEDLE_BACKEND = "NEEDLE_BACKEND"
#: "1": a plugin that fails to load, or two plugins claiming one backend name, is an error.
NEEDLE_PLUGINS_STRICT = "NEEDLE_PLUGINS_STRICT"
#: "1": load no entry-point plugins except those named in NEEDLE_PLUGINS.
NEEDLE_DISABLE_PLUGIN_AUTOLOAD = "NEEDLE_DISABLE_PLUGIN_AUTOLOAD"
#: Comma-separated entry-point (or distribution) names to load when autoload is disabled.
NEEDLE_PLUGINS = "NEEDLE_PLUGINS"

#: Seconds one plugin's import may take before it is reported as failed (default 30; 0 or inf: no limit).
NEEDLE_PLUGIN_TIMEOUT = "NEEDLE_PLUGIN_TIMEOUT"

#: Every variable above, for ``python -m needle``.
ALL = (NEEDLE_BACKEND, NEEDLE_PLUGINS_STRICT, NEEDLE_DISABLE_PLUGIN_AUTOLOAD, NEEDLE_PLUGINS, NEEDLE_PLUGIN_TIMEOUT)

_TRUE = ("1", "true", "yes", "on")


def flag(name):
    """True when the variable is set to a true-ish value (1, true, yes, on)."""
    return os.environ.get(name, "").strip().lower() in _TRUE


def names(name):
    """The comma-separated names held in the variable (stripped, empty ones dropped)."""
    return [n.strip() for n in os.environ.get(name, "").split(",") if n.strip()]
