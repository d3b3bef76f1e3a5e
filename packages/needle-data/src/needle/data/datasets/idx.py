"""Reader for gzipped IDX files (the MNIST format), with header and size checks.

IDX layout: two zero bytes, a type byte (0x08 = unsigned byte), a byte with the number of
dimensions, one big-endian uint32 per dimension, then the data in C order. MNIST's image files
have magic number 2051 (0x00000803: uint8, 3 dims) and its label files 2049 (uint8, 1 dim).
"""
import gzip
import math
import os
import zlib

import numpy as np

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_GZIP_MAGIC = b"\x1f\x8b"
_KIND = {IMAGES_MAGIC: "an IDX image file", LABELS_MAGIC: "an IDX label file"}
#: The largest payload :func:`read_idx` accepts by default (the full MNIST images are 47 MB).
MAX_IDX_BYTES = 4 << 30
_CHUNK = 1 << 20


class DataFormatError(ValueError):
    """A data file is missing parts, is of the wrong kind or disagrees with its own header."""


def _describe(dims):
    if len(dims) == 3:
        return f"{dims[0]} images of {dims[1]}x{dims[2]}"
    if len(dims) == 1:
        return f"{dims[0]} labels"
    return f"an array of shape {tuple(dims)}"


def _read_up_to(stream, size):
    """At most ``size`` bytes from ``stream``, in bounded chunks (fewer at the end of the stream)."""
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(min(_CHUNK, size - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def _open_gzip(filename):
    """The file opened for reading, checked to start like gzip."""
    raw = open(filename, "rb")
    try:
        start = raw.read(4)
        if start[:2] != _GZIP_MAGIC:
            raise DataFormatError(f"{filename}: not a gzip file (it starts with bytes "
                                  f"{start.hex(' ') or 'nothing'}, gzip files start with 1f 8b); expected a "
                                  f"gzipped IDX file such as MNIST's *-ubyte.gz")
        raw.seek(0)
        return raw
    except BaseException:
        raw.close()
        raise


def read_idx(filename, expected_magic=None, *, max_bytes=MAX_IDX_BYTES) -> np.ndarray:
    """Read a gzipped IDX file into a uint8 numpy array of the shape its header gives.

    ``expected_magic`` (e.g. 2051 for images, 2049 for labels) is checked when given. Raises
    :class:`DataFormatError`, naming the file and what is wrong, when the file is not gzip, its
    header is short or has the wrong magic number, or its payload size disagrees with the header.
    The header is read first: a declared size above ``max_bytes`` (4 GiB by default) is refused
    before the payload is decompressed, no more than the declared size (plus one byte, to detect
    trailing data) is ever decompressed, and memory grows with what the stream really yields.
    """
    filename = os.fspath(filename)
    with _open_gzip(filename) as raw, gzip.GzipFile(fileobj=raw, mode="rb") as stream:
        try:
            return _read_idx_stream(filename, stream, expected_magic, max_bytes)
        except (EOFError, OSError, zlib.error) as exc:
            # EOFError: the compressed stream stops early (a truncated download); OSError/zlib.error: corrupt bytes.
            raise DataFormatError(f"{filename}: the gzip data is truncated or corrupt ({exc})") from None


def _read_idx_stream(filename, stream, expected_magic, max_bytes):
    head = _read_up_to(stream, 4)
    if len(head) < 4:
        raise DataFormatError(f"{filename}: file holds {len(head)} bytes, too short for an IDX header (4 bytes)")
    magic = int.from_bytes(head, "big")
    if expected_magic is not None and magic != expected_magic:
        got = _KIND.get(magic, "not an IDX file of a known kind")
        raise DataFormatError(f"{filename}: magic number is {magic}, expected {expected_magic} "
                              f"({_KIND.get(expected_magic, 'IDX')}); this looks like {got}")
    if head[0] != 0 or head[1] != 0 or head[2] != 0x08:
        raise DataFormatError(f"{filename}: magic number {magic} is not an unsigned-byte IDX header "
                              f"(expected 00 00 08 <ndim>, got {head.hex(' ')})")
    ndim = head[3]
    header_len = 4 + 4 * ndim
    dim_bytes = _read_up_to(stream, 4 * ndim)
    if len(dim_bytes) < 4 * ndim:
        raise DataFormatError(f"{filename}: header says {ndim} dimensions ({header_len}-byte header) "
                              f"but the file holds only {4 + len(dim_bytes)} bytes")
    dims = [int.from_bytes(dim_bytes[4 * i:4 * i + 4], "big") for i in range(ndim)]
    expected = math.prod(dims)  # a Python int: no wrap-around, whatever the header claims
    if expected > max_bytes:
        raise DataFormatError(f"{filename}: header says {_describe(dims)} ({expected} bytes), more than "
                              f"max_bytes={max_bytes}; the header is corrupt (or pass a larger max_bytes)")
    # Memory follows what the stream yields, never the header; one byte more tells trailing data apart.
    data = _read_up_to(stream, expected + 1)
    if len(data) != expected:
        held = f"only {len(data)}" if len(data) < expected else f"more than {expected}"
        raise DataFormatError(f"{filename}: header says {_describe(dims)} ({expected} bytes) "
                              f"but the file holds {held} bytes after its {header_len}-byte header")
    try:
        return np.frombuffer(data, dtype=np.uint8).reshape(dims)
    except ValueError as exc:  # e.g. a zero dimension beside dimensions numpy cannot index
        raise DataFormatError(f"{filename}: header says {_describe(dims)}, which numpy cannot hold ({exc})") from None
