"""CIFAR-10 from its batch files, read without executing code from them.

Two layouts are read:

- the binary version (``cifar-10-batches-bin``): ``data_batch_1.bin`` ... ``data_batch_5.bin``
  and ``test_batch.bin``, each a run of 3073-byte records (one label byte, then 1024 red,
  1024 green and 1024 blue pixel bytes, rows of 32);
- the Python version (``cifar-10-batches-py``, the course's): ``data_batch_1`` ... and
  ``test_batch``, pickled dicts. They are read with a restricted unpickler that resolves only
  the few numpy names an array needs, so a crafted file cannot run code (plain ``pickle.load``
  would call whatever the file names).
"""
from __future__ import annotations

import importlib
import io
import os
import pickle

import numpy as np

from ..data_basic import Dataset
from .idx import DataFormatError

TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
IMAGE_SHAPE = (3, 32, 32)
_RECORD = 1 + 3 * 32 * 32
_SUBDIRS = ("", "cifar-10-batches-py", "cifar-10-batches-bin")


# ---- restricted unpickling ---------------------------------------------------------------------
def _numpy_global(module, name):
    if module == "_codecs":
        return getattr(importlib.import_module(module), name)
    # numpy 2 moved numpy.core to numpy._core; files written by either name the one they had.
    for candidate in (module, module.replace("numpy.core", "numpy._core"), module.replace("numpy._core", "numpy.core")):
        try:
            return getattr(importlib.import_module(candidate), name)
        except (ImportError, AttributeError):
            continue
    raise pickle.UnpicklingError(f"cannot resolve {module}.{name}")


# The only globals an array of numbers needs: these rebuild an ndarray from its raw bytes.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # pickle protocol 5
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2: a pure str -> bytes conversion
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global except those that rebuild a numeric array."""

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR-10 batch file")
        return _numpy_global(module, name)


def _load_pickled_batch(path):
    with open(path, "rb") as f:
        raw = f.read()
    try:
        # CIFAR-10's files were written by Python 2: byte strings stay bytes.
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise DataFormatError(f"{path}: refused or corrupt pickle: {exc}") from None
    except (EOFError, ValueError, TypeError, IndexError, AttributeError, KeyError) as exc:
        raise DataFormatError(f"{path}: truncated or corrupt pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise DataFormatError(f"{path}: expected a pickled dict with 'data' and 'labels', got {type(obj).__name__}")
    entries = {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}
    if "data" not in entries or "labels" not in entries:
        raise DataFormatError(f"{path}: the dict has keys {sorted(entries)}; expected 'data' and 'labels'")
    data, labels = entries["data"], entries["labels"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _RECORD - 1:
        desc = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DataFormatError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), got {desc}")
    if not isinstance(labels, (list, tuple, np.ndarray)) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels):
        raise DataFormatError(f"{path}: 'labels' must be a list of ints")
    labels = np.asarray(labels, dtype=np.int64)
    if labels.shape != (data.shape[0],):
        raise DataFormatError(f"{path}: {data.shape[0]} images but {labels.size} labels")
    return data, labels


def _load_binary_batch(path):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _RECORD:
        raise DataFormatError(f"{path}: {raw.size} bytes is not a whole number of {_RECORD}-byte CIFAR-10 "
                              f"records (1 label byte + 3072 pixel bytes); the file is truncated or not CIFAR-10")
    records = raw.reshape(-1, _RECORD)
    return records[:, 1:], records[:, 0].astype(np.int64)


def _find_batch(base_folder, name):
    """Path and reader of batch ``name`` under ``base_folder`` (or its standard subfolders)."""
    for sub in _SUBDIRS:
        folder = os.path.join(base_folder, sub)
        if os.path.isfile(os.path.join(folder, name + ".bin")):
            return os.path.join(folder, name + ".bin"), _load_binary_batch
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name), _load_pickled_batch
    raise FileNotFoundError(
        f"CIFAR-10 batch '{name}' not found in {base_folder!r} (nor in its cifar-10-batches-py/ or "
        f"cifar-10-batches-bin/ subfolders): expected '{name}' (Python version) or '{name}.bin' (binary version)")


def read_cifar10(base_folder, train=True):
    """Read the CIFAR-10 training (5 batches) or test batch files.

    Returns ``(images uint8 (N, 3, 32, 32), labels uint8 (N,))``. Raises
    :class:`DataFormatError` naming the file when one is truncated, refused or inconsistent.
    """
    base_folder = os.fspath(base_folder)
    images, labels = [], []
    for name in TRAIN_BATCHES if train else TEST_BATCHES:
        path, reader = _find_batch(base_folder, name)
        data, y = reader(path)
        if y.size and (y.min() < 0 or y.max() > 9):
            raise DataFormatError(f"{path}: labels must be in 0..9, found values in [{y.min()}, {y.max()}]")
        images.append(data)
        labels.append(y)
    return np.concatenate(images).reshape((-1,) + IMAGE_SHAPE), np.concatenate(labels).astype(np.uint8)


class CIFAR10Dataset(Dataset):
    """The CIFAR-10 images as a :class:`Dataset` (the course's class).

    ``CIFAR10Dataset(base_folder, train, p=0.5, transforms=None)`` reads the five training
    batches (``train=True``) or the test batch from ``base_folder``, in the Python or the binary
    layout (see the module docstring). ``p`` is accepted for course compatibility and unused
    (flip probability belongs to ``RandomFlipHorizontal``).

    ``images`` is float32 ``(N, 3, 32, 32)`` with pixels in [0, 1] and ``labels`` uint8 ``(N,)``.
    ``dataset[i]`` returns ``(x (3, 32, 32), y)``; a slice or an integer index array returns the
    stacked samples. Transforms see each image as ``(32, 32, 3)`` (H x W x C) and their output is
    put back to C x H x W.
    """

    supports_array_index = True

    def __init__(self, base_folder: str, train: bool, p: float = 0.5, transforms: list | None = None):
        super().__init__(transforms)
        self.p = p
        images, self.labels = read_cifar10(base_folder, train)
        self.images = images.astype(np.float32) / np.float32(255.0)

    @property
    def X(self):
        """``images`` under the course's name."""
        return self.images

    @property
    def y(self):
        """``labels`` under the course's name."""
        return self.labels

    def __len__(self) -> int:
        return self.images.shape[0]

    def _transform_one(self, x):
        return np.ascontiguousarray(self.apply_transforms(x.transpose(1, 2, 0)).transpose(2, 0, 1))

    def __getitem__(self, index):
        X, y = self.images[index], self.labels[index]
        if self.transforms:
            if X.ndim == 3:
                X = self._transform_one(X)
            else:
                # Random transforms are per image: each gets its own draws.
                X = np.stack([self._transform_one(x) for x in X]) if len(X) else X
        return X, y
