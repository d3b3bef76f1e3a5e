"""needle.distributed benchmarks on this machine (loopback only).

    python benchmarks/bench_dist.py [--json out.json] [--ranks 1 2] [--steps 60]

1. Scaling of data-parallel training (weak scaling: ``--batch`` samples per rank, so the global
   batch grows with the ranks): images/s with P ranks, efficiency = rate(P) / (P * rate(1)), and
   the share of each step spent in the gradient all-reduce. Each configuration gives every rank
   cores // P kernel threads (NEEDLE_CPU_THREADS), so all of them use the whole machine.
   Two-rank runs go once without and once with overlap (each bucket's all-reduce started by the
   gradient-ready hook during backward): step time, and the measured overlap fraction (the share of
   the all-reduce time that ran before ``all_reduce_gradients()`` was called).
2. All-reduce with 2 ranks, 32 float32 tensors: needle-dist's bucketed all-reduce with the gradients
   delivered into the buckets by backward (``needle_in_bucket``), with ``.grad`` set by hand
   (``needle_one_copy``: the call copies them in) and one bucket per tensor, against one raw mpi4py
   ``Allreduce`` of one buffer of the same bytes, interleaved in the same run; ratio = raw / needle.
   Load averages before and after each launch are printed: the numbers move with the load.

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
    layers = [nn.Linear(784, args.hidden), nn.ReLU()]
    for _ in range(args.layers - 1):
        layers += [nn.Linear(args.hidden, args.hidden), nn.ReLU()]
    model = dist.DistributedDataParallel(nn.Sequential(*layers, nn.Linear(args.hidden, 10)),
                                         bucket_mb=args.bucket_mb, overlap=args.overlap == "on")
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.SoftmaxLoss()
    loader = dist.DistributedDataLoader(NDArrayDataset(x, y), batch_size=args.batch, seed=0)
    wait_s, steps, fractions, comm_s = 0.0, 0, [], 0.0
    dist.barrier()
    for i, (xb, yb) in enumerate(loader):
        if i == args.warmup:  # the clock starts after the warm-up steps, on all ranks together
            dist.barrier()
            start, wait_s, steps, fractions, comm_s = time.perf_counter(), 0.0, 0, [], 0.0
        loss = loss_fn(model(xb), yb)
        opt.reset_grad()
        loss.backward(create_graph=False)
        t = time.perf_counter()
        model.all_reduce_gradients()
        wait_s += time.perf_counter() - t
        stats = model.reducer.overlap_stats()
        if stats:
            fractions.append(stats["overlap_fraction"])
            comm_s += stats["comm_s"]
        opt.step()
        steps += 1
    dist.barrier()
    elapsed = time.perf_counter() - start
    wait_share = dist.all_reduce_mean(wait_s / elapsed)
    fraction = dist.all_reduce_mean(float(np.mean(fractions)) if fractions else 0.0)
    if dist.is_main():
        _emit(dict(kind="train", ranks=dist.world_size(), overlap=args.overlap,
                   threads_per_rank=os.environ.get("NEEDLE_CPU_THREADS"), device=str(ndl.default_device()),
                   hidden=args.hidden, batch_per_rank=args.batch, steps=steps, seconds=elapsed,
                   step_ms=1e3 * elapsed / steps, images_per_s=steps * args.batch * dist.world_size() / elapsed,
                   allreduce_wait_share=wait_share, overlap_fraction=fraction,
                   allreduce_ms_per_step=1e3 * comm_s / max(1, len(fractions)),
                   gradient_mb=model.reducer.nbytes / MB, buckets=len(model.reducer.buckets)))


def _worker_allreduce(args):
    from mpi4py import MPI

    import needle as ndl
    import needle.distributed as dist
    from needle._grad_hooks import grad_ready

    comm = dist.init()
    raw = MPI.COMM_WORLD.Dup()
    for total_mb in args.sizes_mb:
        # Gradients as a model would have them: 32 tensors of equal size, float32.
        count = max(1, int(total_mb * MB / 4 / 32))
        nbytes = 32 * count * 4
        grads = [ndl.Tensor(np.full(count, comm.rank + 1.0, dtype=np.float32), requires_grad=False)
                 for _ in range(32)]

        def make(bucket_mb, overlap=False):
            params = [ndl.nn.Parameter(np.ones(count, dtype=np.float32)) for _ in range(32)]
            return params, dist.GradientAllReducer(params, bucket_mb=bucket_mb, overlap=overlap)

        in_params, in_bucket = make(25)
        copy_params, one_copy = make(25)
        per_params, per_parameter = make(count * 4 / MB)

        def backward_into_buckets():
            # What loss.backward() does for each parameter, last layer first: set .grad, run its
            # gradient-ready hooks (the reducer's copies it into the bucket, scaled by 1/ranks).
            in_bucket.prepare()
            for p, g in zip(reversed(in_params), reversed(grads)):
                p.grad = g
                grad_ready(p)

        def set_by_hand(params):
            for p, g in zip(params, grads):
                p.grad = g

        buf = np.ones(32 * count, dtype=np.float32)
        variants = {  # name: (untimed set-up, timed call)
            "raw_mpi4py_Allreduce": (None, lambda: raw.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)),
            "needle_in_bucket": (backward_into_buckets, in_bucket.all_reduce_gradients),
            "needle_one_copy": (lambda: set_by_hand(copy_params), one_copy.all_reduce_gradients),
            "needle_per_parameter": (lambda: set_by_hand(per_params), per_parameter.all_reduce_gradients),
        }
        times = {name: [] for name in variants}
        for _ in range(args.repeats):  # variants interleaved: a load change hits all of them alike
            for name, (setup, fn) in variants.items():
                if setup is not None:
                    setup()
                raw.Barrier()
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        # The slowest rank sets the pace of each repeat.
        results = {}
        for name, ts in times.items():
            ts = np.array(ts)
            raw.Allreduce(MPI.IN_PLACE, ts, op=MPI.MAX)
            results[name] = ts
        if comm.rank == 0:
            p = comm.size
            raw_t = results["raw_mpi4py_Allreduce"]
            record = dict(kind="allreduce", ranks=p, mb=nbytes / MB, tensors=32, repeats=args.repeats)
            for name, ts in results.items():
                ratio = raw_t / ts  # per repeat: raw and needle ran back to back
                record[name] = dict(median_ms=float(np.median(ts)) * 1e3, min_ms=float(ts.min()) * 1e3,
                                    max_ms=float(ts.max()) * 1e3, algbw_gb_s=nbytes / float(np.median(ts)) / 1e9,
                                    busbw_gb_s=2 * (p - 1) / p * nbytes / float(np.median(ts)) / 1e9,
                                    ratio_raw_over_this=float(np.median(ratio)),
                                    ratio_min=float(ratio.min()), ratio_max=float(ratio.max()))
            _emit(record)


def _emit(record):
    print(MARK + json.dumps(record), flush=True)


# ---- driver ----------------------------------------------------------------------------------------
def _launch(nproc, worker_args, threads, timeout):
    from needle.distributed.launch import mpiexec_command

    env = dict(os.environ, NEEDLE_CPU_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    cmd = mpiexec_command(nproc, [sys.executable, os.path.abspath(__file__), "--worker", *worker_args])
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    records = [json.loads(line[len(MARK):]) for line in proc.stdout.splitlines() if line.startswith(MARK)]
    for r in records:
        r["load_before"], r["load_after"] = load, os.getloadavg()[0]
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per configuration")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64, help="per rank")
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=2, help="hidden layers of the MLP")
    parser.add_argument("--bucket-mb", type=float, default=1.0, help="bucket size of the training runs")
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[4, 25, 100])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--skip", choices=["train", "allreduce"], nargs="*", default=[])
    parser.add_argument("--worker", choices=["train", "allreduce"])
    parser.add_argument("--overlap", choices=["on", "off"], default="on")
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
    result = {"cores": cores, "train": [], "allreduce": []}
    if "train" not in args.skip:
        result["train"] = _bench_train(args, cores)
    if "allreduce" not in args.skip:
        result["allreduce"] = _bench_allreduce(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


def _bench_train(args, cores):
    common = ["--steps", str(args.steps), "--warmup", str(args.warmup), "--batch", str(args.batch),
              "--hidden", str(args.hidden), "--layers", str(args.layers), "--bucket-mb", str(args.bucket_mb)]
    train = []
    for p in args.ranks:
        for overlap in (["off", "on"] if p > 1 else ["off"]):
            train += _launch(p, ["train", *common, "--overlap", overlap], threads=max(1, cores // p), timeout=600)
    base = next((r["images_per_s"] for r in train if r["ranks"] == 1), None)
    widths = "-".join([str(args.hidden)] * args.layers)
    print(f"data-parallel MLP 784-{widths}-10, {args.batch} images per rank per step, "
          f"{args.bucket_mb:g} MB buckets, {cores} cores on this machine")
    for r in train:
        r["efficiency"] = r["images_per_s"] / (r["ranks"] * base) if base else None
        r["layers"] = args.layers
        eff = f"{r['efficiency']:.2f}" if base else "n/a"
        print(f"  {r['ranks']} rank(s) x {r['threads_per_rank']} thread(s), overlap {r['overlap']:3}: "
              f"step {r['step_ms']:7.2f} ms, {r['images_per_s']:7.0f} images/s, efficiency {eff}, "
              f"waiting for the all-reduce {100 * r['allreduce_wait_share']:4.1f}% of the step, "
              f"all-reduce {r['allreduce_ms_per_step']:.2f} ms/step of which {100 * r['overlap_fraction']:.0f}% "
              f"ran during backward ({r['gradient_mb']:.2f} MB in {r['buckets']} bucket(s)); "
              f"load {r['load_before']:.1f} -> {r['load_after']:.1f}")
    return train


def _bench_allreduce(args):
    allreduce = _launch(2, ["allreduce", "--sizes-mb", *map(str, args.sizes_mb), "--repeats", str(args.repeats)],
                        threads=1, timeout=600)
    print(f"all-reduce, 2 ranks, 32 float32 tensors, {args.repeats} repeats (median [min-max] ms; "
          "ratio = raw time / this time, median [min-max] over repeats run back to back)")
    print("  needle_in_bucket: gradients delivered by backward's gradient-ready hooks (copied into the 25 MB "
          "buckets there), then all_reduce_gradients(); needle_one_copy: .grad set by hand, copied by the call")
    for r in allreduce:
        print(f"  {r['mb']:7.2f} MB (load {r['load_before']:.1f} -> {r['load_after']:.1f})")
        for k, v in r.items():
            if isinstance(v, dict):
                print(f"    {k:22} {v['median_ms']:9.3f} ms [{v['min_ms']:.3f}-{v['max_ms']:.3f}]  "
                      f"ratio {v['ratio_raw_over_this']:.2f} [{v['ratio_min']:.2f}-{v['ratio_max']:.2f}]  "
                      f"{v['algbw_gb_s']:.2f} GB/s")
    return allreduce


if __name__ == "__main__":
    main()
