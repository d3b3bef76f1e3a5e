"""needle-cpu: Needle's native CPU backend (C++ kernels, packed AVX-512/AVX2 GEMM, threads).

Installing this distribution registers the backend ``"cpu"`` with needle through the
``needle.backends`` entry point; use it as ``needle.cpu()`` or ``needle.device("cpu")``.
The compiled extension is imported on first use, so ``import needle_cpu`` stays cheap and a
broken build shows up as a disabled device with a reason rather than an import error.
"""
from .version import __version__

__all__ = ["__version__", "set_num_threads", "get_num_threads", "isa"]


def set_num_threads(n):
    """Use ``n`` threads (the caller included) in the kernels. Default: ``NEEDLE_CPU_THREADS`` or all CPUs."""
    from . import _core
    _core.set_num_threads(int(n))


def get_num_threads():
    """The number of threads the kernels use."""
    from . import _core
    return _core.get_num_threads()


def isa():
    """The instruction set the kernels run with: ``"avx512"`` (AVX-512 F/VL/DQ), ``"avx2"`` (AVX2+FMA)
    or ``"generic"``: the best the CPU supports, capped by ``NEEDLE_CPU_ISA``."""
    from . import _core
    return _core.get_isa()
