"""Effects on hand-built pairs whose attention and scores are computed here by hand."""
import math

import numpy as np
import pytest
import torch

from causmatch.analysis import estimate_effect, explain_pair, region_effects, t_interval, word_effects
from causmatch.interventions import (
    COUNTERFACTUAL_KINDS,
    Identity,
    Intervention,
    MaskRegions,
    OneWord,
    Random,
    Uniform,
    parse_intervention,
)
from tests.analysis.analysis_helpers import make_pair, tiny_matcher

LAM, LSE = 9.0, 6.0


def hand_score(alpha_rows):
    """Score with words = regions = the standard basis (s = I, G = I): R_j = α_jj / |α_j|."""
    rel = [a[j] / math.sqrt(sum(x * x for x in a)) for j, a in enumerate(alpha_rows)]
    return math.log(sum(math.exp(LSE * r) for r in rel)) / LSE, rel


def test_hand_computed_attention_score_and_uniform_effect():
    m = tiny_matcher()
    img, txt = make_pair([[1, 0], [0, 1]], [[1, 0], [0, 1]])
    ex = explain_pair(m, img, txt, Uniform(), samples=8)
    # clipped_l2norm of s = I leaves it I; softmax over regions of [9, 0]
    p = math.exp(LAM) / (math.exp(LAM) + 1)
    assert ex.t2i == pytest.approx(np.array([[p, 1 - p], [1 - p, p]]), abs=1e-6)
    score, rel = hand_score([[p, 1 - p], [1 - p, p]])
    assert ex.score == pytest.approx(score, abs=1e-6)
    assert ex.word_relevance == pytest.approx(rel, abs=1e-6)
    cf_score, _ = hand_score([[0.5, 0.5], [0.5, 0.5]])            # uniform: R_j = 0.5 / sqrt(0.5)
    assert ex.cf_score == pytest.approx(cf_score, abs=1e-6)
    assert ex.effect == pytest.approx(score - cf_score, abs=1e-6)
    assert ex.samples == 1 and ex.effect_low == ex.effect_high == pytest.approx(ex.effect)
    # per word: word 0 uniform, word 1 learned
    s0, _ = hand_score([[0.5, 0.5], [1 - p, p]])
    assert ex.word_effects[0] == pytest.approx(score - s0, abs=1e-6)
    # per region: removing region 1 leaves word 0 on region 0 (R=1) and word 1 on region 0 (R=0)
    s_r1 = math.log(math.exp(LSE) + 1) / LSE
    assert ex.region_effects[1] == pytest.approx(score - s_r1, abs=1e-5)


def test_identity_intervention_has_zero_effect():
    m = tiny_matcher()
    rng = np.random.default_rng(1)
    img, txt = make_pair(rng.normal(size=(3, 8)), rng.normal(size=(5, 8)))
    est = estimate_effect(m, img, txt, Identity(), samples=8)
    assert est.effect == pytest.approx(0.0, abs=1e-7) and est.low == est.high
    assert np.allclose(word_effects(m, img, txt, Identity()), 0, atol=1e-7)


@pytest.mark.parametrize("kind", COUNTERFACTUAL_KINDS)
def test_single_region_counterfactuals_leave_the_score_unchanged(kind):
    m = tiny_matcher()
    rng = np.random.default_rng(2)
    img, txt = make_pair(rng.normal(size=(4, 8)), rng.normal(size=(1, 8)))
    est = estimate_effect(m, img, txt, parse_intervention(kind), samples=4)
    if kind == "reversed":
        # max(α) − α of a single weight is 0: every word's row empties and the score is 0 by definition
        assert est.cf_score == 0.0
    else:
        assert est.effect == pytest.approx(0.0, abs=1e-6)
    assert np.isnan(region_effects(m, img, txt)).all()             # nothing left to remove


def test_random_effect_interval_matches_student_t_over_draws():
    m = tiny_matcher()
    rng = np.random.default_rng(3)
    img, txt = make_pair(rng.normal(size=(4, 8)), rng.normal(size=(6, 8)))
    est = estimate_effect(m, img, txt, Random(seed=5), samples=8)
    draws = [float(m.pair_scores(img, txt, Random(seed=5 + k)).score[0]) for k in range(8)]
    assert est.cf_scores == pytest.approx(draws)
    mean, lo, hi = t_interval(draws)
    half = 2.365 * np.std(draws, ddof=1) / math.sqrt(8)
    assert (hi - mean) == pytest.approx(half)
    assert est.effect == pytest.approx(est.score - mean) and est.low == pytest.approx(est.score - hi)
    assert est.low < est.effect < est.high


class _RowByHand(Intervention):
    """Test reference: ``inner`` on query row ``j`` only, written by hand (a t2i model's word ``j``)."""

    def __init__(self, inner, j):
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "j", j)

    def _apply(self, attn, km, query, pair_ids):
        out = attn.clone()
        out[..., self.j, :] = self.inner.apply(attn, km, query=query, pair_ids=pair_ids)[..., self.j, :]
        return out


def test_one_word_is_that_word_row_in_t2i_and_spares_regions_in_i2t():
    rng = np.random.default_rng(4)
    img, txt = make_pair(rng.normal(size=(3, 8)), rng.normal(size=(5, 8)))
    m = tiny_matcher()
    fact = m.pair_scores(img, txt).score
    for j in range(3):
        a = m.pair_scores(img, txt, OneWord(Random(seed=1), j)).score
        b = m.pair_scores(img, txt, _RowByHand(Random(seed=1), j)).score
        assert torch.equal(a, b) and not torch.equal(a, fact)
    both = tiny_matcher(direction="both")
    sc = both.pair_scores(img, txt, OneWord(Uniform(), 1), return_maps=True)
    fact = both.pair_scores(img, txt, None, return_maps=True)
    changed = (sc.i2t != fact.i2t).any(dim=1)[0]                    # [W] word columns that changed
    assert changed.tolist() == [False, True, False]


def test_region_effects_use_mask_regions():
    m = tiny_matcher()
    rng = np.random.default_rng(5)
    img, txt = make_pair(rng.normal(size=(3, 8)), rng.normal(size=(4, 8)), region_mask=[True, True, True, False])
    eff = region_effects(m, img, txt)
    base = float(m.pair_scores(img, txt).score[0])
    for r in range(3):
        assert eff[r] == pytest.approx(base - float(m.pair_scores(img, txt, MaskRegions((r,))).score[0]))
    assert np.isnan(eff[3])


@pytest.mark.parametrize("direction", ["t2i", "i2t", "both"])
@pytest.mark.parametrize("ids", [None, (torch.tensor([7]), torch.tensor([123]))], ids=["default-ids", "ids"])
def test_batched_word_and_region_effects_equal_one_call_per_word_and_region(direction, ids):
    """The replicated-pair batch gives what one pair_scores call per word / region gives."""
    rng = np.random.default_rng(6)
    img, txt = make_pair(rng.normal(size=(4, 8)), rng.normal(size=(5, 8)), region_mask=[True] * 4 + [False])
    txt.mask[0, 3] = False  # a padded word: NaN, and not intervened on
    m = tiny_matcher(direction=direction)
    base = float(m.pair_scores(img, txt, pair_ids=ids).score[0])
    iv = Random(seed=2)
    draws = [iv.with_seed(2 + k) for k in range(3)]
    got = word_effects(m, img, txt, iv, samples=3, pair_ids=ids)
    for j in range(4):
        if j == 3:
            assert np.isnan(got[j])
            continue
        cf = np.mean([float(m.pair_scores(img, txt, OneWord(d, j), pair_ids=ids).score[0]) for d in draws])
        assert got[j] == pytest.approx(base - cf, abs=1e-6)
    regions = region_effects(m, img, txt, pair_ids=ids)
    for r in range(4):
        masked = float(m.pair_scores(img, txt, MaskRegions((r,)), pair_ids=ids).score[0])
        assert regions[r] == pytest.approx(base - masked, abs=1e-6)
    assert np.isnan(regions[4])
    est = estimate_effect(m, img, txt, iv, samples=3, pair_ids=ids)
    single = [float(m.pair_scores(img, txt, d, pair_ids=ids).score[0]) for d in draws]
    assert est.cf_scores == pytest.approx(single, abs=1e-6)
