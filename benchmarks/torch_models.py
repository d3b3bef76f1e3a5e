"""The PyTorch twins of the benchmarked Needle models (one definition for every benchmark).

Each builder takes the configuration dict of ``bench_training.CONFIGS`` and returns a
``torch.nn.Module`` of the same shape as the Needle model that examples/models.py builds:

- ``mlp(cfg)``: Flatten, then ``cfg["depth"]`` Linear+ReLU layers of ``cfg["width"]``, then Linear to 10.
- ``resnet9()``: the course's ResNet9 (conv-BN-ReLU blocks, two residual pairs, two Linear layers).
- ``language_model(cfg)``: Embedding -> LSTM or pre-norm causal Transformer -> Linear to the vocabulary;
  ``forward(ids, h=None)`` returns ``(logits (seq_len * batch, vocab), h)`` like Needle's ``LanguageModel``.

The Transformer is ``nn.TransformerEncoder`` (pre-norm, ReLU MLP, no dropout, causal mask, learned
positional embedding). It differs from Needle's ``nn.Transformer`` in two ways a user of either would
keep: PyTorch's attention projects to ``embedding`` features (4 heads of 24 here) where Needle's projects
to ``num_head * dim_head`` (4 x 32 = 128), and PyTorch's projections have biases. ``transformer_flops``
in bench_training.py counts each model's own shapes.
"""
import torch
from torch import nn


def mlp(cfg):
    layers, width_in = [nn.Flatten()], 784
    for _ in range(cfg["depth"]):
        layers += [nn.Linear(width_in, cfg["width"]), nn.ReLU()]
        width_in = cfg["width"]
    return nn.Sequential(*layers, nn.Linear(width_in, 10))


class _Residual(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x) + x


def _conv_bn(a, b, k, s):
    return nn.Sequential(nn.Conv2d(a, b, k, s, k // 2), nn.BatchNorm2d(b), nn.ReLU())


def resnet9(cfg=None):
    return nn.Sequential(
        _conv_bn(3, 16, 7, 4), _conv_bn(16, 32, 3, 2),
        _Residual(nn.Sequential(_conv_bn(32, 32, 3, 1), _conv_bn(32, 32, 3, 1))),
        _conv_bn(32, 64, 3, 2), _conv_bn(64, 128, 3, 2),
        _Residual(nn.Sequential(_conv_bn(128, 128, 3, 1), _conv_bn(128, 128, 3, 1))),
        nn.Flatten(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10))


class LanguageModel(nn.Module):
    """Embedding -> LSTM or Transformer -> Linear; ids (seq_len, batch) -> logits (seq_len * batch, vocab)."""

    def __init__(self, cfg):
        super().__init__()
        self.kind = cfg["seq_model"]
        self.embedding = nn.Embedding(cfg["vocab"], cfg["embedding"])
        if self.kind == "lstm":
            self.seq_model = nn.LSTM(cfg["embedding"], cfg["hidden"], cfg["layers"])
            out_features = cfg["hidden"]
        else:
            layer = nn.TransformerEncoderLayer(cfg["embedding"], cfg["num_head"], cfg["hidden"], dropout=0.0,
                                               batch_first=False, norm_first=True)
            self.seq_model = nn.TransformerEncoder(layer, cfg["layers"], enable_nested_tensor=False)
            self.positions = nn.Embedding(cfg["seq_len"], cfg["embedding"])
            self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(cfg["seq_len"]))
            out_features = cfg["embedding"]
        self.linear = nn.Linear(out_features, cfg["vocab"])

    def forward(self, x, h=None):
        emb = self.embedding(x)
        if self.kind == "lstm":
            out, h = self.seq_model(emb, h)
        else:
            n = x.shape[0]
            emb = emb + self.positions(torch.arange(n)).unsqueeze(1)
            out = self.seq_model(emb, mask=self.mask[:n, :n], is_causal=True)
        return self.linear(out.reshape(-1, out.shape[-1])), h


def language_model(cfg):
    return LanguageModel(cfg)
