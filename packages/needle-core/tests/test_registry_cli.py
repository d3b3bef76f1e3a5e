"""The registry end to end, in fresh interpreters, with fake distributions found by importlib.metadata.

Each fake distribution is a ``*.dist-info`` folder (METADATA + entry_points.txt) and a plugin
module in a temporary folder put on PYTHONPATH: nothing is installed. These tests show what the
in-process ones cannot: ``import needle`` itself loads no plugin, NEEDLE_BACKEND is read at
import, and ``python -m needle`` reports real distributions.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

GOOD = """
from needle.backends import BackendSpec, hookimpl

@hookimpl
def needle_backends():
    def load():
        from needle.backend_ndarray import numpy_backend
        return numpy_backend
    return [BackendSpec(name="fakegood", load=load, description="numpy under another name")]
"""

BROKEN = """
raise ImportError("libfake.so: cannot open shared object file")
"""

DUP = """
from needle.backends import BackendSpec, hookimpl

@hookimpl
def needle_backends():
    from needle.backend_ndarray import numpy_backend
    return [BackendSpec(name="fakedup", load=lambda: numpy_backend)]
"""

DISTS = [  # distribution, version, entry point, module, source
    ("needle-fakegood", "1.2.3", "fakegood", "fakegood_plugin", GOOD),
    ("needle-fakebroken", "0.0.1", "fakebroken", "fakebroken_plugin", BROKEN),
    ("needle-fakedup-a", "1.0", "fakedup", "fakedup_a_plugin", DUP),
    ("needle-fakedup-b", "2.0", "fakedup", "fakedup_b_plugin", DUP),
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder holding the fake distributions, to put on PYTHONPATH."""
    root = tmp_path_factory.mktemp("fake_site")
    for dist, version, ep, module, source in DISTS:
        info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[needle.backends]\n{ep} = {module}\n")
        (root / f"{module}.py").write_text(source)
    return root


def run(site, *args, env=None, code=None):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NEEDLE_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(site)] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    environ.update(env or {})
    argv = [sys.executable, *args] + (["-c", textwrap.dedent(code)] if code else [])
    done = subprocess.run(argv, capture_output=True, text=True, env=environ, timeout=120)
    return done


def test_import_needle_loads_no_plugin_and_broken_or_duplicate_plugins_leave_the_rest_working(site):
    done = run(site, "-W", "error::UserWarning", code="""
        import sys, warnings
        import needle
        print(sorted(m for m in sys.modules if m.startswith("fake")), needle._registry.registry._discovered)
        import numpy as np
        from needle.backend_ndarray import NDArray
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dev = needle.device("fakegood")
            a = np.arange(6, dtype=np.float32).reshape(2, 3)
            print(dev, dev.enabled(), np.array_equal((NDArray(a, device=dev) + 1).numpy(), a + 1))
            print(np.array_equal((NDArray(a, device=needle.cpu_numpy()) * 2).numpy(), a * 2))
            print(needle.device("fakedup").enabled())
        for w in caught:
            print("WARNING", w.category.__name__, w.message)
        print(sorted(m for m in sys.modules if m.startswith("fake")))
    """)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:4] == ["[] False", "fakegood() True True", "True", "False"]
    warned = [line for line in lines if line.startswith("WARNING NeedlePluginWarning")]
    assert any("'fakebroken' from distribution 'needle-fakebroken'" in w and "ImportError: libfake.so" in w
               for w in warned), warned
    assert any("'fakedup'" in w and "'needle-fakedup-a'" in w and "'needle-fakedup-b'" in w for w in warned), warned
    assert lines[-1] == "['fakedup_a_plugin', 'fakedup_b_plugin', 'fakegood_plugin']"


def test_needle_backend_is_read_at_import(site):
    done = run(site, env={"NEEDLE_BACKEND": "fakegood"}, code="""
        import os, needle
        os.environ["NEEDLE_BACKEND"] = "np"   # too late: read when needle was imported
        print(needle.default_device(), needle.Tensor([1.0]).device)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["fakegood()", "fakegood()"]
    done = run(site, env={"NEEDLE_BACKEND": "np"}, code="import needle; print(needle.default_device(), needle.cpu())")
    assert done.stdout.split() == ["cpu_numpy()", "cpu_numpy()"]


def test_strict_mode_and_autoload_switches_in_a_fresh_interpreter(site):
    done = run(site, env={"NEEDLE_PLUGINS_STRICT": "1"}, code="""
        import needle                     # importing never fails: discovery is lazy
        try:
            needle.cpu_numpy().enabled()
        except needle.backends.PluginLoadError as exc:
            print("PluginLoadError", exc)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("PluginLoadError needle plugin 'fakebroken' from distribution 'needle-fakebroken'")
    done = run(site, "-W", "error::UserWarning",
               env={"NEEDLE_DISABLE_PLUGIN_AUTOLOAD": "1", "NEEDLE_PLUGINS": "fakegood"},
               code="import needle.backends as b; print(b.available_backends())")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['fakegood', 'numpy']"


def test_python_m_needle_reports_distributions_backends_and_errors(site):
    done = run(site, "-m", "needle")
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr
    lines = done.stdout.splitlines()
    dists = {line.split()[0]: line.split()[1] for line in lines[lines.index("Distributions:") + 2:]
             if line.startswith("  needle-")}
    assert {"needle-fakegood": "1.2.3", "needle-fakebroken": "0.0.1", "needle-fakedup-a": "1.0",
            "needle-fakedup-b": "2.0"}.items() <= dists.items()
    assert "needle-core" in dists
    good = next(line for line in lines if line.startswith("  fakegood "))
    assert good.split()[:5] == ["fakegood", "fakegood()", "needle-fakegood", "1.2.3", "enabled"]
    assert any(line.startswith("Default device: ") for line in lines)
    assert ("  fakebroken (needle-fakebroken): importing 'fakebroken_plugin' failed: ImportError: libfake.so: "
            "cannot open shared object file") in lines
    assert "  fakedup: needle-fakedup-a and needle-fakedup-b" in lines

    done = run(site, "-m", "needle", "--json", env={"NEEDLE_BACKEND": "nosuch"})
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["distributions"]["needle-fakegood"] == "1.2.3"
    by_name = {b["name"]: b for b in info["backends"]}
    assert by_name["fakegood"]["enabled"] and by_name["fakegood"]["version"] == "1.2.3"
    assert by_name["fakedup"]["enabled"] is False and "needle-fakedup-b" in by_name["fakedup"]["reason"]
    assert info["conflicts"] == {"fakedup": ["needle-fakedup-a", "needle-fakedup-b"]}
    assert "NEEDLE_BACKEND='nosuch' names no installed backend" in info["default_device_error"]
    assert "fakegood" in info["default_device_error"]
