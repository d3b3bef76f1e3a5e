"""Layer (a) of the fuzzing suite: NDArray views and ops on a backend against numpy.

A case is plain data: ``(backend, dtype, shape, seed, chain, op)``. The array of ``shape`` and
``dtype`` goes through ``chain``, a list of views (permute, broadcast_to, slice, flip, reshape), on the
backend and in numpy alike; then ``op`` runs on both: a unary, binary (with promotion, against an
array or a scalar), reduction or setitem op whose result must match numpy, or a hostile call that
must raise ValueError, TypeError or IndexError (never crash, never return nonsense silently).
:func:`run` executes a case in the sandbox worker and raises AssertionError on a mismatch.
"""
import numpy as np

from .. import _dtypes
from ..backend_ndarray import ndarray as nd

DTYPES = ("float32", "float64", "int32", "int64", "uint8", "bool")
ACCEPTED = (ValueError, TypeError, IndexError)
ARITH = ("add", "subtract", "multiply", "maximum", "minimum")
COMPARE = ("eq", "ne", "lt", "le", "gt", "ge")
BITS = ("and", "or", "xor")
UNARY = ("neg", "abs", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "invert", "copy", "compact")
REDUCE = ("sum", "max", "min", "argmax", "argmin")


# ---- the runner (in the sandbox worker) ---------------------------------------------------------
def _values(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return np.asarray(rng.integers(0, 2, shape).astype(bool))
    if dtype == "uint8":
        return np.asarray(rng.integers(0, 256, shape).astype(np.uint8))
    if dtype in ("int32", "int64"):
        return np.asarray(rng.integers(-50, 50, shape).astype(dtype))
    return np.asarray((rng.integers(-8, 9, shape) / 4).astype(dtype))  # exact in float32: sums compare tightly


def _apply_view(x, a, step):
    """One view step on the numpy array ``x`` and the NDArray ``a``."""
    kind, arg = step
    if kind == "permute":
        return np.transpose(x, arg), a.permute(arg)
    if kind == "broadcast":
        return np.broadcast_to(x, arg), a.broadcast_to(arg)
    if kind == "slice":
        idx = tuple(slice(*s) for s in arg)
        return x[idx] if idx else x[...], a[idx]  # x[()] of a 0-d array is a scalar, not a view
    if kind == "flip":
        return np.flip(x, arg), a.flip(arg)
    if kind == "reshape":
        return x.reshape(arg), a.reshape(arg)
    raise AssertionError(f"unknown view {kind}")


def _specified_cast(values, dtype):
    """True when the protocol specifies ``cast`` of every one of ``values`` to ``dtype``: a float to
    an integer dtype must be finite and in range once truncated (else the value is unspecified)."""
    values = np.asarray(values)
    if values.dtype.kind != "f" or dtype in _dtypes.FLOATS or dtype == "bool":
        return True
    info = np.iinfo(dtype)
    with np.errstate(invalid="ignore"):
        whole = np.trunc(values)
        return bool(np.all(np.isfinite(values) & (whole >= info.min) & (whole <= info.max)))


def _device(backend):
    from ._backends import backend_device

    return backend_device(backend)


def _build(backend, dtype, shape, seed, chain):
    dev = _device(backend)
    x = _values(shape, dtype, seed)
    a = nd.NDArray(x, device=dev, dtype=dtype)
    base = (x, a)
    for step in chain:
        x, a = _apply_view(x, a, step)
        if not isinstance(x, np.ndarray):  # numpy gives scalars for some views of 0-d arrays
            x = np.asarray(x)
    return x, a, base


def _expect_equal(got, want, dtype, what):
    assert isinstance(got, nd.NDArray), f"{what}: got {type(got).__name__}, not an NDArray"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, numpy gives {want.shape}"
    assert got.dtype == str(want.dtype) or (want.dtype == bool and got.dtype == "bool"), \
        f"{what}: dtype {got.dtype}, expected {want.dtype}"
    values = got.numpy()
    if want.dtype.kind == "f":
        tight = want.dtype == np.float64 and dtype == "float64"
        np.testing.assert_allclose(values, want, rtol=1e-12 if tight else 2e-6, atol=1e-12 if tight else 1e-5,
                                   equal_nan=True, err_msg=what)
    else:
        np.testing.assert_array_equal(values, want, err_msg=what)


_NP_BINARY = {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.true_divide,
              "maximum": np.maximum, "minimum": np.minimum, "eq": np.equal, "ne": np.not_equal, "lt": np.less,
              "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal, "and": np.bitwise_and,
              "or": np.bitwise_or, "xor": np.bitwise_xor}
_ND_BINARY = {"add": lambda a, b: a + b, "subtract": lambda a, b: a - b, "multiply": lambda a, b: a * b,
              "divide": lambda a, b: a / b, "maximum": lambda a, b: a.maximum(b), "minimum": lambda a, b: a.minimum(b),
              "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "lt": lambda a, b: a < b,
              "le": lambda a, b: a <= b, "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
              "and": lambda a, b: a & b, "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b}


def _binary(x, a, dtype, name, other, backend):
    """``a <name> other`` against numpy with needle's (PyTorch's) promotion, or the documented refusal."""
    if other[0] == "scalar":
        value = other[1]
        wide = _dtypes.with_scalar(dtype, value)
        y, b = np.asarray(value), value
    else:
        _, odtype, oshape, oseed, ochain = other
        y, b, _ = _build(backend, odtype, oshape, oseed, ochain)
        wide = _dtypes.promote(dtype, odtype)
    if name == "divide" and wide not in _dtypes.FLOATS:
        wide = _dtypes.DEFAULT_FLOAT
    refused = (name in BITS and wide in _dtypes.FLOATS) or (wide == "bool" and name == "subtract")
    try:
        np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        refused = True
    try:
        got = _ND_BINARY[name](a, b)
    except ACCEPTED:
        if refused or (wide == "bool" and name in ARITH):
            return
        raise
    assert not refused, f"{name} of {dtype} and {other} should have been refused"
    with np.errstate(all="ignore"):
        xw, yw = x.astype(wide), np.asarray(y).astype(wide)
        if wide == "bool" and name in ("add", "multiply"):
            want = (np.logical_or if name == "add" else np.logical_and)(xw, yw)
        else:
            want = _NP_BINARY[name](xw, yw)
    _expect_equal(got, np.asarray(want), wide, f"{name}({dtype}, {other})")


def _unary(x, a, dtype, name):
    floats = ("exp", "log", "sqrt", "tanh", "sigmoid")
    if name in ("neg",) and dtype == "bool" or name == "invert" and dtype in _dtypes.FLOATS:
        try:
            getattr(a, "__neg__" if name == "neg" else "__invert__")()
        except ACCEPTED:
            return
        raise AssertionError(f"{name} on {dtype} should have been refused")
    got = {"neg": lambda: -a, "abs": a.abs, "exp": a.exp, "log": a.log, "sqrt": a.sqrt, "tanh": a.tanh,
           "sigmoid": a.sigmoid, "relu": a.relu, "invert": lambda: ~a, "copy": a.copy, "compact": a.compact}[name]()
    wide = dtype if dtype in _dtypes.FLOATS or name not in floats else "float32"
    if name == "relu" and dtype not in _dtypes.FLOATS:
        wide = _dtypes.with_scalar(dtype, 0)  # relu is maximum(x, 0): bool becomes int64
    with np.errstate(all="ignore"):
        xw = x.astype(wide)
        want = {"neg": np.negative, "abs": np.abs, "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "tanh": np.tanh,
                "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "relu": lambda v: np.maximum(v, np.zeros((), v.dtype)),
                "invert": np.invert, "copy": np.copy, "compact": np.copy}[name](xw) if wide != "bool" or name not in (
                    "abs", "relu") else xw.copy()
    if name in floats and wide == "float32":
        want = np.asarray(want, np.float32)
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=name)
        assert got.shape == want.shape
        return
    _expect_equal(got, np.asarray(want), wide, f"{name}({dtype})")


def _reduce(x, a, dtype, name, axis, keepdims):
    empty = x.size == 0 if axis is None else (x.ndim and x.shape[axis % x.ndim] == 0) if isinstance(axis, int) else \
        any(x.shape[i % x.ndim] == 0 for i in axis)
    method = getattr(a, name)
    if name in ("max", "min", "argmax", "argmin") and empty:
        try:
            method(axis=axis, keepdims=keepdims)
        except ACCEPTED:
            return
        raise AssertionError(f"{name} over an empty axis should have been refused")
    got = method(axis=axis, keepdims=keepdims)
    with np.errstate(all="ignore"):
        if name == "sum":
            src = x if dtype in _dtypes.FLOATS else x.astype(np.int64)
            want = np.sum(src, axis=axis, keepdims=keepdims, dtype=src.dtype)
        elif name in ("max", "min"):
            want = (np.max if name == "max" else np.min)(x, axis=axis, keepdims=keepdims)
        else:
            fn = np.argmax if name == "argmax" else np.argmin
            want = fn(x, axis=axis, keepdims=keepdims).astype(np.int64)
    _expect_equal(got, np.asarray(want), dtype, f"{name}(axis={axis}, keepdims={keepdims}) of {dtype}")


def _setitem(x, a, base, dtype, index, value, overlapping):
    idx = tuple(slice(*s) for s in index)
    np_idx = idx or Ellipsis  # x[()] of a 0-d array is a scalar, not a view
    view_x = x if x.flags.writeable else x.copy()  # a broadcast: numpy's is read-only
    if overlapping:  # elements share memory: numpy's view must alias as the NDArray's does
        flat = a.device.to_numpy(a._handle, (a._handle.size,), (1,), 0).copy()
        item = flat.itemsize
        view_x = np.lib.stride_tricks.as_strided(flat[a.offset:], a.shape, tuple(s * item for s in a.strides))
    if value[0] == "scalar":
        v = value[1]
        a[idx] = v
        with np.errstate(all="ignore"):
            view_x[np_idx] = np.asarray(v).astype(dtype)
    else:
        _, vdtype, vshape, vseed = value
        src = _values(vshape, vdtype, vseed)
        target = view_x[np_idx]
        try:
            np.broadcast_to(src, target.shape)
            fits = True
        except ValueError:
            fits = src.size == target.size
        try:
            a[idx] = nd.NDArray(src, device=a.device, dtype=vdtype)
        except ACCEPTED:
            assert not fits, f"setitem of {vshape} into {target.shape} was refused"
            return
        assert fits, f"setitem of {vshape} into {target.shape} should have been refused"
        if overlapping or not _specified_cast(src, dtype):
            return  # which of the overlapping writes wins, or an out-of-range cast, is not specified
        with np.errstate(all="ignore"):  # needle reshapes a value of the same size, else broadcasts it
            new = src.astype(dtype)
            view_x[np_idx] = new.reshape(target.shape) if new.size == target.size else new
    _expect_equal(a, view_x, dtype, "setitem: the written view")


def _hostile(x, a, dtype, call):
    kind, arg = call
    ops = {
        "permute": lambda: a.permute(arg),
        "broadcast": lambda: a.broadcast_to(arg),
        "reshape": lambda: a.reshape(arg),
        "flip": lambda: a.flip(arg),
        "getitem": lambda: a[arg],
        "as_strided": lambda: a.as_strided(*arg),
        "sum": lambda: a.sum(axis=arg),
        "astype": lambda: a.astype(arg),
        "add": lambda: a + arg,
        "setitem": lambda: a.__setitem__(arg[0], arg[1]),
        "make": lambda: nd.NDArray.make(arg[0], strides=arg[1], device=a.device, handle=a._handle, offset=arg[2],
                                        dtype=a.dtype).numpy(),
    }
    try:
        result = ops[kind]()
        if isinstance(result, nd.NDArray):
            result.numpy()  # a view that was accepted must be readable (or too big: a clear error)
    except ACCEPTED + (MemoryError,):
        return "refused"
    return "accepted"


def run(case):
    """Run one NDArray case (see the module docstring); AssertionError on a mismatch."""
    backend, dtype, shape, seed, chain, op = case
    dev = _device(backend)
    if dtype not in dev.dtypes:
        return "dtype not supported by the backend"
    x, a, base = _build(backend, dtype, shape, seed, chain)  # the strategies make valid chains only
    assert a.shape == x.shape, f"view chain {chain}: shape {a.shape}, numpy gives {x.shape}"
    np.testing.assert_array_equal(a.numpy(), x, err_msg=f"view chain {chain}")
    kind = op[0]
    if kind == "unary":
        _unary(x, a, dtype, op[1])
    elif kind == "binary":
        if op[2][0] == "array" and op[2][1] not in dev.dtypes:
            return "dtype not supported by the backend"
        _binary(x, a, dtype, op[1], op[2], backend)
    elif kind == "reduce":
        _reduce(x, a, dtype, op[1], op[2], op[3])
    elif kind == "setitem":
        if op[2][0] == "array" and op[2][1] not in dev.dtypes:
            return "dtype not supported by the backend"
        overlapping = any(s == 0 and n > 1 for s, n in zip(a.strides, a.shape))
        _setitem(x, a, base, dtype, op[1], op[2], overlapping)
    else:
        return _hostile(x, a, dtype, op[1])
    return "ok"


# ---- strategies (in the test process) -----------------------------------------------------------
def strategies():
    """The hypothesis strategy of a case for a backend: ``strategies()(backend)``."""
    from hypothesis import strategies as st

    dims = st.sampled_from([0, 1, 1, 2, 3, 4, 5, 7])
    shapes = st.lists(dims, max_size=4).map(tuple)

    @st.composite
    def view_step(draw, shape):
        nd_ = len(shape)
        kind = draw(st.sampled_from(["permute", "broadcast", "slice", "flip", "reshape"]))
        if kind == "permute":
            return ("permute", tuple(draw(st.permutations(range(nd_))))), None
        if kind == "broadcast":
            lead = tuple(draw(st.lists(st.sampled_from([1, 2, 3, 0]), max_size=2)))
            new = lead + tuple(draw(st.sampled_from([n, 2, 3])) if n == 1 else n for n in shape)
            return ("broadcast", new), new
        if kind == "slice":
            sl = []
            for n in shape:
                start = draw(st.integers(-n - 1, n + 1)) if n else 0
                stop = draw(st.integers(-n - 1, n + 1) | st.none()) if n else None
                step = draw(st.sampled_from([1, 1, 2, 3, -1, -2]))
                sl.append((start, stop, step))
            new = tuple(len(range(*slice(*s).indices(n))) for s, n in zip(sl, shape))
            return ("slice", tuple(sl)), new
        if kind == "flip":
            axes = tuple(draw(st.lists(st.integers(0, max(nd_ - 1, 0)), unique=True, max_size=nd_))) if nd_ else ()
            return ("flip", axes), shape
        size = int(np.prod(shape))
        factors = [d for d in range(1, size + 1) if size % d == 0] if size else [0]
        first = draw(st.sampled_from(factors))
        new = (first, size // first) if size else (0, draw(st.sampled_from([0, 1, 3])))
        if draw(st.booleans()):
            new = (new[0], -1) if new[0] else new
        return ("reshape", new), tuple(size // first if n == -1 else n for n in new) if size else new

    @st.composite
    def chain(draw, shape):
        steps = []
        for _ in range(draw(st.integers(0, 4))):
            step, new = draw(view_step(shape))
            steps.append(step)
            shape = tuple(shape[i] for i in step[1]) if step[0] == "permute" else new
        return steps, shape

    def scalar(dtype):
        if dtype == "bool":
            return st.booleans()
        if dtype in ("float32", "float64"):
            return st.sampled_from([0.0, 1.0, -2.5, 0.25, 3.0])
        return st.integers(0, 3) if dtype == "uint8" else st.integers(-3, 3)

    dtypes = st.sampled_from(DTYPES)

    @st.composite
    def op(draw, dtype, shape):
        kind = draw(st.sampled_from(["unary", "binary", "binary", "reduce", "setitem", "hostile"]))
        nd_ = len(shape)
        if kind == "unary":
            return ("unary", draw(st.sampled_from(UNARY)))
        if kind == "binary":
            name = draw(st.sampled_from(ARITH + COMPARE + BITS + ("divide",)))
            if draw(st.booleans()):
                return ("binary", name, ("scalar", draw(scalar(draw(dtypes)))))
            oshape = draw(st.sampled_from([shape, shape[1:], (1,) + shape[1:], shape[:-1] + (1,) if nd_ else (1,),
                                           (3,) + shape]))
            odtype = draw(st.sampled_from([dtype, dtype, draw(dtypes)]))
            ochain = []
            if draw(st.booleans()) and nd_:
                ochain = [("flip", (0,))] if len(oshape) else []
            return ("binary", name, ("array", odtype, tuple(oshape), draw(st.integers(0, 99)), ochain))
        if kind == "reduce":
            axis = draw(st.none() | (st.integers(-nd_, nd_ - 1) if nd_ else st.none())
                        | st.lists(st.integers(0, max(nd_ - 1, 0)), unique=True, max_size=nd_).map(tuple))
            name = draw(st.sampled_from(REDUCE))
            if name.startswith("arg") and isinstance(axis, tuple):
                axis = None
            if isinstance(axis, tuple) and not nd_:
                axis = None
            return ("reduce", name, axis, draw(st.booleans()))
        if kind == "setitem":
            index = tuple((draw(st.integers(0, n)), draw(st.integers(0, n + 1)), draw(st.sampled_from([1, 2])))
                          for n in shape)
            if draw(st.booleans()):
                return ("setitem", index, ("scalar", draw(scalar(dtype))))
            target = tuple(len(range(*slice(*s).indices(n))) for s, n in zip(index, shape))
            vshape = draw(st.sampled_from([target, target[1:], (1,) * len(target), (int(np.prod(target)),), (2, 2)]))
            return ("setitem", index, ("array", draw(dtypes), vshape, draw(st.integers(0, 99))))
        hostile_ints = st.sampled_from([-1, -2**31, 2**31, 2**62, -2**63, 2**63 - 1, 2**64, 5, 0, 1])
        what = draw(st.sampled_from(["permute", "broadcast", "reshape", "flip", "getitem", "as_strided", "sum",
                                     "astype", "add", "setitem", "make"]))
        small_lists = st.lists(hostile_ints, max_size=5).map(tuple)
        arg = {
            "permute": small_lists, "broadcast": small_lists, "reshape": small_lists, "flip": small_lists,
            "getitem": st.tuples(hostile_ints) | small_lists | st.just((slice(None, None, 0),)) | st.just(1.5),
            "as_strided": st.tuples(small_lists, small_lists),
            "sum": hostile_ints | small_lists | st.just(1.5),
            "astype": st.sampled_from(["complex64", "float16", "int8", None, "", "object", 3]),
            "add": st.sampled_from(["x", [1, 2], None, (1,), b"x", {}]),
            "setitem": st.tuples(st.just(slice(None)), st.sampled_from([None, "x", [1, 2, 3], float("nan")])),
            "make": st.tuples(small_lists, small_lists | st.none(), hostile_ints),
        }[what]
        return ("hostile", (what, draw(arg)))

    @st.composite
    def case(draw, backend):
        dtype = draw(dtypes)
        shape = draw(shapes)
        steps, final = draw(chain(shape))
        return backend, dtype, shape, draw(st.integers(0, 999)), steps, draw(op(dtype, final))

    return case
