"""Registration: the entry point gives needle a usable "cpu" backend with the protocol surface."""
import numpy as np

import needle
from needle.backend_ndarray import protocol


def test_device_enabled_and_default():
    dev = needle.device("cpu")
    assert dev.enabled(), dev.disabled_reason
    assert needle.cpu() == dev
    assert set(dev.dtypes) == {"float32", "float64", "int32", "int64", "uint8", "bool"}  # protocol 2


def test_protocol_surface():
    from needle_cpu import _backend
    assert _backend.PROTOCOL_VERSION == protocol.PROTOCOL_VERSION
    assert protocol.missing_kernels(_backend) == []
    provided = {"ewise_sub", "scalar_rsub", "scalar_rdiv", "ewise_neg", "ewise_sqrt", "ewise_sigmoid", "ewise_relu",
                "ewise_power", "matmul_batched"}
    assert provided <= set(protocol.optional_kernels(_backend))
    assert _backend.unavailable_reason() is None and _backend.device_count() == 1


def test_course_names_reachable_through_device():
    dev = needle.device("cpu")
    assert dev.__tile_size__ == 8
    assert callable(dev.matmul_tiled)
    x = dev.randn(3, 4)
    assert x.device == dev and np.asarray(x).shape == (3, 4)
