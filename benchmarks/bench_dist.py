"""needle.distributed benchmarks on this machine (loopback only).

    python benchmarks/bench_dist.py [--json out.json] [--ranks 1 2] [--steps 60]

1. Scaling of data-parallel training (weak scaling: ``--batch`` samples per rank, so the global
   batch grows with the ranks): images/s with P ranks, efficiency = rate(P) / (P * rate(1)), and
   the share of each step spent in the gradient all-reduce. Each configuration gives every rank
   cores // P kernel threads (NEEDLE_CPU_THREADS), so all of them use the whole machine.
2. All-reduce bandwidth with 2 ranks: needle-dist's bucketed gradient all-reduce (packing the
   gradients into flat buffers, averaging, unpacking into new .grad tensors) against a raw
   mpi4py ``Allreduce`` of one buffer of the same bytes, and against one call per parameter.

The script launches itself under mpiexec (``--worker``); rank 0 prints one JSON line per result.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

MARK = "BENCH_DIST_RESULT "
MB = 1 << 20


# ---- workers (run under mpiexec) ------------------------------------------------------------------
def _worker_train(args):
    import needle as ndl
    import needle.distributed as dist
    import needle.nn as nn
    import needle.optim as optim
    from needle.data import NDArrayDataset

    dist.init()
    rng = np.random.default_rng(0)
    n = args.batch * dist.world_size() * args.steps
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, size=n).astype(np.float32)
    np.random.seed(0)
    model = dist.DistributedDataParallel(nn.Sequential(nn.Linear(784, args.hidden), nn.ReLU(),
                                                       nn.Linear(args.hidden, args.hidden), nn.ReLU(),
                                                       nn.Linear(args.hidden, 10)))
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.SoftmaxLoss()
    loader = dist.DistributedDataLoader(NDArrayDataset(x, y), batch_size=args.batch, seed=0)
    comm_s, steps = 0.0, 0
    dist.barrier()
    for i, (xb, yb) in enumerate(loader):
        if i == args.warmup:  # the clock starts after the warm-up steps, on all ranks together
            dist.barrier()
            start, comm_s, steps = time.perf_counter(), 0.0, 0
        loss = loss_fn(model(xb), yb)
        opt.reset_grad()
        loss.backward(create_graph=False)
        t = time.perf_counter()
        model.all_reduce_gradients()
        comm_s += time.perf_counter() - t
        opt.step()
        steps += 1
    dist.barrier()
    elapsed = time.perf_counter() - start
    comm_share = dist.all_reduce_mean(comm_s / elapsed)
    if dist.is_main():
        _emit(dict(kind="train", ranks=dist.world_size(), threads_per_rank=os.environ.get("NEEDLE_CPU_THREADS"),
                   device=str(ndl.default_device()), hidden=args.hidden, batch_per_rank=args.batch, steps=steps,
                   seconds=elapsed, images_per_s=steps * args.batch * dist.world_size() / elapsed,
                   allreduce_share=comm_share, gradient_mb=model.reducer.nbytes / MB))


def _worker_allreduce(args):
    from mpi4py import MPI

    import needle as ndl
    import needle.distributed as dist

    comm = dist.init()
    raw = MPI.COMM_WORLD.Dup()
    for total_mb in args.sizes_mb:
        # Gradients as a model would have them: 32 tensors of equal size, float32.
        count = max(1, int(total_mb * MB / 4 / 32))
        params = [ndl.nn.Parameter(np.ones(count, dtype=np.float32)) for _ in range(32)]
        for p in params:
            p.grad = ndl.Tensor(np.full(count, comm.rank + 1.0, dtype=np.float32), requires_grad=False)
        nbytes = 32 * count * 4
        variants = {
            "needle_bucketed_25mb": dist.GradientAllReducer(params, bucket_mb=25).all_reduce_gradients,
            "needle_per_parameter": dist.GradientAllReducer(params, bucket_mb=count * 4 / MB).all_reduce_gradients,
        }
        buf = np.ones(32 * count, dtype=np.float32)
        variants["raw_mpi4py_Allreduce"] = lambda buf=buf: raw.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        results = {}
        for name, fn in variants.items():
            times = []
            for _ in range(args.repeats):
                raw.Barrier()
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            worst = raw.allreduce(float(np.median(times)), op=MPI.MAX)  # the slowest rank sets the pace
            results[name] = worst
        if comm.rank == 0:
            p = comm.size
            _emit(dict(kind="allreduce", ranks=p, mb=nbytes / MB, tensors=32, **{
                name: dict(median_ms=t * 1e3, algbw_gb_s=nbytes / t / 1e9,
                           busbw_gb_s=2 * (p - 1) / p * nbytes / t / 1e9)
                for name, t in results.items()}))


def _emit(record):
    print(MARK + json.dumps(record), flush=True)


# ---- driver ----------------------------------------------------------------------------------------
def _launch(nproc, worker_args, threads, timeout):
    from needle.distributed.launch import mpiexec_command

    env = dict(os.environ, NEEDLE_CPU_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    cmd = mpiexec_command(nproc, [sys.executable, os.path.abspath(__file__), "--worker", *worker_args])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return [json.loads(line[len(MARK):]) for line in proc.stdout.splitlines() if line.startswith(MARK)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per configuration")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64, help="per rank")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[0.4, 4, 25, 100])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--worker", choices=["train", "allreduce"])
    args = parser.parse_args(argv)
    if args.worker == "train":
        args.steps += args.warmup
        return _worker_train(args)
    if args.worker == "allreduce":
        return _worker_allreduce(args)

    try:
        import mpi4py  # noqa: F401

        import needle.distributed  # noqa: F401
        from needle.distributed.launch import find_mpiexec
        if find_mpiexec() is None:
            raise ImportError("no mpiexec (pip install mpich)")
    except ImportError as exc:
        record = {"skipped": f"needle-dist/mpi4py/mpiexec not installed: {exc}"}
        print(record["skipped"])
        if args.json:
            with open(args.json, "w") as f:
                json.dump(record, f, indent=2)
        return record

    cores = os.cpu_count() or 1
    common = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch),
              "--hidden", str(args.hidden)]
    train = []
    for p in args.ranks:
        train += _launch(p, ["train", *common], threads=max(1, cores // p), timeout=600)
    base = next((r["images_per_s"] for r in train if r["ranks"] == 1), None)
    print(f"data-parallel MLP 784-{args.hidden}-{args.hidden}-10, {args.batch} images per rank per step, "
          f"{cores} cores on this machine")
    for r in train:
        r["efficiency"] = r["images_per_s"] / (r["ranks"] * base) if base else None
        eff = f"{r['efficiency']:.2f}" if base else "n/a"
        print(f"  {r['ranks']} rank(s) x {r['threads_per_rank']} thread(s): {r['images_per_s']:8.0f} images/s, "
              f"efficiency {eff}, all-reduce {100 * r['allreduce_share']:.1f}% of the step ({r['gradient_mb']:.2f} MB)")
    allreduce = _launch(2, ["allreduce", "--sizes-mb", *map(str, args.sizes_mb), "--repeats", str(args.repeats)],
                        threads=1, timeout=600)
    print("all-reduce, 2 ranks, 32 float32 tensors (median ms | algorithm bandwidth GB/s)")
    for r in allreduce:
        cells = " | ".join(f"{k}: {v['median_ms']:.3f} ms {v['algbw_gb_s']:.2f} GB/s"
                           for k, v in r.items() if isinstance(v, dict))
        print(f"  {r['mb']:7.2f} MB  {cells}")
    result = {"cores": cores, "train": train, "allreduce": allreduce}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
