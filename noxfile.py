"""Nox sessions for the Needle monorepo. `nox` alone runs lint, tests, dist, third_party, compat,
install_docs and sanitize (CI).

    nox -s tests            every backend: numpy, cpu (builds needle-cpu), cuda (skips without a GPU)
    nox -s "tests(backend='numpy')"   one backend
    nox -s lint             ruff, plus line counts per package (fails past a package's budget)
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
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES = ROOT / "packages"
sys.path.insert(0, str(ROOT / "tools"))
import release_sessions  # noqa: E402  (tools/: build, install_docs, compat, bump, release)

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
    """ruff over every package, then the line count of each package against its budget (tools/line_counts.py)."""
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


# ---- versions and releases: the bodies live in tools/release_sessions.py -----------------------------
@nox.session
def build(session):
    """Every package (or those named after --): sdist + wheel in dist/<name>/, checked, installed, imported."""
    release_sessions.build(session)


@nox.session
def install_docs(session):
    """Every `pip install` line of README.md and examples/README.md, run as written in a fresh venv each
    (`-- --with-cuda` also runs those that install needle-cuda)."""
    release_sessions.install_docs(session)


@nox.session
def compat(session):
    """Each package's tests against the oldest and the newest needle-core its range claims, and the
    protocol-1 plugin of tools/fixtures against this tree's core (`-- NAME...`: only those)."""
    release_sessions.compat(session)


@nox.session(venv_backend="none")
def bump(session):
    """Set one package's version: nox -s bump -- needle-nn 0.2.0 (refused unless CHANGELOG.md has '## 0.2.0')."""
    release_sessions.bump(session)


@nox.session
def release(session):
    """Release check of one package: nox -s release -- needle-nn (changelog, build, metadata, install; no upload)."""
    release_sessions.release(session)
