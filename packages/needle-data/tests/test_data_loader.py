"""DataLoader and NDArrayDataset: epochs cover every sample once, seeded shuffles match numpy."""
import needle as ndl
import numpy as np
import pytest
from needle import data


def _ids_dataset(n, feat=3):
    # Field 0 holds each sample's id, so batches reveal exactly which samples they contain.
    ids = np.arange(n, dtype=np.float32)
    X = np.arange(n * feat, dtype=np.float32).reshape(n, feat)
    return data.NDArrayDataset(ids, X), ids, X


def _epoch_ids(loader):
    return np.concatenate([b[0].numpy() for b in loader]).astype(np.int64)


@pytest.mark.parametrize("n, bs", [(10, 3), (9, 3), (1, 4), (7, 1), (5, 10)])
def test_data_loader_consecutive_batches(n, bs):
    ds, ids, X = _ids_dataset(n)
    loader = data.DataLoader(ds, batch_size=bs)
    batches = list(loader)
    assert len(loader) == len(batches) == -(-n // bs)
    for k, (bid, bx) in enumerate(batches):
        lo, hi = k * bs, min((k + 1) * bs, n)
        assert bid.shape == (hi - lo,) and bx.shape == (hi - lo, 3)
        np.testing.assert_array_equal(bid.numpy(), ids[lo:hi])
        np.testing.assert_array_equal(bx.numpy(), X[lo:hi])


@pytest.mark.parametrize("n, bs", [(10, 3), (9, 3), (2, 4)])
def test_data_loader_drop_last(n, bs):
    ds, ids, _ = _ids_dataset(n)
    loader = data.DataLoader(ds, batch_size=bs, drop_last=True)
    batches = list(loader)
    assert len(loader) == len(batches) == n // bs
    assert all(b[0].shape == (bs,) for b in batches)
    got = _epoch_ids(loader) if batches else np.array([], dtype=np.int64)
    np.testing.assert_array_equal(got, ids[: (n // bs) * bs])


def test_data_loader_shuffle_matches_seeded_permutation_per_epoch():
    n, bs = 23, 5
    ds, _, X = _ids_dataset(n)
    np.random.seed(4)
    perm1, perm2 = np.random.permutation(n), np.random.permutation(n)
    np.random.seed(4)
    loader = data.DataLoader(ds, batch_size=bs, shuffle=True)
    epoch1 = list(loader)
    epoch2 = list(loader)
    for perm, epoch in ((perm1, epoch1), (perm2, epoch2)):
        assert [b[0].shape[0] for b in epoch] == [5, 5, 5, 5, 3]
        ids = np.concatenate([b[0].numpy() for b in epoch]).astype(np.int64)
        np.testing.assert_array_equal(ids, perm)  # the epoch's order is exactly one permutation draw
        np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in epoch]), X[perm])
    assert not np.array_equal(perm1, perm2)


def test_data_loader_shuffle_drop_last_covers_each_sample_at_most_once():
    n, bs = 23, 5
    ds, _, _ = _ids_dataset(n)
    np.random.seed(9)
    perm = np.random.permutation(n)
    np.random.seed(9)
    ids = _epoch_ids(data.DataLoader(ds, batch_size=bs, shuffle=True, drop_last=True))
    np.testing.assert_array_equal(ids, perm[:20])
    assert len(set(ids.tolist())) == 20


def test_data_loader_every_sample_once_mnist_shuffled():
    test = data.mnist_5k(train=False)
    np.random.seed(0)
    loader = data.DataLoader(test, batch_size=128, shuffle=True)
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in loader])
    X, Y = np.concatenate(xs), np.concatenate(ys)
    assert X.shape == (1000, 784) and [x.shape[0] for x in xs] == [128] * 7 + [104]
    np.testing.assert_array_equal(np.bincount(Y.astype(np.int64), minlength=10), np.full(10, 100))
    # Every image appears exactly once: sort rows of both and compare.
    order = np.lexsort(X.T[::-1])
    ref_order = np.lexsort(test.images.T[::-1])
    np.testing.assert_array_equal(X[order], test.images[ref_order])


def test_data_loader_batches_are_constant_tensors_with_dtype_and_device():
    ds = data.NDArrayDataset(np.ones((4, 2), dtype=np.float32), np.array([1, 2, 3, 4], dtype=np.uint8))
    x, y = next(iter(data.DataLoader(ds, batch_size=4)))
    assert isinstance(x, ndl.Tensor) and isinstance(y, ndl.Tensor)
    assert not x.requires_grad and not y.requires_grad
    assert x.device == ndl.default_device()  # no device=: the default (NEEDLE_BACKEND) device
    assert x.dtype == "float32" and y.dtype == "uint8"  # labels keep their dtype, as in the course
    np.testing.assert_array_equal(y.numpy(), [1, 2, 3, 4])
    dev = ndl.cpu_numpy()
    ds64 = data.NDArrayDataset(np.linspace(0, 1, 6).reshape(3, 2))
    (x64,) = next(iter(data.DataLoader(ds64, batch_size=3, device=dev)))
    assert x64.dtype == "float64" and x64.device == dev
    (x32,) = next(iter(data.DataLoader(ds64, batch_size=3, device=dev, dtype="float32")))
    assert x32.dtype == "float32"
    np.testing.assert_allclose(x32.numpy(), np.linspace(0, 1, 6).reshape(3, 2), rtol=1e-6)


class _PerSample(data.Dataset):
    """A dataset that only understands int indices (no array indexing)."""

    def __init__(self, n, as_tuple=True):
        super().__init__()
        self.n, self.as_tuple = n, as_tuple

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        assert isinstance(i, int)
        x = np.full((2,), float(i), dtype=np.float32)
        return (x, np.float32(i * 10)) if self.as_tuple else x


def test_data_loader_per_sample_dataset_is_stacked():
    batches = list(data.DataLoader(_PerSample(5), batch_size=2))
    assert [b[0].shape for b in batches] == [(2, 2), (2, 2), (1, 2)]
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), [0, 10, 20, 30, 40])
    single = list(data.DataLoader(_PerSample(3, as_tuple=False), batch_size=3))
    assert len(single) == 1 and len(single[0]) == 1
    np.testing.assert_array_equal(single[0][0].numpy(), [[0, 0], [1, 1], [2, 2]])


@pytest.mark.parametrize("bad", [0, -2, 2.5, "4", True, None])
def test_data_loader_rejects_bad_batch_size(bad):
    ds, _, _ = _ids_dataset(4)
    with pytest.raises((TypeError, ValueError), match="batch_size must be a positive int"):
        data.DataLoader(ds, batch_size=bad)


def test_data_ndarray_dataset_indexing_and_errors():
    a, b = np.arange(12).reshape(4, 3), np.arange(4) * 2
    ds = data.NDArrayDataset(a, b)
    assert len(ds) == 4
    xa, xb = ds[2]
    np.testing.assert_array_equal(xa, a[2]) and np.testing.assert_array_equal(xb, 4)
    xa, xb = ds[np.array([3, 0])]
    np.testing.assert_array_equal(xa, a[[3, 0]])
    np.testing.assert_array_equal(xb, [6, 0])
    with pytest.raises(ValueError, match=r"lengths \[4, 3\]"):
        data.NDArrayDataset(a, np.arange(3))
    with pytest.raises(ValueError, match="at least one array"):
        data.NDArrayDataset()
