"""needle.distributed in one process (no launcher): buckets, flat-buffer copies, world size 1."""
import numpy as np
import pytest

import needle as ndl
import needle.distributed as dist
from needle.distributed import _buffers as fb
from needle.distributed._comm import LocalCommunicator


def _param(shape, dtype="float32", seed=0):
    values = np.random.default_rng(seed).standard_normal(shape)
    device = ndl.cpu_numpy() if dtype == "float64" else None  # not every backend has float64
    return ndl.nn.Parameter(values.astype(dtype), dtype=dtype, device=device)


def test_dist_plan_buckets_respects_size_dtype_and_reverse_order():
    params = [_param((10, 10)), _param((5,)), _param((3,), "float64"), _param((100,)), _param((2, 2))]
    buckets = fb.plan_buckets(params, bucket_bytes=420)
    # float32 in reverse order: (2,2)=16 B + (100,)=400 B fit in 420; + (5,)=20 B would not; then
    # (5,) + (10,10)=400 B fill the next one exactly. float64 goes to its own bucket.
    layout = [(b.dtype, [tuple(p.shape) for p in b.params]) for b in buckets]
    assert layout == [("float32", [(2, 2), (100,)]), ("float32", [(5,), (10, 10)]), ("float64", [(3,)])]
    assert sorted(id(p) for b in buckets for p in b.params) == sorted(id(p) for p in params)
    assert buckets[1].offsets == [0, 5, 105] and buckets[1].nbytes == 420


def test_dist_plan_buckets_reserves_the_weight_slot_in_the_first_bucket():
    buckets = fb.plan_buckets([_param((3,)), _param((4,))], bucket_bytes=1 << 20, extra_first=1)
    assert len(buckets) == 1 and buckets[0].numel == 8 and buckets[0].offsets[-1] == 7


def test_dist_pack_and_unpack_round_trip_non_compact_views():
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    array = ndl.Tensor(base).realize_cached_data().permute((1, 0))  # a strided view
    out = np.zeros(30, dtype=np.float32)
    fb.pack_host(array, out[3:27])
    assert np.array_equal(out[3:27], base.T.reshape(-1))
    back = fb.unpack_host(out[3:27], array)
    assert back.shape == (6, 4) and np.array_equal(back.numpy(), base.T)


def test_dist_layout_signature_tells_models_apart():
    a = fb.layout_signature([_param((2, 3)), _param((3,))])
    assert np.array_equal(a, fb.layout_signature([_param((2, 3), seed=1), _param((3,), seed=2)]))
    assert not np.array_equal(a, fb.layout_signature([_param((3, 2)), _param((3,))]))
    assert not np.array_equal(a, fb.layout_signature([_param((2, 3)), _param((3,), "float64")]))


def test_dist_world_of_one_without_launcher(tmp_path):
    comm = dist.init()
    assert dist.init() is comm  # idempotent
    assert (dist.rank(), dist.world_size(), dist.is_main()) == (0, 1, True)
    assert dist.all_reduce_mean(2.5) == 2.5
    assert np.allclose(dist.all_reduce_mean(np.array([1.0, 3.0]), weight=4), [1.0, 3.0])
    assert dist.all_reduce_sum(ndl.Tensor(np.array([1.5, 2.0], dtype=np.float32))).tolist() == [1.5, 2.0]

    np.random.seed(0)
    model = ndl.nn.Sequential(ndl.nn.Linear(3, 4), ndl.nn.ReLU(), ndl.nn.Linear(4, 2))
    before = {k: v.copy() for k, v in model.state_dict().items()}
    ddp = dist.DistributedDataParallel(model)
    x = ndl.Tensor(np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32), requires_grad=False)
    loss = ddp(x).sum()
    loss.backward()
    grads = [p.grad.numpy().copy() for p in model.parameters()]
    ddp.all_reduce_gradients()  # one rank: the average is the gradient itself
    assert ddp.last_batch_size == 5
    assert all(np.array_equal(g, p.grad.numpy()) for g, p in zip(grads, model.parameters()))
    assert all(np.array_equal(before[k], v) for k, v in ddp.state_dict().items())

    path = tmp_path / "ckpt.npz"
    assert dist.save_on_main(ddp, path) is True
    assert set(ndl.nn.load(path)) == set(before)


def test_dist_local_communicator_and_argument_errors():
    comm = LocalCommunicator()
    with pytest.raises(dist.DistributedError, match="root=1"):
        comm.bcast(np.zeros(2), root=1)
    with pytest.raises(dist.DistributedError, match="backend must be one of"):
        dist.init(backend="gloo")
    with pytest.raises(TypeError, match="needle.nn.Module"):
        dist.DistributedDataParallel(object())
    with pytest.raises(dist.DistributedError, match="average must be"):
        dist.DistributedDataParallel(ndl.nn.Linear(2, 2), average="sum")
    with pytest.raises(dist.DistributedError, match="weights sum to 0"):
        dist.all_reduce_mean(1.0, weight=0)


def _fake_cupy(monkeypatch, nccl_available=True, gpus=1):
    """Stand-ins for cupy, cupy.cuda and cupy.cuda.nccl with just what NCCLCommunicator asks first."""
    import sys
    import types

    cupy, cuda, nccl = types.ModuleType("cupy"), types.ModuleType("cupy.cuda"), types.ModuleType("cupy.cuda.nccl")
    nccl.available = nccl_available
    cuda.nccl = nccl
    cuda.runtime = types.SimpleNamespace(getDeviceCount=lambda: gpus)
    cupy.cuda = cuda
    for name, module in (("cupy", cupy), ("cupy.cuda", cuda), ("cupy.cuda.nccl", nccl)):
        monkeypatch.setitem(sys.modules, name, module)


def test_dist_nccl_without_cupy_is_a_clear_error(monkeypatch):
    import sys

    from needle.distributed import _runtime
    from needle.distributed._comm import NCCLCommunicator

    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError, GPU machine or not
    expected = r"backend 'nccl' needs CuPy with NCCL \(pip install \"needle-dist\[cuda12\]\".*failed to import"
    with pytest.raises(dist.DistributedError, match=expected + ": ModuleNotFoundError"):
        NCCLCommunicator(LocalCommunicator(timeout=5))
    assert _runtime._nccl_available() is False  # so backend "auto" stays on MPI


def test_dist_nccl_without_libnccl_or_gpu_is_a_clear_error(monkeypatch):
    from needle.distributed import _runtime
    from needle.distributed._comm import NCCLCommunicator

    _fake_cupy(monkeypatch, nccl_available=False)
    with pytest.raises(dist.DistributedError, match="CuPy found no NCCL library .pip install nvidia-nccl-cu12"):
        NCCLCommunicator(LocalCommunicator(timeout=5))
    assert _runtime._nccl_available() is False
    _fake_cupy(monkeypatch, nccl_available=True, gpus=0)
    assert _runtime._nccl_available() is True
    with pytest.raises(dist.DistributedError, match="no CUDA GPU is visible; use backend='mpi'"):
        NCCLCommunicator(LocalCommunicator(timeout=5))


# ---- zero-copy buckets and no_sync in a world of one ------------------------------------------------------
def test_dist_copy_scaled_reads_strided_views_and_view_host_shares_bucket_memory():
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    array = ndl.Tensor(base).realize_cached_data().permute((1, 0))  # (4, 3), strided
    bucket = np.zeros(16, dtype=np.float32)
    fb.copy_scaled(array, bucket[2:14], 0.5)
    np.testing.assert_array_equal(bucket[2:14], 0.5 * base.T.reshape(-1))
    fb.copy_scaled(array, bucket[2:14], 2.0, accumulate=True)
    np.testing.assert_array_equal(bucket[2:14], 2.5 * base.T.reshape(-1))
    view = fb.view_host(bucket[2:14], array)
    assert view.shape == (4, 3) and view.dtype == "float32"
    bucket[2] = -7.0  # no copy: the needle array reads the bucket's memory
    assert view.numpy()[0, 0] == -7.0


def _linear_sum_loss(model, x):
    # L = mean over the batch of the sum of the outputs: dL/dW = mean_n x_n (x) 1, dL/db = 1.
    return model(ndl.Tensor(x, requires_grad=False)).sum() * (1.0 / x.shape[0])


@pytest.mark.parametrize("average", ["batch", "rank"])
def test_dist_no_sync_accumulates_micro_batches_in_a_world_of_one(average):
    x = np.random.default_rng(3).standard_normal((5, 3)).astype(np.float32)
    model = ndl.nn.Linear(3, 2)
    ddp = dist.DistributedDataParallel(model, average=average)
    parts = [x[0:2], x[2:4], x[4:5]]
    for part in parts[:-1]:
        with ddp.no_sync():
            _linear_sum_loss(ddp, part).backward()
    _linear_sum_loss(ddp, parts[-1]).backward()
    ddp.all_reduce_gradients()
    if average == "batch":  # exactly one batch of all 5 rows
        mean_x, bias_grad = x.mean(axis=0), np.ones((1, 2))
    else:  # PyTorch's sum over micro-batches
        mean_x, bias_grad = sum(p.mean(axis=0) for p in parts), 3 * np.ones((1, 2))
    np.testing.assert_allclose(model.weight.grad.numpy(), np.outer(mean_x, np.ones(2)), rtol=1e-5)
    np.testing.assert_allclose(model.bias.grad.numpy(), bias_grad, rtol=1e-6)
    assert ddp.reducer.last_step["micro_batches"] == 3
    # The next step starts afresh: one batch, no accumulation, the gradient backward made.
    _linear_sum_loss(ddp, x).backward()
    ddp.all_reduce_gradients()
    np.testing.assert_allclose(model.weight.grad.numpy(), np.outer(x.mean(axis=0), np.ones(2)), rtol=1e-5)


def test_dist_reducer_close_unregisters_its_hooks():
    from needle import _grad_hooks

    model = ndl.nn.Linear(3, 2)
    reducer = dist.GradientAllReducer(model.parameters())
    assert all(id(p) in _grad_hooks._HOOKS for p in model.parameters())
    reducer.close()
    reducer.close()
    assert not any(_grad_hooks._HOOKS.get(id(p)) for p in model.parameters())


def test_dist_reducer_misuse_is_a_clear_error():
    model = ndl.nn.Linear(3, 2)
    ddp = dist.DistributedDataParallel(model)
    with pytest.raises(dist.DistributedError, match="inside no_sync"):
        with ddp.no_sync():
            ddp.all_reduce_gradients()
    with pytest.raises(dist.DistributedError, match="weight must be >= 0"):
        ddp.reducer.prepare(-1)
    with pytest.raises(dist.DistributedError, match="bucket_mb must be positive"):
        dist.GradientAllReducer(model.parameters(), bucket_mb=0)
