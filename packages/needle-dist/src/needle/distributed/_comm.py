"""Communicators: the few collectives data-parallel training needs, each on an existing engine.

Every communicator has ``rank``, ``size``, ``backend`` and, on contiguous buffers (numpy
arrays for MPI, CuPy arrays for NCCL), in place:

- ``allreduce_start(buf) -> handle``: start a sum over ranks; ``wait(handles, what)`` completes
  them, or raises :class:`DistributedTimeoutError` once ``timeout`` seconds have passed;
- ``allreduce(buf, what)``, ``allreduce_now(buf, what)`` (nothing left to overlap),
  ``bcast(buf, root, what)``, ``barrier(what)``, ``abort(code)``;
- ``empty(n, dtype)`` for a flat buffer of the kind the engine reads.

Why no blocking call on the caller's thread: a blocking collective whose peer has died waits
forever (MPI does not notice dead peers on its own); a wait we control can give up with a message
that says what was pending and for how long. Small collectives are non-blocking requests polled
against the deadline. Gradient all-reduces run as blocking ``Allreduce`` calls on a collective
thread (:class:`_CollectiveThread`, on a communicator of its own): MPICH's blocking algorithms are
several times faster than its non-blocking schedules at these sizes, the thread advances them
while the caller computes (mpi4py releases the GIL inside MPI), and the caller waits on an event
with the same deadline. An all-reduce with nothing left to overlap (``allreduce_now``: the buckets
still unstarted when the gradients are wanted) runs on the caller's thread instead: a hand-off and
a wake-up cost ~0.15 ms per call on a busy machine, a tenth of a 4 MB all-reduce. There a
:class:`_Watchdog` holds the deadline: MPI cannot interrupt a blocking call, so past it the job is
aborted with the timeout message (what an uncaught timeout does under ``abort_on_error``).
"""
import queue
import sys
import threading
import time

import numpy as np

from ._errors import DistributedError, DistributedTimeoutError

#: Seconds a wait polls MPI without sleeping before it starts to back off.
SPIN_S = 0.5


def _timeout_message(rank, size, what, timeout):
    return (f"rank {rank} of {size}: {what} did not complete within {timeout:g} s; a peer rank has probably "
            f"died, hung or taken a different code path (set a longer limit with "
            f"needle.distributed.init(timeout=...) or NEEDLE_DIST_TIMEOUT if a step is legitimately slow)")


class _Done:
    """A completed handle: what a world of one rank returns."""

    t_start = t_end = None
    error = None


class CollectiveHandle:
    """A collective queued on a :class:`_CollectiveThread`: ``done`` is set when it has run;
    ``t_start``/``t_end`` (``time.perf_counter``) say when the MPI call ran, ``error`` what it raised."""

    __slots__ = ("fn", "done", "t_queued", "t_start", "t_end", "error")

    def __init__(self, fn):
        self.fn, self.done, self.error = fn, threading.Event(), None
        self.t_queued, self.t_start, self.t_end = time.perf_counter(), None, None


class _CollectiveThread:
    """One daemon thread running blocking collectives in the order they were queued.

    All ranks queue the same collectives in the same order, so they match up as MPI requires. A
    call stuck on a dead peer keeps this thread forever; the caller's deadline reports it and the
    job is aborted (daemon: it never holds the interpreter open).
    """

    def __init__(self, name):
        self._queue = queue.SimpleQueue()
        self.last = None  # the handle queued last: once it is done, so are all before it
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn):
        handle = self.last = CollectiveHandle(fn)
        self._queue.put(handle)
        return handle

    def _run(self):
        while True:
            handle = self._queue.get()
            handle.t_start = time.perf_counter()
            try:
                handle.fn()
            except BaseException as exc:  # handed to the waiting caller, which raises it
                handle.error = exc
            handle.t_end = time.perf_counter()
            handle.fn = None
            handle.done.set()


class _Ran:
    """A collective that ran on the caller's thread: ``t_start``/``t_end`` say when."""

    __slots__ = ("t_start", "t_end")
    error = None

    def __init__(self, t_start, t_end):
        self.t_start, self.t_end = t_start, t_end


class _Watchdog:
    """Bounds the blocking collectives run on the caller's thread (:meth:`MPICommunicator.allreduce_now`).

    The caller only writes ``armed`` (``(deadline, what)`` during the call, else None): no lock, no
    wake-up. This daemon thread looks every ``poll`` seconds; a call past its deadline is stuck on
    a dead or hung peer and cannot be interrupted, so it prints the timeout and aborts the job.
    """

    def __init__(self, comm):
        self.comm, self.armed = comm, None
        self.poll = min(0.5, comm.timeout / 10)
        threading.Thread(target=self._run, name=f"needle-dist-watchdog-rank{comm.rank}", daemon=True).start()

    def _run(self):
        while True:
            time.sleep(self.poll)
            armed = self.armed
            if armed is not None and time.monotonic() > armed[0] and self.armed is armed:
                comm = self.comm
                sys.stderr.write(f"needle.distributed: DistributedTimeoutError: "
                                 f"{_timeout_message(comm.rank, comm.size, armed[1], comm.timeout)}\n"
                                 f"needle.distributed: rank {comm.rank} of {comm.size} is blocked in MPI; "
                                 "aborting all ranks\n")
                comm.abort(1)


class LocalCommunicator:
    """World size 1: every collective is the identity. Used when no launcher started this process."""

    backend = "local"
    rank, size, local_rank = 0, 1, 0
    host_buffers = True

    def __init__(self, timeout=None):
        self.timeout = timeout

    def empty(self, n, dtype):
        return np.empty(n, dtype=dtype)

    def allreduce_start(self, buf):
        return _Done()

    def wait(self, handles, what="collective"):
        return None

    def allreduce(self, buf, what="all-reduce"):
        return None

    def allreduce_now(self, buf, what="all-reduce"):
        return _Done()

    def bcast(self, buf, root=0, what="broadcast"):
        if root != 0:
            raise DistributedError(f"broadcast: root={root} but the world has a single rank (0)")

    def barrier(self, what="barrier"):
        return None

    def abort(self, code=1):
        sys.stderr.flush()
        raise SystemExit(code)


class MPICommunicator:
    """Collectives through mpi4py's buffer interface (uppercase calls: no pickling of data)."""

    backend = "mpi"
    host_buffers = True

    def __init__(self, comm, timeout, abort_on_timeout=False):
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        # Ranks sharing this machine (for picking a GPU per process).
        self.local_rank = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank() if self.size > 1 else 0
        self.timeout = float(timeout)
        # Gradient all-reduces: blocking calls on a thread, on their own communicator, when MPI lets
        # two threads call it at once; otherwise non-blocking requests polled on this thread.
        self._thread = None
        if self.size > 1 and MPI.Query_thread() == MPI.THREAD_MULTIPLE:
            self.grad_comm = comm.Dup()
            self._thread = _CollectiveThread(f"needle-dist-allreduce-rank{self.rank}")
        # allreduce_now on the caller's thread: only where a timeout may end the job (abort_on_error);
        # otherwise the hand-off, whose wait can raise DistributedTimeoutError.
        self.direct = self._thread is not None and abort_on_timeout
        self._watchdog = None

    def empty(self, n, dtype):
        return np.empty(n, dtype=dtype)

    def allreduce_start(self, buf):
        """Start summing ``buf`` over the ranks in place; returns a handle for :meth:`wait`."""
        if self._thread is None:
            return self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        comm, MPI = self.grad_comm, self.MPI
        return self._thread.submit(lambda: comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM))

    def wait(self, handles, what="collective"):
        handles = [h for h in handles if h is not None and not isinstance(h, _Done)]
        if not handles:
            return
        start = time.monotonic()
        deadline = start + self.timeout
        queued = [h for h in handles if isinstance(h, CollectiveHandle)]
        for h in queued:
            if not h.done.wait(max(0.0, deadline - time.monotonic())):
                raise DistributedTimeoutError(_timeout_message(self.rank, self.size, what, self.timeout))
            if h.error is not None:
                raise DistributedError(f"rank {self.rank} of {self.size}: {what} failed: "
                                       f"{type(h.error).__name__}: {h.error}") from h.error
        handles = [h for h in handles if not isinstance(h, CollectiveHandle)]
        if not handles:
            return
        testall = self.MPI.Request.Testall
        spins, pause = 0, 0.0
        # MPI only advances a non-blocking collective inside MPI calls, so poll without pausing
        # while the wait is short (as blocking MPI calls spin); a wait past SPIN_S means a slow or
        # dead peer: back off to millisecond sleeps that leave the cores to the other ranks.
        while not testall(handles):
            spins += 1
            if spins % 256:
                continue
            now = time.monotonic()
            if now > deadline:
                raise DistributedTimeoutError(_timeout_message(self.rank, self.size, what, self.timeout))
            if now - start > SPIN_S:
                pause = min(max(pause * 2, 1e-4), 1e-3)
                time.sleep(pause)

    def allreduce(self, buf, what="all-reduce"):
        self.wait([self.allreduce_start(buf)], what)

    def allreduce_now(self, buf, what="all-reduce"):
        """:meth:`allreduce` when nothing is left to overlap; returns a completed, timed handle.

        With ``direct``: a blocking ``Allreduce`` on this thread, watched, after every collective
        already queued on the collective thread (by any reducer: one communicator, one order).
        """
        if not self.direct:
            handle = self.allreduce_start(buf)
            self.wait([handle], what)
            return handle
        last = self._thread.last
        if last is not None and not last.done.is_set():
            self.wait([last], what)
        dog = self._watchdog or self._start_watchdog()
        dog.armed = (time.monotonic() + self.timeout, what)
        t_start = time.perf_counter()
        try:
            self.grad_comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        except self.MPI.Exception as exc:
            raise DistributedError(f"rank {self.rank} of {self.size}: {what} failed: {exc}") from exc
        finally:
            dog.armed = None
        return _Ran(t_start, time.perf_counter())

    def _start_watchdog(self):
        self._watchdog = _Watchdog(self)
        return self._watchdog

    def bcast(self, buf, root=0, what="broadcast"):
        if not 0 <= root < self.size:
            raise DistributedError(f"broadcast: root={root} is not a rank of a world of size {self.size}")
        self.wait([self.comm.Ibcast(buf, root=root)], what)

    def barrier(self, what="barrier"):
        self.wait([self.comm.Ibarrier()], what)

    def abort(self, code=1):
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(0.2)  # let the launcher forward this rank's last output before it tears the job down
        self.comm.Abort(code)


def _import_nccl():
    """``(cupy, cupy.cuda.nccl)``, or a DistributedError saying what to install."""
    try:
        import cupy
        from cupy.cuda import nccl
    except Exception as exc:  # CuPy missing, built without NCCL, or its CUDA libraries missing
        raise DistributedError(f"backend 'nccl' needs CuPy with NCCL (pip install \"needle-dist[cuda12]\" or "
                               f"\"needle-dist[cuda13]\"), which failed to import: {type(exc).__name__}: {exc}; "
                               "backend='mpi' works without it") from exc
    if not getattr(nccl, "available", True):  # CuPy imports the module even when it found no libnccl
        raise DistributedError("backend 'nccl': CuPy found no NCCL library (pip install nvidia-nccl-cu12 or "
                               "nvidia-nccl-cu13, matching CuPy's CUDA); backend='mpi' works without it")
    return cupy, nccl


class NCCLCommunicator:
    """All-reduce and broadcast of GPU buffers with NCCL (``cupy.cuda.nccl``), bootstrapped over MPI.

    Rank 0 makes the NCCL unique id and broadcasts it with MPI; each process uses the GPU with its
    local rank (modulo the GPUs it sees). Barriers and aborts go through the MPI communicator.
    Not exercised by the test suite on machines without a GPU.
    """

    backend = "nccl"
    host_buffers = False

    def __init__(self, mpi):
        cupy, nccl = _import_nccl()
        self.cp, self.nccl_mod, self.mpi = cupy, nccl, mpi
        self.rank, self.size, self.local_rank = mpi.rank, mpi.size, mpi.local_rank
        self.timeout = mpi.timeout
        try:
            gpus = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # no driver, or a driver too old for this CuPy
            raise DistributedError(f"backend 'nccl': CUDA cannot list the GPUs ({type(exc).__name__}: {exc}); "
                                   "use backend='mpi' on a machine without a usable GPU") from exc
        if gpus == 0:
            raise DistributedError("backend 'nccl': no CUDA GPU is visible; use backend='mpi' here")
        self.device_id = self.local_rank % gpus
        cupy.cuda.Device(self.device_id).use()
        uid = np.zeros(128, dtype=np.int8)  # ncclUniqueId is 128 bytes
        if self.rank == 0:
            uid[:] = np.array(nccl.get_unique_id(), dtype=np.int8)
        mpi.bcast(uid, 0, what="NCCL unique-id broadcast")
        self.comm = nccl.NcclCommunicator(self.size, tuple(int(v) for v in uid), self.rank)
        self.stream = cupy.cuda.Stream(non_blocking=True)

    def _nccl_dtype(self, buf):
        names = {"float32": self.nccl_mod.NCCL_FLOAT32, "float64": self.nccl_mod.NCCL_FLOAT64}
        if buf.dtype.name not in names:
            raise DistributedError(f"NCCL communicator: unsupported dtype {buf.dtype.name}")
        return names[buf.dtype.name]

    def empty(self, n, dtype):
        return self.cp.empty(n, dtype=dtype)

    def allreduce_start(self, buf):
        # Kernels that wrote ``buf`` ran on the current stream: order the NCCL stream after them.
        self.stream.wait_event(self.cp.cuda.get_current_stream().record())
        ptr = buf.data.ptr
        self.comm.allReduce(ptr, ptr, buf.size, self._nccl_dtype(buf), self.nccl_mod.NCCL_SUM, self.stream.ptr)
        return self.stream.record()

    def wait(self, handles, what="collective"):
        deadline = time.monotonic() + self.timeout
        for event in handles:
            if event is None:
                continue
            while not event.done:
                time.sleep(1e-4)
                if time.monotonic() > deadline:
                    self.comm.abort()  # frees NCCL's pending kernels so the process can exit
                    raise DistributedTimeoutError(_timeout_message(self.rank, self.size, what, self.timeout))

    def allreduce(self, buf, what="all-reduce"):
        self.wait([self.allreduce_start(buf)], what)

    allreduce_now = allreduce

    def bcast(self, buf, root=0, what="broadcast"):
        self.stream.wait_event(self.cp.cuda.get_current_stream().record())
        self.comm.bcast(buf.data.ptr, buf.size, self._nccl_dtype(buf), root, self.stream.ptr)
        self.wait([self.stream.record()], what)

    def barrier(self, what="barrier"):
        self.mpi.barrier(what)

    def abort(self, code=1):
        self.mpi.abort(code)
