"""needle-mybackend: a Needle backend. Users reach it as ``needle.device("mybackend")``.

Keep this module light: importing it must not import the kernels or any heavy library
(needle imports ``_plugin`` during discovery, and ``_backend`` only on the device's first use).
"""
from .version import __version__

__all__ = ["__version__"]
