"""Attention and Transformer modules against numpy formulas (with the causal mask) and finite differences."""
import gc

import numpy as np
import pytest

import needle as ndl
from needle import nn
from needle.testing.gradcheck import gradcheck

NUMPY = ndl.cpu_numpy()
F64 = dict(device=NUMPY, dtype="float64")


def np_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def np_attention(q, k, v, causal):
    logits = q @ np.swapaxes(k, -1, -2) / np.sqrt(q.shape[-1])
    if causal:
        i, j = logits.shape[-2:]
        visible = np.arange(j)[None, :] <= np.arange(i)[:, None] + (j - i)
        logits = np.where(visible, logits, -np.inf)
    probs = np_softmax(logits)
    return probs @ v, probs


def np_layernorm(x, eps=1e-5):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(-1, keepdims=True) + eps)


def np_attention_layer(layer, q, causal):
    heads, dh = layer.num_head, layer.dim_head
    b, n, _ = q.shape
    split = [(np_layernorm(q) @ p.weight.numpy()).reshape(b, n, heads, dh).transpose(0, 2, 1, 3)
             for p in (layer.q_projection, layer.k_projection, layer.v_projection)]
    out, _ = np_attention(*split, causal)
    return out.transpose(0, 2, 1, 3).reshape(b, n, heads * dh) @ layer.out_projection.weight.numpy()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("lq,lk", [(4, 4), (3, 5)])
def test_multihead_attention_matches_numpy(causal, lq, lk):
    rng = np.random.RandomState(0)
    q, k, v = rng.randn(2, 3, lq, 4), rng.randn(2, 3, lk, 4), rng.randn(2, 3, lk, 4)
    attn = nn.MultiHeadAttention(causal=causal, **F64)
    out, probs = attn(*(ndl.Tensor(a, device=NUMPY) for a in (q, k, v)))
    want_out, want_probs = np_attention(q, k, v, causal)
    np.testing.assert_allclose(probs.numpy(), want_probs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out.numpy(), want_out, rtol=1e-10, atol=1e-12)
    if causal:
        assert np.all(probs.numpy()[..., 0, lk - lq + 1:] == 0)  # the first query sees no later key


def test_multihead_attention_float32_on_default_device():
    rng = np.random.RandomState(1)
    q = rng.randn(1, 2, 5, 3).astype(np.float32)
    out, _ = nn.MultiHeadAttention(causal=True)(*(ndl.Tensor(q) for _ in range(3)))
    np.testing.assert_allclose(out.numpy(), np_attention(q, q, q, True)[0], rtol=1e-4, atol=1e-5)


def test_multihead_attention_gradients_float64():
    rng = np.random.RandomState(2)
    attn = nn.MultiHeadAttention(causal=True, **F64)
    args = [ndl.Tensor(rng.randn(1, 2, 3, 2), device=NUMPY) for _ in range(3)]
    gradcheck(lambda q, k, v: attn(q, k, v)[0], *args)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_layer_matches_numpy(causal):
    np.random.seed(3)
    layer = nn.AttentionLayer(6, 2, 3, causal=causal, **F64)
    q = np.random.randn(2, 4, 6)
    out = layer(ndl.Tensor(q, device=NUMPY))
    assert out.shape == (2, 4, 6)
    np.testing.assert_allclose(out.numpy(), np_attention_layer(layer, q, causal), rtol=1e-9, atol=1e-11)


def test_transformer_layer_matches_numpy_and_gradients():
    np.random.seed(4)
    layer = nn.TransformerLayer(4, 2, 2, 5, causal=True, **F64)
    x = np.random.randn(2, 3, 4)
    h = x + np_attention_layer(layer.attn, x, True)
    mlp = np.maximum(np_layernorm(h) @ layer.linear1.weight.numpy() + layer.linear1.bias.numpy(), 0)
    want = h + mlp @ layer.linear2.weight.numpy() + layer.linear2.bias.numpy()
    np.testing.assert_allclose(layer(ndl.Tensor(x, device=NUMPY)).numpy(), want, rtol=1e-9, atol=1e-11)

    q_proj = layer.attn.q_projection

    def f(inp, w):
        q_proj.weight = w
        return layer(inp)

    gradcheck(f, ndl.Tensor(np.random.randn(1, 3, 4), device=NUMPY), ndl.Tensor(q_proj.weight.numpy(), device=NUMPY))


def test_transformer_adds_positions_and_is_causal():
    np.random.seed(5)
    model = nn.Transformer(4, 8, 2, num_head=2, dim_head=2, sequence_len=10, **F64)
    x = np.random.randn(5, 2, 4)  # (seq_len, batch, features)
    out, h = model(ndl.Tensor(x, device=NUMPY))
    assert out.shape == (5, 2, 4) and h.shape == (5, 2, 4) and not h.numpy().any()
    # Reference: the layers on (batch, seq, features) plus the first 5 positional rows.
    ref = np.swapaxes(x, 0, 1) + model.positional_embedding.weight.numpy()[:5]
    for layer in model.layers.modules:
        ref = layer(ndl.Tensor(ref, device=NUMPY)).numpy()
    np.testing.assert_allclose(out.numpy(), np.swapaxes(ref, 0, 1), rtol=1e-10, atol=1e-12)
    # Causal: changing the last step leaves every earlier output unchanged.
    x2 = x.copy()
    x2[-1] += 1.0
    out2, _ = model(ndl.Tensor(x2, device=NUMPY))
    np.testing.assert_allclose(out2.numpy()[:-1], out.numpy()[:-1], rtol=1e-12, atol=1e-12)
    assert not np.allclose(out2.numpy()[-1], out.numpy()[-1])
    batch_first = nn.Transformer(4, 8, 1, num_head=1, dim_head=4, batch_first=True, **F64)
    assert batch_first(ndl.Tensor(np.random.randn(2, 3, 4), device=NUMPY))[0].shape == (2, 3, 4)
    with pytest.raises(ValueError, match="sequence_len"):
        model(ndl.Tensor(np.random.randn(11, 1, 4), device=NUMPY))


def test_transformer_gradient_reaches_every_parameter():
    np.random.seed(6)
    model = nn.Transformer(4, 6, 1, num_head=2, dim_head=2, sequence_len=4, **F64)
    out, _ = model(ndl.Tensor(np.random.randn(3, 2, 4), device=NUMPY))
    (out * out).sum().backward()
    for p in model.parameters():
        assert p.grad is not None and p.grad.shape == p.shape
    emb = model.positional_embedding.weight.grad.numpy()
    assert emb[:3].any() and not emb[3:].any()  # only the 3 positions used


def test_attention_layer_keeps_probs_without_their_graph():
    # ``layer.probs`` is there to inspect; holding the forward graph would keep every step's
    # attention tensors alive after backward (ARCHITECTURE: no memory the user did not ask for).
    rng = np.random.RandomState(7)
    layer = nn.AttentionLayer(4, 2, 2, causal=True, **F64)
    x = rng.randn(2, 3, 4)
    gc.collect()
    gc.disable()  # counts must fall by reference counting alone
    try:
        before = ndl.autograd.TENSOR_COUNTER
        out = layer(ndl.Tensor(x, device=NUMPY, requires_grad=False))
        out.sum().backward()
        for p in layer.parameters():
            p.grad = None
        del out
        assert ndl.autograd.TENSOR_COUNTER == before + 1  # only the detached probs remain
    finally:
        gc.enable()
    assert layer.probs.is_leaf() and not layer.probs.requires_grad
    heads = [(np_layernorm(x) @ p.weight.numpy()).reshape(2, 3, 2, 2).transpose(0, 2, 1, 3)
             for p in (layer.q_projection, layer.k_projection)]
    np.testing.assert_allclose(layer.probs.numpy(), np_attention(heads[0], heads[1], heads[1], True)[1],
                               rtol=1e-10, atol=1e-12)


# Causal attention with more queries than keys has rows in which every key is masked.
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_multihead_attention_fully_masked_rows_are_uniform(dtype):
    rng = np.random.RandomState(0)
    q, k, v = rng.randn(2, 3, 5, 4), rng.randn(2, 3, 2, 4), rng.randn(2, 3, 2, 4)
    dev = ndl.cpu_numpy()
    attn = nn.MultiHeadAttention(causal=True, device=dev, dtype=dtype)
    out, probs = attn(*(ndl.Tensor(a, device=dev, dtype=dtype) for a in (q, k, v)))
    # Hand-derived: with lq=5, lk=2 query r sees key c iff c <= r - 3, so rows 0..2 see nothing.
    logits = q @ np.swapaxes(k, -1, -2) / 2.0
    visible = np.arange(2)[None, :] <= np.arange(5)[:, None] - 3
    shifted = np.where(visible, logits, -np.inf)
    with np.errstate(invalid="ignore"):  # fully masked rows give nan here; set by hand below
        shifted = shifted - shifted.max(-1, keepdims=True)
        want = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
    want[..., :3, :] = 0.5  # every key masked: the max-subtracted softmax is uniform
    tol = 1e-5 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(probs.numpy(), want, rtol=tol, atol=tol)
    np.testing.assert_allclose(out.numpy(), want @ v, rtol=tol, atol=tol)


def test_softmax_module_at_large_magnitudes():
    z = np.array([[1e7, 1e7 + 1.0], [-3e38, -3e38]], np.float32)
    got = nn.Softmax()(ndl.Tensor(z)).numpy()
    e = np.exp(np.array([[-1.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(got, e / e.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_transformer_draws_positional_embedding_before_layers():
    # Course detail: the positional embedding is the first random draw of Transformer.__init__,
    # so with a fixed seed its weight is the first (sequence_len, embedding_size) standard
    # normals of numpy's global generator (Embedding's init is N(0, 1)), cast to float32.
    seq_len, emb = 7, 8
    want = np.random.RandomState(3).randn(seq_len, emb).astype(np.float32)
    np.random.seed(3)
    model = nn.Transformer(emb, 16, 2, num_head=2, dim_head=4, device=NUMPY, sequence_len=seq_len)
    np.testing.assert_array_equal(model.positional_embedding.weight.numpy(), want)
