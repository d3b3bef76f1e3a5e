"""Nox sessions for the Needle monorepo.

    nox -s tests            every backend: numpy, cpu (builds needle-cpu), cuda (skips without a GPU)
    nox -s "tests(backend='numpy')"   one backend
    nox -s lint             ruff, plus line counts per package
    nox -s demo             train the MLP on the bundled MNIST subset
    nox -s bench            benchmarks against numpy and PyTorch (installs torch==2.13.0 here only)
    nox -s sanitize         needle-cpu built with ASan/UBSan, conformance suite on it
"""
import os
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES = ROOT / "packages"
nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"

CORE_SET = ["needle-core", "needle-nn", "needle-data"]
TEST_DEPS = ["pytest>=7"]


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
def lint(session):
    """ruff over every package, then a line count per package (keep them small)."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", str(ROOT))
    session.run("python", str(ROOT / "tools" / "line_counts.py"))


@nox.session
def demo(session):
    """Install needle-core/nn/data and train the 2-layer MLP on the bundled MNIST subset."""
    session.install("tqdm>=4.60", "matplotlib>=3.5")
    _install(session, *CORE_SET)
    args = session.posargs or []
    session.run("python", str(ROOT / "examples" / "mnist_mlp.py"), *args)


@nox.session
def bench(session):
    """Benchmarks: Needle beside numpy and PyTorch (CPU) measured in the same run."""
    session.install("torch==2.13.0", "tqdm>=4.60", "matplotlib>=3.5")
    _install(session, *CORE_SET, "needle-cpu")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        session.run("python", str(script), "--json", str(out / f"{script.stem}.json"), *session.posargs)


@nox.session
def sanitize(session):
    """needle-cpu under AddressSanitizer + UndefinedBehaviorSanitizer."""
    script = PACKAGES / "needle-cpu" / "tools" / "sanitize.sh"
    if not script.exists():
        session.skip("packages/needle-cpu/tools/sanitize.sh not present")
    session.run("bash", str(script), external=True, env={"PYTHON": os.environ.get("PYTHON", "python3")})


@nox.session(reuse_venv=False)
def third_party(session):
    """The example third-party backend, pip-installed into a fresh venv beside needle-core/nn/data.

    Runs the conformance suite on it with one pytest command, `python -m needle check toy`, and
    one epoch of the MNIST demo; core is not touched (see docs/writing-a-backend.md).
    """
    session.install(*TEST_DEPS, "tqdm>=4.60", "matplotlib>=3.5")
    _install(session, *CORE_SET)
    session.install(str(ROOT / "examples" / "needle_toy_backend"))
    tmp = session.create_tmp()
    with session.chdir(tmp):  # outside the tree: only what pip installed is importable
        session.run("python", "-m", "needle")
        _pytest(session, "--pyargs", "needle.testing", env={"NEEDLE_TEST_BACKENDS": "toy"})
        session.run("python", "-m", "needle", "check", "toy")
        session.run("python", str(ROOT / "examples" / "mnist_mlp.py"), "train", "--backend", "toy",
                    "--epochs", "1", "--out", "demo-output")
