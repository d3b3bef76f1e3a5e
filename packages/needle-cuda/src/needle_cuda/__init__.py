"""needle-cuda: the CUDA backend of Needle, built on CuPy.

Installing this package registers the ``cuda`` backend (``ndl.cuda()``). It imports on any
machine; CuPy comes from an extra (``pip install needle-cuda[cuda12]`` or ``[cuda13]``) and is
imported only when the backend is first used. Where CuPy or a GPU is missing,
``ndl.cuda().enabled()`` is False and :func:`unavailable_reason` says why.
"""
from ._backend import (
    DTYPES,
    MATMUL_ENV,
    MATMUL_IMPLS,
    for_device,
    get_matmul_impl,
    matmul_impl,
    reset_transfer_stats,
    set_matmul_impl,
    synchronize,
    transfer_stats,
    use_device,
)
from ._cupy import CudaUnavailableError, device_count, unavailable_reason
from .version import __version__


def is_available():
    """True when CuPy imports and sees at least one CUDA device."""
    return unavailable_reason() is None


__all__ = [
    "__version__", "DTYPES", "MATMUL_ENV", "MATMUL_IMPLS", "CudaUnavailableError", "device_count", "for_device",
    "get_matmul_impl", "is_available", "matmul_impl", "reset_transfer_stats", "set_matmul_impl", "synchronize",
    "transfer_stats", "unavailable_reason", "use_device",
]
