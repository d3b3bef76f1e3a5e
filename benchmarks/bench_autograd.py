"""Eager autograd overhead: time per op of a small add, and a 1,000-op chain forward+backward.

Needle (each installed backend) beside numpy and, when importable, PyTorch, measured in the
same run. Prints absolute times and ratios; ``--json`` writes them for later comparison.

    python benchmarks/bench_autograd.py [--repeat 7] [--json out.json]
"""
import argparse
import json
import platform
import timeit

import numpy as np

import needle as ndl

SHAPE = (8, 8)
CHAIN = 1000


def best_per_call(fn, number, repeat):
    """Best-of-``repeat`` seconds per call of ``fn`` (best-of resists a noisy machine)."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def needle_cases(device, repeat):
    a_np = np.random.randn(*SHAPE).astype(np.float32)
    a = ndl.Tensor(a_np, device=device, requires_grad=False)
    b = ndl.Tensor(a_np, device=device, requires_grad=False)
    ag = ndl.Tensor(a_np, device=device, requires_grad=True)
    bg = ndl.Tensor(a_np, device=device, requires_grad=True)

    def chain():
        x = ndl.Tensor(a_np, device=device, requires_grad=True)
        y = x
        for _ in range(CHAIN // 2):
            y = y * 0.999
            y = y + 0.001
        y.sum().backward(create_graph=False)

    return {
        "add, no grad (us/op)": best_per_call(lambda: a + b, 2000, repeat) * 1e6,
        "add, requires_grad (us/op)": best_per_call(lambda: ag + bg, 2000, repeat) * 1e6,
        f"{CHAIN}-op chain fwd+bwd (ms)": best_per_call(chain, 3, repeat) * 1e3,
    }


def numpy_cases(repeat):
    a = np.random.randn(*SHAPE).astype(np.float32)
    b = a.copy()

    def chain():
        y = a
        for _ in range(CHAIN // 2):
            y = y * np.float32(0.999)
            y = y + np.float32(0.001)
        # "backward" of the same chain: the same number of elementwise ops again
        g = np.ones_like(a)
        for _ in range(CHAIN // 2):
            g = g * np.float32(0.999)

    add = best_per_call(lambda: a + b, 20000, repeat) * 1e6
    return {"add, no grad (us/op)": add, "add, requires_grad (us/op)": add,
            f"{CHAIN}-op chain fwd+bwd (ms)": best_per_call(chain, 10, repeat) * 1e3}


def torch_cases(repeat):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(2)
    a_np = np.random.randn(*SHAPE).astype(np.float32)
    a, b = torch.tensor(a_np), torch.tensor(a_np)
    ag, bg = torch.tensor(a_np, requires_grad=True), torch.tensor(a_np, requires_grad=True)

    def chain():
        x = torch.tensor(a_np, requires_grad=True)
        y = x
        for _ in range(CHAIN // 2):
            y = y * 0.999
            y = y + 0.001
        y.sum().backward()

    return {"add, no grad (us/op)": best_per_call(lambda: a + b, 20000, repeat) * 1e6,
            "add, requires_grad (us/op)": best_per_call(lambda: ag + bg, 20000, repeat) * 1e6,
            f"{CHAIN}-op chain fwd+bwd (ms)": best_per_call(chain, 5, repeat) * 1e3}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="timing repeats (best is kept)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", help="write results to this JSON file")
    args = parser.parse_args()
    repeat = 2 if args.quick else args.repeat

    results = {"numpy": numpy_cases(repeat)}
    for dev in ndl.all_devices():
        if dev.enabled():
            results[f"needle[{dev.backend_name}]"] = needle_cases(dev, repeat)
    torch_res = torch_cases(repeat)
    if torch_res is not None:
        results["torch"] = torch_res

    metrics = list(results["numpy"])
    cols = list(results)
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
          f"tensor shape {SHAPE}")
    print(f"{'metric':<32}" + "".join(f"{c:>16}" for c in cols) + "".join(
        f"{'/' + ref:>14}" for ref in ("numpy", "torch") if ref in results))
    for m in metrics:
        row = f"{m:<32}" + "".join(f"{results[c][m]:>16.2f}" for c in cols)
        best_needle = min(results[c][m] for c in cols if c.startswith("needle"))
        for ref in ("numpy", "torch"):
            if ref in results:
                row += f"{best_needle / results[ref][m]:>13.1f}x"
        print(row)
    print("(ratio columns: best Needle backend / reference; lower is better)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "autograd", "shape": SHAPE, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
