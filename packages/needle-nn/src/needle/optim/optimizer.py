"""Optimisers. Each step works on the parameters' stored NDArrays (``cached_data``): no graph
is built, no Tensor is created, ``.grad`` is only read, and parameters stay leaves.
Optimiser state (momentum, moments) is kept as NDArrays keyed by parameter."""
import math

from needle.autograd import Tensor


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


def _grad_data(p):
    """The gradient's NDArray (read only; optimisers never write into ``.grad``)."""
    grad = p.grad.realize_cached_data()
    if grad.shape != p.shape:
        raise ValueError(f"optimizer: gradient of shape {grad.shape} for a parameter of shape {p.shape}")
    return grad


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
            if getattr(p, "grad", None) is not None:
                yield p, p.realize_cached_data(), _grad_data(p)


class SGD(Optimizer):
    """Stochastic gradient descent with the course's momentum rule.

    ``g = grad + weight_decay * w``; ``u = momentum * u + (1 - momentum) * g`` (u starts at 0);
    ``w = w - lr * u``. With ``momentum=0`` this is ``w - lr * g``.
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
            if self.weight_decay:
                g = g + w * self.weight_decay  # a new array: .grad is untouched
            if self.momentum:
                u = self.u.get(p)
                if u is None:
                    u = self.u[p] = g * (1 - self.momentum)
                else:  # u is the optimiser's own array: update it in place, no new buffer
                    u.imul(self.momentum).iadd(g * (1 - self.momentum))
                g = u
            p.cached_data = w - g * self.lr


class Adam(Optimizer):
    """Adam with bias correction; ``weight_decay`` adds ``weight_decay * w`` to the gradient.

    ``m = beta1*m + (1-beta1)*g``, ``v = beta2*v + (1-beta2)*g**2`` (both start at 0),
    ``w = w - lr * (m / (1-beta1**t)) / (sqrt(v / (1-beta2**t)) + eps)``, t counting steps.
    """

    def __init__(self, params, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
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

    def _decay(self, w, g):
        return (w * self.weight_decay).iadd(g) if self.weight_decay else g  # one new array, not two

    def step(self):
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        correct1, correct2 = 1 - b1 ** self.t, 1 - b2 ** self.t
        for p, w, g in self._with_grads():
            g = self._decay(w, g)
            m, v = self.m.get(p), self.v.get(p)
            if m is None:
                self.m[p] = m = g * (1 - b1)
                self.v[p] = v = (g * g).imul(1 - b2)
            else:
                # The moments are the optimiser's own arrays: update them in place (fewer buffers).
                m.imul(b1).iadd(g * (1 - b1))
                v.imul(b2).iadd((g * g).imul(1 - b2))
            w = self._before_update(w)
            # lr * (m / c1) / (sqrt(v / c2) + eps) with the corrections folded into two scalars,
            # (lr * sqrt(c2) / c1) * m / (sqrt(v) + eps * sqrt(c2)): one pass less over v.
            root2 = math.sqrt(correct2)
            denom = v.sqrt().iadd(self.eps * root2)
            # A new weight array (not in place): a tensor detached from the parameter keeps its values.
            p.cached_data = w - (m * (self.lr * root2 / correct1)).idiv(denom)

    def _before_update(self, w):
        return w


class AdamW(Adam):
    """Adam with decoupled weight decay: ``w = w * (1 - lr * weight_decay)`` before the Adam
    update, and the gradient is used as it is (PyTorch's defaults: lr=1e-3, weight_decay=1e-2)."""

    def __init__(self, params, lr=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)

    def _decay(self, w, g):
        return g

    def _before_update(self, w):
        return w * (1 - self.lr * self.weight_decay) if self.weight_decay else w


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
            p.cached_data = w - update * self.lr
