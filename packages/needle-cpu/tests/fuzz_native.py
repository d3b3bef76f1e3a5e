"""Layer (b) of the fuzzing suite: the raw extension functions (``needle_cpu._core``) with hostile
buffers, shapes, strides, offsets, dtypes and sizes, plus injected allocation failures.

A case is plain data: ``(threads, fail_alloc, arrays, calls)``. ``arrays`` lists ``(size, dtype,
seed)`` buffers the calls share (so outputs alias inputs); each call is ``(function, args)`` where an
argument ``("A", i)`` is buffer ``i``, ``("np", shape, dtype)`` a numpy array, ``("obj", kind)`` a
hostile object, anything else itself. :func:`run` executes a case in the sandbox worker: a call may
raise ValueError, TypeError, IndexError or MemoryError (the documented errors of bad arguments), and
a strided call that succeeds must agree with numpy; anything else, a crash or a hang is a finding.
"""
import re

import numpy as np
from hypothesis import strategies as st

DTYPES = ("float32", "float64", "int32", "int64", "uint8", "bool")
ACCEPTED = (ValueError, TypeError, IndexError, MemoryError)
HOSTILE_INTS = (-1, -2, -2**31, 2**31 - 1, 2**31, 2**32 + 1, 2**58, 2**58 + 1, 2**61, 2**62, 2**63 - 1, -2**63,
                2**64, -2**64 - 1)
HOSTILE_FLOATS = (float("nan"), float("inf"), -float("inf"), -0.0, 1e300, -1e-300, 3.5, 2.0**63)
# Not fuzzed: process-wide switches whose effect outlives the case (the runner sets threads itself).
SKIP = {"set_num_threads", "_inject_alloc_failures", "set_isa"}


def _signatures():
    """{function: [(parameter, kind)]} from the pybind11 signatures of ``_core``."""
    from needle_cpu import _core

    kinds = {"needle_cpu.Array": "array", "typing.SupportsInt | typing.SupportsIndex": "int",
             "typing.SupportsFloat | typing.SupportsIndex": "float", "object": "object", "bool": "bool",
             "str": "str", "collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]": "ints"}
    table = {}
    for name in sorted(dir(_core)):
        fn = getattr(_core, name)
        if name.startswith("__") or name in SKIP or not callable(fn) or name == "Array" or not fn.__doc__:
            continue
        match = re.match(r"\w+\((.*)\) ->", fn.__doc__.split("\n")[0])
        params = [p.split(": ", 1) for p in re.split(r", (?=\w+:)", match.group(1)) if p]
        table[name] = [(p, kinds.get(t, "object")) for p, t in params]
    return table


# ---- the runner (in the sandbox worker) ---------------------------------------------------------
def _make_array(size, dtype, seed):
    from needle_cpu import _core

    buf = _core.Array(size, dtype)
    view = np.asarray(buf)
    rng = np.random.default_rng(abs(seed))
    if seed < 0:  # indices or class labels: values in [0, -seed - 1)
        view[:] = rng.integers(0, max(-seed - 1, 1), size)
    elif dtype == "bool":
        view[:] = rng.integers(0, 2, size).astype(bool)
    elif dtype in ("float32", "float64"):
        view[:] = rng.integers(-4, 5, size)  # small integers: exact in every dtype and kernel
    else:
        view[:] = rng.integers(0 if dtype == "uint8" else -4, 5, size)
    return buf


def _hostile(kind):
    return {"none": None, "list": [1.0, 2.0], "str": "float32", "dict": {}, "float": 1.5, "neg": -1,
            "big": 2**70, "tuple": (1, 2), "bytes": b"\0" * 8}[kind]


def _resolve(arg, bufs):
    if isinstance(arg, tuple) and arg and arg[0] == "A":
        return bufs[arg[1]]
    if isinstance(arg, tuple) and arg and arg[0] == "np":
        return np.zeros(arg[1], arg[2])
    if isinstance(arg, tuple) and arg and arg[0] == "obj":
        return _hostile(arg[1])
    return arg


def _view_elements(shape, strides, offset):
    """Flat element indices of a strided view, row-major (numpy index arithmetic: the oracle)."""
    idx = np.full(shape, offset, dtype=np.int64)
    for d, (n, s) in enumerate(zip(shape, strides)):
        idx = idx + (np.arange(n, dtype=np.int64) * s).reshape((n,) + (1,) * (len(shape) - d - 1))
    return idx.reshape(-1)


def _check_strided(name, args, before, bufs):
    """A strided call that succeeded, against numpy on the buffers' contents before it."""
    if name in ("compact", "ewise_setitem"):
        src, dst, shape, strides, offset = args
    elif name == "scalar_setitem":
        _, value, dst, shape, strides, offset = args
        src = None
    else:
        return
    flat = _view_elements(shape, strides, offset)
    key = lambda b: next(i for i, x in enumerate(bufs) if x is b)  # noqa: E731
    if name == "compact":
        expected = before[key(src)][flat]
        np.testing.assert_array_equal(np.asarray(dst)[:flat.size], expected, err_msg="compact vs numpy")
        return
    if np.unique(flat).size != flat.size:  # overlapping writes: which one wins is not checked
        return
    expected = before[key(dst)].copy()
    if name == "ewise_setitem":
        expected[flat] = before[key(src)][:flat.size]
    else:
        expected[flat] = np.asarray(value).astype(expected.dtype)
    np.testing.assert_array_equal(np.asarray(dst), expected, err_msg=f"{name} vs numpy")


def run(case):
    """Run one native case (see the module docstring); returns the outcome of each call."""
    from needle_cpu import _core

    threads, fail_alloc, arrays, calls = case
    _core.set_num_threads(threads)
    bufs = [_make_array(*spec) for spec in arrays]
    results = []
    for name, args in calls:
        fn = getattr(_core, name)
        values = [_resolve(a, bufs) for a in args]
        before = [np.asarray(b).copy() for b in bufs]
        if fail_alloc:
            _core._inject_alloc_failures(*fail_alloc)
        try:
            fn(*values)
        except ACCEPTED as exc:
            results.append(type(exc).__name__)
            continue
        finally:
            _core._inject_alloc_failures(0, 0)
        results.append("ok")
        if name in ("compact", "ewise_setitem", "scalar_setitem") and not fail_alloc:
            _check_strided(name, values, before, bufs)
    return results


# ---- strategies (in the test process) -----------------------------------------------------------
def _ints(related):
    return st.one_of(st.sampled_from(sorted(set(related))), st.integers(0, 9), st.sampled_from(HOSTILE_INTS))


def _arg(kind, n_arrays, related):
    if kind == "array":
        return st.one_of(st.integers(0, n_arrays - 1).map(lambda i: ("A", i)),
                         st.sampled_from([("obj", "none"), ("obj", "list"), ("obj", "float"), ("np", (3,), "float32")]))
    if kind == "int":
        return _ints(related)
    if kind == "float":
        return st.one_of(st.floats(-4, 4), st.sampled_from(HOSTILE_FLOATS))
    if kind == "bool":
        return st.booleans()
    if kind == "str":
        return st.sampled_from(["avx2", "generic", "avx512", "", "x" * 40])
    if kind == "ints":
        return st.lists(_ints(related) | st.integers(-9, -1), max_size=6) | st.just([1] * 33)
    return st.one_of(st.integers(-300, 300), st.floats(allow_nan=True), st.booleans(), st.sampled_from(HOSTILE_INTS),
                     st.sampled_from([("obj", k) for k in ("none", "str", "list", "big")]))


@st.composite
def arrays_spec(draw, min_arrays=1):
    n = draw(st.integers(min_arrays, 5))
    size = st.one_of(st.integers(0, 40), st.sampled_from([64, 127, 256, 1000, 4096, 20000]))
    dtype = st.one_of(st.just("float32"), st.sampled_from(DTYPES))
    return [(draw(size), draw(dtype), draw(st.integers(0, 99))) for _ in range(n)]


@st.composite
def random_call(draw, arrays, signatures):
    """Any function with arguments drawn per parameter kind: mostly wrong, sometimes right."""
    name = draw(st.sampled_from(sorted(signatures)))
    related = [0, 1]
    for size, _, _ in arrays:
        related += [size, size + 1, max(size - 1, 0)] + [d for d in (2, 3, 4, 8, 16) if size % d == 0 and size]
        related += [size // d for d in (2, 3, 4, 8) if size]
    args = [draw(_arg(kind, len(arrays), related)) for _, kind in signatures[name]]
    return name, args


def _view_strides(draw, shape):
    """Strides for ``shape``: compact, permuted, flipped, broadcast (0), random small, or huge."""
    nd = len(shape)
    compact = [1] * nd
    for d in range(nd - 2, -1, -1):
        compact[d] = compact[d + 1] * max(shape[d + 1], 1)
    style = draw(st.sampled_from(["compact", "permuted", "random", "hostile"]))
    if style == "compact":
        strides = compact
    elif style == "permuted":
        strides = draw(st.permutations(compact)) if nd else []
    elif style == "random":
        strides = [draw(st.integers(-8, 8)) for _ in range(nd)]
    else:
        strides = [draw(st.integers(-9, 9) | st.sampled_from(HOSTILE_INTS)) for _ in range(nd)]
    return [s * draw(st.sampled_from([1, 1, -1, 0])) for s in strides]


_VIEW_SHAPE = st.lists(st.integers(0, 5) | st.sampled_from([1, 7, 33, 200]), max_size=5)


@st.composite
def strided_call(draw, dtype_pool=DTYPES):
    """compact / ewise_setitem / scalar_setitem / to_numpy on a view that fits its buffer (mostly)."""
    shape = draw(_VIEW_SHAPE)
    if int(np.prod(shape)) > 50_000:  # big enough to cross the threading grain, small enough to be quick
        shape = [min(n, 7) for n in shape]
    strides = _view_strides(draw, shape)
    size = int(np.prod(shape))
    lo = hi = 0
    for n, s in zip(shape, strides):
        if n > 0:
            reach = (n - 1) * s
            lo, hi = (lo + reach, hi) if reach < 0 else (lo, hi + reach)
    offset = -lo + draw(st.integers(0, 3))
    extent = (hi - lo + offset + lo + 1) if size else draw(st.integers(0, 5))
    extent += draw(st.sampled_from([0] * 6 + [1, -1]))
    if draw(st.integers(0, 9)) == 0:
        offset = draw(st.sampled_from(HOSTILE_INTS + (-1,)))
    extent = max(0, extent)
    if extent > 1 << 16:  # a huge stride that fits only a huge buffer: keep the buffer small (refused)
        extent = draw(st.integers(0, 64))
    dtype = draw(st.sampled_from(dtype_pool))
    other = draw(st.sampled_from([dtype, dtype, "float32", "int64"]))
    compact_size = size + draw(st.sampled_from([0] * 6 + [1, -1])) if size else draw(st.sampled_from([0, 0, 1]))
    arrays = [(extent, dtype, draw(st.integers(0, 99))), (max(compact_size, 0), other, draw(st.integers(0, 99)))]
    name = draw(st.sampled_from(["compact", "ewise_setitem", "scalar_setitem", "to_numpy"]))
    if name == "compact":
        args = [("A", 0), ("A", 1), shape, strides, offset]
    elif name == "ewise_setitem":
        args = [("A", 1), ("A", 0), shape, strides, offset]
    elif name == "scalar_setitem":
        value = draw(st.sampled_from([0, 1, 3, -2, 2.5, True, 300, float("nan"), None, "x"]))
        args = [size, value, ("A", 0), shape, strides, offset]
    else:
        args = [("A", 0), shape, strides, offset]
    return arrays, [(name, args)]


# Structured calls: sizes consistent with the dims, so that most reach the kernels.
def _shaped(name, d):
    m, n, p, b = d
    table = {
        "matmul": ([m * n, n * p, m * p], [m, n, p]),
        "matmul_tn": ([n * m, n * p, m * p], [m, n, p]),
        "matmul_nt": ([m * n, p * n, m * p], [m, n, p]),
        "matmul_bias": ([m * n, n * p, p, m * p], [m, n, p]),
        "matmul_batched": ([b * m * n, b * n * p, b * m * p], [b, m, n, p]),
        "reduce_sum": ([m * n, m], [n]), "reduce_max": ([m * n, m], [n]), "reduce_min": ([m * n, m], [n]),
        "reduce_argmax": ([m * n, m], [n]), "reduce_argmin": ([m * n, m], [n]),
        "gather_rows": ([m * n, p, p * n], [m, n, p]),
        "scatter_add_rows": ([p * n, p, m * n], [m, n, p]),
        "softmax_xent_forward": ([m * n, m, m * n, m], [m, n]),
        "softmax_xent_backward": ([m * n, m, 1, m * n], [m, n]),
        "conv2d_nhwc": ([b * m * m * n, 2 * 2 * n * p, b * max(m - 1, 0) ** 2 * p], [b, m, m, n, p, 2, 2, 1, 1]),
        "conv2d_nhwc_grad_weight": ([b * m * m * n, b * max(m - 1, 0) ** 2 * p, 2 * 2 * n * p],
                                    [b, m, m, n, p, 2, 2, 1, 1]),
        # 3x3 kernel, stride 2, padding 1: output (m + 1) // 2 on a side (m >= 1).
        "conv2d_nhwc_padded": ([b * m * m * n, 9 * n * p, b * ((m + 1) // 2) ** 2 * p],
                               [b, m, m, n, p, 3, 3, 2, 2, 1, 1]),
        "conv2d_nhwc_grad_input_padded": ([b * ((m + 1) // 2) ** 2 * p, 9 * n * p, b * m * m * n],
                                          [b, m, m, n, p, 3, 3, 2, 2, 1, 1]),
        "conv2d_nhwc_grad_weight_padded": ([b * m * m * n, b * ((m + 1) // 2) ** 2 * p, 9 * n * p],
                                           [b, m, m, n, p, 3, 3, 2, 2, 1, 1]),
        "batchnorm_forward": ([m * n, n, n, m * n, n, n], [m, n, 1]),
        "batchnorm_backward": ([m * n, m * n, n, n, n, m * n, n, n], [m, n, 1]),
        "lstm_cell_forward": ([4 * m * n, (b + 1) * 4 * m * n, m * n, m * n, m * n, m * n, (b + 1) * m * n],
                              [b, m, n]),
        "lstm_cell_backward": ([m * n, (b + 1) * m * n, 4 * m * n, m * n, m * n, m * n, 4 * m * n,
                                (b + 1) * 4 * m * n], [b, m, n]),
    }
    return table[name]


@st.composite
def shaped_call(draw):
    name = draw(st.sampled_from(["matmul", "matmul_tn", "matmul_nt", "matmul_bias", "matmul_batched", "reduce_sum",
                                 "reduce_max", "reduce_min", "reduce_argmax", "reduce_argmin", "gather_rows",
                                 "scatter_add_rows", "softmax_xent_forward", "softmax_xent_backward", "conv2d_nhwc",
                                 "conv2d_nhwc_grad_weight", "conv2d_nhwc_padded", "conv2d_nhwc_grad_weight_padded",
                                 "conv2d_nhwc_grad_input_padded",
                                 "batchnorm_forward", "batchnorm_backward",
                                 "lstm_cell_forward", "lstm_cell_backward"]))
    dims = [draw(st.integers(0, 6) | st.sampled_from([17, 40, 70])) for _ in range(3)] + [draw(st.integers(0, 3))]
    sizes, ints = _shaped(name, dims)
    if sum(sizes) > 200_000:
        dims = [min(x, 6) for x in dims]
        sizes, ints = _shaped(name, dims)
    dtype = draw(st.sampled_from(["float32", "float32", "float64", "int32", "int64", "uint8", "bool"]))
    arrays = []
    for i, size in enumerate(sizes):
        size = max(0, size + draw(st.sampled_from([0] * 8 + [1, -1])))
        dt = dtype if draw(st.integers(0, 9)) else draw(st.sampled_from(DTYPES))
        if name in ("gather_rows", "scatter_add_rows") and i == 1:
            dt = "int64"
        if name.startswith("reduce_arg") and i == 1:
            dt = "int64"
        arrays.append((size, dt, draw(st.integers(0, 99))))
    refs = [("A", i) for i in range(len(arrays))]
    if draw(st.integers(0, 7)) == 0 and len(refs) > 1:  # an output that is also an input
        i, j = draw(st.integers(0, len(refs) - 1)), draw(st.integers(0, len(refs) - 1))
        refs[i] = refs[j]
    if draw(st.integers(0, 7)) == 0:  # one hostile int
        ints[draw(st.integers(0, len(ints) - 1))] = draw(st.sampled_from(HOSTILE_INTS))
    if name in ("gather_rows", "scatter_add_rows"):  # indices in range, mostly
        bad = draw(st.integers(0, 4)) == 0  # now and then one past the last row
        arrays[1] = (arrays[1][0], "int64", -(dims[0] + 1 + bad))
    if name.startswith("softmax"):
        arrays[1] = (arrays[1][0], arrays[1][1], -(dims[1] + 1))
    return arrays, [(name, refs + ints)]


@st.composite
def native_case(draw, signatures):
    """One native case: random calls, strided views or structured calls, on 1-4 threads, and now and
    then with allocation failures injected (the k-th allocation of the call and those after it)."""
    threads = draw(st.sampled_from([1, 1, 2, 3, 4]))
    mode = draw(st.sampled_from(["random", "strided", "strided", "shaped", "shaped"]))
    if mode == "random":
        arrays = draw(arrays_spec())
        calls = [draw(random_call(arrays, signatures)) for _ in range(draw(st.integers(1, 3)))]
    elif mode == "strided":
        arrays, calls = draw(strided_call())
    else:
        arrays, calls = draw(shaped_call())
    fail = None
    if draw(st.integers(0, 11)) == 0:
        fail = (draw(st.integers(0, 6)), draw(st.sampled_from([1, 1 << 40])))
    return threads, fail, arrays, calls
