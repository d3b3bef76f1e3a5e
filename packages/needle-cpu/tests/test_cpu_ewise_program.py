"""needle-cpu's ewise_program (needle.jit's fused elementwise runs): equal to the kernels run one
after another, bit for bit (aliasing and block edges included), and clear errors for bad programs."""
import numpy as np
import pytest

import needle as ndl

cpu = ndl.cpu()
pytestmark = pytest.mark.skipif(not cpu.enabled() or getattr(cpu.mod, "ewise_program", None) is None,
                                reason="needs needle-cpu with ewise_program")


def _buffers(arrays):
    out = []
    for a in arrays:
        buf = cpu.mod.Array(a.size, "float32")
        cpu.mod.from_numpy(np.ascontiguousarray(a, dtype=np.float32), buf)
        out.append(buf)
    return out


def _read(buf, n):
    return cpu.mod.to_numpy(buf, (n,), (1,), 0)


@pytest.mark.parametrize("n", [1, 15, 16, 4095, 4096, 4097, 50000])
def test_a_program_equals_its_kernels_run_one_by_one(n):
    rng = np.random.RandomState(n)
    data = [rng.randn(n).astype(np.float32) for _ in range(4)]
    ops = cpu.mod.EWISE_PROGRAM_OPS
    # (name, out, a, b, value): in-place steps (out is an input) included.
    program = [("ewise_add", 2, 0, 1, 0.0), ("scalar_mul", 2, 2, 0, 1.5), ("ewise_exp", 3, 2, 0, 0.0),
               ("ewise_tanh", 2, 2, 0, 0.0), ("ewise_div", 3, 3, 1, 0.0), ("scalar_rsub", 0, 3, 0, 2.0),
               ("ewise_relu_backward", 1, 1, 0, 0.0), ("fill", 2, 0, 0, 0.25), ("ewise_mul", 2, 2, 3, 0.0),
               ("copy", 3, 1, 0, 0.0), ("scalar_power", 0, 0, 0, 2.0), ("ewise_sigmoid", 1, 1, 0, 0.0)]
    want = _buffers(data)
    for name, out, a, b, value in program:
        if name == "fill":
            cpu.mod.fill(want[out], value)
        elif name == "copy":
            cpu.mod.compact(want[a], want[out], (n,), (1,), 0)
        elif name.startswith("scalar_"):
            getattr(cpu.mod, name)(want[a], value, want[out])
        elif name in ("ewise_exp", "ewise_tanh", "ewise_sigmoid"):
            getattr(cpu.mod, name)(want[a], want[out])
        else:
            getattr(cpu.mod, name)(want[a], want[b], want[out])
    got = _buffers(data)
    code = [x for name, out, a, b, _ in program for x in (*ops[name], out, a, b)]
    cpu.mod.ewise_program(got, code, [p[4] for p in program], n, 4096)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(_read(g, n), _read(w, n))


def test_bad_programs_are_clear_errors():
    bufs = _buffers([np.ones(8), np.ones(8)])
    add = list(cpu.mod.EWISE_PROGRAM_OPS["ewise_add"])
    with pytest.raises(ValueError, match="out of range"):
        cpu.mod.ewise_program(bufs, add + [0, 0, 2], [0.0], 8)
    with pytest.raises(ValueError, match="5 integers per value"):
        cpu.mod.ewise_program(bufs, add + [0, 0], [0.0], 8)
    with pytest.raises(ValueError, match="expected n=9"):
        cpu.mod.ewise_program(bufs, add + [0, 0, 1], [0.0], 9)
    with pytest.raises(ValueError, match="bad kind"):
        cpu.mod.ewise_program(bufs, [99, 0, 0, 0, 1], [0.0], 8)
    with pytest.raises(ValueError, match="bad op"):
        cpu.mod.ewise_program(bufs, [add[0], 999, 0, 0, 1], [0.0], 8)
    with pytest.raises(TypeError, match="not a needle_cpu Array"):
        cpu.mod.ewise_program([bufs[0], "x"], add + [0, 0, 1], [0.0], 8)
    ints = cpu.mod.Array(8, "int64")
    with pytest.raises(TypeError, match="not float32"):
        cpu.mod.ewise_program([bufs[0], ints], add + [0, 0, 1], [0.0], 8)
    with pytest.raises(ValueError, match="block"):
        cpu.mod.ewise_program(bufs, add + [0, 0, 1], [0.0], 8, 0)
