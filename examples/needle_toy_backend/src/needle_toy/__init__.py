"""needle-toy-backend: an example third-party backend for Needle.

Installing this distribution is all it takes: needle finds it through the ``needle.backends``
entry point declared in ``pyproject.toml`` and users reach it as ``needle.device("toy")``.
Nothing here is imported by ``import needle``; the kernels in :mod:`needle_toy._backend` load
on the first use of the device.
"""
from .version import __version__

__all__ = ["__version__"]
