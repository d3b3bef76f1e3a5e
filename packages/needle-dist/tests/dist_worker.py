"""Run by the tests under mpiexec (not collected by pytest): a small data-parallel training run.

    mpiexec -n P python dist_worker.py OUT_DIR --steps N --batch B --samples S [--fail MODE --fail-step K]

Each rank starts from a different seed (so the test sees that rank 0's weights are broadcast),
trains an MLP for N steps on its share of consecutive global batches, and writes its final
parameters to OUT_DIR/rank{r}.npz; rank 0 also writes params.npz and saved_by_rank0.npz
(save_on_main, which every rank calls) and the all-reduced losses to losses.json. ``--fail`` makes
rank 1 die at step K: ``exit`` (os._exit, no cleanup), ``kill`` (SIGKILL) or ``raise`` (an uncaught
exception); ``--mismatch`` gives rank 1 a different model. ``--accumulate K`` cuts each rank's batch
into K micro-batches (sizes as even as possible), the first K-1 under ``no_sync()``: the result must
still equal one process on the global batch. Rank 0 writes the last step's bucket timeline to
overlap.json (when the all-reduces started against when backward ended).
"""
import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

import needle as ndl
import needle.distributed as dist
import needle.nn as nn
import needle.optim as optim
from needle.data import NDArrayDataset


def make_data(samples):
    """The data set every rank (and the single-process oracle in the tests) builds identically."""
    rng = np.random.default_rng(1234)
    x = rng.standard_normal((samples, 6)).astype(np.float32)
    y = rng.integers(0, 3, size=samples).astype(np.float32)
    return x, y


def make_model(seed, hidden=16):
    np.random.seed(seed)
    return nn.Sequential(nn.Linear(6, hidden), nn.ReLU(), nn.Linear(hidden, 3))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4, help="per-rank batch size")
    parser.add_argument("--samples", type=int, default=48)
    parser.add_argument("--bucket-mb", type=float, default=25)
    parser.add_argument("--fail", choices=["exit", "kill", "raise"], default=None)
    parser.add_argument("--fail-step", type=int, default=2)
    parser.add_argument("--mismatch", action="store_true", help="rank 1 builds a wider model")
    parser.add_argument("--accumulate", type=int, default=1, help="micro-batches per step (no_sync)")
    parser.add_argument("--hidden", type=int, default=16)
    args = parser.parse_args()
    out = Path(args.out)

    dist.init()
    rank = dist.rank()
    hidden = args.hidden + 1 if args.mismatch and rank == 1 else args.hidden
    model = dist.DistributedDataParallel(make_model(seed=100 + rank, hidden=hidden), bucket_mb=args.bucket_mb)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loss_fn = nn.SoftmaxLoss()
    loader = dist.DistributedDataLoader(NDArrayDataset(*make_data(args.samples)), batch_size=args.batch,
                                        shuffle=False)
    losses, step = [], 0
    while step < args.steps:
        for x, y in loader:
            if step == args.steps:
                break
            if args.fail and rank == 1 and step == args.fail_step:
                sys.stdout.flush()
                if args.fail == "exit":
                    os._exit(3)
                if args.fail == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise ValueError("rank 1 failed on purpose")
            opt.reset_grad()
            local_loss, n = 0.0, x.shape[0]
            cuts = np.linspace(0, n, args.accumulate + 1).round().astype(int)
            parts = [(lo, hi) for lo, hi in zip(cuts, cuts[1:]) if hi > lo]
            for k, (lo, hi) in enumerate(parts):
                xb = ndl.Tensor(x.numpy()[lo:hi], requires_grad=False)
                yb = ndl.Tensor(y.numpy()[lo:hi], requires_grad=False)
                if k < len(parts) - 1:
                    with model.no_sync():
                        loss = loss_fn(model(xb), yb)
                        loss.backward()
                else:
                    loss = loss_fn(model(xb), yb)
                    loss.backward()
                local_loss += loss.item() * (hi - lo) / n
            backward_end = time.perf_counter()
            model.all_reduce_gradients()
            opt.step()
            losses.append(dist.all_reduce_mean(local_loss, weight=n))
            step += 1
    state = model.state_dict()
    ndl.nn.save(state, out / f"rank{rank}.npz")
    dist.save_on_main(state, out / "params.npz")
    dist.save_on_main(state, out / f"saved_by_rank{rank}.npz")  # a rank-dependent path shows who writes
    if dist.is_main():
        (out / "losses.json").write_text(json.dumps({"losses": losses, "world_size": dist.world_size()}))
        timeline = dict(model.reducer.last_step or {}, backward_end=backward_end)
        (out / "overlap.json").write_text(json.dumps(timeline))


if __name__ == "__main__":
    main()
