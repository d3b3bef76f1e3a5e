"""Training throughput and peak memory: Needle beside PyTorch on the same data, batch and threads.

Models: the 2-layer MLP on the bundled MNIST subset (images/s), ResNet9 on CIFAR-shaped random
images (images/s) and the LSTM language model on random token ids (tokens/s). Each step is a
whole training step: forward, loss, backward, Adam update, and a read of the loss (so the work
is finished). Batches are built once before timing, for both frameworks, so the figures measure
the framework, not a data pipeline.

Every (model, framework, backend) runs in a fresh subprocess: peaks do not mix, and the thread
count is set (OMP/BLAS/needle-cpu/torch) before anything is imported.

    python benchmarks/bench_training.py [--models mlp,resnet9,lstm] [--backends numpy,cpu]
                                        [--threads 2] [--steps 20] [--repeat 3] [--json out.json]
    python benchmarks/bench_training.py --one mlp needle cpu      # one measurement, JSON on stdout
    python benchmarks/bench_training.py --one mlp needle cpu --profile prof.out   # cProfile it
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ("mlp", "resnet9", "lstm")

#: The shapes the examples use (examples/mnist_mlp.py, resnet9_cifar.py, lm_text.py).
MLP = dict(hidden=128, batch=64, lr=0.002, weight_decay=1e-4)
RESNET = dict(batch=64, lr=1e-3)
LSTM = dict(vocab=2000, embedding=96, hidden=192, layers=1, seq_len=24, batch=32, lr=3e-3)
#: Steps per timed repeat (ResNet9 steps are long on a 2-core machine).
DEFAULT_STEPS = dict(mlp=40, resnet9=3, lstm=6)

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NEEDLE_CPU_THREADS")


def thread_env(threads):
    """Environment for a child that uses ``threads`` threads in every library.

    Each library keeps its own idle-thread policy (OpenMP's spin-then-sleep default for PyTorch;
    needle-cpu's pool spins at most NEEDLE_CPU_SPIN_US, 1 ms, yielding). Forcing
    OMP_WAIT_POLICY=PASSIVE made every PyTorch op wake a sleeping thread (its MLP step 0.7 -> 2.1 ms
    on the AVX-512 Xeon), ACTIVE made OpenMP threads spin against everyone else; on a machine
    other jobs load, set OMP_WAIT_POLICY yourself and say so beside the figures.
    """
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    return env


# ---- data (numpy, shared by both frameworks) -----------------------------------------------------
def mlp_data(n_batches):
    import numpy as np
    try:
        import needle.data as data
        paths = data.mnist_paths()
        images = data.MNISTDataset(paths["train_images"], paths["train_labels"])
        x = np.asarray(images.images, dtype=np.float32).reshape(-1, 784)
        y = np.asarray(images.labels)
    except Exception:  # needle-data absent: MNIST-shaped noise keeps the benchmark runnable
        rng = np.random.default_rng(0)
        x, y = rng.random((n_batches * MLP["batch"], 784), dtype=np.float32), rng.integers(0, 10, n_batches * 64)
    b = MLP["batch"]
    n_batches = min(n_batches, len(x) // b)
    return [(x[i * b:(i + 1) * b], y[i * b:(i + 1) * b].astype(np.int64)) for i in range(n_batches)]


def resnet_data(n_batches):
    import numpy as np
    rng = np.random.default_rng(0)
    b = RESNET["batch"]
    return [(rng.random((b, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, b)) for _ in range(n_batches)]


def lstm_data(n_batches):
    import numpy as np
    rng = np.random.default_rng(0)
    c = LSTM
    return [(rng.integers(0, c["vocab"], (c["seq_len"], c["batch"])),
             rng.integers(0, c["vocab"], c["seq_len"] * c["batch"])) for _ in range(n_batches)]


DATA = dict(mlp=mlp_data, resnet9=resnet_data, lstm=lstm_data)
SAMPLES = dict(mlp=lambda: MLP["batch"], resnet9=lambda: RESNET["batch"],
               lstm=lambda: LSTM["seq_len"] * LSTM["batch"])
UNITS = dict(mlp="images/s", resnet9="images/s", lstm="tokens/s")


# ---- Needle --------------------------------------------------------------------------------------
def needle_step(model_name, backend, batches):
    """A function running one training step on the next batch."""
    import numpy as np

    import needle as ndl
    import needle.nn as nn
    import needle.optim as optim

    device = ndl.cpu_numpy() if backend == "numpy" else ndl.device(backend)
    if not device.enabled():
        raise RuntimeError(f"needle backend {backend!r} is not available: {device.disabled_reason}")
    np.random.seed(0)
    state = [None]
    if model_name == "mlp":
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, MLP["hidden"], device=device), nn.ReLU(),
                              nn.Linear(MLP["hidden"], 10, device=device))
        opt = optim.Adam(model.parameters(), lr=MLP["lr"], weight_decay=MLP["weight_decay"])
    else:
        sys.path.insert(0, str(HERE.parent / "examples"))
        try:
            from models import LanguageModel, ResNet9
        except (ImportError, AttributeError) as e:
            raise RuntimeError(f"n/a (needs needle.nn.Conv/LSTM: {e})") from None
        if model_name == "resnet9":
            model = ResNet9(device=device)
            opt = optim.Adam(model.parameters(), lr=RESNET["lr"])
        else:
            c = LSTM
            model = LanguageModel(c["embedding"], c["vocab"], c["hidden"], c["layers"], seq_model="lstm",
                                  device=device)
            opt = optim.Adam(model.parameters(), lr=c["lr"])
    loss_fn = nn.SoftmaxLoss()
    dtype = "float32"
    tensors = [(ndl.Tensor(x.astype(np.float32), device=device, dtype=dtype, requires_grad=False),
                ndl.Tensor(y.astype(np.float32), device=device, dtype=dtype, requires_grad=False))
               for x, y in batches]
    it = [0]

    def step():
        x, y = tensors[it[0] % len(tensors)]
        it[0] += 1
        if model_name == "lstm":
            logits, h = model(x, state[0])
            state[0] = tuple(t.detach() for t in h) if isinstance(h, tuple) else h.detach()
        else:
            logits = model(x)
        loss = loss_fn(logits, y)
        opt.reset_grad()
        loss.backward(create_graph=False)
        opt.step()
        return loss.item()  # waits for the device

    return step


# ---- PyTorch -------------------------------------------------------------------------------------
def torch_step(model_name, batches, threads):
    import torch
    from torch import nn as tnn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    state = [None]
    if model_name == "mlp":
        model = tnn.Sequential(tnn.Flatten(), tnn.Linear(784, MLP["hidden"]), tnn.ReLU(),
                               tnn.Linear(MLP["hidden"], 10))
        # Needle's Adam adds weight_decay * w to the gradient: torch's Adam does the same (not AdamW).
        opt = torch.optim.Adam(model.parameters(), lr=MLP["lr"], weight_decay=MLP["weight_decay"])
    elif model_name == "resnet9":
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
    else:
        c = LSTM

        class LM(tnn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = tnn.Embedding(c["vocab"], c["embedding"])
                self.lstm = tnn.LSTM(c["embedding"], c["hidden"], c["layers"])
                self.linear = tnn.Linear(c["hidden"], c["vocab"])

            def forward(self, x, h=None):
                out, h = self.lstm(self.embedding(x), h)
                return self.linear(out.reshape(-1, out.shape[-1])), h

        model = LM()
        opt = torch.optim.Adam(model.parameters(), lr=c["lr"])
    loss_fn = tnn.CrossEntropyLoss()
    tensors = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
    it = [0]

    def step():
        x, y = tensors[it[0] % len(tensors)]
        it[0] += 1
        if model_name == "lstm":
            logits, h = model(x, state[0])
            state[0] = tuple(t.detach() for t in h)
        else:
            logits = model(x)
        loss = loss_fn(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


# ---- one measurement (run in a child process) ----------------------------------------------------
def _status_mb(field):
    """A memory field of /proc/self/status in MiB (Linux), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _rss_mb():
    """Current resident set size."""
    return _status_mb("VmRSS") or 0.0


def _peak_rss_mb():
    """Peak resident set size of this process since exec.

    VmHWM, not ru_maxrss: on Linux ru_maxrss survives fork+exec, so a child started by a
    parent that had imported torch would report the parent's peak.
    """
    peak = _status_mb("VmHWM")
    if peak is None:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return peak


def measure_one(model_name, framework, backend, threads, steps, warmup, repeat, profile=None):
    """Best-of-``repeat`` throughput of ``steps`` steps, and the process's peak memory."""
    batches = DATA[model_name](8)
    if framework == "torch":
        import torch
        version = f"torch {torch.__version__}"
        rss_before = _rss_mb()
        step = torch_step(model_name, batches, threads)
    else:
        import needle as ndl
        if backend == "cpu":
            try:
                import needle_cpu
                needle_cpu.set_num_threads(threads)
            except ImportError:
                pass
        version = f"needle {ndl.__version__}"
        rss_before = _rss_mb()
        step = needle_step(model_name, backend, batches)
    for _ in range(warmup):
        step()
    if profile:
        import cProfile
        cProfile.runctx("for _ in range(steps): step()", globals(), dict(step=step, steps=steps), profile)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(steps):
            loss = step()
        best = min(best, time.perf_counter() - start)
    peak = _peak_rss_mb()
    return dict(model=model_name, framework=framework, backend=backend, version=version, threads=threads,
                unit=UNITS[model_name], throughput=steps * SAMPLES[model_name]() / best,
                step_ms=best / steps * 1e3, peak_rss_mb=peak, peak_over_setup_mb=peak - rss_before,
                final_loss=float(loss))


def run_child(model_name, framework, backend, threads, steps, warmup, repeat, timeout=900):
    """``measure_one`` in a fresh interpreter; a failure comes back as ``{"error": ...}``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", model_name, framework, backend,
           "--threads", str(threads), "--steps", str(steps), "--warmup", str(warmup), "--repeat", str(repeat)]
    try:
        proc = subprocess.run(cmd, env=thread_env(threads), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(model=model_name, framework=framework, backend=backend, error=f"timed out after {timeout}s")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return dict(model=model_name, framework=framework, backend=backend, error=tail)


def run_all(models, backends, threads, steps=None, warmup=2, repeat=3, with_torch=True, log=print):
    """Every (model, framework, backend) in its own subprocess; returns the rows."""
    rows = []
    for model_name in models:
        n = (steps or {}).get(model_name) or DEFAULT_STEPS[model_name]
        jobs = [("needle", b) for b in backends] + ([("torch", "cpu")] if with_torch else [])
        for framework, backend in jobs:
            row = run_child(model_name, framework, backend, threads, n, warmup, repeat)
            rows.append(row)
            if "error" in row:
                log(f"  {model_name:8s} {framework:6s} {backend:6s} {row['error']}")
            else:
                log(f"  {model_name:8s} {framework:6s} {backend:6s} {row['throughput']:10.1f} {row['unit']}"
                    f"  {row['step_ms']:8.2f} ms/step  peak {row['peak_rss_mb']:7.1f} MiB")
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "FRAMEWORK", "BACKEND"),
                        help="run one measurement in this process and print it as JSON")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--backends", default="numpy,cpu", help="needle backends (comma-separated)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, help="timed steps per repeat (default: per model)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--profile", help="with --one: write cProfile stats of the timed steps here")
    parser.add_argument("--json", help="write the rows to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeat, args.warmup = 1, 1
    if args.one:
        model_name, framework, backend = args.one
        steps = args.steps or DEFAULT_STEPS[model_name]
        print(json.dumps(measure_one(model_name, framework, backend, args.threads, steps, args.warmup,
                                     args.repeat, args.profile)))
        return None
    models = [m for m in args.models.split(",") if m]
    steps = {m: args.steps for m in models} if args.steps else None
    rows = run_all(models, args.backends.split(","), args.threads, steps, args.warmup, args.repeat,
                   with_torch=not args.no_torch)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(benchmark="training", threads=args.threads, rows=rows), indent=2))
    return rows


if __name__ == "__main__":
    main()
