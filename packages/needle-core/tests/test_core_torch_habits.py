"""API.md "PyTorch habits" in needle-core: reduction spellings, min, softmax, top-level factories,
Tensor conversion and view helpers, 1-D matmul and dot.

Every alias is checked against numpy or hand-derived values (and gradients against finite
differences), so these tests run without PyTorch; where PyTorch is installed, the ``torch_``
tests also run the same call in PyTorch and compare.
"""
import numpy as np
import pytest

import needle as ndl
from needle import ops
from needle.testing import gradcheck

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 4, 5))


def T(x, dtype=None, requires_grad=True):
    return ndl.Tensor(np.asarray(x), dtype=dtype, requires_grad=requires_grad)


def _lse(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ---- reductions: every spelling, as function and method ----------------------------------------
REDUCTIONS = [  # (function, method name, numpy reference)
    (ops.summation, "sum", np.sum),
    (ops.mean, "mean", np.mean),
    (ops.max, "max", np.max),
    (ops.min, "min", np.min),
    (ops.logsumexp, "logsumexp", _lse),
]


@pytest.mark.parametrize("fn, method, ref", REDUCTIONS, ids=[r[1] for r in REDUCTIONS])
@pytest.mark.parametrize("spelling", ["axes", "axis", "dim", "positional"])
@pytest.mark.parametrize("axes", [1, -1, (0, 2), None])
@pytest.mark.parametrize("keep", ["keepdims", "keepdim", None])
def test_reduction_spellings(fn, method, ref, spelling, axes, keep):
    kwargs = {} if keep is None else {keep: True}
    expected = ref(X, axis=axes, keepdims=keep is not None)
    if spelling == "positional":
        got_fn, got_method = fn(T(X), axes, **kwargs), getattr(T(X), method)(axes, **kwargs)
    else:
        kwargs[spelling] = axes
        got_fn, got_method = fn(T(X), **kwargs), getattr(T(X), method)(**kwargs)
    for got in (got_fn, got_method):
        assert got.shape == expected.shape
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fn, method, ref", REDUCTIONS, ids=[r[1] for r in REDUCTIONS])
def test_reduction_course_calls_stay(fn, method, ref):
    # summation(a, axes), logsumexp(a, axes=None), positional keepdims (max's course signature)
    np.testing.assert_allclose(fn(T(X)).numpy(), ref(X), rtol=1e-12)
    np.testing.assert_allclose(fn(T(X), (1,)).numpy(), ref(X, axis=1), rtol=1e-12)
    np.testing.assert_allclose(fn(T(X), axes=(1,)).numpy(), ref(X, axis=1), rtol=1e-12)
    assert fn(T(X), (1,), True).shape == (3, 1, 5)
    assert getattr(T(X), method)().shape == ()


@pytest.mark.parametrize("fn", [ops.summation, ops.mean, ops.max, ops.min, ops.logsumexp, ops.argmax, ops.argmin])
@pytest.mark.parametrize("pair", [("axes", "dim"), ("axis", "dim"), ("axes", "axis"), ("keepdims", "keepdim")])
def test_two_spellings_of_one_argument_is_a_type_error_naming_both(fn, pair):
    value = True if pair[0] == "keepdims" else 0
    with pytest.raises(TypeError) as info:
        fn(T(X), **{pair[0]: value, pair[1]: value})
    assert f"{pair[0]}=" in str(info.value) and f"{pair[1]}=" in str(info.value)


@pytest.mark.parametrize("fn", [ops.softmax, ops.logsoftmax])
@pytest.mark.parametrize("pair", [("axis", "dim"), ("axes", "dim"), ("axis", "axes")])
def test_two_spellings_of_the_softmax_axis(fn, pair):
    with pytest.raises(TypeError, match=f"{pair[0]}=.*{pair[1]}="):
        fn(T(X), **{pair[0]: 1, pair[1]: 1})
    with pytest.raises(TypeError, match="axes=.*dim="):
        T(X).sum(axes=1, dim=1)


@pytest.mark.parametrize("name, ref", [("argmax", np.argmax), ("argmin", np.argmin)])
def test_argmax_argmin_spellings(name, ref):
    x = np.array([[1.0, 3.0, 3.0], [2.0, 0.0, 0.0]])  # ties: the first index
    fn = getattr(ops, name)
    for kwargs in ({"axis": 1}, {"axes": 1}, {"dim": 1}):
        assert getattr(T(x), name)(**kwargs).numpy().tolist() == ref(x, axis=1).tolist()
        assert fn(T(x), **kwargs).dtype == "int64"
    assert fn(T(x), 1, True).shape == (2, 1)
    assert getattr(T(x), name)(dim=0, keepdim=True).numpy().tolist() == ref(x, axis=0, keepdims=True).tolist()
    assert int(getattr(T(x), name)()) == int(ref(x))


@pytest.mark.parametrize("spelling", ["axis", "axes", "dim", "positional", None])
@pytest.mark.parametrize("name, ref", [("softmax", _softmax),
                                       ("logsoftmax", lambda x, axis=-1: np.log(_softmax(x, axis)))])
def test_softmax_and_logsoftmax_spellings(spelling, name, ref):
    fn = getattr(ops, name)
    if spelling is None:  # logsoftmax(a): the course's call, the last axis
        got, expected = fn(T(X)), ref(X)
    elif spelling == "positional":
        got, expected = fn(T(X), 1), ref(X, 1)
    else:
        got, expected = getattr(T(X), name)(**{spelling: 0}), ref(X, 0)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(T(X).log_softmax(dim=1).numpy(), np.log(_softmax(X, 1)), rtol=1e-10)


@pytest.mark.parametrize("name", ["softmax", "logsoftmax"])
def test_softmax_accepts_keepdims_like_the_reductions(name):
    # Listed with the reductions in API.md: keepdims/keepdim are accepted and the shape is a's anyway.
    t = T(X)
    assert getattr(t, name)(dim=1, keepdim=True).shape == X.shape
    assert getattr(ops, name)(t, axis=0, keepdims=False).shape == X.shape
    with pytest.raises(TypeError, match="keepdims=.*keepdim="):
        getattr(ops, name)(t, keepdims=True, keepdim=True)


def test_softmax_is_stable_and_has_a_gradient():
    big = np.array([[1000.0, 0.0, -1000.0], [5.0, 5.0, 5.0]])
    np.testing.assert_allclose(ops.softmax(T(big), 1).numpy(), [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], atol=1e-12)
    gradcheck(lambda a: ops.softmax(a, axis=1), RNG.standard_normal((3, 4)))
    gradcheck(lambda a: a.softmax(dim=0), RNG.standard_normal((3, 4)))
    gradcheck(lambda a: ops.logsumexp(a, dim=1, keepdim=True), RNG.standard_normal((3, 4)))


def test_min_gradient_is_shared_evenly_between_ties():
    x = T(np.array([[1.0, 1.0, 3.0], [2.0, 0.0, 0.0]]))
    ops.min(x, axis=1).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [[0.5, 0.5, 0.0], [0.0, 0.5, 0.5]])
    y = T(np.array([[4.0, 1.0], [1.0, 2.0]]))
    y.min().backward()
    np.testing.assert_allclose(y.grad.numpy(), [[0.0, 0.5], [0.5, 0.0]])
    gradcheck(lambda a: a.min(dim=0, keepdim=True), RNG.standard_normal((3, 4)))
    gradcheck(lambda a: ops.min(a, (0, 2)), RNG.standard_normal((2, 3, 4)))


def test_min_of_integers_and_errors():
    assert ops.min(ndl.tensor([[3, 1], [2, 5]]), dim=1).numpy().tolist() == [1, 2]
    with pytest.raises(ValueError, match="min: zero-size"):
        ops.min(T(np.zeros((0, 3))), axis=0)
    with pytest.raises(ValueError, match="min"):
        ops.min(T(X), axis=3)


def test_sum_of_bool_and_mean_of_int():
    t = ndl.tensor([[True, False], [True, True]])
    assert t.sum(dim=0).dtype == "int64" and t.sum(dim=0).tolist() == [2, 1]
    m = ndl.tensor([[1, 2], [3, 4]]).mean(dim=1, keepdim=True)
    assert m.dtype == "float32" and m.tolist() == [[1.5], [3.5]]


# ---- top-level factories ---------------------------------------------------------------------------
def test_tensor_dtypes_and_requires_grad():
    assert ndl.tensor([1.0, 2.0]).dtype == "float32"
    assert ndl.tensor(2.5).dtype == "float32" and ndl.tensor(2.5).shape == ()
    assert ndl.tensor([1, 2]).dtype == "int64"
    assert ndl.tensor([True, False]).dtype == "bool"
    assert ndl.tensor(np.zeros(2)).dtype == "float64"  # a numpy array keeps its dtype
    assert ndl.tensor(np.zeros(2, np.int32)).dtype == "int32"
    assert ndl.tensor([1, 2], dtype="float64").dtype == "float64"
    t = ndl.tensor([1.0, 2.0])
    assert t.requires_grad is False and t.is_leaf()
    assert ndl.tensor([1.0], requires_grad=True).requires_grad is True
    with pytest.raises(TypeError, match="requires_grad"):
        ndl.tensor([1, 2], requires_grad=True)


def test_tensor_copies_its_input():
    source = np.array([1.0, 2.0])
    t = ndl.tensor(source)
    source[0] = 9.0
    assert t.tolist() == [1.0, 2.0]
    u = ndl.tensor(t)
    assert u.tolist() == [1.0, 2.0] and u.realize_cached_data() is not t.realize_cached_data()


@pytest.mark.parametrize("name, value", [("zeros", 0.0), ("ones", 1.0)])
def test_zeros_ones_shapes_and_dtypes(name, value):
    fn = getattr(ndl, name)
    assert fn is getattr(ndl.init, name)  # one mechanism: the course's function
    for t in (fn(2, 3), fn((2, 3)), fn([2, 3])):
        assert t.shape == (2, 3) and t.dtype == "float32" and not t.requires_grad
        np.testing.assert_array_equal(t.numpy(), np.full((2, 3), value))
    assert fn(4, dtype="int64").dtype == "int64"
    assert fn(2, dtype=np.float64).dtype == "float64"
    assert fn(2, requires_grad=True).requires_grad
    assert fn(2, device=ndl.cpu_numpy()).device == ndl.cpu_numpy()
    assert fn(2, device="numpy").device == ndl.cpu_numpy()
    assert fn(()).shape == ()


def test_full_and_full_like():
    t = ndl.full((2, 3), 7.5)
    assert t.dtype == "float32" and t.numpy().tolist() == [[7.5] * 3] * 2
    assert ndl.full((2,), 3).dtype == "int64" and ndl.full((2,), 3).tolist() == [3, 3]
    assert ndl.full((2,), True).dtype == "bool"
    assert ndl.full((2,), 3, dtype="float64").dtype == "float64"
    like = ndl.full_like(ndl.tensor([[1, 2]]), 5)
    assert like.dtype == "int64" and like.tolist() == [[5, 5]]
    assert ndl.full_like(ndl.tensor([1, 2]), 0.5, dtype="float32").tolist() == [0.5, 0.5]


def test_like_factories_take_dtype():
    base = ndl.tensor([[1, 2, 3]])
    assert ndl.zeros_like(base).dtype == "int64" and ndl.zeros_like(base).shape == (1, 3)
    assert ndl.ones_like(base, dtype="float32").dtype == "float32"
    assert ndl.ones_like(base).tolist() == [[1, 1, 1]]


def test_empty():
    t = ndl.empty(2, 3)
    assert t.shape == (2, 3) and t.dtype == "float32"
    assert ndl.empty((4,), dtype="int32").dtype == "int32"


def test_arange():
    assert ndl.arange(5).tolist() == [0, 1, 2, 3, 4] and ndl.arange(5).dtype == "int64"
    assert ndl.arange(2, 8, 3).tolist() == [2, 5]
    assert ndl.arange(5, 0, -2).tolist() == [5, 3, 1]
    f = ndl.arange(0, 1, 0.25)
    assert f.dtype == "float32" and f.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert ndl.arange(3.0).dtype == "float32"
    assert ndl.arange(3, dtype="float64").dtype == "float64"
    with pytest.raises(ValueError, match="step"):
        ndl.arange(0, 3, 0)


def test_linspace_and_eye():
    t = ndl.linspace(0, 1, 5)
    assert t.dtype == "float32"
    np.testing.assert_allclose(t.numpy(), [0, 0.25, 0.5, 0.75, 1.0])
    assert ndl.linspace(-1, 1, 1).tolist() == [-1.0]
    np.testing.assert_array_equal(ndl.eye(3).numpy(), np.eye(3))
    np.testing.assert_array_equal(ndl.eye(2, 4).numpy(), np.eye(2, 4))
    assert ndl.eye(2).dtype == "float32" and ndl.eye(2, dtype="int64").dtype == "int64"


def test_random_factories_draw_from_numpys_global_generator():
    np.random.seed(3)
    got = ndl.rand(2, 3).numpy()
    np.random.seed(3)
    np.testing.assert_allclose(got, np.random.rand(2, 3).astype(np.float32))
    np.random.seed(3)
    got = ndl.randn((4,)).numpy()
    np.random.seed(3)
    np.testing.assert_allclose(got, np.random.randn(4).astype(np.float32))
    assert ndl.rand is ndl.init.rand and ndl.randn is ndl.init.randn
    assert ndl.rand(2, requires_grad=True).requires_grad


def test_randint():
    np.random.seed(5)
    t = ndl.randint(3, 9, (50,))
    np.random.seed(5)
    assert t.dtype == "int64" and t.tolist() == np.random.randint(3, 9, size=(50,)).tolist()
    assert ndl.randint(4, (2, 3)).shape == (2, 3)
    values = ndl.randint(4, size=(200,)).numpy()
    assert values.min() >= 0 and values.max() < 4
    assert ndl.randint(0, 2, (3,), dtype="float32").dtype == "float32"
    with pytest.raises(ValueError, match="low < high"):
        ndl.randint(5, 5, (2,))


def test_factories_reject_bad_shapes():
    with pytest.raises(TypeError, match="shape"):
        ndl.zeros(2.5)
    with pytest.raises(ValueError, match="negative"):
        ndl.ones(-1, 2)


# ---- Tensor conversions and views ------------------------------------------------------------------
@pytest.mark.parametrize("method, dtype", [("float", "float32"), ("double", "float64"), ("long", "int64"),
                                           ("int", "int32"), ("bool", "bool")])
def test_conversion_methods(method, dtype):
    x = np.array([[-1.5, 0.0], [2.7, 3.0]])
    got = getattr(T(x, dtype="float32"), method)()
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.numpy(), x.astype(np.float32).astype(dtype))


def test_float_conversion_keeps_the_gradient():
    x = T(np.array([1.0, 2.0]), dtype="float32")
    (x.double() * 3.0).sum().backward()
    assert x.grad.dtype == "float32" and x.grad.tolist() == [3.0, 3.0]


def test_python_scalars_of_one_element_tensors():
    loss = ndl.tensor(0.05)
    assert bool(loss < 0.1) is True and (loss < 0.1)  # `if loss < 0.1:` works
    assert float(ndl.tensor([[2.5]])) == 2.5 and int(ndl.tensor([7])) == 7
    assert ndl.tensor([[3]]).item() == 3 and isinstance(ndl.tensor(1.5).item(), float)
    assert isinstance(ndl.tensor([2]).item(), int) and isinstance(ndl.tensor(True).item(), bool)
    with pytest.raises(ValueError, match="ambiguous"):
        bool(ndl.tensor([1.0, 2.0]))


def test_tolist():
    assert ndl.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    assert ndl.tensor(2.0).tolist() == 2.0
    assert isinstance(ndl.tensor([1.5]).tolist()[0], float)


def test_view_permute_unsqueeze_squeeze_flatten_match_numpy():
    x = np.arange(24.0).reshape(2, 3, 4)
    t = T(x)
    assert t.view(4, 6).numpy().tolist() == x.reshape(4, 6).tolist()
    assert t.view((6, -1)).shape == (6, 4) and t.view(-1).shape == (24,)
    assert t.permute(2, 0, 1).numpy().tolist() == x.transpose(2, 0, 1).tolist()
    assert t.permute((1, 2, 0)).numpy().tolist() == x.transpose(1, 2, 0).tolist()
    assert t.permute([1, 2, 0]).shape == (3, 4, 2)
    assert t.T.shape == (2, 4, 3)
    np.testing.assert_array_equal(t.T.numpy(), np.swapaxes(x, -1, -2))
    for axis in (0, 1, 3, -1, -4):
        assert t.unsqueeze(axis).shape == np.expand_dims(x, axis).shape
    assert t.unsqueeze(dim=1).shape == (2, 1, 3, 4)
    s = T(np.zeros((1, 3, 1, 2)))
    assert s.squeeze().shape == (3, 2)
    assert s.squeeze(0).shape == (3, 1, 2) and s.squeeze(-2).shape == (1, 3, 2)
    assert s.squeeze(1).shape == (1, 3, 1, 2)  # not of length 1: stays (PyTorch)
    assert s.squeeze((0, 2)).shape == (3, 2) and s.squeeze(dim=0).shape == (3, 1, 2)
    assert t.flatten().shape == (24,) and t.flatten(1).shape == (2, 12)
    assert t.flatten(0, 1).shape == (6, 4) and t.flatten(start_dim=-2).shape == (2, 12)
    assert t.flatten(1, -1).numpy().tolist() == x.reshape(2, 12).tolist()
    assert T(np.float64(3.0)).flatten().shape == (1,)


def test_view_helpers_errors():
    t = T(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="unsqueeze: axis 3"):
        t.unsqueeze(3)
    with pytest.raises(ValueError, match="squeeze: axis 2"):
        t.squeeze(2)
    with pytest.raises(ValueError, match="flatten"):
        t.flatten(1, 0)
    with pytest.raises(TypeError, match="unsqueeze"):
        t.unsqueeze()
    with pytest.raises(ValueError, match="permute"):
        t.permute(0, 0)


def test_view_helpers_carry_the_gradient():
    gradcheck(lambda a: a.unsqueeze(1).flatten(0, 1).squeeze().permute(1, 0).view(-1) * 2.0,
              RNG.standard_normal((3, 1, 2)))


def test_tensor_to_takes_a_device_or_a_dtype():
    t = T(np.ones(2), dtype="float32")
    assert t.to("float64").dtype == "float64"
    assert t.to(dtype="int64").dtype == "int64"
    assert t.to(np.float64).dtype == "float64"
    assert t.to(ndl.cpu_numpy()).device == ndl.cpu_numpy()
    assert t.to("numpy", dtype="float64").dtype == "float64"
    assert t.to(t.device) is t
    with pytest.raises(TypeError, match="two dtypes"):
        t.to("float64", dtype="float32")
    with pytest.raises(TypeError, match="float16"):
        t.to("float16")


# ---- matmul with 1-D operands, dot ----------------------------------------------------------------
MATMUL_SHAPES = [((4,), (4,)), ((3, 4), (4,)), ((4,), (4, 5)), ((2, 3, 4), (4,)), ((4,), (2, 4, 5)),
                 ((2, 1, 3, 4), (4,)), ((3, 4), (4, 5)), ((2, 3, 4), (4, 5))]


@pytest.mark.parametrize("a_shape, b_shape", MATMUL_SHAPES)
def test_matmul_follows_numpy_with_gradients(a_shape, b_shape):
    a, b = RNG.standard_normal(a_shape), RNG.standard_normal(b_shape)
    got = T(a) @ T(b)
    expected = np.matmul(a, b)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(ops.matmul(T(a), T(b)).numpy(), expected, rtol=1e-12)
    gradcheck(lambda x, y: x @ y, a, b)


def test_vector_dot_vector_gradient_by_hand():
    a, b = T(np.array([1.0, 2.0, 3.0])), T(np.array([4.0, 5.0, 6.0]))
    out = a @ b
    assert out.shape == () and float(out) == 32.0
    out.backward()
    assert a.grad.tolist() == [4.0, 5.0, 6.0] and b.grad.tolist() == [1.0, 2.0, 3.0]


def test_dot():
    a, b = T(np.array([1.0, 2.0])), T(np.array([3.0, -1.0]))
    d = ndl.dot(a, b)
    assert d.shape == () and float(d) == 1.0
    d.backward()
    assert a.grad.tolist() == [3.0, -1.0]
    with pytest.raises(ValueError, match="dot: needs two 1-D"):
        ndl.dot(T(np.ones((2, 2))), b)
    with pytest.raises(ValueError, match="dot"):
        ndl.dot(a, T(np.ones(3)))


def test_matmul_1d_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\).*not aligned"):
        T(np.ones(3)) @ T(np.ones(4))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4,\)"):
        T(np.ones((2, 3))) @ T(np.ones(4))


# ---- the same calls in PyTorch ------------------------------------------------------------------------
@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def test_torch_reductions(torch):
    x = torch.tensor(X)
    t = T(X)
    pairs = [
        (t.sum(dim=1, keepdim=True), x.sum(dim=1, keepdim=True)),
        (t.sum(dim=(0, 2)), x.sum(dim=(0, 2))),
        (t.mean(dim=-1), x.mean(dim=-1)),
        (t.max(), x.max()),
        (t.min(), x.min()),
        (t.max(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)),
        (t.min(dim=(0, 1)), x.amin(dim=(0, 1))),
        (t.argmax(dim=2), x.argmax(dim=2)),
        (t.argmin(dim=0, keepdim=True), x.argmin(dim=0, keepdim=True)),
        (t.argmax(), x.argmax()),
        (t.logsumexp(dim=1), x.logsumexp(dim=1)),
        (t.logsumexp(dim=(0, 2), keepdim=True), x.logsumexp(dim=(0, 2), keepdim=True)),
        (t.softmax(dim=1), x.softmax(dim=1)),
        (t.log_softmax(dim=0), x.log_softmax(dim=0)),
        (ops.summation(t, dim=0), torch.sum(x, dim=0)),
        (ops.min(t, dim=2), torch.amin(x, dim=2)),
        (ops.softmax(t, dim=-1), torch.softmax(x, dim=-1)),
    ]
    for got, expected in pairs:
        assert got.shape == tuple(expected.shape)
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-12, atol=1e-12)


def test_torch_min_max_gradients_share_ties(torch):
    data = np.array([[1.0, 1.0, 3.0], [2.0, 0.0, 0.0]])
    for name, tname in (("min", "amin"), ("max", "amax")):
        t, x = T(data), torch.tensor(data, requires_grad=True)
        getattr(t, name)(dim=1).sum().backward()
        getattr(x, tname)(dim=1).sum().backward()
        np.testing.assert_allclose(t.grad.numpy(), x.grad.numpy())
        t, x = T(data), torch.tensor(data, requires_grad=True)
        getattr(t, name)().backward()
        getattr(x, name)().backward()
        np.testing.assert_allclose(t.grad.numpy(), x.grad.numpy())


def test_torch_softmax_gradient(torch):
    data, weights = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
    t, x = T(data), torch.tensor(data, requires_grad=True)
    (t.softmax(dim=0) * T(weights, requires_grad=False)).sum().backward()
    (x.softmax(dim=0) * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), x.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_torch_factories(torch):
    for data in ([1.0, 2.0], [1, 2], [True, False], 3.5, 7, np.zeros(2), np.zeros(2, np.int32)):
        assert ndl.tensor(data).dtype == str(torch.tensor(data).dtype).replace("torch.", "")
    for fn in ("zeros", "ones", "empty", "rand", "randn"):
        assert getattr(ndl, fn)(2, 3).shape == tuple(getattr(torch, fn)(2, 3).shape)
        assert getattr(ndl, fn)((2, 3)).dtype == str(getattr(torch, fn)((2, 3)).dtype).replace("torch.", "")
    for args in ((5,), (2, 8, 3), (5, 0, -2), (0, 1, 0.25), (3.0,), (-1.5, 2.0, 0.5)):
        got, expected = ndl.arange(*args), torch.arange(*args)
        assert got.dtype == str(expected.dtype).replace("torch.", "")
        np.testing.assert_allclose(got.numpy(), expected.numpy())
    np.testing.assert_allclose(ndl.linspace(-2, 3, 7).numpy(), torch.linspace(-2, 3, 7).numpy(), rtol=1e-6)
    np.testing.assert_array_equal(ndl.eye(2, 3).numpy(), torch.eye(2, 3).numpy())
    for value in (3, 2.5, True):
        assert ndl.full((2,), value).dtype == str(torch.full((2,), value).dtype).replace("torch.", "")
    assert ndl.randint(3, 9, (4,)).dtype == str(torch.randint(3, 9, (4,)).dtype).replace("torch.", "")
    base = torch.tensor([[1, 2]])
    assert ndl.full_like(ndl.tensor([[1, 2]]), 4).tolist() == torch.full_like(base, 4).tolist()
    assert ndl.zeros_like(ndl.tensor([[1, 2]]), dtype="float32").tolist() == \
        torch.zeros_like(base, dtype=torch.float32).tolist()


def test_torch_views_and_conversions(torch):
    x = np.arange(24.0).reshape(2, 3, 1, 4) - 10.5
    t, tt = T(x), torch.tensor(x)
    pairs = [(t.view(6, 4), tt.view(6, 4)), (t.permute(3, 0, 2, 1), tt.permute(3, 0, 2, 1)),
             (t.permute((1, 0, 2, 3)), tt.permute((1, 0, 2, 3))), (t.unsqueeze(-1), tt.unsqueeze(-1)),
             (t.unsqueeze(0), tt.unsqueeze(0)), (t.squeeze(), tt.squeeze()), (t.squeeze(2), tt.squeeze(2)),
             (t.squeeze(1), tt.squeeze(1)), (t.flatten(), tt.flatten()), (t.flatten(1, 2), tt.flatten(1, 2)),
             (t.T, tt.transpose(-1, -2)), (t.float(), tt.float()), (t.double(), tt.double()),
             (t.long(), tt.long()), (t.int(), tt.int()), (t.bool(), tt.bool())]
    for got, expected in pairs:
        assert got.shape == tuple(expected.shape)
        assert got.dtype == str(expected.dtype).replace("torch.", "")
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
    assert t.tolist() == tt.tolist()
    assert ndl.tensor(3.0).item() == torch.tensor(3.0).item()


@pytest.mark.parametrize("a_shape, b_shape", MATMUL_SHAPES)
def test_torch_matmul_1d_with_gradients(torch, a_shape, b_shape):
    a, b = RNG.standard_normal(a_shape), RNG.standard_normal(b_shape)
    ta, tb = T(a), T(b)
    xa, xb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    out, expected = ta @ tb, xa @ xb
    assert out.shape == tuple(expected.shape)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-12)
    weights = RNG.standard_normal(expected.shape)
    (out * T(weights, requires_grad=False)).sum().backward()
    (expected * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(ta.grad.numpy(), xa.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tb.grad.numpy(), xb.grad.numpy(), rtol=1e-10, atol=1e-12)
    if len(a_shape) == len(b_shape) == 1:
        np.testing.assert_allclose(ndl.dot(T(a), T(b)).numpy(), torch.dot(xa, xb).detach().numpy())
