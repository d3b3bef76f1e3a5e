"""Strided n-dimensional arrays over the backend protocol (often imported as ``nd``)."""
from .. import _device
from ..backends import all_devices, cpu, cpu_numpy, cuda, default_device, device
from .._device import BackendDevice
from . import ndarray as _ndarray
from .ndarray import NDArray, array, broadcast_shapes, compact_strides, empty, full, prod

_device.use_array_module(_ndarray)  # devices' factories (empty, full, rand, ...) make NDArrays

__all__ = [
    "NDArray", "array", "empty", "full", "prod", "compact_strides", "broadcast_shapes",
    "cpu", "cuda", "cpu_numpy", "device", "default_device", "all_devices", "BackendDevice",
]
