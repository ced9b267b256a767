"""How an intervention moves one query's ranking (numpy only; scores come from the session).

Public API::

    RankResult          # dataclass, fields below; .to_dict() JSON-serialisable
    rank_positions(scores [M]) -> [M] int64     # 0-based position of every item, ties: lower index first
    best_rank(scores [M], targets) -> (rank, item)
    compare_rankings(query, direction, scores [M], cf_scores [M], targets, k=10, intervention="") -> RankResult

Ranks are 0-based (rank 0 = top), with the library's one tie rule (``causmatch.ranks``: a stable
descending sort, equal scores keep index order), so ``rank < K`` agrees with evaluation's R@K.
For an image query (``direction="i2t"``) the rank is the best among the image's K true captions.

Non-finite scores (NaN/inf) rank last — after every finite score, in index order among themselves —
and are counted in ``RankResult.n_nonfinite``, so a NaN never puts a true item first. (The analysis
session refuses such scores before they get here; these functions stay safe for any array.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from causmatch.errors import DataError
from causmatch.ranks import best_rank, rank_positions

__all__ = ["RankResult", "best_rank", "compare_rankings", "rank_positions"]


@dataclass
class RankResult:
    """One query's ranking, factual vs counterfactual. M = gallery size; ranks 0-based."""

    query: int
    direction: str                 # "t2i": caption query over images; "i2t": image query over captions
    intervention: str
    true_items: list[int]
    scores: np.ndarray             # [M] factual
    cf_scores: np.ndarray          # [M] counterfactual (mean over samples)
    rank: int                      # best rank of a true item, factual
    cf_rank: int                   # ... counterfactual
    true_item: int                 # the true item achieving ``rank``
    cf_true_item: int
    top: list[dict]                # factual top-k: item, score, cf_score, rank, cf_rank, moved, is_true
    cf_top: list[dict]             # counterfactual top-k, same keys
    n_nonfinite: int = 0           # NaN/inf scores (factual + counterfactual), ranked last

    def to_dict(self, with_scores: bool = False) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ("scores", "cf_scores")}
        if with_scores:
            out["scores"] = [float(v) for v in self.scores]
            out["cf_scores"] = [float(v) for v in self.cf_scores]
        return out


def _top(order_pos, other_pos, scores, cf_scores, targets, k, by_cf: bool) -> list[dict]:
    items = np.argsort(order_pos)[:k]  # [k] the items at positions 0..k-1
    rows = []
    for item in items:
        rank, cf_rank = (int(other_pos[item]), int(order_pos[item])) if by_cf else \
                        (int(order_pos[item]), int(other_pos[item]))
        rows.append({"item": int(item), "score": float(scores[item]), "cf_score": float(cf_scores[item]),
                     "rank": rank, "cf_rank": cf_rank, "moved": rank - cf_rank,
                     "is_true": bool(item in targets)})
    return rows


def compare_rankings(query: int, direction: str, scores, cf_scores, targets, k: int = 10,
                     intervention: str = "") -> RankResult:
    """Compare a query's factual and counterfactual rankings; ``moved`` > 0 means the item rose."""
    scores, cf_scores = np.asarray(scores, np.float64), np.asarray(cf_scores, np.float64)
    targets = [int(t) for t in np.atleast_1d(targets)]
    if scores.shape != cf_scores.shape or scores.ndim != 1 or not len(scores):
        raise DataError(f"factual and counterfactual scores must be two equal, non-empty [M] arrays, got "
                        f"{scores.shape} and {cf_scores.shape}")
    if not targets or any(not 0 <= t < len(scores) for t in targets):
        raise DataError(f"true items {targets} out of range for a gallery of {len(scores)}")
    pos, cf_pos = rank_positions(scores), rank_positions(cf_scores)  # [M] each
    rank, item = best_rank(scores, targets)
    cf_rank, cf_item = best_rank(cf_scores, targets)
    k = max(1, min(int(k), len(scores)))
    return RankResult(query=int(query), direction=direction, intervention=intervention, true_items=targets,
                      scores=scores, cf_scores=cf_scores, rank=rank, cf_rank=cf_rank, true_item=item,
                      cf_true_item=cf_item, top=_top(pos, cf_pos, scores, cf_scores, set(targets), k, False),
                      cf_top=_top(cf_pos, pos, scores, cf_scores, set(targets), k, True),
                      n_nonfinite=int((~np.isfinite(scores)).sum() + (~np.isfinite(cf_scores)).sum()))
