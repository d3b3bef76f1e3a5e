"""The numpy backend, registered with the plugin manager like any other plugin."""
from ._hookspecs import pluggy

hookimpl = pluggy.HookimplMarker("needle")


@hookimpl
def needle_backends():
    from .backends import BackendSpec

    def load():
        from .backend_ndarray import numpy_backend
        return numpy_backend

    return [BackendSpec(name="numpy", load=load, distribution="needle-core")]
