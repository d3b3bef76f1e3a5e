"""Nox sessions for the Needle monorepo. `nox` alone runs lint, tests, dist, third_party, compat,
install_docs and sanitize (CI).

    nox -s tests            every backend: numpy, cpu (builds needle-cpu), cuda (skips without a GPU)
    nox -s "tests(backend='numpy')"   one backend
    nox -s lint             ruff, plus line counts per package
    nox -s demo             train the MLP on the bundled MNIST subset
    nox -s bench            benchmarks against numpy and PyTorch (installs torch==2.13.0 here only)
    nox -s sanitize         needle-cpu built with ASan/UBSan: its tests, the conformance suite and the long fuzzing
                            profile (50,000 native and 10,000 NDArray cases; NEEDLE_FUZZ_* variables change it)
    nox -s dist             needle-dist: 2 and 3 MPI ranks on this machine
    nox -s third_party      the example out-of-tree backend, pip-installed into a fresh venv
    nox -s docs             the documentation site into site/ (runs the tutorials), checked in headless Chromium
    nox -s compat           each package against the oldest and newest needle-core its range claims, and a
                            protocol-1 plugin (tools/fixtures/needle-toy-protocol1) against this tree's core
"""
import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES = ROOT / "packages"
# What `nox` (and CI) runs. compat is here so that a false version claim fails CI: the rules alone can
# only say a range is well formed, while compat installs each package with the oldest and the newest
# needle-core it admits and runs its tests there (about 1.5 min on 2 cores while one core build exists).
# install_docs runs the README's install lines as written, so a doc that stops working fails CI (issue 19).
# sanitize (ASan/UBSan build, needle-cpu's tests, the conformance suite and the long fuzzing profile) took
# 20 min on 2 shared cores at load 6 (about half of that unloaded): CI stays well inside its 90 minutes.
nox.options.sessions = ["lint", "tests", "dist", "third_party", "compat", "install_docs", "sanitize"]
nox.options.reuse_venv = "yes"

CORE_SET = ["needle-core", "needle-nn", "needle-data"]
#: Modules whose docstring examples the numpy tests session runs (pytest --doctest-modules).
DOCTEST_MODULES = ["needle.autograd", "needle.ops", "needle.init", "needle.nn", "needle.optim", "needle.data"]
TEST_DEPS = ["pytest>=7", "hypothesis>=6.100"]  # hypothesis: the fuzzing suite (bounded profile in `tests`)


def _pkg(name):
    return str(PACKAGES / name)


def _install(session, *names, extra=()):
    """Install packages from this tree (regular installs: the wheels users get)."""
    session.install(*[_pkg(n) for n in names if (PACKAGES / n).exists()], *extra)


def _pytest(session, *args, env=None):
    session.run("python", "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT),
                "-q", *args, env=env or {})


def _package_tests(*names):
    return [str(PACKAGES / n / "tests") for n in names if (PACKAGES / n / "tests").exists()]


@nox.session
@nox.parametrize("backend", ["numpy", "cpu", "cuda"])
def tests(session, backend):
    """Core, nn and data tests plus the backend conformance suite, on one backend."""
    session.install(*TEST_DEPS, "tqdm>=4.60", "matplotlib>=3.5")
    if backend == "numpy":
        _install(session, *CORE_SET)
        env = {"NEEDLE_BACKEND": "numpy", "NEEDLE_TEST_BACKENDS": "numpy,reference"}
        _pytest(session, *_package_tests("needle-core", "needle-nn", "needle-data"), env=env)
        with session.chdir(session.create_tmp()):  # prove the suite runs from an installed package
            _pytest(session, "--pyargs", "needle.testing", env=env)
            # The >>> examples in public docstrings, from the installed modules (a second import of
            # a tree file would make a second Tensor class); namespace packages give needle.nn its name.
            _pytest(session, "--doctest-modules", "-o", "consider_namespace_packages=true", "--pyargs",
                    *DOCTEST_MODULES, env=env)
        _pytest(session, str(ROOT / "tests"), env=env)  # the demo end to end
    elif backend == "cpu":
        _install(session, *CORE_SET, "needle-cpu")
        session.run("python", "-c", "import needle as ndl, sys; d = ndl.device('cpu'); "
                    "sys.exit(0 if d.enabled() else 'needle-cpu is not usable: ' + str(d.disabled_reason))")
        env = {"NEEDLE_BACKEND": "cpu", "NEEDLE_TEST_BACKENDS": "cpu"}
        _pytest(session, *_package_tests("needle-cpu", "needle-nn", "needle-data"), env=env)
        with session.chdir(session.create_tmp()):
            _pytest(session, "--pyargs", "needle.testing", env=env)
    else:
        _install(session, *CORE_SET, "needle-cuda")
        # Host-side tests run everywhere; GPU tests inside skip with the reason printed by pytest -rs.
        _pytest(session, "-rs", *_package_tests("needle-cuda"))
        reason = session.run("python", "-c", "import needle as ndl; print(ndl.cuda().disabled_reason or '')",
                             silent=True).strip()
        if reason:
            session.skip(f"cuda backend not available: {reason}")
        env = {"NEEDLE_BACKEND": "cuda", "NEEDLE_TEST_BACKENDS": "cuda"}
        _pytest(session, *_package_tests("needle-nn", "needle-data"), env=env)
        with session.chdir(session.create_tmp()):
            _pytest(session, "--pyargs", "needle.testing", env=env)


@nox.session
def dist(session):
    """needle-dist: 2 and 3 ranks under mpiexec on this machine (loopback only)."""
    session.install(*TEST_DEPS)
    _install(session, *CORE_SET, "needle-dist")  # pulls mpi4py + mpich; mpiexec lands in the venv's bin/
    _pytest(session, "-rs", *_package_tests("needle-dist"), env={"NEEDLE_BACKEND": "numpy"})


@nox.session
def lint(session):
    """ruff over every package, then a line count per package (keep them small)."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", str(ROOT))
    session.run("python", str(ROOT / "tools" / "line_counts.py"))


def _asked_backend(args):
    """The value of ``--backend`` among the demo's arguments (None when absent)."""
    for i, arg in enumerate(args):
        if arg == "--backend" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--backend="):
            return arg.split("=", 1)[1]
    return None


@nox.session
def demo(session):
    """Install needle-core/nn/data and train the 2-layer MLP on the bundled MNIST subset.

    The default needs no compiler (numpy backend); `-- --backend cpu` also builds and installs needle-cpu.
    """
    session.install("tqdm>=4.60", "matplotlib>=3.5")
    args = session.posargs or []
    _install(session, *CORE_SET, *(["needle-cpu"] if _asked_backend(args) == "cpu" else []))
    # The script's "evaluate it with: ..." hint names this session: its venv is where needle is installed.
    session.run("python", str(ROOT / "examples" / "mnist_mlp.py"), *args,
                env={"NEEDLE_DEMO_COMMAND": "python -m nox -s demo --"})


DOCS_DEPS = ["mkdocs==1.6.1", "mkdocs-material==9.8.2", "mkdocstrings==1.0.8", "mkdocstrings-python==2.0.11",
             "matplotlib>=3.5"]


@nox.session
def docs(session):
    """The documentation site into site/: guides, API reference from the docstrings, executed tutorials.

    `mkdocs build --strict` (tools/docs_site/hooks.py runs each docs/tutorials/*.py on the numpy backend; a
    failing tutorial fails the build). Not in the default run: it takes a few minutes. `-- --no-browser` skips
    the check in headless Chromium (tools/docs_site/browser_check.py).
    """
    session.install(*DOCS_DEPS)
    _install(session, *CORE_SET, "needle-dist")  # needle-dist brings mpiexec for the 2-rank tutorial
    session.run("mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
                env={"NO_MKDOCS_2_WARNING": "1", "NEEDLE_DOCS_BACKEND": "numpy"})
    if "--no-browser" in session.posargs:
        return
    import shutil

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:  # Debian's package; needs root (CI runs as root, or install it yourself)
        session.run("apt-get", "update", "-q", external=True)
        session.run("apt-get", "install", "-y", "-q", "chromium", external=True)
        chromium = shutil.which("chromium")
    session.run("python", str(ROOT / "tools" / "docs_site" / "browser_check.py"), str(ROOT / "site"),
                "--chromium", chromium)


@nox.session
def bench(session):
    """The benchmark suite: Needle beside numpy and PyTorch CPU (torch==2.13.0, installed here only).

    Runs benchmarks/bench_suite.py: a table, benchmarks/results/suite.json and suite.png.
    Arguments after `--` go to the suite (`-- --quick`, `-- --threads 1`,
    `-- --compare old.json`); `-- --all` also runs the other benchmarks/bench_*.py scripts.
    """
    session.install("torch==2.13.0", "tqdm>=4.60", "matplotlib>=3.5")
    _install(session, *CORE_SET, "needle-cpu")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    args = [a for a in session.posargs if a != "--all"]
    session.run("python", str(ROOT / "benchmarks" / "bench_suite.py"), "--json", str(out / "suite.json"), *args)
    if "--all" in session.posargs:
        covered = {"bench_suite", "bench_training", "bench_autograd", "bench_openblas"}  # already inside the suite
        for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
            if script.stem not in covered:
                session.run("python", str(script), "--json", str(out / f"{script.stem}.json"))


@nox.session
def sanitize(session):
    """needle-cpu under AddressSanitizer + UndefinedBehaviorSanitizer, with the long fuzzing profile.

    The fuzz cases are the same every run here (NEEDLE_FUZZ_SEED=0, so CI is reproducible); set
    NEEDLE_FUZZ_SEED=random for new ones (tools/sanitize.sh run by hand does that by default).
    """
    script = PACKAGES / "needle-cpu" / "tools" / "sanitize.sh"
    if not script.exists():
        session.skip("packages/needle-cpu/tools/sanitize.sh not present")
    env = {"PYTHON": os.environ.get("PYTHON", "python3")}
    env["NEEDLE_FUZZ_SEED"] = "0"
    env.update({k: v for k, v in os.environ.items() if k.startswith("NEEDLE_FUZZ_")})
    session.run("bash", str(script), *session.posargs, external=True, env=env)


@nox.session(reuse_venv=False)
def third_party(session):
    """The example third-party backend, pip-installed into a fresh venv beside needle-core/nn/data.

    Runs the conformance suite on it with one pytest command, `python -m needle check toy`, the
    protocol-mismatch test (core refuses the plugin, the rest works), and one epoch of the MNIST
    demo; core is not touched (see docs/writing-a-backend.md).
    """
    session.install(*TEST_DEPS, "tqdm>=4.60", "matplotlib>=3.5")
    _install(session, *CORE_SET)
    session.install(str(ROOT / "examples" / "needle_toy_backend"))
    tmp = session.create_tmp()
    with session.chdir(tmp):  # outside the tree: only what pip installed is importable
        session.run("python", "-m", "needle")
        _pytest(session, "--pyargs", "needle.testing", env={"NEEDLE_TEST_BACKENDS": "toy"})
        session.run("python", "-m", "needle", "check", "toy")
        _pytest(session, str(ROOT / "examples" / "needle_toy_backend" / "tests" / "test_toy_protocol_mismatch.py"))
        session.run("python", str(ROOT / "examples" / "mnist_mlp.py"), "train", "--backend", "toy",
                    "--epochs", "1", "--out", "demo-output")


# ---- versions and releases: build, compat, bump, release -----------------------------------------
# The rules live in tools/ (release_facts.py, check_compat.py, check_dists.py, bump_version.py);
# these sessions build the distributions and run them in fresh virtual environments.
def _release_tools():
    """tools/release_facts.py and tools/check_compat.py (they need `packaging`, which nox itself depends on)."""
    import sys

    tools = str(ROOT / "tools")
    if tools not in sys.path:
        sys.path.insert(0, tools)
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


@nox.session
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


@nox.session
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


@nox.session
def compat(session):
    """Each package's tests against the oldest and the newest needle-core its range claims, in fresh venvs.

    Then the protocol-1 plugin of tools/fixtures against this tree's needle-core: it loads, serves float32
    tensors (the conformance suite), and refuses an int64 array with a clear TypeError. `nox -s compat --
    NAME...` runs only the named packages (needle-toy-protocol1 names the plugin case).
    """
    import shutil
    import subprocess

    session.install("packaging>=22", "pytest>=7")
    _install(session, "needle-core")  # for the tests of python -m needle's range report
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


@nox.session(venv_backend="none")
def bump(session):
    """Set one package's version: nox -s bump -- needle-nn 0.2.0 (refused unless CHANGELOG.md has '## 0.2.0')."""
    if not session.posargs:
        session.error("usage: nox -s bump -- PACKAGE VERSION   (e.g. nox -s bump -- needle-nn 0.2.0)")
    import sys

    session.run(sys.executable, str(ROOT / "tools" / "bump_version.py"), *session.posargs, external=True)


@nox.session
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
