"""The release-engineering half of the nox sessions: build, install_docs, compat, bump and release.

noxfile.py keeps the list of sessions; their bodies live here, beside the rules they apply
(release_facts.py, check_compat.py, check_dists.py, bump_version.py). Each function takes the nox
session, builds the distributions and runs them in fresh virtual environments.
"""
import os
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"


def _release_tools():
    """tools/release_facts.py and tools/check_compat.py (they need `packaging`, which nox itself depends on)."""
    if str(TOOLS) not in sys.path:
        sys.path.insert(0, str(TOOLS))
    import check_compat
    import release_facts
    return release_facts, check_compat


def _fresh_venv(session, where):
    """A new, empty virtual environment at ``where`` made by the session's Python; returns its python."""
    import shutil

    shutil.rmtree(where, ignore_errors=True)
    session.run("python", "-m", "venv", str(where), silent=True)
    return str(where / ("Scripts/python.exe" if os.name == "nt" else "bin/python"))


def _needle_wheels_for(wheel, wheels):
    """The wheels among ``wheels`` ({dist: path}) that ``wheel`` needs (its needle-* requirements, transitively)."""
    import check_dists
    from packaging.requirements import Requirement

    todo, found = [wheel], []
    while todo:
        for line in check_dists.wheel_facts(todo.pop())["requires"]:
            req = Requirement(line)
            dep = wheels.get(req.name)
            if req.marker is None and dep is not None and dep != wheel and dep not in found:
                found.append(dep)
                todo.append(dep)
    return found


def _with_needle_deps(facts, pkgs):
    """``pkgs`` plus the tree packages they require (needle-nn -> needle-core too), in packages/ order."""
    names, todo = set(), list(pkgs)
    while todo:
        pkg = todo.pop()
        if pkg.name not in names:
            names.add(pkg.name)
            todo += [p for p in facts.packages() if pkg.requirement(p.name)]
    return [p for p in facts.packages() if p.name in names]


def _build_and_check(session, pkgs):
    """sdist + wheel of each package into dist/<name>/, twine check, tree-vs-build checks, fresh-venv smoke test.

    The needle wheels a package needs come from this run too (never from an index, nor a stale dist/).
    """
    import shutil

    facts, _ = _release_tools()
    pkgs = _with_needle_deps(facts, pkgs)
    tools = ROOT / "tools"
    wheels = {}
    for pkg in pkgs:
        out = ROOT / "dist" / pkg.name
        shutil.rmtree(out, ignore_errors=True)
        session.run("python", "-m", "build", "--outdir", str(out), str(pkg.path))  # the wheel is built from the sdist
        session.run("twine", "check", "--strict", *sorted(str(p) for p in out.iterdir()))
        session.run("python", str(tools / "check_dists.py"), "check", str(out))
        wheels[pkg.name] = next(out.glob("*.whl"))
        _add_to_wheelhouse(wheels[pkg.name])
    tmp = Path(session.create_tmp()).resolve()
    for pkg in pkgs:
        wheel = wheels[pkg.name]
        python = _fresh_venv(session, tmp / f"venv-{pkg.name}")
        needs = _needle_wheels_for(wheel, wheels)
        session.run(python, "-m", "pip", "install", "-q", str(wheel), *map(str, needs), external=True)
        with session.chdir(tmp):  # nothing from the source tree on sys.path
            session.run(python, str(tools / "check_dists.py"), "smoke", str(wheel), external=True)
    return wheels


#: All the wheels `nox -s build` made, in one folder: `pip install --find-links dist/wheels needle-core ...`.
WHEELHOUSE = ROOT / "dist" / "wheels"


def _add_to_wheelhouse(wheel):
    """Copy ``wheel`` into WHEELHOUSE, replacing the wheels of other versions of its distribution."""
    import shutil

    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    for old in WHEELHOUSE.glob(wheel.name.split("-")[0] + "-*.whl"):
        old.unlink()
    shutil.copy2(wheel, WHEELHOUSE / wheel.name)


def build(session):
    """Every package (or those named after --): sdist + wheel in dist/<name>/, checked, installed, imported."""
    session.install("build>=1.2", "twine>=5", "packaging>=22")
    facts, _ = _release_tools()
    _build_and_check(session, [facts.package(n) for n in session.posargs] or facts.packages())


#: The markdown files whose `pip install` commands `nox -s install_docs` runs: read from the files themselves,
#: so that the docs and the test cannot drift.
INSTALL_DOCS = ("README.md", "examples/README.md")


def _install_commands(text):
    """The ``pip install ...`` commands of a markdown text: lines of its fenced blocks (a trailing ``# comment``
    dropped) and its inline code spans, in order, each once."""
    import re

    commands, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif fenced:
            command = re.sub(r"\s+#.*$", "", line).strip()
            if command.startswith("pip install "):
                commands.append(command)
        else:
            commands += [c.strip() for c in re.findall(r"`(pip install [^`]+)`", line)]
    return list(dict.fromkeys(commands))


def _wheelhouse_is_current(facts):
    """True when WHEELHOUSE holds a wheel of this tree's version of every package."""
    names = {p.name for p in WHEELHOUSE.glob("*.whl")}
    return all(any(n.startswith(f"{p.name.replace('-', '_')}-{p.version}-") for n in names) for p in facts.packages())


def install_docs(session):
    """Every `pip install` line of README.md and examples/README.md, run as written from the repository root in
    a fresh venv each (then `python -m needle` there). The `--find-links dist/wheels` lines use the wheels of
    `nox -s build`, built here first unless dist/wheels holds this tree's version of every package. Lines that
    install needle-cuda download the CUDA libraries: they run with `-- --with-cuda`, and are listed as skipped
    otherwise. A line that fails names its file; the others still run.
    """
    session.install("build>=1.2", "twine>=5", "packaging>=22")
    facts, _ = _release_tools()
    commands = [(doc, c) for doc in INSTALL_DOCS for c in _install_commands((ROOT / doc).read_text())]
    if not commands:
        session.error(f"no `pip install` line found in {', '.join(INSTALL_DOCS)}")
    if any("dist/wheels" in c for _, c in commands) and not _wheelhouse_is_current(facts):
        _build_and_check(session, facts.packages())
    tmp = Path(session.create_tmp()).resolve()
    # One build folder for every needle-cpu built from ./packages/needle-cpu: the second build is incremental.
    env = {"PIP_CONFIG_SETTINGS": f"build-dir={tmp / 'build-needle-cpu'}", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    results = []
    for i, (doc, command) in enumerate(commands):
        if "needle-cuda" in command and "--with-cuda" not in session.posargs:
            results.append(("skipped", doc, command + "   (needs -- --with-cuda)"))
            continue
        python = Path(_fresh_venv(session, tmp / f"venv-{i}"))
        venv_env = dict(env, VIRTUAL_ENV=str(python.parent.parent))
        session.log(f"install_docs: {doc}: {command}")
        try:
            with session.chdir(ROOT):  # the fresh venv first on PATH (nox puts its own there), then the line
                session.run("bash", "-c", f'PATH="$1:$PATH"; {command}', "bash", str(python.parent), env=venv_env,
                            external=True)
            with session.chdir(tmp):  # the installed packages, not the source tree
                session.run(str(python), "-m", "needle", env=venv_env, external=True)
            results.append(("ok", doc, command))
        except nox.command.CommandFailed:
            results.append(("FAILED", doc, command))
    for status, doc, command in results:
        session.log(f"{status:>7}  {doc}: {command}")
    failed = [f"{doc}: {command}" for status, doc, command in results if status == "FAILED"]
    if failed:
        session.error(f"{len(failed)} install line(s) of the docs fail: " + "; ".join(failed))


#: A backend written for protocol 1 (the toy of needle-core 0.1, float32 only): needle-core 0.2 must still drive it.
PROTOCOL1_PLUGIN = ROOT / "tools" / "fixtures" / "needle-toy-protocol1"


def compat(session):
    """Each package's tests against the oldest and the newest needle-core its range claims, in fresh venvs.

    Then the protocol-1 plugin of tools/fixtures against this tree's needle-core: it loads, serves float32
    tensors (the conformance suite), and refuses an int64 array with a clear TypeError. `nox -s compat --
    NAME...` runs only the named packages (needle-toy-protocol1 names the plugin case).
    """
    import shutil
    import subprocess

    session.install("packaging>=22", "pytest>=7")
    session.install(str(ROOT / "packages" / "needle-core"))  # for the tests of python -m needle's range report
    facts, check_compat = _release_tools()
    session.run("python", "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), "-q",
                str(ROOT / "tools" / "tests"))  # the rules themselves, on made-up claims
    session.run("python", str(ROOT / "tools" / "check_compat.py"))  # the matrix; fails on a false/untestable claim
    entries, _ = check_compat.matrix()
    entries = [e for e in entries if not session.posargs or e.package.name in session.posargs]
    tmp = Path(session.create_tmp()).resolve()
    house = tmp / "wheels"
    shutil.rmtree(house, ignore_errors=True)

    def wheel(src, name, native=False):
        out = house / name
        # A fixed build dir keeps C++ rebuilds incremental between runs (and apart from other sessions').
        extra = ["-C", f"build-dir={tmp / 'build' / name}"] if native else []
        session.run("python", "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), *extra, str(src))
        return next(out.glob("*.whl"))

    core_wheels = {}
    for core in {c.version: c for e in entries for c in e.cores}.values():
        src = facts.package(facts.CORE).path
        if core.tag:  # a release: its files exactly as tagged
            dest = tmp / "src" / core.tag
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", core.tag, "packages/needle-core"],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
            src = dest / "packages" / "needle-core"
        core_wheels[core.version] = wheel(src, f"needle-core-{core.version}")
    others = [p for p in facts.packages() if p.name != facts.CORE]
    needed = {e.package.name for e in entries} | {p.name for e in entries for p in others
                                                  if e.package.requirement(p.name)}  # needle-dist needs nn, data
    tree = {p.name: wheel(p.path, p.name, native="scikit_build" in p.pyproject["build-system"]["build-backend"])
            for p in others if p.name in needed}
    results = []
    for entry in entries:
        for core in entry.cores:
            label = f"{entry.package.name} {entry.package.version} + needle-core {core.version} ({core.source})"
            session.log(f"compat: {label}")
            python = _fresh_venv(session, tmp / f"venv-{entry.package.name}-{core.version}")
            own = tree[entry.package.name]
            try:
                session.run(python, "-m", "pip", "install", "-q", str(core_wheels[core.version]), str(own),
                            *map(str, _needle_wheels_for(own, tree)), "pytest>=7", external=True)
                with session.chdir(tmp):
                    session.run(python, str(ROOT / "tools" / "check_dists.py"), "smoke", str(own), external=True)
                    session.run(python, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
                                "-q", str(entry.package.path / "tests"), external=True)
                results.append(("ok", label))
            except nox.command.CommandFailed:
                results.append(("FAILED", label))
    if not session.posargs or "needle-toy-protocol1" in session.posargs:
        tree_core = facts.package(facts.CORE)
        if tree_core.version not in core_wheels:
            core_wheels[tree_core.version] = wheel(tree_core.path, f"needle-core-{tree_core.version}")
        label = f"needle-toy-protocol1 (a protocol-1 plugin) + needle-core {tree_core.version} (working tree)"
        session.log(f"compat: {label}")
        python = _fresh_venv(session, tmp / "venv-protocol1-plugin")
        plugin = wheel(PROTOCOL1_PLUGIN, "needle-toy-protocol1")
        try:
            session.run(python, "-m", "pip", "install", "-q", str(core_wheels[tree_core.version]), str(plugin),
                        "pytest>=7", external=True)
            with session.chdir(tmp):
                session.run(python, str(ROOT / "tools" / "check_dists.py"), "smoke", str(plugin), external=True)
                session.run(python, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), "-q",
                            str(PROTOCOL1_PLUGIN / "tests"), external=True)
            results.append(("ok", label))
        except nox.command.CommandFailed:
            results.append(("FAILED", label))
    for status, label in results:
        session.log(f"{status:>6}  {label}")
    failed = [label for status, label in results if status != "ok"]
    if failed:
        session.error(f"{len(failed)} claimed combination(s) fail: " + "; ".join(failed))


def bump(session):
    """Set one package's version: nox -s bump -- needle-nn 0.2.0 (refused unless CHANGELOG.md has '## 0.2.0')."""
    if not session.posargs:
        session.error("usage: nox -s bump -- PACKAGE VERSION   (e.g. nox -s bump -- needle-nn 0.2.0)")
    session.run(sys.executable, str(ROOT / "tools" / "bump_version.py"), *session.posargs, external=True)


def release(session):
    """Release check of one package: nox -s release -- needle-nn (changelog, build, metadata, install; no upload)."""
    if len(session.posargs) != 1:
        session.error("usage: nox -s release -- PACKAGE")
    session.install("build>=1.2", "twine>=5", "packaging>=22")
    facts, _ = _release_tools()
    pkg = facts.package(session.posargs[0])
    session.run("python", str(ROOT / "tools" / "bump_version.py"), "--check", pkg.name)
    session.run("python", str(ROOT / "tools" / "check_compat.py"))
    _build_and_check(session, [pkg])
    session.log(f"{pkg.name} {pkg.version} is ready: dist/{pkg.name}/ holds the sdist and wheel; tag it with "
                f"`git tag {facts.tag_name(pkg.name, pkg.version)}` and upload with `twine upload dist/{pkg.name}/*`")
