"""Rebuild the bundled text corpus (``_bundled/devils-dictionary``) from its public-domain source.

Source: Ambrose Bierce, *The Devil's Dictionary* (1911; public domain, copyright expired), as
shipped by Debian's ``dict-devil`` package (1.0-13.1), file ``/usr/share/dictd/devil.dict.dz``::

    apt-get download dict-devil && dpkg-deb -x dict-devil_1.0-13.1_all.deb x
    python tools/make_text_corpus.py x/usr/share/dictd/devil.dict.dz src/needle/data/_bundled/devils-dictionary

Processing (PTB-like, deterministic): keep the text from the preface on; lowercase; drop the
``_italic_`` markers; numbers become ``N``; words and punctuation become space-separated tokens;
prose is split into one sentence per line, verse keeps its lines; words seen fewer than
``MIN_COUNT`` times in the whole text become ``<unk>``. Every tenth dictionary entry (and
nothing of the preface) goes to ``test.txt``, the rest to ``train.txt``.
"""
import collections
import gzip
import os
import re
import sys

MIN_COUNT = 2
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)*|N|--|[.,;:!?'\"()]")
_HEADWORD = re.compile(r"^[A-Z][A-Z'. -]*, [a-z]")


def _read(path):
    opener = gzip.open if path.endswith((".gz", ".dz")) else open
    with opener(path, "rt", encoding="latin1") as f:
        return f.read()


def _tokens(text):
    text = re.sub(r"\d+(?:[.,]\d+)*", " N ", text.replace("_", "").lower())
    return _TOKEN.findall(text)


def _paragraphs(text):
    start = text.index("PREFACE")
    body = [ln for ln in text[start:].splitlines() if ln.strip() != "abcdefghijklmnopqrstuvwxyz"]
    para = []
    for line in body + [""]:
        if line.strip():
            para.append(line)
        elif para:
            yield para
            para = []


def _lines(para):
    if all(ln.startswith(" ") for ln in para):  # verse: one line each
        return [_tokens(ln) for ln in para]
    prose = " ".join(ln.strip() for ln in para)
    return [_tokens(s) for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"(])", prose)]


def build(source, out_dir):
    entries = [[]]  # entries[0] is the preface
    for para in _paragraphs(_read(source)):
        if _HEADWORD.match(para[0]):
            entries.append([])
        entries[-1].extend(t for t in _lines(para) if t)
    counts = collections.Counter(w for e in entries for line in e for w in line)
    os.makedirs(out_dir, exist_ok=True)
    files = {name: open(os.path.join(out_dir, name), "w", encoding="ascii") for name in ("train.txt", "test.txt")}
    for i, entry in enumerate(entries):
        out = files["test.txt" if i % 10 == 9 else "train.txt"]
        for line in entry:
            out.write(" ".join(w if counts[w] >= MIN_COUNT else "<unk>" for w in line) + "\n")
    for f in files.values():
        f.close()
    return len(entries) - 1, sum(c >= MIN_COUNT for c in counts.values())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    n_entries, vocab = build(sys.argv[1], sys.argv[2])
    print(f"{n_entries} entries, vocabulary {vocab} words + <unk> + <eos>")
