"""Devices: a name plus a lazily loaded backend (``device.backend``).

A device whose backend is missing or cannot run still exists: ``enabled()`` is False,
``disabled_reason`` says why, and touching a kernel raises :class:`DeviceUnavailableError`.

This module imports nothing from needle. What a device needs from the layers above is given
to it: the registry and the pickle restorer by :mod:`needle.backends`, which builds devices,
and the array module for the factories by :mod:`needle.backend_ndarray` (see
:func:`use_array_module`).
"""
import numpy as np


class DeviceUnavailableError(RuntimeError):
    """A device was used whose backend is not installed or cannot run here."""


# Attributes every module has; forwarding them would make a device look like its module.
_MODULE_DUNDERS = frozenset({
    "__name__", "__qualname__", "__file__", "__path__", "__spec__", "__loader__", "__package__",
    "__builtins__", "__cached__", "__all__", "__dict__", "__doc__", "__annotations__", "__wrapped__",
})


# The device's own attributes: never forwarded (one missing before __init__ ends must not recurse).
_OWN = frozenset({"_backend", "_kernels", "_registry", "_restore", "_dtypes", "_protocol", "_fused_dtypes",
                  "_in_place_updates",
                  "name", "backend_name", "index", "backend", "mod"})
_RAISE = object()  # kernel()'s "no default given"


class BackendDevice:
    """A device backed by one backend of the registry.

    ``device.backend`` is the backend (the protocol module); :meth:`kernel` is the one place where
    core looks a kernel up. Attributes the device lacks are read from its backend, so the course's
    raw kernels stay reachable (``nd.cpu().matmul_tiled``, ``nd.cpu().__tile_size__``). Devices
    compare equal by name and index, print as ``cpu()`` / ``cuda(1)`` / ``cpu_numpy()``, and pickle
    by name.

    ``registry`` gives the backend module (``registry.load(backend_name, index)``);
    ``restore(backend_name, index)`` is the module-level function that unpickling calls to
    find the same device in the receiving process.
    """

    def __init__(self, name, backend_name, registry, index=0, restore=None):
        self.name = name
        self.backend_name = backend_name
        self.index = index
        self._registry = registry
        self._restore = restore
        self._backend = None
        self._kernels = {}  # name -> the backend's kernel, or None where it has none

    # ---- identity ---------------------------------------------------------------------
    def __repr__(self):
        return f"{self.name}({self.index})" if self.index else f"{self.name}()"

    def __eq__(self, other):
        if other is self:  # the common case: devices are cached, so one device is one object
            return True
        return isinstance(other, BackendDevice) and (self.name, self.index) == (other.name, other.index)

    def __hash__(self):
        return hash((self.name, self.index))

    def __reduce__(self):
        # A device holds the registry and a module; rebuild it from its name in the receiving process.
        if self._restore is None:
            raise TypeError(f"device {self!r} was built without a restore function, so it cannot be pickled")
        return self._restore, (self.backend_name, self.index)

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    # ---- backend ----------------------------------------------------------------------
    @property
    def backend(self):
        """The backend (its protocol module); raises DeviceUnavailableError (with the reason) when it cannot be used."""
        backend = self._backend
        return backend if backend is not None else self._load()

    mod = backend  # its older name, kept for code written against it

    def _load(self):
        """Load the backend and read the facts every array asks for (dtypes, protocol, fused dtypes)."""
        backend, reason = self._registry.load(self.backend_name, self.index)
        if backend is None:
            raise DeviceUnavailableError(f"device {self!r} is not available: {reason}")
        self._protocol = getattr(backend, "PROTOCOL_VERSION", 1)
        dtypes = tuple(getattr(backend, "DTYPES", ("float32",)))
        if self._protocol < 2:  # protocol 1 is float-only, whatever it lists
            dtypes = tuple(d for d in dtypes if d in ("float32", "float64"))
        self._dtypes = dtypes
        self.__dict__.setdefault("_fused_dtypes", tuple(getattr(backend, "FUSED_DTYPES", ("float32",))))
        self.__dict__.setdefault("_in_place_updates", frozenset(getattr(backend, "IN_PLACE_UPDATES", ())))
        self._backend = backend
        return backend

    def kernel(self, name, default=_RAISE):
        """The backend's kernel ``name``: the one place where core looks kernels up.

        Without it, ``default`` when given (``None`` for an optional kernel), else AttributeError
        naming the device. A :class:`~needle.backend_ndarray.contract.Backend` stub that a backend
        leaves in place counts as absent.
        """
        try:
            found = self._kernels[name]
        except KeyError:
            found = getattr(self.backend, name, None)
            if getattr(found, "__is_contract_stub__", False):
                found = None
            self._kernels[name] = found
        if found is None:
            if default is _RAISE:
                raise AttributeError(f"device {self!r} (backend {self.backend_name!r}) has no kernel {name!r}")
            return default
        return found

    def optional(self, name):
        """The backend's optional kernel ``name``, or None when it does not provide it."""
        return self.kernel(name, None)

    def fused(self, name, dtype):
        """The backend's fused kernel ``name`` when it runs on ``dtype`` (its ``FUSED_DTYPES``,
        float32 by default), else None (the caller composes the op)."""
        if self._backend is None:
            self._load()
        if dtype not in self._fused_dtypes:
            return None
        found = self._kernels.get(name, _RAISE)  # looked up before (None: the backend has none)
        return self.kernel(name, None) if found is _RAISE else found

    def in_place_update(self, name):
        """True when the backend lists the optimiser step ``name`` in ``IN_PLACE_UPDATES``: its ``out``
        may then be its ``param`` buffer (contract.PARAM_IN_PLACE); else ``out`` must be a buffer of its own."""
        if self._backend is None:
            self._load()
        return name in self._in_place_updates

    def _use_module(self, module):
        """Route this device's kernel lookups to ``module`` from now on (needle.jit's recorder puts
        a wrapper of the backend here while it records, then the backend back) and forget the
        kernels looked up so far."""
        self._backend = module
        self._kernels = {}

    def enabled(self):
        """True when this device's backend is installed and can run here.

        When it is False, :attr:`disabled_reason` says why and what to install, and using the
        device raises :class:`DeviceUnavailableError` with that reason. ``python -m needle``
        lists every backend with its reason.
        """
        return self.disabled_reason is None

    @property
    def disabled_reason(self):
        """None when enabled, else a sentence saying why the device cannot be used."""
        if self._backend is not None:
            return None
        return self._registry.load(self.backend_name, self.index)[1]

    @property
    def dtypes(self):
        """The dtype names this device's backend supports."""
        if self._backend is None:
            self._load()
        return self._dtypes

    @property
    def protocol(self):
        """The backend protocol version the backend implements (1: floats only, 2: every dtype)."""
        if self._backend is None:
            self._load()
        return self._protocol

    def check_dtype(self, dtype):
        """Raise TypeError when this device's backend does not support ``dtype``."""
        if dtype not in self.dtypes:
            why = (" (it implements backend protocol 1, which is float-only; integer and bool arrays need a "
                   "backend of protocol 2)" if self.protocol < 2 else "")
            raise TypeError(f"backend {self.backend_name!r} (device {self!r}) does not support dtype "
                            f"{dtype!r}; it supports {', '.join(self.dtypes)}{why}")

    # ---- memory statistics (the backend's optional protocol.MEMORY_KERNELS) ---------------
    def memory_stats(self):
        """The backend's memory statistics as a dict (``allocated_bytes``, ``peak_allocated_bytes``,
        and ``reserved_bytes`` where a caching allocator holds free blocks)."""
        stats = self.optional("memory_stats")
        if stats is None:
            raise NotImplementedError(
                f"device {self!r}: backend {self.backend_name!r} does not track memory (it has no memory_stats(), "
                f"an optional kernel of needle.backend_ndarray.protocol.MEMORY_KERNELS)")
        return dict(stats())

    def memory_allocated(self):
        """Bytes of this device's live tensor buffers (free blocks a caching allocator keeps are not counted)."""
        return int(self.memory_stats()["allocated_bytes"])

    def max_memory_allocated(self):
        """The most bytes of tensor buffers alive at once since the backend loaded or the last
        :meth:`reset_peak_memory_stats`."""
        return int(self.memory_stats()["peak_allocated_bytes"])

    def reset_peak_memory_stats(self):
        """Start measuring the peak again from the bytes allocated now."""
        self.memory_stats()  # the same clear error where the backend tracks nothing
        reset = self.optional("reset_peak_memory_stats")
        if reset is None:
            raise NotImplementedError(f"device {self!r}: backend {self.backend_name!r} has memory_stats() but no "
                                      f"reset_peak_memory_stats() (see protocol.MEMORY_KERNELS)")
        reset()

    def empty_cache(self):
        """Give the free blocks the backend's caching allocator holds back to the system (live
        tensors are untouched); a no-op where the backend keeps no cache."""
        release = self.optional("empty_cache")
        if release is not None:
            release()

    def __getattr__(self, name):
        # Only called for attributes the device lacks: the course's spelling of raw kernels and
        # backend constants (nd.cpu().matmul_tiled, nd.cpu().__tile_size__) reads them from the backend.
        if name.startswith("_") and (name in _MODULE_DUNDERS or name in _OWN or not self.enabled()):
            # Private names are probed by copy, pickle, IPython, numpy...: AttributeError, never the
            # module's own identity, and never DeviceUnavailableError.
            raise AttributeError(f"{type(self).__name__} {self!r} has no attribute {name!r}")
        if name in _OWN:
            raise AttributeError(name)
        try:
            return getattr(self.backend, name)
        except AttributeError:
            raise AttributeError(f"device {self!r} (backend {self.backend_name!r}) has no attribute {name!r}") from None

    # ---- factories (random draws come from numpy's global generator, on the host) ------
    def _from_numpy(self, array, dtype):
        return _arrays.NDArray(array, device=self, dtype=dtype)

    def rand(self, *shape, dtype="float32"):
        """Uniform [0, 1) samples of ``shape``."""
        return self._from_numpy(np.random.rand(*shape), dtype)

    def randn(self, *shape, dtype="float32"):
        """Standard normal samples of ``shape``."""
        return self._from_numpy(np.random.randn(*shape), dtype)

    def one_hot(self, n, i, dtype="float32"):
        """Rows of the n x n identity picked by the integer labels ``i`` (any integer dtype, or
        floats holding integers).

        Labels already on this device (a Tensor or NDArray) are compared with the row
        ``0..n-1`` there, with no host round trip (the labels of a training step usually are);
        anything else is checked and built on the host.
        """
        data = i.realize_cached_data() if hasattr(i, "realize_cached_data") else i
        if getattr(data, "_device", None) is self and 0 < n <= 1 << 24:
            hot = self._one_hot_here(n, data, dtype)
            if hot is not None:
                return hot
        labels = class_indices(n, i.numpy() if hasattr(i, "numpy") else i, "one_hot")
        return self._from_numpy(_identity_rows(n).take(labels, axis=0) if n <= _EYE_MAX else _scatter_ones(n, labels),
                                dtype)

    def _one_hot_here(self, n, labels, dtype):
        """``labels == [0, 1, ..., n-1]`` on this device as ``dtype``, or None when a label is not a
        class index.

        Each row has at most one match; all rows have one exactly when the total is the label
        count (one scalar read back). None sends the caller to the host path for its message.
        Integer labels are compared as int64 and float labels in their own dtype (floats hold
        class indices exactly up to 2**24).
        """
        if labels._dtype not in ("float32", "float64"):
            if self.protocol < 2 or labels._dtype == "bool":
                return None
            if labels._dtype != "int64":
                labels = labels.astype("int64")
        shape = labels._shape + (n,)
        classes = self._class_row(n, labels._dtype)
        hot = labels.reshape(labels._shape + (1,)).broadcast_to(shape) == classes.broadcast_to(shape)
        from ._jit._record import validation_read  # needle.jit lets this check read while it records
        with validation_read():
            if labels.size and float(hot.sum().numpy()) != labels.size:
                return None
        return hot if hot._dtype == dtype else hot.astype(dtype)

    def _class_row(self, n, dtype):
        """The cached row ``[0, 1, ..., n-1]`` of ``dtype`` on this device."""
        rows = self.__dict__.setdefault("_class_rows", {})
        row = rows.get((n, dtype))
        if row is None:
            if len(rows) > 16:
                rows.clear()
            row = rows[(n, dtype)] = self._from_numpy(np.arange(n, dtype=np.float64), dtype)
        return row

    def empty(self, shape, dtype="float32"):
        """An uninitialised array of ``shape``."""
        return _arrays.empty(shape, dtype=dtype, device=self)

    def full(self, shape, fill_value, dtype="float32"):
        """An array of ``shape`` filled with ``fill_value``."""
        return _arrays.full(shape, fill_value, dtype=dtype, device=self)


_arrays = None  # the array module (needle.backend_ndarray.ndarray); see use_array_module


def use_array_module(module):
    """Make the devices' factories (``empty``, ``full``, ``rand``, ...) build arrays with ``module``'s
    ``NDArray``, ``empty`` and ``full``. needle.backend_ndarray calls it once, on import: it sits above
    this module (arrays hold devices), so this module cannot import it."""
    global _arrays
    _arrays = module


def class_indices(n, labels, who):
    """``labels`` (an array or list of ints, or floats holding ints) as an intp array, checked to be
    class indices in [0, n); ``who`` starts the error message."""
    given = np.asarray(labels)
    # Few numpy calls: this runs once per training step, where each small call costs microseconds.
    if given.size:
        lo, hi = given.min(), given.max()
        if lo != lo or hi != hi:  # nan
            raise ValueError(f"{who}: labels must hold integers, got nan")
        if not (lo >= 0 and hi < n):
            raise ValueError(f"{who}: labels must be in [0, {n}), got values in [{lo}, {hi}]")
    indices = given.astype(np.intp)  # safe now: finite and in range
    if given.dtype.kind not in "iub" and (indices != given).any():
        raise ValueError(f"{who}: labels must hold integers")
    return indices


_EYE_MAX = 512  # a cached float32 identity up to 1 MiB; larger n scatters ones into zeros instead
_EYES = {}


def _identity_rows(n):
    """The n x n float32 identity, cached (read-only): one_hot rows are ``take``n from it."""
    eye = _EYES.get(n)
    if eye is None:
        eye = _EYES[n] = np.eye(n, dtype=np.float32)  # 0 and 1 are exact in any float dtype
        eye.flags.writeable = False
    return eye


def _scatter_ones(n, labels):
    """One-hot rows for a large ``n`` (a language model's vocabulary) without an n x n matrix."""
    out = np.zeros((labels.size, n), dtype=np.float32)
    out[np.arange(labels.size), labels.reshape(-1)] = 1.0
    return out.reshape(labels.shape + (n,))

