"""Splitting a dataset over ranks: every sample seen exactly once per epoch, the same order on every rank.

The order of an epoch is a permutation drawn from ``numpy.random.default_rng((seed, epoch))``:
it depends only on the seed and the epoch, never on numpy's global generator, so all ranks
agree without communicating and a run repeats exactly.
"""
import numpy as np

from needle.data import DataLoader

from ._errors import DistributedError
from ._runtime import get_communicator


def _resolve(num_replicas, rank):
    if num_replicas is None or rank is None:
        comm = get_communicator()
        num_replicas = comm.size if num_replicas is None else num_replicas
        rank = comm.rank if rank is None else rank
    if int(num_replicas) < 1:
        raise DistributedError(f"DistributedSampler: num_replicas must be >= 1, got {num_replicas}")
    if not 0 <= int(rank) < int(num_replicas):
        raise DistributedError(f"DistributedSampler: rank {rank} is outside 0 .. {int(num_replicas) - 1}")
    return int(num_replicas), int(rank)


class DistributedSampler:
    """This rank's share of a dataset's indices for one epoch.

    ``DistributedSampler(dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False)``
    (``num_replicas``/``rank`` default to the process group's). ``dataset`` is a Dataset or a length.
    Call :meth:`set_epoch` at the start of every epoch to get a new order (as with PyTorch).

    Iterating yields ``order[rank::num_replicas]``: the ranks' shares are disjoint and together
    cover every index exactly once (shares differ in length by at most one). ``drop_last=True``
    first trims the order to a multiple of ``num_replicas`` so that every share is the same length.
    :meth:`batches` splits the epoch into global batches so that every rank takes the same number
    of steps (what data-parallel training needs).
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        self.num_samples_total = dataset if isinstance(dataset, (int, np.integer)) else len(dataset)
        self.num_replicas, self.rank = _resolve(num_replicas, rank)
        self.shuffle, self.seed, self.drop_last = bool(shuffle), int(seed), bool(drop_last)
        self.epoch = 0
        if self.num_samples_total < self.num_replicas:
            raise DistributedError(f"DistributedSampler: {self.num_samples_total} samples cannot be shared "
                                   f"by {self.num_replicas} ranks")

    def set_epoch(self, epoch):
        """Use the order of epoch ``epoch`` (call it with the same value on every rank)."""
        self.epoch = int(epoch)

    def order(self):
        """The permutation of the whole dataset for the current epoch (identical on every rank)."""
        n = self.num_samples_total
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng((self.seed, self.epoch)).permutation(n)

    def _epoch_order(self):
        order = self.order()
        if self.drop_last:
            order = order[:len(order) - len(order) % self.num_replicas]
        return order

    def indices(self):
        """This rank's indices for the current epoch."""
        return self._epoch_order()[self.rank::self.num_replicas]

    def __iter__(self):
        return iter(self.indices().tolist())

    def __len__(self):
        return len(self._epoch_order()[self.rank::self.num_replicas])

    def global_batches(self, batch_size):
        """The epoch's global batches (index arrays of about ``batch_size * num_replicas``), equal on all ranks.

        With ``drop_last`` an incomplete last global batch is dropped. Otherwise a last batch too small to
        give every rank a sample is merged into the one before it, so no rank ever gets an empty batch.
        """
        if int(batch_size) < 1:
            raise DistributedError(f"DistributedSampler: batch_size must be >= 1, got {batch_size}")
        order, step = self.order(), int(batch_size) * self.num_replicas
        stop = len(order) - len(order) % step if self.drop_last else len(order)
        chunks = [order[i:min(i + step, stop)] for i in range(0, stop, step)]
        if len(chunks) > 1 and len(chunks[-1]) < self.num_replicas:
            chunks[-2:] = [np.concatenate(chunks[-2:])]
        if not chunks:
            raise DistributedError(f"DistributedSampler: {len(order)} samples make no global batch of "
                                   f"{batch_size} x {self.num_replicas} ranks with drop_last=True")
        return chunks

    def batches(self, batch_size):
        """This rank's index array for each step of the epoch (``batch_size`` per rank; the last may differ).

        Step ``s`` of every rank together is exactly global batch ``s`` of :meth:`global_batches`.
        """
        return [chunk[self.rank::self.num_replicas] for chunk in self.global_batches(batch_size)]


class DistributedDataLoader(DataLoader):
    """A :class:`needle.data.DataLoader` that yields only this rank's part of each global batch.

    ``DistributedDataLoader(dataset, batch_size=1, shuffle=True, seed=0, drop_last=False, device=None,
    dtype=None, num_replicas=None, rank=None)``; ``batch_size`` is per rank (the global batch is
    ``batch_size * world_size``). Every rank takes the same number of steps; over an epoch the
    ranks see every sample exactly once. Call :meth:`set_epoch` each epoch for a new order.
    """

    def __init__(self, dataset, batch_size=1, shuffle=True, seed=0, drop_last=False, device=None, dtype=None,
                 num_replicas=None, rank=None):
        super().__init__(dataset, batch_size=batch_size, shuffle=False, drop_last=drop_last, device=device,
                         dtype=dtype)
        self.sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed,
                                          drop_last=drop_last)

    def set_epoch(self, epoch):
        """Use epoch ``epoch``'s order (the same value on every rank)."""
        self.sampler.set_epoch(epoch)

    def batch_indices(self):
        return self.sampler.batches(self.batch_size)

    def __len__(self):
        return len(self.sampler.global_batches(self.batch_size))
