"""DLPack exchange of needle-cuda buffers through CuPy (``protocol.DLPACK_KERNELS``).

Export hands out CuPy's capsule of a CuPy view over the buffer (the view holds the buffer's memory
until the consumer releases it); import adopts the producer's device memory with ``cupy.from_dlpack``
(CuPy keeps the producer's tensor alive as long as any view of it, our flat buffer included).
"""
from . import _cupy, _views


def dlpack_device(a):
    """DLPack's (device type, index) of a buffer: (2, its CUDA device)."""
    return (2, a.device_id)


def dlpack_export(a, shape, strides, offset, max_version=None, stream=None):
    """A DLPack capsule over the strided view of ``a`` (CuPy's, on ``stream`` when one is given)."""
    from ._backend import _view

    view = _view(a, shape, strides, offset, "dlpack_export")
    kwargs = {} if stream is None else {"stream": stream}
    if max_version is not None:
        try:
            return view.__dlpack__(max_version=max_version, **kwargs)
        except TypeError:  # a CuPy that predates DLPack 1.0
            pass
    return view.__dlpack__(**kwargs)


def dlpack_import(obj):
    """``(Array, shape, strides, offset)`` over the device memory of ``obj`` (a DLPack producer on CUDA)."""
    from ._backend import DTYPES, Array

    cp = _cupy.cp()
    x = cp.from_dlpack(obj)
    name = x.dtype.name
    if name not in DTYPES:
        raise TypeError(f"from_dlpack: needle-cuda cannot hold dtype {name}; it holds {DTYPES}")
    if x.size == 0:
        compact = tuple(s // x.itemsize for s in cp.empty(x.shape, x.dtype).strides)
        return Array(0, name, device=x.device.id), tuple(x.shape), compact, 0
    item = x.itemsize
    if any(s % item for s in x.strides):
        x = cp.ascontiguousarray(x).copy()
    steps = tuple(s // item for s in x.strides)
    low, high = _views.view_extent(x.shape, steps, 0)
    out = Array.__new__(Array)
    with cp.cuda.Device(x.device.id):  # the flat buffer keeps x's memory (and so the producer) alive
        out.array = cp.ndarray((high - low + 1,), dtype=x.dtype, memptr=x.data + low * item)
    return out, tuple(x.shape), steps, -low
