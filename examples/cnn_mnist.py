"""Train a small CNN (3 x Conv-BatchNorm-ReLU-MaxPool, then an MLP head) on the MNIST subset
bundled with needle-data (4,000 training / 1,000 test images) and report test accuracy.

    python examples/cnn_mnist.py                     # defaults: fastest backend, 10 epochs
    python examples/cnn_mnist.py --epochs 3 --backend numpy --seed 1

Prints a progress bar per epoch (on a terminal), loss and accuracy per epoch, and the final test
accuracy; --json writes the history.
"""
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/models.py

import needle as ndl  # noqa: E402
import needle.data as data  # noqa: E402
import needle.nn as nn  # noqa: E402
import needle.optim as optim  # noqa: E402
from _common import pick_device, run_classification_epoch  # noqa: E402
from models import MnistCNN  # noqa: E402

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="auto", help="auto (fastest installed), numpy, cpu, cuda or a plugin")
    parser.add_argument("--epochs", type=int, default=10, help="passes over the training images")
    parser.add_argument("--seed", type=int, default=0, help="seed for numpy's generator (init, shuffling, crops)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.003, help="Adam learning rate (cosine-annealed)")
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--json", help="write the per-epoch history to this file")
    args = parser.parse_args(argv)

    np.random.seed(args.seed)
    device = pick_device(args.backend)
    paths = data.mnist_paths()
    train_set = data.MNISTDataset(paths.train_images, paths.train_labels, transforms=[data.RandomCrop(2)])
    test_set = data.MNISTDataset(paths.test_images, paths.test_labels)
    train_loader = data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True, device=device)
    test_loader = data.DataLoader(test_set, batch_size=250, device=device)
    model = MnistCNN(device=device)
    loss_fn = nn.SoftmaxLoss()
    opt = optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    schedule = optim.CosineAnnealingLR(opt, T_max=args.epochs)
    n_params = sum(int(np.prod(p.shape)) for p in model.parameters())
    print(f"needle {ndl.__version__} | device {device} | {len(train_set)} train / {len(test_set)} test images "
          f"| CNN, {n_params} parameters | {args.epochs} epochs")
    history, start = [], time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        desc = f"epoch {epoch}/{args.epochs}"
        train_loss, train_acc = run_classification_epoch(model, train_loader, loss_fn, opt, desc=desc)
        test_loss, test_acc = run_classification_epoch(model, test_loader, loss_fn, desc="eval")
        schedule.step()
        history.append(dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc,
                            test_loss=test_loss, test_acc=test_acc))
        print(f"epoch {epoch:2d}: train loss {train_loss:.4f} acc {train_acc:.4f} | "
              f"test loss {test_loss:.4f} acc {test_acc:.4f}", flush=True)
    elapsed = time.perf_counter() - start
    print(f"final test accuracy: {history[-1]['test_acc']:.4f} ({len(test_set)} images) in {elapsed:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "seconds": elapsed, "history": history},
                                              indent=2))
    return history[-1]["test_acc"]


if __name__ == "__main__":
    main()
