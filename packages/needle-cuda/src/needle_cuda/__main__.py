"""``python -m needle_cuda``: versions, visible CUDA devices, or why the backend cannot run here.

Exits 0 when a GPU is usable, 1 otherwise, so scripts (nox) can branch on it and print the reason.
"""
import sys

from . import __version__, _cupy


def main():
    print(f"needle-cuda {__version__}")
    cupy, count, reason = _cupy.load()
    if reason is not None:
        print(f"cuda: disabled: {reason}")
        return 1
    print(f"CuPy {cupy.__version__}, CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, {count} device(s)")
    for i in range(count):
        props = cupy.cuda.runtime.getDeviceProperties(i)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        print(f"  cuda({i}): {name}, {props['totalGlobalMem'] / 2**30:.1f} GiB, "
              f"compute capability {props['major']}.{props['minor']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
