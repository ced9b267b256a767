"""Does the effect flag a wrong match? ROC AUC of per-query predictors of "the top-ranked image is the true one".

For every caption query (text → image) of a split, ranked by the FACTUAL score (ties: the lower image index
first, as :mod:`causmatch.ranks`):

- ``correct``: the caption's own image is at rank 1 (the label);
- ``effect_top``: the effect ``S(α) − S(ᾱ)`` of the query's top-ranked pair (factual minus counterfactual);
- ``effect_margin``: the effect of the top pair minus the effect of the second-ranked pair;
- ``score_margin``: the factual score of the top pair minus the second's — the baseline predictor (how
  sure the ranking itself is).

:func:`roc_auc` is the Mann–Whitney form (the probability that a random correct query has a higher predictor
than a random wrong one, ties counting one half); :func:`bootstrap_interval` resamples the queries with
replacement (fixed seed) for a percentile interval. An AUC needs both classes: a split where every query is
right at rank 1 (or every one wrong) is refused with a one-line :class:`~causmatch.errors.DataError`.
"""
from __future__ import annotations

import numpy as np

from causmatch.errors import DataError

PREDICTORS = ("effect_top", "effect_margin", "score_margin")
RESAMPLES = 1000
LEVEL = 0.95


def _check(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if s.shape != y.shape:
        raise DataError(f"{s.size} predictor values but {y.size} labels — give one of each per query")
    if y.dtype != bool:
        if not np.isin(y, (0, 1)).all():
            raise DataError("labels must be 0/1 or True/False (is the top-ranked item the true one?)")
        y = y.astype(bool)
    if not np.isfinite(s).all():
        bad = int(np.argmax(~np.isfinite(s)))
        raise DataError(f"predictor value {s[bad]} of query {bad} is not finite — no AUC is computed from it")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        which = "right" if n_pos else "wrong"
        raise DataError(f"all {y.size} queries are {which} at rank 1, so no predictor can be told apart from chance "
                        "(the ROC AUC needs right and wrong queries) — use a larger or harder split")
    return s, y


def _midranks(s: np.ndarray) -> np.ndarray:
    """1-based ranks of ``s`` with tied values sharing their mean rank."""
    order = np.argsort(s, kind="stable")
    sorted_s = s[order]
    starts = np.r_[True, sorted_s[1:] != sorted_s[:-1]]                 # first of each run of ties
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)                                       # 0-based start of each group
    last = np.r_[first[1:], s.size] - 1
    mean_rank = (first + last) / 2.0 + 1.0                                # [groups]
    ranks = np.empty(s.size, dtype=np.float64)
    ranks[order] = mean_rank[group]
    return ranks


def roc_auc(scores, labels) -> float:
    """ROC AUC of ``scores`` (higher = more likely positive) for boolean ``labels``: the share of
    (positive, negative) pairs the score orders correctly, a tie counting 1/2."""
    s, y = _check(scores, labels)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    rank_sum = float(_midranks(s)[y].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def bootstrap_interval(scores, labels, *, resamples: int = RESAMPLES, seed: int = 0,
                       level: float = LEVEL) -> dict:
    """Percentile bootstrap interval of :func:`roc_auc` over queries resampled with replacement.

    Returns ``{"lo", "hi", "resamples"}``; resamples that draw a single class are skipped (``resamples``
    counts the ones used). Fixed ``seed``: the same inputs give the same interval.
    """
    s, y = _check(scores, labels)
    if resamples < 1 or not 0 < level < 1:
        raise DataError(f"bootstrap needs resamples >= 1 and 0 < level < 1, got {resamples} and {level}")
    rng = np.random.default_rng(seed)
    aucs = []
    n = s.size
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        yb = y[idx]
        n_pos = int(yb.sum())
        if n_pos in (0, n):
            continue
        rank_sum = float(_midranks(s[idx])[yb].sum())
        aucs.append((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * (n - n_pos)))
    if not aucs:
        return {"lo": float("nan"), "hi": float("nan"), "resamples": 0}
    tail = 100.0 * (1.0 - level) / 2.0
    lo, hi = np.percentile(aucs, [tail, 100.0 - tail])
    return {"lo": float(lo), "hi": float(hi), "resamples": len(aucs)}


def query_predictors(factual, counterfactual, caps_per_image: int) -> dict[str, np.ndarray]:
    """Per caption query of ``factual``/``counterfactual [I, C]`` scores (caption ``c`` belongs to image
    ``c // caps_per_image``): ``correct`` [C] bool and the three :data:`PREDICTORS` [C] float64."""
    from causmatch.evaluation import check_finite_scores

    f = np.asarray(check_finite_scores(factual, "factual similarity matrix"), dtype=np.float64)
    cf = np.asarray(check_finite_scores(counterfactual, "counterfactual similarity matrix"), dtype=np.float64)
    if f.ndim != 2 or f.shape != cf.shape or caps_per_image < 1 or f.shape[1] != f.shape[0] * caps_per_image:
        raise DataError(f"factual {f.shape} and counterfactual {cf.shape} scores must both be [I, K*I] for "
                        f"{caps_per_image} captions per image")
    if f.shape[0] < 2:
        raise DataError("the effect AUC compares a query's top two images — the split needs at least 2 images")
    n_cap = f.shape[1]
    cols = np.arange(n_cap)
    order = np.argsort(-f.T, axis=1, kind="stable")[:, :2]              # [C, 2] top two images (lower index on ties)
    top, second = order[:, 0], order[:, 1]
    effect = f - cf                                                      # [I, C]
    return {"correct": top == cols // caps_per_image,
            "effect_top": effect[top, cols],
            "effect_margin": effect[top, cols] - effect[second, cols],
            "score_margin": f[top, cols] - f[second, cols]}


def effect_auc(factual, counterfactual, caps_per_image: int, *, resamples: int = RESAMPLES,
               seed: int = 0, level: float = LEVEL) -> dict:
    """The JSON-ready summary: ``n_queries``, ``n_correct`` (top-1 right) and for each predictor
    ``{"auc", "lo", "hi", "resamples"}`` (bootstrap ``level`` interval, ``resamples`` draws, ``seed``)."""
    p = query_predictors(factual, counterfactual, caps_per_image)
    out = {"n_queries": int(p["correct"].size), "n_correct": int(p["correct"].sum()), "level": level,
           "seed": seed}
    for name in PREDICTORS:
        out[name] = {"auc": roc_auc(p[name], p["correct"]),
                     **bootstrap_interval(p[name], p["correct"], resamples=resamples, seed=seed, level=level)}
    return out


__all__ = ["PREDICTORS", "bootstrap_interval", "effect_auc", "query_predictors", "roc_auc"]
