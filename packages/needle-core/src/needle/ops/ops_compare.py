"""Comparisons, logic, selection and integer-valued reductions.

Comparisons and logical ops give bool tensors and argmax/argmin int64 ones: constants of the
graph, with no gradient. ``where``, ``maximum``, ``minimum``, ``clip`` and ``abs`` are
differentiable with respect to their float operands (PyTorch's conventions at ties: ``maximum``
and ``minimum`` split the gradient evenly, ``clip`` passes it where ``lo <= a <= hi``, and
``abs`` has gradient 0 at 0).
"""
from .. import _dtypes
from .._argnames import UNSET, axes_and_keepdims
from ..autograd import NDArray, Tensor, TensorOp
from ..backend_ndarray.ndarray import _scalar_operand, where as nd_where
from .ops_mathematic import _check_pair, cast, unbroadcast

_COMPARE = {"eq": "__eq__", "ne": "__ne__", "lt": "__lt__", "le": "__le__", "gt": "__gt__", "ge": "__ge__"}
_LOGIC = {"and": "__and__", "or": "__or__", "xor": "__xor__"}


class Compare(TensorOp):
    """An elementwise comparison (``eq ne lt le gt ge``) of two tensors or a tensor and a scalar -> bool."""

    def __init__(self, name, scalar=None):
        self.name, self.scalar = name, scalar

    def compute(self, a: NDArray, b: NDArray = None):
        return getattr(a, _COMPARE[self.name])(self.scalar if b is None else b)

    def gradient(self, out_grad, node):
        return (None,) * len(node.inputs)


class Logical(TensorOp):
    """Bitwise/logical ``and or xor`` of integer or bool tensors (or a scalar), and ``not`` (``~``)."""

    def __init__(self, name, scalar=None):
        self.name, self.scalar = name, scalar

    def compute(self, a: NDArray, b: NDArray = None):
        if self.name == "not":
            return ~a
        return getattr(a, _LOGIC[self.name])(self.scalar if b is None else b)

    def gradient(self, out_grad, node):
        return (None,) * len(node.inputs)


def _binary_constant_op(op_class, name, a, b, who):
    if isinstance(b, Tensor):
        a, b = _check_pair(who, a, b)
        return op_class(name)(a, b)
    return op_class(name, _scalar_operand(b, who))(a)


def compare(name, a, b):
    """``a <name> b`` for ``name`` in eq, ne, lt, le, gt, ge: a bool tensor (NaN compares False but for ne)."""
    if name not in _COMPARE:
        raise ValueError(f"compare: name must be one of {', '.join(_COMPARE)}, got {name!r}")
    return _binary_constant_op(Compare, name, a, b, name)


def eq(a, b):
    """``a == b`` elementwise (bool)."""
    return compare("eq", a, b)


def ne(a, b):
    """``a != b`` elementwise (bool; True where either is NaN)."""
    return compare("ne", a, b)


def lt(a, b):
    """``a < b`` elementwise (bool)."""
    return compare("lt", a, b)


def le(a, b):
    """``a <= b`` elementwise (bool)."""
    return compare("le", a, b)


def gt(a, b):
    """``a > b`` elementwise (bool)."""
    return compare("gt", a, b)


def ge(a, b):
    """``a >= b`` elementwise (bool)."""
    return compare("ge", a, b)


def logical_and(a, b):
    """``a & b``: logical on bool tensors, bitwise on integers."""
    return _binary_constant_op(Logical, "and", a, b, "and")


def logical_or(a, b):
    """``a | b``: logical on bool tensors, bitwise on integers."""
    return _binary_constant_op(Logical, "or", a, b, "or")


def logical_xor(a, b):
    """``a ^ b``: logical on bool tensors, bitwise on integers."""
    return _binary_constant_op(Logical, "xor", a, b, "xor")


def logical_not(a):
    """``~a``: logical not of a bool tensor, bitwise not of an integer one."""
    return Logical("not")(a)


# ---- selection ---------------------------------------------------------------------------------
def _operand_tensor(value, like, who):
    """``value`` as a Tensor on ``like``'s device (a scalar becomes a 0-d constant of its own dtype)."""
    if isinstance(value, Tensor):
        return value
    value = _scalar_operand(value, who)
    dtype = _dtypes.with_scalar(like.dtype if like is not None else "bool", value)
    device = like.device if like is not None else None
    return Tensor(value, device=device, dtype=dtype, requires_grad=False)


class Where(TensorOp):
    """``where(cond, a, b)``: a where cond holds, else b (broadcast); gradients to a and b."""

    def compute(self, cond: NDArray, a: NDArray, b: NDArray):
        return nd_where(cond, a, b)

    def gradient(self, out_grad, node):
        cond, a, b = node.inputs
        mask = cond.realize_cached_data()
        zero = Tensor.make_const(out_grad.device.full((), 0, dtype=out_grad.dtype))

        def part(x, picked):
            if not x.requires_grad:
                return None
            g = Where()(Tensor.make_const(mask), *((out_grad, zero) if picked else (zero, out_grad)))
            g = unbroadcast(g, x.shape)
            return g if g.dtype == x.dtype else cast(g, x.dtype)
        return None, part(a, True), part(b, False)


def where(condition, a, b):
    """Elementwise ``a if condition else b``; ``condition`` a bool tensor (other dtypes: nonzero),
    ``a`` and ``b`` tensors or scalars. All three broadcast; the result has the promoted dtype of a
    and b, and the gradient flows to whichever of a and b are float tensors.

    >>> import needle as ndl
    >>> x = ndl.Tensor([-1.0, 2.0, -3.0, 4.0])
    >>> ndl.where(x > 0, x, 0.0).numpy().tolist()
    [0.0, 2.0, 0.0, 4.0]
    >>> (x > 0).dtype
    'bool'
    """
    if not isinstance(condition, Tensor):
        raise TypeError(f"where: condition must be a Tensor, got {type(condition).__name__}")
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else condition
    a, b = _operand_tensor(a, like, "where"), _operand_tensor(b, like, "where")
    for name, x in (("a", a), ("b", b)):
        if x.device != condition.device:
            raise ValueError(f"where: {name} is on {x.device}, condition on {condition.device}")
    if condition.dtype != "bool":
        condition = ne(condition, 0)
    return Where()(condition, a, b)


class Extremum(TensorOp):
    """``maximum``/``minimum`` of two tensors: the gradient goes to the larger (smaller) input,
    half to each where they tie."""

    def __init__(self, name):
        self.name = name

    def compute(self, a: NDArray, b: NDArray):
        return a.maximum(b) if self.name == "maximum" else a.minimum(b)

    def gradient(self, out_grad, node):
        a, b = node.inputs
        x, y = a.realize_cached_data(), b.realize_cached_data()
        wins = (x > y) if self.name == "maximum" else (x < y)
        dtype = out_grad.dtype
        share_a = nd_where(wins, 1.0, nd_where(x == y, 0.5, 0.0)).astype(dtype)

        def part(inp, share):
            if not inp.requires_grad:
                return None
            g = unbroadcast(out_grad * Tensor.make_const(share), inp.shape)
            return g if g.dtype == inp.dtype else cast(g, inp.dtype)
        return part(a, share_a), part(b, 1.0 - share_a)


class ExtremumScalar(TensorOp):
    """``maximum``/``minimum`` of a tensor and a scalar (half the gradient at a tie, as for two tensors)."""

    def __init__(self, name, scalar):
        self.name, self.scalar = name, scalar

    def compute(self, a: NDArray):
        return a.maximum(self.scalar) if self.name == "maximum" else a.minimum(self.scalar)

    def gradient(self, out_grad, node):
        x = node.inputs[0].realize_cached_data()
        wins = (x > self.scalar) if self.name == "maximum" else (x < self.scalar)
        share = nd_where(wins, 1.0, nd_where(x == self.scalar, 0.5, 0.0)).astype(out_grad.dtype)
        return out_grad * Tensor.make_const(share)


def _extremum(name, a, b):
    if isinstance(b, Tensor) and not isinstance(a, Tensor):
        a, b = b, a
    if not isinstance(a, Tensor):
        raise TypeError(f"{name}: expected at least one Tensor, got {type(a).__name__} and {type(b).__name__}")
    if isinstance(b, Tensor):
        a, b = _check_pair(name, a, b)
        return Extremum(name)(a, b)
    return ExtremumScalar(name, _scalar_operand(b, name))(a)


def maximum(a, b):
    """Elementwise maximum of two tensors (broadcast) or a tensor and a scalar; NaN propagates."""
    return _extremum("maximum", a, b)


def minimum(a, b):
    """Elementwise minimum of two tensors (broadcast) or a tensor and a scalar; NaN propagates."""
    return _extremum("minimum", a, b)


class Clip(TensorOp):
    """``a`` limited to [lo, hi] (either bound may be None); gradient 1 where lo <= a <= hi."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def compute(self, a: NDArray):
        out = a
        if self.lo is not None:
            out = out.maximum(self.lo)
        if self.hi is not None:
            out = out.minimum(self.hi)
        return out if out is not a else a.copy()

    def gradient(self, out_grad, node):
        x = node.inputs[0].realize_cached_data()
        inside = None
        if self.lo is not None:
            inside = x >= self.lo
        if self.hi is not None:
            upper = x <= self.hi
            # bool masks combine with &; a float-only (protocol-1) backend's float masks multiply
            inside = upper if inside is None else inside & upper if upper.dtype == "bool" else inside * upper
        if inside is None:
            return out_grad
        return out_grad * Tensor.make_const(inside.astype(out_grad.dtype))


def clip(a, lo=None, hi=None):
    """``a`` limited to the interval [lo, hi] (scalars; None means unbounded on that side)."""
    lo = None if lo is None else _scalar_operand(lo, "clip")
    hi = None if hi is None else _scalar_operand(hi, "clip")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"clip: lo={lo} is greater than hi={hi}")
    return Clip(lo, hi)(a)


class Abs(TensorOp):
    """``|a|``; the gradient is ``sign(a)`` (0 at 0)."""

    def compute(self, a: NDArray):
        return a.abs()

    def gradient(self, out_grad, node):
        x = node.inputs[0].realize_cached_data()
        sign = nd_where(x > 0, 1.0, nd_where(x < 0, -1.0, 0.0)).astype(out_grad.dtype)
        return out_grad * Tensor.make_const(sign)


def abs(a):  # noqa: A001 - numpy's and PyTorch's name
    """Elementwise absolute value."""
    return Abs()(a)


class ArgReduce(TensorOp):
    """Index of the first maximum (``argmax``) or minimum (``argmin``) along an axis: int64, no gradient."""

    def __init__(self, name, axis=None, keepdims=False):
        self.name, self.axis, self.keepdims = name, axis, keepdims

    def compute(self, a: NDArray):
        return getattr(a, self.name)(self.axis, self.keepdims)

    def gradient(self, out_grad, node):
        return None


def argmax(a, axis=UNSET, keepdims=UNSET, *, axes=UNSET, dim=UNSET, keepdim=UNSET):
    """Indices (int64) of the first maximum along ``axis`` (None, the default: into the flattened
    tensor). Also spelled ``axes=``/``dim=`` and ``keepdim=`` (two spellings are a TypeError)."""
    axis, keepdims = axes_and_keepdims("argmax", keepdims, keepdim, axis=axis, axes=axes, dim=dim)
    return ArgReduce("argmax", axis, bool(keepdims))(a)


def argmin(a, axis=UNSET, keepdims=UNSET, *, axes=UNSET, dim=UNSET, keepdim=UNSET):
    """Indices (int64) of the first minimum along ``axis`` (None, the default: into the flattened
    tensor). Also spelled ``axes=``/``dim=`` and ``keepdim=`` (two spellings are a TypeError)."""
    axis, keepdims = axes_and_keepdims("argmin", keepdims, keepdim, axis=axis, axes=axes, dim=dim)
    return ArgReduce("argmin", axis, bool(keepdims))(a)
