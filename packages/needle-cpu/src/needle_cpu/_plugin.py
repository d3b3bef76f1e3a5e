"""Registers the ``cpu`` backend with needle (entry point group ``needle.backends``)."""
from needle.backends import BackendSpec, hookimpl


@hookimpl
def needle_backends():
    def load():
        from . import _backend  # imports the compiled extension
        return _backend

    return [BackendSpec(name="cpu", load=load, distribution="needle-cpu",
                        description="native C++ kernels: packed AVX-512/AVX2 GEMM, threads, run-time ISA dispatch")]
