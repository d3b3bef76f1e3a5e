"""The built-in numpy backend beyond what the conformance suite checks: what it declares, and that
its kernels return IEEE values and wrapped integers without numpy's RuntimeWarnings."""
import subprocess
import sys

from needle.backend_ndarray import numpy_backend, protocol


def test_numpy_backend_declares_protocol_2_and_every_dtype():
    assert numpy_backend.PROTOCOL_VERSION == protocol.PROTOCOL_VERSION == 2
    assert sorted(numpy_backend.DTYPES) == sorted(protocol.ALL_DTYPES)
    assert protocol.missing_kernels(numpy_backend) == []
    assert set(protocol.OPTIONAL_KERNELS_V2) <= set(protocol.optional_kernels(numpy_backend))


_NOISY_KERNELS = r'''
import numpy as np
from needle.backend_ndarray import numpy_backend as nb

def buf(values, dtype):
    out = nb.Array(len(values), dtype)
    nb.from_numpy(np.array(values, dtype=dtype), out)
    return out

for dt in ("float32", "float64"):
    x = buf([0.0, -1.0, np.nan, np.inf, -np.inf, 3e38], dt)
    y = buf([0.0, 0.0, 1.0, np.inf, np.inf, 3e38], dt)
    out, mask = nb.Array(6, dt), nb.Array(6, "bool")
    for name in ("ewise_add", "ewise_sub", "ewise_mul", "ewise_div", "ewise_power", "ewise_maximum", "ewise_eq",
                 "ewise_ge", "ewise_lt"):
        getattr(nb, name)(x, y, mask if name[-2:] in ("eq", "ge", "lt") else out)
    for name in ("ewise_log", "ewise_exp", "ewise_sqrt", "ewise_tanh", "ewise_sigmoid", "ewise_abs"):
        getattr(nb, name)(x, out)
    for name in ("scalar_div", "scalar_rdiv", "scalar_power", "scalar_mul"):
        getattr(nb, name)(x, 0.0, out)
    nb.scalar_mul(x, 1e300, out)
    nb.scalar_ge(x, float("nan"), mask)
    nb.reduce_sum(x, nb.Array(1, dt), 6)
    nb.reduce_argmax(x, nb.Array(1, "int64"), 6)
    nb.matmul(buf([np.inf, 1.0], dt), buf([0.0, 1.0], dt), nb.Array(1, dt), 1, 2, 1)
    for target in ("int32", "int64", "uint8", "bool", "float32"):
        nb.cast(x, nb.Array(6, target))
big = buf([2 ** 31 - 1, -2 ** 31], "int32")
out = nb.Array(2, "int32")
for name in ("ewise_add", "ewise_mul", "ewise_sub"):
    getattr(nb, name)(big, big, out)
nb.scalar_mul(big, 3, out)
nb.ewise_neg(big, out)
nb.ewise_abs(big, out)
nb.reduce_sum(big, nb.Array(1, "int32"), 2)
nb.scalar_rsub(buf([5, 200], "uint8"), 3, nb.Array(2, "uint8"))
print("done")
'''


def test_kernels_give_ieee_values_and_wrapped_integers_without_warnings():
    # In a fresh interpreter with Python's default warning filters (pytest's per-test filters would
    # hide what a user sees): every RuntimeWarning numpy raises in these kernels must stay inside.
    proc = subprocess.run([sys.executable, "-c", _NOISY_KERNELS], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"
    assert "Warning" not in proc.stderr, proc.stderr
