"""The needle-cpu protocol module (see ``needle.backend_ndarray.protocol``).

Every kernel is the compiled function itself, with no Python wrapper in between: the
argument checks (sizes, offsets, strides, dtypes) live in the binding layer
(``src/bindings.cc``), where they cost nanoseconds instead of a Python frame per call.
Bad arguments raise ValueError or TypeError; none can make a kernel touch memory outside
its buffers.
"""
from . import _core

PROTOCOL_VERSION = 2  # the protocol these kernels implement (a literal, so core can refuse a mismatch)

#: dtypes this backend supports; Array(size, dtype) raises TypeError for any other.
DTYPES = ("float32", "float64", "int32", "int64", "uint8", "bool")

#: dtypes the fused kernels (protocol.FUSED_KERNELS) and conv2d_nhwc run on; their bindings refuse others.
FUSED_DTYPES = ("float32",)

#: The optimiser steps whose out may be their param buffer (contract.PARAM_IN_PLACE): optim_loops.cc
#: reads each element's weight before it writes it, and the bindings allow exactly out == param.
IN_PLACE_UPDATES = ("adam_step", "sgd_step", "rmsprop_step")

#: Tile size of the course-compatible tiled matmul (``matmul_tiled``).
__tile_size__ = _core.TILE

Array = _core.Array

from_numpy = _core.from_numpy
to_numpy = _core.to_numpy
fill = _core.fill
compact = _core.compact
ewise_setitem = _core.ewise_setitem
scalar_setitem = _core.scalar_setitem

ewise_add = _core.ewise_add
ewise_sub = _core.ewise_sub
ewise_mul = _core.ewise_mul
ewise_div = _core.ewise_div
ewise_maximum = _core.ewise_maximum
ewise_minimum = _core.ewise_minimum
ewise_power = _core.ewise_power
ewise_and = _core.ewise_and
ewise_or = _core.ewise_or
ewise_xor = _core.ewise_xor

# Comparisons write a bool buffer (protocol 2).
ewise_eq = _core.ewise_eq
ewise_ne = _core.ewise_ne
ewise_lt = _core.ewise_lt
ewise_le = _core.ewise_le
ewise_gt = _core.ewise_gt
ewise_ge = _core.ewise_ge

scalar_add = _core.scalar_add
scalar_mul = _core.scalar_mul
scalar_div = _core.scalar_div
scalar_power = _core.scalar_power
scalar_maximum = _core.scalar_maximum
scalar_minimum = _core.scalar_minimum
scalar_rsub = _core.scalar_rsub
scalar_rdiv = _core.scalar_rdiv
scalar_eq = _core.scalar_eq
scalar_ne = _core.scalar_ne
scalar_lt = _core.scalar_lt
scalar_le = _core.scalar_le
scalar_gt = _core.scalar_gt
scalar_ge = _core.scalar_ge

ewise_log = _core.ewise_log
ewise_exp = _core.ewise_exp
ewise_tanh = _core.ewise_tanh
ewise_neg = _core.ewise_neg
ewise_sqrt = _core.ewise_sqrt
ewise_sigmoid = _core.ewise_sigmoid
ewise_relu = _core.ewise_relu
ewise_abs = _core.ewise_abs
ewise_not = _core.ewise_not

cast = _core.cast
where = _core.where
gather_rows = _core.gather_rows
scatter_add_rows = _core.scatter_add_rows

matmul = _core.matmul
matmul_batched = _core.matmul_batched
matmul_tiled = _core.matmul_tiled
conv2d_nhwc = _core.conv2d_nhwc
# Its weight gradient (protocol.FUSED_KERNELS): im2col rows gathered a block at a time, never all at once.
conv2d_nhwc_grad_weight = _core.conv2d_nhwc_grad_weight
conv2d_nhwc_padded = _core.conv2d_nhwc_padded
conv2d_nhwc_grad_weight_padded = _core.conv2d_nhwc_grad_weight_padded
conv2d_nhwc_grad_input_padded = _core.conv2d_nhwc_grad_input_padded

reduce_sum = _core.reduce_sum
reduce_max = _core.reduce_max
reduce_min = _core.reduce_min
reduce_argmax = _core.reduce_argmax
reduce_argmin = _core.reduce_argmin

# Fused kernels beyond protocol.OPTIONAL_KERNELS (core may adopt them):
#   matmul_bias(a, b, bias, out, m, n, p): out = a @ b + bias (bias of length p on every row)
#   ewise_relu_backward(a, b, out): out = b where a > 0 else 0 (ReLU input a, output gradient b)
#   matmul_tn(a, b, out, m, n, p): out (m x p) = transpose(a) @ b, a (n x m) and b (n x p) compact
#   matmul_nt(a, b, out, m, n, p): out (m x p) = a @ transpose(b), a (m x n) and b (p x n) compact
matmul_bias = _core.matmul_bias
matmul_tn = _core.matmul_tn
matmul_nt = _core.matmul_nt
ewise_relu_backward = _core.ewise_relu_backward
# needle.jit: a run of the elementwise kernels named in EWISE_PROGRAM_OPS, block by block, in one call.
ewise_program = _core.ewise_program
EWISE_PROGRAM_OPS = dict(_core.EWISE_PROGRAM_OPS)
# The fused LSTM cell (protocol.FUSED_KERNELS documents the signatures): one call per step each way.
lstm_cell_forward = _core.lstm_cell_forward
lstm_cell_backward = _core.lstm_cell_backward
# Fused optimiser updates (protocol.FUSED_KERNELS): one pass per parameter, state in place, new weights to out.
adam_step = _core.adam_step
sgd_step = _core.sgd_step
rmsprop_step = _core.rmsprop_step
# Softmax cross-entropy with class labels (protocol.FUSED_KERNELS): one pass each way, no one-hot.
softmax_xent_forward = _core.softmax_xent_forward
softmax_xent_backward = _core.softmax_xent_backward
# Batch normalisation in training mode (protocol.FUSED_KERNELS): three passes forward, two backward.
batchnorm_forward = _core.batchnorm_forward
batchnorm_backward = _core.batchnorm_backward
# Binary ops on strided (broadcast) float32 views without compact copies (protocol.FUSED_KERNELS).
ewise_binary_strided = _core.ewise_binary_strided

# Memory statistics (protocol.MEMORY_KERNELS): bytes of live Array buffers counted by the allocator
# with atomics; empty_cache gives the allocator's cached large blocks back to the system.
memory_stats = _core.memory_stats
reset_peak_memory_stats = _core.reset_peak_memory_stats
empty_cache = _core.clear_buffer_cache

# DLPack (protocol.DLPACK_KERNELS): export a strided view as a capsule whose deleter keeps the buffer
# alive; import host memory by adopting it (the Array keeps the producer's tensor until it dies).
dlpack_export = _core.to_dlpack


def dlpack_device(a):
    """DLPack's (device type, index) of a buffer: (1, 0), host memory."""
    return (1, 0)


def dlpack_import(obj):
    """``(Array, shape, strides, offset)`` over the host memory of ``obj`` (a DLPack producer).

    Zero-copy unless the tensor is read-only or misaligned for its dtype; then a compact copy.
    """
    try:
        capsule = obj.__dlpack__(max_version=(1, 0))  # versioned: says when a tensor is read-only
    except TypeError:
        capsule = obj.__dlpack__()
    array, shape, strides, offset, _copied = _core.from_dlpack_capsule(capsule)
    return array, tuple(shape), tuple(strides), offset


def unavailable_reason():
    """None: the portable kernels run on any CPU this extension was built for."""
    return None


def device_count():
    """One CPU device (threads are used within it)."""
    return 1
