"""Needle: a small deep-learning framework with pluggable native backends."""
import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)  # needle-nn/needle-data add subpackages

from .version import __version__  # noqa: E402
from . import backend_ndarray  # noqa: E402
from .backends import all_devices, cpu, cpu_numpy, cuda, default_device, device  # noqa: E402
