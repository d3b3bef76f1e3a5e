"""Entry-point module: tells needle which backends this distribution provides.

needle imports this module on the first device lookup (never at ``import needle``). Keep it
cheap: import the kernels, and any heavy library they need, inside ``_load``.
"""
from needle.backends import BackendSpec, hookimpl


def _load():
    from . import _backend  # may raise (missing library...): needle then disables this device and says why
    return _backend


@hookimpl
def needle_backends():
    """The backends of this distribution; the name is what users pass to ``needle.device``."""
    return [BackendSpec(name="mybackend", load=_load, description="<one line: what runs the kernels>")]
