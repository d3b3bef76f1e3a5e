"""The entry-point module: tells needle which backends this distribution provides.

Keep it cheap. needle imports it during plugin discovery (the first device lookup), so the
kernels themselves are imported only inside ``load``, when the "toy" device is first used.
"""
from needle.backends import BackendSpec, hookimpl


def _load():
    from . import _backend
    return _backend


@hookimpl
def needle_backends():
    """The one backend of this distribution."""
    return [BackendSpec(name="toy", load=_load,
                        description="example third-party backend (numpy: float32, int64, uint8, bool)")]
