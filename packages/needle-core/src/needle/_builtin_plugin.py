"""The numpy backend, registered with the plugin manager like any other plugin (always present)."""
from ._hookspecs import BackendSpec, hookimpl


def _load():
    from .backend_ndarray import numpy_backend
    return numpy_backend


@hookimpl
def needle_backends():
    """needle-core's own backend: the protocol on numpy arrays."""
    return [BackendSpec(name="numpy", load=_load, distribution="needle-core",
                        description="built-in reference backend on numpy (float32, float64)")]
