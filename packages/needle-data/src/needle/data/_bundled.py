"""The MNIST subset shipped inside the package (see _bundled/mnist-5k/ATTRIBUTION.md)."""
from pathlib import Path
from typing import NamedTuple

_MNIST_DIR = Path(__file__).resolve().parent / "_bundled" / "mnist-5k"


class MNISTPaths(NamedTuple):
    """Paths of the four bundled MNIST files (gzipped IDX, MNIST's own names).

    A named tuple that also reads like a dict: ``paths.train_images``, ``paths["train_images"]``,
    ``dict(paths)`` and unpacking ``train_images, train_labels, test_images, test_labels = paths``.
    """

    train_images: str
    train_labels: str
    test_images: str
    test_labels: str

    def __getitem__(self, key):
        if isinstance(key, str):
            if key not in self._fields:
                raise KeyError(f"{key!r}: MNIST paths are named {', '.join(self._fields)}")
            return getattr(self, key)
        return tuple.__getitem__(self, key)

    def keys(self):
        """The four names, so ``dict(paths)`` works."""
        return self._fields


def mnist_paths() -> MNISTPaths:
    """Return the paths of the bundled 5,000-image MNIST subset.

    4,000 training images (400 per digit) and 1,000 test images (100 per digit), so demos run
    without a network. Index by attribute or by name: ``p.test_images`` or ``p["test_images"]``.
    """
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    paths = [_MNIST_DIR / n for n in names]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"needle-data's bundled MNIST files are missing: {missing}; "
                                "reinstall with `pip install --force-reinstall needle-data`")
    return MNISTPaths(*(str(p) for p in paths))


def mnist_5k(train: bool = True, transforms=None):
    """The bundled MNIST subset as an ``MNISTDataset`` (train: 4,000 images; test: 1,000)."""
    from .datasets import MNISTDataset

    p = mnist_paths()
    if train:
        return MNISTDataset(p.train_images, p.train_labels, transforms=transforms)
    return MNISTDataset(p.test_images, p.test_labels, transforms=transforms)
