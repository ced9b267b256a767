"""Ranks under the library's one tie rule (numpy only).

A rank is an item's 0-based position in a *stable descending sort* of the scores: a higher score ranks
first, equal scores keep index order (the lower index first), and non-finite scores (NaN, ±inf) rank after
every finite one, in index order among themselves. Evaluation's R@K / medr and the analysis views
(``causmatch.analysis.ranking``) both rank with these functions, so ``rank < K`` agrees with R@K.

Public API::

    stable_ranks(scores [N, M], targets [N, T]) -> [N, T] int64   # rank of column targets[n, t] in row n
    rank_positions(scores [M]) -> [M] int64                       # the rank of every item
    best_rank(scores [M], targets) -> (rank, item)                # the best-ranked of some items
"""
from __future__ import annotations

import numpy as np


def stable_ranks(scores, targets) -> np.ndarray:
    """0-based rank of column ``targets[n, t]`` within row ``n``: scores ``[N, M]``, targets ``[N, T]`` -> ``[N, T]``.

    Counts the items ranked above each target (no sort): memory ``N·T·M`` booleans.
    """
    scores, targets = np.asarray(scores), np.asarray(targets, dtype=np.int64)
    own = np.take_along_axis(scores, targets, axis=1)                        # [N, T]
    cols = np.arange(scores.shape[1])
    before = cols[None, None, :] < targets[:, :, None]                       # [N, T, M] lower index
    row, mine = scores[:, None, :], own[:, :, None]
    if np.isfinite(scores).all():  # the common case (evaluation refuses non-finite scores before ranking)
        return ((row > mine) | ((row == mine) & before)).sum(axis=2)
    fin = np.isfinite(row)                                                   # [N, 1, M]
    above_finite = fin & ((row > mine) | ((row == mine) & before))           # a finite target: finite items above
    above_nonfinite = fin | before                                           # a non-finite one: every finite item,
    return np.where(np.isfinite(own), above_finite.sum(axis=2), above_nonfinite.sum(axis=2))  # then index order


def rank_positions(scores) -> np.ndarray:
    """The rank of every item: scores ``[M]`` -> ``[M]`` int64 (a sort, for whole rankings)."""
    s = np.asarray(scores, dtype=np.float64)
    fin = np.isfinite(s)
    # finite first (by descending score), then the non-finite; index order breaks every tie
    order = np.lexsort((np.arange(len(s)), np.where(fin, -s, 0.0), ~fin))  # [M] items, best first
    pos = np.empty(len(s), dtype=np.int64)
    pos[order] = np.arange(len(s))
    return pos


def best_rank(scores, targets) -> tuple[int, int]:
    """(rank, item) of the best-ranked item among ``targets`` (the first listed on a tie) — no full sort."""
    targets = np.atleast_1d(np.asarray(targets, dtype=np.int64))
    ranks = stable_ranks(np.asarray(scores, dtype=np.float64)[None], targets[None])[0]  # [T]
    k = int(np.argmin(ranks))
    return int(ranks[k]), int(targets[k])
