"""Regression tests for what the fuzzing suite (needle.testing.test_fuzz_ndarray) found in core."""
import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd
from needle.testing import register_reference_backend


@pytest.mark.parametrize("shape", [(2**64,), (2**62, 0), (2**30, 2**30), (0, 2**40, 2**40)])
def test_views_beyond_2_58_elements_are_refused_when_made(shape):
    # broadcast_to((2**64,)) used to succeed and raise OverflowError (numpy backend) or a
    # "too large" ValueError (cpu) only when the view was read.
    for dev in (ndl.device("numpy"), register_reference_backend()):
        x = nd.array(np.float32(1.5), device=dev)
        with pytest.raises(ValueError, match="2\\*\\*58"):
            x.broadcast_to(shape)
        with pytest.raises(ValueError, match="2\\*\\*58"):
            x.as_strided(shape, (0,) * len(shape))
        with pytest.raises(ValueError, match="2\\*\\*58"):
            nd.empty(shape, device=x.device)


def test_reshape_of_an_empty_array_to_a_huge_shape_is_refused():
    # (0,) -> (-1, 2**62) gave shape (0, 2**62); reading it overflowed numpy's (and pybind11's) strides.
    for dev in (ndl.device("numpy"), register_reference_backend()):
        x = nd.array(np.zeros(0, np.float32), device=dev)
        with pytest.raises(ValueError, match="2\\*\\*58"):
            x.reshape((-1, 2**62))
        with pytest.raises(ValueError, match="2\\*\\*58"):
            x.reshape((0, 2**40, 2**40))
        assert x.reshape((-1, 5)).shape == (0, 5)


def test_empty_views_with_huge_strides_are_refused():
    # as_strided((0,), (2**62,)) passed (an empty view reaches nothing), then reading it overflowed
    # numpy's byte strides (OverflowError) on the numpy backend.
    for dev in (ndl.device("numpy"), register_reference_backend()):
        x = nd.array(np.zeros(3, np.float32), device=dev)
        for strides in ((2**62,), (-2**62,), (2**64,)):
            with pytest.raises(ValueError, match="strides"):
                x.as_strided((0,), strides)
        with pytest.raises(ValueError, match="strides"):
            x.as_strided((0,), (1.5,))
        assert x.as_strided((0,), (2**58,)).numpy().shape == (0,)
