"""Reverse-mode automatic differentiation: the Value/Op graph and backward.

A Tensor is a node of the graph: it records the Op that made it and the input nodes.
``backward`` sorts the graph topologically (iteratively, so deep graphs do not hit the
recursion limit) and sweeps it in reverse, each node's op turning its adjoint into its inputs'
(micrograd's loop), so that a gradient is itself a differentiable Tensor. The methods that only
call an op (``+``, ``sum``, ``reshape``, ...) live in ``_tensor_operators``, TensorTuple beside its
ops in ``ops/ops_tuple.py``.
"""
import contextlib
import functools
import gc
from typing import List, Optional, Tuple, Union

from . import backends
from ._dtypes import FLOATS as _FLOATS
from ._grad_hooks import _HOOKS
from ._grad_hooks import grad_ready as _grad_ready
from ._tensor_operators import TensorOperators, _device_or_dtype, _is_dtype_like  # noqa: F401 (re-exported)
from .backend_ndarray.ndarray import NDArray

#: When True, ops only record the graph; data is computed on first use.
LAZY_MODE = False


def __getattr__(name):
    # ``TENSOR_COUNTER``: the number of live Value objects (tests use it to catch leaks). Counted
    # on demand from the garbage collector's list, instead of a Python ``__del__`` on every tensor
    # (which cost ~0.3 us per op). type(), not isinstance: no __class__ lookups, which some objects warn on.
    if name == "TENSOR_COUNTER":
        return sum(1 for obj in gc.get_objects() if issubclass(type(obj), Value))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_grad_enabled = True


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) under which ops record no graph."""

    def __enter__(self):
        global _grad_enabled
        self._prev, _grad_enabled = _grad_enabled, False
        return self

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False


def is_grad_enabled():
    """False inside :class:`no_grad`."""
    return _grad_enabled


class Op:
    """An operator: ``compute`` maps NDArrays forward, ``gradient`` maps adjoints back."""

    def __call__(self, *args):
        raise NotImplementedError()

    def compute(self, *args: Tuple[NDArray]):
        """Forward computation on the inputs' NDArrays."""
        raise NotImplementedError()

    def gradient(self, out_grad: "Value", node: "Value") -> Union["Value", Tuple["Value"]]:
        """Partial adjoints for each input (None for one that needs none), given the adjoint
        ``out_grad`` of ``node``."""
        raise NotImplementedError()

    def gradient_as_tuple(self, out_grad: "Value", node: "Value") -> Tuple["Value"]:
        """``gradient`` as a tuple, whatever the number of inputs."""
        output = self.gradient(out_grad, node)
        if isinstance(output, (tuple, list)):
            return tuple(output)
        return (output,)


class TensorOp(Op):
    """An op whose output is a Tensor."""

    def __call__(self, *args):
        return _make_from_op(Tensor, self, args)


class TensorTupleOp(Op):
    """An op whose output is a TensorTuple."""

    def __call__(self, *args):
        return _make_from_op(TensorTuple, self, args)


class Value:
    """A node of the computational graph."""

    op: Optional[Op]
    inputs: List["Value"]
    cached_data: NDArray
    requires_grad: bool
    num_outputs = 1  # a class default: the eager path of every op skips storing it

    def realize_cached_data(self):
        """The node's data, computed (once) on first use."""
        data = self.cached_data
        if data is None:
            # Iteratively, inputs first: a lazy graph can be deeper than the recursion limit.
            for node in _post_order([self], _unrealized_inputs):
                node.cached_data = node.op.compute(*[x.cached_data for x in node.inputs])
            data = self.cached_data
        return data

    def is_leaf(self):
        return self.op is None

    def _init(self, op, inputs, *, num_outputs=1, cached_data=None, requires_grad=None):
        if requires_grad is None:
            requires_grad = any(x.requires_grad for x in inputs)
        self.op = op
        self.inputs = inputs
        self.num_outputs = num_outputs
        self.cached_data = cached_data
        self.requires_grad = requires_grad

    @classmethod
    def make_const(cls, data, *, requires_grad=False):
        """A leaf holding ``data`` (integer and bool data never requires grad)."""
        value = cls.__new__(cls)
        if requires_grad and isinstance(data, NDArray) and data._dtype not in _FLOATS:
            requires_grad = False
        value._init(None, [], cached_data=data, requires_grad=requires_grad)
        return value

    @classmethod
    def make_from_op(cls, op: Op, inputs: List["Value"]):
        """Apply ``op``; record the graph only when some input needs a gradient."""
        requires_grad = False
        if _grad_enabled:
            for x in inputs:  # a plain loop: cheaper than any(genexpr) for one or two inputs
                if x.requires_grad:
                    requires_grad = True
                    break
        value = cls.__new__(cls)
        if LAZY_MODE:
            value._init(op, list(inputs), requires_grad=requires_grad)
            return value
        # Eager: compute first, then fill the node's fields directly (this runs once per op).
        # One and two inputs are unrolled: a list comprehension costs ~0.2 us, a tenth of a small op.
        # The data are read directly when present (realize_cached_data, inlined).
        if len(inputs) == 2:
            x, y = inputs
            dx, dy = x.cached_data, y.cached_data
            data = op.compute(dx if dx is not None else x.realize_cached_data(),
                              dy if dy is not None else y.realize_cached_data())
        elif len(inputs) == 1:
            dx = inputs[0].cached_data
            data = op.compute(dx if dx is not None else inputs[0].realize_cached_data())
        else:
            data = op.compute(*[x.realize_cached_data() for x in inputs])
        if requires_grad and getattr(data, "_dtype", "float32") not in _FLOATS:
            requires_grad = False  # integer and bool results (comparisons, argmax) are constants
        if requires_grad:
            value.op, value.inputs = op, list(inputs)
        else:  # nothing upstream needs a gradient: keep the result, not the graph
            value.op, value.inputs = None, []
        value.cached_data = data
        value.requires_grad = requires_grad
        return value


_make_from_op = Value.make_from_op.__func__
_new = object.__new__


def _eager_binary(op, slow, scalar=None):
    """``call(a, b)``: ``op`` applied to two Tensors, in the common case (eager, both data present,
    on one device object, in one dtype and shape) with ``make_from_op`` inlined, else ``slow(a, b)``
    (the checks, promotion and broadcasting); ``scalar(a, b)`` when given and ``b`` is no tensor (the
    Tensor operators: ``t + 1.0``). For a small array the layers cost more than the kernel."""
    def call(a, b):
        if isinstance(b, Tensor):
            if not LAZY_MODE and isinstance(a, Tensor):
                da, db = a.cached_data, b.cached_data
                if (da is not None and db is not None and da._device is db._device and da._dtype == db._dtype
                        and da._shape == db._shape):
                    data = op.compute(da, db)  # looked up per call: a test may patch the class
                    value = _new(Tensor)
                    if _grad_enabled and (a.requires_grad or b.requires_grad) and data._dtype in _FLOATS:
                        value.op, value.inputs, value.cached_data, value.requires_grad = op, [a, b], data, True
                    else:  # nothing upstream needs a gradient (or an integer result): the result, no graph
                        value.op, value.inputs, value.cached_data, value.requires_grad = None, [], data, False
                    return value
        elif scalar is not None and not isinstance(b, TensorOperators):
            return scalar(a, b)
        return slow(a, b)
    return call


def _eager_scalar(op_class, check):
    """``call(a, scalar)``: ``op_class`` (a ScalarOp without its own ``__init__`` or ``__call__``) made for
    ``scalar`` (a float or int as is, anything else through ``check``) and applied to ``a``, with
    ``_apply_unary`` inlined: the chain of scalar ops (``x * 0.9 + 0.1``) is the commonest small op."""
    def call(a, scalar):
        kind = type(scalar)
        op = _new(op_class)
        op.scalar = scalar if kind is float or kind is int else check(scalar)
        if LAZY_MODE or not isinstance(a, Tensor) or a.cached_data is None:
            return _make_from_op(Tensor, op, (a,))
        data = op.compute(a.cached_data)
        value = _new(Tensor)
        if _grad_enabled and a.requires_grad and data._dtype in _FLOATS:
            value.op, value.inputs, value.cached_data, value.requires_grad = op, [a], data, True
        else:
            value.op, value.inputs, value.cached_data, value.requires_grad = None, [], data, False
        return value
    return call


def _apply_unary(op, a):
    """``op(a)`` for a one-input TensorOp (the stateless unary ops: negate, exp, relu, ...): ``make_from_op``
    with the eager case of a Tensor whose data is present inlined."""
    if LAZY_MODE or not isinstance(a, Tensor) or a.cached_data is None:
        return _make_from_op(Tensor, op, (a,))
    data = op.compute(a.cached_data)
    value = _new(Tensor)
    if _grad_enabled and a.requires_grad and getattr(data, "_dtype", "float32") in _FLOATS:
        value.op, value.inputs, value.cached_data, value.requires_grad = op, [a], data, True
    else:
        value.op, value.inputs, value.cached_data, value.requires_grad = None, [], data, False
    return value


# Tensor's shortcuts to its data's shape, dtype and device: read several times per op, so the data is
# read directly when present, and each has its own function (``getattr`` with a name costs more).
def _shape_of(self):
    data = self.cached_data
    return (data if data is not None else self.realize_cached_data())._shape


def _dtype_of(self):
    data = self.cached_data
    return (data if data is not None else self.realize_cached_data())._dtype


def _device_of(self):
    data = self.cached_data
    return (data if data is not None else self.realize_cached_data())._device


def _ndim(self):
    data = self.cached_data
    return len((data if data is not None else self.realize_cached_data())._shape)


class Tensor(Value, TensorOperators):
    """An n-dimensional array that records the ops applied to it, for ``backward``.

    ``Tensor(array, device=None, dtype=None, requires_grad=True)``: ``array`` is a Tensor,
    an NDArray, a numpy array, a list or a scalar. Without ``dtype``, a Tensor or NDArray keeps
    its dtype; anything else gets the dtype numpy infers (an array keeps its own, Python ints give
    int64 and bools bool), except that float64 becomes float32 on a device without float64.
    Integer and bool tensors never require grad: ``requires_grad`` reads False for them, and
    asking for ``requires_grad=True`` explicitly is a TypeError. Any other keyword (a misspelt
    ``requires_gard=``) is a TypeError naming it.

    >>> import needle as ndl
    >>> x = ndl.Tensor([[1.0, 2.0], [3.0, 4.0]], dtype="float32", requires_grad=True)
    >>> x.shape, x.dtype
    ((2, 2), 'float32')
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad.numpy().tolist()
    [[2.0, 4.0], [6.0, 8.0]]
    """

    grad: Optional["Tensor"] = None  # set on leaves by backward()

    # numpy must not take over binary operators: ``np.float32(2) * t`` would turn ``t`` into an
    # ndarray and silently drop it from the graph. With this, numpy hands the operator back to
    # Tensor (``__rmul__``), and a numpy ufunc called on a Tensor raises a TypeError.
    __array_ufunc__ = None

    def __init__(self, array, *, device=None, dtype=None, requires_grad=None):
        if isinstance(device, str):
            device = backends.device(device)
        if isinstance(array, Tensor):
            device = device or array.device
            dtype = dtype or array.dtype
            src = array.realize_cached_data()
            cached = src if (device == src.device and dtype == src.dtype) else NDArray(src, device=device, dtype=dtype)
        else:
            if device is None and isinstance(array, NDArray):
                device = array.device
            # Without a dtype, NDArray keeps what numpy makes of ``array`` when it is float64 and the
            # device has float64, as the course's numpy backend did (``numpy.array(x)``); float32 otherwise.
            cached = NDArray(array, device=device or backends.default_device(), dtype=dtype)
        if cached._dtype not in _FLOATS:
            if requires_grad:
                raise TypeError(f"Tensor: requires_grad=True needs a float dtype, got {cached._dtype}; integer "
                                f"and bool tensors are constants of the graph (convert with .astype('float32'))")
            requires_grad = False
        self._init(None, [], cached_data=cached, requires_grad=True if requires_grad is None else requires_grad)

    @staticmethod
    def make_from_op(op: Op, inputs: List["Value"]):
        return _make_from_op(Tensor, op, inputs)

    @staticmethod
    def make_const(data, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.realize_cached_data()
        return Value.make_const.__func__(Tensor, data, requires_grad=requires_grad)

    # ---- data and metadata (more in TensorOperators) ------------------------------------
    def detach(self):
        """A new leaf Tensor with the same data and no graph."""
        return Tensor.make_const(self.realize_cached_data())

    shape = property(_shape_of, doc="The shape, a tuple of ints.")
    dtype = property(_dtype_of, doc="The dtype's name (``'float32'``, ...).")
    device = property(_device_of, doc="The device holding the data.")
    ndim = property(_ndim, doc="The number of axes.")
    size = property(lambda self: self.realize_cached_data().size, doc="The number of elements.")

    # ---- autograd ---------------------------------------------------------------------
    def backward(self, out_grad=None, create_graph=True):
        """Compute gradients of this tensor with respect to every leaf that requires grad.

        ``out_grad`` defaults to ones of this tensor's shape. Each leaf's ``.grad`` is
        replaced (not accumulated). With ``create_graph=False`` gradients are plain data
        (faster, no graph kept); by default they are graph tensors, so a gradient can be
        differentiated again.
        """
        if out_grad is None:
            out_grad = Tensor.make_const(self.device.full(self.shape, 1.0, dtype=self.dtype))
        elif not isinstance(out_grad, Tensor):
            out_grad = Tensor(out_grad, device=self.device, dtype=self.dtype, requires_grad=False)
        elif out_grad.device != self.device:
            raise ValueError(f"backward: out_grad is on {out_grad.device}, tensor is on {self.device}")
        elif out_grad.dtype != self.dtype:
            # Gradients keep their inputs' dtype: a float64 out_grad must not promote a float32 graph.
            out_grad = _ops.cast(out_grad, self.dtype)
        if out_grad.shape != self.shape:
            raise ValueError(f"backward: out_grad has shape {out_grad.shape}, tensor has shape {self.shape}")
        with contextlib.nullcontext() if create_graph else no_grad():
            compute_gradient_of_variables(self, out_grad)


# ---- backward ------------------------------------------------------------------------------
def _post_order(roots, inputs_of):
    """``roots`` and the nodes ``inputs_of`` leads to, each after its inputs (depth-first post-order,
    inputs in order, with an explicit stack so that a chain of any length stays within Python's
    default recursion limit)."""
    visited, order = set(), []
    for root in roots:
        if id(root) in visited:
            continue
        visited.add(id(root))
        stack = [(root, iter(inputs_of(root)))]
        while stack:
            node, children = stack[-1]
            for child in children:
                if id(child) not in visited:
                    visited.add(id(child))
                    stack.append((child, iter(inputs_of(child))))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def _unrealized_inputs(node):
    return [x for x in node.inputs if x.cached_data is None]


def find_topo_sort(node_list: List[Value]) -> List[Value]:
    """Nodes reachable from ``node_list`` in topological order (inputs before users)."""
    return _post_order(node_list, lambda node: node.inputs)


def _topo_sort(node_list, only_requires_grad, stop=()):
    """Topological order, through nodes that require grad only if asked; the inputs of nodes whose id
    is in ``stop`` are not visited."""
    def inputs_of(node):
        if id(node) in stop:
            return ()
        return [x for x in node.inputs if x.requires_grad] if only_requires_grad else node.inputs
    return _post_order(node_list, inputs_of)


def compute_gradient_of_variables(output_tensor, out_grad):
    """Reverse sweep: every leaf that requires grad gets ``.grad``; intermediate nodes keep nothing,
    so the graph is freed once the caller drops it."""
    _sweep(output_tensor, out_grad)


def gradients(output_tensor, out_grad, wrt):
    """Adjoints of the nodes ``wrt`` (a list; None for one the output does not reach), as graph tensors.

    The sweep stops at ``wrt`` and sets no leaf's ``.grad``: a fused op whose gradient must be
    differentiable builds its composed forward from its inputs and takes this (see nn's LSTM).
    """
    found = _sweep(output_tensor, out_grad, {id(x) for x in wrt})
    return [found.get(id(x)) for x in wrt]


def _grad_order(output, stop):
    """``_topo_sort([output], True, stop)`` inlined for the backward sweep: the nodes that require grad
    (and ``output``), each after its inputs; the inputs of nodes whose id is in ``stop`` not visited."""
    visited, order = {id(output)}, []
    stack = [(output, iter(() if id(output) in stop else output.inputs))]
    while stack:
        node, children = stack[-1]
        for child in children:
            if child.requires_grad and id(child) not in visited:
                visited.add(id(child))
                stack.append((child, iter(() if id(child) in stop else child.inputs)))
                break
        else:
            stack.pop()
            order.append(node)
    return order


_gradient_as_tuple = Op.gradient_as_tuple


def _sweep(output, out_grad, stop=None):
    """The loop: in reverse topological order, each node's adjoint (the sum of its partials, added as
    they come; a TensorTuple's may be sparse, see ``ops_tuple.TupleAdjoint``) goes to its op, which
    gives its inputs' partials. With ``stop`` (node ids), collect their adjoints instead of ``.grad``."""
    adjoints, found = {id(output): out_grad}, {}
    order = _grad_order(output, stop or ())
    for node in reversed(order):
        grad = adjoints.pop(id(node), None)  # the sum of its partial adjoints
        if grad is None:
            continue
        op = node.op
        if stop is not None and id(node) in stop:
            found[id(node)] = grad
        elif op is None:  # a leaf
            if stop is None and node.requires_grad:
                node.grad = grad  # the leaf's gradient is final here: run its gradient-ready hooks
                if _HOOKS:
                    _grad_ready(node)
        elif node.requires_grad:
            # gradient_as_tuple, inlined unless an op overrides it
            partials = (op.gradient(grad, node) if type(op).gradient_as_tuple is _gradient_as_tuple
                        else op.gradient_as_tuple(grad, node))
            if not isinstance(partials, (tuple, list)):
                partials = (partials,)
            for inp, partial in zip(node.inputs, partials):
                if partial is not None and inp.requires_grad:  # None: the op skipped an input needing none
                    known = adjoints.get(id(inp))
                    adjoints[id(inp)] = partial if known is None else known + partial
    return found


def sum_node_list(node_list):
    """Sum a list of nodes (course helper)."""
    return functools.reduce(lambda a, b: a + b, node_list)


def from_dlpack(obj, device=None, copy=None, requires_grad=False):
    """``needle.from_dlpack(obj)``: a Tensor over the memory of ``obj`` (a numpy array, a PyTorch or CuPy
    tensor, anything with ``__dlpack__``), without a copy where the memory allows it: a write on either
    side shows on the other, and ``obj``'s memory stays alive as long as the tensor.

    ``device``: the needle device to put it on (default: the one holding the memory; host memory goes to
    the default device when that is a host backend, else :func:`needle.cpu`). ``copy=True`` always
    copies; ``copy=False`` refuses a copy to another device. The tensor is a leaf; ``requires_grad`` as
    in ``Tensor``. Errors: TypeError for a dtype needle cannot hold (float16, complex, ...),
    BufferError for memory on a device needle has no backend for.
    """
    from .backend_ndarray.ndarray import from_dlpack as array_from_dlpack

    return Tensor.make_const(array_from_dlpack(obj, device=device, copy=copy), requires_grad=requires_grad)


# Last: ops subclass TensorOp and build Tensors. TensorTuple lives beside its ops (re-exported here);
# Tensor's operator methods get the ops module now that it exists.
from . import ops as _ops  # noqa: E402
from . import _tensor_operators  # noqa: E402
from .ops.ops_tuple import TensorTuple  # noqa: E402,F401

_tensor_operators._ops = _ops
_tensor_operators.bind_operators(_ops)
