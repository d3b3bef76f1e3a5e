"""Train a word-level language model (LSTM, RNN or Transformer) on the public-domain text bundled
with needle-data (Bierce's *The Devil's Dictionary*, PTB-style), printing perplexity.

    python examples/lm_text.py                          # LSTM, defaults
    python examples/lm_text.py --model transformer --epochs 3
    python examples/lm_text.py --data-dir path/to/ptb   # any folder with train.txt and test.txt

Truncated back-propagation through time: the id stream is cut into --batch-size columns
(``batchify``) and windows of --bptt steps (``get_batch``); the recurrent state is carried
from window to window with its graph cut. Prints a progress bar per epoch (on a terminal) and
the train and test perplexity (exp of the mean cross-entropy per token) after each epoch.
"""
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/models.py

import needle as ndl  # noqa: E402
import needle.data as data  # noqa: E402
import needle.nn as nn  # noqa: E402
import needle.optim as optim  # noqa: E402
from _common import pick_device, progress  # noqa: E402
from models import LanguageModel, detach_state  # noqa: E402


def run_epoch(model, batches, bptt, loss_fn, device, opt=None, clip=None, desc=""):
    """One pass over the (rows, batch) id array; trains when ``opt`` is given. Returns mean loss per token."""
    model.train() if opt is not None else model.eval()
    total, tokens, h = 0.0, 0, None
    recurrent = model.seq_model_name != "transformer"
    for i in progress(range(0, len(batches) - 1, bptt), desc=desc, unit="window"):
        x, y = data.get_batch(batches, i, bptt, device=device)
        logits, h = model(x, h if recurrent else None)
        loss = loss_fn(logits, y)
        if opt is not None:
            opt.reset_grad()
            loss.backward(create_graph=False)
            if clip:
                optim.clip_grad_norm(model.parameters(), clip)
            opt.step()
        h = detach_state(h)
        total += loss.item() * y.shape[0]
        tokens += y.shape[0]
    return total / tokens


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="auto", help="auto (fastest installed), numpy, cpu, cuda or a plugin")
    parser.add_argument("--model", default="lstm", choices=["lstm", "rnn", "transformer"])
    parser.add_argument("--data-dir", help="folder with train.txt and test.txt (default: the bundled text)")
    parser.add_argument("--max-lines", type=int, help="read only this many lines of each file")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="seed for numpy's generator (init)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bptt", type=int, default=24, help="window length (steps per truncated BPTT window)")
    parser.add_argument("--embedding-size", type=int, default=96)
    parser.add_argument("--hidden-size", type=int, default=192)
    parser.add_argument("--num-layers", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.003, help="Adam learning rate")
    parser.add_argument("--clip", type=float, default=1.0, help="gradient norm clip (0: none)")
    parser.add_argument("--json", help="write the per-epoch history to this file")
    args = parser.parse_args(argv)

    np.random.seed(args.seed)
    device = pick_device(args.backend)
    corpus = data.Corpus(args.data_dir or data.text_corpus_dir(), max_lines=args.max_lines)
    vocab = len(corpus.dictionary)
    train = data.batchify(corpus.train, args.batch_size, device=device, dtype="float32")
    test = data.batchify(corpus.test, args.batch_size, device=device, dtype="float32")
    model = LanguageModel(args.embedding_size, vocab, args.hidden_size, args.num_layers, seq_model=args.model,
                          seq_len=args.bptt, device=device)
    loss_fn = nn.SoftmaxLoss()
    opt = optim.Adam(model.parameters(), lr=args.lr)
    print(f"needle {ndl.__version__} | device {device} | {len(corpus.train)} train / {len(corpus.test)} test tokens, "
          f"vocabulary {vocab} | {args.model}, {args.num_layers} layer(s) | {args.epochs} epochs")
    history = []
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        train_loss = run_epoch(model, train, args.bptt, loss_fn, device, opt, args.clip,
                               desc=f"epoch {epoch}/{args.epochs}")
        seconds = time.perf_counter() - start
        test_loss = run_epoch(model, test, args.bptt, loss_fn, device, desc="eval")
        history.append(dict(epoch=epoch, train_ppl=math.exp(train_loss), test_ppl=math.exp(test_loss),
                            tokens_per_s=train.size / seconds))
        print(f"epoch {epoch:2d}: train perplexity {math.exp(train_loss):8.2f} | test perplexity "
              f"{math.exp(test_loss):8.2f} | {train.size / seconds:.0f} tokens/s", flush=True)
    print(f"final test perplexity: {history[-1]['test_ppl']:.2f} (uniform guess: {vocab})")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": str(device), "model": args.model, "history": history},
                                              indent=2))
    return history[-1]["test_ppl"]


if __name__ == "__main__":
    main()
