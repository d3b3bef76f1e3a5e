"""needle-cpu float64 GEMM beside numpy's float64 matmul (its BLAS), measured in the same run.

Prints GFLOP/s of needle-cpu's ``_gemm_f64`` and of ``np.matmul`` on float64 square matrices, and
the ratio needle/numpy (> 1: needle is faster); timings are best-of-N, the two sides taking turns.
numpy writes into a preallocated output; needle returns a new array (its allocation is timed).

    python benchmarks/bench_gemm_f64.py [--threads N] [--sizes 256 512 ...] [--quick] [--json out.json]

numpy's BLAS threads are left as they are: cap them with OPENBLAS_NUM_THREADS (or
OMP_NUM_THREADS) to compare at equal thread counts.
"""
import argparse
import json
import os

import numpy as np

from bench_cpu_kernels import best_times, cpu_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="needle-cpu threads (default 2)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    parser.add_argument("--quick", action="store_true", help="shorter timings")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    import needle_cpu
    from needle_cpu import _core

    needle_cpu.set_num_threads(args.threads)
    min_time, repeats = (0.05, 5) if args.quick else (0.2, 10)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} CPUs), needle-cpu threads: {needle_cpu.get_num_threads()}, "
          f"ISA: {needle_cpu.isa()}, numpy {np.__version__}, load average {load:.2f}")
    rng = np.random.default_rng(0)
    rows = []
    for n in args.sizes:
        a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
        c = np.empty((n, n))
        t_needle, t_numpy = best_times([lambda: _core._gemm_f64(a, b), lambda: np.matmul(a, b, out=c)],
                                       min_time, repeats)
        err = np.max(np.abs(_core._gemm_f64(a, b) - c)) / max(1.0, np.max(np.abs(c)))
        assert err < 1e-12, f"n={n}: needle and numpy disagree (relative error {err})"
        flops = 2.0 * n ** 3
        rows.append((n, flops / t_needle / 1e9, flops / t_numpy / 1e9))
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")

    print(f"| {'n':>5} | {'needle GFLOP/s':>14} | {'numpy GFLOP/s':>13} | {'ratio':>6} |")
    print(f"|{'-' * 7}|{'-' * 16}|{'-' * 15}|{'-' * 8}|")
    for n, ours, theirs in rows:
        print(f"| {n:>5} | {ours:>14.1f} | {theirs:>13.1f} | {ours / theirs:>5.2f}x |")
    print(f"load average after: {load_after:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "load_before": load, "load_after": load_after, "results": [
                {"n": n, "needle_gflops": a, "numpy_gflops": b, "ratio": a / b} for n, a, b in rows]}, f, indent=2)


if __name__ == "__main__":
    main()
