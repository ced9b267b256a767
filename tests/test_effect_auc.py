"""ROC AUC (ties count one half) against hand computations, the bootstrap interval, per-query predictors."""
import itertools

import numpy as np
import pytest

from causmatch.effect_auc import bootstrap_interval, effect_auc, query_predictors, roc_auc
from causmatch.errors import DataError


def pairwise_auc(scores, labels):
    """The definition: over every (positive, negative) pair, 1 if the positive scores higher, 1/2 on a tie."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_roc_auc_hand_worked_with_ties():
    # positives 0.9, 0.5, 0.5; negatives 0.5, 0.1
    # pairs: (0.9,0.5)=1 (0.9,0.1)=1 (0.5,0.5)=1/2 (0.5,0.1)=1 (0.5,0.5)=1/2 (0.5,0.1)=1 -> 5/6
    scores = [0.9, 0.5, 0.5, 0.5, 0.1]
    labels = [True, True, True, False, False]
    assert roc_auc(scores, labels) == pytest.approx(5 / 6)
    assert roc_auc([1, 1, 1, 1], [1, 0, 1, 0]) == pytest.approx(0.5)        # all tied: chance
    assert roc_auc([3, 2, 1], [1, 1, 0]) == 1.0 and roc_auc([1, 2, 3], [1, 1, 0]) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_matches_the_pairwise_definition(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, 40).astype(float)  # few values: many ties
    labels = rng.random(40) < 0.4
    labels[:2] = [True, False]
    assert roc_auc(scores, labels) == pytest.approx(pairwise_auc(scores, labels), abs=1e-12)


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0, 0], [True]])
def test_one_class_is_refused_in_one_line(labels):
    with pytest.raises(DataError, match="queries are (right|wrong) at rank 1") as info:
        roc_auc([0.1] * len(labels), labels)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("scores,labels,match", [
    ([0.1, float("nan")], [1, 0], "not finite"),
    ([0.1, 0.2, 0.3], [1, 0], "labels"),
    ([0.1, 0.2], [1, 2], "0/1"),
])
def test_bad_inputs_are_refused(scores, labels, match):
    with pytest.raises(DataError, match=match):
        roc_auc(scores, labels)


def test_bootstrap_interval_is_fixed_by_the_seed_and_brackets_the_auc():
    rng = np.random.default_rng(0)
    labels = rng.random(200) < 0.5
    scores = labels + rng.normal(0, 1, 200)
    a = bootstrap_interval(scores, labels, resamples=300, seed=4)
    assert a == bootstrap_interval(scores, labels, resamples=300, seed=4)
    assert a != bootstrap_interval(scores, labels, resamples=300, seed=5)
    assert a["lo"] < roc_auc(scores, labels) < a["hi"] and a["resamples"] == 300
    # a tiny sample: resamples that draw one class only are skipped, not counted as AUC 0 or 1
    b = bootstrap_interval([0.2, 0.8], [0, 1], resamples=200, seed=0)
    assert 0 < b["resamples"] < 200 and b["lo"] == b["hi"] == 1.0


def test_query_predictors_hand_worked_and_tie_rule():
    # 3 images x 1 caption; columns are caption queries
    f = np.array([[0.9, 0.5, 0.2],
                  [0.3, 0.5, 0.8],
                  [0.1, 0.1, 0.7]])
    cf = np.array([[0.4, 0.5, 0.2],
                   [0.3, 0.1, 0.7],
                   [0.0, 0.0, 0.1]])
    p = query_predictors(f, cf, 1)
    # caption 0: top image 0 (right), second 1; caption 1: tie 0.5/0.5 -> image 0 first (wrong), second 1;
    # caption 2: top image 1 (wrong), second image 2
    np.testing.assert_array_equal(p["correct"], [True, False, False])
    np.testing.assert_allclose(p["effect_top"], [0.5, 0.0, 0.1])
    np.testing.assert_allclose(p["effect_margin"], [0.5 - 0.0, 0.0 - 0.4, 0.1 - 0.6])
    np.testing.assert_allclose(p["score_margin"], [0.6, 0.0, 0.1])
    out = effect_auc(f, cf, 1, resamples=50)
    assert out["n_queries"] == 3 and out["n_correct"] == 1
    assert out["effect_top"]["auc"] == 1.0 and out["score_margin"]["auc"] == 1.0
    assert out["effect_margin"]["auc"] == 1.0


def test_query_predictors_refuse_bad_matrices():
    with pytest.raises(DataError, match="at least 2 images"):
        query_predictors(np.ones((1, 2)), np.ones((1, 2)), 2)
    with pytest.raises(DataError, match=r"\[I, K\*I\]"):
        query_predictors(np.ones((2, 4)), np.ones((2, 3)), 2)
    with pytest.raises(DataError, match="non-finite"):
        query_predictors(np.array([[np.nan, 1.0], [0.0, 1.0]]), np.ones((2, 2)), 1)
