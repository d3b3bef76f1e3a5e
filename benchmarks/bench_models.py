"""Training throughput of ResNet9 (images/s) and an LSTM language model (tokens/s) per backend,
beside PyTorch CPU measured in the same run when torch is importable.

    python benchmarks/bench_models.py [--steps 5] [--warmup 2] [--backends numpy,cpu,cuda] [--json out.json]

Each measurement times whole training steps (forward, loss, backward, Adam update) on random
data of the examples' shapes, after warm-up steps; the best of --repeat timings is reported.
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # torch_models.py

import needle as ndl  # noqa: E402
import needle.nn as nn  # noqa: E402
import needle.optim as optim  # noqa: E402
from models import LanguageModel, ResNet9, detach_state  # noqa: E402

RESNET = dict(batch=64)
LSTM = dict(vocab=2000, embedding=96, hidden=192, layers=1, seq_len=24, batch=32)


def timed_steps(step, steps, warmup, repeat):
    """Best-of-``repeat`` seconds for ``steps`` calls of ``step`` after ``warmup`` calls."""
    for _ in range(warmup):
        step()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        best = min(best, time.perf_counter() - start)
    return best


# ---- needle ------------------------------------------------------------------------------------
def needle_resnet(device, steps, warmup, repeat):
    np.random.seed(0)
    model = ResNet9(device=device)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.SoftmaxLoss()
    b = RESNET["batch"]
    x = ndl.Tensor(np.random.rand(b, 3, 32, 32).astype(np.float32), device=device, requires_grad=False)
    y = ndl.Tensor(np.random.randint(0, 10, b).astype(np.float32), device=device, requires_grad=False)

    def step():
        loss = loss_fn(model(x), y)
        opt.reset_grad()
        loss.backward(create_graph=False)
        opt.step()
        loss.item()  # wait for the device

    return steps * b / timed_steps(step, steps, warmup, repeat)


def needle_lstm(device, steps, warmup, repeat):
    np.random.seed(0)
    c = LSTM
    model = LanguageModel(c["embedding"], c["vocab"], c["hidden"], c["layers"], seq_model="lstm", device=device)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.SoftmaxLoss()
    x = ndl.Tensor(np.random.randint(0, c["vocab"], (c["seq_len"], c["batch"])).astype(np.float32), device=device,
                   requires_grad=False)
    y = ndl.Tensor(np.random.randint(0, c["vocab"], c["seq_len"] * c["batch"]).astype(np.float32), device=device,
                   requires_grad=False)
    state = [None]

    def step():
        logits, h = model(x, state[0])
        loss = loss_fn(logits, y)
        opt.reset_grad()
        loss.backward(create_graph=False)
        opt.step()
        state[0] = detach_state(h)
        loss.item()

    return steps * c["seq_len"] * c["batch"] / timed_steps(step, steps, warmup, repeat)


# ---- PyTorch -------------------------------------------------------------------------------------
def torch_models():
    """torch, and PyTorch's ResNet9 and LSTM language model of the shapes above (benchmarks/torch_models.py)."""
    import torch

    import torch_models as tm
    lm = dict(LSTM, kind="lm", seq_model="lstm")
    return torch, tm.resnet9(), tm.language_model(lm)


def torch_resnet(steps, warmup, repeat):
    torch, model, _ = torch_models()
    torch.manual_seed(0)
    b = RESNET["batch"]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.rand(b, 3, 32, 32), torch.randint(0, 10, (b,))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()

    return steps * b / timed_steps(step, steps, warmup, repeat)


def torch_lstm(steps, warmup, repeat):
    torch, _, model = torch_models()
    c = LSTM
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.randint(0, c["vocab"], (c["seq_len"], c["batch"]))
    y = torch.randint(0, c["vocab"], (c["seq_len"] * c["batch"],))
    loss_fn = torch.nn.CrossEntropyLoss()
    state = [None]

    def step():
        opt.zero_grad()
        logits, h = model(x, state[0])
        loss = loss_fn(logits, y)
        loss.backward()
        opt.step()
        state[0] = tuple(t.detach() for t in h)

    return steps * c["seq_len"] * c["batch"] / timed_steps(step, steps, warmup, repeat)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="timed training steps per repeat")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backends", default="numpy,cpu,cuda", help="comma-separated needle backends to try")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even when it is installed")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)

    rows = []
    for name in args.backends.split(","):
        dev = {"numpy": ndl.cpu_numpy()}.get(name) or ndl.device(name)
        if not dev.enabled():
            print(f"needle {name}: skipped ({dev.disabled_reason})")
            continue
        for model, fn, unit in (("ResNet9", needle_resnet, "images/s"), ("LSTM LM", needle_lstm, "tokens/s")):
            rows.append(dict(framework=f"needle {name}", model=model, unit=unit,
                             throughput=fn(dev, args.steps, args.warmup, args.repeat)))
            print(f"{rows[-1]['framework']:14s} {model:8s} {rows[-1]['throughput']:10.1f} {unit}", flush=True)
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch: not installed, skipped")
        else:
            for model, fn, unit in (("ResNet9", torch_resnet, "images/s"), ("LSTM LM", torch_lstm, "tokens/s")):
                rows.append(dict(framework=f"torch {torch.__version__} cpu", model=model, unit=unit,
                                 throughput=fn(args.steps, args.warmup, args.repeat)))
                print(f"{rows[-1]['framework']:14s} {model:8s} {rows[-1]['throughput']:10.1f} {unit}", flush=True)
    meta = dict(machine=platform.machine(), processor=platform.processor(), cpus=os.cpu_count(),
                python=platform.python_version(), needle=ndl.__version__, resnet=RESNET, lstm=LSTM,
                steps=args.steps, warmup=args.warmup, repeat=args.repeat)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(meta=meta, results=rows), indent=2))
    return rows


if __name__ == "__main__":
    main()
