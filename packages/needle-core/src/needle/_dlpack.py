"""DLPack exchange: ``NDArray``/``Tensor.__dlpack__``, ``__dlpack_device__`` and ``needle.from_dlpack``.

A backend takes part through three optional kernels (``protocol.DLPACK_KERNELS``); core picks the
device, refuses what cannot be shared with a clear error, and copies only where sharing is impossible:

- export: a view with non-negative strides (compact, sliced, transposed, broadcast) is shared as it is,
  strides included; a view with a negative stride (``flip``) is exported as a compact copy, because
  common consumers (PyTorch) cannot hold negative strides.
- import: host memory goes to the default device when that is a host backend (numpy or needle-cpu),
  else to :func:`needle.cpu`; CUDA memory to ``cuda(index)``. The backend adopts the memory (the
  producer's buffer stays alive as long as the needle array) or, when it cannot (read-only or
  misaligned memory), makes a compact copy.
"""
import numpy as np

from . import backends

#: DLPack device types (``DLDeviceType``) that needle can name in a message.
CPU, CUDA = 1, 2
_DEVICE_TYPES = {1: "CPU", 2: "CUDA", 3: "CUDA host (pinned)", 4: "OpenCL", 7: "Vulkan", 8: "Metal", 9: "VPI",
                 10: "ROCm", 11: "ROCm host", 12: "ext_dev", 13: "CUDA managed", 14: "oneAPI", 15: "WebGPU",
                 16: "Hexagon", 17: "MAIA"}


def _device_name(dl_device):
    kind, index = dl_device
    return f"{_DEVICE_TYPES.get(kind, 'unknown')} device {index} (DLPack device type {kind})"


def _kernel(device, name):
    """The backend's DLPack kernel ``name``, or a BufferError saying that this backend has none."""
    kernel = device.optional(name)
    if kernel is None:
        raise BufferError(f"backend {device.backend_name!r} (device {device!r}) does not exchange memory through "
                          f"DLPack (it has no {name} kernel); copy through numpy instead (.numpy(), then "
                          f"needle.Tensor(array))")
    return kernel


def device_of(array):
    """``(device type, index)`` of an NDArray's memory, as DLPack counts them."""
    kind, index = _kernel(array.device, "dlpack_device")(array._handle)
    return int(kind), int(index)


def export(array, stream=None, max_version=None, dl_device=None, copy=None):
    """A DLPack capsule over ``array`` (an NDArray): its memory, or a compact copy of it when ``copy`` is
    True or the view has a negative stride (``copy=False`` then raises BufferError)."""
    device = array.device
    here = device_of(array)
    if dl_device is not None and tuple(dl_device) != here:
        raise BufferError(f"__dlpack__: the array is on {_device_name(here)}, dl_device={tuple(dl_device)} asks "
                          f"for another; move it first (Tensor.to(device))")
    if here[0] == CPU and stream is not None:
        raise BufferError(f"__dlpack__: stream must be None for host memory, got stream={stream!r}")
    if any(s < 0 for s in array.strides) or copy:
        if copy is False:
            raise BufferError("__dlpack__(copy=False): a view with a negative stride (a flip) cannot be shared; "
                              "call .compact() first or allow a copy")
        array = array.copy()
    kernel = _kernel(device, "dlpack_export")
    args = (array._handle, array.shape, array.strides, array.offset)
    # A consumer that reads DLPack 1.x gets a versioned capsule (numpy marks legacy imports read-only).
    version = None if max_version is None or tuple(max_version) < (1, 0) else tuple(max_version)
    return kernel(*args, max_version=version) if stream is None else kernel(*args, max_version=version, stream=stream)


def _host_device():
    """The device host memory is imported into: the default device when it holds host memory, else cpu()."""
    default = backends.default_device()
    if default.enabled() and default.optional("dlpack_import") is not None:
        if tuple(default.dlpack_device(default.Array(0, "float32"))) == (CPU, 0):
            return default
    return backends.cpu()


def _target(dl_device):
    kind, index = dl_device
    if kind == CPU:
        return _host_device()
    if kind == CUDA:
        return backends.cuda(index)
    raise BufferError(f"needle.from_dlpack: the tensor is on {_device_name(dl_device)}, for which needle has no "
                      f"backend (host memory and CUDA are supported); copy it to the host first")


def adopt(obj, device=None, copy=None):
    """Where and how the memory of ``obj`` (anything with ``__dlpack__``/``__dlpack_device__``) comes in:
    ``(device, (handle, shape, strides, offset))`` when ``device``'s backend adopts it (a view over it),
    or ``(device, numpy_array)`` for host memory that must be copied to a device that cannot hold it
    (``copy=False`` refuses that). ``NDArray``'s ``from_dlpack`` builds the array from either.
    """
    if not (hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__")):
        raise TypeError(f"needle.from_dlpack: expected an object with __dlpack__ and __dlpack_device__ (a numpy "
                        f"array, a PyTorch or CuPy tensor, a needle Tensor), got {type(obj).__name__}")
    source = tuple(int(x) for x in obj.__dlpack_device__())
    target = _target(source) if device is None else device
    if not target.enabled():
        raise backends.DeviceUnavailableError(f"needle.from_dlpack: the tensor is on {_device_name(source)}, and "
                                              f"device {target!r} cannot be used: {target.disabled_reason}")
    importer = target.optional("dlpack_import")
    here = tuple(target.dlpack_device(target.Array(0, "float32"))) if importer is not None else None
    if here != source:
        if copy is False or source[0] != CPU:
            raise BufferError(f"needle.from_dlpack: the tensor is on {_device_name(source)}, device {target!r} "
                              f"cannot adopt that memory" + (" and copy=False forbids a copy" if copy is False else
                                                             "; import it on its own device, then .to(device)"))
        return target, np.from_dlpack(obj)
    return target, importer(obj)


def to_numpy_view(array):
    """A numpy array sharing the memory of ``array`` (host memory, no negative stride), else ValueError."""
    try:
        here = device_of(array)
    except BufferError as exc:
        raise ValueError(f"numpy(copy=False): {exc}") from None
    if here[0] != CPU:
        raise ValueError(f"numpy(copy=False): the array is on {array.device!r} ({_device_name(here)}), not in host "
                         f"memory; numpy() copies it to the host")
    if any(s < 0 for s in array.strides):
        raise ValueError("numpy(copy=False): a view with a negative stride (a flip) cannot be shared; numpy() copies "
                         "it, or call .compact() first")
    return np.from_dlpack(array)
