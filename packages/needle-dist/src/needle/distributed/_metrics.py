"""Metrics over all ranks, and checkpoints written once."""
import numpy as np

from ._errors import DistributedError
from ._runtime import get_communicator


def _as_float64(value, name):
    if hasattr(value, "realize_cached_data"):  # a needle Tensor
        value = value.numpy()
    array = np.array(value, dtype=np.float64)  # a copy: float64 keeps sums of many ranks exact enough
    if array.dtype.hasobject:
        raise DistributedError(f"{name}: expected numbers, got {type(value).__name__}")
    return array


def _host_comm():
    """Metrics are a few host numbers: with NCCL they travel over its MPI bootstrap communicator."""
    comm = get_communicator()
    return getattr(comm, "mpi", comm)


def _result(array, like_scalar):
    return float(array) if like_scalar else array


def all_reduce_sum(value):
    """The sum of ``value`` (a number, numpy array or Tensor, the same shape on every rank) over ranks."""
    array = _as_float64(value, "all_reduce_sum")
    scalar = array.ndim == 0
    flat = array.reshape(-1).copy()
    _host_comm().allreduce(flat, what=f"all_reduce_sum of {flat.size} value(s)")
    return _result(flat.reshape(array.shape), scalar)


def all_reduce_mean(value, weight=None):
    """The mean of ``value`` over ranks; with ``weight`` (e.g. this rank's sample count) the weighted mean.

    Numbers give a float, arrays and Tensors a float64 numpy array. Every rank gets the result.
    """
    array = _as_float64(value, "all_reduce_mean")
    scalar = array.ndim == 0
    w = 1.0 if weight is None else float(weight)
    if w < 0:
        raise DistributedError(f"all_reduce_mean: weight must be >= 0, got {weight}")
    flat = np.concatenate([array.reshape(-1) * w, [w]])  # the weights travel in the same call
    _host_comm().allreduce(flat, what=f"all_reduce_mean of {array.size} value(s)")
    total = flat[-1]
    if total <= 0:
        raise DistributedError(f"all_reduce_mean: the weights sum to {total} over all ranks")
    return _result((flat[:-1] / total).reshape(array.shape), scalar)


def save_on_main(state, path):
    """Write a checkpoint (``needle.nn.save``) on rank 0 only; every rank waits until it is on disk.

    ``state`` is a state dict or a Module. Returns True on the rank that wrote the file. The
    barrier after the write means any rank may read ``path`` once this returns.
    """
    from needle import nn

    comm = get_communicator()
    wrote = False
    if comm.rank == 0:
        nn.save(state, path)
        wrote = True
    comm.barrier(what=f"barrier after rank 0 saved {path}")
    return wrote
