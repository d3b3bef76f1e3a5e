"""nn.save / nn.load: npz round trip, atomic writes, no code execution, clear load errors."""
import os
import pickle

import numpy as np
import pytest

import needle as ndl
from needle import nn
from needle.nn import checkpoint


def test_round_trip_keeps_names_order_values_and_dtypes(tmp_path):
    state = {"b.weight": np.random.rand(3, 2).astype(np.float32), "a": np.arange(5, dtype=np.int64),
             "file": np.float64(2.5) * np.ones(()), "z/odd name": np.zeros((0, 4), dtype=np.float32),
             "transposed": np.arange(6, dtype=np.float32).reshape(2, 3).T}
    path = tmp_path / "ckpt.npz"
    nn.save(state, path)
    loaded = nn.load(path)
    assert list(loaded) == list(state)
    for name, array in state.items():
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape
        np.testing.assert_array_equal(loaded[name], array)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]  # no temporary file left behind


def test_model_round_trip(tmp_path):
    np.random.seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    x = ndl.Tensor(np.random.randn(6, 4).astype(np.float32))
    model(x)
    nn.save(model, str(tmp_path / "m.npz"))  # a Module saves its state dict
    other = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    other.load_state_dict(nn.load(tmp_path / "m.npz"))
    model.eval(), other.eval()
    np.testing.assert_array_equal(other(x).numpy(), model(x).numpy())


def test_crash_mid_write_keeps_old_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    old = {"w": np.arange(4, dtype=np.float32)}
    nn.save(old, path)

    def crashing_writer(fileobj, arrays):
        fileobj.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(checkpoint, "_write_npz", crashing_writer)
    with pytest.raises(KeyboardInterrupt):
        nn.save({"w": np.ones(4, dtype=np.float32)}, path)
    np.testing.assert_array_equal(nn.load(path)["w"], old["w"])
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]


class _Boom:
    def __reduce__(self):
        return (os.mkdir, (self.target,))


def test_load_never_unpickles(tmp_path):
    marker = tmp_path / "code_ran"
    boom = _Boom()
    boom.target = str(marker)
    evil = tmp_path / "evil.npz"
    evil.write_bytes(pickle.dumps({"w": boom}))
    with pytest.raises(nn.CheckpointError, match="evil.npz"):
        nn.load(evil)
    # an npz whose member is a pickled object array
    np.savez(tmp_path / "objects.npz", w=np.array([boom], dtype=object))
    with pytest.raises(nn.CheckpointError, match="objects.npz"):
        nn.load(tmp_path / "objects.npz")
    assert not marker.exists()


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        nn.load(tmp_path / "missing.npz")
    path = tmp_path / "ckpt.npz"
    nn.save({"w": np.arange(1000, dtype=np.float32)}, path)
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:300])
    with pytest.raises(nn.CheckpointError, match="cut.npz"):
        nn.load(tmp_path / "cut.npz")
    np.save(tmp_path / "single.npy", np.zeros(3))
    with pytest.raises(nn.CheckpointError, match="single array"):
        nn.load(tmp_path / "single.npy")


def test_save_rejects_what_it_cannot_store(tmp_path):
    with pytest.raises(TypeError, match="'w'"):
        nn.save({"w": np.array([object()], dtype=object)}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="mapping"):
        nn.save([np.zeros(2)], tmp_path / "x.npz")
    with pytest.raises(TypeError, match="strings"):
        nn.save({1: np.zeros(2)}, tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []
