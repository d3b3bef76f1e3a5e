"""Run by test_dist_mpi.py under mpiexec: GradientAllReducer on gradients set by hand (no prepared backward).

Rank r sets every gradient to r + 1 and reduces with weight r + 1, then with no weight, then runs
two reducers on one communicator (see below); rank 0 writes what it got to OUT/reducer.json. Tiny
buckets: one parameter per bucket, and two dtypes.

``reducer_worker.py OUT die|die-catch``: rank 1 exits before the all-reduce; rank 0's last bucket
(run on its own thread) must hit the deadline: ``die`` under ``abort_on_error`` (the job is
aborted with the timeout message), ``die-catch`` without it (rank 0 catches the error and says so).
"""
import json
import os
import sys
from pathlib import Path

import numpy as np

import needle as ndl
import needle.distributed as dist


def die(mode):
    dist.init(abort_on_error=mode == "die")
    params = [ndl.nn.Parameter(np.zeros(1000, dtype=np.float32)) for _ in range(3)]
    reducer = dist.GradientAllReducer(params)
    for p in params:
        p.grad = ndl.Tensor(np.ones(1000, dtype=np.float32), requires_grad=False)
    dist.barrier()
    if dist.rank() == 1:
        os._exit(3)
    try:
        reducer.all_reduce_gradients()
    except dist.DistributedTimeoutError as exc:
        print(f"caught DistributedTimeoutError: {exc}", flush=True)
        os._exit(4)  # the collective thread is stuck in MPI: no clean shutdown
    print("all-reduce returned", flush=True)


def main():
    if len(sys.argv) > 2:
        return die(sys.argv[2])
    out = Path(sys.argv[1])
    comm = dist.init()
    r = comm.rank
    shapes = [(3, 2), (5,), (4, 4)]
    params = [ndl.nn.Parameter(np.zeros(s, dtype=np.float32)) for s in shapes]
    params.append(ndl.nn.Parameter(np.zeros(3), dtype="float64", device=ndl.cpu_numpy()))
    reducer = dist.GradientAllReducer(params, bucket_mb=60 / 2**20)
    got = {"buckets": len(reducer.buckets)}
    for name, weight in (("weighted", r + 1.0), ("mean", None)):
        for p in params:
            p.grad = ndl.Tensor(np.full(p.shape, r + 1.0), dtype=p.dtype, device=p.device, requires_grad=False)
        reducer.all_reduce_gradients(weight=weight)
        got[name] = [p.grad.numpy().tolist() for p in params]
        got[name + "_dtypes"] = [str(p.grad.dtype) for p in params]
    # Two reducers on one communicator: A's buckets start during its backward (on the collective
    # thread); B reduces hand-set gradients (on this thread) before A is waited for. Same order on
    # every rank, so the sums must match up: A's mean is that of 1..P, B's of 10..10P.
    a = [ndl.nn.Parameter(np.ones(s, dtype=np.float32)) for s in shapes]
    b = [ndl.nn.Parameter(np.zeros(s, dtype=np.float32)) for s in shapes]
    reducer_a = dist.GradientAllReducer(a, bucket_mb=60 / 2**20)
    reducer_b = dist.GradientAllReducer(b)
    for p in b:
        p.grad = ndl.Tensor(np.full(p.shape, 10.0 * (r + 1)), dtype=p.dtype, requires_grad=False)
    reducer_a.prepare()
    sum((p * (r + 1.0)).sum() for p in a).backward()
    reducer_b.all_reduce_gradients()
    reducer_a.all_reduce_gradients()
    got["two_reducers"] = [[p.grad.numpy().tolist() for p in a], [p.grad.numpy().tolist() for p in b]]
    if r == 0:
        (out / "reducer.json").write_text(json.dumps(got))


if __name__ == "__main__":
    main()
