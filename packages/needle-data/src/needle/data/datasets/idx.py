"""Reader for gzipped IDX files (the MNIST format), with header and size checks.

IDX layout: two zero bytes, a type byte (0x08 = unsigned byte), a byte with the number of
dimensions, one big-endian uint32 per dimension, then the data in C order. MNIST's image files
have magic number 2051 (0x00000803: uint8, 3 dims) and its label files 2049 (uint8, 1 dim).
"""
import gzip
import os
import zlib

import numpy as np

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_GZIP_MAGIC = b"\x1f\x8b"
_KIND = {IMAGES_MAGIC: "an IDX image file", LABELS_MAGIC: "an IDX label file"}


class DataFormatError(ValueError):
    """A data file is missing parts, is of the wrong kind or disagrees with its own header."""


def _describe(dims):
    if len(dims) == 3:
        return f"{dims[0]} images of {dims[1]}x{dims[2]}"
    if len(dims) == 1:
        return f"{dims[0]} labels"
    return f"an array of shape {tuple(dims)}"


def _read_gzip(filename):
    with open(filename, "rb") as f:
        raw = f.read()
    if raw[:2] != _GZIP_MAGIC:
        raise DataFormatError(f"{filename}: not a gzip file (it starts with bytes {raw[:4].hex(' ') or 'nothing'}, "
                              f"gzip files start with 1f 8b); expected a gzipped IDX file such as MNIST's *-ubyte.gz")
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        # EOFError: the compressed stream stops early (a truncated download); OSError/zlib.error: corrupt bytes.
        raise DataFormatError(f"{filename}: the gzip data is truncated or corrupt ({exc})") from None


def read_idx(filename, expected_magic=None) -> np.ndarray:
    """Read a gzipped IDX file into a uint8 numpy array of the shape its header gives.

    ``expected_magic`` (e.g. 2051 for images, 2049 for labels) is checked when given. Raises
    :class:`DataFormatError`, naming the file and what is wrong, when the file is not gzip, its
    header is short or has the wrong magic number, or its payload size disagrees with the header.
    """
    filename = os.fspath(filename)
    data = _read_gzip(filename)
    if len(data) < 4:
        raise DataFormatError(f"{filename}: file holds {len(data)} bytes, too short for an IDX header (4 bytes)")
    magic = int.from_bytes(data[:4], "big")
    if expected_magic is not None and magic != expected_magic:
        got = _KIND.get(magic, "not an IDX file of a known kind")
        raise DataFormatError(f"{filename}: magic number is {magic}, expected {expected_magic} "
                              f"({_KIND.get(expected_magic, 'IDX')}); this looks like {got}")
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataFormatError(f"{filename}: magic number {magic} is not an unsigned-byte IDX header "
                              f"(expected 00 00 08 <ndim>, got {data[:4].hex(' ')})")
    ndim = data[3]
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataFormatError(f"{filename}: header says {ndim} dimensions ({header_len}-byte header) "
                              f"but the file holds only {len(data)} bytes")
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims, dtype=np.int64))
    payload = len(data) - header_len
    if payload != expected:
        more = "only " if payload < expected else ""
        raise DataFormatError(f"{filename}: header says {_describe(dims)} ({expected} bytes) "
                              f"but the file holds {more}{payload} bytes after its {header_len}-byte header")
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)
