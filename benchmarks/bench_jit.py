"""needle.jit: captured training steps beside eager Needle and PyTorch eager, with peak memory.

Models (the shapes of bench_training.py): the MLP 784-128-10 (batch 64, Adam), the LSTM language
model (vocab 2000, embedding 96, hidden 192, 24 steps x batch 32, Adam; the embedding gathers on
the device, as a captured step needs) and ResNet9 (3x32x32, batch 64, Adam). A step is forward,
loss, backward, optimiser step and a read of the loss. Random inputs, built before timing.

    python benchmarks/bench_jit.py [--models mlp,lstm,resnet9] [--backend cpu] [--steps 30]
                                   [--repeat 3] [--threads 1] [--no-torch] [--json out.json]

Each figure is the median over ``--repeat`` timed runs of ``--steps`` steps (after warm-up: for
the captured step, its eager call and its recording). Peak memory is ``device.max_memory_allocated()``
over one step (everything alive counts: parameters, optimiser state, the batches, and a captured
step's arena of temporaries). The machine's load is printed: figures taken beside other jobs are noisy.
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

MLP = dict(hidden=128, batch=64, lr=0.002, weight_decay=1e-4)
LSTM = dict(vocab=2000, embedding=96, hidden=192, seq_len=24, batch=32, lr=3e-3)
RESNET = dict(batch=64, lr=1e-3)
DEFAULT_STEPS = dict(mlp=60, lstm=8, resnet9=3)


def batches(model, n=4):
    import numpy as np
    rng = np.random.RandomState(0)
    if model == "mlp":
        return [(rng.rand(MLP["batch"], 784).astype(np.float32), rng.randint(0, 10, MLP["batch"]))
                for _ in range(n)]
    if model == "lstm":
        c = LSTM
        return [(rng.randint(0, c["vocab"], (c["seq_len"], c["batch"])),
                 rng.randint(0, c["vocab"], c["seq_len"] * c["batch"])) for _ in range(n)]
    return [(rng.randn(RESNET["batch"], 3, 32, 32).astype(np.float32), rng.randint(0, 10, RESNET["batch"]))
            for _ in range(n)]


def needle_step(model_name, device):
    """(step(x, y) -> loss tensor, to_inputs(x, y) -> tensors)."""
    import numpy as np

    import needle as ndl
    import needle.nn as nn
    import needle.optim as optim

    np.random.seed(0)
    loss_fn = nn.SoftmaxLoss()
    if model_name == "mlp":
        model = nn.Sequential(nn.Linear(784, MLP["hidden"], device=device), nn.ReLU(),
                              nn.Linear(MLP["hidden"], 10, device=device))
        opt = optim.Adam(model.parameters(), lr=MLP["lr"], weight_decay=MLP["weight_decay"])
        forward = model
    elif model_name == "lstm":
        c = LSTM
        table = nn.Embedding(c["vocab"], c["embedding"], device=device)
        lstm = nn.LSTM(c["embedding"], c["hidden"], device=device)
        head = nn.Linear(c["hidden"], c["vocab"], device=device)
        opt = optim.Adam(table.parameters() + lstm.parameters() + head.parameters(), lr=c["lr"])

        def forward(ids):
            out, _ = lstm(table(ids))
            return head(out.reshape((-1, c["hidden"])))
    else:
        sys.path.insert(0, str(HERE.parent / "examples"))
        from models import ResNet9
        model = ResNet9(device=device)
        opt = optim.Adam(model.parameters(), lr=RESNET["lr"])
        forward = model

    def step(x, y):
        opt.reset_grad()
        loss = loss_fn(forward(x), y)
        loss.backward()
        opt.step()
        return loss

    def to_inputs(x, y):
        kind = "int64" if model_name == "lstm" else "float32"
        return (ndl.Tensor(x, device=device, dtype=kind, requires_grad=False),
                ndl.Tensor(y.astype(np.float32), device=device, requires_grad=False))

    return step, to_inputs


def torch_step(model_name, threads):
    import torch
    from torch import nn as tnn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if model_name == "mlp":
        model = tnn.Sequential(tnn.Linear(784, MLP["hidden"]), tnn.ReLU(), tnn.Linear(MLP["hidden"], 10))
        opt = torch.optim.Adam(model.parameters(), lr=MLP["lr"], weight_decay=MLP["weight_decay"])
        forward = model
    elif model_name == "lstm":
        c = LSTM
        emb, lstm = tnn.Embedding(c["vocab"], c["embedding"]), tnn.LSTM(c["embedding"], c["hidden"])
        head = tnn.Linear(c["hidden"], c["vocab"])
        opt = torch.optim.Adam(list(emb.parameters()) + list(lstm.parameters()) + list(head.parameters()),
                               lr=c["lr"])

        def forward(ids):
            out, _ = lstm(emb(ids))
            return head(out.reshape(-1, c["hidden"]))
    else:
        def conv_bn(a, b, k, s):
            return tnn.Sequential(tnn.Conv2d(a, b, k, s, k // 2), tnn.BatchNorm2d(b), tnn.ReLU())

        class Residual(tnn.Module):
            def __init__(self, fn):
                super().__init__()
                self.fn = fn

            def forward(self, x):
                return self.fn(x) + x

        model = tnn.Sequential(
            conv_bn(3, 16, 7, 4), conv_bn(16, 32, 3, 2),
            Residual(tnn.Sequential(conv_bn(32, 32, 3, 1), conv_bn(32, 32, 3, 1))),
            conv_bn(32, 64, 3, 2), conv_bn(64, 128, 3, 2),
            Residual(tnn.Sequential(conv_bn(128, 128, 3, 1), conv_bn(128, 128, 3, 1))),
            tnn.Flatten(), tnn.Linear(128, 128), tnn.ReLU(), tnn.Linear(128, 10))
        opt = torch.optim.Adam(model.parameters(), lr=RESNET["lr"])
        forward = model
    loss_fn = tnn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad()
        loss = loss_fn(forward(x), y)
        loss.backward()
        opt.step()
        return loss

    def to_inputs(x, y):
        return torch.from_numpy(x), torch.from_numpy(y.astype("int64"))

    return step, to_inputs


def timed(step, inputs, steps, repeat, warmup=3):
    """Median seconds per step (each step ends with a read of the loss)."""
    for i in range(warmup):
        step(*inputs[i % len(inputs)]).detach().numpy()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(steps):
            step(*inputs[i % len(inputs)]).detach().numpy()
        runs.append((time.perf_counter() - start) / steps)
    return statistics.median(runs), min(runs), max(runs)


def peak_bytes(device, step, inputs):
    """The most bytes of buffers alive during one step (parameters, optimiser state, inputs and, for
    a captured step, its arena included), or None where the backend does not track memory."""
    try:
        device.reset_peak_memory_stats()
    except NotImplementedError:
        return None
    step(*inputs[0]).numpy()
    return device.max_memory_allocated()


def measure(model_name, backend, steps, repeat, threads, with_torch):
    import needle as ndl

    device = ndl.cpu_numpy() if backend == "numpy" else ndl.device(backend)
    row = {"model": model_name, "backend": backend, "steps": steps}
    data = batches(model_name)
    for mode in ("eager", "captured"):
        step, to_inputs = needle_step(model_name, device)
        inputs = [to_inputs(x, y) for x, y in data]
        if mode == "captured":
            step = ndl.jit(step)
        row[mode] = timed(step, inputs, steps, repeat)
        row[mode + "_peak_bytes"] = peak_bytes(device, step, inputs)
        if mode == "captured":
            (entry,) = step.plans.values()
            row["kernels"] = entry.plan.kernel_count
            row["arena_bytes"] = entry.plan.arena_bytes
            row["temporary_bytes"] = entry.plan.temporary_bytes
    if with_torch:
        try:
            step, to_inputs = torch_step(model_name, threads)
            row["torch"] = timed(step, [to_inputs(x, y) for x, y in data], steps, repeat)
        except ImportError as exc:
            row["torch"] = f"n/a ({exc})"
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="mlp,lstm,resnet9")
    parser.add_argument("--backend", default="cpu")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NEEDLE_CPU_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"({os.cpu_count()} cpus), threads {args.threads}, backend {args.backend}")
    rows = []
    head = (f"{'model':8} {'eager ms':>9} {'captured ms':>12} {'speedup':>8} {'torch ms':>9} {'vs torch':>9} "
            f"{'kernels':>8} {'peak MB eager':>14} {'peak MB captured':>17}")
    print(head)
    for name in args.models.split(","):
        row = measure(name, args.backend, args.steps or DEFAULT_STEPS[name], args.repeat, args.threads,
                      not args.no_torch)
        rows.append(row)
        eager, captured = row["eager"][0], row["captured"][0]
        torch_ms = row.get("torch")
        torch_txt = f"{torch_ms[0] * 1e3:9.2f} {torch_ms[0] / captured:8.2f}x" if isinstance(torch_ms, tuple) else \
            f"{'n/a':>9} {'':>9}"

        def mb(v):
            return "n/a" if v is None else f"{v / 2**20:.2f}"
        print(f"{name:8} {eager * 1e3:9.2f} {captured * 1e3:12.2f} {eager / captured:7.2f}x {torch_txt} "
              f"{row['kernels']:8d} {mb(row['eager_peak_bytes']):>14} {mb(row['captured_peak_bytes']):>17}",
              flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    return rows


if __name__ == "__main__":
    main()
