"""Optimisers. Each step works on the parameters' stored NDArrays (``cached_data``): no graph
is built, no Tensor is created, ``.grad`` is only read, and parameters stay leaves.
Optimiser state (momentum, moments) is kept as NDArrays keyed by parameter.

Where a parameter's backend has the fused update kernel (``adam_step``, ``sgd_step``,
``rmsprop_step``: see ``needle.backend_ndarray.protocol.FUSED_KERNELS``), one kernel call per
parameter does the whole update; otherwise it is composed from elementwise NDArray operations.
Both update the parameters in place: a parameter keeps its buffer across steps (as in PyTorch, a
tensor detached from it sees the new values), so that ``needle.jit`` can capture a training step.
Scalars that change between steps (``lr``, Adam's bias corrections) go through
``needle._jit.scalar`` and the step count through ``needle._jit.host_step``: a replayed step
reads them again."""
import math

from needle._jit import host_step, scalar
from needle.autograd import Tensor
from needle.backend_ndarray.ndarray import NDArray


def _param_list(params):
    params = list(params)
    if not params:
        raise ValueError("optimizer got an empty parameter list (a generator passed twice?)")
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"optimizer: parameter {i} is a {type(p).__name__}, not a Tensor")
    return params


def _check_nonneg(name, value):
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def _grad_data(grad, w):
    """The gradient's NDArray (of the Tensor ``grad``) in the dtype of ``w``, the parameter's data (read
    only; optimisers never write into ``.grad``). The NDArrays' fields are read directly: this runs per
    parameter per step."""
    grad = grad.realize_cached_data()
    if grad._shape != w._shape:
        raise ValueError(f"optimizer: gradient of shape {grad._shape} for a parameter of shape {w._shape}")
    if grad._dtype != w._dtype:  # a parameter keeps its dtype: a float64 gradient must not promote it
        grad = grad.astype(w._dtype)
    return grad


def _fused_kernel(name, w, g, states):
    """The backend's fused update kernel ``name`` for weights ``w``, gradient ``g`` and the
    optimiser's existing state arrays, or None when the backend lacks it or an operand is of
    another device or dtype (the composed update then runs, with its own checks and errors)."""
    device, dtype = w._device, w._dtype  # NDArrays' own fields: read per parameter per step
    kernel = device.fused(name, dtype)
    if kernel is None:
        return None
    for a in (g, *states):
        if a is not None and (a._device is not device and a._device != device or a._dtype != dtype):
            return None
    return kernel


def _state(store, p, w):
    """The state array of ``p`` in ``store``, created as zeros like ``w`` on first use (a zero
    state makes the kernel's first update equal the composed code's first-step formula)."""
    a = store.get(p)
    if a is None:
        a = store[p] = w.device.full(w.shape, 0.0, dtype=w.dtype)
    return a


def _out(name, p, w, g):
    """Where the fused kernel ``name`` writes the updated weights: ``w`` itself when it is the
    parameter's compact data, its own buffer, and the backend lists ``name`` in ``IN_PLACE_UPDATES``
    (no new buffer, no copy), else a new compact array that :func:`_store` then stores."""
    if (w is p.cached_data and w.is_compact() and g._handle is not w._handle
            and w.device.in_place_update(name)):
        return w
    return NDArray.make(w.shape, device=w.device, dtype=w.dtype)


def _store(p, w, new):
    """Make ``new`` (the updated weights) the parameter's values, in its own buffer when ``w`` (its
    data) is compact: the parameter keeps its buffer across steps."""
    if new is w:  # the kernel wrote into the parameter's buffer
        return
    if w is p.cached_data and w.is_compact():
        w.device.compact(new._handle, w._handle, w.shape, w.strides, 0)
    else:  # a strided parameter (rare): it gets a new array
        p.cached_data = new


def _subtract_into(p, w, update):
    """``w - update`` stored as the parameter's values (in place when ``w`` is its compact data)."""
    if w is p.cached_data and w.is_compact():
        w.isub(update)
    else:
        p.cached_data = w - update


class Optimizer:
    """Base class: holds ``params``; subclasses define ``step()``."""

    def __init__(self, params):
        self.params = _param_list(params)

    def step(self):
        """Update every parameter that has a gradient."""
        raise NotImplementedError()

    def reset_grad(self):
        """Drop every parameter's gradient (and the graph a gradient may keep alive)."""
        for p in self.params:
            p.grad = None

    def zero_grad(self):
        """PyTorch's name for :meth:`reset_grad`."""
        self.reset_grad()

    def _with_grads(self):
        """(param, weight NDArray, gradient NDArray) for the parameters that have a gradient."""
        for p in self.params:
            grad = getattr(p, "grad", None)
            if grad is not None:
                w = p.realize_cached_data()
                yield p, w, _grad_data(grad, w)


class SGD(Optimizer):
    """Stochastic gradient descent with the course's momentum rule.

    ``g = grad + weight_decay * w``; ``u = momentum * u + (1 - momentum) * g`` (u starts at 0);
    ``w = w - lr * u``. With ``momentum=0`` this is ``w - lr * g``.

    >>> import needle as ndl
    >>> import needle.nn as nn
    >>> import needle.optim as optim
    >>> w = nn.Parameter(ndl.Tensor([1.0, -2.0]))
    >>> opt = optim.SGD([w], lr=0.1)
    >>> (w * w).sum().backward()      # gradient 2 * w
    >>> opt.step()
    >>> w.numpy().tolist()            # w - 0.1 * 2 * w
    [0.8, -1.6]
    """

    def __init__(self, params, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(params)
        _check_nonneg("SGD lr", lr)
        _check_nonneg("SGD weight_decay", weight_decay)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD momentum must be in [0, 1), got {momentum}")
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.u = {}

    def step(self):
        for p, w, g in self._with_grads():
            kernel = _fused_kernel("sgd_step", w, g, (self.u.get(p),))
            if kernel is not None:
                w, g = w.compact(), g.compact()
                u = _state(self.u, p, w)._handle if self.momentum else None
                out = _out("sgd_step", p, w, g)
                kernel(w._handle, g._handle, u, out._handle, scalar(self._lr), self.momentum, self.weight_decay)
                _store(p, w, out)
                continue
            if self.weight_decay:
                g = g + w * self.weight_decay  # a new array: .grad is untouched
            if self.momentum:
                u = self.u.get(p)
                if u is None:
                    u = self.u[p] = g * (1 - self.momentum)
                else:  # u is the optimiser's own array: update it in place, no new buffer
                    u.imul(self.momentum).iadd(g * (1 - self.momentum))
                g = u
            _subtract_into(p, w, g * scalar(self._lr))

    def _lr(self):
        return self.lr


class _DefaultBeta(float):
    """A default ``beta1``/``beta2``: reads as its value (``beta1=0.9`` in the signature), but is
    told apart from the same value passed explicitly, so that ``beta1=`` with ``betas=`` is an error."""

    def __repr__(self):
        return float.__repr__(self)


_BETA1, _BETA2 = _DefaultBeta(0.9), _DefaultBeta(0.999)


def _betas(who, beta1, beta2, betas):
    """``(beta1, beta2)`` from the course's ``beta1``/``beta2`` or PyTorch's ``betas=(b1, b2)``."""
    if betas is None:
        return float(beta1), float(beta2)
    given = [name for name, value, default in (("beta1", beta1, _BETA1), ("beta2", beta2, _BETA2))
             if value is not default]
    if given:
        raise TypeError(f"{who}: got both betas= and {' and '.join(n + '=' for n in given)}, which name the same "
                        f"arguments; give betas=(b1, b2) or beta1=/beta2=")
    try:
        beta1, beta2 = betas
    except (TypeError, ValueError):
        raise TypeError(f"{who}: betas must be a pair (beta1, beta2), got {betas!r}") from None
    return float(beta1), float(beta2)


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` adds ``weight_decay * w`` to the gradient.

    ``m = beta1*m + (1-beta1)*g``, ``v = beta2*v + (1-beta2)*g**2`` (both start at 0),
    ``w = w - lr * (m / (1-beta1**t)) / (sqrt(v / (1-beta2**t)) + eps)``, t counting steps.
    PyTorch's ``betas=(beta1, beta2)`` works too (giving it with ``beta1``/``beta2`` is a TypeError).
    Note the course's default ``lr=0.01`` (PyTorch's is 1e-3).
    """

    def __init__(self, params, lr=0.01, beta1=_BETA1, beta2=_BETA2, eps=1e-8, weight_decay=0.0, *, betas=None):
        beta1, beta2 = _betas(type(self).__name__, beta1, beta2, betas)
        super().__init__(params)
        _check_nonneg("Adam lr", lr)
        _check_nonneg("Adam weight_decay", weight_decay)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Adam {name} must be in [0, 1), got {beta}")
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.weight_decay = weight_decay
        self.t = 0
        self.m, self.v = {}, {}

    #: AdamW: weight decay scales the weights instead of being added to the gradient.
    _decoupled = False

    def _tick(self):
        self.t += 1

    def _lr(self):
        return self.lr

    def _correct1(self):
        return 1 - self.beta1 ** self.t

    def _correct2(self):
        return 1 - self.beta2 ** self.t

    def _step_size(self):  # lr * sqrt(c2) / c1
        return self.lr * math.sqrt(self._correct2()) / self._correct1()

    def _eps_term(self):  # eps * sqrt(c2)
        return self.eps * math.sqrt(self._correct2())

    def _decay_factor(self):  # AdamW's 1 - lr * weight_decay
        return 1 - self.lr * self.weight_decay

    def step(self):
        host_step(self._tick)
        b1, b2 = self.beta1, self.beta2
        for p, w, g in self._with_grads():
            kernel = _fused_kernel("adam_step", w, g, (self.m.get(p), self.v.get(p)))
            if kernel is not None:
                w, g = w.compact(), g.compact()
                m, v, out = _state(self.m, p, w), _state(self.v, p, w), _out("adam_step", p, w, g)
                kernel(w._handle, g._handle, m._handle, v._handle, out._handle, scalar(self._lr), b1, b2, self.eps,
                       self.weight_decay, scalar(self._correct1), scalar(self._correct2), self._decoupled)
                _store(p, w, out)
                continue
            decay = self.weight_decay
            if decay and not self._decoupled:
                g = (w * decay).iadd(g)  # one new array, not two; .grad is untouched
            m, v = self.m.get(p), self.v.get(p)
            if m is None:
                self.m[p] = m = g * (1 - b1)
                self.v[p] = v = (g * g).imul(1 - b2)
            else:
                # The moments are the optimiser's own arrays: update them in place (fewer buffers).
                m.imul(b1).iadd(g * (1 - b1))
                v.imul(b2).iadd((g * g).imul(1 - b2))
            in_place = w is p.cached_data and w.is_compact()
            if decay and self._decoupled:
                w = w.imul(scalar(self._decay_factor)) if in_place else w * scalar(self._decay_factor)
            # lr * (m / c1) / (sqrt(v / c2) + eps) with the corrections folded into two scalars,
            # (lr * sqrt(c2) / c1) * m / (sqrt(v) + eps * sqrt(c2)): one pass less over v.
            denom = v.sqrt().iadd(scalar(self._eps_term))
            _subtract_into(p, w, (m * scalar(self._step_size)).idiv(denom))


class AdamW(Adam):
    """Adam with decoupled weight decay: ``w = w * (1 - lr * weight_decay)`` before the Adam
    update, and the gradient is used as it is (PyTorch's defaults: lr=1e-3, weight_decay=1e-2).
    ``betas=(beta1, beta2)`` works as in :class:`Adam`."""

    _decoupled = True

    def __init__(self, params, lr=0.001, beta1=_BETA1, beta2=_BETA2, eps=1e-8, weight_decay=0.01, *, betas=None):
        beta1, beta2 = _betas("AdamW", beta1, beta2, betas)
        super().__init__(params, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)


class RMSprop(Optimizer):
    """RMSprop: ``v = alpha*v + (1-alpha)*g**2`` (v starts at 0), ``w = w - lr * g / (sqrt(v) + eps)``.

    With ``momentum > 0``: ``b = momentum*b + g / (sqrt(v) + eps)``, ``w = w - lr * b``.
    ``weight_decay`` adds ``weight_decay * w`` to the gradient.
    """

    def __init__(self, params, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0):
        super().__init__(params)
        _check_nonneg("RMSprop lr", lr)
        _check_nonneg("RMSprop weight_decay", weight_decay)
        _check_nonneg("RMSprop momentum", momentum)
        if not 0.0 <= alpha < 1.0:
            raise ValueError(f"RMSprop alpha must be in [0, 1), got {alpha}")
        self.lr, self.alpha, self.eps = lr, alpha, eps
        self.weight_decay, self.momentum = weight_decay, momentum
        self.v, self.buf = {}, {}

    def step(self):
        a = self.alpha
        for p, w, g in self._with_grads():
            kernel = _fused_kernel("rmsprop_step", w, g, (self.v.get(p), self.buf.get(p)))
            if kernel is not None:
                w, g = w.compact(), g.compact()
                v, out = _state(self.v, p, w), _out("rmsprop_step", p, w, g)
                buf = _state(self.buf, p, w)._handle if self.momentum else None
                kernel(w._handle, g._handle, v._handle, buf, out._handle, scalar(self._lr), a, self.eps,
                       self.weight_decay, self.momentum)
                _store(p, w, out)
                continue
            if self.weight_decay:
                g = g + w * self.weight_decay
            v = self.v.get(p)
            if v is None:
                v = self.v[p] = (g * g).imul(1 - a)
            else:  # the optimiser's own array: in place
                v.imul(a).iadd((g * g).imul(1 - a))
            update = g / v.sqrt().iadd(self.eps)
            if self.momentum:
                buf = self.buf.get(p)
                update = update if buf is None else buf.imul(self.momentum).iadd(update)
                self.buf[p] = update
            _subtract_into(p, w, update * scalar(self._lr))

    def _lr(self):
        return self.lr
