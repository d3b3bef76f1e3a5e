"""Image transforms on single H x W x C numpy images.

Random transforms draw from numpy's global generator (``np.random``), one draw sequence per
image in the course's order, so ``np.random.seed(n)`` makes augmentation reproducible.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def _check_hwc(img, who):
    img = np.asarray(img)
    if img.ndim != 3:
        raise ValueError(f"{who}: expected one image of shape (H, W, C), got shape {img.shape}")
    return img


class Transform:
    """Base class: a callable mapping one H x W x C image to another."""

    def __call__(self, img):
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")


class RandomFlipHorizontal(Transform):
    """Flip an H x W x C image left-right (along W) with probability ``p``.

    Draws one ``np.random.rand()`` per call; flips when it is below ``p``.
    """

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomFlipHorizontal: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, img):
        img = _check_hwc(img, "RandomFlipHorizontal")
        flip = np.random.rand() < self.p
        return img[:, ::-1, :] if flip else img

    def __repr__(self):
        return f"RandomFlipHorizontal(p={self.p})"


class RandomCrop(Transform):
    """Shift an H x W x C image by a random offset, filling the uncovered border with zeros.

    Equivalent to zero-padding ``padding`` pixels on each side of H and W, then cropping an
    H x W window whose top-left corner is moved by ``(shift_x, shift_y)`` from the centre, with both
    shifts drawn by one ``np.random.randint(-padding, padding + 1, size=2)`` call (``shift_x`` moves
    along H, ``shift_y`` along W). The output has the input's shape and dtype.
    """

    def __init__(self, padding: int = 3):
        if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ValueError(f"RandomCrop: padding must be a non-negative int, got {padding!r}")
        self.padding = int(padding)

    def __call__(self, img):
        img = _check_hwc(img, "RandomCrop")
        p = self.padding
        shift_x, shift_y = np.random.randint(low=-p, high=p + 1, size=2)
        h, w = img.shape[:2]
        # Same result as cropping a zero-padded copy, without building the padded image:
        # out[i, j] = img[i + shift_x, j + shift_y] where that pixel exists, else 0.
        out = np.zeros_like(img)
        rows, cols = _overlap(h, int(shift_x)), _overlap(w, int(shift_y))
        if rows and cols:
            out[rows[0]:rows[1], cols[0]:cols[1]] = img[rows[2]:rows[3], cols[2]:cols[3]]
        return out

    def __repr__(self):
        return f"RandomCrop(padding={self.padding})"


def _overlap(n, shift):
    """Destination [d0, d1) and source [s0, s1) ranges for ``out[d] = img[d + shift]`` on an axis of length n."""
    d0, d1 = max(0, -shift), min(n, n - shift)
    return (d0, d1, d0 + shift, d1 + shift) if d0 < d1 else None


class Normalize(Transform):
    """``(img - mean) / std``, with ``mean`` and ``std`` scalars or one value per channel (last axis).

    The result is float32 unless the image is float64.
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if self.mean.ndim > 1 or self.std.ndim > 1:
            raise ValueError(f"Normalize: mean and std must be scalars or 1-D per-channel values, "
                             f"got shapes {self.mean.shape} and {self.std.shape}")
        if np.any(self.std == 0):
            raise ValueError(f"Normalize: std must be non-zero, got {self.std.tolist()}")

    def __call__(self, img):
        img = np.asarray(img)
        channels = img.shape[-1] if img.ndim else 1
        for name, v in (("mean", self.mean), ("std", self.std)):
            if v.ndim == 1 and v.shape[0] not in (1, channels):
                raise ValueError(f"Normalize: {name} has {v.shape[0]} values but the image (shape {img.shape}) "
                                 f"has {channels} channels on its last axis")
        dtype = np.float64 if img.dtype == np.float64 else np.float32
        return ((img - self.mean) / self.std).astype(dtype, copy=False)

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class Compose(Transform):
    """Apply several transforms in order: ``Compose([t1, t2])(x) == t2(t1(x))``."""

    def __init__(self, transforms: Iterable):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, got {t!r}")

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self):
        return f"Compose({self.transforms!r})"
