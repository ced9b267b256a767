"""Slices of a split (causmatch.analysis.slices) on constructed splits: every slice's numbers by hand."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from causmatch.analysis.failures import build_failure_table, filter_failures
from causmatch.analysis.slices import RELATION_WORDS, VALUES, SplitSlices, bins, slice_metrics
from causmatch.data import SplitData
from causmatch.data.scenes.captions import relation
from causmatch.data.scenes.spec import SceneObject
from causmatch.data.vocab import tokenize
from causmatch.errors import ConfigError
from causmatch.evaluation import ranks_i2t, ranks_t2i, recall_metrics

K = 2
# (caption, grounded words as (index, type, object)) — scenes-style captions, two per image.
CAPTIONS = [
    ("a red star left of a blue box", [(1, "colour", 0), (2, "shape", 0), (5, "colour", 1), (6, "shape", 1)]),
    ("six objects, including a small ring", [(5, "size", 2), (6, "shape", 2)]),
    ("there is a large green circle in the picture", [(3, "size", 0), (4, "colour", 0), (5, "shape", 0)]),
    ("a star above a circle and a red box", [(1, "shape", 0), (4, "shape", 1), (7, "colour", 2), (8, "shape", 2)]),
    ("a picture of three objects with a triangle among them", [(8, "shape", 1)]),
    ("the tiny pink cross beneath the star", [(1, "size", 0), (2, "colour", 0), (3, "shape", 0), (6, "shape", 1)]),
    ("a hexagon", [(1, "shape", 0)]),
    ("a blue ring next to a red star", [(1, "colour", 0), (2, "shape", 0), (6, "colour", 1), (7, "shape", 1)]),
    ("a green box right of a disk", [(1, "colour", 0), (2, "shape", 0), (6, "shape", 1)]),
    ("a violet square and a big yellow star", [(1, "colour", 0), (2, "shape", 0), (5, "size", 1),
                                               (6, "colour", 1), (7, "shape", 1)]),
    ("a star under a box", [(1, "shape", 0), (4, "shape", 1)]),
    ("two shapes, including a white diamond", [(5, "colour", 0), (6, "shape", 0)]),
]
N_IMG = len(CAPTIONS) // K
VALID = [3, 5, 4, 7, 5, 6]          # valid regions per image
DISTRACTOR = [True, False, False, True, False, False]


def make_split(folder, scenes: bool = True, grounding: bool = True) -> SplitData:
    caps = [c for c, _ in CAPTIONS]
    mask = np.zeros((N_IMG, 8), bool)
    for i, n in enumerate(VALID):
        mask[i, :n] = True
    ground = None
    if grounding:
        ground = [{"caption": c, "image": c // K, "tokens": tokenize(text),
                   "words": [{"index": j, "word": tokenize(text)[j], "type": t, "object": o, "regions": [1]}
                             for j, t, o in words]}
                  for c, (text, words) in enumerate(CAPTIONS)]
    if scenes:
        lines = [json.dumps({"image": i, "objects": [{"shape": "star", "distractor": False},
                                                      {"shape": "ring", "distractor": d}]})
                 for i, d in enumerate(DISTRACTOR)]
        (folder / "test_scenes.jsonl").write_text("\n".join(lines) + "\n")
    return SplitData(folder=folder, split="test", features=np.zeros((N_IMG, 8, 4), np.float32), captions=caps,
                     caps_per_image=K, region_mask=mask, boxes=None, image_paths=None, grounding=ground, ids=None,
                     meta={})


def hand_t2i(sims, c):
    true = c // K
    s = sims[:, c]
    return int(sum(1 for i in range(sims.shape[0]) if s[i] > s[true] or (s[i] == s[true] and i < true)))


def hand_i2t(sims, i):
    row = sims[i]
    own = range(i * K, (i + 1) * K)
    return min(int(sum(1 for c in range(sims.shape[1]) if row[c] > row[t] or (row[c] == row[t] and c < t)))
               for t in own)


@pytest.fixture
def sims():
    rng = np.random.default_rng(3)
    s = rng.normal(size=(N_IMG, N_IMG * K)).round(1)  # rounded: ties happen, the tie rule is exercised
    s[np.arange(N_IMG * K) // K, np.arange(N_IMG * K)] += 0.8
    return s


def test_every_slice_recall_equals_recall_computed_by_hand(tmp_path, sims):
    found = SplitSlices(make_split(tmp_path))
    keys = ["", *found.keys()]
    t2i, i2t = ranks_t2i(sims, K), ranks_i2t(sims, K)
    hits = np.arange(N_IMG * K) % 3
    words = np.full(N_IMG * K, 3.0)
    effect = np.linspace(-1, 1, N_IMG * K)
    df = slice_metrics([found.get(k) for k in keys], t2i, i2t, effect=effect, hits=hits, words=words)
    for key, row in zip(keys, df.itertuples()):
        sl = found.get(key)
        caps = [c for c in range(N_IMG * K) if sl.captions[c]]
        assert row.captions == len(caps)
        for k in (1, 5, 10):
            expect = 100.0 * np.mean([hand_t2i(sims, c) < k for c in caps]) if caps else np.nan
            assert getattr(row, f"t2i_r{k}") == pytest.approx(expect, nan_ok=True), (key, k)
        if sl.images is None:
            assert np.isnan(row.i2t_r1) and np.isnan(row.images)
        else:
            imgs = [i for i in range(N_IMG) if sl.images[i]]
            assert caps == [c for c in range(N_IMG * K) if c // K in imgs]  # an image slice holds its captions
            for k in (1, 5, 10):
                expect = 100.0 * np.mean([hand_i2t(sims, i) < k for i in imgs])
                assert getattr(row, f"i2t_r{k}") == pytest.approx(expect), (key, k)
        if caps:
            assert row.effect == pytest.approx(np.mean(effect[caps]))
            assert row.pointing == pytest.approx(100.0 * hits[caps].sum() / words[caps].sum())
            assert row.t2i_medr == np.floor(np.median([hand_t2i(sims, c) for c in caps])) + 1


def test_the_whole_split_slice_is_evaluates_recall(tmp_path, sims):
    found = SplitSlices(make_split(tmp_path))
    row = slice_metrics([found.get("")], ranks_t2i(sims, K), ranks_i2t(sims, K)).iloc[0]
    ref = recall_metrics(sims, K)
    for key in ("t2i_r1", "t2i_r5", "t2i_r10", "i2t_r1", "i2t_r5", "i2t_r10", "t2i_medr", "i2t_medr"):
        assert row[key] == pytest.approx(ref[key]), key


def test_labels_of_the_constructed_captions(tmp_path):
    found = SplitSlices(make_split(tmp_path))

    def members(key):
        return [int(c) for c in np.flatnonzero(found.get(key).captions)]
    assert members("relation:left_of") == [0]
    assert members("relation:right_of") == [8]
    assert members("relation:above") == [3]
    assert members("relation:below") == [5, 10]
    assert members("relation:near") == [7]
    assert members("template:count") == [1, 4, 11]
    assert members("template:single") == [2, 6]
    assert members("template:triple") == [3]
    assert members("attribute:size") == [1]
    assert members("attribute:colour_size") == [2, 5, 9]
    assert members("attribute:shape_only") == [4, 6, 10]
    assert members("word:star") == [0, 3, 5, 7, 9, 10]
    assert members("length:5") == [10]
    assert members("length:2-5") == [6, 10]
    img = found.get("distractor:present")
    assert list(np.flatnonzero(img.images)) == [0, 3] and members("distractor:present") == [0, 1, 6, 7]
    assert list(np.flatnonzero(found.get("regions:5-6").images)) == [1, 4, 5]
    # every caption has exactly one value in each label family, every image one in each image family
    for family in ("relation", "attribute", "template"):
        total = sum(found.get(f"{family}:{v}").captions.astype(int) for v in VALUES[family])
        assert (total == 1).all(), family
    assert (found.get("distractor:present").images ^ found.get("distractor:absent").images).all()


def test_the_generators_relation_phrases_are_each_read_as_the_relation_they_say():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(400):
        a, b = (SceneObject("star", "red", "small", *rng.uniform(0, 256, 2), 12.0, 0.0, 1.0) for _ in range(2))
        words = relation(a, b, rng)
        said = [RELATION_WORDS[w] for w in words if w in RELATION_WORDS]
        assert len(set(said)) == 1, words
        dx, dy = b.x - a.x, b.y - a.y
        if said[0] != "near":
            expect = ("left_of" if dx > 0 else "right_of") if abs(dx) >= abs(dy) else ("above" if dy > 0 else "below")
            assert said[0] == expect, (words, dx, dy)
        seen.add(said[0])
    assert seen == set(VALUES["relation"]) - {"none"}


def test_bins_cover_every_value_once():
    rng = np.random.default_rng(1)
    for values in (rng.integers(1, 40, 500), np.array([5, 5, 5]), np.array([3, 4, 5, 6, 7, 8, 9]), rng.poisson(9, 77)):
        found = bins(values)
        assert 1 <= len(found) <= 5
        member = np.stack([(values >= lo) & (values <= hi) for lo, hi in found])
        assert (member.sum(axis=0) == 1).all() and member.any(axis=1).all()


def test_without_the_generators_files_their_slices_are_not_offered_and_say_why(tmp_path):
    found = SplitSlices(make_split(tmp_path, scenes=False))
    assert set(found.missing) == {"relation", "attribute", "template", "distractor"}
    assert all("test_scenes.jsonl" in why for why in found.missing.values())
    assert not any(k.startswith(("relation:", "distractor:")) for k in found.keys())
    with pytest.raises(ConfigError, match="no relation slices: no test_scenes.jsonl"):
        found.get("relation:above")
    assert found.valid("word:star") and found.valid("regions:3")


def test_a_scene_file_that_does_not_fit_is_reported_not_used(tmp_path):
    make_split(tmp_path)
    (tmp_path / "test_scenes.jsonl").write_text('{"image": 0, "objects": []}\n')
    found = SplitSlices(make_split(tmp_path, scenes=False))
    assert "does not list the split's 6 images" in found.missing["distractor"]
    (tmp_path / "test_scenes.jsonl").write_text("{not json\n" * N_IMG)
    found = SplitSlices(make_split(tmp_path, scenes=False))
    assert "cannot be read" in found.missing["relation"]
    # without grounding the generator's word labels are not offered, the distractor still is
    found = SplitSlices(make_split(tmp_path, grounding=False))
    assert "distractor" in found.families and "relation" in found.missing


@pytest.mark.parametrize("key", ["bogus", "colour:red", "length:9-3", "length:x", "regions:-1", "word:zebra",
                                 "relation:sideways", "template:", "word:"])
def test_a_key_the_split_cannot_cut_by_is_refused_in_one_line(tmp_path, key):
    found = SplitSlices(make_split(tmp_path))
    with pytest.raises(ConfigError) as err:
        found.get(key)
    assert "\n" not in str(err.value) and not found.valid(key)


def test_a_slice_cuts_the_failure_table_of_its_direction(tmp_path, sims):
    found = SplitSlices(make_split(tmp_path))
    t2i = build_failure_table(sims, sims * 0.5, K, "t2i")
    i2t = build_failure_table(sims, sims * 0.5, K, "i2t")
    word = found.get("word:star")
    cut = filter_failures(t2i, queries=word.rows("t2i"))
    assert list(cut["query"]) == [0, 3, 5, 7, 9, 10]
    assert word.rows("i2t") is None  # a caption slice does not cut image queries
    regions = found.get("regions:5-6")
    assert list(filter_failures(i2t, queries=regions.rows("i2t"))["query"]) == [1, 4, 5]
    assert list(filter_failures(t2i, queries=regions.rows("t2i"))["query"]) == [2, 3, 8, 9, 10, 11]
    both = filter_failures(t2i, queries=word.rows("t2i"), rank_min=1)
    assert set(both["query"]) == {q for q in cut["query"] if t2i.loc[q, "rank"] >= 1}


def test_word_slices_put_telling_words_first(tmp_path):
    found = SplitSlices(make_split(tmp_path))
    words = [k.split(":", 1)[1] for k in found.keys() if k.startswith("word:")]
    assert words[0] == "star"  # the most frequent word in at most half of the captions
    assert words.index(",") > words.index("hexagon") and words.index("a") > words.index("hexagon")
    assert len([k for k in found.keys(words=3) if k.startswith("word:")]) == 3


def test_slice_metrics_of_no_slices_is_an_empty_table(tmp_path, sims):
    df = slice_metrics([], ranks_t2i(sims, K), ranks_i2t(sims, K))
    assert isinstance(df, pd.DataFrame) and len(df) == 0
