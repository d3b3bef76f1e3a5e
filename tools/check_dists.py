"""Check built distributions of the packages under packages/ (used by `nox -s build` and `nox -s release`).

    python tools/check_dists.py check dist/needle-nn [...]   sdist + wheel agree with the tree (needs packaging)
    python tools/check_dists.py smoke WHEEL                  in a venv where WHEEL is installed: import it,
                                                             load its backends, check the version claims

``check``: one sdist and one wheel per directory, named with the version in the package's version.py;
the wheel's metadata carries the tree's needle-core requirement and entry points; a package with C++
sources ships a platform wheel holding a compiled extension; the sdist carries CHANGELOG.md, the tests
and (for C++ packages) the CMake sources.

``smoke`` uses the standard library only (a fresh venv has nothing else): it imports every top-level
package in the wheel, turns on each backend the wheel registers (a wheel with a compiled extension must
give an enabled backend here; others must load and may say why they are disabled, e.g. no GPU), and
fails when ``python -m needle`` flags an installed combination outside the declared ranges.
"""
import json
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

_EXTENSIONS = (".so", ".pyd", ".dylib")


def wheel_facts(wheel):
    """Name, version, requirements, entry points, import names and compiled files of a wheel."""
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        info_dir = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        meta = Parser().parsestr(zf.read(f"{info_dir}/METADATA").decode())
        eps_text = zf.read(f"{info_dir}/entry_points.txt").decode() if f"{info_dir}/entry_points.txt" in names else ""
    entry_points, group = {}, None
    for line in eps_text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            group = entry_points.setdefault(line[1:-1], {})
        elif "=" in line and group is not None:
            key, _, value = line.partition("=")
            group[key.strip()] = value.strip()
    inits = {n[: -len("/__init__.py")] for n in names if n.endswith("/__init__.py") and ".dist-info" not in n}
    # Import names: packages with no packaged parent (needle-nn ships needle/nn, not needle/__init__.py).
    modules = sorted(p.replace("/", ".") for p in inits if not any(p.startswith(q + "/") for q in inits))
    return {"name": meta["Name"], "version": meta["Version"], "requires": meta.get_all("Requires-Dist") or [],
            "entry_points": entry_points, "modules": modules,
            "compiled": [n for n in names if n.endswith(_EXTENSIONS) or ".so." in n],
            "tag": Path(wheel).name[:-4].split("-", 2)[2]}


def check_dir(directory, pkg):
    """Problems with the sdist and wheel in ``directory`` built from the tree package ``pkg``."""
    from packaging.requirements import Requirement
    from release_facts import CORE

    directory = Path(directory)
    wheels, sdists = sorted(directory.glob("*.whl")), sorted(directory.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        return [f"{directory}: expected one wheel and one sdist, found {[p.name for p in wheels + sdists]}"]
    facts, problems = wheel_facts(wheels[0]), []
    if facts["version"] != str(pkg.version):
        problems.append(f"{wheels[0].name}: version {facts['version']}, but {pkg.version_file.name} says {pkg.version}")
    normal = pkg.name.replace("-", "_")
    if not sdists[0].name.startswith(f"{normal}-{pkg.version}.tar.gz"):
        problems.append(f"{sdists[0].name}: expected {normal}-{pkg.version}.tar.gz")
    want = pkg.requirement(CORE)
    if want is not None:
        got = [Requirement(r) for r in facts["requires"] if Requirement(r).name == CORE]
        if [str(r.specifier) for r in got] != [str(want.specifier)]:
            problems.append(f"{wheels[0].name}: Requires-Dist on {CORE} is {[str(r) for r in got]}, "
                            f"pyproject.toml says {want}")
    for group in ("needle.backends", "needle.protocol"):
        if pkg.entry_points(group) != facts["entry_points"].get(group, {}):
            problems.append(f"{wheels[0].name}: entry points [{group}] {facts['entry_points'].get(group, {})}, "
                            f"pyproject.toml says {pkg.entry_points(group)}")
    native = any(next(pkg.path.joinpath("src").rglob(ext), None) for ext in ("*.cc", "*.cpp"))
    if native and (not facts["compiled"] or facts["tag"].endswith("none-any")):
        problems.append(f"{wheels[0].name}: {pkg.name} has C++ sources but the wheel has no compiled extension "
                        f"(tag {facts['tag']}, compiled files {facts['compiled']})")
    if not native and facts["compiled"]:
        problems.append(f"{wheels[0].name}: unexpected compiled files {facts['compiled']}")
    with tarfile.open(sdists[0]) as tf:
        members = {m.split("/", 1)[1] for m in tf.getnames() if "/" in m}
    for needed in ["pyproject.toml", "README.md", "CHANGELOG.md"] + (["CMakeLists.txt"] if native else []):
        if needed not in members:
            problems.append(f"{sdists[0].name}: {needed} missing")
    if (pkg.path / "tests").is_dir() and not any(m.startswith("tests/") for m in members):
        problems.append(f"{sdists[0].name}: the tests/ directory is missing")
    return problems


def smoke(wheel):
    """Import the installed ``wheel``'s packages and backends in this interpreter; returns problems."""
    import importlib
    import importlib.metadata as md

    facts, problems = wheel_facts(wheel), []
    for module in facts["modules"]:
        try:
            importlib.import_module(module)
            print(f"  import {module}: ok")
        except Exception as exc:  # report every failure, not only the first
            problems.append(f"import {module}: {type(exc).__name__}: {exc}")
    installed = md.version(facts["name"])
    if installed != facts["version"]:
        problems.append(f"{facts['name']} {installed} is installed, not the wheel's {facts['version']}")
    backends = facts["entry_points"].get("needle.backends", {})
    if backends:
        import needle
        for name in backends:
            dev = needle.device(name)
            print(f"  backend {name}: {'enabled' if dev.enabled() else 'disabled: ' + str(dev.disabled_reason)}")
            if facts["compiled"] and not dev.enabled():
                problems.append(f"backend {name} from a wheel with a compiled extension is disabled: "
                                f"{dev.disabled_reason}")
    report = subprocess.run([sys.executable, "-m", "needle", "--json"], capture_output=True, text=True)
    if report.returncode != 0:
        problems.append(f"python -m needle failed: {report.stderr.strip()[-500:]}")
    else:
        info = json.loads(report.stdout)
        if "compatibility" not in info:  # a needle-core from before the range report: nothing to hold against
            print("  python -m needle: this needle-core does not report declared ranges")
        problems += [f"python -m needle: {p}" for p in info.get("compatibility", [])]
        print(f"  python -m needle: {', '.join(f'{n} {v}' for n, v in info['distributions'].items())}; "
              f"{len(info.get('compatibility', []))} combination(s) outside the declared ranges")
        problems += [f"python -m needle: plugin error {e}" for e in info.get("plugin_errors", [])]
    return problems


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) >= 2 and argv[0] == "check":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from release_facts import package
        problems = []
        for directory in argv[1:]:
            found = check_dir(directory, package(Path(directory).name))
            print(f"{directory}: {'ok' if not found else f'{len(found)} problem(s)'}")
            problems += found
    elif len(argv) == 2 and argv[0] == "smoke":
        problems = smoke(argv[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
