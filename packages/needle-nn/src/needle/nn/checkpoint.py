"""Checkpoints: a state dict saved as an ``.npz`` file that cannot run code when loaded.

Why npz and not pickle: the reader only ever builds plain arrays (``allow_pickle=False``),
so opening an untrusted checkpoint cannot execute anything. Why npz and not safetensors:
numpy is already a dependency and npz holds every dtype we use; the files open with plain
numpy too. Writes are atomic: the file is written to a temporary name in the same directory,
flushed to disk, then renamed over the target, so a crash mid-write leaves the old file.

Temporaries are named ``.<target>.needle-<pid>-<random>.tmp`` and the writer holds an
exclusive ``flock`` on it while writing. A writer killed mid-save (SIGKILL, power loss) leaves
its temporary behind; the next save of the same target removes such leftovers, but only those
provably stale: our name pattern, a writer pid that is dead (or is our own), and a lock that
nobody holds. Temporaries of saves still running when the interpreter exits are removed at exit.
"""
import ast
import atexit
import contextlib
import os
import re
import struct
import tempfile
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Mapping

import numpy as np

from .nn_module import Module

try:
    import fcntl
except ImportError:  # pragma: no cover  (Windows: no flock, so stale temporaries are never provable)
    fcntl = None


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or holds something other than plain arrays."""


_NPY_SUFFIX = ".npy"
_NPY_MAGIC = b"\x93NUMPY"
_TMP_TAG = "needle"
# Deflate expands at most ~1032:1; a member claiming more than this cannot be genuine.
_MAX_DEFLATE_RATIO = 1100

_active_lock = threading.Lock()
_active_temporaries = {}  # temporary path -> pid of the process writing it


# ---- save ------------------------------------------------------------------------------------------
def _check_key(name):
    if not isinstance(name, str) or not name:
        raise TypeError(f"save: state dict keys must be non-empty strings, got {name!r}")
    if "\x00" in name:
        # zip member names end at a NUL byte: the key would come back truncated
        raise ValueError(f"save: state dict key {name!r} contains a NUL byte, which a checkpoint cannot store")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"save: state dict key {name!r} is not valid Unicode (it holds a lone surrogate)") from None


def _as_arrays(obj_state):
    if isinstance(obj_state, Module):
        obj_state = obj_state.state_dict()
    if not isinstance(obj_state, Mapping):
        raise TypeError(f"save: expected a state dict (a mapping of name -> array) or a Module, "
                        f"got {type(obj_state).__name__}")
    arrays = OrderedDict()
    for name, value in obj_state.items():
        _check_key(name)
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(f"save: {name!r} is not a numeric array (dtype {array.dtype})")
        arrays[name] = array
    return arrays


def _write_npz(fileobj, arrays):
    """Write ``arrays`` as an npz archive (the layout ``np.savez`` makes) with pickling refused."""
    with zipfile.ZipFile(fileobj, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + _NPY_SUFFIX, mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def _temporary_pattern(basename):
    return re.compile(r"\." + re.escape(basename) + r"\." + _TMP_TAG + r"-(\d+)-[A-Za-z0-9_]+\.tmp\Z")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # someone else's process, or a pid we cannot probe: not provably dead
    return True


def _remove_if_unlocked(path):
    """Delete ``path`` if no process holds its lock; a writer that died released it."""
    try:
        fd = os.open(path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return  # held by a live writer (or locks are unsupported here): leave it
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    finally:
        os.close(fd)


def _remove_stale_temporaries(directory, basename):
    """Remove temporaries of ``basename`` left by writers that were killed mid-save."""
    if fcntl is None:
        return
    pattern = _temporary_pattern(basename)
    prefix = "." + basename + "."
    try:
        with os.scandir(directory) as listing:
            entries = list(listing)
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        match = pattern.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(match.group(1))
        if pid == os.getpid():
            # A leftover of an earlier process that had our pid, unless one of our saves is writing it.
            with _active_lock:
                if entry.path not in _active_temporaries:
                    _remove_if_unlocked(entry.path)
        elif not _pid_alive(pid):
            _remove_if_unlocked(entry.path)


def _remove_own_temporaries_at_exit():
    """At a normal interpreter exit, remove temporaries of saves that never finished (daemon threads)."""
    with _active_lock:
        mine = [tmp for tmp, pid in _active_temporaries.items() if pid == os.getpid()]
        _active_temporaries.clear()
    for tmp in mine:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


atexit.register(_remove_own_temporaries_at_exit)


def _forget_temporaries_in_child():
    # A forked child must not delete its parent's temporaries at its own exit, nor inherit a held lock.
    global _active_lock
    _active_lock = threading.Lock()
    _active_temporaries.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_temporaries_in_child)


def _make_temporary(path, directory):
    basename = os.path.basename(path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"save: cannot write {path!r}: the folder {directory!r} does not exist")
    with _active_lock:  # a save of the same target in another thread must not take it for stale
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{basename}.{_TMP_TAG}-{os.getpid()}-", suffix=".tmp",
                                       dir=directory)
        except FileNotFoundError:
            raise FileNotFoundError(f"save: cannot write {path!r}: the folder {directory!r} does not exist") from None
        if fcntl is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_EX)  # tells other processes' saves that this writer is alive
        _active_temporaries[tmp] = os.getpid()
    return fd, tmp


def save(obj_state, path):
    """Write a state dict (name -> numpy array or Tensor), or a Module's, to ``path`` atomically.

    The file is an ``.npz`` archive; an existing file at ``path`` is replaced only once the new
    one is completely written. Keys must be non-empty strings without NUL bytes. Temporaries
    left in the folder by an earlier save of ``path`` that was killed are removed.
    """
    arrays = _as_arrays(obj_state)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    _remove_stale_temporaries(directory, os.path.basename(path))
    fd, tmp = _make_temporary(path, directory)
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
    finally:
        with _active_lock:
            _active_temporaries.pop(tmp, None)
    with contextlib.suppress(OSError):  # make the rename itself durable where the OS allows it
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


# ---- load ------------------------------------------------------------------------------------------
def _read_npy_header(fp):
    """``(shape, dtype, header length)`` of the .npy stream ``fp``, without reading its data."""
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
    elif version == (3, 0):  # utf-8 header (structured dtypes with non-Latin-1 field names)
        (length,) = struct.unpack("<I", fp.read(4))
        header = ast.literal_eval(fp.read(length).decode("utf-8"))
        shape, dtype = header["shape"], np.lib.format.descr_to_dtype(header["descr"])
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ValueError(f"shape is not a tuple of non-negative ints: {shape!r}")
    else:
        raise ValueError(f"unknown .npy format version {version}")
    return shape, dtype, fp.tell()


def _payload_bytes(shape, dtype):
    count = 1
    for dim in shape:
        count *= dim  # Python ints: no wrap-around, whatever the header claims
    return count * dtype.itemsize


def _check_member(path, archive, info, file_size):
    """Refuse a member that is not a plain .npy array whose header agrees with its size."""
    if "\x00" in info.orig_filename:
        raise CheckpointError(f"load: {path!r} holds a member named {info.orig_filename!r} with a NUL byte; "
                              f"it is not a Needle checkpoint")
    if not info.filename.endswith(_NPY_SUFFIX):
        raise CheckpointError(f"load: {path!r} holds a member {info.filename!r} that is not a .npy array; "
                              f"it is not a Needle checkpoint")
    key = info.filename[:-len(_NPY_SUFFIX)]
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise CheckpointError(f"load: {path!r}: member {key!r} uses zip compression method "
                              f"{info.compress_type}; checkpoints are stored or deflated")
    limit = info.compress_size * (1 if info.compress_type == zipfile.ZIP_STORED else _MAX_DEFLATE_RATIO)
    if info.compress_size > file_size or info.file_size > limit:
        raise CheckpointError(f"load: {path!r}: member {key!r} claims {info.file_size} bytes, more than the "
                              f"{file_size}-byte file can hold; the file is corrupt")
    try:
        with archive.open(info) as member:
            shape, dtype, header_len = _read_npy_header(member)
    except (ValueError, OSError, EOFError, SyntaxError, KeyError, struct.error, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"load: {path!r}: member {key!r} is not a valid .npy array: {exc}") from None
    if dtype.hasobject:
        raise CheckpointError(f"load: {path!r}: member {key!r} holds Python objects (dtype {dtype}), which "
                              f"would need unpickling; checkpoints hold plain arrays only")
    needed = _payload_bytes(shape, dtype)
    held = info.file_size - header_len
    if needed != held:
        raise CheckpointError(f"load: {path!r}: member {key!r} declares shape {shape} of {dtype} "
                              f"({needed} bytes) but holds {held} bytes; the file is corrupt")
    return key, needed


def _read_member(path, archive, info, key, size):
    try:
        with archive.open(info) as member:
            return np.lib.format.read_array(member, allow_pickle=False)
    except MemoryError:
        raise MemoryError(f"load: {path!r}: not enough memory for member {key!r} ({size} bytes)") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"load: {path!r}: member {key!r} is corrupt: {exc}") from None


def load(path):
    """Read a checkpoint written by :func:`save`: an ordered dict of name -> numpy array.

    Never unpickles; a file that is not an npz archive of plain ``.npy`` arrays (a pickle,
    object arrays, other members, keys with NUL bytes, a header that disagrees with the data)
    raises :class:`CheckpointError` naming the file. Sizes are checked before anything is allocated.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"load: no checkpoint file at {path!r}")
    try:
        with open(path, "rb") as f:
            start = f.read(len(_NPY_MAGIC))
            file_size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise CheckpointError(f"load: cannot read {path!r}: {exc}") from None
    if start == _NPY_MAGIC:
        raise CheckpointError(f"load: {path!r} holds a single array, not a state dict (an .npz archive)")
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise CheckpointError(f"load: {path!r} is not a Needle checkpoint (an .npz archive of arrays): "
                              f"{exc}") from None
    with archive:
        checked = [(info, *_check_member(path, archive, info, file_size)) for info in archive.infolist()]
        seen = set()
        for _, key, _ in checked:
            if key in seen:
                raise CheckpointError(f"load: {path!r} holds the key {key!r} twice; the file is corrupt")
            seen.add(key)
        result = OrderedDict()
        for info, key, size in checked:
            result[key] = _read_member(path, archive, info, key, size)
        return result
