"""needle.distributed: data-parallel training over processes and machines.

Launch with ``mpiexec -n 4 python train.py``; without a launcher the world has one rank and every
call below still works. MPI (mpi4py) carries CPU tensors; NCCL (CuPy) carries GPU ones.

    import needle.distributed as dist
    dist.init()
    model = dist.DistributedDataParallel(build_model())       # rank 0's weights everywhere
    loader = dist.DistributedDataLoader(train_set, batch_size=64, seed=0)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for x, y in loader:
            loss = loss_fn(model(x), y)
            opt.reset_grad(); loss.backward()
            model.all_reduce_gradients()                      # averaged, bucketed
            opt.step()
        print(dist.all_reduce_mean(loss.item()))              # the same on every rank
    dist.save_on_main(model.state_dict(), "ckpt.npz")         # rank 0 writes
"""
from ._data import DistributedDataLoader, DistributedSampler
from ._ddp import DistributedDataParallel, broadcast_parameters
from ._errors import DistributedError, DistributedTimeoutError
from ._reducer import GradientAllReducer
from ._metrics import all_reduce_mean, all_reduce_sum, save_on_main
from ._runtime import (
    TIMEOUT_ENV, backend, barrier, device, get_communicator, init, is_initialized, is_main, local_rank, rank,
    world_size,
)
from .version import __version__

DDP = DistributedDataParallel

__all__ = [
    "DDP", "DistributedDataLoader", "DistributedDataParallel", "DistributedError", "DistributedSampler",
    "DistributedTimeoutError", "GradientAllReducer", "TIMEOUT_ENV", "__version__", "all_reduce_mean",
    "all_reduce_sum", "backend", "barrier", "broadcast_parameters", "device", "get_communicator", "init",
    "is_initialized", "is_main", "local_rank", "rank", "save_on_main", "world_size",
]
