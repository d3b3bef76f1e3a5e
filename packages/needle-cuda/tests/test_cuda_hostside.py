"""HOST-SIDE tests of needle-cuda: they run without a GPU and never launch a CUDA kernel.

What they cover honestly without a device: packaging and the entry point, registration with
needle's registry, the disabled-device path and its messages (CuPy missing, no device), the
matmul option's dispatch, device-bound namespaces, and the pure-Python arithmetic the kernels
rely on (view bounds, tiled launch plan), checked against numpy. Where CuPy and NVRTC are
installed, every CUDA source is compiled with NVRTC (compile-only; nothing runs). Whether the
kernels compute the right numbers is tested in test_cuda_gpu.py, on a GPU only.
"""
import importlib.metadata
import itertools
import pathlib
import subprocess
import sys
import types

import needle
import needle.backends as backends
import numpy as np
import pytest
from needle.backend_ndarray import protocol
from needle_cuda import _backend, _cupy, _kernels, _views
from numpy.lib.stride_tricks import as_strided

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def fresh(monkeypatch):
    """Forget cached probes and devices before and after a test that replaces the CuPy seams."""
    def clear():
        _cupy.reset()
        _backend._bound.clear()
        backends.reset()
    clear()
    yield monkeypatch
    monkeypatch.undo()
    clear()


def _missing_cupy():
    raise ModuleNotFoundError("No module named 'cupy'", name="cupy")


def _fake_cupy(count=None, error=None, nvrtc_error=None):
    """A stand-in for the cupy module that only answers the probe's queries (no kernels)."""
    def get_device_count():
        if error is not None:
            raise error
        return count

    def nvrtc_version():
        if nvrtc_error is not None:
            raise nvrtc_error
        return (12, 9)
    cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=get_device_count),
                                 nvrtc=types.SimpleNamespace(getVersion=nvrtc_version))
    return types.SimpleNamespace(__version__="99.0.0", cuda=cuda)


def _run_python(code, env_extra=None):
    import os
    env = dict(os.environ, **(env_extra or {}))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


# ---- packaging ---------------------------------------------------------------------------------
def test_pyproject_declares_entry_point_and_cupy_extras():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    meta = tomllib.loads((PACKAGE_ROOT / "pyproject.toml").read_text())
    project = meta["project"]
    assert project["name"] == "needle-cuda"
    assert project["entry-points"]["needle.backends"] == {"cuda": "needle_cuda._plugin"}
    assert not any(dep.lower().startswith("cupy") for dep in project["dependencies"]), "CuPy must stay optional"
    extras = project["optional-dependencies"]
    assert extras["cuda12"] == ["cupy-cuda12x[ctk]>=14"] and extras["cuda13"] == ["cupy-cuda13x[ctk]>=14"]
    assert [d.split(">")[0] for d in extras["cuda12-local"]] == ["cupy-cuda12x"]
    assert [d.split(">")[0] for d in extras["cuda13-local"]] == ["cupy-cuda13x"]
    assert meta["tool"]["hatch"]["version"]["path"] == "src/needle_cuda/version.py"


def test_installed_distribution_exposes_the_entry_point():
    try:
        dist = importlib.metadata.distribution("needle-cuda")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("needle-cuda is not installed in this environment (pip install -e packages/needle-cuda)")
    import needle_cuda
    assert dist.version == needle_cuda.__version__
    eps = [ep for ep in dist.entry_points if ep.group == "needle.backends"]
    assert [(ep.name, ep.value) for ep in eps] == [("cuda", "needle_cuda._plugin")]


def test_package_imports_and_explains_when_cupy_cannot_be_imported():
    # A fresh interpreter in which `import cupy` fails, whether or not CuPy is installed here.
    out = _run_python(
        "import sys; sys.modules['cupy'] = None\n"
        "import needle_cuda, needle_cuda._backend, needle_cuda._plugin, needle_cuda._kernels\n"
        "print(needle_cuda.is_available()); print(needle_cuda.device_count()); print(needle_cuda.unavailable_reason())")
    available, count, reason = out.strip().splitlines()
    assert (available, count) == ("False", "0")
    assert reason.startswith("CuPy is not installed")
    assert "pip install needle-cuda[cuda12]" in reason and "needle-cuda[cuda13]" in reason


def test_import_and_plugin_discovery_do_not_import_cupy():
    out = _run_python(
        "import sys, needle, needle.backends as b, needle_cuda, needle_cuda._backend\n"
        "names = b.available_backends()\n"
        "print('cuda' in names, 'cupy' in sys.modules, needle_cuda._kernels.cached_kernels())")
    assert out.split() == ["True", "False", "[]"]


# ---- registration and the disabled device ---------------------------------------------------------
def test_plugin_hook_returns_the_cuda_spec():
    from needle_cuda import _plugin
    (spec,) = _plugin.needle_backends()
    assert spec.name == "cuda"
    assert spec.load() is _backend


def test_registry_finds_the_cuda_backend(fresh):
    assert "cuda" in backends.available_backends()
    assert backends.registry.specs["cuda"].distribution == "needle-cuda"


def test_protocol_surface_is_complete():
    assert _backend.PROTOCOL_VERSION == protocol.PROTOCOL_VERSION == 2
    assert protocol.missing_kernels(_backend) == []
    # Every optional kernel except convolution, which goes through core's im2col + cuBLAS matmul.
    expected = [k for k in protocol.OPTIONAL_KERNELS + protocol.OPTIONAL_KERNELS_V2 if k != "conv2d_nhwc"]
    assert protocol.optional_kernels(_backend) == expected
    assert _backend.DTYPES == ("float32", "float64", "int32", "int64", "uint8", "bool")
    assert set(_backend.DTYPES) == set(protocol.ALL_DTYPES)
    assert _backend.FUSED_DTYPES == ()
    for ns in (_backend.for_device(0), _backend.for_device(3)):
        assert protocol.missing_kernels(ns) == []
        assert protocol.optional_kernels(ns) == expected


def test_cuda_device_disabled_with_install_hint_when_cupy_missing(fresh):
    fresh.setattr(_cupy, "_import_cupy", _missing_cupy)
    dev = needle.cuda()
    assert not dev.enabled()
    assert dev.disabled_reason == ("CuPy is not installed: pip install needle-cuda[cuda12] (CUDA 12) "
                                   "or needle-cuda[cuda13] (CUDA 13)")
    assert not needle.cuda(1).enabled()
    with pytest.raises(backends.DeviceUnavailableError, match=r"pip install needle-cuda\[cuda12\]"):
        needle.backend_ndarray.NDArray(np.ones(3), device=dev)


def test_cuda_device_disabled_when_runtime_sees_no_device(fresh):
    error = RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
    fresh.setattr(_cupy, "_import_cupy", lambda: _fake_cupy(error=error))
    assert _cupy.unavailable_reason() == ("CuPy 99.0.0 is installed but no CUDA device is visible "
                                          "(cudaGetDeviceCount failed: RuntimeError: cudaErrorNoDevice: "
                                          "no CUDA-capable device is detected)")
    assert _cupy.device_count() == 0
    assert not needle.cuda().enabled()
    assert "no CUDA device is visible" in needle.cuda().disabled_reason


def test_zero_devices_and_broken_install_messages(fresh):
    fresh.setattr(_cupy, "_import_cupy", lambda: _fake_cupy(count=0))
    assert _cupy.unavailable_reason() == ("CuPy 99.0.0 is installed but no CUDA device is visible "
                                          "(cudaGetDeviceCount returned 0)")
    _cupy.reset()

    def broken():
        raise ImportError("libcudart.so.12: cannot open shared object file\nmore detail")
    fresh.setattr(_cupy, "_import_cupy", broken)
    reason = _cupy.unavailable_reason()
    assert reason.startswith("CuPy is installed but failed to import (ImportError: libcudart.so.12: cannot open")
    assert "more detail" not in reason and "pip install needle-cuda[cuda12]" in reason


def test_gpu_without_nvrtc_is_disabled_with_the_toolkit_hint(fresh):
    error = RuntimeError("CuPy failed to load libnvrtc.so.12: OSError: cannot open shared object file")
    fresh.setattr(_cupy, "_import_cupy", lambda: _fake_cupy(count=1, nvrtc_error=error))
    reason = _cupy.unavailable_reason()
    assert reason == ("CuPy 99.0.0 sees 1 CUDA device(s) but cannot load NVRTC, the CUDA compiler its kernels "
                      "need (RuntimeError: CuPy failed to load libnvrtc.so.12: OSError: cannot open shared object "
                      "file): pip install needle-cuda[cuda12] or [cuda13] (brings the CUDA libraries from PyPI), "
                      "or install the CUDA toolkit matching your CuPy wheel")
    assert _cupy.device_count() == 0 and needle.cuda().disabled_reason == reason


def test_the_probe_runs_once_and_is_cached(fresh):
    calls = []

    def counting():
        calls.append(1)
        return _fake_cupy(count=2)
    fresh.setattr(_cupy, "_import_cupy", counting)
    for _ in range(3):
        assert _cupy.unavailable_reason() is None
        assert _cupy.device_count() == 2
    assert len(calls) == 1


def test_device_index_out_of_range_is_explained(fresh):
    fresh.setattr(_cupy, "_import_cupy", lambda: _fake_cupy(count=2))
    assert _backend.for_device(1).unavailable_reason() is None
    assert _backend.for_device(2).unavailable_reason() == "CUDA device index 2 is out of range: 2 device(s) visible"
    assert needle.cuda(2).disabled_reason == "device index 2 is out of range: backend 'cuda' has 2 device(s)"
    with pytest.raises(ValueError, match="index must be >= 0"):
        _backend.for_device(-1)


def test_registry_binds_cuda_index_through_for_device(fresh):
    # Host-side: the probe sees two (fake) devices; only the binding is checked, no kernel runs.
    fresh.setattr(_cupy, "_import_cupy", lambda: _fake_cupy(count=2))
    assert needle.cuda(0).mod is _backend
    bound = needle.cuda(1).mod
    assert bound is _backend.for_device(1) and bound.DEVICE_INDEX == 1
    assert protocol.missing_kernels(bound) == []


def test_this_machine_reports_why_cuda_is_unusable():
    reason = _cupy.unavailable_reason()
    if reason is None:
        pytest.skip("a usable GPU is present: the disabled path does not apply here")
    assert reason.startswith("CuPy")
    assert "not installed" in reason or "no CUDA device is visible" in reason or "failed to import" in reason


def test_kernel_use_without_cupy_raises_the_reason(fresh):
    fresh.setattr(_cupy, "_import_cupy", _missing_cupy)
    with pytest.raises(_cupy.CudaUnavailableError, match=r"needle-cuda cannot run here: CuPy is not installed"):
        _backend.Array(4)
    with pytest.raises(_cupy.CudaUnavailableError):
        _backend.for_device(0).Array(4, "float64")


def test_dtype_is_checked_before_cupy_is_needed(fresh):
    fresh.setattr(_cupy, "_import_cupy", _missing_cupy)
    for bad in ("int8", "float16", "bogus", np.complex64):
        with pytest.raises(TypeError, match=r"needle-cuda supports dtypes \('float32', 'float64', 'int32', 'int64', "
                                            r"'uint8', 'bool'\), got dtype="):
            _backend.Array(4, bad)


# ---- matmul option and dispatch -------------------------------------------------------------------
def test_matmul_option_dispatches_to_the_chosen_implementation(monkeypatch):
    calls = []
    monkeypatch.setattr(_backend, "_MATMUL", {name: (lambda *args, name=name: calls.append((name,) + args[3:]))
                                              for name in ("cublas", "tiled")})
    with _backend.matmul_impl("tiled"):
        assert _backend.get_matmul_impl() == "tiled"
        _backend.matmul("a", "b", "out", 2, 3, 4)
        _backend.matmul_batched("a", "b", "out", 5, 2, 3, 4)
    _backend.matmul("a", "b", "out", 7, 8, 9)
    assert calls == [("tiled", 1, 2, 3, 4), ("tiled", 5, 2, 3, 4), ("cublas", 1, 7, 8, 9)]


def test_matmul_option_rejects_unknown_names(monkeypatch):
    with pytest.raises(ValueError, match=r"'blas' is not a matmul implementation; choose one of cublas, tiled"):
        _backend.set_matmul_impl("blas")
    assert _backend.get_matmul_impl() == "cublas"
    monkeypatch.setattr(_backend, "MATMUL_IMPL", "fast")
    with pytest.raises(ValueError, match=r"MATMUL_IMPL='fast'"):
        _backend.matmul(None, None, None, 1, 1, 1)


def test_matmul_env_var_is_read_at_import():
    code = "import needle_cuda; print(needle_cuda.get_matmul_impl())"
    assert _run_python(code, {"NEEDLE_CUDA_MATMUL": " Tiled "}).strip() == "tiled"
    assert _run_python(code, {"NEEDLE_CUDA_MATMUL": ""}).strip() == "cublas"


def test_matmul_checks_buffer_sizes_before_launching():
    # Host-side validation only: the fake buffers have a size and a dtype, and no kernel is reached.
    buf = types.SimpleNamespace
    a, b, out = buf(size=6, dtype="float32"), buf(size=11, dtype="float32"), buf(size=8, dtype="float32")
    with pytest.raises(ValueError, match=r"buffer b has 11 elements, 1 matrices of shape \(3, 4\) need 12"):
        _backend.matmul_tiled(a, b, out, 2, 3, 4)
    with pytest.raises(ValueError, match=r"buffer a has 6 elements, 2 matrices of shape \(2, 3\) need 12"):
        _backend.matmul_batched_cublas(a, buf(size=24, dtype="float32"), buf(size=16, dtype="float32"), 2, 2, 3, 4)
    with pytest.raises(TypeError, match="dtypes differ"):
        _backend.matmul_cublas(a, buf(size=12, dtype="float64"), out, 2, 3, 4)


# ---- pure-Python arithmetic vs numpy ------------------------------------------------------------
def test_view_extent_and_bounds_check_match_numpy():
    rng = np.random.default_rng(0)
    buffer = np.arange(2000, dtype=np.float64)  # values are their own flat indices
    for _ in range(400):
        ndim = int(rng.integers(0, 5))
        shape = tuple(int(d) for d in rng.integers(0, 5, size=ndim))
        strides = tuple(int(s) for s in rng.integers(-6, 7, size=ndim))
        offset = int(rng.integers(900, 1100))   # far from both ends: the numpy oracle stays in bounds
        view = as_strided(buffer[offset:], shape=shape, strides=tuple(s * 8 for s in strides))
        extent = _views.view_extent(shape, strides, offset)
        if view.size == 0:
            assert extent is None
            continue
        assert extent == (int(view.min()), int(view.max()))
        low, high = extent
        _views.check_view(high + 1, shape, strides, offset)           # just fits
        with pytest.raises(ValueError, match="outside the buffer"):
            _views.check_view(high, shape, strides, offset)           # one element short
        shifted = offset - low - 1                                    # moves the lowest element to -1
        with pytest.raises(ValueError, match="reach elements -1"):
            _views.check_view(10**6, shape, strides, shifted)
        _views.check_view(10**6, shape, strides, shifted + 1)         # and to 0: fits


def test_check_view_names_the_view():
    with pytest.raises(ValueError, match=r"compact: shape \(2, 3\), strides \(3, 1\), offset 1 reach elements 1\.\.6"):
        _views.check_view(6, (2, 3), (3, 1), 1, "compact")
    with pytest.raises(ValueError, match="differ in length"):
        _views.check_view(6, (2, 3), (3,), 0)
    assert _views.byte_strides((3, -1, 0), 4) == (12, -4, 0)


@pytest.mark.parametrize("batch,m,p,tile,limit", [
    (1, 1, 1, 16, 65535), (1, 16, 16, 16, 65535), (1, 17, 33, 16, 65535), (3, 100, 7, 16, 65535),
    (7, 50, 20, 4, 3), (1, 0, 5, 16, 65535), (0, 5, 5, 16, 65535), (2, 65, 9, 8, 2),
])
def test_tiled_launch_plan_covers_every_output_tile_once(batch, m, p, tile, limit):
    plan = _kernels.tiled_launch_plan(batch, m, p, tile=tile, max_grid_yz=limit)
    covered = []
    for (gx, gy, gz), row0, batch0 in plan:
        assert gy <= limit and gz <= limit
        covered += [(batch0 + z, row0 + y, x) for z, y, x in itertools.product(range(gz), range(gy), range(gx))]
    row_tiles, col_tiles = int(np.ceil(m / tile)), int(np.ceil(p / tile))
    expected = list(itertools.product(range(batch), range(row_tiles), range(col_tiles)))
    assert sorted(covered) == expected                       # every tile, none twice
    for _z, row_tile, col_tile in covered:                    # and each tile starts inside the output
        assert row_tile * tile < m and col_tile * tile < p


def test_kernel_names_are_prefixed_and_created_lazily():
    names = list(_kernels.ELEMENTWISE) + [_kernels.tiled_kernel_name(d) for d in _kernels.CTYPES]
    assert names and all(n.startswith("needle_") for n in names)
    assert _kernels.tiled_kernel_name("float32") == "needle_matmul_tiled_f32"
    assert f"void {_kernels.tiled_kernel_name('float64')}(" in _kernels.tiled_source("float64")
    with pytest.raises(TypeError, match="tiled matmul supports dtypes"):
        _kernels.tiled_source("int32")


# ---- NVRTC: the CUDA sources compile (no GPU needed, nothing runs) --------------------------------
def _nvrtc():
    try:
        from cupy.cuda import nvrtc
        nvrtc.getVersion()
    except Exception as exc:  # CuPy absent, or the NVRTC library is not installed
        pytest.skip(f"NVRTC not available to compile CUDA sources on the host ({type(exc).__name__}: {exc})")
    return nvrtc


def _compile(nvrtc, source, name):
    prog = nvrtc.createProgram(source, f"{name}.cu", [], [])
    try:
        nvrtc.compileProgram(prog, ["-arch=compute_70", "-std=c++17"])
    except Exception as exc:
        pytest.fail(f"{name} does not compile:\n{nvrtc.getProgramLog(prog)}\n{exc}")
    return nvrtc.getPTX(prog)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_tiled_matmul_source_compiles_with_nvrtc(dtype):
    nvrtc = _nvrtc()
    ptx = _compile(nvrtc, _kernels.tiled_source(dtype), _kernels.tiled_kernel_name(dtype))
    assert _kernels.tiled_kernel_name(dtype).encode() in ptx
    assert b".shared" in ptx  # the tiles really live in shared memory


#: The C type CuPy gives each dtype (``typedef <ctype> T``) in the fused kernels.
CTYPES = {"float32": "float", "float64": "double", "int32": "int", "int64": "long long", "uint8": "unsigned char",
          "bool": "bool"}
#: The dtypes each fused kernel is called with: name -> [(type parameter -> dtype)].
FUSED_TYPES = {
    "needle_ewise_sigmoid": [{"T": d} for d in ("float32", "float64")],
    "needle_where": [{"T": d} for d in CTYPES],
    "needle_abs_signed": [{"T": d} for d in ("int32", "int64")],
    "needle_cast_float_to_int": [{"X": x, "Y": y} for x in ("float32", "float64") for y in ("int32", "int64", "uint8")],
}


def test_every_fused_kernel_has_its_dtypes_listed():
    assert sorted(FUSED_TYPES) == sorted(_kernels.ELEMENTWISE)


@pytest.mark.parametrize("name,types", [(n, t) for n, ts in sorted(FUSED_TYPES.items()) for t in ts],
                         ids=lambda v: v if isinstance(v, str) else "-".join(v.values()))
def test_fused_elementwise_operations_compile_with_nvrtc(name, types):
    # CuPy wraps `operation` in a loop with a typedef per type parameter and the parameters as locals;
    # this wraps it the same way to check the C++ of the operation, for each dtype it is used with.
    nvrtc = _nvrtc()
    in_params, out_params, operation = _kernels.ELEMENTWISE[name]
    ins = [p.split() for p in in_params.split(",")]
    outs = [p.split() for p in out_params.split(",")]
    typedefs = "".join(f"typedef {CTYPES[d]} {t};\n" for t, d in types.items())
    args = ", ".join([f"const {t}* in_{n}" for t, n in ins] + [f"{t}* out_{n}" for t, n in outs] + ["long long size"])
    body = "".join(f"{t} {n} = in_{n}[i]; " for t, n in ins) + "".join(f"{t} {n}; " for t, n in outs)
    store = "".join(f"out_{n}[i] = {n}; " for _, n in outs)
    source = (f"{typedefs}extern \"C\" __global__ void {name}({args}) {{\n"
              f"long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; if (i >= size) return;\n"
              f"{body}\n{operation};\n{store}\n}}\n")
    assert name.encode() in _compile(nvrtc, source, name)


# ---- the conformance suite on the numpy stand-in for CuPy ----------------------------------------
SUITE_ON_STAND_IN = """
import importlib.util, sys, pytest
spec = importlib.util.spec_from_file_location("cuda_stand_in", {conftest!r})
stand_in = importlib.util.module_from_spec(spec)
spec.loader.exec_module(stand_in)
from needle_cuda import _cupy
fake = stand_in.make_fake_cupy()
_cupy._import_cupy = lambda: fake
_cupy.reset()
# The fuzzing suite runs its cases in a worker process, which cannot see this stand-in: not here.
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "--pyargs", "needle.testing", "-k", "not fuzz"]))
"""


def test_conformance_suite_passes_on_the_numpy_stand_in(tmp_path):
    # needle's backend-independent suite, every kernel through needle-cuda's Python on numpy buffers:
    # it checks the wiring (dtypes, views, argument order, index checks) that the GPU run relies on.
    script = tmp_path / "suite_on_stand_in.py"
    script.write_text(SUITE_ON_STAND_IN.format(conftest=str(PACKAGE_ROOT / "tests" / "conftest.py")))
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEEDLE_")}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                          env=dict(env, NEEDLE_TEST_BACKENDS="cuda"))
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout.splitlines()[-1] and "failed" not in done.stdout.splitlines()[-1]
