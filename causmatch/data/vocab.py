"""Word tokenizer and vocabulary, compatible with SCAN's ``vocab/*.json`` files.

SCAN tokenizes with NLTK's ``word_tokenize`` on the lower-cased caption; we use a
dependency-free equivalent that is exact for the plain English captions these data
sets hold: lower-case, split punctuation off words, split on whitespace.
"""
from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

from causmatch.errors import DataError

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)

# A token is a run of word characters (letters, digits, underscore; apostrophes
# inside a word kept, e.g. "man's" -> "man", "'s" like NLTK) or one punctuation mark.
_TOKEN = re.compile(r"\w+|'\w+|[^\w\s]")


def tokenize(text: str) -> list[str]:
    """SCAN-style tokens: lower-case, punctuation split off, whitespace split; no <start>/<end>."""
    return _TOKEN.findall(str(text).lower())


class Vocabulary:
    """Word <-> index map with ``<pad>``=0, ``<start>``=1, ``<end>``=2, ``<unk>``=3."""

    def __init__(self, words: Iterable[str] = ()):
        self.word2idx: dict[str, int] = {}
        self.idx2word: dict[int, str] = {}
        for w in SPECIALS:
            self._add(w)
        for w in words:
            self._add(w)

    def _add(self, word: str) -> None:
        if word not in self.word2idx:
            idx = len(self.word2idx)
            self.word2idx[word] = idx
            self.idx2word[idx] = word

    def __len__(self) -> int:
        return len(self.word2idx)

    def __contains__(self, word: str) -> bool:
        return word in self.word2idx

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.word2idx == other.word2idx

    @classmethod
    def from_captions(cls, captions: Iterable[str], min_count: int = 1) -> "Vocabulary":
        """Words seen at least ``min_count`` times, most frequent first (ties alphabetical)."""
        counts = Counter(tok for cap in captions for tok in tokenize(cap))
        kept = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIALS),
                      key=lambda w: (-counts[w], w))
        return cls(kept)

    def encode(self, tokens: list[str]) -> list[int]:
        """Token ids; words outside the vocabulary map to ``<unk>`` (3)."""
        unk = self.word2idx[UNK]
        return [self.word2idx.get(t, unk) for t in tokens]

    def unknown(self, tokens: list[str]) -> list[str]:
        """The tokens that :meth:`encode` would map to ``<unk>``, in order."""
        return [t for t in tokens if t not in self.word2idx]

    def to_dict(self) -> dict:
        """JSON-ready dict in SCAN's layout (``word2idx``, ``idx2word`` with string keys, ``idx``)."""
        return {"word2idx": dict(self.word2idx),
                "idx2word": {str(i): w for i, w in self.idx2word.items()},
                "idx": len(self.word2idx)}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocabulary":
        """Rebuild from :meth:`to_dict` output or a SCAN vocabulary dict."""
        if not isinstance(d, dict) or not isinstance(d.get("word2idx"), dict):
            raise DataError("vocabulary has no 'word2idx' mapping — use a file written by "
                            "Vocabulary.save or a SCAN vocab JSON")
        pairs = sorted(((int(i), str(w)) for w, i in d["word2idx"].items()))
        idxs = [i for i, _ in pairs]
        if idxs != list(range(len(idxs))):
            raise DataError("vocabulary indices are not 0..N-1 without gaps — the vocab file is corrupt")
        for i, w in enumerate(SPECIALS):
            if i >= len(pairs) or pairs[i][1] != w:
                raise DataError(f"vocabulary index {i} must be '{w}' — the vocab file does not use "
                                "SCAN's special tokens <pad>, <start>, <end>, <unk>")
        vocab = cls()
        for _, w in pairs[len(SPECIALS):]:
            vocab._add(w)
        return vocab

    def save(self, path: str | os.PathLike) -> None:
        """Write JSON atomically (temp file + fsync + rename; :func:`causmatch.outputs.atomic_write`)."""
        from causmatch.outputs import atomic_write_text, os_error

        try:
            atomic_write_text(Path(path), json.dumps(self.to_dict(), ensure_ascii=False))
        except OSError as err:
            raise os_error(err, path) from None

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        """Read a vocabulary JSON (ours or SCAN's)."""
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"vocabulary file {path} not found — check the path") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"vocabulary file {path} is not valid UTF-8 JSON ({err.__class__.__name__})"
                            " — use a file written by Vocabulary.save or SCAN") from None
        return cls.from_dict(d)
