"""needle.optim: optimisers, learning-rate schedulers and gradient clipping.

``Optimizer`` (``step()``, ``reset_grad()``/``zero_grad()``), ``SGD`` (the course's momentum
rule), ``Adam`` (bias-corrected), ``AdamW``, ``RMSprop``; ``StepLR``, ``CosineAnnealingLR``,
``LinearWarmup``; ``clip_grad_norm``. Updates run on the parameters' stored arrays, so a
step builds no graph and parameters stay leaves.
"""
from needle.nn.version import __version__

from .clip import clip_grad_norm, clip_grad_norm_
from .lr_scheduler import CosineAnnealingLR, LinearWarmup, LRScheduler, StepLR
from .optimizer import SGD, Adam, AdamW, Optimizer, RMSprop

__all__ = [
    "SGD", "Adam", "AdamW", "CosineAnnealingLR", "LRScheduler", "LinearWarmup", "Optimizer", "RMSprop", "StepLR",
    "__version__", "clip_grad_norm", "clip_grad_norm_",
]
