"""Train the course's ResNet9 on CIFAR-10, or on CIFAR-10-shaped synthetic images when no data is given.

    python examples/resnet9_cifar.py                                  # synthetic 3x32x32 images, 10 classes
    python examples/resnet9_cifar.py --data-dir ~/data/cifar-10-batches-py --epochs 10
    python examples/resnet9_cifar.py --backend numpy --epochs 1 --train-size 512

--data-dir takes a folder with CIFAR-10's batch files, Python (data_batch_1 ... test_batch) or
binary (data_batch_1.bin ...) layout; they are read without executing code from them. Without it,
each class is a fixed random low-frequency colour pattern plus noise, so accuracy rises above
chance and the run shows the model learning. Prints a progress bar per epoch (on a terminal),
loss and accuracy per epoch and images per second.
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
from models import ResNet9  # noqa: E402


def synthetic_cifar(n, rng, templates):
    """``n`` images (N, 3, 32, 32) in [0, 1]: a class template plus noise, labels uniform over 10 classes."""
    labels = rng.randint(0, 10, size=n)
    images = templates[labels] + 0.35 * rng.randn(n, 3, 32, 32)
    return np.clip(images, 0.0, 1.0).astype(np.float32), labels.astype(np.float32)


def make_templates(rng):
    """Ten smooth random colour patterns (8x8 noise upsampled to 32x32)."""
    coarse = rng.rand(10, 3, 8, 8)
    return coarse.repeat(4, axis=2).repeat(4, axis=3)


def load_data(args):
    if args.data_dir:
        transforms = [data.RandomFlipHorizontal(0.5), data.RandomCrop(4)]
        train = data.CIFAR10Dataset(args.data_dir, train=True, transforms=transforms)
        test = data.CIFAR10Dataset(args.data_dir, train=False)
        if args.train_size:
            train = data.NDArrayDataset(train.images[:args.train_size], train.labels[:args.train_size])
        return train, test, "CIFAR-10"
    rng = np.random.RandomState(args.seed + 1)
    templates = make_templates(rng)
    n_train = args.train_size or 4096
    train = data.NDArrayDataset(*synthetic_cifar(n_train, rng, templates))
    test = data.NDArrayDataset(*synthetic_cifar(max(n_train // 4, 256), rng, templates))
    return train, test, "synthetic CIFAR-10-shaped"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="auto", help="auto (fastest installed), numpy, cpu, cuda or a plugin")
    parser.add_argument("--data-dir", help="folder with CIFAR-10 batch files (default: synthetic data)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0, help="seed for numpy's generator (init, shuffling, data)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--train-size", type=int, default=0, help="use only this many training images (0: all)")
    parser.add_argument("--lr", type=float, default=0.001, help="Adam learning rate")
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    parser.add_argument("--json", help="write the per-epoch history to this file")
    args = parser.parse_args(argv)

    np.random.seed(args.seed)
    device = pick_device(args.backend)
    train_set, test_set, what = load_data(args)
    train_loader = data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True, device=device)
    test_loader = data.DataLoader(test_set, batch_size=256, device=device)
    model = ResNet9(device=device)
    loss_fn = nn.SoftmaxLoss()
    opt = optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    print(f"needle {ndl.__version__} | device {device} | {what}: {len(train_set)} train / {len(test_set)} test "
          f"images | ResNet9 | {args.epochs} epochs")
    history = []
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        train_loss, train_acc = run_classification_epoch(model, train_loader, loss_fn, opt,
                                                         desc=f"epoch {epoch}/{args.epochs}")
        seconds = time.perf_counter() - start
        test_loss, test_acc = run_classification_epoch(model, test_loader, loss_fn, desc="eval")
        history.append(dict(epoch=epoch, train_loss=train_loss, train_acc=train_acc, test_loss=test_loss,
                            test_acc=test_acc, images_per_s=len(train_set) / seconds))
        print(f"epoch {epoch:2d}: train loss {train_loss:.4f} acc {train_acc:.4f} | test loss {test_loss:.4f} "
              f"acc {test_acc:.4f} | {len(train_set) / seconds:.0f} images/s", flush=True)
    print(f"final test accuracy: {history[-1]['test_acc']:.4f} ({len(test_set)} images)")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "data": what, "history": history}, indent=2))
    return history[-1]["test_acc"]


if __name__ == "__main__":
    main()
