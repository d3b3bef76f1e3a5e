"""Flat buffers: one contiguous buffer per bucket of tensors, and the tensors' views of it.

One collective on a few large buffers costs far less than one per parameter (each call pays a
latency of microseconds on one machine, tens of microseconds across a network), so parameters
are packed into buckets of about ``bucket_mb`` megabytes, one dtype per bucket.

On host backends (numpy, needle-cpu: both let numpy view their memory) a gradient costs one copy
into its bucket, with the averaging factor applied in the same pass, and none out: the reduced
``.grad`` is a needle array over the bucket's memory (``from_dlpack``, no copy).
"""
import zlib

import numpy as np

from needle.autograd import Tensor
from needle.backend_ndarray.ndarray import NDArray, from_dlpack

from ._errors import DistributedError


class Bucket:
    """Parameters that travel together: ``offsets[i]:offsets[i]+sizes[i]`` of ``buf`` is ``params[i]``."""

    def __init__(self, dtype, params, extra=0):
        self.dtype = dtype
        self.params = list(params)
        self.sizes = [int(np.prod(p.shape, dtype=np.int64)) for p in self.params]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes, dtype=np.int64)]).tolist()
        self.extra = extra  # slots after the parameters (the batch-size weight travels in bucket 0)
        self.numel = self.offsets[-1] + extra
        self.buf = None

    @property
    def nbytes(self):
        return self.numel * np.dtype(self.dtype).itemsize


def plan_buckets(params, bucket_bytes, extra_first=0):
    """Group ``params`` into buckets of at most ``bucket_bytes`` (a larger parameter gets its own).

    Parameters are taken in reverse order (last layer first: the order backward produces their
    gradients, which matters once communication overlaps computation) and grouped by dtype.
    """
    if bucket_bytes <= 0:
        raise DistributedError(f"bucket size must be positive, got {bucket_bytes} bytes")
    by_dtype = {}
    for p in reversed(list(params)):
        by_dtype.setdefault(str(p.dtype), []).append(p)
    buckets = []
    for dtype, group in by_dtype.items():
        itemsize, current, used = np.dtype(dtype).itemsize, [], 0
        for p in group:
            nbytes = int(np.prod(p.shape, dtype=np.int64)) * itemsize
            if current and used + nbytes > bucket_bytes:
                buckets.append(Bucket(dtype, current))
                current, used = [], 0
            current.append(p)
            used += nbytes
        if current:
            buckets.append(Bucket(dtype, current))
    if buckets and extra_first:
        first = buckets[0]
        buckets[0] = Bucket(first.dtype, first.params, extra=extra_first)
    return buckets


def _host_view(array):
    """A numpy view of a compact NDArray's data when the backend keeps it in a numpy buffer, else None."""
    flat = getattr(array._handle, "array", None)
    if isinstance(flat, np.ndarray) and array.is_compact():
        return flat[array._offset:array._offset + array.size]
    return None


def host_numpy(array):
    """A numpy array sharing ``array``'s memory (any strides), or None when the backend has no host view."""
    try:
        return array.numpy(copy=False)
    except (ValueError, TypeError, BufferError):
        return None


def copy_scaled(array, out, factor, accumulate=False):
    """``out = factor * array`` (``out += ...`` with ``accumulate``) in one pass; ``out`` a 1-D numpy slice."""
    src = host_numpy(array)
    if src is None:
        src = array.numpy()
    dst = out.reshape(src.shape)  # a view: out is contiguous
    if accumulate:
        dst += src * factor if factor != 1.0 else src
    elif factor == 1.0:
        np.copyto(dst, src, casting="same_kind")
    else:
        np.multiply(src, factor, out=dst, casting="same_kind")


def view_host(flat, like):
    """An NDArray over the numpy slice ``flat`` (no copy on host backends), shaped and placed like ``like``."""
    array = from_dlpack(flat.reshape(like.shape), device=like.device)
    if array.dtype != like.dtype:  # cannot happen for buckets built from like's dtype; stay safe
        array = array.astype(like.dtype)
    return array


def pack_host(array, out):
    """Copy an NDArray's elements (row-major) into the 1-D numpy slice ``out``."""
    view = _host_view(array)
    out[:] = view if view is not None else array.numpy().reshape(-1)


def unpack_host(flat, like):
    """A new NDArray shaped, typed and placed like ``like`` holding the numpy slice ``flat``."""
    return NDArray(flat.reshape(like.shape), device=like.device, dtype=like.dtype)


def pack_device(array, out):
    """Copy a compact device NDArray's elements into the 1-D device slice ``out`` (NCCL path)."""
    array = array.compact()
    out[:] = array._handle.array[array._offset:array._offset + array.size]


def unpack_device(flat, like):
    array = NDArray.make(like.shape, device=like.device, dtype=like.dtype)
    array._handle.array[:] = flat
    return array


def as_const(array):
    """A leaf Tensor (no graph, no gradient) over ``array``."""
    return Tensor.make_const(array)


def layout_signature(params):
    """int64 [count, elements, crc32 of the shapes and dtypes]: equal on ranks that hold the same model."""
    desc = ";".join(f"{tuple(p.shape)}:{p.dtype}" for p in params).encode()
    total = sum(int(np.prod(p.shape, dtype=np.int64)) for p in params)
    return np.array([len(params), total, zlib.crc32(desc)], dtype=np.int64)
