"""The MNIST subset shipped inside the package (see _bundled/mnist-5k/ATTRIBUTION.md)."""
from pathlib import Path
from typing import NamedTuple

_MNIST_DIR = Path(__file__).resolve().parent / "_bundled" / "mnist-5k"


class MNISTPaths(NamedTuple):
    """Paths of the four bundled MNIST files (gzipped IDX, MNIST's own names)."""

    train_images: str
    train_labels: str
    test_images: str
    test_labels: str


def mnist_paths() -> MNISTPaths:
    """Return the paths of the bundled 5,000-image MNIST subset.

    4,000 training images (400 per digit) and 1,000 test images (100 per digit), so demos run
    without a network. ``mnist_paths()._asdict()`` gives a dict.
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
