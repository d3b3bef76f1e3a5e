"""``python -m needle``: what is installed, which backends work here, and why the others do not.

``python -m needle`` (or ``python -m needle info``) prints a short report; ``--json`` prints the
same facts for machines. The exit status is 0 whenever the report could be made: a broken plugin
is something the report shows, not a failure of the command.
"""
import argparse
import importlib.metadata
import json
import os
import platform
import sys
import warnings


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
                row["optional_kernels"] = protocol.optional_kernels(dev.mod)
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


def render(info):
    """The human-readable report."""
    out = [f"needle-core {info['needle_core']} (Python {info['python']}, {info['executable']})", "",
           "Distributions:"]
    out += _table([[n, v] for n, v in info["distributions"].items()], ["NAME", "VERSION"])
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


def _parser():
    parser = argparse.ArgumentParser(prog="python -m needle",
                                     description="Report needle's installed distributions and backends.")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    info = commands.add_parser("info", help="the report (the default command)")
    info.add_argument("--json", action="store_true", dest="json_sub", help="print the report as JSON")
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
    raise AssertionError(f"unhandled command {command!r}")  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
