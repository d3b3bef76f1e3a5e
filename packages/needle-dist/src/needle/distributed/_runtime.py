"""The process group: ``init`` picks a communicator once; the small query functions read it."""
import os
import sys

from ._comm import LocalCommunicator, MPICommunicator, NCCLCommunicator, _import_nccl
from ._errors import DistributedError

#: Seconds a collective may wait for its peers before the job is declared broken.
TIMEOUT_ENV = "NEEDLE_DIST_TIMEOUT"
DEFAULT_TIMEOUT = 300.0
#: Environment variables by which MPI launchers (MPICH/Hydra, Open MPI, PMIx) announce the world size.
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE")
_BACKENDS = ("auto", "mpi", "nccl", "local")

_comm = None
_hook_installed = False


def _launcher_world_size():
    for var in _LAUNCHER_SIZE_VARS:
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return None


def _timeout(timeout):
    if timeout is None:
        raw = os.environ.get(TIMEOUT_ENV)
        if raw is None:
            return DEFAULT_TIMEOUT
        try:
            timeout = float(raw)
        except ValueError:
            raise DistributedError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds") from None
    if not timeout > 0:
        raise DistributedError(f"init: timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _mpi_world(timeout, abort_on_error):
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise DistributedError(f"needle.distributed needs mpi4py and an MPI library for more than one process "
                               f"(pip install mpi4py mpich): {exc}") from exc
    # A duplicate of COMM_WORLD: our collectives can never match the user's own MPI calls.
    return MPICommunicator(MPI.COMM_WORLD.Dup(), timeout, abort_on_timeout=abort_on_error)


def _default_device_is_cuda():
    import needle

    return getattr(needle.default_device(), "name", "") == "cuda"


def _nccl_available():
    """True when CuPy and its NCCL library load (backend 'auto' then uses NCCL for CUDA training)."""
    try:
        _import_nccl()
    except DistributedError:  # CuPy missing, built without NCCL, or no libnccl found
        return False
    return True


def _install_excepthook(comm):
    """An uncaught exception on one rank aborts every rank, instead of leaving them in a collective."""
    global _hook_installed
    if _hook_installed:
        return
    previous = sys.excepthook

    def hook(exc_type, exc, tb):
        previous(exc_type, exc, tb)
        sys.stderr.write(f"needle.distributed: rank {comm.rank} of {comm.size} stopped on an uncaught "
                         f"{exc_type.__name__}; aborting all ranks\n")
        comm.abort(1)

    sys.excepthook = hook
    _hook_installed = True


def init(backend="auto", timeout=None, abort_on_error=True):
    """Join the process group (idempotent) and return its communicator.

    ``backend``: ``"auto"`` (NCCL when the default device is CUDA and CuPy has NCCL, else MPI when
    mpi4py is installed or a launcher started us, else a single local process), ``"mpi"``,
    ``"nccl"`` or ``"local"``. Without ``mpiexec`` the world has one rank and everything works.
    ``timeout`` (seconds; default ``$NEEDLE_DIST_TIMEOUT`` or 300) bounds every collective: a rank
    whose peers do not arrive in time raises :class:`DistributedTimeoutError`. With
    ``abort_on_error`` (the default) an uncaught exception on any rank prints its traceback and
    aborts the whole job, so no rank waits for a peer that is gone; an all-reduce with nothing left
    to overlap then runs on the calling thread, and a timeout there prints the
    :class:`DistributedTimeoutError` message and aborts the job (a blocking MPI call cannot raise).
    """
    global _comm
    if backend not in _BACKENDS:
        raise DistributedError(f"init: backend must be one of {_BACKENDS}, got {backend!r}")
    if _comm is not None:
        if backend not in ("auto", _comm.backend):
            raise DistributedError(f"init: already initialised with backend {_comm.backend!r}, asked for {backend!r}")
        return _comm
    timeout = _timeout(timeout)
    launched = _launcher_world_size()
    if backend == "local":
        if launched not in (None, 1):
            raise DistributedError(f"init: backend 'local' but the launcher started {launched} processes")
        comm = LocalCommunicator(timeout)
    elif backend == "auto" and launched in (None, 1) and not _mpi_importable():
        comm = LocalCommunicator(timeout)
    else:
        comm = _mpi_world(timeout, abort_on_error)
        if backend == "nccl" or (backend == "auto" and comm.size > 1 and _default_device_is_cuda()
                                 and _nccl_available()):
            comm = NCCLCommunicator(comm)
    if comm.size > 1 and abort_on_error:
        _install_excepthook(comm)
    _comm = comm
    return comm


def _mpi_importable():
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def get_communicator():
    """The communicator of :func:`init` (which is called first if needed)."""
    return _comm if _comm is not None else init()


def is_initialized():
    """True once :func:`init` has run in this process."""
    return _comm is not None


def rank():
    """This process's rank, 0 .. world_size() - 1."""
    return get_communicator().rank


def world_size():
    """The number of processes training together."""
    return get_communicator().size


def local_rank():
    """This process's rank among those on the same machine (picks its GPU)."""
    return get_communicator().local_rank


def is_main():
    """True on rank 0, the rank that writes checkpoints and logs."""
    return rank() == 0


def backend():
    """``"mpi"``, ``"nccl"`` or ``"local"``."""
    return get_communicator().backend


def barrier():
    """Wait until every rank reaches this call (bounded by the timeout)."""
    get_communicator().barrier("barrier")


def device():
    """The needle device this rank should train on: ``cuda(local_rank())`` with NCCL, else the default."""
    import needle

    comm = get_communicator()
    if comm.backend == "nccl":
        return needle.cuda(comm.device_id)
    return needle.default_device()
