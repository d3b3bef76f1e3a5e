"""Data-parallel training of the MNIST MLP (examples/mnist_mlp.py's model) with needle.distributed.

    mpiexec -n 2 python examples/mnist_distributed.py --epochs 3
    python -m needle.distributed.launch -n 2 examples/mnist_distributed.py    # same, kept on this machine
    python examples/mnist_distributed.py                                      # one process works too

Every rank trains on its share of each global batch (``--batch-size`` per rank), gradients are
averaged over the ranks after each backward, and metrics are all-reduced; rank 0 prints them and
writes the checkpoint to ``demo-output/distributed/`` (``--out``; apart from the single-process demo's
files): ``python examples/mnist_mlp.py evaluate demo-output/distributed/mnist_mlp.npz``. Needs needle-dist.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import needle as ndl  # noqa: E402
try:
    import needle.distributed as dist  # noqa: E402
except ImportError as exc:  # --help still works; running says what to install
    dist, _MISSING_DIST = None, exc
import needle.nn as nn  # noqa: E402
import needle.optim as optim  # noqa: E402
from mnist_mlp import build_model, load_split, pick_device  # noqa: E402  (the single-process demo's model)


def log(*args):
    if dist.is_main():
        print(*args, flush=True)


def run_epoch(model, loader, loss_fn, opt=None):
    """One pass over this rank's share; returns (loss, accuracy, samples) over ALL ranks."""
    model.train() if opt is not None else model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in loader:
        logits = model(x)
        loss = loss_fn(logits, y)
        if opt is not None:
            opt.reset_grad()
            loss.backward(create_graph=False)
            model.all_reduce_gradients()
            opt.step()
        n = x.shape[0]
        total_loss += loss.item() * n
        correct += int((logits.numpy().argmax(axis=1) == y.numpy()).sum())
        seen += n
    # Sums over ranks: every rank gets the same global figures.
    loss_sum, correct_sum, seen_sum = dist.all_reduce_sum(np.array([total_loss, correct, seen]))
    return loss_sum / seen_sum, correct_sum / seen_sum, int(seen_sum)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--distributed", action="store_true", help="accepted for symmetry: always data-parallel")
    parser.add_argument("--backend", default="auto", help="auto, numpy, cpu, cuda or a plugin")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64, help="per rank; the global batch is this x ranks")
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--bucket-mb", type=float, default=25)
    parser.add_argument("--out", default="demo-output/distributed", help="rank 0 writes mnist_mlp.npz/.json here")
    args = parser.parse_args(argv)
    if dist is None:
        sys.exit(f"mnist_distributed.py needs needle-dist ({_MISSING_DIST}). From the repository root:\n"
                 "  pip install ./packages/needle-core ./packages/needle-nn ./packages/needle-data "
                 "./packages/needle-dist")

    dist.init()
    device = dist.device() if args.backend == "auto" and dist.backend() == "nccl" else pick_device(args.backend)
    np.random.seed(args.seed)  # the initial weights; DDP then broadcasts rank 0's anyway
    model = dist.DistributedDataParallel(build_model(args.hidden, device), bucket_mb=args.bucket_mb)
    train_set, test_set = load_split(True), load_split(False)
    train_loader = dist.DistributedDataLoader(train_set, batch_size=args.batch_size, seed=args.seed, device=device)
    test_loader = dist.DistributedDataLoader(test_set, batch_size=500, shuffle=False, device=device)
    opt = optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    loss_fn = nn.SoftmaxLoss()
    log(f"needle {ndl.__version__} | {dist.world_size()} rank(s) over {dist.backend()} | device {device} | "
        f"global batch {args.batch_size * dist.world_size()} | {len(train_loader)} steps/epoch | "
        f"{model.reducer.nbytes / 2**20:.2f} MB of gradients in {len(model.reducer.buckets)} bucket(s)")
    history, start = [], time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        train_loader.set_epoch(epoch)
        t0 = time.perf_counter()
        train_loss, train_acc, n = run_epoch(model, train_loader, loss_fn, opt)
        seconds = time.perf_counter() - t0
        test_loss, test_acc, _ = run_epoch(model, test_loader, loss_fn)
        history.append(dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, test_loss=test_loss,
                            test_acc=test_acc, seconds=seconds))
        log(f"epoch {epoch:2d}: train loss {train_loss:.4f} acc {train_acc:.4f} | test loss {test_loss:.4f} "
            f"acc {test_acc:.4f} | {n / seconds:,.0f} images/s")
    out = Path(args.out)
    if dist.is_main():
        out.mkdir(parents=True, exist_ok=True)
    dist.save_on_main(model.state_dict(), out / "mnist_mlp.npz")
    if dist.is_main():
        (out / "mnist_mlp.json").write_text(json.dumps({"hidden": args.hidden, "world_size": dist.world_size(),
                                                        "history": history}, indent=2))
    log(f"final test accuracy: {history[-1]['test_acc']:.4f} in {time.perf_counter() - start:.1f} s; "
        f"checkpoint (rank 0): {out / 'mnist_mlp.npz'}")
    return history[-1]["test_acc"]


if __name__ == "__main__":
    main()
