"""Models shared by the examples and benchmarks/bench_models.py: a small MNIST CNN, the course's
ResNet9 and a word-level language model (RNN, LSTM or Transformer)."""
import needle.nn as nn
from needle import ops


class ConvBN(nn.Module):
    """Conv -> BatchNorm2d -> ReLU (NCHW)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, device=None, dtype="float32"):
        super().__init__()
        self.conv = nn.Conv(in_channels, out_channels, kernel_size, stride=stride, device=device, dtype=dtype)
        self.bn = nn.BatchNorm2d(out_channels, device=device, dtype=dtype)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class ResNet9(nn.Module):
    """The course's ResNet9 for 3 x 32 x 32 images: (N, 3, 32, 32) -> (N, 10) logits."""

    def __init__(self, device=None, dtype="float32"):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.model = nn.Sequential(
            ConvBN(3, 16, 7, 4, **kw),
            ConvBN(16, 32, 3, 2, **kw),
            nn.Residual(nn.Sequential(ConvBN(32, 32, 3, 1, **kw), ConvBN(32, 32, 3, 1, **kw))),
            ConvBN(32, 64, 3, 2, **kw),
            ConvBN(64, 128, 3, 2, **kw),
            nn.Residual(nn.Sequential(ConvBN(128, 128, 3, 1, **kw), ConvBN(128, 128, 3, 1, **kw))),
            nn.Flatten(),
            nn.Linear(128, 128, **kw),
            nn.ReLU(),
            nn.Linear(128, 10, **kw),
        )

    def forward(self, x):
        return self.model(x)


class MnistCNN(nn.Module):
    """Three ConvBN + max-pool stages and a small MLP head: (N, 784) or (N, 1, 28, 28) -> (N, 10)."""

    def __init__(self, device=None, dtype="float32"):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.features = nn.Sequential(
            ConvBN(1, 16, 3, **kw), nn.MaxPool2d(2),    # 28 -> 14
            ConvBN(16, 32, 3, **kw), nn.MaxPool2d(2),   # 14 -> 7
            ConvBN(32, 64, 3, **kw), nn.MaxPool2d(2),   # 7 -> 3
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 3 * 3, 128, **kw), nn.ReLU(), nn.Dropout(0.3),
                                  nn.Linear(128, 10, **kw))

    def forward(self, x):
        if x.ndim == 2:
            x = ops.reshape(x, (x.shape[0], 1, 28, 28))
        return self.head(self.features(x))


class LanguageModel(nn.Module):
    """Embedding -> RNN/LSTM/Transformer -> Linear: ids (seq_len, batch) -> logits (seq_len * batch, vocab)."""

    def __init__(self, embedding_size, output_size, hidden_size, num_layers=1, seq_model="lstm", seq_len=40,
                 num_head=4, dim_head=32, dropout=0.0, device=None, dtype="float32"):
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.seq_model_name = seq_model
        self.embedding = nn.Embedding(output_size, embedding_size, **kw)
        if seq_model == "rnn":
            self.seq_model = nn.RNN(embedding_size, hidden_size, num_layers, **kw)
            out_features = hidden_size
        elif seq_model == "lstm":
            self.seq_model = nn.LSTM(embedding_size, hidden_size, num_layers, **kw)
            out_features = hidden_size
        elif seq_model == "transformer":
            self.seq_model = nn.Transformer(embedding_size, hidden_size, num_layers, num_head=num_head,
                                            dim_head=dim_head, dropout=dropout, sequence_len=seq_len, **kw)
            out_features = embedding_size
        else:
            raise ValueError(f"seq_model must be 'rnn', 'lstm' or 'transformer', got {seq_model!r}")
        self.linear = nn.Linear(out_features, output_size, **kw)

    def forward(self, x, h=None):
        seq_len, batch = x.shape
        out, h = self.seq_model(self.embedding(x), h)
        logits = self.linear(ops.reshape(out, (seq_len * batch, out.shape[-1])))
        return logits, h


def detach_state(h):
    """Cut the graph between truncated-BPTT windows (a tensor, a pair of tensors, or None)."""
    if h is None:
        return None
    if isinstance(h, tuple):
        return tuple(t.detach() for t in h)
    return h.detach()
