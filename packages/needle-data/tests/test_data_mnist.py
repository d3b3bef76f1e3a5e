"""MNIST reader: the bundled subset against an independent struct-based decode, and corrupted copies."""
import gzip
import os
import shutil
import struct
import tracemalloc

import numpy as np
import pytest
from needle import data


def _decode_idx(path):
    # Independent oracle: a plain struct-based IDX decode of an unsigned-byte file.
    with gzip.open(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype_code == 8
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return np.array(list(raw[4 + 4 * ndim:]), dtype=np.int64).reshape(dims)


@pytest.fixture(scope="module")
def paths():
    return data.mnist_paths()


def test_data_mnist_paths_point_at_the_four_bundled_files(paths):
    assert paths.train_images.endswith("train-images-idx3-ubyte.gz")
    assert paths.train_labels.endswith("train-labels-idx1-ubyte.gz")
    assert paths.test_images.endswith("t10k-images-idx3-ubyte.gz")
    assert paths.test_labels.endswith("t10k-labels-idx1-ubyte.gz")
    assert set(paths._asdict()) == {"train_images", "train_labels", "test_images", "test_labels"}
    assert paths["test_labels"] == paths.test_labels == paths[3]
    assert dict(paths) == paths._asdict()
    train_images, _, _, test_labels = paths
    assert (train_images, test_labels) == (paths.train_images, paths.test_labels)
    with pytest.raises(KeyError, match="train_images"):
        paths["validation_images"]


@pytest.mark.parametrize("split, n", [("train", 4000), ("test", 1000)])
def test_data_mnist_bundled_counts_histogram_and_pixels(paths, split, n):
    images = paths.train_images if split == "train" else paths.test_images
    labels = paths.train_labels if split == "train" else paths.test_labels
    X, y = data.parse_mnist(images, labels)
    assert X.shape == (n, 784) and X.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.uint8
    # The subset is balanced by construction: 400 (train) / 100 (test) of each digit.
    np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, n // 10))
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_allclose(X, _decode_idx(images).reshape(n, 784) / 255.0, rtol=1e-6, atol=0)
    np.testing.assert_array_equal(y, _decode_idx(labels))


def test_data_mnist_dataset_indexing(paths):
    ds = data.MNISTDataset(paths.test_images, paths.test_labels)
    raw = _decode_idx(paths.test_images).reshape(1000, 784) / 255.0
    labels = _decode_idx(paths.test_labels)
    assert len(ds) == 1000
    x, y = ds[7]
    assert x.shape == (784,) and int(y) == labels[7]
    np.testing.assert_allclose(x, raw[7], rtol=1e-6)
    idx = np.array([5, 0, 999, 5])
    X, Y = ds[idx]
    assert X.shape == (4, 784) and Y.shape == (4,)
    np.testing.assert_allclose(X, raw[idx], rtol=1e-6)
    np.testing.assert_array_equal(Y, labels[idx])
    X, Y = ds[10:13]
    np.testing.assert_allclose(X, raw[10:13], rtol=1e-6)


def test_data_mnist_dataset_flip_transform_per_image(paths):
    ds = data.MNISTDataset(paths.test_images, paths.test_labels, transforms=[data.RandomFlipHorizontal(p=1.0)])
    raw = _decode_idx(paths.test_images) / 255.0  # (N, 28, 28)
    x, _ = ds[3]
    np.testing.assert_allclose(x, raw[3][:, ::-1].reshape(784), rtol=1e-6)
    X, _ = ds[np.array([1, 2])]
    np.testing.assert_allclose(X, raw[[1, 2]][:, :, ::-1].reshape(2, 784), rtol=1e-6)


def test_data_mnist_dataset_crop_draws_once_per_image(paths):
    ds = data.MNISTDataset(paths.test_images, paths.test_labels, transforms=[data.RandomCrop(padding=4)])
    raw = _decode_idx(paths.test_images) / 255.0
    np.random.seed(11)
    shifts = [np.random.randint(-4, 5, size=2) for _ in range(3)]
    np.random.seed(11)
    X, _ = ds[np.array([0, 1, 2])]
    for k in range(3):
        sx, sy = shifts[k]
        expected = np.zeros((28, 28))
        for i in range(28):
            for j in range(28):
                if 0 <= i + sx < 28 and 0 <= j + sy < 28:
                    expected[i, j] = raw[k, i + sx, j + sy]
        np.testing.assert_allclose(X[k], expected.reshape(784), rtol=1e-6)


def test_data_mnist_5k_helper(paths):
    train, test = data.mnist_5k(train=True), data.mnist_5k(train=False)
    assert (len(train), len(test)) == (4000, 1000)
    np.testing.assert_array_equal(test.labels, _decode_idx(paths.test_labels))


# ---- corrupted copies -------------------------------------------------------------------------

def _write_gz(path, payload):
    with gzip.open(path, "wb") as f:
        f.write(payload)
    return str(path)


def _raw(path):
    with gzip.open(path, "rb") as f:
        return f.read()


def _expect_error(images, labels, *fragments):
    with pytest.raises(data.DataFormatError) as info:
        data.MNISTDataset(images, labels)
    msg = str(info.value)
    for fragment in fragments:
        assert fragment in msg, f"{fragment!r} not in {msg!r}"
    return msg


def test_data_mnist_truncated_payload(paths, tmp_path):
    bad = _write_gz(tmp_path / "train-images-idx3-ubyte.gz", _raw(paths.train_images)[:16 + 1000])
    _expect_error(bad, paths.train_labels, "train-images-idx3-ubyte.gz",
                  "header says 4000 images of 28x28 (3136000 bytes)", "1000 bytes")


def test_data_mnist_trailing_bytes(paths, tmp_path):
    bad = _write_gz(tmp_path / "labels.gz", _raw(paths.test_labels) + b"\x00\x01")
    # The reader stops one byte past the declared size, so it can say "more than", not how much more.
    _expect_error(paths.test_images, bad, "labels.gz", "1000 labels (1000 bytes)", "more than 1000 bytes")


def test_data_mnist_truncated_gzip_stream(paths, tmp_path):
    with open(paths.train_images, "rb") as f:
        full = f.read()
    bad = tmp_path / "cut-images.gz"
    bad.write_bytes(full[: len(full) // 2])
    _expect_error(str(bad), paths.train_labels, "cut-images.gz", "truncated or corrupt")


def test_data_mnist_not_gzip(paths, tmp_path):
    bad = tmp_path / "plain-images-idx3-ubyte"
    bad.write_bytes(_raw(paths.test_images))  # a valid IDX file, but not gzipped
    _expect_error(str(bad), paths.test_labels, "plain-images-idx3-ubyte", "not a gzip file")


def test_data_mnist_wrong_magic_label_file_as_images(paths, tmp_path):
    wrong = tmp_path / "swapped.gz"
    shutil.copy(paths.test_labels, wrong)
    _expect_error(str(wrong), paths.test_labels, "swapped.gz", "magic number is 2049, expected 2051")


def test_data_mnist_wrong_magic_garbage(paths, tmp_path):
    bad = _write_gz(tmp_path / "garbage.gz", b"\x12\x34\x56\x78" + bytes(100))
    _expect_error(paths.test_images, bad, "garbage.gz", "expected 2049")


def test_data_mnist_count_mismatch(paths):
    msg = _expect_error(paths.train_images, paths.test_labels, "4000 images", "1000 labels")
    assert "train-images-idx3-ubyte.gz" in msg and "t10k-labels-idx1-ubyte.gz" in msg


def test_data_mnist_short_header(paths, tmp_path):
    bad = _write_gz(tmp_path / "short.gz", b"\x00\x00")
    _expect_error(bad, paths.test_labels, "short.gz", "too short")
    bad = _write_gz(tmp_path / "short-dims.gz", struct.pack(">I", 2051) + struct.pack(">I", 10))
    _expect_error(bad, paths.test_labels, "short-dims.gz", "3 dimensions (16-byte header)")


def test_data_mnist_label_out_of_range(paths, tmp_path):
    payload = bytearray(_raw(paths.test_labels))
    payload[8 + 3] = 12
    bad = _write_gz(tmp_path / "labels12.gz", bytes(payload))
    _expect_error(paths.test_images, bad, "labels12.gz", "0-9", "12")


def test_data_mnist_errors_are_value_errors_and_missing_file(paths, tmp_path):
    assert issubclass(data.DataFormatError, ValueError)
    with pytest.raises(FileNotFoundError):
        data.parse_mnist(str(tmp_path / "nope.gz"), paths.test_labels)


def test_data_read_idx_generic_shape(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = _write_gz(tmp_path / "a.gz", struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", 2, 3, 4) + arr.tobytes())
    np.testing.assert_array_equal(data.read_idx(path), arr)


# ---- hostile headers and gzip bombs (issue 17) -----------------------------------------------------

def _idx_header(magic, *dims):
    return struct.pack(">I", magic) + struct.pack(">" + "I" * len(dims), *dims)


def _write_gz_stream(path, header, zeros):
    """A gzip file of ``header`` then ``zeros`` zero bytes, written in chunks (the test never holds it all)."""
    chunk = bytes(1 << 20)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(header)
        for start in range(0, zeros, len(chunk)):
            f.write(chunk[:min(len(chunk), zeros - start)])
    return str(path)


def _peak_traced_bytes(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_data_read_idx_element_count_does_not_wrap(tmp_path):
    # 2**22 * 2**21 * 2**21 == 2**64: zero in 64-bit arithmetic, which once matched an empty payload.
    bad = _write_gz(tmp_path / "wrap.gz", _idx_header(2051, 2 ** 22, 2 ** 21, 2 ** 21))
    with pytest.raises(data.DataFormatError, match=rf"wrap\.gz: header says 4194304 images of 2097152x2097152 "
                                                   rf"\({2 ** 64} bytes\), more than max_bytes"):
        data.read_idx(bad)
    # Zero elements, but dimensions numpy cannot index: still a clear error naming the file.
    header = struct.pack(">BBBB", 0, 0, 8, 4) + struct.pack(">IIII", 0, *[2 ** 32 - 1] * 3)
    bad = _write_gz(tmp_path / "zero.gz", header)
    with pytest.raises(data.DataFormatError, match=r"zero\.gz: header says an array of shape"):
        data.read_idx(bad)


def test_data_read_idx_gzip_bomb_is_not_decompressed(tmp_path):
    # 1000 labels declared, then 64 MiB of zeros (about 64 KiB compressed): read 1001 bytes, not 64 MiB.
    bomb = _write_gz_stream(tmp_path / "bomb-labels.gz", _idx_header(2049, 1000), 1000 + (64 << 20))
    assert os.path.getsize(bomb) < (1 << 20)

    def read():
        with pytest.raises(data.DataFormatError, match=r"bomb-labels\.gz: header says 1000 labels \(1000 bytes\) "
                                                       r"but the file holds more than 1000 bytes"):
            data.read_idx(bomb, 2049)
    assert _peak_traced_bytes(read) < (8 << 20)


def test_data_read_idx_huge_declared_size_over_a_short_stream_keeps_memory_bounded(tmp_path):
    # 2 GiB declared (under the default limit) over 4 MiB of zeros: memory follows the stream, not the header.
    short = _write_gz_stream(tmp_path / "short-images.gz", _idx_header(2051, 2 ** 11, 2 ** 10, 2 ** 10), 4 << 20)

    def read():
        with pytest.raises(data.DataFormatError, match=rf"short-images\.gz: header says 2048 images of 1024x1024 "
                                                       rf"\({2 ** 31} bytes\) but the file holds only {4 << 20} bytes"):
            data.read_idx(short)
    assert _peak_traced_bytes(read) < (16 << 20)


def test_data_read_idx_max_bytes(paths, tmp_path):
    with pytest.raises(data.DataFormatError, match=r"t10k-labels-idx1-ubyte\.gz: header says 1000 labels "
                                                   r"\(1000 bytes\), more than max_bytes=999"):
        data.read_idx(paths.test_labels, max_bytes=999)
    np.testing.assert_array_equal(data.read_idx(paths.test_labels, max_bytes=1000), _decode_idx(paths.test_labels))
