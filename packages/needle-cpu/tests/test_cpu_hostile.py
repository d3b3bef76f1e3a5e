"""Issue 17, items 1-4: inputs and conditions that crashed the process, each now an error or a result.

Every case runs in a child process (``run_isolated``): before the fixes each one killed the
interpreter (SIGFPE, SIGSEGV, std::terminate, or a sanitizer report), and a crash must fail its
test with the reproducer, not end the test run.
"""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

UNDER_ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")


def run_isolated(code, timeout=120, env=None):
    """Run ``code`` in a fresh interpreter; fail with the code and its output unless it exits 0."""
    code = textwrap.dedent(code)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))
    if proc.returncode != 0:
        how = (f"killed by {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
               else f"exit status {proc.returncode}")
        pytest.fail(f"child {how}\n--- reproducer ---\n{code}\n--- stdout ---\n{proc.stdout[-4000:]}"
                    f"\n--- stderr ---\n{proc.stderr[-8000:]}", pytrace=False)
    return proc.stdout


# ---- 1. zero-size views: a division by zero in the strided walk, an overflow in simplify() -----
def test_setitem_into_zero_size_broadcast_view():
    run_isolated("""
        import numpy as np, needle as ndl
        from needle import backend_ndarray as nd
        cpu = ndl.device("cpu")
        x = nd.array(np.zeros((0, 1), np.float32), device=cpu)
        y = x.broadcast_to((0, 2))
        y[:, :] = nd.array(np.zeros((0, 2), np.float32), device=cpu)
        y[:, :] = 1.0
        assert y.numpy().shape == (0, 2)
    """)


@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "uint8", "bool"])
def test_raw_strided_kernels_on_zero_size_views(dtype):
    run_isolated(f"""
        from needle_cpu import _core as c
        dt = {dtype!r}
        buf, empty = c.Array(10, dt), c.Array(0, dt)
        for shape, strides in [([0, 2], [1, 0]), ([2, 0, 3], [0, 0, 0]), ([0, 3], [2**62, 2**62]),
                               ([3, 0], [-2**62, 2**62]), ([0, 5, 7], [2**61, -2**61, 2**60])]:
            c.compact(buf, empty, shape, strides, 0)
            c.ewise_setitem(empty, buf, shape, strides, 0)
            c.scalar_setitem(0, 1, buf, shape, strides, 3)
            assert c.to_numpy(buf, shape, strides, 0).shape == tuple(shape)
    """)


def test_to_numpy_of_empty_views_with_huge_dimensions():
    # Found by the NDArray fuzzer under UBSan: shape (0, 2**62) passed the size check (0 elements),
    # then numpy's strides (itemsize times the trailing dimensions) overflowed inside pybind11.
    run_isolated("""
        from needle_cpu import _core as c
        for shape in ([0, 2**62], [0, 2**40, 2**40], [2**59, 0]):
            for name, call in [("to_numpy", lambda: c.to_numpy(c.Array(4), shape, [1] * len(shape), 0)),
                               ("compact", lambda: c.compact(c.Array(4), c.Array(0), shape, [1] * len(shape), 0))]:
                try:
                    call()
                except ValueError as e:
                    assert "too large" in str(e), e
                else:
                    raise AssertionError(f"{name} accepted shape {shape}")
        assert c.to_numpy(c.Array(4), [0, 2**29], [1, 1], 0).shape == (0, 2**29)
    """)


# ---- 2. labels / indices checked under the GIL, then read again without it ----------------------
_RACE = """
    import threading
    import numpy as np
    from needle_cpu import _core as c
    m, k = 4096, 16   # m * k >= 2**14: the kernels release the GIL
    def array(values, dtype="float32"):
        values = np.asarray(values, dtype)
        out = c.Array(values.size, dtype)
        c.from_numpy(values, out)
        return out
    stop = False
    def writer(view, good, bad):
        while not stop:
            view[:] = bad
            view[:] = good
    def hammer(view, good, bad, call):
        global stop
        t = threading.Thread(target=writer, args=(view, good, bad))
        t.start()
        try:
            for _ in range(1500):
                try:
                    call()
                except (ValueError, IndexError):
                    pass   # the check saw the bad values: fine
        finally:
            stop = True
            t.join()
"""


def test_softmax_xent_labels_written_by_another_thread():
    run_isolated(_RACE + """
    z = array(np.random.default_rng(0).standard_normal(m * k))
    labels = array(np.arange(m) % k)
    probs, loss, out = c.Array(m * k), c.Array(m), c.Array(m * k)
    scale = array([0.5])
    def both():
        c.softmax_xent_forward(z, labels, probs, loss, m, k)
        c.softmax_xent_backward(probs, labels, scale, out, m, k)
    hammer(np.asarray(labels), np.arange(m) % k, 1e9, both)
    stop = False
    hammer(np.asarray(labels), np.arange(m) % k, -7.0, both)
    """)


def test_gather_and_scatter_indices_written_by_another_thread():
    run_isolated(_RACE + """
    rows, row_size = 64, 256
    a = array(np.ones(rows * row_size))
    idx = array(np.arange(m) % rows, "int64")
    gathered, acc = c.Array(m * row_size), c.Array(rows * row_size)
    def both():
        c.gather_rows(a, idx, gathered, rows, row_size, m)
        c.scatter_add_rows(gathered, idx, acc, rows, row_size, m)
    hammer(np.asarray(idx), np.arange(m) % rows, 1 << 40, both)
    """)


# ---- 3. the pool cannot start its threads ------------------------------------------------------
@pytest.mark.skipif(UNDER_ASAN, reason="ASan reserves terabytes of address space: RLIMIT_AS cannot apply")
def test_thread_pool_under_address_space_limit():
    out = run_isolated("""
        import resource
        import numpy as np
        import needle_cpu
        from needle_cpu import _core as c
        x = np.random.default_rng(0).standard_normal(300_000).astype(np.float32)
        a, out = c.Array(x.size), c.Array(x.size)
        c.from_numpy(x, a)
        vm_kb = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmSize"))
        # 96 MiB more: not enough for 63 thread stacks of 8 MiB
        resource.setrlimit(resource.RLIMIT_AS, ((vm_kb << 10) + (96 << 20), resource.RLIM_INFINITY))
        needle_cpu.set_num_threads(64)
        c.ewise_exp(a, out)   # a parallel kernel: it used to start the pool here, and abort
        n = needle_cpu.get_num_threads()
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        assert 1 <= n < 64, n
        np.testing.assert_allclose(np.asarray(out), np.exp(x), rtol=2e-6)
        m = 256
        w = np.ones((m, m), np.float32)
        wa, wo = c.Array(m * m), c.Array(m * m)
        c.from_numpy(w, wa)
        c.matmul(wa, wa, wo, m, m, m)
        assert np.all(np.asarray(wo) == m)
        print(n)
    """)
    assert 1 <= int(out.split()[-1]) < 64


def test_thread_pool_with_thread_limit():
    # RLIMIT_NPROC counts threads too; a tiny limit refuses new ones (under ASan as well).
    if os.geteuid() == 0:
        pytest.skip("root ignores RLIMIT_NPROC")
    run_isolated("""
        import resource
        import numpy as np
        import needle_cpu
        from needle_cpu import _core as c
        resource.setrlimit(resource.RLIMIT_NPROC, (1, resource.RLIM_INFINITY))
        needle_cpu.set_num_threads(8)
        assert needle_cpu.get_num_threads() >= 1
        x = np.arange(300_000, dtype=np.float32)
        a, out = c.Array(x.size), c.Array(x.size)
        c.from_numpy(x, a)
        c.ewise_add(a, a, out)
        assert np.array_equal(np.asarray(out), 2 * x)
    """)


# ---- 4. an exception inside a parallel region must leave the pool usable ------------------------
def test_pool_survives_bad_alloc_inside_kernels():
    run_isolated("""
        import numpy as np
        import needle_cpu
        from needle_cpu import _core as c
        rng = np.random.default_rng(0)
        def array(values, dtype="float32"):
            values = np.ascontiguousarray(values, dtype)
            out = c.Array(values.size, dtype)
            c.from_numpy(values, out)
            return out, values
        m = 384
        cases = []   # (name, run: returns the output Array, expected values)
        for dt in ("float32", "float64", "int32"):
            (a, x), (b, y) = array(rng.integers(-3, 4, (m, m)), dt), array(rng.integers(-3, 4, (m, m)), dt)
            def product(a=a, b=b, dt=dt):
                out = c.Array(m * m, dt)
                c.matmul(a, b, out, m, m, m)
                return out
            cases.append((f"matmul {dt}", product, (x.astype(np.float64) @ y).ravel()))
        (img, xi), (ker, xk) = array(rng.standard_normal((2, 40, 40, 8))), array(rng.standard_normal((3, 3, 8, 16)))
        want = sum(xi[:, i:i + 38, j:j + 38, :].astype(np.float64) @ xk[i, j] for i in range(3) for j in range(3))
        def conv():
            out = c.Array(want.size)
            c.conv2d_nhwc(img, ker, out, 2, 40, 40, 8, 16, 3, 3, 1, 1)
            return out
        cases.append(("conv2d", conv, want.ravel()))
        for threads in (2, 4):
            needle_cpu.set_num_threads(threads)
            for name, run, expected in cases:
                for skip in range(0, 8):   # the output Array is allocation 0: skip >= 1 fails inside
                    c._inject_alloc_failures(skip, 1 << 40)
                    try:
                        run()
                    except MemoryError:
                        pass
                    finally:
                        c._inject_alloc_failures(0, 0)
                    for _ in range(3):   # the pool must still work
                        got = np.asarray(run()).astype(np.float64)
                        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3, err_msg=name)
        c._inject_alloc_failures(0, 1)
        try:
            c.Array(10)
            raise AssertionError("no MemoryError")
        except MemoryError:
            pass
        c.Array(10)
    """, timeout=300)
