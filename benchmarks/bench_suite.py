"""The benchmark suite: Needle against numpy and PyTorch, in the same run, on every backend.

Sections (each for every enabled Needle backend):
  matmul       GFLOP/s of square float32 matmuls by size (NDArray ``@``, torch.mm, numpy ``@``)
  elementwise  GB/s of ``a + b`` by size (bytes read and written)
  eager        cost per op of a small add (with and without grad) and of a 1,000-op chain
               forward+backward (from bench_autograd.py)
  training     throughput and peak memory of the MLP (MNIST), ResNet9 (CIFAR-shaped) and the LSTM
               language model, each beside the same PyTorch model (bench_training.py; one fresh
               subprocess per model, framework and backend)

It prints a table of absolute figures and ratios, writes JSON (``--json``), draws a PNG of the
ratios to PyTorch (``--png``), and compares with an earlier JSON (``--compare old.json``),
flagging regressions over 10%.

    python benchmarks/bench_suite.py [--threads 2] [--sections matmul,elementwise,eager,training]
        [--backends numpy,cpu,cuda] [--quick] [--json results/suite.json] [--png results/suite.png]
        [--compare old.json]
    python benchmarks/bench_suite.py --compare-only old.json new.json

Ratios are always "Needle speed / reference speed": above 1 Needle is faster, for every metric
(times are inverted so that one rule reads the whole table).
"""
import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_training  # noqa: E402  (sets no threads by itself; safe to import before numpy)


def _threads_from_argv(argv):
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--threads="):
            return arg.split("=", 1)[1]
    return "2"


# Thread counts must be in the environment before numpy (OpenBLAS) or needle-cpu start their pools.
if __name__ == "__main__":
    for _var in bench_training.THREAD_VARS:
        os.environ[_var] = _threads_from_argv(sys.argv)

import numpy as np  # noqa: E402

SECTIONS = ("matmul", "elementwise", "eager", "training")
MATMUL_SIZES = (64, 256, 512, 1024)
EWISE_SIZES = (2**12, 2**16, 2**20, 2**23)
REGRESSION = 0.10


def best_seconds(fn, min_time=0.05, repeat=5):
    """Best-of-``repeat`` seconds per call, each repeat running ``fn`` for about ``min_time``."""
    fn()
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(min_time / once))
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def _torch(threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def _row(section, metric, unit, higher_is_better, backend, needle, numpy_value=None, torch_value=None, **extra):
    def ratio(ref):
        if ref is None or needle is None or not ref or not needle:
            return None
        return needle / ref if higher_is_better else ref / needle
    return dict(section=section, metric=metric, unit=unit, higher_is_better=higher_is_better, backend=backend,
                needle=needle, numpy=numpy_value, torch=torch_value, ratio_torch=ratio(torch_value),
                ratio_numpy=ratio(numpy_value), **extra)


def _sync(device):
    """Finish queued device work (a CUDA backend is asynchronous): read one element back."""
    def sync(arr):
        if device.name == "cuda":
            arr[(0,) * arr.ndim].numpy()
    return sync


# ---- sections --------------------------------------------------------------------------------------
def bench_matmul(devices, threads, quick):
    torch = _torch(threads)
    rows, rng = [], np.random.default_rng(0)
    for n in MATMUL_SIZES[:3] if quick else MATMUL_SIZES:
        a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
        flops = 2.0 * n ** 3
        ref_np = flops / best_seconds(lambda: a @ b) / 1e9
        ref_t = None
        if torch is not None:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            ref_t = flops / best_seconds(lambda: torch.mm(ta, tb)) / 1e9
        for dev in devices:
            from needle.backend_ndarray import NDArray
            x, y = NDArray(a, device=dev), NDArray(b, device=dev)
            sync = _sync(dev)
            gflops = flops / best_seconds(lambda: sync(x @ y)) / 1e9
            rows.append(_row("matmul", f"{n}x{n}x{n}", "GFLOP/s", True, dev.name, gflops, ref_np, ref_t))
    return rows


def bench_elementwise(devices, threads, quick):
    torch = _torch(threads)
    rows, rng = [], np.random.default_rng(0)
    for n in EWISE_SIZES[:3] if quick else EWISE_SIZES:
        a, b = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
        nbytes = 3.0 * n * 4  # two reads, one write
        ref_np = nbytes / best_seconds(lambda: a + b) / 1e9
        ref_t = None
        if torch is not None:
            ta, tb = torch.from_numpy(a), torch.from_numpy(b)
            ref_t = nbytes / best_seconds(lambda: ta + tb) / 1e9
        for dev in devices:
            from needle.backend_ndarray import NDArray
            x, y = NDArray(a, device=dev), NDArray(b, device=dev)
            sync = _sync(dev)
            gbs = nbytes / best_seconds(lambda: sync(x + y)) / 1e9
            rows.append(_row("elementwise", f"add n={n}", "GB/s", True, dev.name, gbs, ref_np, ref_t))
    return rows


def bench_eager(devices, threads, quick):
    import bench_autograd
    _torch(threads)
    repeat = 3 if quick else 7
    ref_np = bench_autograd.numpy_cases(repeat)
    ref_t = bench_autograd.torch_cases(repeat) or {}
    rows = []
    for dev in devices:
        for metric, value in bench_autograd.needle_cases(dev, repeat).items():
            name, unit = metric.rsplit(" (", 1)
            rows.append(_row("eager", name, unit.rstrip(")"), False, dev.name, value, ref_np.get(metric),
                             ref_t.get(metric)))
    return rows


def bench_train(devices, threads, quick, log=print):
    steps = dict(mlp=10, resnet9=1, lstm=2) if quick else None
    raw = bench_training.run_all(bench_training.MODELS, [d.name if d.name != "cpu_numpy" else "numpy"
                                                         for d in devices], threads, steps=steps,
                                 warmup=1 if quick else 2, repeat=1 if quick else 3, log=log)
    torch_rows = {r["model"]: r for r in raw if r["framework"] == "torch" and "error" not in r}
    rows = []
    for r in raw:
        if r["framework"] != "needle":
            continue
        ref = torch_rows.get(r["model"], {})
        if "error" in r:
            rows.append(_row("training", r["model"], bench_training.UNITS[r["model"]], True, r["backend"], None,
                             None, ref.get("throughput"), note=r["error"]))
            continue
        rows.append(_row("training", r["model"], r["unit"], True, r["backend"], r["throughput"], None,
                         ref.get("throughput"), step_ms=r["step_ms"], peak_rss_mb=r["peak_rss_mb"],
                         torch_peak_rss_mb=ref.get("peak_rss_mb"), peak_over_setup_mb=r["peak_over_setup_mb"],
                         torch_peak_over_setup_mb=ref.get("peak_over_setup_mb")))
    return rows


# ---- output ----------------------------------------------------------------------------------------
def _fmt(v, width=10):
    if v is None:
        return f"{'-':>{width}}"
    return f"{v:>{width}.3g}" if abs(v) < 1000 else f"{v:>{width}.0f}"


def _fmt_ratio(v):
    return f"{'-':>9}" if v is None else f"{v:>8.2f}x"


def print_table(rows, out=print):
    out(f"{'section':<12}{'metric':<28}{'unit':<10}{'backend':<10}{'needle':>10}{'numpy':>10}{'torch':>10}"
        f"{'vs torch':>9}{'vs numpy':>9}  peak MiB needle/torch")
    for r in rows:
        line = (f"{r['section']:<12}{r['metric']:<28}{r['unit']:<10}{r['backend']:<10}{_fmt(r['needle'])}"
                f"{_fmt(r['numpy'])}{_fmt(r['torch'])}{_fmt_ratio(r['ratio_torch'])}{_fmt_ratio(r['ratio_numpy'])}")
        if r.get("peak_rss_mb"):
            line += f"  {r['peak_rss_mb']:.0f}/{r.get('torch_peak_rss_mb') or 0:.0f}"
        if r.get("note"):
            line += f"  {r['note']}"
        out(line)
    out("ratios: Needle speed / reference speed (above 1: Needle is faster; times are inverted)")


def draw_png(rows, path):
    """Bar chart of the ratio to PyTorch, one bar per benchmark and backend (log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["ratio_torch"]]
    if not rows:
        return
    backends = sorted({r["backend"] for r in rows})
    labels = list(dict.fromkeys(f"{r['section']}: {r['metric']}" for r in rows))
    width = 0.8 / len(backends)
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * len(labels) + 2), 5))
    for i, backend in enumerate(backends):
        values = {f"{r['section']}: {r['metric']}": r["ratio_torch"] for r in rows if r["backend"] == backend}
        xs = [j + i * width for j, lab in enumerate(labels) if lab in values]
        ax.bar(xs, [values[lab] for lab in labels if lab in values], width, label=f"needle {backend}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))])
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("Needle speed / PyTorch speed (log)")
    ax.set_title("Needle vs PyTorch CPU (same run; above 1 = Needle faster)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _key(r):
    return f"{r['section']}/{r['metric']}/{r['backend']}"


def compare(old, new, out=print, threshold=REGRESSION):
    """Per-metric change of Needle's figure (and its ratio to torch); returns the regressed keys.

    A change is "speed now / speed then" (times inverted), so below 1 - threshold is a regression.
    """
    before = {_key(r): r for r in old["results"]}
    regressions = []
    out(f"{'metric':<52}{'then':>10}{'now':>10}{'change':>9}{'ratio then':>12}{'ratio now':>11}")
    for r in new["results"]:
        o = before.get(_key(r))
        if o is None or not o.get("needle") or not r.get("needle"):
            continue
        change = r["needle"] / o["needle"] if r["higher_is_better"] else o["needle"] / r["needle"]
        flag = ""
        if change < 1 - threshold:
            flag = "  REGRESSION"
            regressions.append(_key(r))
        elif change > 1 + threshold:
            flag = "  faster"
        out(f"{_key(r):<52}{_fmt(o['needle'])}{_fmt(r['needle'])}{change:>8.2f}x"
            f"{_fmt_ratio(o.get('ratio_torch')):>12}{_fmt_ratio(r.get('ratio_torch')):>11}{flag}")
    listed = ": " + ", ".join(regressions) if regressions else ""
    out(f"{len(regressions)} regression(s) over {threshold:.0%}{listed}")
    return regressions


def machine_info(threads):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = dict(cpu=cpu, cpus=os.cpu_count(), threads=threads, python=platform.python_version(),
                numpy=np.__version__, time=time.strftime("%Y-%m-%d %H:%M:%S"),
                omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "library default"))
    try:
        info["load_avg"] = os.getloadavg()
    except OSError:
        pass
    try:
        import needle as ndl
        info["needle"] = ndl.__version__
    except ImportError:
        pass
    torch = _torch(threads)
    if torch is not None:
        info["torch"] = torch.__version__
    try:
        import needle_cpu
        info["needle_cpu_isa"] = needle_cpu.isa()
    except Exception:
        pass
    return info


def pick_devices(names, log=print):
    import needle as ndl
    devices = []
    for name in names:
        dev = ndl.cpu_numpy() if name in ("numpy", "np") else ndl.device(name)
        if dev.enabled():
            devices.append(dev)
        else:
            log(f"needle {name}: skipped ({dev.disabled_reason})")
    return devices


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--backends", default="numpy,cpu,cuda", help="Needle backends to try (comma-separated)")
    parser.add_argument("--quick", action="store_true", help="fewer sizes, steps and repeats (a smoke run)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--png", help="draw the ratios to PyTorch here (default: beside --json)")
    parser.add_argument("--compare", metavar="OLD_JSON", help="compare with an earlier run and flag regressions")
    parser.add_argument("--compare-only", nargs=2, metavar=("OLD_JSON", "NEW_JSON"),
                        help="compare two saved runs without measuring")
    parser.add_argument("--fail-on-regression", action="store_true", help="exit 1 when --compare flags any")
    args = parser.parse_args(argv)

    if args.compare_only:
        old, new = (json.loads(Path(p).read_text()) for p in args.compare_only)
        regressions = compare(old, new)
        return 1 if regressions and args.fail_on_regression else 0

    sections = [s for s in args.sections.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"--sections: unknown {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    meta = machine_info(args.threads)
    print(f"cpu: {meta['cpu']} ({meta['cpus']} cpus), threads {args.threads}, python {meta['python']}, "
          f"numpy {meta['numpy']}, torch {meta.get('torch', 'not installed')}, load {meta.get('load_avg')}",
          flush=True)
    devices = pick_devices(args.backends.split(","))
    runners = dict(matmul=bench_matmul, elementwise=bench_elementwise, eager=bench_eager, training=bench_train)
    rows = []
    for section in sections:
        print(f"[{section}]", flush=True)
        start = time.perf_counter()
        rows += runners[section](devices, args.threads, args.quick)
        print(f"[{section}] {time.perf_counter() - start:.0f}s", flush=True)
    print()
    print_table(rows)
    result = dict(benchmark="suite", meta=meta, results=rows)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    png = args.png or (str(Path(args.json).with_suffix(".png")) if args.json else None)
    if png:
        try:
            draw_png(rows, png)
            print(f"wrote {png}")
        except ImportError:
            print("matplotlib not installed: no chart")
    if args.compare:
        print()
        regressions = compare(json.loads(Path(args.compare).read_text()), result)
        if regressions and args.fail_on_regression:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
