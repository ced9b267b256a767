"""Honest overlays: the whole-image region found from the boxes, one absolute scale, colour-bar ticks that
read, PNGs that carry their colour bar, safe descriptive file names, and the curves' baselines."""
import re

import numpy as np
import pytest

from causmatch.analysis import heatmaps as hm
from causmatch.analysis.explain import PairExplanation
from causmatch.analysis.grounding import attention_order, pair_curves, random_order, region_curve
from causmatch.errors import DataError

SIZE = (100, 120)  # H, W
BOXES = np.array([[10, 10, 40, 40],       # an object
                  [0, 0, 120, 100],       # the whole image, not first
                  [50, 20, 110, 90],      # a big object (35 % of the image)
                  [-5, -5, 125, 105],     # reaches past the image: clipped, covers it all
                  [0, 0, 0, 0]], float)   # padding


def test_whole_image_regions_are_found_from_the_boxes_not_their_position():
    found = hm.whole_image_regions(BOXES, SIZE)
    assert found.tolist() == [False, True, False, True, False]
    masked = hm.whole_image_regions(BOXES, SIZE, region_mask=[True, False, True, True, False])
    assert masked.tolist() == [False, False, False, True, False]               # padding is never "whole"
    assert not hm.whole_image_regions(BOXES[[0, 2, 4]], SIZE).any()              # a dataset without one
    assert hm.whole_image_regions([[0, 0, 120, 91]], SIZE).tolist() == [True]    # 91 % of the area
    assert hm.whole_image_regions([[0, 0, 120, 91]], SIZE, cover=0.95).tolist() == [False]
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(DataError, match="cover"):
            hm.whole_image_regions(BOXES, SIZE, cover=bad)
    with pytest.raises(DataError, match="NaN"):
        hm.whole_image_regions([[0, 0, np.nan, 4]], SIZE)


def test_an_absolute_scale_keeps_a_flat_row_flat():
    shares = np.array([[0.175, 0.263, 0.212, 0.35],    # a function word: flat
                       [0.02, 0.61, 0.30, 0.07]])      # a content word: peaked
    cf = np.full((2, 4), 0.25)
    vmin, vmax = hm.share_scale(shares, cf)
    assert (vmin, vmax) == (0.0, 0.61)
    flat = hm.colorize(shares[0, :3][None], vmin, vmax)[0]
    own = hm.colorize(shares[0, :3][None], *hm.shared_scale(shares[0, :3]))[0]
    lut = hm.colorize(np.linspace(0, 1, 256)[None], 0, 1)[0].astype(int)
    index = [int(np.argmin(np.abs(lut - c.astype(int)).sum(1))) for c in flat]
    assert max(index) - min(index) < 45                          # close colours on the absolute scale …
    assert own[0].tolist() == lut[0].tolist() and own[1].tolist() == lut[255].tolist()  # … the map's ends on its own
    assert hm.share_scale(shares, columns=[0, 2]) == (0.0, pytest.approx(0.30))
    assert hm.share_scale(np.zeros((2, 3))) == (0.0, 1.0)
    with pytest.raises(DataError, match="NaN"):
        hm.share_scale(np.array([[0.1, np.inf]]))


@pytest.mark.parametrize("lo,hi", [(0, 0.263), (0, 1), (-0.0123, 0.0123), (0.175, 0.263), (-1e-5, 1e-5),
                                   (0, 12345678.0), (-3.0, -1.0), (0, 1e-9), (-0.3, 0.3), (1.0, 1.0)])
def test_colour_bar_ticks_read(lo, hi):
    values, labels = hm.ticks(lo, hi)
    assert len(values) == len(labels) >= 1 and len(set(labels)) == len(labels)
    assert all(lo - 1e-12 <= v <= hi + 1e-12 for v in values)
    for v, label in zip(values, labels):
        assert not re.fullmatch(r"-0(\.0*)?", label), labels                     # never "-0.000"
        assert float(label) == pytest.approx(v, rel=0.05, abs=1e-12)             # the label is the value
        assert len(label) <= 9
    if hi > lo:
        assert len(values) >= 2


def test_ticks_refuse_non_finite_bounds():
    with pytest.raises(DataError, match="colour scale"):
        hm.ticks(0.0, float("nan"))


def test_overlay_where_keeps_uncovered_pixels_and_coverage_marks_boxes():
    img = np.full((10, 10, 3), 200, np.uint8)
    heat = np.zeros((10, 10, 3), np.uint8)
    where = hm.coverage([[0, 0, 5, 5], [8, 8, 10, 10], [0, 0, 10, 10]], (10, 10), region_mask=[True, True, False])
    assert where.sum() == 25 + 4 and where[0, 0] and not where[6, 6]
    out = hm.overlay(img, heat, 0.5, where=where)
    assert out[0, 0].tolist() == [100] * 3 and out[6, 6].tolist() == [200] * 3
    with pytest.raises(DataError, match="mask"):
        hm.overlay(img, heat, 0.5, where=np.ones((3, 3), bool))


def test_a_png_carries_its_colour_bar_and_title():
    rgb = np.full((400, 300, 3), 90, np.uint8)
    out = hm.with_colorbar(rgb, 0.0, 0.42, "inferno", title="factual a: 'red' - share of attention")
    assert out.dtype == np.uint8 and out.shape[0] > 400 and out.shape[1] > 300
    rows = np.flatnonzero((out[:, :300] == 90).all(axis=2).all(axis=1))
    top = int(rows[0])
    assert np.array_equal(out[top:top + 400, :300], rgb)                        # the image itself, unchanged
    lut = hm.colorize(np.array([[0.0, 0.42]]), 0.0, 0.42)[0]                     # both ends of the bar are drawn
    for colour in lut:
        assert (out == colour).all(axis=2).any()
    assert (out[:top] < 128).any()                                               # the title's ink above
    small = hm.with_colorbar(np.zeros((20, 30, 3), np.uint8), -1.0, 1.0, "coolwarm")
    assert small.shape[0] >= 320                                                 # enlarged so labels stay legible
    strip = hm.with_colorbar(np.zeros((4, 20000, 3), np.uint8), 0.0, 1.0)      # enlarged only within MAX_PIXELS
    assert strip.shape[0] * strip.shape[1] <= hm.MAX_PIXELS
    flat = hm.with_colorbar(np.zeros((50, 50, 3), np.uint8), 0.5, 0.5)         # an empty range still draws
    assert flat.shape[0] >= 320
    with pytest.raises(DataError, match="RGB"):
        hm.with_colorbar(np.zeros((20, 30), np.uint8), 0, 1)
    with pytest.raises(DataError, match="NaN"):
        hm.with_colorbar(rgb, 0.0, float("inf"))


def test_figure_names_are_safe_and_descriptive():
    name = hm.figure_name("A: causmatch-scenes", "img7", "cap35", "mask-regions=0,1", "seed0", "w2-réd", "factual")
    assert name == "A-causmatch-scenes_img7_cap35_mask-regions=0-1_seed0_w2-red_factual.png"
    for hostile in ("../../etc/passwd", "a/b\\c", "..", "\x00\n", "<script>", "ᾱ α", " ", "." * 50, "C:\\x"):
        out = hm.figure_name("ckpt", hostile, ext="png")
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+=-]*\.png", out), out
        assert "/" not in out and "\\" not in out and ".." not in out.replace("..png", "")
    assert hm.figure_name(None, "", "  ") == "figure.png"
    long = hm.figure_name(*["x" * 100] * 10)
    assert len(long) <= 184 and long.endswith(".png")
    assert hm.figure_name("a", ext="../csv") == "a.csv"
    tag = hm.text_tag("a red bar")
    assert re.fullmatch(r"text-[0-9a-f]{8}", tag) and tag == hm.text_tag(" a red bar ") != hm.text_tag("a red bars")


def test_unknown_rows_index_the_tokens():
    ex = PairExplanation(image=0, caption=None, text="a zebra and a yak", tokens=["a", "zebra", "and", "a", "yak"],
                         unknown_words=["zebra", "yak"], direction="t2i", region_mask=np.ones(2, bool), score=0.0,
                         t2i=None, i2t=None, word_relevance=None, region_relevance=None, intervention="none",
                         samples=1, cf_t2i=None, cf_i2t=None, cf_t2i_mean=None, cf_i2t_mean=None,
                         cf_scores=np.zeros(1), cf_score=0.0, effect=0.0, effect_low=0.0, effect_high=0.0,
                         word_effects=None, region_effects=None)
    assert ex.unknown_rows == [1, 4]


def test_region_orders():
    attn = np.array([[0.1, 0.5, 0.2, 0.9], [0.3, 0.5, 0.1, 0.0]])
    assert attention_order(attn, [True, True, True, False]) == [1, 0, 2]        # mass 0.4, 1.0, 0.3; r3 is padding
    assert attention_order(np.ones((2, 3)), [True] * 3) == [0, 1, 2]             # ties: index order
    with pytest.raises(DataError, match="NaN"):
        attention_order(np.array([[np.nan, 1.0]]), [True, True])
    with pytest.raises(DataError, match="mask"):
        attention_order(attn, [True, True])
    order = random_order([True, False, True, True, True], seed=3)
    assert sorted(order) == [0, 2, 3, 4] and order == random_order([True, False, True, True, True], seed=3)


def test_pair_curves_share_the_pair_and_normalise_the_area(tiny_session):
    s = tiny_session
    mask = s.split.region_mask[0]
    base = {"reversed order": attention_order(np.arange(4.0)[None], mask), "random order": random_order(mask, 1)}
    found = pair_curves(s, 0, 1, base)
    assert set(found) == {"deletion", "insertion"}
    full = s.similarity()[0, 1]
    for kind, curves in found.items():
        assert set(curves) == {"attention", "reversed order", "random order"}
        assert curves["reversed order"].removed == [3, 2, 1, 0]
        assert curves["random order"].removed == base["random order"]
        assert curves["attention"].removed == region_curve(s, 0, 1, kind).removed
        for c in curves.values():
            width = c.fraction[-1] - c.fraction[0]
            assert c.mean_score == pytest.approx(c.area / width)
            assert min(c.scores) - 1e-6 <= c.mean_score <= max(c.scores) + 1e-6
            end = c.scores[0] if kind == "deletion" else c.scores[-1]
            assert end == pytest.approx(full, abs=1e-5)                         # all regions: the pair's score
            assert c.to_dict()["mean_score"] == c.mean_score
