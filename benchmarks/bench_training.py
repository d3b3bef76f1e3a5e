"""Training throughput, peak memory and machine noise: Needle beside PyTorch on the same data.

Each configuration of ``CONFIGS`` is a whole training step (forward, loss, backward, optimiser
update, a read of the loss so the work is finished) on batches built before timing, so the figures
measure the framework, not a data pipeline:

  mlp                  the examples' MLP: 784-128-10 on the bundled MNIST subset, batch 64, Adam
  mlp-wW-bB            784-W-W-10, SGD, batch B: the sweep over batch and width
  resnet9-bB-OPT       the course's ResNet9 on CIFAR-shaped random images, batch B, Adam or SGD+momentum
  lstm-vV              the LSTM language model (examples/lm_text.py's shape: embedding 96, hidden 192,
                       seq 24, batch 32) with a V-word vocabulary
  transformer-vV       the same language model with one pre-norm causal Transformer layer (4 heads),
                       beside torch.nn.TransformerEncoder of the same shape
  eager-add-grad       an (8, 8) add of two tensors that require grad (the eager per-op cost)

Every (configuration, framework, backend) runs in a fresh subprocess (peaks do not mix, thread
counts are set before any import), ``--rounds`` times, the frameworks' order alternating from round
to round; a row reports the median over rounds and the range. Each child records the machine's
state around its timed steps (``noise``): the load average, the CPU time the process got and the
CPU time the rest of the machine used. A measurement is **noisy** when other processes used more
than half a core, when the process got less than 75% of ``threads`` cores, or when the load
average exceeds ``threads + 0.5``.

    python benchmarks/bench_training.py [--configs mlp,resnet9-b64-adam,...] [--backends cpu]
                                        [--threads 2] [--rounds 3] [--json out.json]
    python benchmarks/bench_training.py --one lstm-v10k needle cpu      # one measurement, JSON on stdout
    python benchmarks/bench_training.py --one lstm-v10k needle cpu --profile prof.out   # cProfile it
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

MLP_WIDTHS = (100, 256, 512, 1024)
MLP_BATCHES = (16, 64, 256, 1024)
_LM = dict(kind="lm", embedding=96, hidden=192, layers=1, seq_len=24, batch=32, opt="adam", lr=3e-3,
           num_head=4, dim_head=32, unit="tokens/s")


def _mlp(width, batch, depth=2, opt="sgd", lr=0.01, weight_decay=0.0):
    return dict(kind="mlp", width=width, batch=batch, depth=depth, opt=opt, lr=lr, weight_decay=weight_decay,
                momentum=0.0, unit="images/s")


def _resnet(batch, opt):
    return dict(kind="resnet9", batch=batch, opt=opt, lr=1e-3 if opt == "adam" else 0.01, momentum=0.9,
                weight_decay=0.0, unit="images/s")


#: Every benchmarked configuration, by name (see the module docstring).
CONFIGS = {
    "mlp": _mlp(128, 64, depth=1, opt="adam", lr=0.002, weight_decay=1e-4),
    **{f"mlp-w{w}-b{b}": _mlp(w, b) for w in MLP_WIDTHS for b in MLP_BATCHES},
    **{f"resnet9-b{b}-{opt}": _resnet(b, opt) for b in (64, 128) for opt in ("adam", "sgd")},
    "lstm-v2k": dict(_LM, seq_model="lstm", vocab=2000),
    "lstm-v10k": dict(_LM, seq_model="lstm", vocab=10000),
    "transformer-v2k": dict(_LM, seq_model="transformer", vocab=2000),
    "eager-add-grad": dict(kind="eager", batch=100, unit="ops/s"),
}
#: Older names, kept for scripts and notes that use them.
ALIASES = {"resnet9": "resnet9-b64-adam", "lstm": "lstm-v2k", "transformer": "transformer-v2k"}
#: The quick run's configurations (about 3 minutes at 1 round on 2 cores).
QUICK = ("mlp", "mlp-w512-b64", "resnet9-b64-adam", "lstm-v10k", "transformer-v2k", "eager-add-grad")
#: The Needle numpy backend is 3-30x slower: it runs only these (the reference backend's figures).
NUMPY_BACKEND = ("mlp", "resnet9-b64-adam", "lstm-v2k")

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NEEDLE_CPU_THREADS")
#: Noise thresholds: cores used by other processes, share of the requested cores the process got,
#: load average beyond the benchmark's own threads.
OTHERS_MAX, CPU_SHARE_MIN, LOAD_MARGIN = 0.5, 0.75, 0.5


def resolve(name):
    """The configuration name for ``name`` (an alias or a name of ``CONFIGS``)."""
    name = ALIASES.get(name, name)
    if name not in CONFIGS:
        raise SystemExit(f"unknown configuration {name!r}; choose from {', '.join(CONFIGS)} "
                         f"(or {', '.join(ALIASES)})")
    return name


def thread_env(threads):
    """Environment for a child that uses ``threads`` threads in every library.

    Each library keeps its own idle-thread policy (OpenMP's spin-then-sleep default for PyTorch;
    needle-cpu's pool spins at most NEEDLE_CPU_SPIN_US, 1 ms, yielding). Forcing
    OMP_WAIT_POLICY=PASSIVE made every PyTorch op wake a sleeping thread (its MLP step 0.7 -> 2.1 ms
    on an AVX-512 Xeon), ACTIVE made OpenMP threads spin against everyone else.
    """
    env = dict(os.environ)
    for var in THREAD_VARS:
        env[var] = str(threads)
    return env


# ---- machine noise -------------------------------------------------------------------------------
def _machine_busy_s():
    """CPU seconds all processes on the machine have used (user+nice+system+irq+softirq+steal), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(fields[:3]) + sum(fields[5:8])
    return busy / os.sysconf("SC_CLK_TCK")


def snapshot():
    """The clocks and counters ``noise`` compares: wall, this process's CPU, the machine's CPU, load."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return dict(wall=time.perf_counter(), cpu=time.process_time(), machine=_machine_busy_s(), load=load)


def noise(before, after, threads):
    """How busy the machine was between two snapshots, and whether that makes the measurement noisy.

    ``threads`` is how many cores the measured work keeps busy. Returns the load average before and
    after, the CPU share the process got (its CPU time / (wall * threads)), the cores the other
    processes used, ``noisy`` and the reasons.
    """
    wall = max(after["wall"] - before["wall"], 1e-9)
    cpu = after["cpu"] - before["cpu"]
    share = cpu / (wall * threads)
    others = None
    if before["machine"] is not None and after["machine"] is not None:
        others = max(0.0, (after["machine"] - before["machine"] - cpu) / wall)
    loads = [v for v in (before["load"], after["load"]) if v is not None]
    reasons = []
    if others is not None and others > OTHERS_MAX:
        reasons.append(f"others {others:.2f} cores")
    if share < CPU_SHARE_MIN:
        reasons.append(f"cpu {share:.0%} of {threads}")
    if loads and max(loads) > threads + LOAD_MARGIN:
        reasons.append(f"load {max(loads):.2f}")
    return dict(load_before=before["load"], load_after=after["load"], wall_s=wall, cpu_s=cpu, cpu_share=share,
                others_cores=others, threads=threads, noisy=bool(reasons), reasons=reasons)


# ---- data (numpy, shared by both frameworks) -----------------------------------------------------
def mlp_data(cfg, n_batches):
    import numpy as np
    b = cfg["batch"]
    try:
        import needle.data as data
        paths = data.mnist_paths()
        images = data.MNISTDataset(paths["train_images"], paths["train_labels"])
        x = np.asarray(images.images, dtype=np.float32).reshape(-1, 784)
        y = np.asarray(images.labels)
    except Exception:  # needle-data absent: MNIST-shaped noise keeps the benchmark runnable
        x, y = None, None
    if x is None or len(x) < n_batches * b:
        rng = np.random.default_rng(0)
        x, y = rng.random((n_batches * b, 784), dtype=np.float32), rng.integers(0, 10, n_batches * b)
    return [(x[i * b:(i + 1) * b], y[i * b:(i + 1) * b].astype(np.int64)) for i in range(n_batches)]


def resnet_data(cfg, n_batches):
    import numpy as np
    rng = np.random.default_rng(0)
    b = cfg["batch"]
    return [(rng.random((b, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, b)) for _ in range(n_batches)]


def lm_data(cfg, n_batches):
    import numpy as np
    rng = np.random.default_rng(0)
    return [(rng.integers(0, cfg["vocab"], (cfg["seq_len"], cfg["batch"])),
             rng.integers(0, cfg["vocab"], cfg["seq_len"] * cfg["batch"])) for _ in range(n_batches)]


def eager_data(cfg, n_batches):
    import numpy as np
    return [(np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32), None)]


DATA = dict(mlp=mlp_data, resnet9=resnet_data, lm=lm_data, eager=eager_data)


def samples(cfg):
    """Images, tokens or ops per step."""
    return cfg["seq_len"] * cfg["batch"] if cfg["kind"] == "lm" else cfg["batch"]


# ---- work per step (for the fraction of peak) ----------------------------------------------------
RESNET9_CONVS = ((3, 16, 7, 4), (16, 32, 3, 2), (32, 32, 3, 1), (32, 32, 3, 1), (32, 64, 3, 2), (64, 128, 3, 2),
                 (128, 128, 3, 1), (128, 128, 3, 1))


def train_flops(cfg, framework="needle"):
    """Floating-point operations of one training step's matmuls and convolutions (3x the forward's).

    Elementwise work is left out: the figure says how much of the machine's GEMM peak a step reaches.
    """
    kind, b = cfg["kind"], cfg.get("batch", 0)
    if kind == "mlp":
        dims = [784] + [cfg["width"]] * cfg["depth"] + [10]
        fwd = 2 * b * sum(i * o for i, o in zip(dims, dims[1:]))
    elif kind == "resnet9":
        fwd, size = 0, 32
        for cin, cout, k, s in RESNET9_CONVS:
            size = (size + 2 * (k // 2) - k) // s + 1
            fwd += 2 * b * size * size * cout * cin * k * k
        fwd += 2 * b * (128 * 128 + 128 * 10)
    elif kind == "lm":
        e, h, v, n = cfg["embedding"], cfg["hidden"], cfg["vocab"], cfg["seq_len"]
        if cfg["seq_model"] == "lstm":
            body, head = 2 * (e * 4 * h + h * 4 * h), 2 * h * v
        else:
            inner = cfg["num_head"] * cfg["dim_head"] if framework == "needle" else e
            body, head = 2 * (4 * e * inner + 2 * e * h) + 2 * 2 * n * inner, 2 * e * v
        fwd = (body * cfg["layers"] + head) * n * b
    else:
        return 0
    return 3 * fwd


# ---- Needle --------------------------------------------------------------------------------------
def _needle_optimizer(optim, cfg, params):
    if cfg["opt"] == "adam":
        return optim.Adam(params, lr=cfg["lr"], weight_decay=cfg.get("weight_decay", 0.0))
    return optim.SGD(params, lr=cfg["lr"], momentum=cfg.get("momentum", 0.0), weight_decay=cfg.get("weight_decay", 0.0))


def needle_step(cfg, backend, batches):
    """A function running one training step on the next batch."""
    import numpy as np

    import needle as ndl
    import needle.nn as nn
    import needle.optim as optim

    device = ndl.cpu_numpy() if backend == "numpy" else ndl.device(backend)
    if not device.enabled():
        raise RuntimeError(f"needle backend {backend!r} is not available: {device.disabled_reason}")
    np.random.seed(0)
    kind = cfg["kind"]
    if kind == "eager":
        a = ndl.Tensor(batches[0][0], device=device, requires_grad=True)
        b = ndl.Tensor(batches[0][0], device=device, requires_grad=True)

        def eager_step():
            for _ in range(cfg["batch"]):
                a + b
        return eager_step
    if kind == "mlp":
        layers, width_in = [nn.Flatten()], 784
        for _ in range(cfg["depth"]):
            layers += [nn.Linear(width_in, cfg["width"], device=device), nn.ReLU()]
            width_in = cfg["width"]
        model = nn.Sequential(*layers, nn.Linear(width_in, 10, device=device))
    else:
        sys.path.insert(0, str(HERE.parent / "examples"))
        try:
            from models import LanguageModel, ResNet9
        except (ImportError, AttributeError) as e:
            raise RuntimeError(f"n/a (needs needle.nn.Conv/LSTM: {e})") from None
        if kind == "resnet9":
            model = ResNet9(device=device)
        else:
            model = LanguageModel(cfg["embedding"], cfg["vocab"], cfg["hidden"], cfg["layers"],
                                  seq_model=cfg["seq_model"], seq_len=cfg["seq_len"], num_head=cfg["num_head"],
                                  dim_head=cfg["dim_head"], device=device)
    opt = _needle_optimizer(optim, cfg, model.parameters())
    loss_fn = nn.SoftmaxLoss()
    tensors = [(ndl.Tensor(x.astype(np.float32), device=device, dtype="float32", requires_grad=False),
                ndl.Tensor(y.astype(np.float32), device=device, dtype="float32", requires_grad=False))
               for x, y in batches]
    it, state = [0], [None]
    recurrent = kind == "lm" and cfg["seq_model"] != "transformer"

    def step():
        x, y = tensors[it[0] % len(tensors)]
        it[0] += 1
        if kind == "lm":
            logits, h = model(x, state[0])
            if recurrent:
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
def torch_step(cfg, batches, threads):
    import torch

    import torch_models

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    kind = cfg["kind"]
    if kind == "eager":
        a = torch.tensor(batches[0][0], requires_grad=True)
        b = torch.tensor(batches[0][0], requires_grad=True)

        def eager_step():
            for _ in range(cfg["batch"]):
                a + b
        return eager_step
    model = dict(mlp=torch_models.mlp, resnet9=torch_models.resnet9, lm=torch_models.language_model)[kind](cfg)
    if cfg["opt"] == "adam":
        # Needle's Adam adds weight_decay * w to the gradient: torch's Adam does the same (not AdamW).
        opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"], weight_decay=cfg.get("weight_decay", 0.0))
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg.get("momentum", 0.0),
                              weight_decay=cfg.get("weight_decay", 0.0))
    loss_fn = torch.nn.CrossEntropyLoss()
    tensors = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in batches]
    it, state = [0], [None]
    recurrent = kind == "lm" and cfg["seq_model"] == "lstm"

    def step():
        x, y = tensors[it[0] % len(tensors)]
        it[0] += 1
        if kind == "lm":
            logits, h = model(x, state[0])
            if recurrent:
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


def measure_one(name, framework, backend, threads, block_s=0.5, warmup=2, repeat=3, steps=None, profile=None):
    """Best-of-``repeat`` throughput of blocks of steps lasting about ``block_s`` each (or of ``steps``
    steps), the process's peak memory, and the machine's noise over the timed blocks."""
    name = resolve(name)
    cfg = CONFIGS[name]
    batches = DATA[cfg["kind"]](cfg, 8)
    if framework == "torch":
        import torch
        version = f"torch {torch.__version__}"
        rss_before = _rss_mb()
        step = torch_step(cfg, batches, threads)
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
        step = needle_step(cfg, backend, batches)
    for _ in range(max(warmup, 1)):
        start = time.perf_counter()
        loss = step()
        one = time.perf_counter() - start
    steps = steps or max(1, round(block_s / max(one, 1e-7)))
    if profile:
        import cProfile
        cProfile.runctx("for _ in range(steps): step()", globals(), dict(step=step, steps=steps), profile)
    best = float("inf")
    before = snapshot()
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(steps):
            loss = step()
        best = min(best, time.perf_counter() - start)
    after = snapshot()
    peak = _peak_rss_mb()
    flops = train_flops(cfg, framework)
    # The eager op and a Needle numpy-backend step are single-threaded work.
    busy = 1 if cfg["kind"] == "eager" or backend == "numpy" else threads
    return dict(config=name, framework=framework, backend=backend, version=version, threads=threads,
                unit=cfg["unit"], throughput=steps * samples(cfg) / best, step_ms=best / steps * 1e3, steps=steps,
                gflops=flops * steps / best / 1e9 if flops else None, peak_rss_mb=peak,
                peak_over_setup_mb=peak - rss_before, final_loss=float(loss) if loss is not None else None,
                noise=noise(before, after, busy))


def run_child(name, framework, backend, threads, block_s, warmup, repeat, timeout=900):
    """``measure_one`` in a fresh interpreter; a failure comes back as ``{"error": ...}``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", name, framework, backend,
           "--threads", str(threads), "--block", str(block_s), "--warmup", str(warmup), "--repeat", str(repeat)]
    try:
        proc = subprocess.run(cmd, env=thread_env(threads), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(config=name, framework=framework, backend=backend, error=f"timed out after {timeout}s")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return dict(config=name, framework=framework, backend=backend, error=tail)


def summarize(runs):
    """One row per (config, framework, backend): median throughput over rounds, range, noise."""
    groups = {}
    for r in runs:
        groups.setdefault((r["config"], r["framework"], r["backend"]), []).append(r)
    rows = []
    for (name, framework, backend), rs in groups.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            rows.append(dict(config=name, framework=framework, backend=backend, error=rs[-1]["error"]))
            continue
        values = [r["throughput"] for r in ok]
        med = statistics.median(values)
        mid = min(ok, key=lambda r: abs(r["throughput"] - med))
        reasons = sorted({reason.split(" ")[0] for r in ok for reason in r["noise"]["reasons"]})
        noisy_runs = sum(r["noise"]["noisy"] for r in ok)
        loads = [v for r in ok for v in (r["noise"]["load_before"], r["noise"]["load_after"]) if v is not None]
        others = [r["noise"]["others_cores"] for r in ok if r["noise"]["others_cores"] is not None]
        gflops = [r["gflops"] for r in ok if r.get("gflops")]
        rows.append(dict(config=name, framework=framework, backend=backend, unit=ok[0]["unit"], throughput=med,
                         low=min(values), high=max(values), rounds=len(ok), step_ms=mid["step_ms"],
                         gflops=statistics.median(gflops) if gflops else None,
                         peak_rss_mb=max(r["peak_rss_mb"] for r in ok),
                         peak_over_setup_mb=max(r["peak_over_setup_mb"] for r in ok),
                         noisy=noisy_runs > 0, noisy_runs=noisy_runs, noise_reasons=reasons,
                         load_max=max(loads) if loads else None, others_cores_max=max(others) if others else None,
                         cpu_share_min=min(r["noise"]["cpu_share"] for r in ok)))
    return rows


def run_all(configs, backends, threads, rounds=3, block_s=0.5, warmup=2, repeat=3, with_torch=True, log=print):
    """Every (config, framework, backend) in its own subprocess, ``rounds`` times, the frameworks'
    order alternating between rounds. Returns (per-run results, summary rows)."""
    runs = []
    for rnd in range(rounds):
        for name in configs:
            jobs = [("needle", b) for b in backends if b != "numpy" or name in NUMPY_BACKEND]
            jobs += [("torch", "cpu")] if with_torch else []
            if rnd % 2:
                jobs.reverse()
            for framework, backend in jobs:
                r = run_child(name, framework, backend, threads, block_s, warmup, repeat)
                r["round"] = rnd
                runs.append(r)
                if "error" in r:
                    log(f"  r{rnd} {name:16s} {framework:6s} {backend:6s} {r['error']}")
                else:
                    n = r["noise"]
                    flag = "  NOISY: " + ", ".join(n["reasons"]) if n["noisy"] else ""
                    log(f"  r{rnd} {name:16s} {framework:6s} {backend:6s} {r['throughput']:11.1f} {r['unit']:9s}"
                        f"{r['step_ms']:9.3f} ms/step  load {n['load_after']:.2f}  cpu {n['cpu_share']:.0%}"
                        f"  others {n['others_cores'] or 0:.2f}{flag}")
    return runs, summarize(runs)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", nargs=3, metavar=("CONFIG", "FRAMEWORK", "BACKEND"),
                        help="run one measurement in this process and print it as JSON")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names of CONFIGS")
    parser.add_argument("--backends", default="cpu", help="needle backends (comma-separated)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per measurement")
    parser.add_argument("--block", type=float, default=0.5, help="seconds per timed block of steps")
    parser.add_argument("--steps", type=int, help="with --one: timed steps per block (default: from --block)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="timed blocks per process (best is kept)")
    parser.add_argument("--quick", action="store_true", help="the quick configurations, 1 round")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--profile", help="with --one: write cProfile stats of the timed steps here")
    parser.add_argument("--json", help="write the runs and rows to this file")
    args = parser.parse_args(argv)
    if args.one:
        name, framework, backend = args.one
        print(json.dumps(measure_one(name, framework, backend, args.threads, args.block, args.warmup,
                                     args.repeat, args.steps, args.profile)))
        return None
    configs = [resolve(c) for c in (QUICK if args.quick else args.configs.split(",")) if c]
    runs, rows = run_all(configs, args.backends.split(","), args.threads, 1 if args.quick else args.rounds,
                         args.block, args.warmup, args.repeat, with_torch=not args.no_torch)
    if args.json:
        Path(args.json).write_text(json.dumps(dict(benchmark="training", threads=args.threads, runs=runs,
                                                   rows=rows), indent=2))
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
