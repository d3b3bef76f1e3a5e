"""needle.data: datasets, the DataLoader, image transforms and a bundled MNIST subset.

Course-compatible names: ``Dataset``, ``DataLoader``, ``NDArrayDataset``, ``MNISTDataset``,
``RandomFlipHorizontal``, ``RandomCrop``; plus ``Compose``, ``Normalize``, ``parse_mnist`` and
``mnist_paths()`` for the MNIST files shipped with the package.
"""
from ._bundled import MNISTPaths, mnist_5k, mnist_paths
from .data_basic import DataLoader, Dataset
from .data_transforms import Compose, Normalize, RandomCrop, RandomFlipHorizontal, Transform
from .datasets import DataFormatError, MNISTDataset, NDArrayDataset, parse_mnist, read_idx, read_mnist
from .version import __version__

__all__ = [
    "Compose", "DataFormatError", "DataLoader", "Dataset", "MNISTDataset", "MNISTPaths", "NDArrayDataset",
    "Normalize", "RandomCrop", "RandomFlipHorizontal", "Transform", "__version__", "mnist_5k", "mnist_paths",
    "parse_mnist", "read_idx", "read_mnist",
]
from .datasets import CIFAR10Dataset, Corpus, Dictionary, batchify, get_batch, read_cifar10, text_corpus_dir

__all__ += ["CIFAR10Dataset", "Corpus", "Dictionary", "batchify", "get_batch", "read_cifar10", "text_corpus_dir"]
