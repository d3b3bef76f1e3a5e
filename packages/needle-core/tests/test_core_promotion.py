"""The promotion rule of API.md ("Dtypes") as a table over every pair of dtypes, scalars included.

The expected results are PyTorch's ``torch.result_type`` for a tensor with dims of each dtype and
a second such tensor or a Python scalar, written out by hand below; where torch is installed the
table is also checked against torch itself, and on the numpy backend against real ops.
"""
import numpy as np
import pytest

import needle as ndl
from needle import _dtypes

DTYPES = ("bool", "uint8", "int32", "int64", "float32", "float64")

# TENSOR_PAIRS[a][b]: torch.result_type(tensor of a, tensor of b), rows and columns in DTYPES order.
_ROWS = {
    "bool":    ("bool", "uint8", "int32", "int64", "float32", "float64"),
    "uint8":   ("uint8", "uint8", "int32", "int64", "float32", "float64"),
    "int32":   ("int32", "int32", "int32", "int64", "float32", "float64"),
    "int64":   ("int64", "int64", "int64", "int64", "float32", "float64"),
    "float32": ("float32", "float32", "float32", "float32", "float32", "float64"),
    "float64": ("float64", "float64", "float64", "float64", "float64", "float64"),
}
TENSOR_PAIRS = {(a, b): _ROWS[a][i] for a in DTYPES for i, b in enumerate(DTYPES)}

SCALARS = {"True": True, "2": 2, "2.5": 2.5}
# torch.result_type(tensor of a, Python scalar).
WITH_SCALAR = {
    ("bool", "True"): "bool", ("bool", "2"): "int64", ("bool", "2.5"): "float32",
    **{(d, "True"): d for d in DTYPES[1:]},
    **{(d, "2"): d for d in DTYPES[1:]},
    **{(d, "2.5"): "float32" for d in ("uint8", "int32", "int64")},
    ("float32", "2.5"): "float32", ("float64", "2.5"): "float64",
}


def test_the_table_covers_every_pair():
    assert len(TENSOR_PAIRS) == 36 and len(WITH_SCALAR) == 18
    for a in DTYPES:
        for b in DTYPES:
            assert TENSOR_PAIRS[(a, b)] == TENSOR_PAIRS[(b, a)]  # symmetric


@pytest.mark.parametrize("pair", sorted(TENSOR_PAIRS), ids=lambda p: f"{p[0]}-{p[1]}")
def test_promote_matches_the_table(pair):
    assert _dtypes.promote(*pair) == TENSOR_PAIRS[pair]


@pytest.mark.parametrize("pair", sorted(WITH_SCALAR), ids=lambda p: f"{p[0]}-{p[1]}")
def test_scalar_promotion_matches_the_table(pair):
    assert _dtypes.with_scalar(pair[0], SCALARS[pair[1]]) == WITH_SCALAR[pair]


@pytest.mark.parametrize("pair", sorted(TENSOR_PAIRS), ids=lambda p: f"{p[0]}-{p[1]}")
def test_real_ops_follow_the_table(pair):
    dev = ndl.cpu_numpy()
    a = ndl.Tensor(np.ones(3, dtype=pair[0]), device=dev)
    b = ndl.Tensor(np.ones(3, dtype=pair[1]), device=dev)
    assert (a + b).dtype == TENSOR_PAIRS[pair]
    assert ops_where_dtype(a, b) == TENSOR_PAIRS[pair]


def ops_where_dtype(a, b):
    cond = ndl.Tensor(np.array([True, False, True]), device=a.device)
    return ndl.where(cond, a, b).dtype


@pytest.mark.parametrize("pair", sorted(WITH_SCALAR), ids=lambda p: f"{p[0]}-{p[1]}")
def test_real_scalar_ops_follow_the_table(pair):
    a = ndl.Tensor(np.ones(3, dtype=pair[0]), device=ndl.cpu_numpy())
    scalar = SCALARS[pair[1]]
    assert (a * scalar).dtype == WITH_SCALAR[pair]
    assert (scalar * a).dtype == WITH_SCALAR[pair]


def test_the_table_is_pytorchs():
    torch = pytest.importorskip("torch")
    tdt = {d: getattr(torch, d) for d in DTYPES}
    for (a, b), want in TENSOR_PAIRS.items():
        got = torch.result_type(torch.ones(2, dtype=tdt[a]), torch.ones(2, dtype=tdt[b]))
        assert got == tdt[want], (a, b, got)
    for (a, s), want in WITH_SCALAR.items():
        got = torch.result_type(torch.ones(2, dtype=tdt[a]), SCALARS[s])
        assert got == tdt[want], (a, s, got)
