"""Environment variables Needle reads, named in one place."""
import os

#: Default backend: numpy/np, cpu, cuda, nd (native backends), or a plugin's name.
NEEDLE_BACKEND = "NEEDLE_BACKEND"
#: "1": a plugin that fails to load is an error instead of a warning.
NEEDLE_PLUGINS_STRICT = "NEEDLE_PLUGINS_STRICT"
#: "1": load no entry-point plugins except those named in NEEDLE_PLUGINS.
NEEDLE_DISABLE_PLUGIN_AUTOLOAD = "NEEDLE_DISABLE_PLUGIN_AUTOLOAD"
#: Comma-separated entry-point names to load when autoload is disabled.
NEEDLE_PLUGINS = "NEEDLE_PLUGINS"


def flag(name):
    """True when the variable is set to a true-ish value."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def names(name):
    """The comma-separated names held in the variable."""
    return [n.strip() for n in os.environ.get(name, "").split(",") if n.strip()]
