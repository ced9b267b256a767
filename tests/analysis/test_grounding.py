"""Pointing game, energy, and deletion/insertion curves."""
import numpy as np
import pytest
import torch

from causmatch.analysis import (
    grounding_summary,
    grounding_table,
    pair_grounding,
    region_curve,
    split_pointing,
    word_grounding,
)
from causmatch.evaluation import grounding_accuracy


def test_word_grounding_by_hand():
    hit, energy = word_grounding([0.1, 0.6, 0.3, 0.9], [1, 2], [True, True, True, False])
    assert hit is True and energy == pytest.approx(0.9 / 1.0)      # region 3 is padding: ignored
    hit, energy = word_grounding([0.5, 0.2, 0.3], [1], [True, True, True])
    assert hit is False and energy == pytest.approx(0.2)
    entry = {"words": [{"index": 0, "word": "red", "type": "colour", "regions": [0]},
                       {"index": 1, "word": "circle", "type": "shape", "regions": [2]}]}
    g = pair_grounding(np.array([[0.9, 0.1, 0.0], [0.5, 0.1, 0.4]]), entry, [True] * 3)
    assert [w["hit"] for w in g["words"]] == [True, False] and g["pointing"] == 0.5
    assert g["energy"] == pytest.approx((0.9 + 0.4) / 2)


def test_split_grounding_agrees_with_evaluation(tiny_session):
    s = tiny_session
    df = grounding_table(s)
    ref = grounding_accuracy(s.matcher, s.split)
    assert len(df) == ref["n_words"]
    assert 100.0 * df["hit"].mean() == pytest.approx(ref["overall"])
    summary = grounding_summary(df)
    assert set(summary["type"]) == {"all", "colour"}
    p = split_pointing(s)["pointing"]
    assert p.shape == (s.split.n_captions,) and np.nanmean(p) == pytest.approx(df["hit"].mean())


@pytest.mark.parametrize("kind", ["deletion", "insertion"])
def test_region_curves(tiny_session, kind):
    s = tiny_session
    curve = region_curve(s, 0, 1, kind)                          # image 0 has all 4 regions valid
    n = int(s.split.region_mask[0].sum())
    assert len(curve.scores) == n and sorted(curve.removed) == list(range(n))
    full = s.similarity()[0, 1]
    if kind == "deletion":
        assert curve.scores[0] == pytest.approx(full, abs=1e-5) and curve.fraction[0] == 0
    else:
        assert curve.scores[-1] == pytest.approx(full, abs=1e-5) and curve.fraction[-1] == 1
    assert curve.area == pytest.approx(np.trapezoid(curve.scores, curve.fraction))
    # a step's score is the pair scored with only the kept regions
    if kind == "deletion":
        keep = np.zeros(4, bool)
        keep[curve.removed[1:]] = True                            # step 1: the top region removed
        img, txt = s.gallery()
        im = img[[0]]
        im.mask = im.mask & torch.from_numpy(keep)
        ref = float(s.matcher.pair_scores(im, txt[[1]].trimmed()).score[0])
        assert curve.scores[1] == pytest.approx(ref, abs=1e-6)
    assert (curve.ranks >= 0).all() and curve.ranks.max() < s.split.n_images
