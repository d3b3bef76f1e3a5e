"""``python -m needle check NAME`` in fresh interpreters, on the numpy backend and on fake plugins.

Each fake plugin is a ``*.dist-info`` folder (METADATA + entry_points.txt) plus a module in a
temporary folder put on PYTHONPATH, as in test_registry_cli.py: nothing is installed. The fake
backends start from needle.testing's minimal reference backend (protocol 2, required kernels only,
every dtype but float64) and break one thing each, so the expected verdict of every line is known in
advance.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

# A plugin whose backend is the reference backend's public names, changed by CHANGE (a code block
# that may edit the dict `names`; `ref` is the reference module, `base` its namespace copy).
PLUGIN = """
import types
from needle.backends import BackendSpec, hookimpl
from needle.testing import _reference_backend as ref


def _load():
    names = {{k: v for k, v in vars(ref).items() if not k.startswith("_")}}
{change}
    return types.SimpleNamespace(**names)


@hookimpl
def needle_backends():
    return [BackendSpec(name={name!r}, load=_load)]
"""

CHANGES = {
    "fakemin": "",
    # Off by one in ewise_add only.
    "fakewrongadd": """
    def ewise_add(a, b, out):
        out.buf[:] = a.buf + b.buf + 1
    names["ewise_add"] = ewise_add
""",
    # compact ignores shape, strides and offset: copies the buffer's first elements.
    "fakeflatcompact": """
    def compact(a, out, shape, strides, offset):
        out.buf[:] = a.buf[: out.size]
    names["compact"] = compact
""",
    "fakeraise": """
    def reduce_max(a, out, reduce_size):
        raise RuntimeError("kernel exploded")
    names["reduce_max"] = reduce_max
""",
    "fakethin": """
    del names["matmul"], names["reduce_max"]
""",
    "fakeold": """
    names["PROTOCOL_VERSION"] = 0
""",
    # A protocol-1 backend: core offers it float32 only, and checks it as protocol 1.
    "fakev1": """
    names["PROTOCOL_VERSION"] = 1
""",
    "fakebadload": """
    raise ImportError("libtoy.so: cannot open shared object file")
""",
    # An optional kernel, one advertised name core does not know and one it does not define.
    "fakeopt": """
    def ewise_relu(a, out):
        out.buf[:] = a.buf * (a.buf > 0)
    names["ewise_relu"] = ewise_relu
    names["OPTIONAL_KERNELS"] = ("ewise_relu", "ewise_sqrt", "ewise_gelu")
""",
    # A kernel the protocol cannot call: ewise_exp takes (a, b, out) where the table says (a, out).
    "fakearity": """
    def ewise_exp(a, b, out):
        out.buf[:] = 0
    names["ewise_exp"] = ewise_exp
""",
}

BROKEN = 'raise ImportError("needle_fakebroken needs libwidget")\n'

LABELS = [  # every NDArray smoke check (float dtypes), in the order they print
    "round trip (from_numpy, to_numpy)",
    "compact of a transposed view",
    "compact of a sliced view (offset, step)",
    "ewise add, with a broadcast row",
    "scalar mul, add, div, power",
    "comparisons (>=, ==)",
    "exp, log, tanh",
    "matmul (5x7 @ 7x3)",
    "reduce sum over axis 1",
    "reduce max over axis 0",
    "setitem of a strided slice, and of a scalar",
]



def kernel_labels(dtype):
    """The raw-kernel smoke checks of a protocol-2 backend on ``dtype``, in the order they print."""
    labels = ["(kernels) round trip, compact of a strided view", "(kernels) comparisons write bool",
              "(kernels) cast to float32 and back", "(kernels) where, minimum, reduce_min",
              "(kernels) argmax, argmin into int64"]
    if dtype != "bool":
        labels.append("(kernels) add, mul, sum (integers wrap)")
    if dtype not in ("float32", "float64"):
        labels.append("(kernels) and, or, xor, not")
    return labels


def all_labels(dtypes):
    """``{(dtype, label)}`` of every smoke check a protocol-2 backend of ``dtypes`` prints."""
    return {(d, label) for d in dtypes for label in (LABELS if d in ("float32", "float64") else []) + kernel_labels(d)}


OPTIONAL_V1 = ["ewise_sub", "scalar_rsub", "scalar_rdiv", "ewise_neg", "ewise_sqrt", "ewise_sigmoid", "ewise_relu",
               "ewise_power", "matmul_batched", "conv2d_nhwc"]
OPTIONAL_V2 = ["ewise_ne", "ewise_lt", "ewise_le", "ewise_gt", "scalar_ne", "scalar_lt", "scalar_le", "scalar_gt",
               "ewise_abs", "gather_rows", "scatter_add_rows"]
OPTIONAL = OPTIONAL_V1 + OPTIONAL_V2
NUMPY_OPTIONAL = [k for k in OPTIONAL if k != "conv2d_nhwc"]  # numpy convolves through core's im2col
NUMPY_DTYPES = ("float32", "float64", "int32", "int64", "uint8", "bool")
REFERENCE_DTYPES = ("float32", "int32", "int64", "uint8", "bool")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder holding the fake distributions, to put on PYTHONPATH."""
    root = tmp_path_factory.mktemp("check_site")
    sources = {name: PLUGIN.format(name=name, change=change) for name, change in CHANGES.items()}
    sources["fakebroken"] = BROKEN
    for name, source in sources.items():
        info = root / f"needle_{name}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: needle-{name}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[needle.backends]\n{name} = {name}_plugin\n")
        (root / f"{name}_plugin.py").write_text(source)
    return root


def run(site, *args, code=None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEEDLE_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(site)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    argv = [sys.executable, *args] + (["-c", textwrap.dedent(code)] if code else [])
    return subprocess.run(argv, capture_output=True, text=True, env=environ, timeout=120)


@pytest.fixture(scope="module")
def reports(site):
    """``{name: (exit status, stdout lines)}`` of `check` on every fake backend, in one interpreter."""
    names = sorted(CHANGES) + ["fakebroken", "nosuch"]
    done = run(site, code=f"""
        import contextlib, io, json
        from needle.__main__ import main
        out = {{}}
        for name in {names!r}:
            text = io.StringIO()
            with contextlib.redirect_stdout(text):
                status = main(["check", name])
            out[name] = [status, text.getvalue().splitlines()]
        print(json.dumps(out))
    """)
    assert done.returncode == 0, done.stderr
    return {name: tuple(value) for name, value in json.loads(done.stdout).items()}


def verdicts(lines):
    """``{(dtype, label): "PASS"/"FAIL"}`` from the smoke-test lines."""
    found = {}
    for line in lines:
        parts = line.split(maxsplit=2)
        if len(parts) == 3 and parts[0] in ("PASS", "FAIL"):
            label = parts[2].split(": ")[0]
            found[(parts[1], label)] = parts[0]
    return found


def field(lines, name):
    """The text after ``  name`` in the description block."""
    return next(line[len(name) + 2:].strip() for line in lines if line.startswith(f"  {name}"))


def test_numpy_backend_passes_through_the_real_command():
    done = subprocess.run([sys.executable, "-m", "needle", "check", "numpy"], capture_output=True, text=True,
                          timeout=120, env={k: v for k, v in os.environ.items() if not k.startswith("NEEDLE_")})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "needle check: backend 'numpy', device cpu_numpy()"
    assert field(lines, "distribution").startswith("needle-core")
    assert field(lines, "protocol version").startswith("2 (")
    assert field(lines, "protocol version").endswith("speaks 1, 2): ok")
    assert field(lines, "dtypes") == ", ".join(NUMPY_DTYPES)
    assert field(lines, "required kernels") == "37 of 37 present"
    assert field(lines, "optional kernels") == "provided: " + ", ".join(NUMPY_OPTIONAL)
    assert "core fallback: conv2d_nhwc" in lines[lines.index(next(x for x in lines if "optional kernels" in x)) + 1]
    assert verdicts(lines) == dict.fromkeys(all_labels(NUMPY_DTYPES), "PASS")
    assert lines[-1] == "PASS: backend 'numpy' loads and all 61 smoke checks pass"
    # The alias resolves to the same backend.
    alias = subprocess.run([sys.executable, "-m", "needle", "check", "np"], capture_output=True, text=True, timeout=120)
    assert alias.returncode == 0 and alias.stdout.splitlines()[0] == lines[0]


def test_minimal_backend_passes_and_lists_every_optional_kernel_as_fallback(reports):
    status, lines = reports["fakemin"]
    assert status == 0, lines
    assert field(lines, "distribution") == "needle-fakemin 1.0 (entry point 'fakemin' -> fakemin_plugin)"
    assert field(lines, "dtypes") == ", ".join(REFERENCE_DTYPES)
    assert field(lines, "required kernels") == "37 of 37 present"
    assert field(lines, "optional kernels") == "provided: none"
    assert any(line.strip() == "core fallback: " + ", ".join(OPTIONAL) for line in lines)
    assert verdicts(lines) == dict.fromkeys(all_labels(REFERENCE_DTYPES), "PASS")
    assert lines[-1] == "PASS: backend 'fakemin' loads and all 44 smoke checks pass"


def test_a_protocol_1_backend_is_checked_as_protocol_1_on_its_floats(reports):
    status, lines = reports["fakev1"]
    assert status == 0, lines
    assert field(lines, "protocol version").endswith("speaks 1, 2): ok (floats only: protocol 1)")
    assert field(lines, "required kernels") == "26 of 26 present"  # protocol 1's list, not 2's
    assert any(line.strip() == "core fallback: " + ", ".join(OPTIONAL_V1) for line in lines)
    assert verdicts(lines) == {("float32", label): "PASS" for label in LABELS}  # no kernel checks: protocol 2's
    assert lines[-1] == "PASS: backend 'fakev1' loads and all 11 smoke checks pass"


def test_a_kernel_whose_parameters_differ_from_the_contract_fails_the_check(reports):
    status, lines = reports["fakearity"]
    assert status == 1, lines
    assert field(lines, "signatures") == ("MISMATCH: ewise_exp takes 3 positional arguments (0 optional); "
                                          "the protocol passes (a, out)")
    assert field(lines, "fused kernels") == "provided: none"
    assert lines[-1].startswith("FAIL: ")


def test_optional_kernels_provided_and_advertising_mistakes_are_reported(reports):
    status, lines = reports["fakeopt"]
    assert status == 0, lines
    assert field(lines, "optional kernels") == "provided: ewise_relu"
    assert any(line.strip() == "core fallback: " + ", ".join(k for k in OPTIONAL if k != "ewise_relu")
               for line in lines)
    assert "  note: OPTIONAL_KERNELS lists names core does not know (never called): ewise_gelu" in lines
    assert "  note: OPTIONAL_KERNELS lists kernels the module does not define: ewise_sqrt" in lines


@pytest.mark.parametrize("name, failing", [
    ("fakewrongadd", {"ewise add, with a broadcast row", "exp, log, tanh",
                      "(kernels) add, mul, sum (integers wrap)"}),
    ("fakeflatcompact", {"compact of a transposed view", "compact of a sliced view (offset, step)",
                         "ewise add, with a broadcast row", "reduce max over axis 0",
                         "(kernels) round trip, compact of a strided view"}),
    ("fakeraise", {"reduce max over axis 0"}),
])
def test_a_wrong_kernel_fails_exactly_the_checks_that_use_it(reports, name, failing):
    status, lines = reports[name]
    assert status == 1
    expected = {key: "FAIL" if key[1] in failing else "PASS" for key in all_labels(REFERENCE_DTYPES)}
    assert verdicts(lines) == expected
    count = sum(v == "FAIL" for v in expected.values())
    assert lines[-1] == f"FAIL: {count} of {len(expected)} smoke checks failed on backend {name!r}"


def test_a_raising_kernel_shows_the_exception(reports):
    _, lines = reports["fakeraise"]
    line = next(x for x in lines if "reduce max over axis 0" in x)
    assert line.endswith("reduce max over axis 0: RuntimeError: kernel exploded")


def test_missing_required_kernels_are_named_and_nothing_runs(reports):
    status, lines = reports["fakethin"]
    assert status == 1
    assert field(lines, "required kernels") == "35 of 37 present; MISSING: matmul, reduce_max"
    assert verdicts(lines) == {}
    assert lines[-1] == ("FAIL: backend 'fakethin' cannot be used: backend 'fakethin' from distribution "
                         "'needle-fakethin' lacks required kernels: matmul, reduce_max; try "
                         "`pip install --force-reinstall needle-fakethin`")


def test_protocol_version_mismatch_names_plugin_and_both_versions_and_the_rest_keeps_working(site, reports):
    import needle
    status, lines = reports["fakeold"]
    assert status == 1
    assert field(lines, "protocol version") == f"0 (needle-core {needle.__version__} speaks 1, 2): MISMATCH"
    assert lines[-1] == (f"FAIL: backend 'fakeold' cannot be used: backend 'fakeold' from distribution "
                         f"'needle-fakeold' implements backend protocol version 0, but needle-core "
                         f"{needle.__version__} implements versions 1, 2; install matching versions "
                         f"(`pip install --upgrade needle-fakeold`)")
    # The same process, after loading the refused plugin: the other backends still compute.
    done = run(site, code="""
        import numpy as np, needle
        from needle.backend_ndarray import NDArray
        print(needle.device("fakeold").enabled())
        for name in ("fakemin", "numpy"):
            a = NDArray(np.arange(6.0).reshape(2, 3), device=needle.device(name), dtype="float32")
            print(name, (a @ a.permute((1, 0))).numpy().tolist())
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["False", "fakemin [[5.0, 14.0], [14.0, 50.0]]",
                                        "numpy [[5.0, 14.0], [14.0, 50.0]]"]


def test_load_failures_and_unknown_names_exit_nonzero_with_the_reason(reports):
    status, lines = reports["fakebadload"]
    assert status == 1
    assert "  load()            raised ImportError: libtoy.so: cannot open shared object file" in lines
    assert lines[-1].startswith("FAIL: backend 'fakebadload' cannot be used: backend 'fakebadload' from "
                                "distribution 'needle-fakebadload' failed to load: ImportError: libtoy.so")

    status, lines = reports["fakebroken"]  # the entry point itself fails to import
    assert status == 1
    assert ("    fakebroken (needle-fakebroken): importing 'fakebroken_plugin' failed: ImportError: "
            "needle_fakebroken needs libwidget") in lines
    # issue 17: the reason says the plugin failed to load and why, not that nothing is installed
    assert lines[-1].startswith("FAIL: backend 'fakebroken' cannot be used: backend 'fakebroken' is unavailable: "
                                "plugin 'needle-fakebroken' (entry point 'fakebroken' -> fakebroken_plugin) failed "
                                "to load: importing 'fakebroken_plugin' failed: ImportError: needle_fakebroken needs "
                                "libwidget")

    status, lines = reports["nosuch"]
    assert status == 1
    assert lines[-1].startswith("FAIL: backend 'nosuch' cannot be used: no backend named 'nosuch' is installed")
    assert "fakemin" in lines[-1] and "numpy" in lines[-1]


def test_exit_status_of_the_command_line_follows_the_verdict(site):
    done = run(site, "-m", "needle", "check", "fakewrongadd")
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1] == "FAIL: 6 of 44 smoke checks failed on backend 'fakewrongadd'"
    done = run(site, "-m", "needle", "check", "fakemin")
    assert done.returncode == 0, done.stdout
