"""Lazy, cached access to CuPy and the CUDA devices it sees.

Nothing here imports CuPy at module import time: ``pip install needle-cuda`` must import on a
machine without CuPy or a GPU. The first call to :func:`load` tries the import and asks the CUDA
runtime how many devices it sees (as ``cupy.cuda.is_available`` does) and whether NVRTC, the
compiler every CuPy kernel needs, loads; it catches every error and caches either the module or
a sentence saying why the backend cannot run here.
"""
INSTALL_HINT = "pip install needle-cuda[cuda12] (CUDA 12) or needle-cuda[cuda13] (CUDA 13)"
#: CuPy's wheels need the CUDA libraries (NVRTC, cuBLAS, ...): the [cuda12]/[cuda13] extras pull them from
#: PyPI (cupy's [ctk] extra); the [cuda12-local]/[cuda13-local] extras expect a CUDA toolkit on the system.
TOOLKIT_HINT = ("pip install needle-cuda[cuda12] or [cuda13] (brings the CUDA libraries from PyPI), "
                "or install the CUDA toolkit matching your CuPy wheel")

_state = None  # (cupy module or None, device count, reason or None) once probed
_module = None  # the CuPy module once require() succeeded: the kernels' fast path


class CudaUnavailableError(RuntimeError):
    """A needle-cuda kernel was called where CuPy or a CUDA device is missing."""


def _import_cupy():
    """Import CuPy (a seam: host-side tests replace it to simulate a missing install)."""
    import cupy
    return cupy


def _device_count(cupy):
    """Devices the CUDA runtime sees; raises what the runtime raises (a seam for tests)."""
    return int(cupy.cuda.runtime.getDeviceCount())


def _check_compiler(cupy):
    """Raise when NVRTC, which compiles every CuPy kernel at first use, cannot be loaded (a seam for tests)."""
    cupy.cuda.nvrtc.getVersion()


def _first_line(exc):
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _probe():
    try:
        cupy = _import_cupy()
    except ModuleNotFoundError as exc:
        if exc.name in (None, "cupy") or str(exc).endswith("'cupy'"):
            return None, 0, f"CuPy is not installed: {INSTALL_HINT}"
        return None, 0, f"CuPy is installed but failed to import ({_first_line(exc)}); reinstall with {INSTALL_HINT}"
    except Exception as exc:  # CuPy re-raises broken installs with a diagnosis; keep its first line
        return None, 0, f"CuPy is installed but failed to import ({_first_line(exc)}); reinstall with {INSTALL_HINT}"
    version = getattr(cupy, "__version__", "?")
    try:
        count = _device_count(cupy)
    except Exception as exc:  # no driver, driver too old, CUDA_VISIBLE_DEVICES="" ...
        return None, 0, (f"CuPy {version} is installed but no CUDA device is visible "
                         f"(cudaGetDeviceCount failed: {_first_line(exc)})")
    if count <= 0:
        return None, 0, (f"CuPy {version} is installed but no CUDA device is visible "
                         f"(cudaGetDeviceCount returned {count})")
    try:
        _check_compiler(cupy)
    except Exception as exc:  # a GPU is there, but kernels could not be compiled: say so now, not at first use
        return None, 0, (f"CuPy {version} sees {count} CUDA device(s) but cannot load NVRTC, the CUDA compiler "
                         f"its kernels need ({_first_line(exc)}): {TOOLKIT_HINT}")
    return cupy, count, None


def load():
    """``(cupy, device_count, reason)``: the module and count when usable, else ``(None, 0, reason)``."""
    global _state
    if _state is None:
        _state = _probe()
    return _state


def require():
    """The CuPy module, or :class:`CudaUnavailableError` saying why it cannot be used."""
    cupy, _, reason = load()
    if cupy is None:
        raise CudaUnavailableError(f"needle-cuda cannot run here: {reason}")
    return cupy


def cp():
    """CuPy for the kernels: :func:`require` once, then the cached module (one global read a call)."""
    global _module
    if _module is None:
        _module = require()
    return _module


def unavailable_reason():
    """None when CuPy imports and sees at least one GPU, else a sentence saying why not."""
    return load()[2]


def device_count():
    """Number of CUDA devices visible to CuPy (0 when CuPy or a device is missing)."""
    return load()[1]


def reset():
    """Forget the cached probe (tests use this after replacing the seams above)."""
    global _state, _module
    _state = _module = None
