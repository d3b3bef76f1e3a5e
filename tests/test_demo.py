"""The README's main job, end to end: one epoch of the MNIST demo, then its evaluate command."""
import json
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
