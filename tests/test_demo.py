"""The README's main job, end to end: one epoch of the MNIST demo, then its evaluate command."""
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DEMO = Path(__file__).resolve().parents[1] / "examples" / "mnist_mlp.py"
pytest.importorskip("needle.nn")
pytest.importorskip("needle.data")


def run(*args):
    proc = subprocess.run([sys.executable, str(DEMO), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_demo_trains_one_epoch_saves_and_evaluates(tmp_path):
    out = run("train", "--epochs", "1", "--backend", "numpy", "--seed", "0", "--out", str(tmp_path))
    final = float(re.search(r"final test accuracy: ([0-9.]+)", out).group(1))
    # One epoch of a 784-128-10 MLP on 4,000 images reaches well above chance (0.1).
    assert final > 0.8, out
    for name in ("mnist_mlp.npz", "mnist_mlp.png", "mnist_mlp.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "mnist_mlp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = json.loads((tmp_path / "mnist_mlp.json").read_text())["history"]
    assert len(history) == 1 and history[0]["epoch"] == 1

    # The checkpoint is a plain npz (no pickle) holding the two Linear layers' weights.
    with np.load(tmp_path / "mnist_mlp.npz", allow_pickle=False) as ckpt:
        shapes = sorted(v.shape for v in ckpt.values())
    assert shapes == sorted([(784, 128), (1, 128), (128, 10), (1, 10)])

    evaluated = run("evaluate", str(tmp_path / "mnist_mlp.npz"), "--backend", "numpy")
    acc = float(re.search(r"test accuracy ([0-9.]+)", evaluated).group(1))
    assert acc == pytest.approx(final, abs=1e-4)


def test_demo_help_lists_the_options():
    out = run("--help")
    for flag in ("--epochs", "--backend", "--seed", "evaluate"):
        assert flag in out


def test_demo_hint_names_a_command_that_works_here(tmp_path, monkeypatch):
    """The "evaluate it with" line: nox's command under nox (NEEDLE_DEMO_COMMAND), else this interpreter."""
    monkeypatch.delenv("NEEDLE_DEMO_COMMAND", raising=False)
    out = run("train", "--epochs", "1", "--backend", "numpy", "--out", str(tmp_path))
    hint = re.search(r"evaluate it with: (.*)", out).group(1).split()
    assert hint[-2:] == ["evaluate", (tmp_path / "mnist_mlp.npz").as_posix()]
    proc = subprocess.run([sys.executable if hint[0] == "python" else hint[0], *hint[1:], "--backend", "numpy"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "test accuracy" in proc.stdout, proc.stdout + proc.stderr
    monkeypatch.setenv("NEEDLE_DEMO_COMMAND", "python -m nox -s demo --")
    out = run("train", "--epochs", "1", "--backend", "numpy", "--out", str(tmp_path))
    assert f"evaluate it with: python -m nox -s demo -- evaluate {(tmp_path / 'mnist_mlp.npz').as_posix()}" in out


def test_demo_without_matplotlib_still_saves_the_checkpoint(tmp_path):
    """No matplotlib: a note instead of a crash after training (examples/README.md installs it)."""
    block = tmp_path / "block"
    block.mkdir()
    (block / "matplotlib.py").write_text("raise ImportError('matplotlib blocked for this test')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(block), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(DEMO), "train", "--epochs", "1", "--backend", "numpy",
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "matplotlib is not installed" in proc.stdout
    assert (tmp_path / "out" / "mnist_mlp.npz").stat().st_size > 0


def test_distributed_example_help_and_missing_needle_dist():
    script = DEMO.parent / "mnist_distributed.py"
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--epochs" in proc.stdout, proc.stderr
    assert "demo-output/distributed" in proc.stdout  # never the single-process demo's files
    if importlib.util.find_spec("needle.distributed") is None:
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
        assert proc.returncode != 0 and "Traceback" not in proc.stderr
        assert "needs needle-dist" in proc.stderr and "./packages/needle-dist" in proc.stderr
