"""Gradient checkpointing: peak memory and step time with and without ``checkpoint_sequential``.

    python benchmarks/bench_checkpoint.py                  # cpu backend (needle-cpu), both models
    python benchmarks/bench_checkpoint.py --backend numpy --steps 3 --segments 2,4,8

Two models: a 16-layer MLP of width 512 at batch 256 (Linear+ReLU blocks), and the example
Transformer language model (examples/models.py ``LanguageModel``, transformer) whose layers are
checkpointed. Activation memory is the device's peak during forward and backward minus what was
allocated just before the forward (so parameters and the batch do not count). A step is forward,
backward (``create_graph=False``, as training does) and an SGD update. Not a test: it prints.

Two segments save nothing: Needle's backward keeps the whole forward graph (the loss holds it) until
it returns, so the last, plain segment's activations (and the backward memo's transposed weights)
are still alive while the first one is recomputed. From four segments on the saving shows (on a
2-core machine at load 7-8: MLP -42% at 8 segments for 1.25x the step time; the Transformer LM
-45% at 4 segments for 1.17x, -67% at 8 for 1.38x).
"""
import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import needle as ndl
import needle.nn as nn
import needle.optim as optim
from needle import ops
from needle.utils.checkpoint import checkpoint_sequential

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from models import LanguageModel  # noqa: E402


def mlp_case(device, width=512, depth=16, batch=256):
    np.random.seed(0)
    layers = []
    for _ in range(depth):
        layers += [nn.Linear(width, width, device=device), nn.ReLU()]
    model = nn.Sequential(*layers)
    x = ndl.Tensor(np.random.randn(batch, width).astype(np.float32), device=device, requires_grad=False)
    y = ndl.Tensor(np.random.randint(0, width, batch), device=device, requires_grad=False)
    loss_fn = nn.SoftmaxLoss()

    def loss(segments):
        out = model(x) if segments is None else checkpoint_sequential(model, segments, x)
        return loss_fn(out, y)
    return f"MLP {depth} x {width}, batch {batch}", model, loss


def lm_case(device, vocab=2000, emb=256, hidden=512, layers=8, seq=64, batch=16):
    np.random.seed(0)
    model = LanguageModel(emb, vocab, hidden, num_layers=layers, seq_model="transformer", seq_len=seq,
                          num_head=4, dim_head=64, device=device)
    ids = ndl.Tensor(np.random.randint(0, vocab, (seq, batch)), device=device, requires_grad=False)
    target = ndl.Tensor(np.random.randint(0, vocab, seq * batch), device=device, requires_grad=False)
    loss_fn = nn.SoftmaxLoss()
    tf = model.seq_model

    def loss(segments):
        if segments is None:
            logits, _ = model(ids)
            return loss_fn(logits, target)
        # LanguageModel.forward and Transformer.forward, with the layer stack checkpointed.
        x = ops.transpose(model.embedding(ids), (0, 1))
        b, n, e = x.shape
        pos = tf.positional_embedding(np.arange(n).reshape(1, n))
        h = checkpoint_sequential(tf.layers, segments, x + ops.broadcast_to(pos, (b, n, e)))
        out = ops.transpose(h, (0, 1))
        logits = model.linear(ops.reshape(out, (n * b, e)))
        return loss_fn(logits, target)
    return f"Transformer LM: {layers} layers, emb {emb}, hidden {hidden}, seq {seq}, batch {batch}, vocab {vocab}", \
        model, loss


def measure(device, model, loss, segments, steps):
    opt = optim.SGD(model.parameters(), lr=1e-3)
    times, acts = [], []
    for i in range(steps + 1):  # the first step warms caches and is not counted
        opt.reset_grad()
        gc.collect()
        device.empty_cache()
        base = device.memory_allocated()
        device.reset_peak_memory_stats()
        t0 = time.perf_counter()
        value = loss(segments)
        value.backward(create_graph=False)
        peak = device.max_memory_allocated()
        opt.step()
        value.item()
        elapsed = time.perf_counter() - t0
        del value
        if i:
            times.append(elapsed)
            acts.append(peak - base)
    return statistics.median(times), max(acts), base


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="cpu")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--segments", default="2,4,8")
    p.add_argument("--models", default="mlp,lm")
    args = p.parse_args(argv)
    device = ndl.device(args.backend)
    if not device.enabled():
        sys.exit(f"--backend {args.backend}: {device.disabled_reason}")
    cases = {"mlp": mlp_case, "lm": lm_case}
    print(f"device {device!r}, {args.steps} timed steps each (median time, max activation memory)")
    for key in args.models.split(","):
        title, model, loss = cases[key](device)
        print(f"\n{title}")
        print(f"{'run':>18} {'activations MiB':>16} {'vs plain':>9} {'step ms':>9} {'vs plain':>9}")
        plain_t, plain_m, base = measure(device, model, loss, None, args.steps)
        print(f"{'plain':>18} {plain_m / 2**20:16.1f} {'':>9} {plain_t * 1e3:9.1f} {'':>9}   "
              f"(before forward: {base / 2**20:.1f} MiB)")
        n_functions = len(model.modules) if key == "mlp" else len(model.seq_model.layers.modules)
        for seg in (int(s) for s in args.segments.split(",")):
            if seg > n_functions:
                continue
            t, m, _ = measure(device, model, loss, seg, args.steps)
            print(f"{f'{seg} segments':>18} {m / 2**20:16.1f} {m / plain_m - 1:+9.0%} {t * 1e3:9.1f} "
                  f"{t / plain_t:8.2f}x")


if __name__ == "__main__":
    main()
