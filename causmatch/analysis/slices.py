"""Slices of a split: subsets of captions (and images) to cut retrieval, effect and grounding by.

Public API::

    SplitSlices(split)                     # every slice the split offers (built once, vectorised)
      .families                            # family -> what it cuts by (only the families offered)
      .missing                             # family -> why the split does not offer it (one line)
      .keys(words=None) -> list[str]       # slice keys; words: at most this many word slices (most frequent)
      .get(key) -> Slice                   # ConfigError for a key this split cannot cut by; "" = whole split
      .valid(key) -> bool
      .with_outcomes(t2i [C], i2t [I]) -> SplitSlices   # + the outcome family (a checkpoint's ranks, scenes)
      .without_outcomes(why) -> SplitSlices             # the outcome family not offered, and why (in .missing)
    Slice.key / .family / .label / .title / .captions [C] bool / .images [I] bool or None
    Slice.rows(direction) -> [C] or [I] bool, or None when the slice does not cut that direction
    slice_metrics(slices, rank_t2i [C], rank_i2t [I], *, effect=None [C], hits=None [C], words=None [C],
                  ks=(1, 5, 10)) -> pandas.DataFrame

A slice key is ``family:value`` — what a link carries (``slice=word:red``, ``slice=length:6-8``):

* ``word:W`` — captions with the token ``W`` (the regex tokenizer's tokens, as in the split's vocabulary);
* ``length:A-B`` (or ``length:A``) — captions of ``A`` to ``B`` tokens;
* ``regions:A-B`` (or ``regions:A``) — images with ``A`` to ``B`` valid regions (the region mask's count,
  the whole-image region included where the features have one), and their captions;
* scenes only — the generator's labels, read from ``{split}_scenes.jsonl`` and the grounding file:
  ``relation:left_of|right_of|above|below|near|none`` (the caption's spatial relation), ``attribute:colour|
  size|colour_size|shape_only`` (which attribute words besides the shape the caption uses), ``template:single|
  pair|triple|count`` (how many objects it names; ``count`` for "six objects with …"), ``distractor:present|
  absent`` (the image holds the bias distractor, which captions never mention; an image slice);
* scenes only, for one checkpoint — ``outcome:first|ambiguous|real``: the queries whose true item that
  checkpoint ranks first; its failures whose best wrong item also fits the query (the caption is true of that
  image, ``causmatch.data.scenes.fit``: no model error); its real failures (the best wrong item does not fit).
  Each direction's queries by their own outcome (``causmatch.analysis.failures.fit_outcome``): the slice's
  captions are the caption queries, its images the image queries (:data:`QUERY_FAMILIES`) — not an image
  slice's images and their captions. :meth:`SplitSlices.with_outcomes` adds the family from the outcomes.

A caption slice cuts caption queries (t2i) and matching pairs; an image slice cuts image queries (i2t) and,
through them, their captions. A caption slice does not cut image queries: :meth:`Slice.rows` is None there.

Metrics of a slice (:func:`slice_metrics`) are those of the whole split restricted to its queries, so a slice
that holds everything gives evaluate's R@K: ``t2i_rK`` = % of the slice's captions whose true image ranks
within K; ``i2t_rK`` = % of the slice's images (image slices only) with a caption within K; ``effect`` = mean
effect S(α) − S(ᾱ) of the slice's matching pairs; ``pointing`` = % of the grounded words of its captions whose
most-attended region is one of theirs (pooled over words, as the split's grounding accuracy).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from causmatch.analysis.failures import OUTCOMES
from causmatch.data.scenes.captions import NUMBERS
from causmatch.data.vocab import tokenize
from causmatch.errors import ConfigError, DataError

FAMILIES = {
    "word": "a word in the caption",
    "length": "caption length (tokens)",
    "regions": "valid regions of the image",
    "relation": "spatial relation named by the caption (scenes generator)",
    "attribute": "attribute words besides the shape (scenes generator)",
    "template": "objects named by the caption (scenes generator)",
    "distractor": "the bias distractor in the image (scenes generator, never mentioned)",
    "outcome": "a checkpoint's outcome: ranked first, a failure whose best wrong item fits, a real failure",
}
SCENE_FAMILIES = ("relation", "attribute", "template", "distractor")
IMAGE_FAMILIES = ("regions", "distractor")
QUERY_FAMILIES = ("outcome",)  # captions: caption queries, images: image queries, each by its own label
MAX_BINS = 5

# The scenes generator's relation phrases (causmatch.data.scenes.captions.relation), by the relation they say.
RELATION_WORDS = {"left": "left_of", "right": "right_of", "above": "above", "below": "below", "under": "below",
                  "beneath": "below", "beside": "near", "near": "near", "next": "near"}
VALUES = {
    "relation": ("left_of", "right_of", "above", "below", "near", "none"),
    "attribute": ("colour", "size", "colour_size", "shape_only"),
    "template": ("single", "pair", "triple", "count"),
    "distractor": ("present", "absent"),
    "outcome": OUTCOMES,
}
TITLES = {"word": "word", "length": "caption length", "regions": "valid regions", "relation": "relation",
          "attribute": "attribute words", "template": "objects named", "distractor": "bias distractor",
          "outcome": "outcome"}
VALUE_NAMES = {"left_of": "left of", "right_of": "right of", "above": "above", "below": "below",
               "near": "next to / beside / near", "none": "no relation", "colour_size": "colour and size",
               "shape_only": "shape only", "colour": "colour only", "size": "size only", "single": "one object",
               "pair": "two objects", "triple": "three objects", "count": "counts the objects",
               "present": "distractor present", "absent": "no distractor", "first": "ranked first",
               "ambiguous": "best wrong also fits", "real": "real failures only"}
COUNT_NOUNS = ("objects", "shapes")


@dataclass(frozen=True)
class Slice:
    """One slice: its link key, family, a readable label, and its captions [C] and images [I] (None: a
    caption slice)."""

    key: str
    family: str
    label: str                       # the value, short ("left of", "6–8 tokens"); ``title``: with its family
    captions: np.ndarray
    images: np.ndarray | None = None

    @property
    def title(self) -> str:
        return "whole split" if self.family == "all" else f"{TITLES[self.family]}: {self.label}"

    def rows(self, direction: str) -> np.ndarray | None:
        """The queries of ``direction`` in the slice ([C] for t2i, [I] for i2t); None when it does not cut
        them (a caption slice and image queries)."""
        if direction == "t2i":
            return self.captions
        if direction == "i2t":
            return self.images
        raise ConfigError(f"direction '{direction}' is not valid — use 't2i' (caption queries) or 'i2t'")


def _range(text: str) -> tuple[int, int] | None:
    """``"A-B"`` or ``"A"`` as whole numbers (A <= B), else None."""
    lo, _, hi = text.partition("-")
    hi = hi or lo
    if not (lo.isdigit() and hi.isdigit()) or int(lo) > int(hi):
        return None
    return int(lo), int(hi)


def _range_text(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def bins(values: np.ndarray, max_bins: int = MAX_BINS) -> list[tuple[int, int]]:
    """Up to ``max_bins`` whole-number ranges covering ``values``: each distinct value when there are few,
    else cut at the quantiles (every range non-empty, each value in exactly one)."""
    values = np.asarray(values, dtype=np.int64)
    if values.size == 0:
        return []
    distinct = np.unique(values)
    if len(distinct) <= max_bins:
        return [(int(v), int(v)) for v in distinct]
    cuts = np.quantile(values, np.linspace(0, 1, max_bins + 1)[1:-1], method="lower")
    uppers = sorted({int(c) for c in cuts if c < distinct[-1]}) + [int(distinct[-1])]
    out, lo = [], int(distinct[0])
    for hi in uppers:
        if ((values >= lo) & (values <= hi)).any():
            out.append((lo, hi))
        lo = hi + 1
    return out


def _tokens(entry: dict | None, caption: str) -> list[str]:
    """A caption's tokens: the grounding file's (the generator's own) when it lists them, else the regex
    tokenizer's."""
    toks = entry.get("tokens") if isinstance(entry, dict) else None
    if isinstance(toks, list) and all(isinstance(t, str) for t in toks):
        return [t.lower() for t in toks]
    return tokenize(caption)


def _read_scenes(split) -> list[dict]:
    """The generator's objects of each image, from ``{split}_scenes.jsonl`` (DataError when unreadable)."""
    path = Path(split.folder) / f"{split.split}_scenes.jsonl"
    if not path.is_file():
        raise FileNotFoundError(path)
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        scenes = [json.loads(ln) for ln in lines]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path.name} cannot be read ({type(err).__name__})") from None
    if len(scenes) != split.n_images or any(not isinstance(s, dict) or s.get("image") != i
                                            or not isinstance(s.get("objects"), list)
                                            for i, s in enumerate(scenes)):
        raise DataError(f"{path.name} does not list the split's {split.n_images} images in order")
    return scenes


class SplitSlices:
    """Every slice ``split`` offers (module docstring). Built once per split; :meth:`get` is cheap."""

    def __init__(self, split):
        self.n_images, self.n_captions, self.k = split.n_images, split.n_captions, split.caps_per_image
        self.image_of = np.arange(self.n_captions) // self.k  # [C]
        tokens = [_tokens(g, c) for g, c in zip(split.grounding or [None] * self.n_captions, split.captions)]
        self.length = np.array([len(t) for t in tokens], dtype=np.int64)  # [C]
        self.regions = np.asarray(split.region_mask, dtype=bool).sum(axis=1).astype(np.int64)  # [I]
        # Words: unique (word, caption) pairs, so a word's captions are one comparison away.
        flat = np.array([w for t in tokens for w in t], dtype=object)
        owner = np.repeat(np.arange(self.n_captions), self.length)
        if flat.size:
            vocab, inverse = np.unique(flat.astype(str), return_inverse=True)
            pairs = np.unique(np.stack([inverse, owner], axis=1), axis=0)  # [P, 2] (word id, caption)
        else:
            vocab, pairs = np.array([], dtype=str), np.zeros((0, 2), np.int64)
        self._vocab = {str(w): i for i, w in enumerate(vocab)}
        self._pairs = pairs
        counts = np.bincount(pairs[:, 0], minlength=len(vocab)) if len(vocab) else np.zeros(0, np.int64)
        order = np.lexsort((vocab, -counts)) if len(vocab) else np.zeros(0, np.int64)  # most frequent first
        self.word_counts = {str(vocab[i]): int(counts[i]) for i in order}
        self.families = {f: FAMILIES[f] for f in ("word", "length", "regions")}
        self.missing: dict[str, str] = {}
        self._labels: dict[str, np.ndarray] = {}
        self._scene_labels(split, tokens)
        self._outcomes: tuple[np.ndarray, np.ndarray] | None = None  # with_outcomes: a checkpoint's

    # -- a checkpoint's outcomes ------------------------------------------------------------------------
    def with_outcomes(self, t2i, i2t) -> "SplitSlices":
        """A copy that also offers the ``outcome`` family: ``t2i`` [C] and ``i2t`` [I] are every caption and
        image query's :data:`causmatch.analysis.failures.OUTCOMES` label (``failures.fit_outcome``). The
        arrays of this object are shared, not copied (both are read-only)."""
        t2i, i2t = np.asarray(t2i, dtype=object), np.asarray(i2t, dtype=object)
        if t2i.shape != (self.n_captions,) or i2t.shape != (self.n_images,):
            raise DataError(f"outcomes for {t2i.shape} caption and {i2t.shape} image queries do not fit a split "
                            f"of {self.n_captions} captions and {self.n_images} images — compute them on this split")
        bad = sorted({str(v) for v in (*t2i, *i2t)} - set(OUTCOMES))
        if bad:
            raise DataError(f"outcome '{bad[0][:40]}' is not one of {', '.join(OUTCOMES)}")
        out = copy.copy(self)
        out.families = {**self.families, "outcome": FAMILIES["outcome"]}
        out.missing = {f: w for f, w in self.missing.items() if f != "outcome"}
        out._outcomes = (t2i, i2t)
        return out

    def without_outcomes(self, why: str) -> "SplitSlices":
        """A copy that does not offer the ``outcome`` family, saying ``why`` (one line)."""
        out = copy.copy(self)
        out.families = {f: d for f, d in self.families.items() if f != "outcome"}
        out.missing = {**self.missing, "outcome": f"the real-failure slices are not offered: {why}"}
        out._outcomes = None
        return out

    # -- the scenes generator's labels ----------------------------------------------------------------
    def _scene_labels(self, split, tokens: list[list[str]]) -> None:
        try:
            scenes = _read_scenes(split)
        except FileNotFoundError:
            why = (f"no {split.split}_scenes.jsonl: the relation, attribute, template and distractor slices "
                   "come from the scenes generator's labels, which this dataset does not have")
            self.missing.update({f: why for f in SCENE_FAMILIES})
            return
        except DataError as err:
            self.missing.update({f: f"{err} — its slices are not offered" for f in SCENE_FAMILIES})
            return
        present = np.array([any(bool(o.get("distractor")) for o in s["objects"]) for s in scenes])
        self._labels["distractor"] = np.where(present, "present", "absent")
        self.families["distractor"] = FAMILIES["distractor"]
        if split.grounding is None:
            why = (f"no {split.split}_grounding.jsonl: the relation, attribute and template slices read the "
                   "generator's word alignment")
            self.missing.update({f: why for f in ("relation", "attribute", "template")})
            return
        relation, attribute, template = [], [], []
        for toks, g in zip(tokens, split.grounding):
            rel = [RELATION_WORDS[t] for t in toks if t in RELATION_WORDS]
            relation.append(rel[0] if rel else "none")
            types = {w.get("type") for w in g.get("words", [])}
            attribute.append("colour_size" if {"colour", "size"} <= types else "colour" if "colour" in types
                             else "size" if "size" in types else "shape_only")
            counted = any(a in NUMBERS and b in COUNT_NOUNS for a, b in zip(toks, toks[1:]))
            named = len({w.get("object") for w in g.get("words", [])})
            template.append("count" if counted else "triple" if named >= 3 else "pair" if named == 2 else "single")
        for name, values in (("relation", relation), ("attribute", attribute), ("template", template)):
            self._labels[name] = np.array(values, dtype=object)
            self.families[name] = FAMILIES[name]

    # -- keys -------------------------------------------------------------------------------------------
    def keys(self, words: int | None = None) -> list[str]:
        """The slice keys offered: length and region bins, the generator's labels present in the split,
        then word slices, most frequent first (``words``: at most this many; None: every word). Word
        slices for the words in more than half of the captions ("a", "the") and punctuation come last: they
        hardly cut."""
        out = [f"length:{_range_text(lo, hi)}" for lo, hi in bins(self.length)]
        out += [f"regions:{_range_text(lo, hi)}" for lo, hi in bins(self.regions)]
        for family in SCENE_FAMILIES:
            if family in self._labels:
                seen = set(self._labels[family])
                out += [f"{family}:{v}" for v in VALUES[family] if v in seen]
        if self._outcomes is not None:
            seen = {*self._outcomes[0], *self._outcomes[1]}
            out += [f"outcome:{v}" for v in VALUES["outcome"] if v in seen]
        half = self.n_captions / 2
        telling = {w for w, n in self.word_counts.items() if n <= half and any(ch.isalnum() for ch in w)}
        ranked = [w for w in self.word_counts if w in telling] + [w for w in self.word_counts if w not in telling]
        return out + [f"word:{w}" for w in (ranked if words is None else ranked[:words])]

    def valid(self, key: str) -> bool:
        try:
            self.get(key)
        except ConfigError:
            return False
        return True

    def get(self, key: str) -> Slice:
        """The slice of ``key`` (``family:value``); a ConfigError saying why when the split has no such slice."""
        if key == "":
            return Slice("", "all", "whole split", np.ones(self.n_captions, bool), np.ones(self.n_images, bool))
        family, sep, value = str(key).partition(":")
        if not sep or family not in FAMILIES:
            raise ConfigError(f"'{str(key)[:60]}' is not a slice — use family:value with a family among "
                              f"{', '.join(FAMILIES)} (e.g. word:red, length:6-8)")
        if family not in self.families:
            raise ConfigError(f"this split has no {family} slices: {self.missing.get(family, 'not offered')}")
        if family == "word":
            if value not in self._vocab:
                raise ConfigError(f"no caption of this split has the word '{value[:40]}' — pick a word it uses")
            caps = np.zeros(self.n_captions, bool)
            caps[self._pairs[self._pairs[:, 0] == self._vocab[value], 1]] = True
            return Slice(key, family, value, caps)
        if family in ("length", "regions"):
            bounds = _range(value)
            if bounds is None:
                raise ConfigError(f"{family} slice '{value[:40]}' is not a range — use A-B or A (whole numbers, "
                                  "A ≤ B)")
            lo, hi = bounds
            unit = "tokens" if family == "length" else "regions"
            label = f"{_range_text(lo, hi).replace('-', '–')} {unit}"
            if family == "length":
                return Slice(key, family, label, (self.length >= lo) & (self.length <= hi))
            images = (self.regions >= lo) & (self.regions <= hi)
            return Slice(key, family, label, images[self.image_of], images)
        if value not in VALUES[family]:
            raise ConfigError(f"{family} slice '{value[:40]}' does not exist — use one of "
                              f"{', '.join(VALUES[family])}")
        label = VALUE_NAMES.get(value, value)
        if family == "outcome":
            t2i, i2t = self._outcomes
            return Slice(key, family, label, t2i == value, i2t == value)
        hit = self._labels[family] == value
        if family in IMAGE_FAMILIES:
            return Slice(key, family, label, hit[self.image_of], hit)
        return Slice(key, family, label, hit)


def _share(masks: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per row of ``masks [S, N]``: the mean of ``values [N]`` over its members (NaN when empty)."""
    n = masks.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, masks.astype(np.float64) @ values / np.maximum(n, 1), np.nan)


def _median_rank(ranks: np.ndarray, mask: np.ndarray) -> float:
    """Median 1-based rank of the masked queries (as evaluate's medr); NaN when none."""
    return float(np.floor(np.median(ranks[mask])) + 1) if mask.any() else float("nan")


def slice_metrics(slices: list[Slice], rank_t2i, rank_i2t, *, effect=None, hits=None, words=None,
                  ks=(1, 5, 10)) -> pd.DataFrame:
    """One row per slice: its size and R@K (percent, both directions where the slice cuts them), mean
    effect of its matching pairs and pooled pointing accuracy (module docstring). Ranks are 0-based
    (``causmatch.evaluation.ranks_t2i`` / ``ranks_i2t``); ``effect`` [C] the matching pairs' effects;
    ``hits``/``words`` [C] each caption's pointing hits and grounded words."""
    rank_t2i, rank_i2t = np.asarray(rank_t2i), np.asarray(rank_i2t)
    rows = {"slice": [s.key for s in slices], "family": [s.family for s in slices],
            "label": [s.label for s in slices]}
    if not slices:
        return pd.DataFrame(rows)
    caps = np.stack([s.captions for s in slices])  # [S, C]
    if caps.shape[1] != rank_t2i.shape[0]:
        raise DataError(f"the slices cover {caps.shape[1]} captions but the ranks {rank_t2i.shape[0]} — "
                        "build both from the same split")
    imgs = np.stack([s.images if s.images is not None else np.zeros(rank_i2t.shape[0], bool) for s in slices])
    is_image = np.array([s.images is not None for s in slices])
    rows["captions"] = caps.sum(axis=1)
    rows["images"] = np.where(is_image, imgs.sum(axis=1), np.nan)  # NaN: a caption slice
    for k in ks:
        rows[f"t2i_r{k}"] = 100.0 * _share(caps, (rank_t2i < k).astype(np.float64))
    for k in ks:
        rows[f"i2t_r{k}"] = np.where(is_image, 100.0 * _share(imgs, (rank_i2t < k).astype(np.float64)), np.nan)
    rows["t2i_medr"] = [_median_rank(rank_t2i, m) for m in caps]
    rows["i2t_medr"] = [_median_rank(rank_i2t, m) if image else np.nan for m, image in zip(imgs, is_image)]
    if effect is not None:
        rows["effect"] = _share(caps, np.asarray(effect, np.float64))
    if hits is not None and words is not None:
        hits, words = np.asarray(hits, np.float64), np.asarray(words, np.float64)
        total = caps.astype(np.float64) @ words
        with np.errstate(invalid="ignore", divide="ignore"):
            rows["pointing"] = np.where(total > 0, 100.0 * (caps.astype(np.float64) @ hits) / np.maximum(total, 1),
                                        np.nan)
    return pd.DataFrame(rows)
