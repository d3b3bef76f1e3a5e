# %% [markdown]
# # A language model
#
# A word-level LSTM language model on the public-domain text bundled with needle-data (Bierce's
# *The Devil's Dictionary*): `Corpus` builds the vocabulary, `batchify` cuts the token stream into
# columns, and truncated backpropagation through time trains on windows of `bptt` tokens. Small
# sizes (the first 1,000 lines, three epochs) keep the site build short; `examples/lm_text.py` trains
# the full-size RNN, LSTM or Transformer model.

# %%
import math

import numpy as np

import needle as ndl
import needle.data as data
import needle.nn as nn
import needle.optim as optim

np.random.seed(0)
ndl.manual_seed(0)
corpus = data.Corpus(data.text_corpus_dir(), max_lines=1000)
vocab = len(corpus.dictionary)
train = data.batchify(corpus.train, 16, dtype="float32")  # (rows, 16): 16 independent streams
test = data.batchify(corpus.test, 16, dtype="float32")
print(f"{len(corpus.train)} training tokens, {len(corpus.test)} test tokens, vocabulary {vocab}")
print("first words:", " ".join(corpus.dictionary.idx2word[int(i)] for i in corpus.train[:12]))

# %%
class LanguageModel(nn.Module):
    """Embedding -> LSTM -> Linear: token ids (seq_len, batch) -> logits (seq_len * batch, vocab)."""

    def __init__(self, vocab, embedding_size=32, hidden_size=64):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embedding_size)
        self.lstm = nn.LSTM(embedding_size, hidden_size)
        self.linear = nn.Linear(hidden_size, vocab)

    def forward(self, x, state=None):
        seq_len, batch = x.shape
        out, state = self.lstm(self.embedding(x), state)
        return self.linear(out.reshape((seq_len * batch, out.shape[-1]))), state


model = LanguageModel(vocab)
loss_fn = nn.SoftmaxLoss()
opt = optim.Adam(model.parameters(), lr=3e-3)

# %% [markdown]
# The hidden state carries over from one window to the next, detached so that gradients stop at
# the window boundary.

# %%
def run_epoch(batches, bptt=16, train_mode=True):
    model.train() if train_mode else model.eval()
    total, tokens, state = 0.0, 0, None
    for i in range(0, len(batches) - 1, bptt):
        x, y = data.get_batch(batches, i, bptt)
        logits, state = model(x, state)
        loss = loss_fn(logits, y)
        if train_mode:
            opt.reset_grad()
            loss.backward()
            optim.clip_grad_norm(model.parameters(), 1.0)
            opt.step()
        state = tuple(s.detach() for s in state)
        total += loss.item() * y.shape[0]
        tokens += y.shape[0]
    return total / tokens


for epoch in range(1, 4):
    train_loss = run_epoch(train)
    test_loss = run_epoch(test, train_mode=False)
    print(f"epoch {epoch}: train perplexity {math.exp(train_loss):.1f}, test perplexity {math.exp(test_loss):.1f} "
          f"(a uniform guess: {vocab})")

# %% [markdown]
# Sampling: feed a word, draw the next one from the softmax of the logits, repeat.

# %%
model.eval()
word = corpus.dictionary.word2idx["the"]
state, words, rng = None, ["the"], np.random.default_rng(0)
for _ in range(15):
    logits, state = model(ndl.Tensor(np.array([[word]], dtype="float32")), state)
    p = np.exp(logits.numpy()[0] - logits.numpy()[0].max())
    word = int(rng.choice(vocab, p=p / p.sum()))
    words.append(corpus.dictionary.idx2word[word])
print(" ".join(words))
