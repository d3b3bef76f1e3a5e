"""nn.save / nn.load: npz round trip, atomic writes, no code execution, clear load errors."""
import io
import os
import pickle
import signal
import struct
import subprocess
import sys
import warnings
import zipfile

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


# ---- reliability (issue 17): killed saves, hostile archives, clear errors -------------------------
def _temporaries(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


_HANGING_SAVE = """
import sys, time
import numpy as np
from needle.nn import checkpoint

def hanging_writer(fileobj, arrays):
    fileobj.write(b"PK\\x03\\x04 half a zip")
    fileobj.flush()
    print("writing", flush=True)
    time.sleep(120)

checkpoint._write_npz = hanging_writer
checkpoint.save({"w": np.ones(4, dtype=np.float32)}, sys.argv[1])
"""


def test_a_save_killed_mid_write_leaves_a_temporary_the_next_save_removes(tmp_path):
    path = tmp_path / "ckpt.npz"
    nn.save({"w": np.zeros(4, dtype=np.float32)}, path)
    writer = subprocess.Popen([sys.executable, "-c", _HANGING_SAVE, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "writing\n"
        [leftover] = _temporaries(tmp_path)
        assert leftover.startswith(".ckpt.npz.") and str(writer.pid) in leftover
        # Not ours to touch: other targets' temporaries, names we do not make, a live writer's file.
        unrelated = [f".other.npz.needle-{writer.pid}-abc123.tmp", ".ckpt.npz.abc123.tmp", "ckpt.npz.tmp"]
        for name in unrelated:
            (tmp_path / name).write_bytes(b"x")
        nn.save({"w": np.ones(4, dtype=np.float32)}, path)
        assert leftover in _temporaries(tmp_path)  # its writer is alive and holds its lock
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
    assert writer.returncode == -signal.SIGKILL
    nn.save({"w": np.full(4, 2.0, dtype=np.float32)}, path)
    assert _temporaries(tmp_path) == sorted(n for n in unrelated if n.endswith(".tmp"))
    np.testing.assert_array_equal(nn.load(path)["w"], np.full(4, 2.0, dtype=np.float32))


def test_a_leftover_named_with_our_own_pid_is_stale_unless_a_save_here_is_writing_it(tmp_path):
    # An earlier process that had this pid (a restarted container) was killed mid-save.
    stale = tmp_path / f".ckpt.npz.needle-{os.getpid()}-zz9.tmp"
    stale.write_bytes(b"PK")
    nn.save({"w": np.zeros(2)}, tmp_path / "ckpt.npz")
    assert _temporaries(tmp_path) == []


_DAEMON_SAVE_THEN_EXIT = """
import os, sys, threading, time
import numpy as np
from needle.nn import checkpoint

def hanging_writer(fileobj, arrays):
    fileobj.write(b"PK")
    started.set()
    time.sleep(120)

started = threading.Event()
checkpoint._write_npz = hanging_writer
path = sys.argv[1]
threading.Thread(target=checkpoint.save, args=({"w": np.ones(2)}, path), daemon=True).start()
started.wait()
assert any(n.endswith(".tmp") for n in os.listdir(os.path.dirname(path)))
"""


def test_a_save_unfinished_at_a_normal_exit_removes_its_temporary(tmp_path):
    subprocess.run([sys.executable, "-c", _DAEMON_SAVE_THEN_EXIT, str(tmp_path / "ckpt.npz")],
                   check=True, timeout=120)
    assert os.listdir(tmp_path) == []


def test_save_into_a_missing_folder_names_the_folder(tmp_path):
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError) as info:
        nn.save({"w": np.zeros(2)}, missing / "ckpt.npz")
    assert f"folder {str(missing)!r} does not exist" in str(info.value) and ".tmp" not in str(info.value)


def test_a_key_with_a_nul_byte_is_refused_on_save(tmp_path):
    with pytest.raises(ValueError, match="NUL byte"):
        nn.save({"a\x00b": np.zeros(2)}, tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def _zip_with(path, members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, payload in members:
            archive.writestr(name, payload)
    return path


def _npy_bytes(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array)
    return buffer.getvalue()


def test_a_member_with_a_nul_byte_in_its_name_is_refused_on_load(tmp_path):
    path = _zip_with(tmp_path / "nul.npz", [("wXevil.npy", _npy_bytes(np.zeros(2)))])
    path.write_bytes(path.read_bytes().replace(b"wXevil.npy", b"w\x00evil.npy"))  # zipfile cannot write a NUL
    with pytest.raises(nn.CheckpointError, match=r"nul\.npz.*NUL byte"):
        nn.load(path)


def test_a_member_that_is_not_npy_is_refused(tmp_path):
    path = _zip_with(tmp_path / "text.npz", [("w.npy", _npy_bytes(np.zeros(2))), ("notes.txt", b"hello")])
    with pytest.raises(nn.CheckpointError, match=r"text\.npz.*'notes\.txt' that is not a \.npy array"):
        nn.load(path)
    path = _zip_with(tmp_path / "fake.npz", [("w.npy", b"hello, not an array")])
    with pytest.raises(nn.CheckpointError, match=r"fake\.npz.*'w' is not a valid \.npy array"):
        nn.load(path)


def test_a_key_stored_twice_is_refused(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name we make on purpose
        path = _zip_with(tmp_path / "twice.npz",
                         [("w.npy", _npy_bytes(np.zeros(2))), ("w.npy", _npy_bytes(np.ones(2)))])
    with pytest.raises(nn.CheckpointError, match=r"twice\.npz.*'w' twice"):
        nn.load(path)


def test_random_bytes_are_not_a_needle_checkpoint(tmp_path):
    path = tmp_path / "noise.bin"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(nn.CheckpointError) as info:
        nn.load(path)
    assert "noise.bin" in str(info.value) and "not a Needle checkpoint" in str(info.value)
    assert "pickle" not in str(info.value)


def test_a_header_claiming_more_than_the_member_holds_is_refused_before_allocating(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2 ** 40,)})
    path = _zip_with(tmp_path / "huge.npz", [("w.npy", header.getvalue() + bytes(16))])
    with pytest.raises(nn.CheckpointError) as info:
        nn.load(path)
    message = str(info.value)
    assert "huge.npz" in message and "'w'" in message and f"({4 * 2 ** 40} bytes) but holds 16 bytes" in message


def test_a_member_claiming_more_than_deflate_can_expand_to_is_refused(tmp_path):
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, w=np.zeros(1000, dtype=np.float32))
    raw = bytearray(path.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # uncompressed size, both headers
        at = raw.index(signature) + offset
        raw[at:at + 4] = struct.pack("<I", 0xFFFFFFF0)
    path.write_bytes(bytes(raw))
    with pytest.raises(nn.CheckpointError, match=rf"bomb\.npz.*'w' claims {0xFFFFFFF0} bytes, more than"):
        nn.load(path)


def test_numpy_written_npz_files_load(tmp_path):
    a, b = np.arange(6, dtype=np.int32).reshape(2, 3), np.linspace(0, 1, 5)
    np.savez(tmp_path / "plain.npz", a=a, b=b)
    np.savez_compressed(tmp_path / "packed.npz", a=a, b=b)
    for name in ("plain.npz", "packed.npz"):
        loaded = nn.load(tmp_path / name)
        assert list(loaded) == ["a", "b"]
        np.testing.assert_array_equal(loaded["a"], a)
        np.testing.assert_array_equal(loaded["b"], b)
