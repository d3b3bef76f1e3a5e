"""A word-level text corpus in the Penn Treebank layout, as in the course's language model.

A corpus directory holds ``train.txt`` and ``test.txt``: one sentence per line, tokens
separated by whitespace. :class:`Corpus` maps every token to an id (a shared
:class:`Dictionary`) and ends each line with ``<eos>``; :func:`batchify` cuts the id stream
into ``batch_size`` columns and :func:`get_batch` takes ``bptt`` rows of them.
A small public-domain corpus ships with the package: :func:`text_corpus_dir`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

EOS = "<eos>"
_BUNDLED = Path(__file__).resolve().parent.parent / "_bundled" / "devils-dictionary"


def text_corpus_dir() -> str:
    """Directory of the bundled corpus (Bierce's *The Devil's Dictionary*, public domain; see ATTRIBUTION.md)."""
    missing = [n for n in ("train.txt", "test.txt") if not (_BUNDLED / n).is_file()]
    if missing:
        raise FileNotFoundError(f"needle-data's bundled text corpus is missing {missing} in {_BUNDLED}; "
                                "reinstall with `pip install --force-reinstall needle-data`")
    return str(_BUNDLED)


class Dictionary:
    """A two-way map between words and ids, ids given in order of first appearance.

    ``word2idx`` maps a word to its id, ``idx2word`` is the list of words by id.
    """

    def __init__(self):
        self.word2idx = {}
        self.idx2word = []

    def add_word(self, word: str) -> int:
        """The id of ``word``, adding it (with the next free id) when it is new."""
        idx = self.word2idx.get(word)
        if idx is None:
            idx = self.word2idx[word] = len(self.idx2word)
            self.idx2word.append(word)
        return idx

    def __len__(self) -> int:
        return len(self.idx2word)

    def __repr__(self):
        return f"Dictionary({len(self)} words)"


class Corpus:
    """Token ids of ``base_dir/train.txt`` and ``base_dir/test.txt`` over one :class:`Dictionary`.

    ``Corpus(base_dir, max_lines=None)``: ``train`` and ``test`` are lists of ids, every line's
    words followed by ``<eos>``; ``max_lines`` reads only the first lines of each file.
    """

    def __init__(self, base_dir, max_lines: int | None = None):
        if max_lines is not None and (isinstance(max_lines, bool) or not isinstance(max_lines, int) or max_lines < 0):
            raise ValueError(f"Corpus: max_lines must be a non-negative int or None, got {max_lines!r}")
        self.dictionary = Dictionary()
        self.train = self.tokenize(os.path.join(os.fspath(base_dir), "train.txt"), max_lines)
        self.test = self.tokenize(os.path.join(os.fspath(base_dir), "test.txt"), max_lines)

    def tokenize(self, path, max_lines: int | None = None) -> list:
        """Ids of the words of ``path`` (each line ends with ``<eos>``), adding new words to the dictionary."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Corpus: {path} not found; a corpus directory holds train.txt and test.txt")
        ids = []
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f):
                if max_lines is not None and n >= max_lines:
                    break
                ids.extend(self.dictionary.add_word(w) for w in line.split())
                ids.append(self.dictionary.add_word(EOS))
        return ids


def batchify(data, batch_size: int, device=None, dtype=None) -> np.ndarray:
    """Arrange the id stream ``data`` as ``batch_size`` columns: a numpy array (len // batch_size, batch_size).

    Column ``j`` is the ``j``-th contiguous stretch of the stream; the tail that does not fill a
    whole row is dropped. (``device``/``dtype`` are the course's arguments; the Tensors are made by
    :func:`get_batch`.)
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batchify: batch_size must be a positive int, got {batch_size!r}")
    data = np.asarray(data)
    nbatch = len(data) // batch_size
    if nbatch == 0:
        raise ValueError(f"batchify: {len(data)} tokens are fewer than batch_size={batch_size}")
    return data[:nbatch * batch_size].reshape(batch_size, nbatch).T.copy()


def get_batch(batches, i: int, bptt: int, device=None, dtype=None):
    """Rows ``i .. i+bptt`` of ``batches`` and the next token of each: ``(data, target)`` Tensors.

    ``data`` has shape (seq_len, batch_size) and ``target`` (seq_len * batch_size,) with
    ``target`` the rows ``i+1 .. i+1+seq_len`` flattened; ``seq_len = min(bptt, len(batches) - 1 - i)``.
    Neither requires a gradient.
    """
    from needle import Tensor  # imported here so needle.data imports without needle's autograd

    batches = np.asarray(batches)
    if bptt < 1:
        raise ValueError(f"get_batch: bptt must be positive, got {bptt}")
    if not 0 <= i < len(batches) - 1:
        raise IndexError(f"get_batch: i={i} must be in [0, {len(batches) - 1}) for batches of shape {batches.shape}")
    seq_len = min(bptt, len(batches) - 1 - i)
    data = batches[i:i + seq_len]
    target = batches[i + 1:i + 1 + seq_len].reshape(-1)
    return (Tensor(data, device=device, dtype=dtype, requires_grad=False),
            Tensor(target, device=device, dtype=dtype, requires_grad=False))
