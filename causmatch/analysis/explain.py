"""Explain one image–caption pair: maps, relevances, score, counterfactual maps and effects.

Model heads: SCAN's (``similarity="scan"``) reports word/region relevances (the cosines it pools); SGRAF's
(``"saf"``/``"sgr"``) has none — its score comes from similarity vectors — so those fields are None, and a SAF
model reports its filtration weights (``filtration [W+1]``: the global match, then each word) instead.

Public API::

    PairExplanation            # dataclass, fields below; .to_dict() is JSON-serialisable
    explain_pair(matcher, img, txt, intervention, *, samples=8, seed=None, pair_ids=None,
                 per_word=True, per_region=True) -> PairExplanation

``img`` is an ``ImageEmb`` with I = 1 and ``txt`` a ``TextEmb`` with C = 1 (one pair). A NaN/inf
score or attention weight (factual or counterfactual) raises a one-line DataError naming the pair: an
explanation is never built from non-finite values. The word
axis is cut to the caption's real length, so ``tokens[j]`` labels row ``j`` of ``t2i`` and column
``j`` of ``i2t``. ``AnalysisSession.explain`` fills in the dataset fields (image path, boxes,
grounding, unknown words) and is what applications call.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from causmatch.analysis.effects import finite, region_effects, sample_interventions, t_interval, word_effects


def _np(x):
    """Tensor -> float numpy."""
    return x.detach().float().cpu().numpy()


@dataclass
class PairExplanation:
    """Everything the app shows about one pair. Shapes: W words (``tokens``), R regions."""

    image: int                               # image index in the split
    caption: int | None                      # caption index, None for free text
    text: str                                # the caption text
    tokens: list[str]                        # [W]
    unknown_words: list[str]                 # tokens the vocabulary does not know (encoded as <unk>)
    direction: str                           # "t2i" | "i2t" | "both"
    region_mask: np.ndarray                  # [R] bool
    score: float                             # factual pair score S(α)
    t2i: np.ndarray | None                   # [W,R] word → region attention
    i2t: np.ndarray | None                   # [R,W] region → word attention
    word_relevance: np.ndarray | None        # [W]
    region_relevance: np.ndarray | None      # [R]
    intervention: str                        # describe() of the intervention
    samples: int                             # K draws actually used (1 for deterministic kinds)
    cf_t2i: np.ndarray | None                # [W,R] first draw
    cf_i2t: np.ndarray | None                # [R,W] first draw
    cf_t2i_mean: np.ndarray | None           # [W,R] mean over the K draws
    cf_i2t_mean: np.ndarray | None           # [R,W]
    cf_scores: np.ndarray                    # [K]
    cf_score: float                          # mean counterfactual score
    effect: float                            # score − cf_score
    effect_low: float                        # 95% interval over the K draws
    effect_high: float
    word_effects: np.ndarray | None          # [W] effect of intervening on one word's attention
    region_effects: np.ndarray | None        # [R] score drop when one region is removed
    image_path: str | None = None
    boxes: np.ndarray | None = None          # [R,4] x1,y1,x2,y2 pixels, None without boxes
    grounding: dict | None = None            # see grounding.pair_grounding
    extra: dict = field(default_factory=dict)
    similarity: str = "scan"                 # the model's head: "scan" (pooled relevance) | "saf" | "sgr" (SGRAF)
    filtration: np.ndarray | None = None     # [W+1] SAF's filtration weights: [0] the global match, [1+j] word j
    cf_filtration: np.ndarray | None = None  # [W+1] the same under the intervention (mean over the K draws)

    @property
    def unknown_rows(self) -> list[int]:
        """Indices into ``tokens`` (rows of the word axis) of the words the vocabulary does not know."""
        unknown = set(self.unknown_words)
        return [j for j, tok in enumerate(self.tokens) if tok in unknown]

    def to_dict(self) -> dict:
        """JSON-serialisable dict (arrays become nested lists, NaN becomes None)."""
        out = {}
        for key, value in self.__dict__.items():
            out[key] = _jsonable(value)
        return out


def _jsonable(value):
    if isinstance(value, np.ndarray):
        if value.dtype == bool:
            return value.tolist()
        return _jsonable(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _maps(scores, w: int):
    """(t2i [W,R], i2t [R,W], word_rel [W], region_rel [R]) of pair 0, word axis cut to ``w``."""
    t2i = None if scores.t2i is None else _np(scores.t2i[0, :w, :])
    i2t = None if scores.i2t is None else _np(scores.i2t[0, :, :w])
    wrel = None if scores.word_relevance is None else _np(scores.word_relevance[0, :w])
    rrel = None if scores.region_relevance is None else _np(scores.region_relevance[0])
    return t2i, i2t, wrel, rrel


def _filtration(scores, w: int):
    """SAF's filtration weights ``[W+1]`` of pair 0 (global node, then the ``w`` words); None for other heads."""
    f = getattr(scores, "filtration", None)
    return None if f is None else _np(f[0, : w + 1])


def _mean_maps(maps: list):
    present = [m for m in maps if m is not None]
    return None if not present else np.mean(np.stack(present), axis=0)


def explain_pair(matcher, img, txt, intervention, *, samples: int = 8, seed: int | None = None, pair_ids=None,
                 per_word: bool = True, per_region: bool = True) -> PairExplanation:
    """Explain one pair (I = C = 1) under ``intervention`` (an Intervention object).

    Dataset-specific fields (image/caption index, text, unknown words, boxes...) are left at
    placeholders here (image=-1, text="") and filled in by ``AnalysisSession.explain``.
    """
    w = int(txt.mask[0].sum())
    with torch.no_grad():
        # One call: the cosines and the learned maps are computed once and shared by the K draws.
        fact, *draws = matcher.pair_scores_many(img, txt, [None] + sample_interventions(intervention, samples, seed),
                                                pair_ids=pair_ids, return_maps=True)
    score = float(finite(np.array([float(fact.score[0])]), "pair score", pair_ids)[0])
    t2i, i2t, wrel, rrel = _maps(fact, w)
    cf = [_maps(d, w) for d in draws]
    cf_scores = finite(np.array([float(d.score[0]) for d in draws]), "counterfactual pair score", pair_ids)  # [K]
    filtration, cf_filtration = _filtration(fact, w), [_filtration(d, w) for d in draws]
    for m in (t2i, i2t, *(x for c in cf for x in c[:2])):
        if m is not None:
            finite(m, "attention map", pair_ids)
    for m in (filtration, *cf_filtration):
        if m is not None:
            finite(m, "filtration weights", pair_ids)
    mean, lo, hi = t_interval(cf_scores)
    tokens = list(txt.tokens[0])[:w] if getattr(txt, "tokens", None) else []
    return PairExplanation(
        image=-1, caption=None, text="", tokens=tokens, unknown_words=[],
        direction=matcher.config.attention.direction, region_mask=img.mask[0].cpu().numpy().astype(bool),
        score=score, t2i=t2i, i2t=i2t, word_relevance=wrel, region_relevance=rrel,
        intervention=intervention.describe(), samples=len(draws),
        cf_t2i=cf[0][0], cf_i2t=cf[0][1], cf_t2i_mean=_mean_maps([c[0] for c in cf]),
        cf_i2t_mean=_mean_maps([c[1] for c in cf]), cf_scores=cf_scores, cf_score=mean,
        effect=score - mean, effect_low=score - hi, effect_high=score - lo,
        word_effects=(word_effects(matcher, img, txt, intervention, samples=samples, seed=seed,
                                   pair_ids=pair_ids, factual=score)[:w] if per_word else None),
        region_effects=(region_effects(matcher, img, txt, pair_ids=pair_ids, factual=score)
                        if per_region else None),
        similarity=getattr(matcher.config, "similarity", "scan"), filtration=filtration,
        cf_filtration=_mean_maps(cf_filtration),
    )
