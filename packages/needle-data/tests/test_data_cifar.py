"""CIFAR-10 reader on small batch files the tests write, in both layouts, plus refused and broken files."""
import os
import pickle

import numpy as np
import pytest
from needle.data.datasets.cifar10_dataset import CIFAR10Dataset, read_cifar10
from needle.data.datasets.idx import DataFormatError

from needle import data

NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _make_batches(n_per_batch=4, seed=0):
    rng = np.random.RandomState(seed)
    return {name: (rng.randint(0, 256, (n_per_batch, 3072)).astype(np.uint8),
                   [int(v) for v in rng.randint(0, 10, n_per_batch)]) for name in NAMES}


def _write_python(folder, batches, protocol=2, bytes_keys=True):
    os.makedirs(folder, exist_ok=True)
    for name, (pixels, labels) in batches.items():
        key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
        obj = {key("batch_label"): name, key("data"): pixels, key("labels"): labels}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(obj, f, protocol=protocol)


def _write_binary(folder, batches):
    os.makedirs(folder, exist_ok=True)
    for name, (pixels, labels) in batches.items():
        # Independent of the reader: write each record byte by byte, label first.
        with open(os.path.join(folder, name + ".bin"), "wb") as f:
            for row, label in zip(pixels, labels):
                f.write(bytes([label]) + bytes(row.tolist()))


def _expected(batches, train):
    names = NAMES[:5] if train else NAMES[5:]
    pixels = np.concatenate([batches[n][0] for n in names])
    # Pixel (c, i, j) of image k is byte c*1024 + i*32 + j of its row (planes R, G, B; rows of 32).
    img = np.empty((len(pixels), 3, 32, 32))
    for c in range(3):
        for i in range(32):
            img[:, c, i, :] = pixels[:, c * 1024 + i * 32: c * 1024 + i * 32 + 32]
    return img / 255.0, np.concatenate([batches[n][1] for n in names])


@pytest.mark.parametrize("layout", ["python2", "python5-str-keys", "binary", "binary-subfolder"])
@pytest.mark.parametrize("train", [True, False])
def test_data_cifar_reads_both_layouts(tmp_path, layout, train):
    batches = _make_batches()
    if layout == "python2":
        _write_python(tmp_path, batches)
    elif layout == "python5-str-keys":
        _write_python(tmp_path, batches, protocol=5, bytes_keys=False)
    elif layout == "binary":
        _write_binary(tmp_path, batches)
    else:
        _write_binary(tmp_path / "cifar-10-batches-bin", batches)
    ds = data.CIFAR10Dataset(str(tmp_path), train=train)
    images, labels = _expected(batches, train)
    assert len(ds) == len(labels) == (20 if train else 4)
    assert ds.images.dtype == np.float32 and ds.images.shape == (len(labels), 3, 32, 32)
    np.testing.assert_allclose(ds.images, images, rtol=1e-6)
    np.testing.assert_array_equal(ds.labels, labels)
    np.testing.assert_allclose(ds.X, images, rtol=1e-6)  # the course's attribute names
    np.testing.assert_array_equal(ds.y, labels)
    x, y = ds[3]
    assert x.shape == (3, 32, 32) and y == labels[3]
    X, Y = ds[np.array([0, 2])]
    np.testing.assert_allclose(X, images[[0, 2]], rtol=1e-6)


def test_data_cifar_loader_batches(tmp_path):
    batches = _make_batches()
    _write_binary(tmp_path, batches)
    loader = data.DataLoader(data.CIFAR10Dataset(tmp_path, train=True), batch_size=8)
    X, y = next(iter(loader))
    images, labels = _expected(batches, True)
    assert X.shape == (8, 3, 32, 32) and y.shape == (8,)
    np.testing.assert_allclose(X.numpy(), images[:8], rtol=1e-6)
    np.testing.assert_array_equal(y.numpy(), labels[:8])


def test_data_cifar_transforms_see_hwc(tmp_path):
    batches = _make_batches()
    _write_binary(tmp_path, batches)
    seen = []

    def flip_w(img):
        seen.append(img.shape)
        return img[:, ::-1, :]

    ds = data.CIFAR10Dataset(tmp_path, train=False, transforms=[flip_w])
    images, _ = _expected(batches, False)
    np.testing.assert_allclose(ds[1][0], images[1][:, :, ::-1], rtol=1e-6)
    X, _ = ds[np.array([0, 1])]
    np.testing.assert_allclose(X, images[[0, 1]][:, :, :, ::-1], rtol=1e-6)
    assert set(seen) == {(32, 32, 3)}


def test_data_cifar_refuses_code_in_pickles(tmp_path):
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))  # would create a file if unpickled by pickle.load

    _write_python(tmp_path, _make_batches())
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({b"data": Payload(), b"labels": [0]}, f, protocol=2)
    with pytest.raises(DataFormatError, match="io.open|builtins.open|not allowed"):
        read_cifar10(tmp_path, train=False)
    assert not marker.exists()


def test_data_cifar_broken_files(tmp_path):
    batches = _make_batches()
    _write_binary(tmp_path / "bin", batches)
    path = tmp_path / "bin" / "test_batch.bin"
    path.write_bytes(path.read_bytes()[:-5])  # truncated record
    with pytest.raises(DataFormatError, match="3073-byte"):
        read_cifar10(tmp_path / "bin", train=False)
    _write_python(tmp_path / "py", batches)
    raw = (tmp_path / "py" / "test_batch").read_bytes()
    (tmp_path / "py" / "test_batch").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataFormatError, match="test_batch"):
        read_cifar10(tmp_path / "py", train=False)
    with open(tmp_path / "py" / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2, 3]}, f, protocol=2)
    with pytest.raises(DataFormatError, match="2 images but 3 labels"):
        read_cifar10(tmp_path / "py", train=False)
    with open(tmp_path / "py" / "test_batch", "wb") as f:
        pickle.dump({b"data": np.zeros((1, 3072), np.uint8), b"labels": [12]}, f, protocol=2)
    with pytest.raises(DataFormatError, match="0..9"):
        read_cifar10(tmp_path / "py", train=False)
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        CIFAR10Dataset(tmp_path / "nothing-here", train=True)
