"""Counted host <-> device copies, so a test can prove a hot path makes none.

Every copy needle-cuda makes between host and device goes through :func:`count`: the two
transfers of the protocol (``from_numpy``, ``to_numpy``) and the one scalar the index checks of
``gather_rows``/``scatter_add_rows`` read back.
"""
_TRANSFERS = {"h2d": 0, "h2d_bytes": 0, "d2h": 0, "d2h_bytes": 0}


def transfer_stats():
    """Host<->device copies made so far: counts and bytes each way (copies of 0 bytes are not counted)."""
    return dict(_TRANSFERS)


def reset_transfer_stats():
    """Zero the counters of :func:`transfer_stats`."""
    for key in _TRANSFERS:
        _TRANSFERS[key] = 0


def count(direction, nbytes):
    """Record one copy of ``nbytes`` in ``direction`` ("h2d" or "d2h")."""
    if nbytes:
        _TRANSFERS[direction] += 1
        _TRANSFERS[direction + "_bytes"] += int(nbytes)
