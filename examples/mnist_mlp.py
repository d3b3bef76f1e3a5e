"""Train a 2-layer MLP on the MNIST subset bundled with needle-data, then evaluate it.

    python examples/mnist_mlp.py                 # train with defaults (fastest backend installed)
    python examples/mnist_mlp.py train --epochs 5 --backend numpy --seed 0
    python examples/mnist_mlp.py evaluate demo-output/mnist_mlp.npz
    mpiexec -n 2 python examples/mnist_mlp.py --distributed   # needs needle-dist

Training prints a progress bar per epoch, loss and accuracy per epoch and the final test
accuracy, and writes a checkpoint and a loss/accuracy plot (PNG) to --out.
"""
import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

import needle as ndl
import needle.data as data
import needle.nn as nn
import needle.optim as optim

from _common import pick_device, run_classification_epoch  # examples/_common.py


def build_model(hidden, device):
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, hidden, device=device),
        nn.ReLU(),
        nn.Linear(hidden, 10, device=device),
    )


def load_split(train):
    paths = data.mnist_paths()
    split = "train" if train else "test"
    return data.MNISTDataset(paths[f"{split}_images"], paths[f"{split}_labels"])


def save_plot(history, path):
    """Write the loss/accuracy plot; without matplotlib, say how to get it and return False."""
    try:
        import matplotlib
    except ImportError:
        print(f"no plot written to {path}: matplotlib is not installed (pip install matplotlib)")
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(history) + 1)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["test_loss"] for h in history], "o-", label="test")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Softmax loss")
    ax_acc.plot(epochs, [h["train_acc"] for h in history], "o-", label="train")
    ax_acc.plot(epochs, [h["test_acc"] for h in history], "o-", label="test")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(args):
    np.random.seed(args.seed)
    device = pick_device(args.backend)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train_set, test_set = load_split(True), load_split(False)
    train_loader = data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True, device=device)
    test_loader = data.DataLoader(test_set, batch_size=500, device=device)
    model = build_model(args.hidden, device)
    loss_fn = nn.SoftmaxLoss()
    opt = optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    # Cosine decay over the whole run: steadier final accuracy than a constant rate.
    schedule = optim.CosineAnnealingLR(opt, T_max=args.epochs)
    print(f"needle {ndl.__version__} | device {device} | {len(train_set)} train / {len(test_set)} test images "
          f"| MLP 784-{args.hidden}-10 | {args.epochs} epochs")
    history, start = [], time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        train_loss, train_acc = run_classification_epoch(model, train_loader, loss_fn, opt,
                                                         desc=f"epoch {epoch}/{args.epochs}")
        test_loss, test_acc = run_classification_epoch(model, test_loader, loss_fn, desc="eval")
        schedule.step()
        history.append(dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc,
                            test_loss=test_loss, test_acc=test_acc))
        print(f"epoch {epoch:2d}: train loss {train_loss:.4f} acc {train_acc:.4f} | "
              f"test loss {test_loss:.4f} acc {test_acc:.4f}")
    elapsed = time.perf_counter() - start
    ckpt = out / "mnist_mlp.npz"
    nn.save(model.state_dict(), ckpt)
    (out / "mnist_mlp.json").write_text(json.dumps({"hidden": args.hidden, "history": history}, indent=2))
    plotted = save_plot(history, out / "mnist_mlp.png")
    print(f"final test accuracy: {history[-1]['test_acc']:.4f} ({len(test_set)} images) in {elapsed:.1f} s")
    print(f"checkpoint: {ckpt}" + (f"\nplot: {out / 'mnist_mlp.png'}" if plotted else ""))
    print(f"evaluate it with: {evaluate_command()} evaluate {ckpt.as_posix()}")
    return history[-1]["test_acc"]


def evaluate_command():
    """How the user runs this script again: ``nox -s demo`` sets NEEDLE_DEMO_COMMAND (its own venv holds needle),
    else the interpreter and path that ran it (relative to the working directory when inside it)."""
    command = os.environ.get("NEEDLE_DEMO_COMMAND")
    if command:
        return command
    script = Path(__file__).resolve()
    try:
        script = script.relative_to(Path.cwd())
    except ValueError:
        pass
    python = "python" if shutil.which("python") == sys.executable else sys.executable
    return f"{python} {script.as_posix()}"


def evaluate(args):
    ckpt = Path(args.checkpoint)
    meta_path = ckpt.with_suffix(".json")
    hidden = json.loads(meta_path.read_text())["hidden"] if meta_path.exists() else args.hidden
    device = pick_device(args.backend)
    model = build_model(hidden, device)
    model.load_state_dict(nn.load(ckpt))
    loader = data.DataLoader(load_split(False), batch_size=500, device=device)
    loss, acc = run_classification_epoch(model, loader, nn.SoftmaxLoss(), desc="eval")
    print(f"checkpoint {ckpt}: test loss {loss:.4f}, test accuracy {acc:.4f} on {len(loader.dataset)} images")
    return acc


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--distributed" in argv and "-h" not in argv and "--help" not in argv:
        # Data-parallel mode, run under mpiexec: the same model, trained by mnist_distributed.py.
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import mnist_distributed
        return mnist_distributed.main([a for a in argv if a != "train"])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    t = sub.add_parser("train", help="train the MLP (the default command)")
    e = sub.add_parser("evaluate", help="evaluate a saved checkpoint on the test images")
    e.add_argument("checkpoint", help="path written by train, e.g. demo-output/mnist_mlp.npz")
    for p in (parser, t, e):
        p.add_argument("--backend", default="auto", help="auto (fastest installed), numpy, cpu, cuda or a plugin")
        p.add_argument("--hidden", type=int, default=128, help="hidden units")
    for p in (parser, t):
        p.add_argument("--epochs", type=int, default=8, help="passes over the training images")
        p.add_argument("--seed", type=int, default=0, help="seed for numpy's generator (init and shuffling)")
        p.add_argument("--batch-size", type=int, default=64)
        p.add_argument("--lr", type=float, default=0.002, help="Adam learning rate")
        p.add_argument("--weight-decay", type=float, default=1e-4)
        p.add_argument("--out", default="demo-output", help="folder for the checkpoint and the plot")
        p.add_argument("--distributed", action="store_true",
                       help="data-parallel over MPI: mpiexec -n 2 python examples/mnist_mlp.py --distributed")
    args = parser.parse_args(argv)
    if args.command == "evaluate":
        return evaluate(args)
    return train(args)


if __name__ == "__main__":
    main()
