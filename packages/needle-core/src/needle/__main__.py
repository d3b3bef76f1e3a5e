"""``python -m needle``: what is installed, which backends work here, and why the others do not.

``python -m needle`` (or ``python -m needle info``) prints a short report; ``--json`` prints the
same facts for machines. The exit status is 0 whenever the report could be made: a broken plugin
is something the report shows, not a failure of the command.

``python -m needle check NAME`` loads one backend through the registry, lists the kernels it
provides and those core falls back on, and runs a smoke test of NDArray operations against
numpy. Its exit status is 0 only when the backend loads and every smoke check passes.
"""
import argparse
import importlib.metadata
import json
import os
import platform
import sys
import warnings

import numpy as np


def _needle_distributions():
    """``{name: version}`` of installed distributions named ``needle-*`` (first on sys.path wins)."""
    found = {}
    for dist in importlib.metadata.distributions():
        name = (dist.metadata["Name"] or "").strip()
        key = name.lower().replace("_", "-")
        if key.startswith("needle-") and key not in found:
            found[key] = dist.version
    return dict(sorted(found.items()))


def collect():
    """The report as plain data (what ``--json`` prints)."""
    from . import __version__, _env, backends
    from ._registry import INSTALL_HINTS, registry

    versions = _needle_distributions()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # every problem a warning would tell is in the report itself
        registry.discover(strict=False)  # report strict-mode failures instead of dying on them
        rows = []
        for name in registry.names():
            dev = backends.cpu_numpy() if name == "numpy" else backends.device(name)
            spec = registry.specs[name]
            reason = dev.disabled_reason
            row = {"name": name, "device": repr(dev), "distribution": spec.distribution,
                   "version": versions.get(spec.distribution.lower().replace("_", "-")),
                   "enabled": reason is None, "reason": reason, "description": spec.description}
            if reason is None:
                from .backend_ndarray import protocol
                row["dtypes"] = list(dev.dtypes)
                row["protocol"] = getattr(dev.backend, "PROTOCOL_VERSION", None)
                row["optional_kernels"] = protocol.optional_kernels(dev.backend)
            rows.append(row)
        for name in sorted(registry.conflicts):
            rows.append({"name": name, "device": repr(backends.device(name)),
                         "distribution": ", ".join(r.distribution for r in registry.conflicts[name]),
                         "version": None, "enabled": False, "reason": registry.conflict_message(name),
                         "description": ""})
        for name, hint in INSTALL_HINTS.items():
            if name not in registry.specs and name not in registry.conflicts:
                rows.append({"name": name, "device": f"{name}()", "distribution": None, "version": None,
                             "enabled": False, "reason": f"not installed: {hint}", "description": ""})
        try:
            default, default_error = repr(backends.default_device()), None
        except Exception as exc:  # NEEDLE_BACKEND names something unusable: show it, do not die
            default, default_error = None, str(exc)
    return {
        "needle_core": __version__,
        "python": platform.python_version(),
        "executable": sys.executable,
        "distributions": versions,
        **dict(zip(("requires", "protocols", "compatibility"), version_ranges(versions))),
        "backends": rows,
        "default_device": default,
        "default_device_error": default_error,
        "plugin_errors": [{"entry_point": n, "distribution": d, "error": e} for n, d, e in registry.plugin_errors],
        "conflicts": {n: [r.distribution for r in rs] for n, rs in sorted(registry.conflicts.items())},
        "unmatched_plugins": list(registry.unmatched),
        "environment": {name: os.environ[name] for name in _env.ALL if name in os.environ},
        "strict": _env.flag(_env.NEEDLE_PLUGINS_STRICT),
    }


def _table(rows, headers):
    widths = [max(len(str(r[i])) for r in rows + [headers]) for i in range(len(headers))]
    lines = ["  " + "  ".join(str(h).ljust(w) for h, w in zip(headers, widths)).rstrip()]
    for r in rows:
        lines.append("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    return lines


# ---- declared version ranges --------------------------------------------------------------------
# Each needle-* distribution declares the needle-* versions it works with (Requires-Dist) and each
# backend the protocol versions it implements (entry point group "needle.protocol" -> (oldest, newest)).
# `packaging` reads the ranges when it is installed; needle-core does not depend on it, so a small
# fallback handles the plain X.Y[.Z] clauses the packages use.
_OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
        "==": lambda a, b: a == b, "!=": lambda a, b: a != b}


def _release(text):
    parts = tuple(int(p) for p in text.strip().split("."))
    while len(parts) > 1 and parts[-1] == 0:  # 0.1 == 0.1.0
        parts = parts[:-1]
    return parts


def _in_range(version, specifier):
    """True or False when ``version`` is inside ``specifier`` (e.g. ">=0.1,<0.2"); None when unreadable."""
    try:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
        from packaging.version import InvalidVersion
    except ImportError:
        try:
            clauses = [c.strip() for c in specifier.split(",") if c.strip()]
            ops = [next(o for o in ("<=", ">=", "==", "!=", "<", ">") if c.startswith(o)) for c in clauses]
            return all(_OPS[o](_release(version), _release(c[len(o):])) for o, c in zip(ops, clauses))
        except (StopIteration, ValueError):
            return None
    try:
        return SpecifierSet(specifier).contains(version, prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        return None


def _needle_requirements(name):
    """``{needle-dist: specifier}`` that distribution ``name`` requires unconditionally."""
    import re

    found = {}
    for line in importlib.metadata.requires(name) or []:
        requirement, _, marker = line.partition(";")
        if marker.strip():  # extras and platform-only lines never name needle distributions
            continue
        head = re.sub(r"\[[^\]]*\]", "", requirement).strip()  # drop extras: needle-cuda[cuda12]>=0.1
        cut = next((i for i, ch in enumerate(head) if ch in "<>=!~( "), len(head))
        dep = head[:cut].strip().lower().replace("_", "-")
        if dep.startswith("needle-"):
            found[dep] = head[cut:].strip().strip("()").strip()
    return found


def version_ranges(versions):
    """``(requires, protocols, problems)`` for the installed ``{dist: version}``.

    ``requires``: ``{dist: {needle dependency: specifier}}``; ``protocols``: ``{backend: [oldest, newest]}``;
    ``problems``: sentences, one per installed combination outside a declared range.
    """
    from .backend_ndarray.protocol import SUPPORTED_PROTOCOLS

    requires, protocols, problems = {}, {}, []
    for name, version in versions.items():
        try:
            requires[name] = _needle_requirements(name)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover  (uninstalled meanwhile)
            continue
        for dep, spec in requires[name].items():
            if dep not in versions:
                problems.append(f"{name} {version} needs {dep}{spec}, which is not installed")
            elif spec and _in_range(versions[dep], spec) is False:
                problems.append(f"{name} {version} needs {dep}{spec}, but {dep} {versions[dep]} is installed")
    eps = importlib.metadata.entry_points()
    eps = eps.select(group="needle.protocol") if hasattr(eps, "select") else eps.get("needle.protocol", ())
    for ep in eps:
        dist = getattr(getattr(ep, "dist", None), "name", None) or ep.value.split(".")[0]
        try:
            oldest, newest = (int(v) for v in ep.load())
        except Exception as exc:  # a broken claim is reported, never fatal
            problems.append(f"backend {ep.name} ({dist}): cannot read its protocol range {ep.value}: {exc}")
            continue
        protocols[ep.name] = [oldest, newest]
        if not any(oldest <= v <= newest for v in SUPPORTED_PROTOCOLS):
            spoken = "..".join(map(str, (min(SUPPORTED_PROTOCOLS), max(SUPPORTED_PROTOCOLS))))
            problems.append(f"backend {ep.name} ({dist}) implements protocol {oldest}..{newest}, but this "
                            f"needle-core speaks protocol {spoken}")
    return requires, protocols, problems


def _render_distributions(info):
    """The Distributions table with each one's declared needle ranges, then any combination outside them."""
    rows = [[n, v, ", ".join(f"{d}{s}" for d, s in info.get("requires", {}).get(n, {}).items()) or "-"]
            for n, v in info["distributions"].items()]
    out = _table(rows, ["NAME", "VERSION", "REQUIRES"])
    if info.get("protocols"):
        from .backend_ndarray.protocol import SUPPORTED_PROTOCOLS
        out.append("  backend protocol ranges: " + ", ".join(f"{b} {lo}..{hi}" for b, (lo, hi) in
                                                             info["protocols"].items())
                   + f" (needle-core speaks {', '.join(map(str, SUPPORTED_PROTOCOLS))})")
    problems = info.get("compatibility", [])
    out += [f"  OUTSIDE DECLARED RANGES: {p}" for p in problems] or ["  every installed combination is inside "
                                                                      "the declared ranges"]
    return out


def render(info):
    """The human-readable report."""
    out = [f"needle-core {info['needle_core']} (Python {info['python']}, {info['executable']})", "",
           "Distributions:"]
    out += _render_distributions(info)
    out += ["", "Backends:"]
    rows = []
    for b in info["backends"]:
        dist = b["distribution"] or "-"
        if b["version"]:
            dist += f" {b['version']}"
        status = "enabled" if b["enabled"] else "disabled"
        detail = ", ".join(b.get("dtypes", [])) if b["enabled"] else b["reason"]
        rows.append([b["name"], b["device"], dist, status, detail])
    out += _table(rows, ["BACKEND", "DEVICE", "DISTRIBUTION", "STATUS", "DTYPES / REASON"])
    out.append("")
    requested = info["environment"].get("NEEDLE_BACKEND")
    picked = f"NEEDLE_BACKEND={requested}" if requested else "NEEDLE_BACKEND unset"
    if info["default_device"] is not None:
        out.append(f"Default device: {info['default_device']} ({picked})")
    else:
        out.append(f"Default device: error: {info['default_device_error']}")
    if info["environment"]:
        out.append("Environment: " + " ".join(f"{k}={v}" for k, v in info["environment"].items()))
    if info["plugin_errors"]:
        out += ["", "Plugin errors (these plugins were skipped):"]
        for e in info["plugin_errors"]:
            out.append(f"  {e['entry_point']} ({e['distribution']}): {e['error']}")
    if info["conflicts"]:
        out += ["", "Backend name conflicts (these names are unusable):"]
        for name, dists in info["conflicts"].items():
            out.append(f"  {name}: {' and '.join(dists)}")
    if info["unmatched_plugins"]:
        out.append(f"Warning: NEEDLE_PLUGINS names {', '.join(info['unmatched_plugins'])}, which match no "
                   f"installed entry point or distribution")
    if info["strict"] and (info["plugin_errors"] or info["conflicts"]):
        out.append("NEEDLE_PLUGINS_STRICT is set: needle raises on these at the first device lookup.")
    return "\n".join(out)


# ---- `check NAME` -------------------------------------------------------------------------------
def _smoke_cases(nd, dev, dtype):
    """``(label, thunk)`` pairs; each thunk returns (needle result as numpy, numpy's answer)."""
    rng = np.random.RandomState(0)
    x = rng.uniform(-2, 2, (4, 6)).astype(dtype)
    y = rng.uniform(-2, 2, (4, 6)).astype(dtype)
    y[:, ::3] = x[:, ::3]  # ties, so the comparisons see equal elements
    row = rng.uniform(-2, 2, (1, 6)).astype(dtype)
    m, k = rng.uniform(-1, 1, (5, 7)).astype(dtype), rng.uniform(-1, 1, (7, 3)).astype(dtype)

    def arr(a):
        return nd.NDArray(a, device=dev, dtype=dtype)

    def compact_of(view):
        out = view.compact()
        if not out.is_compact():
            raise AssertionError("compact() returned a non-compact array")
        return out.numpy()

    def setitem():
        a = arr(x)
        a[1:4:2, ::2] = arr(y[1:4:2, ::2] * 3)
        a[:, 5] = 7.0
        expected = x.copy()
        expected[1:4:2, ::2] = y[1:4:2, ::2] * 3
        expected[:, 5] = 7.0
        return a.numpy(), expected

    return [
        ("round trip (from_numpy, to_numpy)", lambda: (arr(x).numpy(), x)),
        ("compact of a transposed view", lambda: (compact_of(arr(x).permute((1, 0))), x.T)),
        ("compact of a sliced view (offset, step)", lambda: (compact_of(arr(x)[1:3, 1::2]), x[1:3, 1::2])),
        ("ewise add, with a broadcast row", lambda: ((arr(x) + arr(y) + arr(row)).numpy(), x + y + row)),
        ("scalar mul, add, div, power", lambda: ((((arr(x) * 2.5 + 1.0) / 4.0) ** 2.0).numpy(),
                                                  ((x * 2.5 + 1) / 4) ** 2)),
        # A mask as 1.0/0.0 (protocol 1) or bool (protocol 2): compared as numbers of dtype either way.
        ("comparisons (>=, ==)", lambda: ((arr(x) >= arr(y)).numpy().astype(dtype) + (arr(x) == arr(y)).numpy()
                                          .astype(dtype), (x >= y).astype(dtype) + (x == y).astype(dtype))),
        ("exp, log, tanh", lambda: ((arr(x).exp() + (arr(x) * arr(x) + 1.0).log() + arr(x).tanh()).numpy(),
                                    np.exp(x) + np.log(x * x + 1) + np.tanh(x))),
        ("matmul (5x7 @ 7x3)", lambda: ((arr(m) @ arr(k)).numpy(), m @ k)),
        ("reduce sum over axis 1", lambda: (arr(x).sum(axis=1).numpy(), x.sum(axis=1))),
        ("reduce max over axis 0", lambda: (arr(x).max(axis=0).numpy(), x.max(axis=0))),
        ("setitem of a strided slice, and of a scalar", setitem),
    ]


def _smoke_test(dev, dtype):
    """``(label, None or why it failed)`` per smoke case, in order."""
    from . import backend_ndarray as nd
    from ._registry import describe_exception
    rtol = {"float64": 1e-10, "float16": 2e-2}.get(dtype, 1e-5)
    results = []
    for label, case in _smoke_cases(nd, dev, dtype):
        try:
            got, expected = case()
            got = np.asarray(got)
            if got.dtype != np.dtype(dtype):
                raise AssertionError(f"result has dtype {got.dtype}, expected {dtype}")
            np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol)
            results.append((label, None))
        except Exception as exc:  # a kernel bug is a FAIL line, not a crash of the command
            detail = describe_exception(exc)
            results.append((label, " ".join(detail.split())[:300]))
    return results


def _kernel_values(dtype, seed, small=False):
    """12 values of ``dtype`` for the kernel smoke checks: integers include the type's extremes
    (so sums and products wrap) unless ``small`` (then every value survives a cast to float32 and back)."""
    rng = np.random.RandomState(seed)
    if dtype == "bool":
        return rng.randint(0, 2, 12).astype(bool)
    if dtype in ("float32", "float64"):
        return rng.uniform(-3, 3, 12).astype(dtype)
    info = np.iinfo(dtype)
    x = rng.randint(max(int(info.min), -100), 101, 12).astype(dtype)
    if not small:
        x[:2] = info.max, info.min
    return x


def _kernel_smoke_cases(dev, dtype):
    """``(label, thunk)`` pairs on the raw protocol-2 kernels of ``dtype`` (no NDArray): each thunk
    returns (the kernels' result as numpy, numpy's answer)."""
    from .backend_ndarray.protocol import FLOAT_DTYPES
    dev = dev.backend  # the raw kernels
    x, y = _kernel_values(dtype, 1), _kernel_values(dtype, 2)
    y[::3] = x[::3]  # ties
    small = _kernel_values(dtype, 3, small=True)

    def buf(a, dt=dtype):
        out = dev.Array(a.size, dt)
        dev.from_numpy(np.ascontiguousarray(a, dtype=dt), out)
        return out

    def read(b):
        return np.asarray(dev.to_numpy(b, (b.size,), (1,), 0))

    def run(kernel, *args, size=12, out_dtype=dtype):
        out = dev.Array(size, out_dtype)
        kernel(*args, out)
        return read(out)

    def compact():
        out = dev.Array(6, dtype)
        dev.compact(buf(x), out, (3, 2), (4, 2), 1)
        view = x[[1 + 4 * i + 2 * j for i in range(3) for j in range(2)]]  # shape (3, 2), strides (4, 2), offset 1
        return np.concatenate([read(buf(x)), read(out)]), np.concatenate([x, view])

    def where_min():
        cond = x > y
        got = [run(dev.where, buf(cond, "bool"), buf(x), buf(y)), run(dev.ewise_minimum, buf(x), buf(y)),
               run(lambda a, o: dev.reduce_min(a, o, 4), buf(x), size=3)]
        return np.concatenate(got), np.concatenate([np.where(cond, x, y), np.minimum(x, y), x.reshape(3, 4).min(1)])

    def args():
        got = [run(lambda a, o, kernel=kernel: kernel(a, o, 4), buf(x), size=3, out_dtype="int64")
               for kernel in (dev.reduce_argmax, dev.reduce_argmin)]
        return np.concatenate(got), np.concatenate([x.reshape(3, 4).argmax(1), x.reshape(3, 4).argmin(1)])

    cases = [
        ("(kernels) round trip, compact of a strided view", compact),
        ("(kernels) comparisons write bool", lambda: (
            np.concatenate([run(dev.ewise_ge, buf(x), buf(y), out_dtype="bool"),
                            run(dev.scalar_eq, buf(x), x[0].item(), out_dtype="bool")]),
            np.concatenate([x >= y, x == x[0]]))),
        ("(kernels) cast to float32 and back", lambda: (
            run(dev.cast, buf(run(dev.cast, buf(small), out_dtype="float32"), "float32")), small)),
        ("(kernels) where, minimum, reduce_min", where_min),
        ("(kernels) argmax, argmin into int64", args),
    ]
    if dtype != "bool":
        cases.append(("(kernels) add, mul, sum (integers wrap)", lambda: (
            np.concatenate([run(dev.ewise_add, buf(x), buf(y)), run(dev.ewise_mul, buf(x), buf(y)),
                            run(lambda a, o: dev.reduce_sum(a, o, 4), buf(x), size=3)]),
            np.concatenate([x + y, x * y, x.reshape(3, 4).sum(1, dtype=dtype)]))))
    if dtype not in FLOAT_DTYPES:
        cases.append(("(kernels) and, or, xor, not", lambda: (
            np.concatenate([run(dev.ewise_and, buf(x), buf(y)), run(dev.ewise_or, buf(x), buf(y)),
                            run(dev.ewise_xor, buf(x), buf(y)), run(dev.ewise_not, buf(x))]),
            np.concatenate([x & y, x | y, x ^ y, ~x]))))
    return cases


def _kernel_smoke_test(dev, dtype):
    """``(label, None or why it failed)`` per kernel smoke case of ``dtype``, in order."""
    from ._registry import describe_exception
    results = []
    for label, case in _kernel_smoke_cases(dev, dtype):
        try:
            with np.errstate(over="ignore"):  # numpy's own answer wraps too
                got, expected = case()
            expected = np.asarray(expected)
            got = np.asarray(got)
            if got.dtype != expected.dtype:
                raise AssertionError(f"result has dtype {got.dtype}, expected {expected.dtype}")
            if got.dtype.kind == "f":
                np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
            else:
                np.testing.assert_array_equal(got, expected)
            results.append((label, None))
        except Exception as exc:  # a kernel bug is a FAIL line, not a crash of the command
            results.append((label, " ".join(describe_exception(exc).split())[:300]))
    return results


def signature_problems(module):
    """Sentences naming the kernels of ``module`` that cannot be called as the contract's table says
    (Python functions only: native kernels' parameters cannot be read)."""
    from .backend_ndarray import contract

    found = ((k.name, getattr(module, k.name, None)) for k in contract.KERNELS)
    problems = (contract.arity_problem(name, fn) for name, fn in found if fn is not None)
    return [p for p in problems if p]


def _describe_module(module, say):
    """Print what ``module`` provides against the protocol."""
    from . import __version__
    from .backend_ndarray import contract, protocol
    where = getattr(module, "__file__", None)
    say(f"  module            {getattr(module, '__name__', type(module).__name__)}" + (f" ({where})" if where else ""))
    version = getattr(module, "PROTOCOL_VERSION", None)
    ok = isinstance(version, int) and version in protocol.SUPPORTED_PROTOCOLS
    verdict = ("ok" if version == protocol.PROTOCOL_VERSION else "ok (floats only: protocol 1)") if ok else "MISMATCH"
    spoken = ", ".join(map(str, protocol.SUPPORTED_PROTOCOLS))
    say(f"  protocol version  {version!r} (needle-core {__version__} speaks {spoken}): {verdict}")
    say(f"  dtypes            {', '.join(getattr(module, 'DTYPES', ())) or '(none declared)'}")
    missing = protocol.missing_kernels(module)
    total = len(protocol.required_kernels(version if ok else protocol.PROTOCOL_VERSION))
    say(f"  required kernels  {total - len(missing)} of {total} present"
        + (f"; MISSING: {', '.join(missing)}" if missing else ""))
    provided = protocol.optional_kernels(module)
    known = protocol.OPTIONAL_KERNELS + (protocol.OPTIONAL_KERNELS_V2 if ok and version >= 2 else ())
    fallback = [k for k in known if k not in provided]
    say(f"  optional kernels  provided: {', '.join(provided) or 'none'}")
    say(f"                    core fallback: {', '.join(fallback) or 'none'}")
    fused = [k for k in protocol.FUSED_KERNELS if contract.provides(module, k)]
    say(f"  fused kernels     provided: {', '.join(fused) or 'none'}"
        + (f" (on {', '.join(getattr(module, 'FUSED_DTYPES', ('float32',)))})" if fused else ""))
    extras = [k for k in protocol.MEMORY_KERNELS + protocol.DLPACK_KERNELS if contract.provides(module, k)]
    say(f"  memory, dlpack    provided: {', '.join(extras) or 'none'}")
    problems = signature_problems(module)
    read = sum(getattr(getattr(module, k.name, None), "__code__", None) is not None for k in contract.KERNELS)
    say("  signatures        " + (f"MISMATCH: {'; '.join(problems)}" if problems else
                                   f"ok ({read} Python kernels read against the contract's table)"))
    advertised = list(getattr(module, "OPTIONAL_KERNELS", ()))
    unknown = [k for k in advertised if k not in known]
    absent = [k for k in advertised if k in known and k not in provided]
    if unknown:
        say(f"  note: OPTIONAL_KERNELS lists names core does not know (never called): {', '.join(unknown)}")
    if absent:
        say(f"  note: OPTIONAL_KERNELS lists kernels the module does not define: {', '.join(absent)}")


def check(name, say=print):
    """``python -m needle check NAME``: load, describe and smoke-test one backend; returns the exit status."""
    from . import backends
    from ._registry import describe_exception, registry

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plugin errors are printed below, with the ones that matter
        registry.discover(strict=False)
    dev = backends.device(name)
    key = dev.backend_name
    say(f"needle check: backend {key!r}, device {dev!r}")
    spec = registry.specs.get(key)
    if spec is not None:
        record = registry.owners.get(key)
        origin = f" (entry point {record.name!r} -> {record.value})" if record is not None and record.value else ""
        try:
            version = " " + importlib.metadata.version(spec.distribution)
        except Exception:  # in-process plugins and renamed distributions have no metadata
            version = ""
        say(f"  distribution      {spec.distribution}{version}{origin}")
    reason = dev.disabled_reason
    module = dev.backend if reason is None else None
    if module is None and spec is not None:
        try:  # load it anyway, so the report can show what the registry refused
            module = spec.load()
        except Exception as exc:
            say(f"  load()            raised {describe_exception(exc)}")
    if module is not None:
        _describe_module(module, say)
    if reason is not None:
        if spec is None and registry.plugin_errors:
            say("  plugins that failed to load (one of them may be this backend):")
            for ep, dist, error in registry.plugin_errors:
                say(f"    {ep} ({dist}): {error}")
        say(f"FAIL: backend {key!r} cannot be used: {reason}")
        return 1
    say(f"smoke test on {dev!r}, compared with numpy:")
    failed = total = 0
    if signature_problems(module):
        failed = total = 1  # said above: a kernel the protocol cannot call
    # NDArray operations on the float dtypes; on a protocol-2 backend, its new kernels on every dtype.
    protocol_2 = getattr(module, "PROTOCOL_VERSION", 1) >= 2
    for dtype in dev.dtypes:
        results = _smoke_test(dev, dtype) if dtype in ("float32", "float64") else []
        for label, problem in results + (_kernel_smoke_test(dev, dtype) if protocol_2 else []):
            total += 1
            failed += problem is not None
            say(f"  {'PASS' if problem is None else 'FAIL'}  {dtype:<8} {label}" + (f": {problem}" if problem else ""))
    if failed:
        say(f"FAIL: {failed} of {total} smoke checks failed on backend {key!r}")
        return 1
    say(f"PASS: backend {key!r} loads and all {total} smoke checks pass")
    return 0


def _parser():
    parser = argparse.ArgumentParser(prog="python -m needle",
                                     description="Report needle's installed distributions and backends.")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="the report (the default command)")
    info.add_argument("--json", action="store_true", dest="json_sub", help="print the report as JSON")
    check = commands.add_parser("check", help="load one backend, list its kernels and smoke-test it",
                                description="Load backend NAME through the plugin registry, list the kernels it "
                                            "provides and those core falls back on, and compare a few NDArray "
                                            "operations with numpy. Exit status 0 only if everything passes.")
    check.add_argument("name", metavar="NAME", help="backend name, as in needle.device(NAME)")
    return parser


def main(argv=None):
    """Entry point of ``python -m needle``; returns the exit status."""
    args = _parser().parse_args(argv)
    command = args.command or "info"
    if command == "info":
        info = collect()
        text = json.dumps(info, indent=2) if args.json or getattr(args, "json_sub", False) else render(info)
        try:
            print(text)
        except BrokenPipeError:  # `python -m needle | head`: stop quietly, also at interpreter exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if command == "check":
        try:
            return check(args.name)
        except BrokenPipeError:  # `python -m needle check NAME | head`: the verdict is lost, say so by the status
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    raise AssertionError(f"unhandled command {command!r}")  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
