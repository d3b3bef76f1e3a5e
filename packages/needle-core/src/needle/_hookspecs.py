"""Hook specifications for Needle plugins (pluggy project name ``"needle"``).

A backend distribution exposes a module under the ``needle.backends`` entry-point group;
that module implements the hooks below with ``@needle.backends.hookimpl``.
"""
import pluggy

hookspec = pluggy.HookspecMarker("needle")


@hookspec
def needle_backends():
    """Return a list of :class:`needle.backends.BackendSpec` this plugin provides.

    Keep this cheap: do not import heavy libraries (CuPy, a compiled extension) here;
    put that work in the spec's ``load`` callable, which core calls on first use.
    """
