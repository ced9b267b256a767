"""The failure table's column wrong_fits, fit_outcome and the outcome slices, on hand-built scores and fits.

Three images, one caption each (caption c belongs to image c). Caption 0 is also true of image 2 and
caption 2 of image 1. Scores [I, C]:

    img0: 0.5 0.9 0.1     caption 0 ranks image 2 first (it fits: ambiguous), caption 1 image 0 (real),
    img1: 0.1 0.5 0.6     caption 2 its own image (first); image 0 ranks caption 1 first (real), image 1
    img2: 0.8 0.1 0.9     caption 2 (it fits: ambiguous), image 2 its own caption (first).
"""
from __future__ import annotations

import numpy as np
import pytest

from causmatch.analysis.failures import build_failure_table, fit_outcome
from causmatch.analysis.slices import SplitSlices
from causmatch.errors import ConfigError, DataError

SIMS = np.array([[0.5, 0.9, 0.1], [0.1, 0.5, 0.6], [0.8, 0.1, 0.9]], np.float32)
FITS = np.eye(3, dtype=bool)
FITS[2, 0] = FITS[1, 2] = True
WANT = {"t2i": ["ambiguous", "real", "first"], "i2t": ["real", "ambiguous", "first"]}


@pytest.mark.parametrize("direction", ["t2i", "i2t"])
def test_wrong_fits_is_the_fit_of_the_best_wrong_item(direction):
    df = build_failure_table(SIMS, SIMS, 1, direction, fits=FITS)
    assert list(df.columns).index("wrong_fits") == list(df.columns).index("best_wrong") + 1
    pairs = zip(df["best_wrong"], df["query"]) if direction == "t2i" else zip(df["query"], df["best_wrong"])
    assert df["wrong_fits"].tolist() == [bool(FITS[i, c]) for i, c in pairs]
    # the last query is ranked first; its best wrong item (the runner-up) fits too, yet it is no failure
    assert df["wrong_fits"].tolist() == ([True, False, True] if direction == "t2i" else [False, True, True])


def test_without_fits_the_column_is_absent_not_false():
    assert "wrong_fits" not in build_failure_table(SIMS, SIMS, 1, "t2i").columns


@pytest.mark.parametrize("direction", ["t2i", "i2t"])
def test_fit_outcome_splits_the_failures_by_wrong_fits(direction):
    out = fit_outcome(SIMS, FITS, 1, direction)
    assert out.tolist() == WANT[direction]
    df = build_failure_table(SIMS, SIMS, 1, direction, fits=FITS)
    real = (df["rank"] > 0) & ~df["wrong_fits"]
    assert (out == "real").tolist() == real.tolist()


@pytest.mark.parametrize("fits", [FITS[:2], FITS.astype(int), FITS.T[:, :2]])
def test_a_fit_matrix_of_another_shape_or_type_is_refused(fits):
    with pytest.raises(DataError, match="fit matrix"):
        build_failure_table(SIMS, SIMS, 1, "t2i", fits=fits)
    with pytest.raises(DataError, match="fit matrix"):
        fit_outcome(SIMS, fits, 1, "t2i")


def test_fit_outcome_refuses_non_finite_scores_and_unknown_directions():
    bad = SIMS.copy()
    bad[1, 2] = np.nan
    with pytest.raises(DataError):
        fit_outcome(bad, FITS, 1, "t2i")
    with pytest.raises(ConfigError, match="direction"):
        fit_outcome(SIMS, FITS, 1, "both")


class _Split:
    """The few fields SplitSlices reads, for three one-caption images without scene files."""

    def __init__(self, folder):
        self.n_images, self.n_captions, self.caps_per_image = 3, 3, 1
        self.captions = ["a red star", "a blue ring", "the cross"]
        self.grounding = None
        self.region_mask = np.ones((3, 2), bool)
        self.folder, self.split = folder, "test"


def test_the_outcome_slices_cut_each_direction_by_its_own_outcome(tmp_path):
    found = SplitSlices(_Split(tmp_path))
    assert "outcome" not in found.families and not any(k.startswith("outcome") for k in found.keys())
    with pytest.raises(ConfigError, match="no outcome slices"):
        found.get("outcome:real")
    t2i, i2t = fit_outcome(SIMS, FITS, 1, "t2i"), fit_outcome(SIMS, FITS, 1, "i2t")
    cut = found.with_outcomes(t2i, i2t)
    assert "outcome" not in found.families  # the shared object is unchanged
    assert [k for k in cut.keys() if k.startswith("outcome")] == ["outcome:first", "outcome:ambiguous",
                                                                  "outcome:real"]
    real = cut.get("outcome:real")
    assert real.title == "outcome: real failures only"
    assert real.rows("t2i").tolist() == [False, True, False] and real.rows("i2t").tolist() == [True, False, False]
    assert cut.get("outcome:ambiguous").rows("i2t").tolist() == [False, True, False]
    gone = cut.without_outcomes("this split has no test_scenes.jsonl")
    with pytest.raises(ConfigError, match="test_scenes.jsonl"):
        gone.get("outcome:real")
    with pytest.raises(DataError, match="do not fit"):
        found.with_outcomes(t2i[:2], i2t)
    with pytest.raises(DataError, match="not one of"):
        found.with_outcomes(np.array(["first", "real", "maybe"], object), i2t)
