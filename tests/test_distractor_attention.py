"""Distractor attention: the share of grounded words' attention mass on the bias distractor's regions."""
import json
import shutil

import numpy as np
import pytest
import torch

import causmatch.evaluation as ev
from causmatch.data import Vocabulary, load_split
from causmatch.errors import DataError
from causmatch.interventions import parse_intervention
from causmatch.models import Matcher, MatcherConfig
from tests.training.tiny_data import R, make_tiny_dataset


def test_share_hand_worked():
    # pair 0: 4 valid regions, region 2 the distractor; word 0 puts 0.5 there, word 1 0.1 -> (0.5 + 0.1) / 2
    # pair 1: region 3 is padding (its mass never counts), regions 1 and 2 distractor; word 0: (0.2+0.2)/0.8
    # pair 2: no distractor -> not counted
    maps = np.zeros((3, 2, 4))
    maps[0, 0] = [0.2, 0.2, 0.5, 0.1]
    maps[0, 1] = [0.6, 0.2, 0.1, 0.1]
    maps[1, 0] = [0.4, 0.2, 0.2, 0.2]
    maps[2, 0] = [0.0, 1.0, 0.0, 0.0]
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1]], bool)
    dis = np.array([[0, 0, 1, 0], [0, 1, 1, 1], [0, 0, 0, 0]], bool)
    out = ev.distractor_share(maps, mask, dis, [[0, 1], [0], [0]])
    assert out["n_words"] == 3 and out["n_pairs"] == 2
    assert out["share"] == pytest.approx(100 * (0.5 + 0.1 + 0.4 / 0.8) / 3)
    assert out["chance"] == pytest.approx(100 * (1 / 4 + 1 / 4 + 2 / 3) / 3)
    # a word list may leave words out; unnormalised maps are normalised over the valid regions
    out = ev.distractor_share(maps * 7, mask, dis, [[1], [], [0]])
    assert out["share"] == pytest.approx(10.0) and out["n_words"] == 1
    # no word in an image with the distractor: NaN, not 0
    empty = ev.distractor_share(maps, mask, np.zeros_like(dis), [[0], [0], [0]])
    assert empty["n_words"] == 0 and np.isnan(empty["share"]) and np.isnan(empty["chance"])


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_share_refuses_negative_or_non_finite_maps(bad):
    maps = np.full((1, 1, 3), 0.3)
    maps[0, 0, 1] = bad
    with pytest.raises(DataError, match="non-negative") as info:
        ev.distractor_share(maps, np.ones((1, 3), bool), np.array([[0, 1, 0]], bool), [[0]])
    assert "\n" not in str(info.value)


def test_share_refuses_shapes_that_do_not_fit():
    with pytest.raises(DataError, match="do not fit"):
        ev.distractor_share(np.zeros((2, 1, 3)), np.ones((2, 3), bool), np.ones((2, 4), bool), [[0], [0]])


# ------------------------------------------------------------------ on a split with a scene file

def _box(r):
    return [10.0 * r, 0.0, 10.0 * r + 10.0, 10.0]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The tiny dataset's test split with region boxes and a scene file: even images show the distractor over
    region 2 (a slightly shifted box: IoU 0.67), image 1 shows one nowhere near a region, others have none."""
    folder = make_tiny_dataset(tmp_path_factory.mktemp("dis"), n_train=4, n_dev=2, n_test=6)
    np.save(folder / "test_boxes.npy", np.tile(np.array([_box(r) for r in range(R)], np.float32), (6, 1, 1)))
    lines = []
    for i in range(6):
        objects = [{"shape": "circle", "colour": "red", "size": "small", "distractor": False, "box": _box(1)}]
        if i % 2 == 0:
            objects.append({"shape": "ring", "colour": "white", "size": "small", "distractor": True,
                            "box": [22.0, 0.0, 32.0, 10.0]})
        elif i == 1:
            objects.append({"shape": "ring", "colour": "white", "size": "small", "distractor": True,
                            "box": [200.0, 200.0, 210.0, 210.0]})
        lines.append(json.dumps({"image": i, "objects": objects}))
    (folder / "test_scenes.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def _matcher(split):
    torch.manual_seed(0)
    cfg = MatcherConfig(img_dim=split.features.shape[-1], embed_size=16, text={"word_dim": 8})
    return Matcher(cfg, vocab=Vocabulary.from_captions(split.captions)).eval()


def test_distractor_regions_by_box_overlap(folder):
    split = load_split(folder, "test")
    dis = ev.distractor_regions(split)
    want = np.zeros((6, R), bool)
    want[[0, 2, 4], 2] = True
    np.testing.assert_array_equal(dis, want)


def test_distractor_attention_equals_the_share_of_the_true_maps(folder, monkeypatch):
    split = load_split(folder, "test")
    m = _matcher(split)
    img, txt = ev.encode_split(m, split)
    got = ev.distractor_attention(m, split, img, txt, batch_size=5)
    # by hand: every grounded word of the even images' captions, its t2i map on its own image
    maps = m.pair_scores(img[[c // 2 for c in range(12)]], txt[list(range(12))], return_maps=True).t2i
    shares, chances = [], []
    for c in range(12):
        if (c // 2) % 2:
            continue
        for w in split.grounding[c]["words"]:
            row = maps[c, w["index"]].detach().double().numpy()  # no <start> token: positions match
            shares.append(row[2] / row.sum())
            chances.append(1 / R)
    assert got["n_words"] == len(shares) > 0 and got["n_images"] == 3 and got["n_distractor_images"] == 3
    assert got["share"] == pytest.approx(100 * np.mean(shares), rel=1e-5)
    assert got["chance"] == pytest.approx(100 * np.mean(chances))
    # and through evaluate, with the effect AUC under an intervention (the tiny captions are no scenes
    # templates, so the fit-aware recall, which reads the same scene file, is left out here)
    import causmatch.data.scenes.fit as fit
    monkeypatch.setattr(fit, "split_fits", lambda split: None)
    res = ev.evaluate(m, split, intervention=parse_intervention("uniform"))
    assert res["distractor_attention"]["share"] == pytest.approx(got["share"], rel=1e-5)
    assert "effect_auc" in res or "effect_auc" in res["unavailable"]


def test_attention_on_the_distractor_only_gives_100_percent(folder, monkeypatch):
    split = load_split(folder, "test")

    def fake(matcher, img, txt):
        maps = torch.zeros(len(txt), txt.words.shape[1], img.regions.shape[1])
        maps[..., 2] = 1.0
        return maps

    monkeypatch.setattr(ev, "_word_region_maps", fake)
    got = ev.distractor_attention(_matcher(split), split)
    assert got["share"] == 100.0 and got["chance"] == 25.0


def test_unavailable_without_a_scene_file_says_why(folder, tmp_path):
    bare = tmp_path / "bare"
    shutil.copytree(folder, bare)
    (bare / "test_scenes.jsonl").unlink()
    split = load_split(bare, "test")
    assert "test_scenes.jsonl" in ev.distractor_unavailable(split)
    m = _matcher(split)
    assert ev.distractor_attention(m, split) is None
    res = ev.evaluate(m, split)
    assert "distractor_attention" not in res and "scenes" in res["unavailable"]["distractor_attention"]
    assert "distractor_attention" not in ev.evaluate(m, split, grounding=False).get("unavailable", {})


def test_a_scene_file_of_other_images_is_refused(folder, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    lines = (bad / "test_scenes.jsonl").read_text().splitlines()
    (bad / "test_scenes.jsonl").write_text("\n".join(lines[:3]) + "\n")
    with pytest.raises(DataError, match="describes 3 images but the split has 6"):
        ev.distractor_regions(load_split(bad, "test"))
    (bad / "test_scenes.jsonl").write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    with pytest.raises(DataError, match="line 1 is not the scene of image 0"):
        ev.distractor_regions(load_split(bad, "test"))


def test_the_box_rule_reproduces_the_grounding_regions_on_the_sample():
    """The distractor has no grounding entry (it is never mentioned); its regions come from the box rule. On the
    committed sample split the same rule, applied to the mentioned objects, gives their pixel-based grounding
    regions, and it finds every distractor."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "assets" / "sample" / "scenes"
    split = load_split(folder, "test")
    scenes = [json.loads(line)["objects"] for line in (folder / "test_scenes.jsonl").read_text().splitlines()]
    same = total = 0
    for entry in split.grounding:
        i = entry["image"]
        for w in entry["words"]:
            got = set(np.flatnonzero(ev.regions_of_box(scenes[i][w["object"]]["box"], split.boxes[i],
                                                       split.region_mask[i])).tolist())
            assert got <= set(w["regions"])
            same += got == set(w["regions"])
            total += 1
    assert total > 50 and same / total >= 0.95
    dis = ev.distractor_regions(split)
    shown = [i for i, objects in enumerate(scenes) if any(o["distractor"] and o["box"] for o in objects)]
    assert shown and sorted(np.flatnonzero(dis.any(axis=1)).tolist()) == shown
