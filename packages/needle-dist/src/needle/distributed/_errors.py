"""Exceptions raised by needle.distributed."""


class DistributedError(RuntimeError):
    """A distributed operation failed, or was called in a state where it cannot run."""


class DistributedTimeoutError(DistributedError):
    """A collective did not complete before the deadline: a peer rank has died, hung or diverged.

    Raised on the ranks that are still alive, so that a job never waits forever for a dead peer.
    Left uncaught, it aborts the whole job (see :func:`needle.distributed.init`).
    """


# Tracebacks name them where users import them from.
DistributedError.__module__ = DistributedTimeoutError.__module__ = "needle.distributed"
