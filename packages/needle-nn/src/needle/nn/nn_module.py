"""``Parameter`` and ``Module``: the tree of modules, its parameters, buffers and state dict.

A module's parameters are the ``Parameter`` objects found in its attributes (directly, inside
lists, tuples and dicts, or inside sub-modules), in attribute order. Buffers are plain
tensors registered with ``register_buffer`` (BatchNorm's running statistics): they are saved
in the state dict but are not parameters, so optimisers never touch them.
"""
from collections import OrderedDict

import numpy as np

from needle._dtypes import FLOATS as _FLOATS
from needle.autograd import Tensor, _device_or_dtype
from needle.backend_ndarray.ndarray import NDArray


class Parameter(Tensor):
    """A Tensor that a Module treats as a trainable parameter.

    ``Parameter(array, device=None, dtype=None, requires_grad=True)`` takes Tensor's arguments.
    Without ``dtype``, a Tensor or NDArray keeps its dtype and anything else becomes float32.
    """

    def __init__(self, array, *, device=None, dtype=None, requires_grad=True, **kwargs):
        if dtype is None and not isinstance(array, (Tensor, NDArray)):
            dtype = "float32"
        super().__init__(array, device=device, dtype=dtype, requires_grad=requires_grad, **kwargs)
        self.grad = None  # readable before the first backward


class StateDictError(ValueError):
    """``load_state_dict`` found names or arrays that do not match the module.

    ``missing``, ``unexpected`` and ``mismatched`` list the names involved; the message lists
    every problem, not just the first.
    """

    def __init__(self, missing, unexpected, mismatched):
        self.missing, self.unexpected = list(missing), list(unexpected)
        self.mismatched = [name for name, _ in mismatched]
        lines = [f"missing from the state dict: {name!r}" for name in self.missing]
        lines += [f"unexpected in the state dict: {name!r}" for name in self.unexpected]
        lines += [f"{name!r}: {why}" for name, why in mismatched]
        super().__init__(f"load_state_dict: {len(lines)} problem(s):\n  " + "\n  ".join(lines))


def _walk_value(value, name, seen):
    """Yield ("param" | "module", name, obj) for everything a module attribute holds."""
    if isinstance(value, Parameter):
        yield "param", name, value
    elif isinstance(value, Module):
        if id(value) in seen:  # a module shared between two places is visited once
            return
        seen.add(id(value))
        yield "module", name, value
        yield from _walk_module(value, name + ".", seen)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _walk_value(item, f"{name}.{i}", seen)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk_value(item, f"{name}.{key}", seen)


def _walk_module(module, prefix, seen):
    buffers = module.__dict__.get("_buffer_names", ())
    for key, value in vars(module).items():
        if key in buffers:
            if isinstance(value, Tensor):
                yield "buffer", prefix + key, value
        else:
            yield from _walk_value(value, prefix + key, seen)


def _direct_modules(value, name, out):
    """Append (name, module) for the modules ``value`` holds without going into them."""
    if isinstance(value, Module):
        out.append((name, value))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _direct_modules(item, f"{name}.{i}", out)
    elif isinstance(value, dict):
        for key, item in value.items():
            _direct_modules(item, f"{name}.{key}", out)
    return out


def _moved(data, device, dtype):
    """The NDArray ``data`` on ``device`` and, when it holds floats, in ``dtype`` (itself when unchanged)."""
    if dtype is not None and data.dtype in _FLOATS and data.dtype != dtype:
        data = data.astype(dtype)
    if device is not None and data.device != device:
        data = data.to(device)
    return data


def _dtype_name(dtype):
    return np.dtype(dtype).name


class Module:
    """Base class of every layer: call it to run ``forward``.

    Subclasses call ``super().__init__()``, keep Parameters and sub-modules as attributes, and
    define ``forward``. ``training`` is True after construction; ``eval()``/``train()`` set it
    on the whole tree.
    """

    training = True  # class default, so subclasses that skip super().__init__() still work

    def __init__(self):
        self.training = True

    def __repr__(self):
        extra = self.extra_repr()
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self._named_children()]
        if not lines:
            return f"{type(self).__name__}({extra})"
        body = "\n  ".join(([extra] if extra else []) + lines)
        return f"{type(self).__name__}(\n  {body}\n)"

    def extra_repr(self):
        """The text inside this module's repr parentheses (its settings); override in subclasses."""
        return ""

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    # ---- the module tree -----------------------------------------------------------------
    def named_parameters(self):
        """``(name, Parameter)`` pairs, each parameter once (a shared one under its first name)."""
        seen_params, out = set(), []
        for kind, name, value in _walk_module(self, "", {id(self)}):
            if kind == "param" and id(value) not in seen_params:
                seen_params.add(id(value))
                out.append((name, value))
        return out

    def parameters(self):
        """The list of this module's Parameters (and its sub-modules'), each once."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self):
        """``(name, Tensor)`` pairs of the registered buffers in the tree."""
        return [(name, value) for kind, name, value in _walk_module(self, "", {id(self)}) if kind == "buffer"]

    def buffers(self):
        """The list of registered buffers in the tree (BatchNorm's ``running_mean``/``running_var``)."""
        return [value for _, value in self.named_buffers()]

    def named_modules(self):
        """``(name, Module)`` pairs of this module (named ``""``) and every sub-module below it, each
        once, in tree order (PyTorch's ``named_modules``; names as in ``named_parameters``)."""
        return [("", self)] + [(name, value) for kind, name, value in _walk_module(self, "", {id(self)})
                               if kind == "module"]

    def zero_grad(self):
        """Drop the gradient of every parameter (``.grad = None``, PyTorch's default ``set_to_none``),
        as ``Optimizer.reset_grad`` does for its parameters."""
        for p in self.parameters():
            p.grad = None

    def to(self, device=None, dtype=None):
        """Move the parameters and buffers to ``device`` and/or convert their floats to ``dtype``, in
        place, and return this module.

        Parameters stay the same objects (an optimiser holding them keeps working: create it, or
        move the module, before the first step, since its state stays where it was made). As in
        PyTorch, one positional argument may be a device or a dtype (``model.to("float64")``), and
        only float tensors change dtype (an integer buffer keeps its own).
        """
        device, dtype = _device_or_dtype("Module.to", device, dtype)
        for tensor in self._state_tensors().values():
            data = _moved(tensor.realize_cached_data(), device, dtype)
            if data is not tensor.cached_data:
                tensor.cached_data = data
            grad = getattr(tensor, "grad", None)
            if grad is not None:
                moved = _moved(grad.realize_cached_data(), device, dtype)
                if moved is not grad.cached_data:
                    tensor.grad = Tensor.make_const(moved)
        return self

    def register_buffer(self, name, tensor):
        """Set ``self.<name> = tensor`` and save it in the state dict (it is not a parameter)."""
        if not isinstance(tensor, Tensor):
            raise TypeError(f"register_buffer: {name!r} must be a Tensor, got {type(tensor).__name__}")
        self.__dict__.setdefault("_buffer_names", []).append(name)
        setattr(self, name, tensor)

    def _named_children(self):
        out, seen = [], set()
        for key, value in vars(self).items():
            for name, module in _direct_modules(value, key, []):
                if id(module) not in seen:
                    seen.add(id(module))
                    out.append((name, module))
        return out

    def children(self):
        """The direct sub-modules, in attribute order."""
        return [module for _, module in self._named_children()]

    def _children(self):
        """Every sub-module below this one (the course's helper)."""
        return [value for kind, _, value in _walk_module(self, "", {id(self)}) if kind == "module"]

    def train(self, mode=True):
        """Put this module and every sub-module in training mode (``mode=False``: eval)."""
        self.training = mode
        for module in self._children():
            module.training = mode
        return self

    def eval(self):
        """Put this module and every sub-module in evaluation mode."""
        return self.train(False)

    # ---- state dict --------------------------------------------------------------------
    def _state_tensors(self):
        # Tree order (a module's parameters, then its buffers, then the next module), each once.
        out, seen = OrderedDict(), set()
        for kind, name, value in _walk_module(self, "", {id(self)}):
            if kind != "module" and id(value) not in seen:
                seen.add(id(value))
                out[name] = value
        return out

    def state_dict(self):
        """An ordered mapping of name -> numpy copy of every parameter and buffer."""
        return OrderedDict((name, t.numpy()) for name, t in self._state_tensors().items())

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (numpy arrays, Tensors or NDArrays) into the parameters and buffers.

        Names, shapes and dtypes must match; every problem is collected and raised together
        as a :class:`StateDictError`. With ``strict=False`` missing and unexpected names are
        allowed (and ignored); shape and dtype mismatches are still errors. Parameters keep
        their identity (an optimiser holding them keeps working).
        """
        own = self._state_tensors()
        missing = [name for name in own if name not in state_dict]
        unexpected = [name for name in state_dict if name not in own]
        mismatched, arrays = [], {}
        for name, tensor in own.items():
            if name not in state_dict:
                continue
            array = np.asarray(state_dict[name])
            got_shape, got_dtype = tuple(array.shape), _dtype_name(array.dtype)
            if got_shape != tuple(tensor.shape):
                mismatched.append((name, f"shape {got_shape} in the state dict, {tuple(tensor.shape)} in the module"))
            elif got_dtype != tensor.dtype:
                mismatched.append((name, f"dtype {got_dtype} in the state dict, {tensor.dtype} in the module"))
            else:
                arrays[name] = array
        if mismatched or (strict and (missing or unexpected)):
            raise StateDictError(missing if strict else [], unexpected if strict else [], mismatched)
        for name, array in arrays.items():
            tensor = own[name]
            # Swap the storage in place: the Parameter object (held by optimisers) stays the same.
            tensor.cached_data = NDArray(array, device=tensor.device, dtype=tensor.dtype)
