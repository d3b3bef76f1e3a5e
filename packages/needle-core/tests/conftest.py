"""Shared fixtures for needle-core's tests.

The conformance fixtures (``needle_backend``, ``dev``, ``dtype``, ``tol``) come from
``needle.testing.fixtures``; ``mnist_dir`` finds the bundled MNIST subset in the shared data
folder that sits beside the repository (``<parent>/main`` and ``<parent>/shared``).
"""
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from needle.testing.fixtures import *  # noqa: F401,F403

_REPO_ROOT = Path(__file__).resolve().parents[3]
_DATA_CANDIDATES = [_REPO_ROOT.parent / "shared" / "data", _REPO_ROOT / "shared" / "data"]


def _find_data(name):
    for base in _DATA_CANDIDATES:
        if (base / name).is_dir():
            return base / name
    return None


def read_idx(path, magic):
    """Read a gzipped IDX file (big-endian header: magic, then one u32 per dimension)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = magic - 2048
    got_magic, *dims = struct.unpack(f">{1 + ndim}I", data[: 4 * (1 + ndim)])
    if got_magic != magic:
        raise ValueError(f"{path}: magic number {got_magic}, expected {magic}")
    payload = np.frombuffer(data, dtype=np.uint8, offset=4 * (1 + ndim))
    if payload.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header says {dims} but holds {payload.size} bytes")
    return payload.reshape(dims)


@pytest.fixture(scope="session")
def mnist_dir():
    """Folder of the bundled 5,000-image MNIST subset; skips when shared/ is absent."""
    found = _find_data("mnist-5k")
    if found is None:
        pytest.skip(f"bundled MNIST subset not found (looked in {', '.join(map(str, _DATA_CANDIDATES))})")
    return found


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """(X_train, y_train, X_test, y_test): images as float32 rows scaled to [0, 1], uint8 labels."""
    def images(name):
        raw = read_idx(mnist_dir / name, 2051)
        return (raw.reshape(raw.shape[0], -1) / np.float32(255.0)).astype(np.float32)

    def labels(name):
        return read_idx(mnist_dir / name, 2049)

    return (images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz"),
            images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz"))
