"""needle-cuda on a GPU: matmul GFLOP/s, kernel first-use cost, elementwise GB/s, MLP throughput.

    python benchmarks/bench_cuda.py [--sizes 256,512,1024,2048,4096] [--repeat 5] [--quick] [--json out.json]

Matmul (float32, square n x n): needle's cuBLAS path, needle's shared-memory tiled kernel,
``cupy.matmul`` called directly, and ``torch.matmul`` on CUDA when PyTorch is importable (TF32
off everywhere, so all four do full float32). GPU times come from CUDA events around a batch of
calls after a warm-up; host-side costs (per-op overhead, first use) from ``perf_counter`` with a
synchronize. First-use cost is measured in fresh processes: once with an empty CuPy kernel
cache (NVRTC compiles) and once with the cache that run filled (a later process).

Where CuPy or a GPU is missing it prints the reason and exits 0, so ``nox -s bench`` runs anywhere.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ELEMENTWISE_N = 1 << 25  # 32 Mi floats (128 MiB a buffer): well past every cache


def _reason():
    try:
        import needle_cuda
    except ImportError as exc:
        return None, f"needle-cuda is not installed ({exc}); pip install -e packages/needle-cuda[cuda12]"
    return needle_cuda, needle_cuda.unavailable_reason()


def _write(path, payload):
    if path:
        with open(path, "w") as f:
            json.dump(payload, f, indent=2)


class _Timer:
    """Milliseconds per call of ``fn`` on the GPU, from CUDA events around ``number`` calls (best of ``repeat``)."""

    def __init__(self, cp):
        self.cp = cp

    def __call__(self, fn, number, repeat, warmup=2):
        for _ in range(warmup):
            fn()
        self.cp.cuda.Device().synchronize()
        best = float("inf")
        for _ in range(repeat):
            start, stop = self.cp.cuda.Event(), self.cp.cuda.Event()
            start.record()
            for _ in range(number):
                fn()
            stop.record()
            stop.synchronize()
            best = min(best, self.cp.cuda.get_elapsed_time(start, stop) / number)
        return best


def _calls_for(ms_estimate, budget_ms=200):
    return max(1, min(50, int(budget_ms / max(ms_estimate, 1e-3))))


# ---- matmul -------------------------------------------------------------------------------------
def _torch_cuda():
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    return torch


def _matmul_row(be, cp, timer, n, repeat, torch):
    rng = np.random.default_rng(n)
    a_np, b_np = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    a, b, out = be.Array(n * n), be.Array(n * n), be.Array(n * n)
    be.from_numpy(a_np, a)
    be.from_numpy(b_np, b)
    cases = {
        "needle cublas": lambda: be.matmul_cublas(a, b, out, n, n, n),
        "needle tiled": lambda: be.matmul_tiled(a, b, out, n, n, n),
        "cupy.matmul": lambda: cp.matmul(a.array.reshape(n, n), b.array.reshape(n, n), out=out.array.reshape(n, n)),
    }
    if torch is not None:
        ta, tb = torch.from_numpy(a_np).cuda(), torch.from_numpy(b_np).cuda()
        to = torch.empty_like(ta)
        torch.cuda.synchronize()
        cases["torch.matmul"] = lambda: torch.matmul(ta, tb, out=to)
    row = {"n": n}
    for name, fn in cases.items():
        ms = timer(fn, _calls_for(timer(fn, 1, 1)), repeat)
        row[name] = 2.0 * n**3 / (ms * 1e-3) / 1e9
    be.matmul_tiled(a, b, out, n, n, n)
    tiled = be.to_numpy(out, (n, n), (n, 1), 0)
    be.matmul_cublas(a, b, out, n, n, n)
    row["max |tiled - cublas|"] = float(np.abs(tiled - be.to_numpy(out, (n, n), (n, 1), 0)).max())
    return row


def bench_matmul(be, cp, timer, sizes, repeat):
    torch = _torch_cuda()
    rows = []
    for n in sizes:
        row = _matmul_row(be, cp, timer, n, repeat, torch)
        rows.append(row)
        print(f"  n={n:5d}  " + "  ".join(f"{k} {v:9.1f}" for k, v in row.items() if k != "n" and "|" not in k)
              + f"  GFLOP/s  (max |tiled - cublas| {row['max |tiled - cublas|']:.2e})")
    return rows


# ---- first use: NVRTC compile vs on-disk cache vs in-process cache --------------------------------
_FIRST_USE = r"""
import json, time, numpy as np
t0 = time.perf_counter()
from needle_cuda import _backend as be
import cupy as cp
cp.cuda.Device().synchronize()
t_init = time.perf_counter() - t0
a, b, out = be.Array(4096), be.Array(4096), be.Array(4096)
be.from_numpy(np.ones(4096, np.float32), a); be.from_numpy(np.ones(4096, np.float32), b)
calls = {
    "ewise_add (CuPy ufunc)": lambda: be.ewise_add(a, b, out),
    "ewise_eq (needle_ewise_eq)": lambda: be.ewise_eq(a, b, out),
    "ewise_sigmoid (needle_ewise_sigmoid)": lambda: be.ewise_sigmoid(a, out),
    "reduce_sum (CuPy reduction)": lambda: be.reduce_sum(a, be.Array(64), 64),
    "matmul_cublas": lambda: be.matmul_cublas(a, b, out, 64, 64, 64),
    "matmul_tiled (needle_matmul_tiled_f32)": lambda: be.matmul_tiled(a, b, out, 64, 64, 64),
}
res = {"CuPy import + CUDA context (ms)": t_init * 1e3}
for name, fn in calls.items():
    times = []
    for _ in range(2):
        t = time.perf_counter(); fn(); cp.cuda.Device().synchronize(); times.append(time.perf_counter() - t)
    res[name] = {"first call (ms)": times[0] * 1e3, "second call (ms)": times[1] * 1e3}
print(json.dumps(res))
"""


def bench_first_use():
    cache = tempfile.mkdtemp(prefix="needle-cupy-cache-")
    env = dict(os.environ, CUPY_CACHE_DIR=cache)
    results = {}
    for label in ("empty kernel cache (NVRTC compiles)", "warm on-disk cache (a later process)"):
        done = subprocess.run([sys.executable, "-c", _FIRST_USE], capture_output=True, text=True, env=env,
                              timeout=600)
        if done.returncode:
            results[label] = {"error": done.stderr.strip().splitlines()[-1:]}
            continue
        results[label] = json.loads(done.stdout.strip().splitlines()[-1])
    for label, res in results.items():
        print(f"  {label}:")
        for name, value in res.items():
            if isinstance(value, dict):
                print(f"    {name:<42} first {value['first call (ms)']:9.2f} ms   "
                      f"then {value['second call (ms)']:7.3f} ms")
            else:
                print(f"    {name:<42} {value}")
    return results


# ---- elementwise, strided copies, reductions ----------------------------------------------------
def bench_elementwise(be, cp, timer, repeat, n=ELEMENTWISE_N):
    a, b, out = be.Array(n), be.Array(n), be.Array(n)
    be.from_numpy(np.random.default_rng(0).uniform(0.5, 2.0, n).astype(np.float32), a)
    be.from_numpy(np.random.default_rng(1).uniform(0.5, 2.0, n).astype(np.float32), b)
    side = int(np.sqrt(n))
    tmp = be.Array(n)

    def sigmoid_composed():  # what core would run without the fused kernel: 4 launches, 3 round trips to memory
        be.scalar_mul(a, 0.5, tmp)
        be.ewise_tanh(tmp, tmp)
        be.scalar_add(tmp, 1.0, tmp)
        be.scalar_mul(tmp, 0.5, out)

    cases = {  # name -> (fn, bytes moved per call)
        "ewise_add": (lambda: be.ewise_add(a, b, out), 3 * 4 * n),
        "scalar_mul": (lambda: be.scalar_mul(a, 2.0, out), 2 * 4 * n),
        "ewise_ge (fused compare)": (lambda: be.ewise_ge(a, b, out), 3 * 4 * n),
        "ewise_exp": (lambda: be.ewise_exp(a, out), 2 * 4 * n),
        "ewise_sigmoid (fused)": (lambda: be.ewise_sigmoid(a, out), 2 * 4 * n),
        "sigmoid as 4 ufuncs": (sigmoid_composed, 2 * 4 * n),
        "compact (transpose)": (lambda: be.compact(a, out, (side, side), (1, side), 0), 2 * 4 * side * side),
        "reduce_sum (rows of 1024)": (lambda: be.reduce_sum(a, be.Array(n // 1024), 1024), 4 * n),
    }
    results = {}
    for name, (fn, nbytes) in cases.items():
        ms = timer(fn, 10, repeat)
        results[name] = {"ms": ms, "GB/s": nbytes / (ms * 1e-3) / 1e9}
        print(f"  {name:<28} {ms:8.3f} ms  {results[name]['GB/s']:8.1f} GB/s (effective)")
    return results


# ---- per-op overhead through NDArray, and MLP training --------------------------------------------
def bench_overhead(be, repeat):
    import needle as ndl
    from needle.backend_ndarray import NDArray

    dev = ndl.cuda()
    x = NDArray(np.ones((8, 8), np.float32), device=dev)
    best = float("inf")
    for _ in range(repeat):
        be.synchronize()
        t = time.perf_counter()
        for _ in range(2000):
            x + x
        be.synchronize()
        best = min(best, (time.perf_counter() - t) / 2000)
    print(f"  NDArray 8x8 add on cuda: {best * 1e6:.1f} us/op (Python + launch overhead)")
    return {"NDArray 8x8 add (us/op)": best * 1e6}


def bench_mlp(be, repeat, steps=50, batch=256):
    import needle as ndl
    try:
        from needle import nn, optim
    except ImportError as exc:
        print(f"  skipped: needle.nn is not importable ({exc})")
        return {"skipped": f"needle.nn is not importable ({exc})"}
    dev = ndl.cuda()
    np.random.seed(0)
    model = nn.Sequential(nn.Linear(784, 512, device=dev), nn.ReLU(), nn.Linear(512, 512, device=dev), nn.ReLU(),
                          nn.Linear(512, 10, device=dev))
    opt = optim.SGD(model.parameters(), lr=0.01)
    loss_fn = nn.SoftmaxLoss()
    xs = [ndl.Tensor(np.random.randn(batch, 784), device=dev, dtype="float32") for _ in range(4)]
    ys = [ndl.Tensor(np.random.randint(0, 10, batch), device=dev, dtype="float32") for _ in range(4)]

    def run(k):
        for i in range(k):
            opt.reset_grad()
            loss_fn(model(xs[i % 4]), ys[i % 4]).backward()
            opt.step()
        be.synchronize()

    run(3)
    be.reset_transfer_stats()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        run(steps)
        best = min(best, time.perf_counter() - t)
    stats = be.transfer_stats()
    per_step = {k: v / (steps * repeat) for k, v in stats.items()}
    res = {"samples/s": steps * batch / best, "ms/step": best / steps * 1e3, "transfers per step": per_step}
    print(f"  MLP 784-512-512-10, batch {batch}: {res['samples/s']:.0f} samples/s, {res['ms/step']:.2f} ms/step; "
          f"host<->device copies per step: {per_step}")
    return res


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,512,1024,2048,4096", help="matmul sizes n (n x n @ n x n)")
    parser.add_argument("--repeat", type=int, default=5, help="timing repeats (best is kept)")
    parser.add_argument("--quick", action="store_true", help="two repeats, sizes up to 1024")
    parser.add_argument("--json", help="write results to this JSON file")
    args = parser.parse_args()

    be_pkg, reason = _reason()
    if reason is not None:
        print(f"bench_cuda: SKIPPED, the cuda backend cannot run here: {reason}")
        _write(args.json, {"benchmark": "cuda", "skipped": reason})
        return 0

    import cupy as cp
    from needle_cuda import _backend as be

    sizes = [int(s) for s in args.sizes.split(",")]
    repeat = args.repeat
    if args.quick:
        sizes, repeat = [s for s in sizes if s <= 1024], 2
    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    info = {"gpu": name, "cupy": cp.__version__, "cuda runtime": cp.cuda.runtime.runtimeGetVersion(),
            "needle-cuda": be_pkg.__version__, "python": platform.python_version()}
    print("  ".join(f"{k}: {v}" for k, v in info.items()))
    timer = _Timer(cp)
    results = {"info": info}
    print("first use (fresh processes; kernels compile once, then come from CuPy's caches):")
    results["first use"] = bench_first_use()
    print("matmul float32 (GFLOP/s, higher is better):")
    results["matmul GFLOP/s"] = bench_matmul(be, cp, timer, sizes, repeat)
    print(f"elementwise float32, {ELEMENTWISE_N} elements:")
    results["elementwise"] = bench_elementwise(be, cp, timer, repeat)
    print("overhead:")
    results["overhead"] = bench_overhead(be, repeat)
    print("training:")
    results["mlp"] = bench_mlp(be, repeat=min(repeat, 3))
    _write(args.json, {"benchmark": "cuda", "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
