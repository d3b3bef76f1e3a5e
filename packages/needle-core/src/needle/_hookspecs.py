"""Hook specifications for Needle plugins (pluggy project name ``"needle"``); the only hook module.

A backend distribution exposes a module under the ``needle.backends`` entry-point group;
that module implements the hooks below with ``@needle.backends.hookimpl``.
"""
import pluggy

hookspec = pluggy.HookspecMarker("needle")


@hookspec
def needle_backends():
    """Return the :class:`needle.backends.BackendSpec` objects this plugin provides (a list).

    Core calls this once per plugin, on the first device lookup. Keep it cheap: do not import
    heavy libraries (CuPy, a compiled extension) here; put that work in the spec's ``load``
    callable, which core calls on first use of the device. An exception here disables this
    plugin only (with a warning that shows it).
    """
