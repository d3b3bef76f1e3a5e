"""Attention and the Transformer: MultiHeadAttention, AttentionLayer, TransformerLayer, Transformer.

Pre-norm blocks, as in the course: ``x + attn(layernorm(x))`` then ``x + mlp(layernorm(x))``.
Attention scores are ``softmax(q k^T / sqrt(d) + mask)`` with a causal mask that hides later
positions; the softmax is ``exp(logsoftmax(.))``, which subtracts the row maximum.
"""
import math

import numpy as np

from needle import ops
from needle.autograd import Tensor

from .nn_basic import Dropout, Linear, ReLU, Sequential
from .nn_module import Module
from .nn_norm import LayerNorm1d
from .nn_sequence import Embedding


class MultiHeadAttention(Module):
    """Scaled dot-product attention over heads (no parameters).

    ``MultiHeadAttention(*, dropout=0.0, causal=False, device=None, dtype="float32")``.
    ``forward(q, k, v)`` with q (batch, heads, queries_len, d), k and v
    (batch, heads, keys_len, d) returns ``(result, probs)``: result (batch, heads, queries_len, d)
    and the attention probabilities (batch, heads, queries_len, keys_len), after dropout.
    """

    def __init__(self, *, dropout=0.0, causal=False, device=None, dtype="float32"):
        super().__init__()
        self.device, self.dtype = device, dtype
        self.causal = causal
        self.dropout = Dropout(dropout)

    def extra_repr(self):
        return f"dropout={self.dropout.p}, causal={self.causal}"

    @staticmethod
    def create_causal_mask(i, j, device, dtype="float32"):
        """(1, 1, i, j) constant: 0 where query r may see key c (c <= r + j - i), else a huge negative."""
        hidden = np.triu(np.ones((1, 1, i, j)), j - i + 1)
        return Tensor(-np.finfo(np.float32).max * hidden, device=device, dtype=dtype, requires_grad=False)

    @staticmethod
    def matmul(a, b_transpose):
        """``a @ b_transpose^T`` batched over the leading axes (the course's helper)."""
        return ops.matmul(a, ops.transpose(b_transpose))

    @staticmethod
    def softmax(logit):
        """Softmax over the last axis."""
        return ops.exp(ops.logsoftmax(logit, -1))

    def forward(self, q, k, v):
        if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
            raise ValueError(f"MultiHeadAttention: q, k, v must be (batch, heads, len, dim), got shapes "
                             f"{q.shape}, {k.shape}, {v.shape}")
        if q.shape[-1] != k.shape[-1] or k.shape[:3] != v.shape[:3] or q.shape[:2] != k.shape[:2]:
            raise ValueError(f"MultiHeadAttention: incompatible shapes q {q.shape}, k {k.shape}, v {v.shape}")
        logits = self.matmul(q, k) / math.sqrt(q.shape[-1])
        if self.causal:
            mask = self.create_causal_mask(q.shape[2], k.shape[2], q.device, q.dtype)
            logits = logits + ops.broadcast_to(mask, logits.shape)
        probs = self.dropout(self.softmax(logits))
        return ops.matmul(probs, v), probs


def _split_heads(x, num_head, dim_head):
    b, n, _ = x.shape
    return ops.permute(ops.reshape(x, (b, n, num_head, dim_head)), (0, 2, 1, 3))


class AttentionLayer(Module):
    """Pre-norm multi-head attention with input and output projections.

    ``AttentionLayer(q_features, num_head, dim_head, *, k_features=None, v_features=None,
    out_features=None, dropout=0.0, causal=True, device=None, dtype="float32")``.
    ``forward(q, k=None, v=None)``: q (batch, queries_len, q_features), k and v default to q
    (self-attention); returns (batch, queries_len, out_features).
    """

    def __init__(self, q_features, num_head, dim_head, *, k_features=None, v_features=None, out_features=None,
                 dropout=0.0, causal=True, device=None, dtype="float32"):
        super().__init__()
        k_features = q_features if k_features is None else k_features
        v_features = q_features if v_features is None else v_features
        out_features = q_features if out_features is None else out_features
        self.q_features, self.k_features, self.v_features = q_features, k_features, v_features
        self.num_head, self.dim_head, self.out_features = num_head, dim_head, out_features
        kw = dict(device=device, dtype=dtype)
        self.prenorm_q = LayerNorm1d(q_features, **kw)
        self.prenorm_k = LayerNorm1d(k_features, **kw)
        self.prenorm_v = LayerNorm1d(v_features, **kw)
        inner = num_head * dim_head
        self.q_projection = Linear(q_features, inner, bias=False, **kw)
        self.k_projection = Linear(k_features, inner, bias=False, **kw)
        self.v_projection = Linear(v_features, inner, bias=False, **kw)
        self.attn = MultiHeadAttention(dropout=dropout, causal=causal, **kw)
        self.out_projection = Linear(inner, out_features, bias=False, **kw)

    def forward(self, q, k=None, v=None):
        k = q if k is None else k
        v = q if v is None else v
        for name, t, feats in (("q", q, self.q_features), ("k", k, self.k_features), ("v", v, self.v_features)):
            if t.ndim != 3 or t.shape[-1] != feats:
                raise ValueError(f"AttentionLayer: {name} must be (batch, len, {feats}), got shape {t.shape}")
        b, n_q, _ = q.shape
        heads = [_split_heads(proj(norm(t)), self.num_head, self.dim_head) for t, norm, proj in (
            (q, self.prenorm_q, self.q_projection), (k, self.prenorm_k, self.k_projection),
            (v, self.prenorm_v, self.v_projection))]
        result, probs = self.attn(*heads)
        self.probs = probs.detach()  # kept to inspect; detached, so the module holds no graph after backward
        merged = ops.reshape(ops.permute(result, (0, 2, 1, 3)), (b, n_q, self.num_head * self.dim_head))
        return self.out_projection(merged)


class TransformerLayer(Module):
    """One pre-norm Transformer block: attention then a ReLU MLP, each with dropout and a residual.

    ``TransformerLayer(q_features, num_head, dim_head, hidden_size, *, dropout=0.0, causal=True,
    device=None, dtype="float32")``; ``forward(x)`` maps (batch, seq_len, q_features) to the same shape.
    """

    def __init__(self, q_features, num_head, dim_head, hidden_size, *, dropout=0.0, causal=True, device=None,
                 dtype="float32"):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.attn = AttentionLayer(q_features, num_head, dim_head, dropout=dropout, causal=causal, **kw)
        self.dropout = Dropout(dropout)
        self.layernorm = LayerNorm1d(q_features, **kw)
        self.linear1 = Linear(q_features, hidden_size, **kw)
        self.linear2 = Linear(hidden_size, q_features, **kw)
        self.relu = ReLU()

    def forward(self, x):
        x = x + self.dropout(self.attn(x))
        hidden = self.dropout(self.relu(self.linear1(self.layernorm(x))))
        return x + self.dropout(self.linear2(hidden))


class Transformer(Module):
    """A stack of causal Transformer layers with a learned positional embedding.

    ``Transformer(embedding_size, hidden_size, num_layers, *, num_head=8, dim_head=32, dropout=0.0,
    causal=True, device=None, dtype="float32", batch_first=False, sequence_len=2048)``.
    ``forward(x, h=None)``: x (seq_len, batch, embedding_size), or (batch, seq_len, ...) with
    ``batch_first``; returns ``(output, zeros)`` of x's shape, the zeros standing in for the
    recurrent state of RNN/LSTM so that language models can swap the three.
    """

    def __init__(self, embedding_size, hidden_size, num_layers, *, num_head=8, dim_head=32, dropout=0.0,
                 causal=True, device=None, dtype="float32", batch_first=False, sequence_len=2048):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.embedding_size, self.batch_first, self.sequence_len = embedding_size, batch_first, sequence_len
        # The embedding is drawn before the layers: the order of random draws fixes the initial
        # weights, and the course's reference values depend on it.
        self.positional_embedding = Embedding(sequence_len, embedding_size, **kw)
        self.layers = Sequential(*[TransformerLayer(embedding_size, num_head, dim_head, hidden_size,
                                                    dropout=dropout, causal=causal, **kw)
                                   for _ in range(num_layers)])

    def forward(self, x, h=None):
        if x.ndim != 3 or x.shape[-1] != self.embedding_size:
            raise ValueError(f"Transformer: input must be (seq_len, batch, {self.embedding_size}) "
                             f"(or batch first), got shape {x.shape}")
        if not self.batch_first:
            x = ops.transpose(x, (0, 1))  # -> (batch, seq_len, features)
        b, n, e = x.shape
        if n > self.sequence_len:
            raise ValueError(f"Transformer: sequence of length {n} exceeds sequence_len={self.sequence_len}")
        positions = self.positional_embedding(np.arange(n).reshape(1, n))  # (1, n, e)
        x = self.layers(x + ops.broadcast_to(positions, (b, n, e)))
        if not self.batch_first:
            x = ops.transpose(x, (0, 1))
        zeros = Tensor(x.device.full(x.shape, 0.0, dtype=x.dtype), device=x.device, requires_grad=False)
        return x, zeros
