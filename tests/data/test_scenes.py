"""The generated "scenes" benchmark: determinism, grounding against the rendered masks, bias, recall."""
import json

import cv2
import numpy as np
import pytest

from causmatch.data import available_splits, ensure_scenes, load_split, read_meta, tokenize
from causmatch.data.scenes import build_scenes
from causmatch.data.scenes.regions import FEATURE_DIM, MAX_REGIONS, detect
from causmatch.data.scenes.render import render
from causmatch.data.scenes.spec import sample_scene, scene_rng

SIZES = {"train": 60, "dev": 6, "test": 60}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes")
    build_scenes(out, seed=7, bias=0.9, sizes=SIZES, workers=1, progress=False)
    return out


def _objects(folder, split):
    return [json.loads(line)["objects"] for line in (folder / f"{split}_scenes.jsonl").open()]


def test_folder_loads_with_expected_shapes(scenes):
    assert available_splits(scenes) == ["train", "dev", "test"]
    s = load_split(scenes, "test")
    assert s.features.shape == (60, MAX_REGIONS, FEATURE_DIM) and s.features.dtype == np.float32
    assert 64 <= FEATURE_DIM <= 256 and np.isfinite(np.asarray(s.features)).all()
    assert s.caps_per_image == 5 and s.n_captions == 300 and len(s.grounding) == 300
    assert all(p.is_file() for p in s.image_paths)
    assert (s.region_mask.sum(1) >= 2).all()  # whole image + at least one detection
    # Padded regions have zero features and boxes; region 0 is the whole image.
    assert not np.asarray(s.features)[~s.region_mask].any() and not s.boxes[~s.region_mask].any()
    np.testing.assert_array_equal(s.boxes[:, 0], [[0, 0, 256, 256]] * 60)


def test_meta_records_settings_and_recall(scenes):
    meta = read_meta(scenes)
    assert meta["name"] == "scenes" and meta["caps_per_image"] == 5 and meta["regions"] == MAX_REGIONS
    assert meta["generator"] == {"generator_version": "scenes-1", "seed": 7, "bias": 0.9}
    assert meta["feature_extractor"]["dim"] == FEATURE_DIM
    assert sum(b["size"] for b in meta["feature_extractor"]["blocks"]) == FEATURE_DIM
    assert "CC0" in meta["licence"]
    for split in SIZES:
        assert meta["splits"][split]["images"] == SIZES[split]
        assert meta["splits"][split]["detector_recall"] >= 0.8


@pytest.mark.slow  # worker processes
def test_same_seed_gives_byte_identical_files_with_any_worker_count(scenes, tmp_path):
    build_scenes(tmp_path, seed=7, bias=0.9, sizes=SIZES, splits=("test",), workers=2, progress=False)
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file() and p.name != "meta.json")
    assert len(files) > 60
    for rel in files:
        assert (tmp_path / rel).read_bytes() == (scenes / rel).read_bytes(), rel


def test_images_and_regions_come_from_the_pixels(scenes):
    s = load_split(scenes, "test")
    objects = _objects(scenes, "test")
    for i in range(0, 60, 6):
        rng = scene_rng(7, "test", i)
        img, _ = render(sample_scene(rng, "test", 0.9), rng)
        png = cv2.imread(str(s.image_paths[i]))[..., ::-1]
        np.testing.assert_array_equal(png, img)
        boxes = detect(png)[0]  # the detector run on the saved file reproduces the stored boxes
        np.testing.assert_array_equal(s.boxes[i, : len(boxes)], boxes)
        assert len(objects[i]) == len(sample_scene(scene_rng(7, "test", i), "test", 0.9))


def test_grounding_points_at_regions_that_contain_the_named_object(scenes):
    s = load_split(scenes, "test")
    objects = _objects(scenes, "test")
    n_words = n_empty = 0
    for i in range(s.n_images):
        rng = scene_rng(7, "test", i)
        _, labels = render(sample_scene(rng, "test", 0.9), rng)       # [H, W] visible object ids
        for c in s.captions_of(i):
            g = s.grounding[c]
            assert g["caption"] == c and g["image"] == i and g["tokens"] == tokenize(s.captions[c])
            for w in g["words"]:
                n_words += 1
                obj = objects[i][w["object"]]
                assert g["tokens"][w["index"]] == w["word"]
                assert not obj["distractor"]  # the distractor is never mentioned
                n_empty += not w["regions"]
                for r in w["regions"]:
                    assert s.region_mask[i, r] and r != 0
                    x1, y1, x2, y2 = s.boxes[i, r].astype(int)
                    inside = labels[y1:y2, x1:x2]
                    ids, counts = np.unique(inside[inside >= 0], return_counts=True)
                    assert ids[np.argmax(counts)] == w["object"]  # the box is mostly this object
                    assert (inside == w["object"]).sum() >= 0.15 * (labels == w["object"]).sum()
    assert n_words > 600 and n_empty <= 0.05 * n_words


def test_word_types_match_the_object_attributes(scenes):
    s = load_split(scenes, "train")
    objects = _objects(scenes, "train")
    synonyms = {"tiny": "small", "little": "small", "big": "large", "violet": "purple", "disk": "circle",
                "rhombus": "diamond", "box": "square"}
    for g in s.grounding:
        for w in g["words"]:
            attr = {"colour": "colour", "shape": "shape", "size": "size"}[w["type"]]
            assert synonyms.get(w["word"], w["word"]) == objects[g["image"]][w["object"]][attr]


def _cooccurrence(objects):
    star = np.array([any(o["shape"] == "star" and not o["distractor"] for o in objs) for objs in objects])
    dis = np.array([any(o["distractor"] for o in objs) for objs in objects])
    return dis[star].mean(), dis[~star].mean()


def test_bias_is_in_train_and_not_in_test(scenes):
    train_star, train_nostar = _cooccurrence(_objects(scenes, "train"))
    test_star, test_nostar = _cooccurrence(_objects(scenes, "test"))
    assert train_star >= 0.8 and train_nostar <= 0.1          # the distractor travels with stars
    assert test_star <= 0.5 and test_nostar >= 0.1            # in test it does not
    meta = read_meta(scenes)["splits"]
    assert meta["train"]["p_distractor_given_star"] == pytest.approx(train_star)
    # In train the distractor sits right beside a star.
    for objs in _objects(scenes, "train"):
        for d in (o for o in objs if o["distractor"]):
            stars = [o for o in objs if o["shape"] == "star" and not o["distractor"]]
            if stars:
                gap = min(np.hypot(d["x"] - o["x"], d["y"] - o["y"]) - d["radius"] - o["radius"] for o in stars)
                assert gap <= 12.5


def test_captions_vary_and_often_leave_objects_unmentioned(scenes):
    s = load_split(scenes, "train")
    assert len(set(s.captions)) >= 0.9 * s.n_captions
    words = {t for c in s.captions for t in tokenize(c)}
    assert {"left", "right", "above", "below", "next"} <= words | {"beside", "under"}
    assert read_meta(scenes)["splits"]["train"]["images_with_unmentioned_objects"] >= 0.5


def test_ensure_scenes_builds_only_missing_splits(tmp_path, monkeypatch):
    import causmatch.data.scenes as scenes_pkg
    monkeypatch.setitem(scenes_pkg.DEFAULT_SIZES, "test", 4)
    folder = ensure_scenes(tmp_path / "demo", progress=False)
    assert available_splits(folder) == ["test"] and load_split(folder, "test").n_images == 4
    mtime = (folder / "test_ims.npy").stat().st_mtime_ns
    ensure_scenes(folder, progress=False)  # already there: nothing rebuilt
    assert (folder / "test_ims.npy").stat().st_mtime_ns == mtime


def test_default_dir_honours_environment(tmp_path, monkeypatch):
    from causmatch.data import default_scenes_dir
    monkeypatch.setenv("CAUSMATCH_DATA", str(tmp_path))
    assert default_scenes_dir() == tmp_path.resolve()
    monkeypatch.delenv("CAUSMATCH_DATA")
    assert default_scenes_dir().parts[-3:] == ("assets", "data", "scenes")
