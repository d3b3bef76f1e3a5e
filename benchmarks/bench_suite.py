"""The benchmark suite: Needle against numpy and PyTorch, in the same run, with the machine's noise.

Modes (2 threads, AMD EPYC / Xeon class, 2 quiet cores):
  --quick   about 3 minutes: matmul/elementwise at three sizes, eager, six model configurations
            (mlp, mlp-w512-b64, resnet9-b64-adam, lstm-v10k, transformer-v2k, eager-add-grad)
            once each, the OpenBLAS case; a smoke run, its ratios are one sample each
  (full)    about 15 minutes: every size, every configuration of bench_training.CONFIGS (the MLP
            sweep over batch 16..1024 and width 100..1024, ResNet9 at batch 64 and 128 with Adam
            and SGD, the LSTM LM at vocabularies 2,000 and 10,000, the Transformer LM, the eager
            add with grad) in 3 rounds of fresh processes, frameworks alternating; median and range

Sections (each for every enabled Needle backend):
  peak         the machine's fp32 peak, measured once: needle-cpu's GEMM on cache-resident operands
  matmul       GFLOP/s of square float32 matmuls by size (NDArray ``@``, torch.mm, numpy ``@``)
  elementwise  GB/s of ``a + b`` by size (bytes read and written)
  eager        cost per op of a small add (with and without grad) and of a 1,000-op chain
               forward+backward (from bench_autograd.py, in this process)
  training     throughput, fraction of peak and peak memory of each model configuration beside
               the same PyTorch model (bench_training.py; one fresh process per run)
  openblas     needle-cpu's GEMM right after numpy's multithreaded BLAS (bench_openblas.py)

Noise: every measurement records the load average, the CPU time it got and the CPU time the rest
of the machine used; one where other processes used more than half a core, the process got under
75% of its threads' cores, or the load average exceeded threads + 0.5 is marked NOISY (table,
JSON, PNG). ``--strict`` refuses to print ratios when any row is noisy (exit status 3).

It prints a table of absolute figures and ratios, writes JSON (``--json``), draws a PNG of the
ratios to PyTorch (``--png``), and compares with an earlier JSON (``--compare old.json``),
flagging regressions over 10%.

    python benchmarks/bench_suite.py [--quick] [--strict] [--threads 2] [--backends numpy,cpu,cuda]
        [--sections peak,matmul,elementwise,eager,training,openblas] [--configs a,b,...]
        [--json results/suite.json] [--png results/suite.png] [--compare old.json]
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

SECTIONS = ("peak", "matmul", "elementwise", "eager", "training", "openblas")
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
def bench_matmul(devices, threads, quick, state):
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


def bench_elementwise(devices, threads, quick, state):
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


def bench_eager(devices, threads, quick, state):
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


def measure_peak(devices, threads):
    """The machine's fp32 GEMM peak in GFLOP/s: the best of needle-cpu's GEMM (else numpy's) on
    cache-resident square operands (n = 128 ... 384: three operands fit in L2)."""
    rng, best = np.random.default_rng(0), 0.0
    cpu = next((d for d in devices if d.name == "cpu"), None)
    for n in (128, 192, 256, 384):
        a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
        if cpu is not None:
            from needle.backend_ndarray import NDArray
            x, y = NDArray(a, device=cpu), NDArray(b, device=cpu)
            seconds = best_seconds(lambda: x @ y, min_time=0.05, repeat=7)
        else:
            seconds = best_seconds(lambda: a @ b, min_time=0.05, repeat=7)
        best = max(best, 2.0 * n ** 3 / seconds / 1e9)
    return best


def bench_peak(devices, threads, quick, state):
    state["peak_gflops"] = measure_peak(devices, threads)
    return [_row("peak", "fp32 GEMM peak (cache-resident)", "GFLOP/s", True, "cpu", state["peak_gflops"])]


def bench_train(devices, threads, quick, state, configs=None, log=print):
    names = configs or (bench_training.QUICK if quick else tuple(bench_training.CONFIGS))
    runs, summary = bench_training.run_all(
        names, [d.name if d.name != "cpu_numpy" else "numpy" for d in devices], threads, rounds=1 if quick else 3,
        block_s=0.3 if quick else 0.5, warmup=1 if quick else 2, repeat=2 if quick else 3, log=log)
    state["training_runs"] = runs
    if "peak_gflops" not in state:  # --sections without peak: the fractions still need it
        state["peak_gflops"] = measure_peak(devices, threads)
    peak = state.get("peak_gflops")
    torch_rows = {r["config"]: r for r in summary if r["framework"] == "torch" and "error" not in r}
    rows = []
    for r in summary:
        if r["framework"] != "needle":
            continue
        ref = torch_rows.get(r["config"], {})
        unit = bench_training.CONFIGS[r["config"]]["unit"]
        r["backend"] = "cpu_numpy" if r["backend"] == "numpy" else r["backend"]  # the eager rows' name
        if "error" in r:
            rows.append(_row("training", r["config"], unit, True, r["backend"], None, None, ref.get("throughput"),
                             note=r["error"]))
            continue
        noisy = r["noisy"] or ref.get("noisy", False)
        reasons = sorted(set(r["noise_reasons"]) | set(ref.get("noise_reasons", [])))

        def frac(row):
            return row["gflops"] / peak if peak and row.get("gflops") else None
        rows.append(_row("training", r["config"], unit, True, r["backend"], r["throughput"], None,
                         ref.get("throughput"), step_ms=r["step_ms"], torch_step_ms=ref.get("step_ms"),
                         range=(r["low"], r["high"]), torch_range=(ref.get("low"), ref.get("high")),
                         rounds=r["rounds"], peak_fraction=frac(r), torch_peak_fraction=frac(ref) if ref else None,
                         gflops=r["gflops"], torch_gflops=ref.get("gflops"), peak_rss_mb=r["peak_rss_mb"],
                         torch_peak_rss_mb=ref.get("peak_rss_mb"), peak_over_setup_mb=r["peak_over_setup_mb"],
                         torch_peak_over_setup_mb=ref.get("peak_over_setup_mb"), noisy=noisy,
                         noise_reasons=reasons, load_max=max(v for v in (r["load_max"], ref.get("load_max"), 0)
                                                              if v is not None)))
    return rows


def bench_openblas(devices, threads, quick, state, log=print):
    import bench_openblas
    if not any(d.name == "cpu" for d in devices):
        return []
    result = bench_openblas.run_all(threads, 1024, log=log)
    alone = result.get("alone")
    return [_row("openblas", f"gemm 1024, {case}", "GFLOP/s", True, "cpu", value,
                 note=f"{value / alone:.2f}x of alone" if value and alone else None)
            for case, value in result.items()]


# ---- output ----------------------------------------------------------------------------------------
def _fmt(v, width=10):
    if v is None:
        return f"{'-':>{width}}"
    return f"{v:>{width}.3g}" if abs(v) < 1000 else f"{v:>{width}.0f}"


def _fmt_ratio(v):
    return f"{'-':>9}" if v is None else f"{v:>8.2f}x"


def _pct(v):
    return "-" if v is None else f"{100 * v:.0f}%"


def noisy_rows(rows):
    return [r for r in rows if r.get("noisy")]


def print_table(rows, out=print, strict=False):
    """The table; with ``strict`` and any noisy row, the ratio columns are left out."""
    hide = strict and bool(noisy_rows(rows))
    out(f"{'section':<12}{'metric':<32}{'unit':<10}{'backend':<8}{'needle':>10}{'numpy':>10}{'torch':>10}"
        f"{'vs torch':>9}{'vs numpy':>9}  range needle | torch   %peak n/t  MiB n/t")
    for r in rows:
        ratio_t, ratio_n = (None, None) if hide else (r["ratio_torch"], r["ratio_numpy"])
        line = (f"{r['section']:<12}{r['metric']:<32}{r['unit']:<10}{r['backend']:<8}{_fmt(r['needle'])}"
                f"{_fmt(r['numpy'])}{_fmt(r['torch'])}{_fmt_ratio(ratio_t)}{_fmt_ratio(ratio_n)}")
        if r.get("range"):
            (lo, hi), (tlo, thi) = r["range"], r.get("torch_range") or (None, None)
            rng = f"{_fmt(lo, 0)}-{_fmt(hi, 0)}" + (f" | {_fmt(tlo, 0)}-{_fmt(thi, 0)}" if tlo else "")
            line += f"  {rng:<22}{_pct(r.get('peak_fraction')):>5}/{_pct(r.get('torch_peak_fraction')):<5}"
        if r.get("peak_rss_mb"):
            line += f"  {r['peak_rss_mb']:.0f}/{r.get('torch_peak_rss_mb') or 0:.0f}"
        if r.get("noisy"):
            line += f"  NOISY ({', '.join(r.get('noise_reasons', []))}; load {r.get('load_max') or 0:.2f})"
        if r.get("note"):
            line += f"  {r['note']}"
        out(line)
    out("ratios: Needle speed / reference speed (above 1: Needle is faster; times are inverted); "
        "training rows: median of rounds, range min-max; %peak: matmul FLOPs / time / fp32 peak")
    noisy = noisy_rows(rows)
    if noisy:
        out(f"NOISY: {len(noisy)} of {len(rows)} rows were measured while the machine was busy "
            f"(others > {bench_training.OTHERS_MAX} cores, CPU share < {bench_training.CPU_SHARE_MIN:.0%}, or load > "
            f"threads + {bench_training.LOAD_MARGIN}); do not read their ratios")
        if hide:
            out("--strict: ratios withheld because this run is noisy")
    else:
        out("quiet run: no row was marked noisy")


def draw_png(rows, path, meta=None):
    """Bar chart of the ratio to PyTorch, one bar per benchmark and backend (log scale); noisy
    measurements are hatched and labelled."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["ratio_torch"]]
    if not rows:
        return
    backends = sorted({r["backend"] for r in rows})

    def label(r):
        return f"{r['section']}: {r['metric']}" + (" (NOISY)" if r.get("noisy") else "")
    labels = list(dict.fromkeys(label(r) for r in rows))
    width = 0.8 / len(backends)
    fig, ax = plt.subplots(figsize=(max(8, 0.45 * len(labels) + 2), 5.5))
    for i, backend in enumerate(backends):
        mine = {label(r): r for r in rows if r["backend"] == backend}
        for j, lab in enumerate(labels):
            if lab in mine:
                noisy = mine[lab].get("noisy")
                ax.bar(j + i * width, mine[lab]["ratio_torch"], width, color=f"C{i}", alpha=0.45 if noisy else 1.0,
                       hatch="//" if noisy else None, label=f"needle {backend}" if j == 0 or lab == labels[0] else None)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))])
    ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("Needle speed / PyTorch speed (log)")
    n_noisy = len(noisy_rows(rows))
    load = (meta or {}).get("load_avg")
    ax.set_title("Needle vs PyTorch CPU (same run; above 1 = Needle faster)\n"
                 + (f"{n_noisy} of {len(rows)} bars NOISY (hatched): machine busy" if n_noisy else "quiet run")
                 + (f"; load at start {load[0]:.2f}" if load else ""), fontsize=9)
    handles, names = ax.get_legend_handles_labels()
    uniq = dict(zip(names, handles))
    ax.legend(uniq.values(), uniq.keys())
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
        if o.get("noisy") or r.get("noisy"):
            flag = "  (noisy: not judged)"
        elif change < 1 - threshold:
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


def _suite_snapshot():
    """``bench_training.snapshot`` with the CPU time of finished children counted as this process's."""
    snap = bench_training.snapshot()
    times = os.times()
    snap["cpu"] += times.children_user + times.children_system
    return snap


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="threads for every library (default 2)")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--backends", default="numpy,cpu,cuda", help="Needle backends to try (comma-separated)")
    parser.add_argument("--configs", help="training configurations (default: all, or the quick set with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="about 3 minutes (the full run: about 15): fewer sizes and configurations, one round")
    parser.add_argument("--strict", action="store_true",
                        help="refuse to print ratios when any measurement was noisy (exit status 3)")
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
    configs = [bench_training.resolve(c) for c in args.configs.split(",") if c] if args.configs else None
    meta = machine_info(args.threads)
    print(f"cpu: {meta['cpu']} ({meta['cpus']} cpus), threads {args.threads}, python {meta['python']}, "
          f"numpy {meta['numpy']}, torch {meta.get('torch', 'not installed')}, load {meta.get('load_avg')}",
          flush=True)
    devices = pick_devices(args.backends.split(","))
    runners = dict(peak=bench_peak, matmul=bench_matmul, elementwise=bench_elementwise, eager=bench_eager,
                   training=lambda *a: bench_train(*a, configs=configs), openblas=bench_openblas)
    rows, state = [], {}
    for section in sections:
        print(f"[{section}]", flush=True)
        start, before = time.perf_counter(), _suite_snapshot()
        new = runners[section](devices, args.threads, args.quick, state)
        if section != "training":  # training rows carry each child's own noise
            n = bench_training.noise(before, _suite_snapshot(), 1)
            for r in new:
                r.update(noisy=n["noisy"], noise_reasons=[x.split(" ")[0] for x in n["reasons"]],
                         load_max=max(v for v in (n["load_before"], n["load_after"], 0) if v is not None))
            if n["noisy"]:
                print(f"[{section}] NOISY: {', '.join(n['reasons'])}", flush=True)
        rows += new
        print(f"[{section}] {time.perf_counter() - start:.0f}s", flush=True)
    try:
        meta["load_avg_end"] = os.getloadavg()
    except OSError:
        pass
    meta["noisy_rows"] = len(noisy_rows(rows))
    meta["peak_gflops"] = state.get("peak_gflops")
    print()
    print_table(rows, strict=args.strict)
    result = dict(benchmark="suite", meta=meta, results=rows, training_runs=state.get("training_runs", []))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    png = args.png or (str(Path(args.json).with_suffix(".png")) if args.json else None)
    if png:
        try:
            draw_png(rows, png, meta)
            print(f"wrote {png}")
        except ImportError:
            print("matplotlib not installed: no chart")
    if args.strict and noisy_rows(rows):
        return 3
    if args.compare:
        print()
        regressions = compare(json.loads(Path(args.compare).read_text()), result)
        if regressions and args.fail_on_regression:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
