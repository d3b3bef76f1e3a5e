"""The ``needle.backends`` entry point: registers the ``cuda`` backend.

Loading this plugin imports neither CuPy nor the kernels; the registry calls ``load`` on the
first use of ``ndl.cuda()`` and then asks the module's ``unavailable_reason()``.
"""
from needle.backends import BackendSpec, hookimpl


@hookimpl
def needle_backends():
    def load():
        from . import _backend
        return _backend

    return [BackendSpec(name="cuda", load=load, distribution="needle-cuda",
                        description="CUDA GPUs through CuPy (cuBLAS matmul, fused elementwise kernels)")]
