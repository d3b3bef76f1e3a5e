"""CUDA kernels: fused elementwise kernels and the shared-memory tiled matmul.

Kernel objects are created on first use and cached here; CuPy then compiles each one once
per dtype and device (and keeps the binary in its on-disk cache, ``~/.cupy/kernel_cache``),
so only the first call pays for NVRTC. Names carry the ``needle_`` prefix so they are easy
to spot in a profiler. The launch arithmetic is plain Python and is tested without a GPU.
"""
import numpy as np

from . import _cupy

#: Edge of the square shared-memory tiles of the tiled matmul (TILE x TILE threads a block).
TILE = 16
#: CUDA's limit on gridDim.y and gridDim.z; larger launches are split.
MAX_GRID_YZ = 65535
#: CUDA's limit on gridDim.x.
MAX_GRID_X = 2**31 - 1

#: Fused elementwise kernels: name -> (in_params, out_params, operation). Each does in one launch
#: what CuPy's ufuncs would do in several, or without the undefined behaviour of a plain C++ cast
#: or negation. Every one reads element i and then writes element i only, so ``out`` may be one of
#: the inputs (the protocol's aliasing rule).
ELEMENTWISE = {
    # 0.5 * (1 + tanh(x / 2)): finite for every finite x, unlike 1 / (1 + exp(-x)).
    "needle_ewise_sigmoid": ("T x", "T z", "z = (T)0.5 * tanh((T)0.5 * x) + (T)0.5"),
    # where(cond, a, b): cupy.where has no `out`, and two copyto calls are not alias-safe.
    "needle_where": ("bool c, T x, T y", "T z", "z = c ? x : y"),
    # |x| of a signed integer: negated through unsigned arithmetic, so |INT_MIN| wraps to INT_MIN
    # (as in numpy) instead of being the undefined behaviour of -INT_MIN.
    "needle_abs_signed": ("T x", "T z", "z = x < 0 ? (T)(0ull - (unsigned long long)x) : x"),
    # float -> integer, truncating toward zero. A C++ cast of NaN or of a value whose truncation is out
    # of range is undefined behaviour; here NaN gives 0 and such values saturate ([lo, hi] are the
    # float bounds of the values that truncate into range, worked out on the host).
    "needle_cast_float_to_int": ("X x, X lo, X hi, Y ymin, Y ymax", "Y z",
                                 "z = (x != x) ? (Y)0 : (x <= lo) ? ymin : (x >= hi) ? ymax : (Y)x"),
}

#: C type of each supported dtype, and the suffix of its tiled-matmul kernel name.
CTYPES = {"float32": ("float", "f32"), "float64": ("double", "f64")}

_TILED_SOURCE = r"""
typedef {ctype} real;
#define TILE {tile}

// C[z] = A[z] @ B[z] for row-major A (M x N), B (N x P). Each TILE x TILE block of threads
// computes one TILE x TILE block of C, walking the shared dimension one tile at a time: the
// block stages a tile of A and a tile of B in shared memory, so every global element is read
// once per block instead of once per thread. Out-of-range reads are staged as zeros.
extern "C" __global__ void {name}(const real* __restrict__ A, const real* __restrict__ B,
                                  real* __restrict__ C, long long M, long long N, long long P,
                                  long long row_block0, long long batch0) {{
    __shared__ real As[TILE][TILE];
    __shared__ real Bs[TILE][TILE];
    const long long z = (long long)blockIdx.z + batch0;
    A += z * M * N;
    B += z * N * P;
    C += z * M * P;
    const int tx = threadIdx.x, ty = threadIdx.y;
    const long long row = ((long long)blockIdx.y + row_block0) * TILE + ty;
    const long long col = (long long)blockIdx.x * TILE + tx;
    real acc = 0;
    for (long long k0 = 0; k0 < N; k0 += TILE) {{
        As[ty][tx] = (row < M && k0 + tx < N) ? A[row * N + k0 + tx] : (real)0;
        Bs[ty][tx] = (k0 + ty < N && col < P) ? B[(k0 + ty) * P + col] : (real)0;
        __syncthreads();
#pragma unroll
        for (int k = 0; k < TILE; ++k) {{
            acc += As[ty][k] * Bs[k][tx];
        }}
        __syncthreads();
    }}
    if (row < M && col < P) {{
        C[row * P + col] = acc;
    }}
}}
"""

_CACHE = {}  # kernel name -> CuPy kernel object; empty until a kernel is first used


def tiled_kernel_name(dtype):
    """Name of the tiled matmul kernel for ``dtype`` (``needle_matmul_tiled_f32``...)."""
    return f"needle_matmul_tiled_{CTYPES[dtype][1]}"


def tiled_source(dtype, tile=TILE):
    """CUDA source of the tiled matmul kernel for ``dtype``."""
    if dtype not in CTYPES:
        raise TypeError(f"tiled matmul supports dtypes {tuple(CTYPES)}, got dtype={dtype!r}")
    return _TILED_SOURCE.format(ctype=CTYPES[dtype][0], tile=int(tile), name=tiled_kernel_name(dtype))


def ceil_div(a, b):
    """Smallest integer >= a / b for non-negative ints."""
    return -(-int(a) // int(b))


def tiled_launch_plan(batch, m, p, tile=TILE, max_grid_yz=MAX_GRID_YZ):
    """Launches covering a (batch, m, p) output: a list of ``(grid, row_block0, batch0)``.

    Block (x, y, z) of launch ``(grid, r0, b0)`` computes output tile (row block ``y + r0``,
    column block ``x``) of matrix ``z + b0``. CUDA caps gridDim.y and gridDim.z at 65535, so a
    very tall matrix or a very large batch takes several launches; usually there is one.
    """
    col_blocks, row_blocks = ceil_div(p, tile), ceil_div(m, tile)
    if batch <= 0 or col_blocks == 0 or row_blocks == 0:
        return []
    if col_blocks > MAX_GRID_X:
        raise ValueError(f"tiled matmul: p={p} needs {col_blocks} column blocks, more than CUDA's {MAX_GRID_X}")
    plan = []
    for b0 in range(0, batch, max_grid_yz):
        for r0 in range(0, row_blocks, max_grid_yz):
            grid = (col_blocks, min(max_grid_yz, row_blocks - r0), min(max_grid_yz, batch - b0))
            plan.append((grid, r0, b0))
    return plan


def elementwise(name):
    """The cached ``cupy.ElementwiseKernel`` called ``name`` (one of :data:`ELEMENTWISE`)."""
    kernel = _CACHE.get(name)
    if kernel is None:
        cupy = _cupy.require()
        in_params, out_params, operation = ELEMENTWISE[name]
        kernel = _CACHE[name] = cupy.ElementwiseKernel(in_params, out_params, operation, name=name)
    return kernel


def tiled_matmul(dtype):
    """The cached ``cupy.RawKernel`` of the tiled matmul for ``dtype``."""
    name = tiled_kernel_name(dtype)
    kernel = _CACHE.get(name)
    if kernel is None:
        cupy = _cupy.require()
        kernel = _CACHE[name] = cupy.RawKernel(tiled_source(dtype), name)
    return kernel


def launch_tiled(a, b, out, batch, m, n, p):
    """Run the tiled kernel on compact cupy arrays: out[z] = a[z] @ b[z] for z < batch."""
    kernel = tiled_matmul(out.dtype.name)
    i64 = np.int64
    for grid, r0, b0 in tiled_launch_plan(batch, m, p, TILE, MAX_GRID_YZ):  # module globals read per call
        kernel(grid, (TILE, TILE, 1), (a, b, out, i64(m), i64(n), i64(p), i64(r0), i64(b0)))


def cached_kernels():
    """Names of the kernel objects created so far in this process."""
    return sorted(_CACHE)
