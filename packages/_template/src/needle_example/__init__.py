"""needle-example: replace with what this package gives."""
from .version import __version__
