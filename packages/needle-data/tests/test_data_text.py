"""Text corpus: Dictionary, Corpus, batchify and get_batch against hand-computed values."""
import numpy as np
import pytest

from needle import data


@pytest.fixture
def corpus_dir(tmp_path):
    (tmp_path / "train.txt").write_text("the cat sat\nthe dog\n\non the mat\n")
    (tmp_path / "test.txt").write_text("the bird sat\n")
    return tmp_path


def test_data_text_dictionary_ids_in_order_of_appearance():
    d = data.Dictionary()
    assert [d.add_word(w) for w in ["a", "b", "a", "c"]] == [0, 1, 0, 2]
    assert d.idx2word == ["a", "b", "c"] and d.word2idx == {"a": 0, "b": 1, "c": 2} and len(d) == 3


def test_data_text_corpus_tokenizes_lines_with_eos(corpus_dir):
    c = data.Corpus(corpus_dir)
    words = ["the", "cat", "sat", "<eos>", "dog", "on", "mat", "bird"]
    assert c.dictionary.idx2word == words
    ids = {w: i for i, w in enumerate(words)}
    expect_train = "the cat sat <eos> the dog <eos> <eos> on the mat <eos>".split()
    assert c.train == [ids[w] for w in expect_train]
    assert c.test == [ids[w] for w in "the bird sat <eos>".split()]
    short = data.Corpus(corpus_dir, max_lines=1)
    assert short.dictionary.idx2word == ["the", "cat", "sat", "<eos>", "bird"]
    assert short.train == [0, 1, 2, 3]


def test_data_text_batchify_columns_are_contiguous():
    out = data.batchify(list(range(11)), batch_size=3, device=None, dtype=None)
    np.testing.assert_array_equal(out, [[0, 3, 6], [1, 4, 7], [2, 5, 8]])
    with pytest.raises(ValueError, match="batch_size"):
        data.batchify([1, 2], batch_size=0, device=None, dtype=None)


def test_data_text_get_batch_targets_are_next_tokens():
    batches = data.batchify(list(range(20)), 2, None, None)  # (10, 2): columns 0..9 and 10..19
    x, y = data.get_batch(batches, 0, 3)
    np.testing.assert_array_equal(x.numpy(), [[0, 10], [1, 11], [2, 12]])
    np.testing.assert_array_equal(y.numpy(), [1, 11, 2, 12, 3, 13])
    assert not x.requires_grad and x.dtype == "int64"  # token ids stay integers with dtype=None
    x, y = data.get_batch(batches, 7, 5)  # runs short at the end: seq_len = 10 - 1 - 7 = 2
    np.testing.assert_array_equal(x.numpy(), [[7, 17], [8, 18]])
    np.testing.assert_array_equal(y.numpy(), [8, 18, 9, 19])
    with pytest.raises(IndexError):
        data.get_batch(batches, 9, 5)


def test_data_text_bundled_corpus():
    c = data.Corpus(data.text_corpus_dir())
    assert len(c.train) > 50_000 and len(c.test) > 5_000
    assert "<unk>" in c.dictionary.word2idx and "<eos>" in c.dictionary.word2idx
    assert max(c.train + c.test) == len(c.dictionary) - 1
    with open(f"{data.text_corpus_dir()}/train.txt") as f:
        first = f.readline().split()
    assert [c.dictionary.idx2word[i] for i in c.train[:len(first)]] == first
