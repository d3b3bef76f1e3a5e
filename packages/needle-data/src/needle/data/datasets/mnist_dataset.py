"""MNIST from gzipped IDX files: ``parse_mnist`` (the course's hw0 function) and ``MNISTDataset``."""
from __future__ import annotations

import os

import numpy as np

from ..data_basic import Dataset
from .idx import IMAGES_MAGIC, LABELS_MAGIC, DataFormatError, read_idx


def read_mnist(image_filename, label_filename):
    """Read and cross-check an MNIST image/label file pair: ``(images uint8 (N, rows, cols), labels uint8 (N,))``."""
    images = read_idx(image_filename, IMAGES_MAGIC)
    labels = read_idx(label_filename, LABELS_MAGIC)
    if images.ndim != 3:
        raise DataFormatError(f"{os.fspath(image_filename)}: expected 3 dimensions (N, rows, cols), "
                              f"header gives shape {images.shape}")
    if labels.ndim != 1:
        raise DataFormatError(f"{os.fspath(label_filename)}: expected 1 dimension (N,), "
                              f"header gives shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataFormatError(f"{os.fspath(image_filename)} holds {images.shape[0]} images but "
                              f"{os.fspath(label_filename)} holds {labels.shape[0]} labels; they must match")
    if labels.size and labels.max() > 9:
        raise DataFormatError(f"{os.fspath(label_filename)}: labels must be digits 0-9, found {int(labels.max())}")
    return images, labels.copy()


def parse_mnist(image_filename, label_filename):
    """Read an MNIST image file and label file (gzipped IDX).

    Returns ``(X, y)``: ``X`` float32 of shape ``(N, rows * cols)`` (784 for MNIST) with pixels
    scaled from 0..255 to [0, 1], ``y`` uint8 of shape ``(N,)``. Raises ``DataFormatError`` naming
    the file when a file is truncated, of the wrong kind, or when the two files disagree on N.
    """
    images, labels = read_mnist(image_filename, label_filename)
    X = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)
    return X, labels


class MNISTDataset(Dataset):
    """The MNIST digits as a :class:`Dataset`.

    ``MNISTDataset(image_filename, label_filename, transforms=None)`` reads both gzipped IDX files
    with :func:`parse_mnist`. ``images`` is float32 ``(N, 784)`` in [0, 1] and ``labels`` uint8 ``(N,)``.

    ``dataset[i]`` (an int) returns ``(x, y)`` with ``x`` of shape ``(784,)`` and ``y`` a uint8
    scalar. ``dataset[idx]`` with a slice or an integer index array returns ``(X, y)`` of shapes
    ``(k, 784)`` and ``(k,)``. Transforms see each image as ``(28, 28, 1)`` (H x W x C); their
    output is flattened back to 784 values. With several images each gets its own random draws.
    """

    supports_array_index = True

    def __init__(self, image_filename: str, label_filename: str, transforms: list | None = None):
        super().__init__(transforms)
        images, self.labels = read_mnist(image_filename, label_filename)
        self.image_shape = (images.shape[1], images.shape[2], 1)  # H x W x C, as transforms expect
        self.images = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)

    def __len__(self) -> int:
        return self.images.shape[0]

    def _transform_one(self, x):
        return self.apply_transforms(x.reshape(self.image_shape)).reshape(-1)

    def __getitem__(self, index):
        X, y = self.images[index], self.labels[index]
        if self.transforms:
            if X.ndim == 1:
                X = self._transform_one(X)
            else:
                # Random transforms are per image, so each sample is transformed on its own.
                X = np.stack([self._transform_one(x) for x in X]) if len(X) else X
        return X, y
