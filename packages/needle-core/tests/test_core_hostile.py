"""Hostile and careless inputs to core (issue 17, items 5, 6 and 10): each was a crash or a silent
wrong answer; each must now be the right answer or a clear error that names the argument."""
import numpy as np
import pytest

import needle as ndl
from needle import backend_ndarray as nd
from needle import nn, ops

NP = ndl.cpu_numpy()


def _arr(x, dtype="float32"):
    return nd.array(np.asarray(x), dtype=dtype, device=NP)


# ---- item 5: views are bounds-checked once, in core, for every backend ------------------------------
def test_as_strided_outside_the_buffer_is_refused():
    x = _arr(np.arange(5))
    with pytest.raises(ValueError, match=r"as_strided: the view shape \(5, 5, 5\), strides \(1, 1000000, 0\), "
                                         r"offset 0 reaches outside its buffer of 5 elements"):
        x.as_strided((5, 5, 5), (1, 1000000, 0))
    with pytest.raises(ValueError, match="reaches outside"):
        x.as_strided((2,), (-1,))
    np.testing.assert_array_equal(x.as_strided((2, 2), (1, 1)).numpy(), [[0, 1], [1, 2]])  # inside: fine
    assert x.as_strided((0, 7), (1000, 1000)).shape == (0, 7)  # an empty view reaches nothing


def test_make_over_a_handle_is_bounds_checked_and_honours_its_offset():
    x = _arr(np.arange(6))
    view = nd.NDArray.make((4,), device=NP, handle=x._handle, offset=2)
    assert not view.is_compact()  # it does not start at the buffer's first element
    np.testing.assert_array_equal(view.numpy(), [2, 3, 4, 5])
    np.testing.assert_array_equal((view + 1).numpy(), [3, 4, 5, 6])
    np.testing.assert_array_equal(view.compact().numpy(), [2, 3, 4, 5])
    with pytest.raises(ValueError, match="reaches outside its buffer of 6 elements"):
        nd.NDArray.make((5,), device=NP, handle=x._handle, offset=2)
    with pytest.raises(ValueError, match="offset must be an int >= 0"):
        nd.NDArray.make((1,), device=NP, handle=x._handle, offset=-1)


# ---- item 6: silent wrong answers ----------------------------------------------------------------
def test_broadcast_to_a_negative_size_is_refused():
    with pytest.raises(ValueError, match=r"broadcast_to: shape must be a tuple of ints >= 0, got \(-1, 2, 3\)"):
        _arr(np.zeros((2, 3))).broadcast_to((-1, 2, 3))


def test_permute_with_an_axis_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"permute: axes \(3, 0\) are not a permutation of the 2 axes"):
        _arr(np.zeros((2, 3))).permute((3, 0))
    np.testing.assert_array_equal(_arr(np.arange(6).reshape(2, 3)).permute((-1, 0)).numpy(),
                                  np.arange(6).reshape(2, 3).T)


def test_setitem_and_tensor_of_none_are_errors_not_nan():
    x = _arr(np.zeros((2, 2)))
    with pytest.raises(TypeError):
        x[0] = None
    np.testing.assert_array_equal(x.numpy(), np.zeros((2, 2)))
    with pytest.raises(TypeError, match="None"):
        ndl.Tensor(None)


def test_complex_input_is_refused_not_truncated():
    with pytest.raises(TypeError, match="complex"):
        ndl.Tensor(np.array([1 + 2j]), dtype="float32")
    with pytest.raises(TypeError, match="complex"):
        ndl.Tensor(np.array([1 + 2j]))


def test_parameter_data_needs_the_same_shape_and_device():
    p = nn.Parameter(np.zeros((2, 3), np.float32), device=NP)
    with pytest.raises(ValueError, match=r"Tensor.data: new value has shape \(3, 2\), tensor has \(2, 3\)"):
        p.data = ndl.Tensor(np.zeros((3, 2), np.float32), device=NP)
    from needle.testing import register_reference_backend
    ref = register_reference_backend()
    with pytest.raises(ValueError, match="Tensor.data: new value is on reference"):
        p.data = ndl.Tensor(np.zeros((2, 3), np.float32), device=ref)


def test_relu_backward_gives_zero_at_inactive_units_even_for_nan_and_checks_the_shape():
    x = _arr([-1.0, 2.0, 0.0])
    g = _arr([np.nan, 3.0, np.inf])
    np.testing.assert_array_equal(x.relu_backward(g).numpy(), [0.0, 3.0, 0.0])
    with pytest.raises(ValueError, match=r"relu_backward: gradient of shape \(2,\) for an array of shape \(3,\)"):
        x.relu_backward(_arr([1.0, 2.0]))


# ---- item 10: messages that name the argument ---------------------------------------------------------
@pytest.mark.parametrize("other", [[1, 2], "ab", np.ones(3)])
def test_ndarray_plus_a_non_number_names_the_op(other):
    with pytest.raises(TypeError, match="add: expected an NDArray or a real Python number, got"):
        _arr([1.0, 2.0, 3.0]) + other


def test_matmul_bias_with_wrong_shapes():
    with pytest.raises(ValueError, match="matmul_bias: needs a .m, n. array"):
        _arr([1.0, 2.0]).matmul_bias(_arr(np.ones((2, 2))), _arr([0.0, 0.0]))
    with pytest.raises(ValueError, match="matmul_bias"):
        ops.matmul_bias(ndl.Tensor(np.ones((2, 3))), ndl.Tensor(np.ones((2, 2))), ndl.Tensor(np.ones(2)))


@pytest.mark.parametrize("axes", [None, ((0, -1),), ((0, 1.5),), ((0,),)])
def test_pad_with_bad_widths(axes):
    with pytest.raises(ValueError, match="pad: axes must be one .before, after. pair of ints >= 0 per axis"):
        _arr([1.0, 2.0]).pad(axes)


def test_a_float_axis_is_a_type_error():
    with pytest.raises(TypeError, match=r"axes must be an int, a tuple of ints or None, got 1.5"):
        ops.summation(ndl.Tensor(np.ones((2, 2))), axes=1.5)


def test_device_given_by_name():
    t = ndl.Tensor([1.0, 2.0], device="numpy")
    assert t.device == NP
    with pytest.raises(ndl.backends.DeviceUnavailableError, match="no backend named 'nosuchbackend'"):
        ndl.Tensor([1.0], device="nosuchbackend")


def test_sequential_refuses_a_non_module_and_linear_names_a_raw_array():
    with pytest.raises(TypeError, match="Sequential: argument 1 is a function, not a Module"):
        nn.Sequential(nn.ReLU(), lambda x: x)
    layer = nn.Linear(3, 2, device=NP)
    with pytest.raises(TypeError, match=r"Linear: expected a Tensor input, got ndarray; wrap it with ndl.Tensor\(x\)"):
        layer(np.ones((4, 3), np.float32))
