"""Data parallelism: same initial weights on every rank, gradients averaged after backward.

Why the average is weighted by batch size by default: each rank's loss is a mean over its own
batch, so the gradient of the mean over the union of the batches is ``sum_r n_r g_r / sum_r n_r``.
With equal local batches that is the plain mean; with an uneven last batch it still equals the
gradient one process would compute on the whole global batch.
"""
import numpy as np

from needle.nn import Module

from . import _buffers as fb
from ._errors import DistributedError
from ._runtime import get_communicator

_MB = 1 << 20


def _size(nbytes):
    return f"{nbytes / _MB:.1f} MB" if nbytes >= _MB else f"{nbytes / 1024:.1f} KB"


def _tensors(params, name):
    params = list(params)
    for i, p in enumerate(params):
        if not hasattr(p, "realize_cached_data"):
            raise TypeError(f"{name}: item {i} is a {type(p).__name__}, not a Tensor or Parameter")
    return params


def _check_layout(comm, params, root, name):
    """Every rank must hold the same parameter shapes in the same order, or the buffers would mix them."""
    mine = fb.layout_signature(params)
    theirs = mine.copy()
    comm.bcast(theirs, root, what=f"{name}: layout check")
    if not np.array_equal(mine, theirs):
        raise DistributedError(
            f"{name}: rank {comm.rank} holds {mine[0]} tensors / {mine[1]} elements, rank {root} holds "
            f"{theirs[0]} / {theirs[1]} (or different shapes): every rank must build the same model")


def broadcast_parameters(params, root=0, bucket_mb=25):
    """Overwrite every rank's tensors with rank ``root``'s values (call once, before training).

    ``params``: Parameters or other tensors (e.g. buffers), in the same order on every rank. Sent in
    flat buffers of about ``bucket_mb`` MB; the tensors keep their identity (optimisers holding
    them keep working).
    """
    comm = get_communicator()
    params = _tensors(params, "broadcast_parameters")
    if comm.size == 1 or not params:
        return
    _check_layout(comm, params, root, "broadcast_parameters")
    pack, unpack = (fb.pack_host, fb.unpack_host) if comm.host_buffers else (fb.pack_device, fb.unpack_device)
    for bucket in fb.plan_buckets(params, bucket_mb * _MB):
        buf = comm.empty(bucket.numel, bucket.dtype)
        if comm.rank == root:
            for p, lo, hi in zip(bucket.params, bucket.offsets, bucket.offsets[1:]):
                pack(p.realize_cached_data(), buf[lo:hi])
        comm.bcast(buf, root, what=f"broadcast of {_size(bucket.nbytes)} of parameters from rank {root}")
        if comm.rank != root:
            for p, lo, hi in zip(bucket.params, bucket.offsets, bucket.offsets[1:]):
                p.cached_data = unpack(buf[lo:hi], p.realize_cached_data())


class GradientAllReducer:
    """Averages ``.grad`` of ``params`` over all ranks, in a few large flat buffers.

    ``GradientAllReducer(params, bucket_mb=25)``; call :meth:`all_reduce_gradients` after
    ``loss.backward()`` and before ``optimizer.step()``. The buffers are allocated once and reused.
    """

    def __init__(self, params, bucket_mb=25):
        self.comm = get_communicator()
        self.params = _tensors(params, "GradientAllReducer")
        if not self.params:
            raise DistributedError("GradientAllReducer: got an empty parameter list")
        if not bucket_mb > 0:
            raise DistributedError(f"GradientAllReducer: bucket_mb must be positive, got {bucket_mb}")
        self.bucket_mb = bucket_mb
        # One extra slot in the first bucket carries this rank's batch-size weight.
        self.buckets = fb.plan_buckets(self.params, int(bucket_mb * _MB), extra_first=1)
        for bucket in self.buckets:
            bucket.buf = self.comm.empty(bucket.numel, bucket.dtype)
        self._pack, self._unpack = ((fb.pack_host, fb.unpack_host) if self.comm.host_buffers
                                    else (fb.pack_device, fb.unpack_device))

    @property
    def nbytes(self):
        """Bytes all-reduced per step."""
        return sum(b.nbytes for b in self.buckets)

    def all_reduce_gradients(self, weight=None):
        """Replace every parameter's ``.grad`` with its average over the ranks.

        ``weight=None``: the plain mean over ranks (PyTorch DDP). ``weight=n`` (this rank's batch
        size): the mean weighted by batch size, equal to the gradient of one process on the union of
        the batches. A parameter without a gradient on this rank counts as zeros. The new ``.grad``
        tensors are leaves without a graph.
        """
        comm = self.comm
        if comm.size == 1:
            return
        if weight is not None and not weight >= 0:
            raise DistributedError(f"all_reduce_gradients: weight must be >= 0, got {weight!r}")
        w = 1.0 if weight is None else float(weight)
        handles = []
        for bucket in self.buckets:
            buf = bucket.buf
            for p, lo, hi in zip(bucket.params, bucket.offsets, bucket.offsets[1:]):
                grad = getattr(p, "grad", None)
                if grad is None:
                    buf[lo:hi] = 0
                else:
                    if tuple(grad.shape) != tuple(p.shape):
                        raise DistributedError(f"all_reduce_gradients: gradient of shape {grad.shape} for a "
                                               f"parameter of shape {p.shape}")
                    self._pack(grad.realize_cached_data(), buf[lo:hi])
            if w != 1.0:
                buf[:bucket.offsets[-1]] *= w
            if bucket.extra:
                buf[bucket.offsets[-1]:] = w
            # Start this bucket's reduction before packing the next one.
            handles.append(comm.allreduce_start(buf))
        comm.wait(handles, what=f"gradient all-reduce ({len(self.buckets)} bucket(s), {_size(self.nbytes)})")
        total = float(self.buckets[0].buf[self.buckets[0].offsets[-1]])
        if not total > 0:
            raise DistributedError(f"all_reduce_gradients: the batch-size weights sum to {total} over all ranks")
        scale = 1.0 / total
        for bucket in self.buckets:
            buf = bucket.buf
            buf *= scale
            for p, lo, hi in zip(bucket.params, bucket.offsets, bucket.offsets[1:]):
                p.grad = fb.as_const(self._unpack(buf[lo:hi], p.realize_cached_data()))


class DistributedDataParallel(Module):
    """Wrap a model for data-parallel training (PyTorch's DDP in Needle's terms).

    ``DistributedDataParallel(module, bucket_mb=25, average="batch", broadcast_buffers=True)``.
    On construction rank 0's parameters and buffers are broadcast to every rank. Calling the
    wrapper runs ``module`` and records the batch size (the first argument's first axis). After
    ``loss.backward()`` call :meth:`all_reduce_gradients`, then ``optimizer.step()``.

    ``average="batch"`` weights each rank by its batch size (exactly the gradient of the global
    batch; see :class:`GradientAllReducer`), ``average="rank"`` takes the plain mean over ranks.
    ``parameters()``, ``state_dict()`` and ``load_state_dict()`` are the wrapped module's (no
    ``module.`` prefix), so checkpoints load into an unwrapped model.
    """

    def __init__(self, module, bucket_mb=25, average="batch", broadcast_buffers=True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be a needle.nn.Module, got {type(module).__name__}")
        if average not in ("batch", "rank"):
            raise DistributedError(f"DistributedDataParallel: average must be 'batch' or 'rank', got {average!r}")
        self.module = module
        self.average = average
        self.broadcast_buffers = broadcast_buffers
        self.last_batch_size = None
        broadcast_parameters(module.parameters() + [t for _, t in module.named_buffers()], 0, bucket_mb)
        self.reducer = GradientAllReducer(module.parameters(), bucket_mb=bucket_mb)

    def forward(self, *args, **kwargs):
        if args and hasattr(args[0], "shape") and len(args[0].shape) > 0:
            self.last_batch_size = int(args[0].shape[0])
        if self.broadcast_buffers and self.module.training:
            self.sync_buffers()
        return self.module(*args, **kwargs)

    def sync_buffers(self):
        """Copy rank 0's buffers (e.g. BatchNorm running statistics) to every rank."""
        buffers = [t for _, t in self.module.named_buffers()]
        if buffers:
            broadcast_parameters(buffers, 0, self.reducer.bucket_mb)

    def all_reduce_gradients(self):
        """Average the gradients over the ranks (see the class docstring for the weighting)."""
        weight = self.last_batch_size if self.average == "batch" else None
        self.reducer.all_reduce_gradients(weight=weight)

    def train(self, mode=True):
        self.training = mode
        self.module.train(mode)
        return self

    def named_parameters(self):
        return self.module.named_parameters()

    def named_buffers(self):
        return self.module.named_buffers()

    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, state_dict, strict=True):
        return self.module.load_state_dict(state_dict, strict=strict)
