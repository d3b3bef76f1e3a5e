"""DLPack in core: a backend without the DLPack kernels refuses clearly, and host memory lands on a host device.

The exchange itself is tested on every backend by the conformance suite (test_conformance_dlpack.py).
"""
import numpy as np
import pytest

import needle as ndl
from needle.testing._backends import register_reference_backend


def test_backend_without_dlpack_kernels_raises_buffer_error():
    ref = register_reference_backend()
    t = ndl.Tensor(np.ones(3, dtype="float32"), device=ref, requires_grad=False)
    with pytest.raises(BufferError, match="reference.*DLPack"):
        t.__dlpack__()
    with pytest.raises(BufferError, match="reference.*DLPack"):
        np.from_dlpack(t)
    with pytest.raises(ValueError, match="numpy\\(copy=False\\).*reference"):
        t.numpy(copy=False)
    np.testing.assert_array_equal(t.numpy(), np.ones(3))  # the copy still works
    with pytest.raises(BufferError, match="cannot adopt"):
        ndl.from_dlpack(np.ones(3, dtype="float32"), device=ref, copy=False)
    u = ndl.from_dlpack(np.arange(3, dtype="float32"), device=ref)  # host memory, copied to the device
    np.testing.assert_array_equal(u.numpy(), np.arange(3))


def test_host_memory_goes_to_a_host_device_by_default():
    t = ndl.from_dlpack(np.arange(4, dtype="float32"))
    assert t.device.backend_name in ("numpy", "cpu")
    assert t.__dlpack_device__() == (1, 0)
    assert not t.requires_grad
    assert ndl.from_dlpack(np.arange(4, dtype="float32"), requires_grad=True).requires_grad
