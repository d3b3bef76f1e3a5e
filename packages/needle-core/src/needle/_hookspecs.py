"""Hook specifications for Needle plugins (pluggy project name ``"needle"``); the only hook module.

A backend distribution exposes a module under the ``needle.backends`` entry-point group;
that module implements the hooks below with ``@needle.backends.hookimpl``.

This module also holds what a plugin's hook returns (:class:`BackendSpec`) and the
``hookimpl`` marker, both published as :mod:`needle.backends` names. It imports nothing from
needle: the registry, the built-in plugin and the public facade all build on it.
"""
from dataclasses import dataclass, field
from typing import Callable

import pluggy

hookspec = pluggy.HookspecMarker("needle")

#: Marks a plugin's hook implementation (``@hookimpl def needle_backends(): ...``).
hookimpl = pluggy.HookimplMarker("needle")


@dataclass
class BackendSpec:
    """A backend a plugin provides.

    ``name`` is what users pass to :func:`device` (case-insensitive). ``load`` imports and
    returns the protocol module; core calls it on first use, so a heavy or failing import
    (CuPy with no GPU) never slows or breaks ``import needle``. ``distribution`` is filled in
    from the entry point's distribution.
    """

    name: str
    load: Callable[[], object]
    distribution: str = ""
    description: str = ""
    plugin_name: str = field(default="", repr=False)


BackendSpec.__module__ = "needle.backends"  # its public home (documentation, pickles)


@hookspec
def needle_backends():
    """Return the :class:`needle.backends.BackendSpec` objects this plugin provides (a list).

    Core calls this once per plugin, on the first device lookup. Keep it cheap: do not import
    heavy libraries (CuPy, a compiled extension) here; put that work in the spec's ``load``
    callable, which core calls on first use of the device. An exception here disables this
    plugin only (with a warning that shows it).
    """
