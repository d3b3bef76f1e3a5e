"""needle-cpu's GEMM right after numpy's multithreaded BLAS (OpenBLAS) ran in the same process.

When numpy's OpenBLAS has just run with several threads, its idle threads keep spinning for a while
(OpenBLAS's thread timeout, 2**28 cycles by default: ~0.1 s) and take cores from needle-cpu's
pool. Each case runs in a fresh process with ``--threads`` threads for every library and reports
needle-cpu's n x n float32 GEMM in GFLOP/s:

  alone          needle-cpu's GEMM, numpy's BLAS not called
  after-numpy    each timed GEMM right after a numpy ``@`` of the same size
  timeout-4      the same with ``OPENBLAS_THREAD_TIMEOUT=4`` (idle OpenBLAS threads sleep after 2**4
                 cycles: the workaround, set in the environment before numpy is imported)
  blas-1-thread  the same with numpy's BLAS limited to one thread (``OPENBLAS_NUM_THREADS=1``)

    python benchmarks/bench_openblas.py [--threads 2] [--n 1024]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CASES = {"alone": {}, "after-numpy": {}, "timeout-4": {"OPENBLAS_THREAD_TIMEOUT": "4"},
         "blas-1-thread": {"OPENBLAS_NUM_THREADS": "1"}}


def measure(case, n, reps=8):
    """Median GFLOP/s of ``reps`` needle-cpu GEMMs, each after a numpy GEMM unless ``case`` is alone."""
    import numpy as np

    import needle as ndl
    from needle.backend_ndarray import NDArray

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    dev = ndl.device("cpu")
    x, y = NDArray(a, device=dev), NDArray(b, device=dev)
    x @ y
    if case != "alone":  # alone: numpy's BLAS never runs, so no OpenBLAS thread is spinning
        a @ b
    rates = []
    for _ in range(reps):
        if case != "alone":
            a @ b
        start = time.perf_counter()
        x @ y
        rates.append(2.0 * n ** 3 / (time.perf_counter() - start) / 1e9)
        if case == "alone":
            time.sleep(0.01)
    return statistics.median(rates)


def run_all(threads=2, n=1024, log=print):
    """Each case in a fresh process; returns {case: GFLOP/s or None}."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_training
    out = {}
    for case, extra in CASES.items():
        env = dict(bench_training.thread_env(threads), **extra)
        cmd = [sys.executable, str(Path(__file__).resolve()), "--one", case, "--n", str(n)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        out[case] = json.loads(lines[-1])["gflops"] if proc.returncode == 0 and lines else None
        log(f"  needle-cpu gemm {n}: {case:14s} {out[case] or 0:8.1f} GFLOP/s")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", choices=list(CASES), help="measure one case in this process (JSON on stdout)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=1024)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(dict(case=args.one, gflops=measure(args.one, args.n),
                              timeout=os.environ.get("OPENBLAS_THREAD_TIMEOUT"))))
        return
    run_all(args.threads, args.n)


if __name__ == "__main__":
    main()
