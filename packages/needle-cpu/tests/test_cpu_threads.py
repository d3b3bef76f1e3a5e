"""Thread-count control (setter, NEEDLE_CPU_THREADS) and results that do not depend on it."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import needle_cpu
from needle_cpu import _backend as B


@pytest.fixture
def restore_threads():
    before = needle_cpu.get_num_threads()
    yield
    needle_cpu.set_num_threads(before)


def test_setter_and_getter(restore_threads):
    needle_cpu.set_num_threads(3)
    assert needle_cpu.get_num_threads() == 3
    needle_cpu.set_num_threads(1)
    assert needle_cpu.get_num_threads() == 1
    with pytest.raises(ValueError):
        needle_cpu.set_num_threads(0)
    assert needle_cpu.get_num_threads() == 1


def test_env_var_sets_default():
    code = "import needle_cpu; print(needle_cpu.get_num_threads())"
    env = dict(os.environ, NEEDLE_CPU_THREADS="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3"


def test_env_var_can_force_generic_isa():
    code = "import needle_cpu; print(needle_cpu.isa())"
    env = dict(os.environ, NEEDLE_CPU_ISA="generic")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "generic"


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_results_independent_of_thread_count(restore_threads, threads):
    needle_cpu.set_num_threads(threads)
    rng = np.random.default_rng(1)
    x = rng.standard_normal(300007).astype(np.float32)
    a = B.Array(x.size)
    B.from_numpy(x, a)
    out = B.Array(x.size)
    B.ewise_exp(a, out)
    np.testing.assert_allclose(np.asarray(out), np.exp(x), rtol=2e-6)
    total = B.Array(1)
    B.reduce_sum(a, total, x.size)
    np.testing.assert_allclose(np.asarray(total)[0], x.astype(np.float64).sum(), rtol=1e-5, atol=1e-3)


def test_concurrent_python_threads(restore_threads):
    # Kernels release the GIL; two Python threads running kernels at once must both be right.
    needle_cpu.set_num_threads(2)
    rng = np.random.default_rng(2)
    xs = [rng.standard_normal((300, 300)).astype(np.float32) for _ in range(4)]
    errors = []

    def work(x):
        a = B.Array(x.size)
        B.from_numpy(x, a)
        out = B.Array(x.size)
        for _ in range(5):
            B.matmul(a, a, out, 300, 300, 300)
            if not np.allclose(np.asarray(out).reshape(300, 300), x @ x, rtol=1e-4, atol=1e-3):
                errors.append("matmul mismatch")

    threads = [threading.Thread(target=work, args=(x,)) for x in xs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize("spin", ["0", "50", "bad"])
def test_workers_that_sleep_between_kernels_wake_for_the_next(spin):
    # NEEDLE_CPU_SPIN_US=0: idle workers sleep at once, so every kernel below wakes them.
    code = (
        "import time, numpy as np, needle_cpu\n"
        "from needle_cpu import _backend as B\n"
        "rng = np.random.default_rng(3); x = rng.standard_normal((200, 300)).astype(np.float32)\n"
        "y = rng.standard_normal((300, 250)).astype(np.float32)\n"
        "a, b, o = B.Array(x.size), B.Array(y.size), B.Array(200 * 250)\n"
        "B.from_numpy(x, a); B.from_numpy(y, b); bad = 0\n"
        "for i in range(40):\n"
        "    time.sleep(0.001 * (i % 3))\n"
        "    B.matmul(a, b, o, 200, 300, 250)\n"
        "    bad += not np.allclose(np.asarray(o).reshape(200, 250), x @ y, rtol=1e-4, atol=1e-3)\n"
        "print(bad)\n"
    )
    env = dict(os.environ, NEEDLE_CPU_THREADS="2", NEEDLE_CPU_SPIN_US=spin)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "0", out.stderr


def test_works_after_fork(restore_threads):
    # DataLoader workers fork: the child has no pool threads and must start its own.
    needle_cpu.set_num_threads(2)
    code = (
        "import os, numpy as np, needle_cpu\n"
        "from needle_cpu import _backend as B\n"
        "x = np.ones(1 << 20, np.float32); a = B.Array(x.size); B.from_numpy(x, a); o = B.Array(x.size)\n"
        "B.ewise_add(a, a, o)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    B.ewise_add(a, o, o); os._exit(0 if np.asarray(o)[123] == 3.0 else 1)\n"
        "_, status = os.waitpid(pid, 0); print(os.WEXITSTATUS(status))\n"
    )
    env = dict(os.environ, NEEDLE_CPU_THREADS="2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "0", out.stderr
