"""Dataset and DataLoader: the course's batching, vectorised with numpy fancy indexing."""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


class Dataset:
    """An abstract map-style dataset.

    Subclasses implement ``__getitem__`` and ``__len__``. ``__getitem__`` returns one sample as a
    tuple of numpy arrays (one per field, e.g. ``(image, label)``); datasets that can also take an
    integer index array and return the stacked samples let :class:`DataLoader` gather a whole batch
    in one fancy-indexing call instead of a Python loop over samples.

    ``transforms`` is a list of callables applied in order to each sample's input by
    :meth:`apply_transforms`.
    """

    def __init__(self, transforms: list | None = None):
        self.transforms = transforms

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")

    def apply_transforms(self, x):
        """Return ``x`` passed through every transform in ``self.transforms`` (in order)."""
        if self.transforms is not None:
            for transform in self.transforms:
                x = transform(x)
        return x

    # Datasets that accept index arrays in __getitem__ set this to True; DataLoader then gathers a
    # batch with one call. Others are indexed sample by sample and stacked.
    supports_array_index = False


def _check_batch_size(batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise TypeError(f"DataLoader: batch_size must be a positive int, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"DataLoader: batch_size must be a positive int, got {batch_size}")
    return int(batch_size)


class DataLoader:
    """Iterate over a dataset in batches of Tensors.

    ``DataLoader(dataset, batch_size=1, shuffle=False, drop_last=False, device=None, dtype=None)``

    Each epoch (each ``iter(loader)``) visits every sample exactly once. With ``shuffle=True``
    the order is one ``np.random.permutation(len(dataset))`` drawn at the start of the epoch (so
    ``np.random.seed`` makes it reproducible, as the course requires); otherwise batches are
    consecutive: ``[0, batch_size)``, ``[batch_size, 2 * batch_size)``, ... The last batch may be
    smaller unless ``drop_last=True``, which skips it.

    Each batch is a tuple with one ``needle.Tensor`` per dataset field (``requires_grad=False``),
    the batch on the first axis. ``device`` and ``dtype`` are passed to the Tensors; with
    ``dtype=None`` each field keeps its numpy dtype (float32 images, uint8 or int64 labels, as the
    course's numpy backend keeps them), float64 becoming float32 on a device without float64.

    ``len(loader)`` is the number of batches in an epoch.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False,
                 device=None, dtype=None):
        self.dataset = dataset
        self.batch_size = _check_batch_size(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.device = device
        self.dtype = dtype

    def __len__(self) -> int:
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def batch_indices(self) -> list[np.ndarray]:
        """The index arrays of one epoch's batches (draws the permutation when shuffling)."""
        n = len(self.dataset)
        order = np.random.permutation(n) if self.shuffle else np.arange(n)
        stop = (n // self.batch_size) * self.batch_size if self.drop_last else n
        return [order[i:i + self.batch_size] for i in range(0, stop, self.batch_size)]

    def __iter__(self) -> Iterator[tuple]:
        # The permutation is drawn when iteration starts, not lazily on the first batch.
        batches = self.batch_indices()
        return (self._make_batch(idx) for idx in batches)

    def _gather(self, idx: np.ndarray) -> Sequence[np.ndarray]:
        if getattr(self.dataset, "supports_array_index", False):
            fields = self.dataset[idx]
        else:
            samples = [self.dataset[int(i)] for i in idx]
            if not isinstance(samples[0], tuple):
                samples = [(s,) for s in samples]
            fields = tuple(np.stack([np.asarray(s[k]) for s in samples]) for k in range(len(samples[0])))
        if not isinstance(fields, tuple):
            fields = (fields,)
        return fields

    def _make_batch(self, idx: np.ndarray) -> tuple:
        from needle import Tensor  # imported here so needle.data imports without needle's autograd

        return tuple(Tensor(np.asarray(f), device=self.device, dtype=self.dtype, requires_grad=False)
                     for f in self._gather(idx))

