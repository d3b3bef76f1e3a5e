"""The gradient all-reducer: buckets filled during backward, reduced while it goes on.

Why hooks: needle-core's gradient-ready hook (:func:`needle.register_grad_ready_hook`) hands each
gradient over the moment backward has finished it, last layer first, so a bucket can start its
all-reduce while the earlier layers are still being differentiated, and the gradient costs one
copy (into the bucket, scaled in the same pass) instead of a copy in and a copy out.
"""
import contextlib
import time

import numpy as np

from needle import register_grad_ready_hook

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


class GradientAllReducer:
    """Averages ``.grad`` of ``params`` over all ranks, in a few large flat buffers (buckets).

    ``GradientAllReducer(params, bucket_mb=25, overlap=True)``. Each training step: call
    :meth:`prepare` before ``loss.backward()`` (``DistributedDataParallel`` does it in its
    forward), then :meth:`all_reduce_gradients` before ``optimizer.step()``.

    During backward a gradient-ready hook (:func:`needle.register_grad_ready_hook`) copies each
    gradient into its bucket as soon as it is final, scaled by its averaging factor in the same
    pass (the only copy). Buckets hold the parameters last layer first, the order backward
    finishes them, and with ``overlap=True`` each bucket's all-reduce starts as soon as it is
    full (in bucket order, the same on every rank) while backward goes on;
    :meth:`all_reduce_gradients` only waits for them. Afterwards every ``.grad`` is a tensor over
    its bucket's memory (no copy on host backends): it stays valid until the next backward of a
    prepared step writes the bucket again, so copy it if you need it longer.

    Without :meth:`prepare` (gradients set some other way), :meth:`all_reduce_gradients` copies
    each ``.grad`` into the buckets itself. :meth:`no_sync` accumulates the gradients of several
    backward passes (micro-batches) in the buckets for one all-reduce.
    """

    def __init__(self, params, bucket_mb=25, overlap=True):
        self.comm = get_communicator()
        self.params = _tensors(params, "GradientAllReducer")
        if not self.params:
            raise DistributedError("GradientAllReducer: got an empty parameter list")
        if not bucket_mb > 0:
            raise DistributedError(f"GradientAllReducer: bucket_mb must be positive, got {bucket_mb}")
        self.bucket_mb = bucket_mb
        self.overlap = bool(overlap)
        self.buckets = fb.plan_buckets(self.params, int(bucket_mb * _MB))
        self._slot = {}  # id(param) -> (bucket index, index in the bucket)
        for b, bucket in enumerate(self.buckets):
            bucket.buf = self.comm.empty(bucket.numel, bucket.dtype)
            bucket.views = [bucket.buf[lo:hi] for lo, hi in zip(bucket.offsets, bucket.offsets[1:])]
            bucket.grad_tensors = [None] * len(bucket.params)  # .grad tensors over the views, made once
            for i, p in enumerate(bucket.params):
                self._slot[id(p)] = (b, i)
        self._copy_in = fb.copy_scaled if self.comm.host_buffers else _copy_scaled_device
        self._no_sync = False
        self._prepared = False
        self._weight = None
        hooked = [p for p in self.params if p.requires_grad and p.is_leaf()]
        self._hooks = [register_grad_ready_hook(p, self._on_grad_ready) for p in hooked]
        self._what = f"gradient all-reduce ({len(self.buckets)} bucket(s), {_size(self.nbytes)})"
        # A bucket is full when every gradient backward can give it is in (frozen parameters give none).
        hooked_ids = {id(p) for p in hooked}
        self._needed = [sum(id(p) in hooked_ids for p in b.params) for b in self.buckets]
        #: Timeline of the last reduced step (``time.perf_counter`` seconds), see :meth:`overlap_stats`.
        self.last_step = None
        self._new_round()

    # ---- the state of one optimizer step ("round": one or more micro-batches) ----------------
    def _new_round(self):
        self._written = [[False] * len(b.params) for b in self.buckets]  # this round
        self._written_now = set()                 # (bucket, index) written by the current micro-batch
        self._filled_now = [0] * len(self.buckets)  # how many of each bucket's gradients it wrote
        self._handles = [None] * len(self.buckets)
        self._launched_at = [None] * len(self.buckets)
        self._next_launch = 0
        self._micro = 0            # backward passes folded into the buckets this round
        self._accumulating = False  # the round began inside no_sync(): buckets add up micro-batches
        self._local_weight = 0.0    # sum of this rank's micro-batch weights (accumulating rounds)
        self._factor = None         # scale of the current micro-batch, fixed at its first gradient
        self._events = []
        self._t_first_ready = self._t_last_ready = None

    def close(self):
        """Unregister the gradient-ready hooks (the reducer then ignores backward; idempotent)."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        self._prepared = False

    @property
    def nbytes(self):
        """Bytes all-reduced per step."""
        return sum(b.nbytes for b in self.buckets)

    def prepare(self, weight=None):
        """Announce the next backward pass, before it runs: its gradients go straight into the buckets.

        ``weight=None``: the gradients are averaged over ranks (PyTorch DDP). ``weight=n`` (this
        rank's batch size): weighted by batch size, equal to the gradient of one process on the union
        of the batches (one tiny all-reduce of the weights at the first gradient finds the total).
        """
        if weight is not None and not weight >= 0:
            raise DistributedError(f"GradientAllReducer.prepare: weight must be >= 0, got {weight!r}")
        self._prepared = True
        self._weight = None if weight is None else float(weight)
        self._factor = None

    @contextlib.contextmanager
    def no_sync(self):
        """Inside, prepared backward passes add their gradients into the buckets without communicating.

        The first :meth:`all_reduce_gradients` after it reduces the sum of all these micro-batches and
        the one after: with batch-size weights (``DistributedDataParallel``'s default) the result is
        exactly the gradient of one batch holding all the micro-batches of all ranks; with
        ``weight=None`` it is the sum over micro-batches of the mean over ranks (PyTorch's DDP).
        ``.grad`` shows only the last micro-batch's local gradient until then.
        """
        previous, self._no_sync = self._no_sync, True
        try:
            yield self
        finally:
            self._no_sync = previous

    # ---- backward: the gradient-ready hook ---------------------------------------------------
    def _on_grad_ready(self, param):
        if not self._prepared:
            return
        if self.comm.size == 1 and not (self._no_sync or self._accumulating):
            return  # nothing to average: keep the gradient as backward made it
        now = time.perf_counter()
        if self._factor is None:  # the first gradient of this micro-batch
            self._start_micro_batch()
            self._t_first_ready = self._t_first_ready or now
        self._t_last_ready = now
        b, i = self._slot[id(param)]
        if self._handles[b] is not None:
            raise DistributedError(
                "GradientAllReducer: a gradient arrived for a bucket whose all-reduce has started (two backward "
                "passes without all_reduce_gradients() between them); accumulate micro-batches inside no_sync()")
        self._store(param, b, i, param.grad)
        self._events.append(("ready", b, i))
        if self.overlap and not self._no_sync:
            self._launch_ready()

    def _start_micro_batch(self):
        size = self.comm.size
        if self._micro == 0:
            self._accumulating = self._no_sync
        self._micro += 1
        self._written_now = set()
        self._filled_now = [0] * len(self.buckets)
        w = self._weight
        if w is None:
            self._factor = 1.0 / size
        elif self._accumulating:
            self._factor = w  # the total over ranks and micro-batches is divided out after the reduction
            self._local_weight += w
        else:
            self._factor = w / self._total_weight(w)

    def _total_weight(self, local):
        total = np.array([local], dtype=np.float64)
        self.comm_host().allreduce(total, what="gradient all-reduce: sum of the batch-size weights")
        if not total[0] > 0:
            raise DistributedError(f"all_reduce_gradients: the batch-size weights sum to {total[0]} over all ranks")
        return float(total[0])

    def comm_host(self):
        """The communicator for small host values (the MPI one under NCCL)."""
        return getattr(self.comm, "mpi", self.comm)

    def _store(self, param, b, i, grad):
        """Copy (or add) one gradient into its slot, scaled by the micro-batch's factor."""
        bucket = self.buckets[b]
        if grad is None:
            return
        if tuple(grad.shape) != tuple(param.shape):
            raise DistributedError(f"all_reduce_gradients: gradient of shape {grad.shape} for a parameter of "
                                   f"shape {param.shape}")
        again = (b, i) in self._written_now
        if again and self._accumulating:
            raise DistributedError("GradientAllReducer: two backward passes for one prepared micro-batch while "
                                   "accumulating (no_sync); call the model (prepare) before each backward")
        # Accumulating rounds add each micro-batch; otherwise a later backward replaces, as .grad does.
        added = self._accumulating and self._written[b][i]
        self._copy_in(grad.realize_cached_data(), bucket.views[i], self._factor, accumulate=added)
        self._written[b][i] = True
        if not again:
            self._written_now.add((b, i))
            self._filled_now[b] += 1

    def _launch_ready(self):
        """Start the all-reduce of every full bucket, in bucket order (the same on every rank)."""
        while self._next_launch < len(self.buckets):
            b = self._next_launch
            if self._filled_now[b] < self._needed[b]:
                return
            self._launch(b)

    def _launch(self, b, what=None):
        """Start bucket ``b``'s all-reduce; with ``what`` (nothing left to overlap) run it now instead."""
        bucket = self.buckets[b]
        for i, done in enumerate(self._written[b]):
            if not done:  # a parameter backward did not reach on this rank counts as zeros
                bucket.views[i][:] = 0
        self._events.append(("launch", b))
        self._launched_at[b] = time.perf_counter()
        if what is None:
            self._handles[b] = self.comm.allreduce_start(bucket.buf)
        else:
            self._handles[b] = self.comm.allreduce_now(bucket.buf, what)
        self._next_launch = b + 1

    # ---- after backward ----------------------------------------------------------------------
    def all_reduce_gradients(self, weight=None):
        """Replace every parameter's ``.grad`` with its average over the ranks.

        After a prepared backward (:meth:`prepare`) this waits for the buckets' all-reduces (starting
        those not started). Otherwise it first copies each ``.grad`` into the buckets, weighted by
        ``weight`` (see :meth:`prepare`). A parameter without a gradient on this rank counts as zeros.
        The new ``.grad`` tensors are leaves without a graph, over the buckets' memory.
        """
        if self._no_sync:
            raise DistributedError("all_reduce_gradients: called inside no_sync(); call it after the block")
        t_call = time.perf_counter()
        direct = getattr(self.comm, "direct", False)  # MPI: blocking calls on this thread allowed
        if self._micro == 0:  # not prepared, or a world of one rank with nothing accumulated
            self._prepared = False
            if self.comm.size == 1:
                return
            if weight is not None and not weight >= 0:
                raise DistributedError(f"all_reduce_gradients: weight must be >= 0, got {weight!r}")
            self.prepare(weight)
            self._start_micro_batch()
            last = len(self.buckets) - 1
            for b, bucket in enumerate(self.buckets):
                for i, p in enumerate(bucket.params):
                    self._store(p, b, i, getattr(p, "grad", None))
                if b < last or not direct:
                    self._launch(b)  # it reduces while the next bucket is packed
        elif weight is not None and weight != self._weight:
            raise DistributedError(f"all_reduce_gradients: weight {weight!r} differs from the one given to "
                                   f"prepare() before backward ({self._weight!r})")
        while self._next_launch < len(self.buckets) and not direct:  # polled requests: all in flight at once
            self._launch(self._next_launch)
        t_wait = time.perf_counter()
        self.comm.wait(self._handles, what=self._what)
        # Buckets not started yet have nothing left to overlap: reduced on this thread, one by one,
        # after the started ones (one communicator, the same order on every rank).
        while self._next_launch < len(self.buckets):
            self._launch(self._next_launch, self._what)
        t_done = time.perf_counter()
        if self._accumulating and self._weight is not None:
            scale = 1.0 / self._total_weight(self._local_weight)
            for bucket in self.buckets:
                bucket.buf *= scale
        for bucket in self.buckets:
            for i, p in enumerate(bucket.params):
                p.grad = self._grad_tensor(bucket, i, p)
        self._record(t_call, t_wait, t_done)
        self._prepared = False
        self._new_round()

    def _grad_tensor(self, bucket, i, p):
        if not self.comm.host_buffers:  # NCCL: a copy out of the CuPy bucket
            return fb.as_const(fb.unpack_device(bucket.views[i], p.realize_cached_data()))
        tensor = bucket.grad_tensors[i]
        if tensor is None:  # the same memory every step: one needle view of it, made once
            tensor = bucket.grad_tensors[i] = fb.as_const(fb.view_host(bucket.views[i], p.realize_cached_data()))
        return tensor

    def _record(self, t_call, t_wait, t_done):
        # start/end: when the MPI call ran on the collective thread (None where it is not timed).
        self.last_step = dict(
            first_grad_ready=self._t_first_ready, last_grad_ready=self._t_last_ready, called=t_call,
            wait_start=t_wait, wait_end=t_done, events=list(self._events), micro_batches=self._micro,
            buckets=[dict(queued=t, start=getattr(h, "t_start", None), end=getattr(h, "t_end", None))
                     for h, t in zip(self._handles, self._launched_at)])

    def overlap_stats(self):
        """For the last step: seconds the all-reduces ran (``comm_s``), the part of it before
        :meth:`all_reduce_gradients` was called, i.e. hidden behind backward (``hidden_s``), their
        ratio (``overlap_fraction``) and the wait (``wait_s``). None before the first step or
        when the communicator does not time its collectives (one rank, NCCL)."""
        step = self.last_step
        timed = [b for b in step["buckets"] if b["start"] is not None] if step else []
        if not timed:
            return None
        comm_s = sum(b["end"] - b["start"] for b in timed)
        hidden_s = sum(max(0.0, min(b["end"], step["called"]) - b["start"]) for b in timed)
        return dict(comm_s=comm_s, hidden_s=hidden_s, overlap_fraction=hidden_s / comm_s if comm_s > 0 else 0.0,
                    wait_s=step["wait_end"] - step["wait_start"])


def _copy_scaled_device(array, out, factor, accumulate=False):
    """The NCCL path: ``out`` is a CuPy slice."""
    array = array.compact()
    src = array._handle.array[array._offset:array._offset + array.size]
    if accumulate:
        out += src * factor
    else:
        out[:] = src * factor if factor != 1.0 else src
