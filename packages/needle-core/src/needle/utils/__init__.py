"""Utilities on top of the autograd: :mod:`needle.utils.checkpoint` (gradient checkpointing)."""
from . import checkpoint  # noqa: F401
