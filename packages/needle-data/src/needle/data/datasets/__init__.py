"""Datasets: in-memory arrays and MNIST (CIFAR-10 and text corpora come in later releases)."""
from .idx import DataFormatError, read_idx
from .mnist_dataset import MNISTDataset, parse_mnist, read_mnist
from .ndarray_dataset import NDArrayDataset

__all__ = ["DataFormatError", "MNISTDataset", "NDArrayDataset", "parse_mnist", "read_idx", "read_mnist"]
from .cifar10_dataset import CIFAR10Dataset, read_cifar10
from .text_corpus import Corpus, Dictionary, batchify, get_batch, text_corpus_dir

__all__ += ["CIFAR10Dataset", "Corpus", "Dictionary", "batchify", "get_batch", "read_cifar10", "text_corpus_dir"]
