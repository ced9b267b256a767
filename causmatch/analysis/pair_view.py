"""The failing pair: one query beside its true item and its best wrong item (numpy only).

Public API::

    FailingPair                                   # dataclass, fields below
    failing_pair(ranking, *, fits=None, captions=None, caps_per_image=None) -> FailingPair
    counterparts(true_tokens, wrong_tokens) -> [W] int64           # the same word in the other pair, -1: none
    relevance_gap(true_rel [W], wrong_rel [W'], counterpart [W]) -> [W] float   # NaN: no counterpart
    attention_distance(true_map [W,R], wrong_map [W',R], counterpart [W], region_mask [R]) -> [W] float
    usable_words(tokens, unknown_words=()) -> [W] bool
    common_words(captions_tokens, share=COMMON_SHARE) -> frozenset[str]   # words in most captions ("a")
    most_informative_word(values [W], usable [W] | None = None) -> int
    WordChoice                                    # dataclass: index, values [W], counterpart [W], measure, note
    choose_word(true_ex, wrong_ex, common=frozenset()) -> WordChoice      # from two PairExplanations
    neighbours(keys, current) -> (previous, next, position)        # walking a list of failures
    targets_apart(direction, kind) -> str | None  # why a targeted kind's ᾱ is not drawn for the wrong pair

A failing pair is made from one query's ranking (:class:`causmatch.analysis.ranking.RankResult`): for a
caption query (``t2i``) the caption with its true image and with the best-scoring wrong image; for an image
query (``i2t``) the image with its best-ranked true caption and with the best-scoring wrong caption. The best
wrong item is the highest-scoring item that is not a true one, lower index first on equal scores — the
ranking's one tie rule, so it is the failure table's ``best_wrong``. ``margin`` = S(α) of the true item −
S(α) of the best wrong item (the failure table's margin); ``cf_margin`` the same under the counterfactual
scores of the ranking. When the two scores are equal to float32 precision the pair is a *tie*: the order
comes from the tie rule, not from the model. ``fits(image, caption) -> bool`` is an optional hook: a
dataset rule saying whether a caption also describes an image (e.g. a generator that knows the scenes);
when it says the wrong pair fits, ``also_matches`` is True and the "failure" may be a correct retrieval.
Given the split's ``captions`` (and ``caps_per_image``), a wrong item whose caption is word for word one of
the true ones (a caption query that is also one of the wrong image's captions; an image query whose best
wrong caption repeats one of its own) also matches, whatever the rule; ``match_reason`` says why.

The *most informative word* is the word whose match differs most between the two pairs: the absolute
difference of its relevance (the cosine between the word and the image context it attends to — the
per-word term the score pools) in the true pair and in the wrong pair. For a caption query both pairs share
the caption, so a word is compared with itself; for an image query the two captions differ, and a word is
compared with the same word of the other caption (its k-th occurrence with the other caption's k-th;
:func:`counterparts`); a word the other caption lacks has no value. A model that reports no word relevance
(one that only attends from regions to words) is compared by the total-variation distance between the
word's attention over the regions (:func:`attention_distance`) — only when both pairs share the image, as
regions of two images are not the same regions. Ties go to the lowest index; padding, special tokens and
words the vocabulary does not know are never chosen unless no other word is left. A *common* word — one
that occurs in more than half of the split's captions ("a": :func:`common_words`) — says little about
which item fits the query, so it is chosen only when no other usable word can be compared.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from causmatch.data.vocab import SPECIALS
from causmatch.errors import DataError
from causmatch.ranks import rank_positions

# A word in more than this share of the split's captions is a common word ("a": 93% of the scenes test captions).
# Not lower: a dataset with a small vocabulary has content words in a third or more of its captions (four
# colours in two slots: 44%), and a rarer function word ("the" 38%) is still a word the two pairs can differ on.
COMMON_SHARE = 0.5

# Two scores closer than this (relative to their size) are a tie: float32 carries about 7 digits, and a
# score matrix is float32, so a smaller difference says nothing about the model.
TIE_RTOL, TIE_ATOL = 2e-6, 1e-7


@dataclass(frozen=True)
class FailingPair:
    """One query, its true item and its best wrong item, with their scores and ranks (0-based)."""

    direction: str                 # "t2i": caption query over images; "i2t": image query over captions
    query: int
    true_item: int                 # image (t2i) or caption (i2t)
    wrong_item: int
    rank: int                      # the true item's rank, factual
    cf_rank: int                   # … counterfactual
    wrong_rank: int                # the wrong item's rank, factual
    wrong_cf_rank: int
    score_true: float              # S(α) of the true pair
    score_wrong: float
    cf_score_true: float           # the ranking's counterfactual score (mean of its draws)
    cf_score_wrong: float
    tie: bool                      # the two factual scores are equal to float32 precision
    also_matches: bool | None      # the wrong item also matches the query; None: no rule and no equal text
    gallery: int                   # number of items ranked
    match_reason: str = ""         # why the wrong item also matches ("" when it does not, or nobody knows)

    @property
    def margin(self) -> float:
        """S(α) of the true item − S(α) of the best wrong item (< 0: a wrong item wins)."""
        return self.score_true - self.score_wrong

    @property
    def cf_margin(self) -> float:
        return self.cf_score_true - self.cf_score_wrong

    @property
    def failed(self) -> bool:
        """The true item is not ranked first."""
        return self.rank > 0

    @property
    def true_pair(self) -> tuple[int, int]:
        """(image, caption) of the query with its true item."""
        return (self.true_item, self.query) if self.direction == "t2i" else (self.query, self.true_item)

    @property
    def wrong_pair(self) -> tuple[int, int]:
        """(image, caption) of the query with its best wrong item."""
        return (self.wrong_item, self.query) if self.direction == "t2i" else (self.query, self.wrong_item)


def _same_text(a: str, b: str) -> bool:
    return " ".join(str(a).lower().split()) == " ".join(str(b).lower().split())


def failing_pair(ranking, *, fits: Callable[[int, int], Any] | None = None, captions: Sequence[str] | None = None,
                 caps_per_image: int | None = None) -> FailingPair:
    """The failing pair of one query's ranking (a RankResult; module docstring).

    A gallery with no wrong item, or scores that are not finite, are refused with a DataError.
    """
    if ranking.direction not in ("t2i", "i2t"):
        raise DataError(f"a failing pair needs a caption (t2i) or image (i2t) query, got '{ranking.direction}'")
    scores = np.asarray(ranking.scores, dtype=np.float64)        # [M]
    cf = np.asarray(ranking.cf_scores, dtype=np.float64)         # [M]
    true = {int(t) for t in ranking.true_items}
    wrong = [m for m in range(len(scores)) if m not in true]
    what = f"{'caption' if ranking.direction == 't2i' else 'image'} query {ranking.query}"
    if not wrong:
        raise DataError(f"{what}: every item of the gallery is a true one, so there is no wrong item to "
                        "compare with — open a split with more than one image")
    pos, cf_pos = rank_positions(scores), rank_positions(cf)      # [M] each
    w = min(wrong, key=lambda m: int(pos[m]))  # the best-ranked wrong item: highest score, lower index on a tie
    t = int(ranking.true_item)
    picked = np.array([scores[t], scores[w], cf[t], cf[w]])
    if not np.isfinite(picked).all():
        raise DataError(f"{what}: the scores of its true or best wrong item are not finite (NaN or infinite) — "
                        "the checkpoint or the features hold non-finite numbers; check them with "
                        "`causmatch evaluate`")
    true_pos = min(int(pos[m]) for m in true)
    cf_true_pos = min(int(cf_pos[m]) for m in true)
    tie = bool(np.isclose(scores[t], scores[w], rtol=TIE_RTOL, atol=TIE_ATOL))
    image, caption = (w, ranking.query) if ranking.direction == "t2i" else (ranking.query, w)
    also, reason = (None, "") if fits is None else (bool(fits(int(image), int(caption))), "")
    if also:
        reason = "the dataset's rule says the caption is true of the wrong image"
    if captions is not None and caps_per_image:
        k = int(caps_per_image)
        if ranking.direction == "t2i":  # the query caption is one of the wrong image's captions, word for word
            same = any(_same_text(captions[c], captions[ranking.query]) for c in range(w * k, w * k + k))
        else:                           # the wrong caption repeats one of the query image's own captions
            same = any(_same_text(captions[w], captions[c]) for c in sorted(true))
        if same:
            also, reason = True, ("the wrong image has a caption identical to the query" if ranking.direction == "t2i"
                                  else "the wrong caption is word for word one of the image's own captions")
    return FailingPair(direction=ranking.direction, query=int(ranking.query), true_item=t, wrong_item=int(w),
                       rank=true_pos, cf_rank=cf_true_pos, wrong_rank=int(pos[w]), wrong_cf_rank=int(cf_pos[w]),
                       score_true=float(scores[t]), score_wrong=float(scores[w]), cf_score_true=float(cf[t]),
                       cf_score_wrong=float(cf[w]), tie=tie, also_matches=also, gallery=len(scores),
                       match_reason=reason)


# ------------------------------------------------------------------------------------------------ words

def counterparts(true_tokens: Sequence[str], wrong_tokens: Sequence[str]) -> np.ndarray:
    """For each word of the true pair's caption, the index of the same word in the wrong pair's caption.

    The k-th occurrence of a word is paired with the other caption's k-th occurrence of it; -1 when the
    other caption has fewer (or none). Equal captions give ``0 … W-1``.
    """
    seen: dict[str, list[int]] = {}
    for j, tok in enumerate(wrong_tokens):
        seen.setdefault(str(tok), []).append(j)
    used: dict[str, int] = {}
    out = np.full(len(true_tokens), -1, dtype=np.int64)
    for j, tok in enumerate(true_tokens):
        k = used.get(str(tok), 0)
        places = seen.get(str(tok), [])
        if k < len(places):
            out[j] = places[k]
        used[str(tok)] = k + 1
    return out


def _vector(values, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(arr).all():
        raise DataError(f"{what} hold NaN or infinite values — the model produced non-finite numbers; "
                        "no word is chosen from them")
    return arr


def _check_counterpart(counterpart, n_true: int, n_wrong: int) -> np.ndarray:
    cp = np.asarray(counterpart, dtype=np.int64).reshape(-1)
    if len(cp) != n_true or ((cp < -1) | (cp >= n_wrong)).any():
        raise DataError(f"word counterparts must be {n_true} indices in -1..{n_wrong - 1}, got {cp.tolist()[:12]}")
    return cp


def relevance_gap(true_rel, wrong_rel, counterpart) -> np.ndarray:
    """``|R_j(true pair) − R_j'(wrong pair)|`` per word ``j`` of the true caption (``j'`` its counterpart);
    NaN where the word has no counterpart. ``[W]`` float64."""
    a, b = _vector(true_rel, "word relevances"), _vector(wrong_rel, "word relevances")
    cp = _check_counterpart(counterpart, len(a), len(b))
    out = np.full(len(a), np.nan)
    has = cp >= 0
    out[has] = np.abs(a[has] - b[cp[has]])
    return out


def _shares(m: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Rows of ``m [W,R]`` over the kept regions as shares of 1 (an all-zero row stays 0)."""
    m = np.where(keep[None, :], m, 0.0)
    total = m.sum(axis=1, keepdims=True)
    return np.divide(m, total, out=np.zeros_like(m), where=total > 0)


def attention_distance(true_map, wrong_map, counterpart, region_mask=None) -> np.ndarray:
    """Total-variation distance (½ Σ_r |p_r − q_r|, in [0, 1]) between a word's attention over the valid
    regions of ONE image in the true pair and in the wrong pair (rows taken as shares); NaN without a
    counterpart. ``true_map [W,R]``, ``wrong_map [W',R]`` word × region maps of the same image."""
    a = np.atleast_2d(np.asarray(true_map, dtype=np.float64))
    b = np.atleast_2d(np.asarray(wrong_map, dtype=np.float64))
    if a.shape[1] != b.shape[1]:
        raise DataError(f"attention maps over {a.shape[1]} and {b.shape[1]} regions — the distance compares "
                        "a word's attention over the regions of one image")
    _vector(a, "attention maps")
    _vector(b, "attention maps")
    keep = np.ones(a.shape[1], bool) if region_mask is None else np.asarray(region_mask, bool).reshape(-1)
    if len(keep) != a.shape[1]:
        raise DataError(f"region mask of {len(keep)} entries for maps over {a.shape[1]} regions")
    cp = _check_counterpart(counterpart, len(a), len(b))
    p, q = _shares(a, keep), _shares(b, keep)
    out = np.full(len(a), np.nan)
    has = cp >= 0
    out[has] = 0.5 * np.abs(p[has] - q[cp[has]]).sum(axis=1)
    return out


def usable_words(tokens: Sequence[str], unknown_words: Sequence[str] = ()) -> np.ndarray:
    """``[W]`` bool: a word that may be chosen — not padding or a special token, known to the vocabulary."""
    unknown = {str(w) for w in unknown_words}
    return np.array([bool(str(t).strip()) and str(t) not in SPECIALS and str(t) not in unknown for t in tokens],
                    dtype=bool)


def common_words(captions_tokens, share: float = COMMON_SHARE) -> frozenset:
    """The words that occur in more than ``share`` of the captions (each caption's tokens counted once)."""
    counts: dict[str, int] = {}
    n = 0
    for tokens in captions_tokens:
        n += 1
        for tok in set(map(str, tokens)):
            counts[tok] = counts.get(tok, 0) + 1
    return frozenset(t for t, k in counts.items() if k > share * n) if n else frozenset()


def most_informative_word(values, usable=None) -> int:
    """The index of the largest value among the usable words (the lowest index on a tie).

    Words with no value (NaN) come after every word with one; when no usable word is left, the usable
    rule is dropped (a caption made only of unknown words still shows its first word). Empty: DataError.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if not len(v):
        raise DataError("the caption has no words to choose from")
    if np.isinf(v).any():
        raise DataError("word scores hold infinite values — no word is chosen from them")
    ok = np.ones(len(v), bool) if usable is None else np.asarray(usable, bool).reshape(-1)
    if len(ok) != len(v):
        raise DataError(f"{len(ok)} usable flags for {len(v)} words — pass one per word")
    if not ok.any():
        ok = np.ones(len(v), bool)
    ranked = np.where(ok & ~np.isnan(v), v, -np.inf)
    if np.isfinite(ranked).any():
        return int(np.argmax(ranked))  # the first maximum: the lowest index on a tie
    return int(np.flatnonzero(ok)[0])


@dataclass(frozen=True)
class WordChoice:
    """The most informative word of a failing pair and what it was chosen by."""

    index: int                       # word of the true pair's caption
    values: np.ndarray               # [W] the measure per word (NaN: not comparable)
    counterpart: np.ndarray          # [W] the same word in the wrong pair's caption, -1: none
    usable: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # [W]
    measure: str = "relevance"       # "relevance" | "attention" | "none"
    note: str = ""                   # said beside the choice when the measure could not be used

    def wrong_index(self, word: int) -> int:
        """The wrong pair's word shown beside word ``word`` of the true pair (-1: that caption lacks it)."""
        return int(self.counterpart[word]) if 0 <= word < len(self.counterpart) else -1


def _word_map(ex) -> np.ndarray | None:
    from causmatch.pointing import word_region_map
    return word_region_map(ex.t2i, None if ex.i2t is None else np.asarray(ex.i2t))


def choose_word(true_ex, wrong_ex, common=frozenset()) -> WordChoice:
    """The most informative word of two PairExplanations of one query (module docstring); ``common``: the
    split's common words (:func:`common_words`), chosen only when no other usable word can be compared."""
    tokens = list(true_ex.tokens)
    cp = counterparts(tokens, list(wrong_ex.tokens))
    usable = usable_words(tokens, true_ex.unknown_words)
    same_image = int(true_ex.image) == int(wrong_ex.image)
    if true_ex.word_relevance is not None and wrong_ex.word_relevance is not None:
        values, measure = relevance_gap(true_ex.word_relevance, wrong_ex.word_relevance, cp), "relevance"
    elif same_image and _word_map(true_ex) is not None and _word_map(wrong_ex) is not None:
        values = attention_distance(_word_map(true_ex), _word_map(wrong_ex), cp, true_ex.region_mask)
        measure = "attention"
    else:
        values, measure = np.full(len(tokens), np.nan), "none"
    note = ""
    if measure == "none":
        note = "this model reports no per-word relevance, so the first usable word is shown"
    elif np.isnan(values[usable] if usable.any() else values).all():
        note = "the two captions share no word, so the first usable word is shown"
    rare = usable & np.array([str(t) not in common for t in tokens], dtype=bool)
    valued = ~np.isnan(values)
    # rare words with a value, else any usable word with one, else the first rare word, else the first usable
    pool = next((m for m in (rare & valued, usable & valued, rare) if m.any()), usable)
    index = most_informative_word(values, pool)
    if usable.any() and not rare[index] and str(tokens[index]) in common and not note:
        note = f"“{tokens[index]}” occurs in many captions of the split, but no other word can be compared"
    return WordChoice(index=index, values=values, counterpart=cp, usable=usable, measure=measure, note=note)


# ------------------------------------------------------------------------------------------------ walking

def neighbours(keys: Sequence[Hashable], current: Hashable) -> tuple[Any, Any, int | None]:
    """(previous key, next key, position of ``current``) in ``keys`` (None at either end).

    When ``current`` is not in the list (another filter, or opened from elsewhere) its position is None,
    there is no previous one and the next one is the list's first.
    """
    keys = list(keys)
    try:
        pos = keys.index(current)
    except ValueError:
        return None, (keys[0] if keys else None), None
    return (keys[pos - 1] if pos > 0 else None), (keys[pos + 1] if pos + 1 < len(keys) else None), pos


def targets_apart(direction: str, kind: str) -> str | None:
    """Why the counterfactual of a targeted intervention ``kind`` is not shown for the best wrong pair, or None.

    Targets are picked on the true pair: regions of its image, words of its caption. For a caption query the
    wrong pair holds another image, so region targets would name other objects there; for an image query it
    holds another caption, so word targets would name other words. Such targets are not carried over.
    """
    from causmatch.interventions import target_rule
    rule = target_rule(kind)
    if rule is None:
        return None
    other = {"t2i": "regions", "i2t": "words"}.get(direction)
    if rule.axis != other:
        return None
    item = "image" if direction == "t2i" else "caption"
    return (f"{kind}'s targets are {rule.axis} of the true pair's {item}; the best wrong {item}'s {rule.axis} are "
            "others, so its counterfactual is not computed")
