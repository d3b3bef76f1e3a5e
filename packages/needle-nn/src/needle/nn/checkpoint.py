"""Checkpoints: a state dict saved as an ``.npz`` file that cannot run code when loaded.

Why npz and not pickle: ``np.load(..., allow_pickle=False)`` only ever builds plain arrays,
so opening an untrusted checkpoint cannot execute anything. Why npz and not safetensors:
numpy is already a dependency and npz holds every dtype we use; the files open with plain
numpy too. Writes are atomic: the file is written to a temporary name in the same directory,
flushed to disk, then renamed over the target, so a crash mid-write leaves the old file.
"""
import contextlib
import os
import tempfile
import zipfile
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from .nn_module import Module


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or holds something other than plain arrays."""


def _as_arrays(obj_state):
    if isinstance(obj_state, Module):
        obj_state = obj_state.state_dict()
    if not isinstance(obj_state, Mapping):
        raise TypeError(f"save: expected a state dict (a mapping of name -> array) or a Module, "
                        f"got {type(obj_state).__name__}")
    arrays = OrderedDict()
    for name, value in obj_state.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"save: state dict keys must be non-empty strings, got {name!r}")
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(f"save: {name!r} is not a numeric array (dtype {array.dtype})")
        arrays[name] = array
    return arrays


def _write_npz(fileobj, arrays):
    """Write ``arrays`` as an npz archive (the layout ``np.savez`` makes) with pickling refused."""
    with zipfile.ZipFile(fileobj, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def save(obj_state, path):
    """Write a state dict (name -> numpy array or Tensor), or a Module's, to ``path`` atomically.

    The file is an ``.npz`` archive; an existing file at ``path`` is replaced only once the new
    one is completely written.
    """
    arrays = _as_arrays(obj_state)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_npz(f, arrays)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; a checkpoint is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows it
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def load(path):
    """Read a checkpoint written by :func:`save`: an ordered dict of name -> numpy array.

    Never unpickles (``allow_pickle=False``); a corrupt file, a pickle or a file holding object
    arrays raises :class:`CheckpointError` naming the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load: no checkpoint file at {path!r}")
    bad = (ValueError, OSError, EOFError, zipfile.BadZipFile)
    try:
        loaded = np.load(path, allow_pickle=False)
    except bad as exc:
        raise CheckpointError(f"load: {path!r} is not a valid checkpoint: {exc}") from None
    if not hasattr(loaded, "files"):
        raise CheckpointError(f"load: {path!r} holds a single array, not a state dict (an .npz archive)")
    with loaded:
        try:
            return OrderedDict((name, loaded[name]) for name in loaded.files)
        except bad as exc:
            raise CheckpointError(f"load: {path!r} is not a valid checkpoint: {exc}") from None
