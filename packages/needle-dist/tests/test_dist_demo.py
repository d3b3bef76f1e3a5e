"""The MNIST demo's data-parallel mode (`mpiexec -n 2 python examples/mnist_mlp.py --distributed`), one epoch.

Two ranks with 64 images each per step must train exactly like one process with 128: the same
global batches, so the same checkpoint (to float32 summation order) and the same all-reduced
metrics. Skipped where the repository's examples/ folder is not beside this package (an sdist).
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mpi4py", reason="mpi4py is not installed (pip install mpi4py mpich)")
from needle.distributed.launch import find_mpiexec, mpiexec_command  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
LIMIT_S = 300

if find_mpiexec() is None:
    pytest.skip("no mpiexec found (pip install mpich)", allow_module_level=True)
if not (EXAMPLES / "mnist_distributed.py").exists():
    pytest.skip(f"the demo is not here ({EXAMPLES}/mnist_distributed.py)", allow_module_level=True)


def _run(cmd, out):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=LIMIT_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    history = json.loads((out / "mnist_mlp.json").read_text())
    return dict(np.load(out / "mnist_mlp.npz")), history, proc.stdout


def test_dist_demo_two_ranks_train_like_one_process_with_the_global_batch(tmp_path):
    two, one = tmp_path / "two", tmp_path / "one"
    args = ["--epochs", "1", "--backend", "numpy", "--seed", "3"]
    params2, hist2, stdout2 = _run(mpiexec_command(2, [sys.executable, str(EXAMPLES / "mnist_mlp.py"),
                                                       "--distributed", *args, "--batch-size", "64",
                                                       "--out", str(two)]), two)
    params1, hist1, _ = _run([sys.executable, str(EXAMPLES / "mnist_distributed.py"), *args,
                              "--batch-size", "128", "--out", str(one)], one)
    assert (hist2["world_size"], hist1["world_size"]) == (2, 1)
    assert stdout2.count("final test accuracy") == 1  # rank 0 alone reports
    assert sorted(params2) == sorted(params1)
    for name in params1:
        np.testing.assert_allclose(params2[name], params1[name], rtol=1e-4, atol=1e-5, err_msg=name)
    (e2,), (e1,) = hist2["history"], hist1["history"]
    # Accuracies are counts over the whole train and test sets, all-reduced: exactly equal.
    assert (e2["train_acc"], e2["test_acc"]) == (e1["train_acc"], e1["test_acc"])
    np.testing.assert_allclose([e2["train_loss"], e2["test_loss"]], [e1["train_loss"], e1["test_loss"]], rtol=1e-5)
