"""Data parallelism: same initial weights on every rank, gradients averaged after backward.

Why the average is weighted by batch size by default: each rank's loss is a mean over its own
batch, so the gradient of the mean over the union of the batches is ``sum_r n_r g_r / sum_r n_r``.
With equal local batches that is the plain mean; with an uneven last batch it still equals the
gradient one process would compute on the whole global batch.
"""
import numpy as np

from needle.autograd import is_grad_enabled
from needle.nn import Module

from . import _buffers as fb
from ._errors import DistributedError
from ._reducer import GradientAllReducer, _size, _tensors
from ._runtime import get_communicator

_MB = 1 << 20


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


class DistributedDataParallel(Module):
    """Wrap a model for data-parallel training (PyTorch's DDP in Needle's terms).

    ``DistributedDataParallel(module, bucket_mb=25, average="batch", broadcast_buffers=True,
    overlap=True)``. On construction rank 0's parameters and buffers are broadcast to every rank.
    Calling the wrapper in training mode runs ``module``, records the batch size (the first
    argument's first axis) and prepares the gradient buckets: during ``loss.backward()`` each
    bucket's all-reduce starts as soon as its gradients are final (``overlap=True``). Then call
    :meth:`all_reduce_gradients` (it waits for them), then ``optimizer.step()``.

    ``average="batch"`` weights each rank by its batch size (exactly the gradient of the global
    batch; see :class:`GradientAllReducer`), ``average="rank"`` takes the plain mean over ranks.
    :meth:`no_sync` accumulates micro-batches for one all-reduce. ``parameters()``,
    ``state_dict()`` and ``load_state_dict()`` are the wrapped module's (no ``module.`` prefix),
    so checkpoints load into an unwrapped model.
    """

    def __init__(self, module, bucket_mb=25, average="batch", broadcast_buffers=True, overlap=True):
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
        self.reducer = GradientAllReducer(module.parameters(), bucket_mb=bucket_mb, overlap=overlap)

    def forward(self, *args, **kwargs):
        if args and hasattr(args[0], "shape") and len(args[0].shape) > 0:
            self.last_batch_size = int(args[0].shape[0])
        if self.module.training:
            if self.broadcast_buffers:
                self.sync_buffers()
            if is_grad_enabled():  # a training step: its backward fills the buckets
                self.reducer.prepare(self.last_batch_size if self.average == "batch" else None)
        return self.module(*args, **kwargs)

    def no_sync(self):
        """``with model.no_sync(): loss.backward()``: add this micro-batch's gradients without
        communicating; the next backward outside the block and :meth:`all_reduce_gradients` reduce
        them all at once (with ``average="batch"``, exactly the gradient of one batch holding every
        micro-batch of every rank). See :meth:`GradientAllReducer.no_sync`."""
        return self.reducer.no_sync()

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
