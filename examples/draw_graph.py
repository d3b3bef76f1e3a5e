"""Draw the graph of one training step of the MNIST MLP (examples/mnist_mlp.py) with Graphviz.

    python examples/draw_graph.py                      # writes mnist_step.png (needs graphviz + dot)
    python examples/draw_graph.py --out step.dot       # dot text only: needs nothing
    python examples/draw_graph.py --out step.svg --verbose --hidden 32

The picture is the graph that ``loss.backward()`` walks: the batch (a constant), the parameters
(leaves that require grad), and each op with its output shape. After drawing, the step is
finished (backward and an SGD update) and the loss before and after is printed.
"""
import argparse

import numpy as np

import needle as ndl
import needle.nn as nn
import needle.optim as optim
import needle.viz

from _common import pick_device  # examples/_common.py
from mnist_mlp import build_model, load_split


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="mnist_step.png", help="output file: .png, .svg or .dot")
    parser.add_argument("--hidden", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--verbose", action="store_true", help="show dtype and device on each node")
    parser.add_argument("--backend", default="auto", help="auto, numpy, cpu, cuda or a plugin")
    args = parser.parse_args(argv)

    device = pick_device(args.backend)
    np.random.seed(0)
    model = build_model(args.hidden, device)
    images, labels = load_split(True)[np.arange(args.batch_size)]
    x = ndl.Tensor(images, device=device, requires_grad=False)
    y = ndl.Tensor(labels, device=device, requires_grad=False)
    loss = nn.SoftmaxLoss()(model(x), y)
    needle.viz.render(loss, args.out, verbose=args.verbose)
    print(f"wrote the graph of one step ({len(ndl.autograd.find_topo_sort([loss]))} nodes) to {args.out}")

    opt = optim.SGD(model.parameters(), lr=0.1)
    opt.reset_grad()
    loss.backward(create_graph=False)
    opt.step()
    after = nn.SoftmaxLoss()(model(x), y)
    print(f"loss {loss.item():.4f} -> {after.item():.4f} after the step")


if __name__ == "__main__":
    main()
