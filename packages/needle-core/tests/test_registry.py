"""The plugin registry and devices, with faked installed distributions.

Entry points are faked by replacing ``needle._registry._iter_entry_points``: nothing is
installed. Results on a fake backend are checked against numpy on the same inputs; error
texts are checked for the facts they must carry (entry point, distribution, real exception).
"""
import contextlib
import copy
import pickle
import sys
import threading
import types
import warnings

import numpy as np
import pytest

import needle as ndl
from needle import _registry, backends
from needle.backend_ndarray import NDArray, numpy_backend, protocol
from needle.backends import (
    BackendConflictError,
    BackendSpec,
    DeviceUnavailableError,
    NeedlePluginWarning,
    PluginLoadError,
)

ENV = ("NEEDLE_PLUGINS_STRICT", "NEEDLE_DISABLE_PLUGIN_AUTOLOAD", "NEEDLE_PLUGINS", "NEEDLE_BACKEND")


# ---- fakes --------------------------------------------------------------------------------------
def protocol_module(drop=(), **extra):
    """A protocol module: numpy_backend's public names (a distinct object), minus ``drop``, plus ``extra``."""
    names = {k: v for k, v in vars(numpy_backend).items() if not k.startswith("_") and k not in drop}
    names.update(extra)
    return types.SimpleNamespace(**names)


class Counter:
    """Counts calls of a load function (so tests see when discovery / loading really happens)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self):
        self.calls += 1
        return self.fn()


def plugin(*specs, hook=None):
    """A plugin object whose needle_backends() returns ``specs`` (or runs ``hook``)."""
    def needle_backends():
        return hook() if hook is not None else list(specs)
    return types.SimpleNamespace(needle_backends=backends.hookimpl(needle_backends))


def spec(name, module=None, load=None):
    if load is None:
        def load():
            return module if module is not None else protocol_module()
    return BackendSpec(name=name, load=load)


class FakeEntryPoint:
    """What the registry reads from an importlib.metadata.EntryPoint."""

    def __init__(self, name, dist, obj=None, error=None, value=None):
        self.name, self.value = name, value or f"{dist.replace('-', '_')}._plugin"
        self.dist = types.SimpleNamespace(name=dist)
        self._obj, self._error, self.loads = obj, error, 0

    def load(self):
        self.loads += 1
        if self._error is not None:
            raise self._error
        return self._obj


def good_ep(name="good", dist="needle-good", module=None):
    return FakeEntryPoint(name, dist, plugin(spec(name, module)))


def broken_ep():
    return FakeEntryPoint("broken", "needle-broken",
                          error=ImportError("libbroken.so: cannot open shared object file"))


@pytest.fixture
def fake(monkeypatch):
    """``fake(*entry_points)`` makes those the only installed plugins, with a clean environment."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(backends, "_REQUESTED_BACKEND", "")

    def install(*eps):
        monkeypatch.setattr(_registry, "_iter_entry_points", lambda: list(eps))
        backends.reset()
        return eps
    install()
    yield install
    backends.reset()  # later tests rediscover the real entry points


def requested(monkeypatch, value):
    """Act as if needle had been imported with NEEDLE_BACKEND=value (re-read the way import reads it)."""
    monkeypatch.setenv("NEEDLE_BACKEND", value)
    monkeypatch.setattr(backends, "_REQUESTED_BACKEND", backends._read_requested_backend())
    backends.reset()


def assert_numpy_backend_works():
    a = np.array([[1.0, -2.0], [3.0, 4.5]], dtype=np.float32)
    got = (NDArray(a, device=ndl.cpu_numpy()) @ NDArray(a, device=ndl.cpu_numpy()) + 1).numpy()
    np.testing.assert_allclose(got, a @ a + 1, rtol=1e-6)


@contextlib.contextmanager
def no_warnings():
    """Any warning inside is a test failure."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


# ---- discovery ----------------------------------------------------------------------------------
def test_good_plugin_backend_computes_like_numpy(fake):
    module = protocol_module(matmul_tiled=lambda *a: "tiled", __tile_size__=8)
    fake(good_ep(module=module))
    dev = ndl.device("good")
    assert dev.enabled() and dev.disabled_reason is None
    assert repr(dev) == "good()" and dev.name == "good" and dev == ndl.device("GOOD ")
    assert backends.available_backends() == ["good", "numpy"]
    assert backends.registry.specs["good"].distribution == "needle-good"
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    x, y = NDArray(a, device=dev), NDArray(b, device=dev)
    np.testing.assert_allclose((x @ y).numpy(), a @ b, rtol=1e-6)
    np.testing.assert_allclose((x.permute((1, 0)) * 2 - 1).numpy(), a.T * 2 - 1)
    # Unknown attributes reach the backend module, dunder-style ones included (the course's __tile_size__).
    assert dev.matmul_tiled() == "tiled" and dev.__tile_size__ == 8 and dev.mod is module
    with pytest.raises(AttributeError, match="no attribute 'not_a_kernel'"):
        dev.not_a_kernel
    assert_numpy_backend_works()


def test_discovery_is_lazy_cached_and_reset(fake):
    ep = good_ep()
    load = Counter(lambda: protocol_module())
    ep._obj = plugin(spec("good", load=load))
    fake(ep)
    assert ep.loads == 0 and load.calls == 0  # reset() discovers nothing
    dev = ndl.device("good")
    assert ep.loads == 0  # making a device object discovers nothing either
    assert dev.enabled()
    assert (ep.loads, load.calls) == (1, 1)
    ndl.device("good").enabled(), ndl.cpu_numpy().enabled(), backends.available_backends()
    NDArray([1.0, 2.0], device=dev)
    assert (ep.loads, load.calls) == (1, 1)  # cached
    backends.reset()
    assert ndl.device("good").enabled()
    assert (ep.loads, load.calls) == (2, 2)


def test_plugin_that_raises_on_import_warns_with_cause_and_others_work(fake):
    fake(broken_ep(), good_ep())
    with pytest.warns(NeedlePluginWarning, match=r"plugin 'broken' from distribution 'needle-broken' could not be "
                                                 r"loaded: importing 'needle_broken._plugin' failed: ImportError: "
                                                 r"libbroken.so: cannot open shared object file"):
        names = backends.available_backends()
    assert names == ["good", "numpy"]
    assert backends.registry.plugin_errors[0][:2] == ("broken", "needle-broken")
    assert ndl.device("good").enabled()
    assert_numpy_backend_works()


def test_strict_mode_turns_a_plugin_failure_into_an_error_on_every_lookup(fake, monkeypatch):
    fake(broken_ep(), good_ep())
    monkeypatch.setenv("NEEDLE_PLUGINS_STRICT", "1")
    for _ in range(2):  # a failed strict discovery is not cached half-done
        with pytest.raises(PluginLoadError, match=r"'broken' from distribution 'needle-broken'.*ImportError: "
                                                  r"libbroken.so.*unset NEEDLE_PLUGINS_STRICT") as info:
            ndl.device("good").enabled()
        assert isinstance(info.value.__cause__, ImportError)
    monkeypatch.setenv("NEEDLE_PLUGINS_STRICT", "0")
    backends.reset()
    with pytest.warns(NeedlePluginWarning):
        assert ndl.device("good").enabled()


@pytest.mark.parametrize("hook, message", [
    (lambda: 1 / 0, r"needle_backends\(\) raised ZeroDivisionError: division by zero"),
    (lambda: ["not a spec"], r"needle_backends\(\) returned 'not a spec', not a needle.backends.BackendSpec"),
    (lambda: [BackendSpec(name="", load=protocol_module)], r"invalid name ''"),
    (lambda: [BackendSpec(name="x", load="pkg.mod")], r"'x' has a load that is not callable"),
    (lambda: [BackendSpec(name="np", load=protocol_module)], r"backend name 'np' is reserved"),
    (lambda: [BackendSpec(name="NumPy", load=protocol_module)], r"backend name 'NumPy' is reserved"),
])
def test_a_bad_needle_backends_hook_is_isolated(fake, hook, message):
    fake(FakeEntryPoint("bad", "needle-bad", plugin(hook=hook)), good_ep())
    with pytest.warns(NeedlePluginWarning, match=r"plugin 'bad' from distribution 'needle-bad'.*" + message):
        assert backends.available_backends() == ["good", "numpy"]
    assert ndl.device("good").enabled()
    assert ndl.device("numpy").mod is numpy_backend  # a plugin cannot take over the reserved names
    assert_numpy_backend_works()


def test_a_plugin_module_without_a_hookimpl_is_reported(fake):
    undecorated = types.SimpleNamespace(needle_backends=lambda: [spec("x")])
    typo = types.SimpleNamespace(needle_backend=backends.hookimpl(lambda: [spec("y")]))
    fake(FakeEntryPoint("plain", "needle-plain", undecorated), FakeEntryPoint("typo", "needle-typo", typo))
    with pytest.warns(NeedlePluginWarning) as record:
        assert backends.available_backends() == ["numpy"]
    messages = [str(w.message) for w in record]
    assert "'plain'" in messages[0] and "defines no needle_backends() hook (decorate it with " \
        "@needle.backends.hookimpl)" in messages[0]
    assert "'typo'" in messages[1] and messages[1].endswith("it implements unknown hooks needle_backend; "
                                                            "the other backends still work")


def test_unreadable_entry_point_metadata_leaves_numpy_working(fake, monkeypatch):
    def corrupt():
        raise ValueError("malformed entry_points.txt in needle_junk-0.1.dist-info")
    monkeypatch.setattr(_registry, "_iter_entry_points", corrupt)
    with pytest.warns(NeedlePluginWarning, match=r"listing the entry points failed: ValueError: malformed"):
        assert backends.available_backends() == ["numpy"]
    assert_numpy_backend_works()
    monkeypatch.setenv("NEEDLE_PLUGINS_STRICT", "1")
    backends.reset()
    with pytest.raises(PluginLoadError, match="malformed"):
        backends.available_backends()


def test_a_plugin_looking_up_devices_during_discovery_is_isolated(fake):
    def hook():
        ndl.cpu_numpy().enabled()
        return [spec("eager")]
    fake(FakeEntryPoint("eager", "needle-eager", plugin(hook=hook)), good_ep())
    with pytest.warns(NeedlePluginWarning, match=r"'eager'.*RuntimeError: a plugin looked up a needle device while "
                                                 r"needle was discovering plugins"):
        assert backends.available_backends() == ["good", "numpy"]
    assert_numpy_backend_works()


def test_one_plugin_may_return_a_single_spec_or_several(fake):
    fake(FakeEntryPoint("one", "needle-one", plugin(hook=lambda: spec("solo"))),
         FakeEntryPoint("two", "needle-two", plugin(spec("first"), spec("second"))))
    with no_warnings():
        assert backends.available_backends() == ["first", "numpy", "second", "solo"]
    assert [r.backends for r in backends.registry.plugins] == [["numpy"], ["solo"], ["first", "second"]]


# ---- backends that fail when loaded ------------------------------------------------------------
def test_a_backend_whose_load_raises_is_a_disabled_device_with_the_cause(fake):
    def load():
        raise ModuleNotFoundError("No module named 'widgetlib'")
    fake(FakeEntryPoint("flaky", "needle-flaky", plugin(spec("flaky", load=load))), good_ep())
    with no_warnings():  # a backend that cannot run is not a plugin failure: no warning, no strict error
        dev = ndl.device("flaky")
        assert dev.enabled() is False
    assert dev.disabled_reason == ("backend 'flaky' from distribution 'needle-flaky' failed to load: "
                                   "ModuleNotFoundError: No module named 'widgetlib'; "
                                   "try `pip install --force-reinstall needle-flaky`")
    for use in (lambda: NDArray([1.0], device=dev), lambda: dev.ewise_add, lambda: dev.randn(2)):
        with pytest.raises(DeviceUnavailableError, match=r"device flaky\(\) is not available: .*widgetlib.*"
                                                         r"pip install --force-reinstall needle-flaky"):
            use()
    assert ndl.device("good").enabled()
    assert_numpy_backend_works()


@pytest.mark.parametrize("version, upgrade", [(99, "needle-core"), (0, "needle-odd"), (None, "needle-odd")])
def test_protocol_version_mismatch_names_plugin_and_both_versions(fake, version, upgrade):
    module = protocol_module(drop=("PROTOCOL_VERSION",) if version is None else ())
    if version is not None:
        module.PROTOCOL_VERSION = version
    fake(good_ep("odd", "needle-odd", module=module))
    dev = ndl.device("odd")
    assert not dev.enabled()
    if version is None:
        assert dev.disabled_reason == (
            f"backend 'odd' from distribution 'needle-odd' declares PROTOCOL_VERSION = None; it must be an int "
            f"(needle-core {ndl.__version__} speaks versions 1, 2)")
    else:
        assert dev.disabled_reason == (
            f"backend 'odd' from distribution 'needle-odd' implements backend protocol version {version}, but "
            f"needle-core {ndl.__version__} implements versions 1, 2; install matching "
            f"versions (`pip install --upgrade {upgrade}`)")
    assert protocol.SUPPORTED_PROTOCOLS == (1, 2)


def test_protocol_version_as_a_string_is_refused_with_its_repr(fake):
    module = protocol_module()
    module.PROTOCOL_VERSION = "1"
    fake(good_ep("odd", "needle-odd", module=module))
    assert ndl.device("odd").disabled_reason == (
        f"backend 'odd' from distribution 'needle-odd' declares PROTOCOL_VERSION = '1'; it must be an int "
        f"(needle-core {ndl.__version__} speaks versions 1, 2)")


def test_missing_required_kernels_are_listed(fake):
    fake(good_ep("thin", "needle-thin", module=protocol_module(drop=("matmul", "reduce_max"))))
    reason = ndl.device("thin").disabled_reason
    assert "backend 'thin' from distribution 'needle-thin' lacks required kernels: matmul, reduce_max" in reason


def test_unavailable_reason_disables_and_a_raising_probe_is_contained(fake):
    def probe():
        raise OSError("driver crashed")
    fake(good_ep("gpu", "needle-gpu", module=protocol_module(unavailable_reason=lambda: "no widget is attached")),
         good_ep("bad", "needle-bad", module=protocol_module(unavailable_reason=probe)))
    assert ndl.device("gpu").disabled_reason == "no widget is attached"
    assert ndl.device("bad").disabled_reason == ("backend 'bad' from distribution 'needle-bad' failed its "
                                                 "availability check: OSError: driver crashed")


def test_device_indices_bind_through_for_device_and_are_range_checked(fake):
    bound = {i: protocol_module(DEVICE_INDEX=i) for i in range(3)}
    multi = protocol_module(device_count=lambda: 2, for_device=bound.__getitem__)
    fake(good_ep("multi", "needle-multi", module=multi),
         good_ep("flat", "needle-flat", module=protocol_module(device_count=lambda: 2)),
         good_ep("none", "needle-none", module=protocol_module(device_count=lambda: 0)))
    assert ndl.device("multi").mod is multi  # index 0 is the module itself
    assert ndl.device("multi", 1).DEVICE_INDEX == 1 and repr(ndl.device("multi", 1)) == "multi(1)"
    assert ndl.device("multi", 1) != ndl.device("multi")
    assert ndl.device("multi", 2).disabled_reason == "device index 2 is out of range: backend 'multi' has 2 device(s)"
    assert ndl.device("flat", 1).disabled_reason == ("backend 'flat' has 2 devices but no for_device(index) "
                                                     "to bind device 1")
    assert ndl.device("none").disabled_reason == "backend 'none' reports no devices"
    with pytest.raises(ValueError, match="device index must be >= 0, got -1"):
        ndl.cuda(-1)
    with pytest.raises(TypeError, match="device index must be an int, got 1.5"):
        ndl.device("multi", 1.5)


# ---- duplicate names ---------------------------------------------------------------------------
def test_two_plugins_with_one_name_disable_that_name_and_nothing_else(fake):
    fake(good_ep("dup", "needle-dup-a"), good_ep(), FakeEntryPoint("dup", "needle-dup-b", plugin(spec("dup"))))
    with pytest.warns(NeedlePluginWarning, match=r"backend name 'dup' is claimed by more than one plugin: "
                                                 r"'needle-dup-a' .* and 'needle-dup-b' .*neither is used"):
        names = backends.available_backends()
    assert names == ["good", "numpy"]
    dev = ndl.device("dup")
    assert not dev.enabled()
    assert "'needle-dup-a'" in dev.disabled_reason and "'needle-dup-b'" in dev.disabled_reason
    with pytest.raises(DeviceUnavailableError, match="needle-dup-a.*needle-dup-b"):
        NDArray([1.0], device=dev)
    assert ndl.device("good").enabled()
    assert_numpy_backend_works()


def test_three_claimants_are_all_named_and_strict_mode_raises(fake, monkeypatch):
    fake(*[good_ep("dup", f"needle-dup-{c}") for c in "abc"])
    with pytest.warns(NeedlePluginWarning) as record:
        ndl.device("dup").enabled()
    assert len(record) == 1  # one warning per conflicted name, not one per extra claimant
    assert all(f"'needle-dup-{c}'" in str(record[0].message) for c in "abc")
    monkeypatch.setenv("NEEDLE_PLUGINS_STRICT", "yes")
    backends.reset()
    with pytest.raises(BackendConflictError, match="'needle-dup-a'.*'needle-dup-b'.*'needle-dup-c'"):
        ndl.device("dup").enabled()


def test_one_distribution_listed_twice_on_sys_path_is_loaded_once(fake):
    first, second = good_ep(), good_ep()
    fake(first, second)
    with no_warnings():
        assert ndl.device("good").enabled()
    assert (first.loads, second.loads) == (1, 0)


# ---- environment variables ---------------------------------------------------------------------
def test_autoload_disabled_loads_only_the_plugins_named(fake, monkeypatch):
    eps = fake(good_ep("alpha", "needle-alpha"), good_ep("beta", "needle-beta"), broken_ep())
    monkeypatch.setenv("NEEDLE_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("NEEDLE_PLUGINS", " alpha , Needle_Beta ")  # entry point or (normalised) distribution names
    with no_warnings():
        assert backends.available_backends() == ["alpha", "beta", "numpy"]
    assert [ep.loads for ep in eps] == [1, 1, 0]

    monkeypatch.delenv("NEEDLE_PLUGINS")
    backends.reset()
    with no_warnings():
        assert backends.available_backends() == ["numpy"]  # numpy is always there
    assert_numpy_backend_works()

    monkeypatch.setenv("NEEDLE_PLUGINS", "alpha,gamma")
    backends.reset()
    with pytest.warns(NeedlePluginWarning, match=r"NEEDLE_PLUGINS names 'gamma'.*installed entry points: alpha, "
                                                 r"beta, broken"):
        assert backends.available_backends() == ["alpha", "numpy"]
    from needle import __main__ as cli
    assert cli.render(cli.collect()).splitlines()[-1] == (
        "Warning: NEEDLE_PLUGINS names gamma, which match no installed entry point or distribution")


def test_needle_plugins_without_disabling_autoload_changes_nothing(fake, monkeypatch):
    fake(good_ep("alpha", "needle-alpha"), good_ep("beta", "needle-beta"))
    monkeypatch.setenv("NEEDLE_PLUGINS", "alpha")
    monkeypatch.setenv("NEEDLE_DISABLE_PLUGIN_AUTOLOAD", "off")
    assert backends.available_backends() == ["alpha", "beta", "numpy"]


def test_needle_backend_values(fake, monkeypatch):
    fake(good_ep("cpu", "needle-cpu"), good_ep())
    cases = {"numpy": "cpu_numpy()", "NP": "cpu_numpy()", "cpu_numpy": "cpu_numpy()", "": "cpu()", "nd": "cpu()",
             "cpu": "cpu()", " Good ": "good()"}
    for value, expected in cases.items():
        requested(monkeypatch, value)
        assert repr(ndl.default_device()) == expected, value
        assert ndl.default_device() is ndl.default_device()
        # Tensors and arrays without a device land there.
        assert NDArray([1.0]).device == ndl.default_device() == ndl.Tensor([1.0]).device
    requested(monkeypatch, "numpy")
    assert ndl.cpu() == ndl.cpu_numpy()  # NEEDLE_BACKEND=numpy also makes cpu() numpy
    assert ndl.device("cpu").enabled() and ndl.device("cpu") != ndl.cpu()  # device("cpu") stays needle-cpu


def test_needle_backend_naming_nothing_installed_lists_what_is(fake, monkeypatch):
    fake(good_ep())
    requested(monkeypatch, "bogus")
    with pytest.raises(DeviceUnavailableError, match=r"NEEDLE_BACKEND='bogus' names no installed backend; valid "
                                                     r"values here: numpy \(or np\), nd, good; unset it"):
        ndl.default_device()
    requested(monkeypatch, "cuda")
    with pytest.raises(DeviceUnavailableError, match=r"'cuda' names no installed backend \(`pip install "
                                                     r"needle-cuda\[cuda12\]"):
        ndl.default_device()
    assert ndl.cpu_numpy().enabled()  # the error is about the default, not about needle


def test_needle_backend_naming_a_disabled_backend_says_why(fake, monkeypatch):
    fake(good_ep("gpu", "needle-gpu", module=protocol_module(unavailable_reason=lambda: "no widget is attached")))
    requested(monkeypatch, "gpu")
    with pytest.raises(DeviceUnavailableError, match=r"NEEDLE_BACKEND='gpu' picks gpu\(\), which is not available: "
                                                     r"no widget is attached"):
        ndl.default_device()


# ---- devices -----------------------------------------------------------------------------------
def test_cpu_is_native_when_usable_else_numpy(fake):
    assert ndl.cpu() == ndl.cpu_numpy() and repr(ndl.cpu()) == "cpu_numpy()"  # needle-cpu not installed
    assert not ndl.device("cpu").enabled()
    assert "pip install needle-cpu" in ndl.device("cpu").disabled_reason

    fake(good_ep("cpu", "needle-cpu"))
    assert ndl.cpu() is ndl.device("cpu") and repr(ndl.cpu()) == "cpu()" and ndl.cpu() != ndl.cpu_numpy()
    assert ndl.device("nd") is ndl.cpu()

    def load():
        raise ImportError("undefined symbol: _ZN6needle4gemm")
    fake(FakeEntryPoint("cpu", "needle-cpu", plugin(spec("cpu", load=load))))
    with pytest.warns(NeedlePluginWarning, match=r"needle-cpu is installed but cannot be used .*undefined symbol.*"
                                                 r"ndl.cpu\(\) is the numpy backend"):
        assert ndl.cpu() == ndl.cpu_numpy()
    with no_warnings():
        assert ndl.cpu() == ndl.cpu_numpy()  # said once


def test_cuda_can_always_be_called(fake):
    dev = ndl.cuda()
    assert repr(dev) == "cuda()" and dev == ndl.cuda(0) == ndl.device("cuda") and repr(ndl.cuda(1)) == "cuda(1)"
    assert dev.enabled() is False
    assert dev.disabled_reason.startswith("no backend named 'cuda' is installed; install it with "
                                          "`pip install needle-cuda[cuda12]")
    with pytest.raises(DeviceUnavailableError, match=r"device cuda\(\) is not available: .*pip install needle-cuda"):
        ndl.init.rand(2, 3, device=dev)


def test_device_identity_equality_copy_and_pickle(fake):
    fake(good_ep())
    dev = ndl.device("good")
    assert ndl.device(dev) is dev and ndl.device("numpy") is ndl.cpu_numpy() is ndl.device("np")
    assert {dev, ndl.device("good"), ndl.cpu_numpy()} == {dev, ndl.cpu_numpy()}
    assert copy.copy(dev) is dev and copy.deepcopy([dev])[0] is dev
    assert pickle.loads(pickle.dumps(dev)) is dev
    assert pickle.loads(pickle.dumps(ndl.cpu_numpy())) is ndl.cpu_numpy()
    with pytest.raises(TypeError, match="name must be a str"):
        ndl.device(3)
    with pytest.raises(ValueError, match="numpy backend has one device"):
        ndl.device("numpy", 1)


def test_a_disabled_device_answers_probes_with_attribute_error(fake):
    dev = ndl.cuda()
    assert not hasattr(dev, "__array_interface__") and not hasattr(dev, "_repr_html_")
    assert not hasattr(ndl.cpu_numpy(), "__file__")  # never the module's identity
    assert copy.deepcopy(dev) is dev and pickle.loads(pickle.dumps(dev)) == dev


def test_all_devices_lists_each_backend_enabled_or_not(fake):
    fake(good_ep(), good_ep("gpu", "needle-gpu", module=protocol_module(unavailable_reason=lambda: "no widget")))
    devices = ndl.all_devices()
    assert devices == [ndl.device("good"), ndl.device("gpu"), ndl.cpu_numpy()]
    assert [d.enabled() for d in devices] == [True, False, True]


# ---- in-process plugins ------------------------------------------------------------------------
def test_register_plugin_in_process_and_conflicts_raise(fake):
    fake(good_ep())
    assert not ndl.device("extra").enabled()  # looked up (and cached as missing) before registering
    backends.register_plugin(plugin(spec("extra")), name="extra-plugin")
    assert ndl.device("extra").enabled()
    with pytest.raises(BackendConflictError, match=r"cannot register backend 'good': it is already provided by "
                                                   r"'needle-good' \(entry point 'good'"):
        backends.register_plugin(plugin(spec("good")), name="intruder")
    with pytest.raises(PluginLoadError, match=r"reserved"):
        backends.register_plugin(plugin(spec("numpy")), name="intruder")
    assert ndl.device("good").enabled() and backends.available_backends() == ["extra", "good", "numpy"]
    backends.unregister_plugin("extra-plugin")
    assert backends.available_backends() == ["good", "numpy"] and not ndl.device("extra").enabled()


# ---- python -m needle (in-process; the subprocess run is in test_registry_cli.py) -----------------
def test_report_lists_backends_status_reasons_errors_and_conflicts(fake, capsys):
    from needle import __main__ as cli
    fake(good_ep(), broken_ep(), good_ep("dup", "needle-dup-a"), good_ep("dup", "needle-dup-b"),
         good_ep("gpu", "needle-gpu", module=protocol_module(unavailable_reason=lambda: "no widget is attached")))
    assert cli.main([]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # plugin warnings are shown in the report, not as Python warnings
    lines = out.splitlines()
    assert lines[0].startswith(f"needle-core {ndl.__version__} (Python ")
    header = next(line for line in lines if line.split()[:2] == ["BACKEND", "DEVICE"])
    rows = {line.split()[0]: line for line in lines[lines.index(header) + 1:] if line.strip()}
    assert rows["numpy"].split()[:5] == ["numpy", "cpu_numpy()", "needle-core", ndl.__version__, "enabled"]
    assert rows["numpy"].endswith("float32, float64, int32, int64, uint8, bool")
    assert rows["good"].split()[:4] == ["good", "good()", "needle-good", "enabled"]
    assert rows["gpu"].split()[:4] == ["gpu", "gpu()", "needle-gpu", "disabled"] and rows["gpu"].endswith(
        "no widget is attached")
    assert rows["dup"].split()[:5] == ["dup", "dup()", "needle-dup-a,", "needle-dup-b", "disabled"]
    assert rows["cpu"].split()[:4] == ["cpu", "cpu()", "-", "disabled"] and "not installed: pip install needle-cpu" in \
        rows["cpu"]
    assert "cuda" in rows
    # The table is aligned: every STATUS cell starts under the STATUS header.
    column = header.index("STATUS")
    assert all(rows[n][column:].split()[0] in ("enabled", "disabled") for n in ("numpy", "good", "gpu", "cpu"))
    assert "Default device: cpu_numpy() (NEEDLE_BACKEND unset)" in lines
    assert ("  broken (needle-broken): importing 'needle_broken._plugin' failed: ImportError: libbroken.so: cannot "
            "open shared object file") in lines
    assert "  dup: needle-dup-a and needle-dup-b" in lines


def test_report_as_json(fake, capsys, monkeypatch):
    import json

    from needle import __main__ as cli
    fake(good_ep(), broken_ep())
    requested(monkeypatch, "bogus")
    monkeypatch.setenv("NEEDLE_PLUGINS_STRICT", "1")  # the report shows strict-mode failures, it does not die
    assert cli.main(["--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["needle_core"] == ndl.__version__ and info["distributions"]["needle-core"] == ndl.__version__
    by_name = {b["name"]: b for b in info["backends"]}
    assert by_name["good"]["enabled"] is True and by_name["good"]["distribution"] == "needle-good"
    assert by_name["numpy"]["dtypes"] == ["float32", "float64", "int32", "int64", "uint8", "bool"]
    assert set(by_name["numpy"]["optional_kernels"]) <= set(protocol.OPTIONAL_KERNELS + protocol.OPTIONAL_KERNELS_V2)
    assert by_name["cuda"] == {"name": "cuda", "device": "cuda()", "distribution": None, "version": None,
                               "enabled": False, "reason": "not installed: " + _registry.INSTALL_HINTS["cuda"],
                               "description": ""}
    assert info["plugin_errors"] == [{"entry_point": "broken", "distribution": "needle-broken",
                                      "error": "importing 'needle_broken._plugin' failed: ImportError: libbroken.so: "
                                               "cannot open shared object file"}]
    assert info["default_device"] is None and "NEEDLE_BACKEND='bogus'" in info["default_device_error"]
    assert info["environment"] == {"NEEDLE_BACKEND": "bogus", "NEEDLE_PLUGINS_STRICT": "1"} and info["strict"]
    assert cli.main(["info", "--json"]) == 0 and json.loads(capsys.readouterr().out)["backends"]


# ---- hostile plugins (issue 17) -------------------------------------------------------------------
class BlockingEntryPoint(FakeEntryPoint):
    """An entry point whose import blocks until ``release`` is set (a plugin waiting on a lock forever)."""

    def __init__(self, name, dist):
        super().__init__(name, dist, plugin(spec(name)))
        self.release, self.started = threading.Event(), threading.Event()

    def load(self):
        self.started.set()
        if not self.release.wait(10):  # a bound so that a needle without the time limit fails, not hangs
            raise TimeoutError("nobody waited for this import to time out")
        return super().load()


@pytest.fixture
def blocking(fake, monkeypatch):
    monkeypatch.setenv("NEEDLE_PLUGIN_TIMEOUT", "0.2")
    ep = BlockingEntryPoint("stuck", "needle-stuck")
    yield ep
    ep.release.set()  # let the abandoned import thread finish


def test_a_plugin_whose_import_blocks_is_reported_after_the_time_limit(fake, blocking):
    fake(blocking, good_ep())
    with pytest.warns(NeedlePluginWarning, match=r"plugin 'stuck' from distribution 'needle-stuck' could not be "
                                                 r"loaded: importing 'needle_stuck._plugin' did not finish within "
                                                 r"0.2 seconds .*NEEDLE_PLUGIN_TIMEOUT"):
        assert backends.available_backends() == ["good", "numpy"]
    assert blocking.started.is_set()
    assert ndl.device("good").enabled()
    assert_numpy_backend_works()
    assert "did not finish within 0.2 seconds" in ndl.device("stuck").disabled_reason


def test_a_blocking_import_in_strict_mode_raises(fake, blocking, monkeypatch):
    monkeypatch.setenv("NEEDLE_PLUGINS_STRICT", "1")
    fake(blocking)
    with pytest.raises(PluginLoadError, match=r"'needle-stuck'.*did not finish within 0.2 seconds"):
        ndl.device("stuck").enabled()


def test_plugin_timeout_zero_imports_in_the_calling_thread_and_garbage_warns(fake, monkeypatch):
    threads = []

    def hook():
        threads.append(threading.current_thread())
        return [spec("here")]
    ep = FakeEntryPoint("here", "needle-here", plugin(hook=hook))
    original_load = ep.load
    ep.load = lambda: (threads.append(threading.current_thread()), original_load())[1]
    fake(ep)
    monkeypatch.setenv("NEEDLE_PLUGIN_TIMEOUT", "0")
    assert backends.available_backends() == ["here", "numpy"]
    assert threads == [threading.main_thread(), threading.main_thread()]
    for garbage in ("soon", "-1", "nan"):
        monkeypatch.setenv("NEEDLE_PLUGIN_TIMEOUT", garbage)
        backends.reset()
        with pytest.warns(NeedlePluginWarning, match=rf"NEEDLE_PLUGIN_TIMEOUT='{garbage}' is not a number of "
                                                     rf"seconds >= 0; using 30"):
            assert backends.available_backends() == ["here", "numpy"]
    assert threads[-2] is not threading.main_thread()  # the import ran in a helper thread
    monkeypatch.setenv("NEEDLE_PLUGIN_TIMEOUT", "inf")
    assert _registry.plugin_timeout() is None
    monkeypatch.delenv("NEEDLE_PLUGIN_TIMEOUT")
    assert _registry.plugin_timeout() == _registry.DEFAULT_PLUGIN_TIMEOUT


def test_a_plugin_looking_up_devices_during_its_import_fails_fast(fake):
    def load():
        ndl.cpu_numpy().enabled()  # runs in the import thread: must raise, not wait for discovery
    ep = FakeEntryPoint("eager", "needle-eager")
    ep.load = load
    fake(ep, good_ep())
    with pytest.warns(NeedlePluginWarning, match=r"'eager'.*RuntimeError: a plugin looked up a needle device while "
                                                 r"needle was discovering plugins"):
        assert backends.available_backends() == ["good", "numpy"]


def test_system_exit_in_a_plugin_is_contained_like_any_failure(fake):
    def exits():
        raise SystemExit(3)

    def exiting_load():
        raise SystemExit("backend says bye")
    fake(FakeEntryPoint("quitter", "needle-quitter", error=SystemExit(3)),
         FakeEntryPoint("hookexit", "needle-hookexit", plugin(hook=exits)),
         FakeEntryPoint("loadexit", "needle-loadexit", plugin(spec("loadexit", load=exiting_load))), good_ep())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert backends.available_backends() == ["good", "loadexit", "numpy"]
    messages = [str(w.message) for w in caught if issubclass(w.category, NeedlePluginWarning)]
    assert any("'needle-quitter'" in m and "importing 'needle_quitter._plugin' failed: SystemExit: 3" in m
               for m in messages), messages
    assert any("'needle-hookexit'" in m and "needle_backends() raised SystemExit: 3" in m for m in messages), messages
    assert ndl.device("loadexit").disabled_reason.startswith(
        "backend 'loadexit' from distribution 'needle-loadexit' failed to load: SystemExit: backend says bye")
    assert_numpy_backend_works()


def test_keyboard_interrupt_in_a_plugin_import_is_re_raised_naming_the_plugin(fake):
    fake(FakeEntryPoint("ctrlc", "needle-ctrlc", error=KeyboardInterrupt()), good_ep())
    with pytest.raises(KeyboardInterrupt) as info:
        backends.available_backends()
    notes = getattr(info.value, "__notes__", [])
    if sys.version_info >= (3, 11):
        assert notes == ["while needle was importing plugin 'needle-ctrlc' (entry point 'ctrlc' -> "
                         "needle_ctrlc._plugin)"]
    assert not backends.registry._discovered  # the next lookup discovers again
    fake(good_ep())
    assert backends.available_backends() == ["good", "numpy"]


def test_a_device_of_a_plugin_that_failed_to_load_says_so_and_why(fake, monkeypatch):
    fake(FakeEntryPoint("cpu", "needle-cpu", error=ImportError("libneedle_cpu.so: undefined symbol: foo")),
         FakeEntryPoint("other", "needle-other", error=ValueError("bad config")))
    with pytest.warns(NeedlePluginWarning):
        reason = ndl.device("cpu").disabled_reason
    assert reason == ("backend 'cpu' is unavailable: plugin 'needle-cpu' (entry point 'cpu' -> needle_cpu._plugin) "
                      "failed to load: importing 'needle_cpu._plugin' failed: ImportError: libneedle_cpu.so: "
                      "undefined symbol: foo; try `pip install --force-reinstall needle-cpu`")
    # A name no failed plugin matches: not installed, and the failures are listed.
    reason = ndl.device("tpu").disabled_reason
    assert reason.startswith("no backend named 'tpu' is installed (installed: numpy); plugins that failed to load: ")
    assert "'needle-other' (entry point 'other' -> needle_other._plugin): importing" in reason
    assert "ValueError: bad config" in reason
    requested(monkeypatch, "cpu")
    with pytest.warns(NeedlePluginWarning):
        with pytest.raises(DeviceUnavailableError, match=r"NEEDLE_BACKEND='cpu' picks cpu\(\), which is not available: "
                                                         r"backend 'cpu' is unavailable: plugin 'needle-cpu'"):
            backends.default_device()
