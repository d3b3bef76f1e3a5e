"""Bad input raises an error that names the argument and the shapes, dtypes or devices."""
import numpy as np
import pytest

import needle as ndl
from needle import ops
from needle.testing import register_reference_backend

NP = ndl.cpu_numpy()


def T(shape, dtype="float32", device=NP):
    return ndl.Tensor(np.ones(shape), device=device, dtype=dtype)


@pytest.mark.parametrize("fn", [ops.add, ops.multiply, ops.divide, ops.power, lambda a, b: a - b])
def test_mismatched_shapes(fn):
    with pytest.raises(ValueError, match=r"shapes \(2, 3\) and \(3, 2\) cannot be broadcast"):
        fn(T((2, 3)), T((3, 2)))


def test_matmul_shapes():
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\).*\(2, 3\).*not aligned"):
        T((2, 3)) @ T((2, 3))
    # 1-D operands follow numpy (API.md "PyTorch habits"): a mismatch names the shapes as given
    with pytest.raises(ValueError, match=r"matmul.*\(3,\).*\(4, 2\).*not aligned"):
        T((3,)) @ T((4, 2))
    with pytest.raises(ValueError, match=r"matmul.*1 dimension.*\(\)"):
        T(()) @ T((3, 2))
    with pytest.raises(ValueError, match=r"matmul: batch dimensions of \(2, 1, 3\) and \(3, 3, 1\)"):
        T((2, 1, 3)) @ T((3, 3, 1))


def test_mixed_float_dtypes_promote_and_gradients_keep_input_dtype():
    # numpy 2 makes `float32_array / np.sqrt(n)` float64, so course code mixes the two:
    # the op promotes to float64 and each gradient comes back in its input's dtype.
    a_np, b_np = np.array([1.0, 2.0], np.float32), np.array([3.0, 4.0])
    dev = ndl.cpu_numpy()
    a, b = ndl.Tensor(a_np, device=dev), ndl.Tensor(b_np, device=dev)
    out = a * b
    assert out.dtype == "float64"
    np.testing.assert_allclose(out.numpy(), a_np.astype(np.float64) * b_np)
    out.sum().backward()
    assert a.grad.dtype == "float32" and b.grad.dtype == "float64"
    np.testing.assert_allclose(a.grad.numpy(), b_np.astype(np.float32))
    np.testing.assert_allclose(b.grad.numpy(), a_np.astype(np.float64))
    m = ndl.Tensor(np.ones((2, 3)), device=dev) @ ndl.Tensor(np.ones((3, 2), np.float32), device=dev)
    assert m.dtype == "float64"


def test_mixed_dtypes_without_a_common_dtype_on_the_device():
    ref = register_reference_backend()  # no float64
    a = ndl.Tensor(np.ones(2, np.float32), device=ref)
    with pytest.raises(TypeError, match=r"backend 'reference' \(device reference\(\)\) does not support "
                                        r"dtype 'float64'; it supports float32"):
        a.astype("float64")


def test_two_devices():
    ref = register_reference_backend()
    with pytest.raises(ValueError, match=r"different devices: a on cpu_numpy\(\), b on reference\(\)"):
        T((2,)) * T((2,), device=ref)
    with pytest.raises(ValueError, match="different devices"):
        T((2, 2), device=ref) @ T((2, 2))
    with pytest.raises(ValueError, match="tensor 1 is on"):
        ops.stack([T((2,)), T((2,), device=ref)], 0)


def test_backend_without_dtype():
    ref = register_reference_backend()
    with pytest.raises(TypeError, match=r"backend 'reference' \(device reference\(\)\) does not support "
                                        r"dtype 'float64'; it supports float32"):
        ndl.Tensor(np.ones(2), device=ref, dtype="float64")


@pytest.mark.parametrize("call", [
    lambda a: ops.summation(a, axes=3),
    lambda a: ops.max(a, axes=(0, -4)),
    lambda a: ops.logsumexp(a, axes=5),
    lambda a: ops.flip(a, 3),
    lambda a: ops.mean(a, 7),
], ids=["summation", "max", "logsumexp", "flip", "mean"])
def test_axis_out_of_range(call, request):
    op = request.node.callspec.id
    with pytest.raises(ValueError, match=rf"^{op}: axes=.* out of range for shape \(2, 3, 4\) with 3 dimensions"):
        call(T((2, 3, 4)))


def test_axis_errors_name_the_function_argument_and_shape():
    with pytest.raises(ValueError, match=r"logsoftmax: axis=2 is out of range for shape \(3, 4\)"):
        ops.logsoftmax(T((3, 4)), axis=2)
    with pytest.raises(ValueError, match=r"transpose: axes=\(0, 5\) is out of range for shape \(2, 3, 4\)"):
        ops.transpose(T((2, 3, 4)), (0, 5))
    with pytest.raises(ValueError, match=r"concatenate: axis=-4 is out of range for shape \(2, 3, 4\)"):
        ops.concatenate([T((2, 3, 4))], -4)
    with pytest.raises(ValueError, match=r"axis=\(1, 3\) is out of range for shape \(2, 3, 4\)"):
        T((2, 3, 4)).realize_cached_data().sum(axis=(1, 3))
    with pytest.raises(ValueError, match=r"^add: shapes \(2, 3\) and \(3, 2\) cannot be broadcast"):
        T((2, 3)).realize_cached_data() + T((3, 2)).realize_cached_data()


def test_boolean_index_is_refused_not_read_as_an_int():
    # numpy reads t[True] as a mask (shape (1, 3)); Python's bool is an int (t[1], shape ()).
    with pytest.raises(TypeError, match="boolean"):
        T((3,))[True]


def test_axis_out_of_range_tuple_ops():
    with pytest.raises(ValueError, match=r"axis=3 is out of range"):
        ops.split(T((2, 3, 4)), 3)
    with pytest.raises(ValueError, match=r"axis=4 is out of range"):
        ops.stack([T((2, 3, 4))], 4)
    with pytest.raises(ValueError, match=r"transpose.*two axes"):
        ops.transpose(T((2, 3, 4)), (0, 1, 2))


def test_reshape_to_wrong_size():
    with pytest.raises(ValueError, match=r"reshape: cannot reshape tensor of shape \(2, 3\) \(size 6\) into "
                                         r"shape \(4, 2\)"):
        ops.reshape(T((2, 3)), (4, 2))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(-1, 4\)"):
        T((2, 3)).reshape((-1, 4))


def test_broadcast_to_and_stack_shapes():
    with pytest.raises(ValueError, match=r"broadcast_to: cannot broadcast tensor of shape \(2, 3\) to shape \(2,\)"):
        ops.broadcast_to(T((2, 3)), (2,))
    with pytest.raises(ValueError, match=r"stack: all tensors must have one shape.*\(2,\).*\(3,\)"):
        ops.stack([T((2,)), T((3,))], 0)
    with pytest.raises(ValueError, match=r"concatenate: tensor 1 has shape \(3, 3\).*\(2, 2\)"):
        ops.concatenate([T((2, 2)), T((3, 3))], 1)
    with pytest.raises(ValueError, match=r"pad.*\(2, 2\)"):
        ops.pad(T((2, 2)), ((1, 1),))


def test_scalar_ops_reject_arrays_of_several_elements():
    with pytest.raises(TypeError, match=r"add_scalar: expected a number or a one-element array of numbers, "
                                        r"got an array of shape \(2,\)"):
        ops.add_scalar(T((2,)), np.ones(2))
    with pytest.raises(TypeError, match="mul_scalar: expected a real number, got complex"):
        ops.mul_scalar(T((2,)), 1j)


def test_scalar_ops_take_numpy_scalars_and_one_element_arrays():
    # The course passes ``scalar=np.random.randn(1)``; a numpy scalar must not drive the dtype.
    x = np.array([1.0, -2.0, 3.5], dtype=np.float32)
    for scalar in (np.array([2.5]), np.float64(2.5), np.array(2.5), 2.5):
        for op, want in ((ops.add_scalar, x + 2.5), (ops.mul_scalar, x * 2.5), (ops.divide_scalar, x / 2.5)):
            out = op(ndl.Tensor(x), scalar)
            assert out.dtype == "float32"
            np.testing.assert_allclose(out.numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(ops.power_scalar(ndl.Tensor(x), np.array([2])).numpy(), x ** 2)


def test_data_and_backward_arguments():
    x = T((2,))
    with pytest.raises(TypeError, match="Tensor.data: new value has dtype float64, tensor has float32"):
        x.data = T((2,), "float64")
    with pytest.raises(ValueError, match=r"backward: out_grad has shape \(3,\), tensor has shape \(2,\)"):
        (x * 2.0).backward(T((3,)))


def test_getitem_out_of_bounds():
    with pytest.raises(IndexError, match="index 5 is out of bounds for axis 1 with size 3"):
        T((2, 3))[:, 5]


def test_getitem_rejects_bad_indices():
    with pytest.raises(IndexError, match="arrays used as indices must be of integer or bool type, got float64"):
        T((2, 3))[np.array([0.5, 1.0])]
    with pytest.raises(IndexError, match=r"boolean index of shape \(3,\) does not match tensor of shape \(2, 3\)"):
        T((2, 3))[np.array([True, False, True])]
    with pytest.raises(IndexError, match="index 2 is out of bounds for axis 0 with size 2"):
        T((2, 3))[np.array([0, 2])]
    with pytest.raises(IndexError, match="on the first axis only"):
        T((2, 3))[:, np.array([0, 1])]
    with pytest.raises(IndexError, match=r"too many indices \(3\) for a tensor of shape \(2, 3\)"):
        T((2, 3))[0, 0, 0]
