"""needle-cpu kernel benchmarks beside numpy, measured in the same run.

Prints fp32 matmul GFLOP/s (square sizes and odd ones), elementwise add/exp GB/s and
reduction GB/s, each as needle-cpu, numpy and the ratio needle/numpy (> 1: needle is faster).
Both sides write into preallocated outputs (numpy with ``out=``); timings are best-of-N.

    python benchmarks/bench_cpu_kernels.py [--quick] [--threads N] [--json out.json]
"""
import argparse
import json
import os
import platform
import time

import numpy as np


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def running_tasks():
    """Runnable tasks on the machine right now (Linux /proc/stat), or None where unknown."""
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("procs_running"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def wait_until_quiet(timeout=2.0):
    """Wait (at most `timeout` s) until this process is the only runnable one, so a round is not
    timed while another program holds a core; True when the machine was quiet."""
    deadline = time.perf_counter() + timeout
    while True:
        n = running_tasks()
        if n is None or n <= 1:
            return True
        if time.perf_counter() > deadline:
            return False
        time.sleep(0.02)


def best_times(fns, min_time, repeats):
    """Best per-call seconds of each function over `repeats` rounds (each round at least `min_time`).

    The functions take turns round by round, so a burst of load from elsewhere hits both sides
    alike instead of whichever happened to run at that moment.
    """
    calls = []
    for fn in fns:
        fn()
        t0 = time.perf_counter()
        fn()
        calls.append(max(1, int(min_time / max(time.perf_counter() - t0, 1e-7))))
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            wait_until_quiet()
            t0 = time.perf_counter()
            for _ in range(calls[i]):
                fn()
            best[i] = min(best[i], (time.perf_counter() - t0) / calls[i])
    return best


def buffer_of(backend, array):
    buf = backend.Array(array.size)
    backend.from_numpy(np.ascontiguousarray(array, dtype=np.float32), buf)
    return buf


def bench_matmul(B, sizes, min_time, repeats, rng):
    rows = []
    for n in sizes:
        a = rng.standard_normal((n, n)).astype(np.float32)
        b = rng.standard_normal((n, n)).astype(np.float32)
        c = np.empty((n, n), np.float32)
        ab, bb, cb = buffer_of(B, a), buffer_of(B, b), B.Array(n * n)
        flops = 2.0 * n ** 3
        t_needle, t_numpy = best_times([lambda: B.matmul(ab, bb, cb, n, n, n), lambda: np.matmul(a, b, out=c)],
                                       min_time, repeats)
        err = np.max(np.abs(np.asarray(cb).reshape(n, n) - c)) / max(1.0, np.max(np.abs(c)))
        assert err < 1e-4, f"matmul n={n}: needle and numpy disagree (relative error {err})"
        rows.append(("matmul", f"n={n}", "GFLOP/s", flops / t_needle / 1e9, flops / t_numpy / 1e9))
    return rows


def bench_elementwise(B, sizes, min_time, repeats, rng):
    rows = []
    for n in sizes:
        x = rng.standard_normal(n).astype(np.float32)
        y = rng.standard_normal(n).astype(np.float32)
        o = np.empty_like(x)
        xb, yb, ob = buffer_of(B, x), buffer_of(B, y), B.Array(n)
        cases = [
            ("add", 3, lambda: B.ewise_add(xb, yb, ob), lambda: np.add(x, y, out=o)),
            ("mul scalar", 2, lambda: B.scalar_mul(xb, 1.5, ob), lambda: np.multiply(x, np.float32(1.5), out=o)),
            ("exp", 2, lambda: B.ewise_exp(xb, ob), lambda: np.exp(x, out=o)),
            ("tanh", 2, lambda: B.ewise_tanh(xb, ob), lambda: np.tanh(x, out=o)),
        ]
        for name, arrays, f_needle, f_numpy in cases:
            nbytes = arrays * 4.0 * n
            t_needle, t_numpy = best_times([f_needle, f_numpy], min_time, repeats)
            rows.append((name, f"n=2^{n.bit_length() - 1}", "GB/s", nbytes / t_needle / 1e9, nbytes / t_numpy / 1e9))
    return rows


def bench_reductions(B, shapes, min_time, repeats, rng):
    rows = []
    for r, c in shapes:
        x = rng.standard_normal((r, c)).astype(np.float32)
        o = np.empty(r, np.float32)
        xb, ob = buffer_of(B, x), B.Array(r)
        nbytes = 4.0 * r * c
        for name, f_needle, f_numpy in (
            ("sum", lambda: B.reduce_sum(xb, ob, c), lambda: np.sum(x, axis=1, out=o)),
            ("max", lambda: B.reduce_max(xb, ob, c), lambda: np.max(x, axis=1, out=o)),
        ):
            t_needle, t_numpy = best_times([f_needle, f_numpy], min_time, repeats)
            rows.append((f"reduce {name}", f"{r}x{c}", "GB/s", nbytes / t_needle / 1e9, nbytes / t_numpy / 1e9))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and shorter timings")
    parser.add_argument("--threads", type=int, default=None, help="needle-cpu threads (default: its own default)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    import needle_cpu
    from needle_cpu import _backend as B

    if args.threads:
        needle_cpu.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    min_time, repeats = (0.02, 5) if args.quick else (0.05, 15)
    sizes = [64, 128, 256, 512, 1024] + ([] if args.quick else [2048]) + [127, 1000]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = {
        "cpu": cpu_model(), "cores": os.cpu_count(), "needle_cpu_threads": needle_cpu.get_num_threads(),
        "isa": needle_cpu.isa(), "numpy": np.__version__, "load_average_1min": load,
    }
    print(f"CPU: {header['cpu']} ({header['cores']} CPUs), needle-cpu threads: {header['needle_cpu_threads']}, "
          f"ISA: {header['isa']}, numpy {header['numpy']}, load average {load:.2f}")
    if load > 0.5:
        print("warning: the machine is busy (load average > 0.5); figures may be noisy")

    rows = bench_matmul(B, sizes, min_time, repeats, rng)
    rows += bench_elementwise(B, [1 << 16, 1 << 22] if not args.quick else [1 << 22], min_time, repeats, rng)
    rows += bench_reductions(B, [(4096, 1024), (1, 1 << 22), (1 << 16, 16)], min_time, repeats, rng)

    print(f"| {'kernel':<12} | {'size':<10} | {'unit':<7} | {'needle-cpu':>10} | {'numpy':>8} | {'ratio':>6} |")
    print(f"|{'-' * 14}|{'-' * 12}|{'-' * 9}|{'-' * 12}|{'-' * 10}|{'-' * 8}|")
    for kernel, size, unit, ours, theirs in rows:
        print(f"| {kernel:<12} | {size:<10} | {unit:<7} | {ours:>10.1f} | {theirs:>8.1f} | {ours / theirs:>5.2f}x |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": header, "results": [
                {"kernel": k, "size": s, "unit": u, "needle_cpu": a, "numpy": b, "ratio": a / b}
                for k, s, u, a, b in rows]}, f, indent=2)


if __name__ == "__main__":
    main()
