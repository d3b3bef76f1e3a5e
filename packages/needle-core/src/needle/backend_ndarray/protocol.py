"""The backend protocol: version numbers, dtype names and the kernel-name tuples.

The contract itself is code: :class:`needle.backend_ndarray.contract.Backend`, whose stub methods
are the specification (one docstring per kernel), and :data:`~needle.backend_ndarray.contract.KERNELS`,
the one table (name, signature, required/optional/fused, dtypes, aliasing rule, protocol version) that
every tuple below is derived from. The ``#:`` comment block after ``PROTOCOL_VERSION`` holds the rules
that span kernels (dtypes, scalars, aliasing, integer indexing).

A backend is an object (usually a module) with those names. Every kernel works on flat, one-dtype
device buffers created by ``Array(size, dtype)``; all view logic (shape, strides, offset,
broadcasting) lives in :mod:`needle.backend_ndarray.ndarray`, so a backend never sees anything but
flat buffers plus a (shape, strides, offset) triple.
"""
from .contract import names, provides

PROTOCOL_VERSION = 2

#: The protocol versions this needle-core can drive. A protocol-1 backend (float-only) keeps
#: serving its float dtypes; asking it for an integer or bool dtype is a clear TypeError.
SUPPORTED_PROTOCOLS = (1, 2)

#: Kernels every backend provides (protocol 1's list; protocol 2 adds :data:`REQUIRED_KERNELS_V2`).
REQUIRED_KERNELS = names("required", since=1)

#: Every dtype name needle knows, in promotion-table order.
ALL_DTYPES = ("bool", "uint8", "int32", "int64", "float32", "float64")
FLOAT_DTYPES = ("float32", "float64")
INTEGER_DTYPES = ("uint8", "int32", "int64")

#: Protocol 2, what changes (read with the protocol-1 list above, which stays):
#:
#: - ``DTYPES`` may hold any of :data:`ALL_DTYPES`; ``Array(size, dtype)`` makes a buffer of each.
#:   A protocol-2 ``DTYPES`` holds ``"bool"`` and ``"int64"`` besides ``"float32"``: comparisons write
#:   bool buffers and ``reduce_argmax``/``argmin`` int64 ones (the conformance suite checks it).
#:   ``to_numpy`` returns an array of the buffer's dtype (``bool`` buffers: numpy ``bool``);
#:   ``from_numpy`` receives an array already of ``out``'s dtype. Scalars (``val`` of ``scalar_*``,
#:   ``fill``, ``scalar_setitem``) arrive as a Python ``int`` for integer and bool buffers and a
#:   Python ``float`` for float buffers, already in range of the dtype (core checks); a kernel uses
#:   ``val`` as a value of the buffer's dtype (a float32 kernel compares with float32(val)).
#: - Kernels that run on EVERY declared dtype: ``Array, from_numpy, to_numpy, fill, compact,
#:   ewise_setitem, scalar_setitem, cast, where``, the comparisons, ``ewise_/scalar_maximum`` and
#:   ``ewise_/scalar_minimum``, ``reduce_max``, ``reduce_min``, ``reduce_argmax``, ``reduce_argmin``,
#:   and the optional ``gather_rows``.
#:   On every declared dtype but ``bool`` (core maps bool arithmetic to the logical kernels):
#:   ``ewise_add, ewise_mul, scalar_add, scalar_mul, matmul, reduce_sum`` and the optional
#:   ``ewise_sub, scalar_rsub, ewise_neg, ewise_abs, matmul_batched, scatter_add_rows``. Integer arithmetic wraps
#:   modulo 2**bits (no trap, no undefined behaviour: C/C++ backends compute signed sums and
#:   products in unsigned arithmetic). On the float dtypes only: ``ewise_div, scalar_div,
#:   scalar_rdiv, scalar_power, ewise_power, ewise_log, ewise_exp, ewise_tanh, ewise_sqrt,
#:   ewise_sigmoid, ewise_relu`` (core turns integer true division into float32 first, as
#:   PyTorch does). On the integer dtypes and bool only: ``ewise_and, ewise_or, ewise_xor``
#:   (``a, b, out``) and ``ewise_not`` (``a, out``): bitwise on integers, logical on bool.
#: - Comparisons ``ewise_eq, ewise_ge`` (``a, b, out``) and ``scalar_eq, scalar_ge`` (``a, val,
#:   out``) write a ``bool`` buffer ``out`` (protocol 1 wrote 1.0/0.0 in the input's dtype), with
#:   IEEE rules: any comparison with NaN is False. Optional: ``ewise_ne, ewise_lt, ewise_le,
#:   ewise_gt`` and ``scalar_ne, scalar_lt, scalar_le, scalar_gt`` (``a < val`` etc.; ``ne`` is
#:   True for NaN); without them core composes them from eq, ge, and, not.
#: - ``ewise_minimum(a, b, out)``, ``scalar_minimum(a, val, out)``: like the maximum kernels.
#:   Both propagate NaN, as numpy's ``maximum``/``minimum`` do.
#: - ``cast(a, out)``: ``out[i] = a[i]`` converted to ``out``'s dtype (``a`` and ``out`` of any two
#:   declared dtypes, same size). Float to integer truncates toward zero; NaN, inf and values out
#:   of the target's range (from any source dtype: a float64 beyond float32's range, an int64
#:   beyond int32's) give an unspecified value, never a crash or undefined behaviour; to bool is
#:   ``!= 0`` (NaN is True); from bool gives 0 and 1.
#: - ``where(cond, a, b, out)``: ``out[i] = a[i] if cond[i] else b[i]``; ``cond`` a bool buffer,
#:   ``a``, ``b`` and ``out`` of one dtype, all compact of one size.
#: - ``reduce_min(a, out, reduce_size)``: as ``reduce_max``. ``reduce_argmax(a, out, reduce_size)``
#:   and ``reduce_argmin``: ``out`` an int64 buffer; for each contiguous group of ``reduce_size``
#:   (>= 1; core refuses empty reductions), the index in the group of its first maximum (minimum),
#:   a NaN counting as the extreme (the first NaN wins, as in numpy). On bool, max is any, min all.
#: - Aliasing: the output of an ELEMENTWISE kernel (``ewise_*``, ``scalar_*``, ``where``, and
#:   ``cast`` between equal dtypes) may be the same buffer as any of its inputs; such kernels must
#:   give the same result as with a distinct ``out`` (in-place ``+=`` and the optimisers rely on
#:   it; ``ewise_div`` written as ``out = 1 / b; out *= a`` is wrong when ``out is a``). The
#:   outputs of ``compact``, ``matmul*``, ``reduce_*``, ``gather_rows`` and the fused kernels are
#:   never an input buffer, except the optimiser steps' ``out``, which may be ``param`` itself for the
#:   steps the backend lists in its optional ``IN_PLACE_UPDATES`` (contract.PARAM_IN_PLACE).
#: - Optional integer indexing: ``gather_rows(a, idx, out, rows, row_size, count)``:
#:   ``out[i*row_size:(i+1)*row_size] = a[idx[i]*row_size:(idx[i]+1)*row_size]`` for ``i <
#:   count``, ``idx`` an int64 buffer, ``a`` holding ``rows`` rows; ``scatter_add_rows(g, idx, out,
#:   rows, row_size, count)``: ``out[idx[i] row] += g[i row]`` (repeated indices accumulate; ``out``
#:   is not cleared first). Both check every index is in ``[0, rows)`` and raise IndexError naming
#:   the first bad one before touching memory. Without them core gathers and scatters on the host.
#:   ``gather_rows`` runs on every declared dtype, ``scatter_add_rows`` (it adds) on every one but
#:   bool; ``out`` of either is never ``a``/``g`` or ``idx``.
#: - The fused kernels (:data:`FUSED_KERNELS`) and ``conv2d_nhwc`` run on the dtypes listed in the
#:   backend's optional ``FUSED_DTYPES`` (default ``("float32",)``); core calls them for no other.
#:   A native backend's bindings still refuse other dtypes with TypeError (never reinterpret bytes).
#:
#: - DLPack (optional, :data:`DLPACK_KERNELS`; ``Tensor.__dlpack__`` and ``needle.from_dlpack`` need all
#:   three, and raise BufferError naming the backend without them):
#:   ``dlpack_device(a)`` -> ``(device_type, index)`` of buffer ``a`` as DLPack numbers them (1 host, 2
#:   CUDA); ``dlpack_export(a, shape, strides, offset, max_version=None[, stream=])`` -> a PyCapsule over
#:   the strided view (strides in elements, never negative: core exports a compact copy of such views),
#:   sharing ``a``'s memory, whose deleter keeps ``a`` alive until the consumer releases it: a writable
#:   ``"dltensor_versioned"`` one (DLPack 1.x) when ``max_version`` is ``(1, x)`` or later, else a
#:   ``"dltensor"`` one (core passes ``stream`` only when it is not None);
#:   ``dlpack_import(obj)`` -> ``(array, shape, strides, offset)`` from an object with ``__dlpack__``
#:   whose ``__dlpack_device__`` is this backend's: ``array`` a buffer of this backend over ``obj``'s
#:   memory that keeps the producer's tensor alive (or a compact copy where the memory cannot be
#:   adopted: read-only, misaligned), the view inside it as ``make`` checks it; a dtype the backend
#:   cannot hold is a TypeError naming it.
#:
#: A protocol-1 backend is driven exactly as before: core reads its comparisons as float masks and
#: offers it only the float dtypes of its ``DTYPES``.

#: Kernels protocol 2 adds to :data:`REQUIRED_KERNELS`.
REQUIRED_KERNELS_V2 = names("required", since=2)

#: Optional kernels protocol 2 adds (core composes them when absent).
OPTIONAL_KERNELS_V2 = names("optional", since=2)

OPTIONAL_KERNELS = names("optional", since=1)

#: Fused kernels core also looks up with ``getattr`` (training hot paths: ``matmul_bias``, the
#: LSTM cell pair, the optimiser steps, the softmax cross-entropy pair, ...), kept apart from
#: OPTIONAL_KERNELS so that a backend's "every optional kernel" surface stays as it was. They run on
#: the backend's ``FUSED_DTYPES``; each one's contract is its docstring in ``contract.Backend``, and
#: without one core composes the operation from the kernels above. Pairs (``lstm_cell_forward`` /
#: ``lstm_cell_backward``, ``softmax_xent_forward`` / ``softmax_xent_backward``, ``batchnorm_forward`` /
#: ``batchnorm_backward``) are used only together.
FUSED_KERNELS = names("fused")


#: Elementwise programs (optional; needle.jit, ``needle._jit._fuse``): the kernel ``ewise_program`` and
#: the backend's ``EWISE_PROGRAM_OPS`` table; their contract is in ``contract.Backend``. Without them
#: needle.jit replays kernel by kernel.
EWISE_PROGRAM_KERNELS = names("program") + ("EWISE_PROGRAM_OPS",)


#: Memory statistics (optional; behind ``device.memory_allocated()`` and its siblings), kept apart
#: from OPTIONAL_KERNELS like the fused kernels; their contract is in ``contract.Backend``. Without
#: ``memory_stats`` the device methods raise NotImplementedError naming the backend and this tuple.
MEMORY_KERNELS = names("memory")

#: DLPack exchange kernels (optional; see the protocol-2 notes above).
DLPACK_KERNELS = names("dlpack")


def required_kernels(version) -> tuple:
    """The kernel names a backend of protocol ``version`` must provide."""
    return REQUIRED_KERNELS + (REQUIRED_KERNELS_V2 if version >= 2 else ())


def missing_kernels(backend) -> list:
    """Names of required protocol attributes that ``backend`` lacks (for its declared version)."""
    version = getattr(backend, "PROTOCOL_VERSION", PROTOCOL_VERSION)
    version = version if isinstance(version, int) else PROTOCOL_VERSION
    return [name for name in required_kernels(version) if not provides(backend, name)]


def optional_kernels(backend) -> list:
    """Names of optional kernels that ``backend`` provides."""
    return [name for name in OPTIONAL_KERNELS + OPTIONAL_KERNELS_V2 if provides(backend, name)]
