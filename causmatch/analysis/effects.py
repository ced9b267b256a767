"""Causal effects of the learned attention on a pair: ``E = S(α) − mean_k S(ᾱ_k)`` with a 95% interval.

Public API::

    EffectEstimate(score, cf_scores [K], cf_score, effect, low, high, intervention, samples)
    t_interval(values [K], level=0.95) -> (mean, low, high)
    sample_interventions(intervention, samples, seed=None) -> list[Intervention]   # None: own seed
    estimate_effect(matcher, img, txt, intervention, *, samples=8, seed=None, pair_ids=None) -> EffectEstimate
    word_effects(matcher, img, txt, intervention, *, samples=8, seed=None, pair_ids=None) -> np.ndarray [W]
    region_effects(matcher, img, txt, *, pair_ids=None) -> np.ndarray [R]
    remove_regions(img, keep_mask [R] or [I,R]) -> ImageEmb   # region mask narrowed, features unchanged

``img``/``txt`` hold ONE pair (``ImageEmb`` with I = 1, ``TextEmb`` with C = 1). Everything goes
through ``Matcher.pair_scores``: nothing here re-implements the similarity, and the interventions it
uses per word and per region (``OneWord``, ``WordPerRow``, ``RegionPerRow``) live with the others in
``causmatch.interventions``.
Stochastic interventions are sampled with seeds ``seed, seed+1, …, seed+K−1`` (``with_seed``); the
interval is Student's t over those K draws (zero width for deterministic kinds, which use one draw).

Bounds: ``samples`` is a whole number in ``1..MAX_SAMPLES`` and top-k lists hold ``1..MAX_TOP`` items
(:func:`check_samples`, :func:`check_top`; one-line ConfigError). Scores are checked where they are
produced: a NaN/inf factual or counterfactual score raises a DataError naming the pair (image, caption),
so no effect or interval is ever computed from them (NaN in ``word_effects``/``region_effects`` only
marks padded words/regions).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from causmatch.counter_hash import check_seed
from causmatch.errors import ConfigError
from causmatch.interventions import RegionPerRow, WordPerRow, resolve_intervention

# Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom (standard table values).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
         2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
         2.052, 2.048, 2.045, 2.042)


MAX_SAMPLES = 256  # draws of a stochastic intervention (the app offers up to 64; CAL-style studies use 8-32)
MAX_TOP = 1000     # items in a top-k list


def check_samples(samples) -> int:
    """``samples`` as an int in ``1..MAX_SAMPLES``, or a one-line ConfigError (before any work)."""
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or not 1 <= int(samples) <= MAX_SAMPLES:
        raise ConfigError(f"samples must be a whole number in 1..{MAX_SAMPLES}, got {samples!r} — "
                          "more draws only narrow the interval by 1/sqrt(K)")
    return int(samples)


def check_top(k) -> int:
    """Top-k size as an int in ``1..MAX_TOP`` (a list is then cut to the gallery), or a one-line ConfigError."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= MAX_TOP:
        raise ConfigError(f"top-k must be a whole number in 1..{MAX_TOP}, got {k!r}")
    return int(k)


def finite(scores, what: str, pair_ids, n: int = 1) -> np.ndarray:
    """Scores ``[n]`` as float64 numpy; a DataError naming the pair if any is NaN/inf."""
    from causmatch.evaluation import check_finite_scores

    arr = scores.detach().double().cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores, np.float64)
    ids = (None, None) if pair_ids is None else pair_ids
    return check_finite_scores(arr.reshape(-1), what, image_ids=ids[0] if ids[0] is not None else [0],
                               caption_ids=ids[1] if ids[1] is not None else [0])


@dataclass(frozen=True)
class EffectEstimate:
    """Factual score, K counterfactual scores and the effect ``score − mean(cf)`` with its 95% interval."""

    score: float
    cf_scores: np.ndarray  # [K]
    cf_score: float
    effect: float
    low: float
    high: float
    intervention: str
    samples: int

    def to_dict(self) -> dict:
        return {"score": self.score, "cf_score": self.cf_score, "cf_scores": [float(v) for v in self.cf_scores],
                "effect": self.effect, "effect_low": self.low, "effect_high": self.high,
                "intervention": self.intervention, "samples": self.samples}


def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of ``values [K]`` and its two-sided 95% Student-t interval (zero width when K = 1)."""
    if level != 0.95:
        raise ConfigError("only 95% intervals are supported — use level=0.95")
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    mean = float(v.mean())
    if v.size < 2:
        return mean, mean, mean
    t = _T975[v.size - 2] if v.size - 1 <= len(_T975) else 1.96
    half = t * float(v.std(ddof=1)) / math.sqrt(v.size)
    return mean, mean - half, mean + half


def _own_seed(intervention) -> int:
    """The seed an intervention object carries (wrappers such as ``OneWord`` carry it in ``inner``)."""
    while not hasattr(intervention, "seed") and hasattr(intervention, "inner"):
        intervention = intervention.inner
    return int(getattr(intervention, "seed", 0))


def sample_interventions(intervention, samples: int, seed: int | None = None) -> list:
    """The K seeded draws (seeds ``seed … seed+K−1``; None: the object's own seed) of a stochastic
    intervention, or the intervention once if it is deterministic."""
    samples = check_samples(samples)
    if not intervention.stochastic:
        return [intervention]
    base = check_seed(_own_seed(intervention) if seed is None else seed, samples)
    return [intervention.with_seed(base + k) for k in range(samples)]


def draw_count(spec, samples: int, seed: int = 0) -> int:
    """How many draws the numbers under the intervention ``spec`` average (:func:`sample_interventions`):
    ``samples`` for a stochastic kind, 1 for a deterministic one or the factual scores (``spec`` None)."""
    return len(sample_interventions(resolve_intervention(spec, seed), samples))


def _score(matcher, img, txt, intervention, pair_ids, return_maps=False):
    with torch.no_grad():
        return matcher.pair_scores(img, txt, intervention, pair_ids=pair_ids, return_maps=return_maps)


def estimate_effect(matcher, img, txt, intervention, *, samples: int = 8, seed: int | None = None,
                    pair_ids=None, factual: float | None = None) -> EffectEstimate:
    """Effect of the learned attention for one pair, averaged over the intervention's K draws."""
    draws = sample_interventions(intervention, samples, seed)
    if factual is None:
        factual = float(finite(_score(matcher, img, txt, None, pair_ids).score[:1], "pair score", pair_ids)[0])
    with torch.no_grad():  # one pass: the cosines and learned maps are shared by the K draws
        cf = np.array([float(s.score[0]) for s in matcher.pair_scores_many(img, txt, draws, pair_ids=pair_ids)])
    finite(cf, f"counterfactual pair score ({intervention.name})", pair_ids)
    mean, lo, hi = t_interval(cf)
    # effect = score − cf: the interval on the mean of cf flips into one on the effect.
    return EffectEstimate(score=factual, cf_scores=cf, cf_score=mean, effect=factual - mean,
                          low=factual - hi, high=factual - lo, intervention=intervention.describe(),
                          samples=len(draws))


def _replicate(img, txt, pair_ids, n: int):
    """The one pair ``n`` times along the batch axis, with the same ids (so random draws are identical)."""
    rows = [0] * n
    if pair_ids is None:  # the single pair's default id is its position, 0
        ids = (torch.zeros(n, dtype=torch.long), torch.zeros(n, dtype=torch.long))
    else:
        ids = tuple(torch.as_tensor(x).reshape(-1)[:1].expand(n) for x in pair_ids)
    return img[rows], txt[rows], ids


def word_effects(matcher, img, txt, intervention, *, samples: int = 8, seed: int | None = None,
                 pair_ids=None, factual: float | None = None) -> np.ndarray:
    """Per-word effects ``[W]``: intervene on one word's attention at a time (``OneWord``).

    Padded words get NaN. The mean over the K draws, as for the pair's effect. All words and draws
    go in one batched call: the pair is replicated once per valid word, row ``n`` intervening on word ``n``.
    """
    if factual is None:
        factual = float(finite(_score(matcher, img, txt, None, pair_ids).score[:1], "pair score", pair_ids)[0])
    mask = txt.mask[0].cpu().numpy()  # [W]
    out = np.full(mask.shape[0], np.nan)
    words = tuple(int(j) for j in np.flatnonzero(mask))
    if not words:
        return out
    draws = sample_interventions(intervention, samples, seed)
    rep_img, rep_txt, ids = _replicate(img, txt, pair_ids, len(words))
    with torch.no_grad():
        # A kind on another target (SAF's filtration) has its own per-word form; attention kinds: WordPerRow.
        per_word = [iv.for_each_word(words) if hasattr(iv, "for_each_word") else WordPerRow(iv, words) for iv in draws]
        many = matcher.pair_scores_many(rep_img, rep_txt, per_word, pair_ids=ids)
    cf = torch.stack([s.score for s in many]).double().mean(0).cpu().numpy()  # [n] mean over the K draws
    finite(cf, f"per-word counterfactual score ({intervention.name})", pair_ids)
    out[list(words)] = factual - cf
    return out


def region_effects(matcher, img, txt, *, pair_ids=None, factual: float | None = None) -> np.ndarray:
    """Per-region effects ``[R]``: score drop when one region is removed (``MaskRegions``), NaN if padded.

    With one valid region there is nothing left to attend after removing it; its effect is then
    reported as NaN rather than the drop to the empty-caption score 0. One batched call: the pair is
    replicated once per valid region, row ``n`` masking region ``n``.
    """
    if factual is None:
        factual = float(finite(_score(matcher, img, txt, None, pair_ids).score[:1], "pair score", pair_ids)[0])
    mask = img.mask[0].cpu().numpy()  # [R]
    out = np.full(mask.shape[0], np.nan)
    valid = tuple(int(r) for r in np.flatnonzero(mask))
    if len(valid) < 2:
        return out
    rep_img, rep_txt, ids = _replicate(img, txt, pair_ids, len(valid))
    cf = finite(_score(matcher, rep_img, rep_txt, RegionPerRow(valid), ids).score, "per-region score", pair_ids)
    out[list(valid)] = factual - cf
    return out


def remove_regions(img, keep_mask) -> object:
    """A copy of an ``ImageEmb`` whose region mask is ``img.mask & keep_mask`` (features unchanged)."""
    keep = torch.as_tensor(np.asarray(keep_mask, dtype=bool), device=img.mask.device)
    return dataclasses.replace(img, mask=img.mask & keep)
