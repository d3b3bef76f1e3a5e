"""NCCL on a GPU (one rank: NCCL refuses two ranks on one GPU). Skipped, with the reason, without CuPy,
NCCL or a GPU; run by packages/needle-cuda/tools/gpu_check.sh on a machine with one.

The oracle is numpy: a one-rank sum leaves a buffer as it was, and the device packing used for the
gradient buckets must copy a strided CUDA array's elements in row-major order.
"""
import numpy as np
import pytest

import needle as ndl
from needle.distributed import DistributedError
from needle.distributed import _buffers as fb
from needle.distributed._comm import LocalCommunicator, NCCLCommunicator, _import_nccl


def _why_not():
    try:
        _import_nccl()
    except DistributedError as exc:
        return str(exc)
    if not ndl.cuda().enabled():
        return f"the cuda backend is not usable: {ndl.cuda().disabled_reason}"
    return None


pytestmark = pytest.mark.skipif(_why_not() is not None, reason=f"needs CuPy, NCCL and a GPU: {_why_not()}")


@pytest.fixture(scope="module")
def comm():
    return NCCLCommunicator(LocalCommunicator(timeout=60))


def test_dist_nccl_one_rank_allreduce_and_bcast(comm):
    import cupy as cp

    values = np.arange(7, dtype=np.float32) - 2.5
    buf = cp.asarray(values)
    comm.allreduce(buf, "test all-reduce")
    np.testing.assert_array_equal(cp.asnumpy(buf), values)  # the sum over one rank
    b64 = cp.asarray(values.astype(np.float64) * 3)
    comm.bcast(b64, 0, "test broadcast")
    np.testing.assert_array_equal(cp.asnumpy(b64), values.astype(np.float64) * 3)
    with pytest.raises(DistributedError, match="unsupported dtype float16"):
        comm.allreduce(cp.zeros(3, dtype=cp.float16))


def test_dist_pack_and_unpack_device_round_trip_strided_cuda_arrays(comm):
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    array = ndl.Tensor(base, device=ndl.cuda()).realize_cached_data().permute((1, 0))  # a strided view
    out = comm.empty(30, "float32")
    out[:] = -1
    fb.pack_device(array, out[3:27])
    host = out.get()
    np.testing.assert_array_equal(host[3:27], base.T.reshape(-1))
    assert (host[:3] == -1).all() and (host[27:] == -1).all()
    back = fb.unpack_device(out[3:27], array)
    assert back.shape == (6, 4) and back.device == ndl.cuda()
    np.testing.assert_array_equal(back.numpy(), base.T)
