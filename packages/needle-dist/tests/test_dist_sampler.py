"""DistributedSampler / DistributedDataLoader in one process, with num_replicas and rank given explicitly."""
import numpy as np
import pytest

from needle.data import NDArrayDataset
from needle.distributed import DistributedDataLoader, DistributedError, DistributedSampler


def _all_ranks(n, p, **kw):
    return [DistributedSampler(n, num_replicas=p, rank=r, **kw) for r in range(p)]


@pytest.mark.parametrize("n, p", [(10, 2), (10, 3), (7, 7), (100, 4), (101, 3)])
def test_dist_sampler_shares_cover_every_index_once(n, p):
    shares = [s.indices() for s in _all_ranks(n, p, shuffle=True, seed=5)]
    everything = np.concatenate(shares)
    assert sorted(everything.tolist()) == list(range(n))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert [len(s) for s in _all_ranks(n, p)] == [len(s) for s in shares]


def test_dist_sampler_order_depends_on_seed_and_epoch_only():
    a, b = DistributedSampler(50, 2, 0, seed=3), DistributedSampler(50, 2, 0, seed=3)
    np.random.seed(0)
    first = a.indices()
    np.random.seed(99)  # the global generator must not matter
    assert np.array_equal(first, b.indices())
    a.set_epoch(1)
    assert not np.array_equal(first, a.indices())
    assert not np.array_equal(first, DistributedSampler(50, 2, 0, seed=4).indices())
    # Every rank uses the same permutation: rank r's share is its stride of it.
    order = np.random.default_rng((3, 1)).permutation(50)
    assert np.array_equal(a.indices(), order[0::2])


def test_dist_sampler_without_shuffle_and_drop_last():
    s = _all_ranks(10, 3, shuffle=False, drop_last=True)
    assert [x.indices().tolist() for x in s] == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    assert list(iter(s[1])) == [1, 4, 7]


@pytest.mark.parametrize("n, p, b", [(22, 2, 4), (22, 3, 4), (25, 3, 4), (24, 3, 4), (5, 2, 8)])
def test_dist_sampler_batches_split_each_global_batch(n, p, b):
    samplers = _all_ranks(n, p, shuffle=True, seed=1)
    per_rank = [s.batches(b) for s in samplers]
    assert len({len(x) for x in per_rank}) == 1, "every rank takes the same number of steps"
    order = samplers[0].order()
    # Independent oracle: consecutive chunks of b*p; a last chunk smaller than p joins the one before.
    bounds = list(range(0, n, b * p)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < p:
        del bounds[-2]
    for step, (lo, hi) in enumerate(zip(bounds, bounds[1:])):
        union = np.concatenate([per_rank[r][step] for r in range(p)])
        assert sorted(union.tolist()) == sorted(order[lo:hi].tolist())
        assert all(len(per_rank[r][step]) >= 1 for r in range(p))
    seen = np.concatenate([idx for rank in per_rank for idx in rank])
    assert sorted(seen.tolist()) == list(range(n))


def test_dist_sampler_batches_drop_last_gives_full_global_batches():
    per_rank = [s.batches(4) for s in _all_ranks(25, 3, shuffle=False, drop_last=True)]
    assert [len(x) for x in per_rank] == [2, 2, 2]
    assert all(len(batch) == 4 for rank in per_rank for batch in rank)


def test_dist_sampler_errors_name_the_problem():
    with pytest.raises(DistributedError, match="rank 3 is outside 0 .. 2"):
        DistributedSampler(10, num_replicas=3, rank=3)
    with pytest.raises(DistributedError, match="2 samples cannot be shared by 3 ranks"):
        DistributedSampler(2, num_replicas=3, rank=0)
    with pytest.raises(DistributedError, match="batch_size must be >= 1"):
        DistributedSampler(10, 2, 0).batches(0)


def test_dist_loader_yields_this_ranks_part_of_each_global_batch():
    x = np.arange(30, dtype=np.float32).reshape(15, 2)
    y = np.arange(15, dtype=np.float32)
    ds = NDArrayDataset(x, y)
    loaders = [DistributedDataLoader(ds, batch_size=2, shuffle=False, num_replicas=3, rank=r) for r in range(3)]
    batches = [[(bx.numpy(), by.numpy()) for bx, by in loader] for loader in loaders]
    assert [len(b) for b in batches] == [len(loader) for loader in loaders] == [3, 3, 3]
    # Global batch s is samples [6s, 6s+6); rank r holds its stride r::3 of it.
    for step in range(3):
        labels = np.concatenate([batches[r][step][1] for r in range(3)])
        assert sorted(labels.tolist()) == list(range(6 * step, min(6 * step + 6, 15)))
        for r in range(3):
            bx, by = batches[r][step]
            assert np.array_equal(bx, x[by.astype(int)])
