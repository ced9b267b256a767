import json

import numpy as np
import pytest

from causmatch.cli import run_command
from causmatch.data import available_splits, load_split, read_meta, write_meta, write_split
from causmatch.errors import DataError

RNG = np.random.default_rng(0)


def _write(folder, split="test", n_img=3, k=2, r=4, f=5, **extra):
    feats = RNG.normal(size=(n_img, r, f)).astype(np.float32)  # [I, R, F]
    caps = [f"a red star number {c}" for c in range(n_img * k)]
    write_split(folder, split, features=feats, captions=caps, caps_per_image=k, **extra)
    return feats, caps


def test_round_trip_all_files(tmp_path):
    xy = np.sort(RNG.uniform(0, 100, size=(3, 4, 2, 2)), axis=2)  # [I, R, (lo, hi), (x, y)]
    boxes = xy.reshape(3, 4, 4).astype(np.float32)  # x1, y1, x2, y2 with x1 <= x2, y1 <= y2
    ground = [{"caption": c, "image": c // 2, "tokens": ["a", "red", "star"],
               "words": [{"index": 1, "word": "red", "type": "colour", "object": 0, "regions": [1]}]}
              for c in range(6)]
    feats, caps = _write(tmp_path, boxes=boxes, regions=np.array([4, 2, 1], dtype=np.int32),
                         image_paths=[f"images/{i}.png" for i in range(3)], grounding=ground,
                         ids=["a", "b", "c"])
    write_meta(tmp_path, {"name": "toy", "caps_per_image": 2})
    s = load_split(tmp_path, "test")
    assert isinstance(s.features, np.memmap) and not s.features.flags.writeable
    np.testing.assert_array_equal(s.features, feats)
    np.testing.assert_array_equal(s.boxes, boxes)
    assert s.captions == caps and s.caps_per_image == 2 and (s.n_images, s.n_captions) == (3, 6)
    assert s.region_mask.sum(axis=1).tolist() == [4, 2, 1]
    assert s.image_paths == [tmp_path.resolve() / f"images/{i}.png" for i in range(3)]
    assert s.grounding == ground and s.ids == ["a", "b", "c"]
    assert s.meta == {"name": "toy", "caps_per_image": 2} == read_meta(tmp_path)
    assert s.image_of(5) == 2 and list(s.captions_of(1)) == [2, 3]
    assert available_splits(tmp_path) == ["test"]


def test_fingerprint_is_stable_and_tracks_content(tmp_path):
    _write(tmp_path)
    a = load_split(tmp_path, "test").fingerprint()
    assert a == load_split(tmp_path, "test").fingerprint()
    _write(tmp_path)  # new random features
    assert load_split(tmp_path, "test").fingerprint() != a


def test_scan_precomp_folder_with_features_captions_and_ids(tmp_path):
    # A SCAN *_precomp folder: only {split}_ims.npy, {split}_caps.txt and optional {split}_ids.txt.
    feats = RNG.normal(size=(2, 36, 8)).astype(np.float32)
    np.save(tmp_path / "dev_ims.npy", feats)
    (tmp_path / "dev_caps.txt").write_text("".join(f"caption {c} .\n" for c in range(10)))
    (tmp_path / "dev_ids.txt").write_text("391895\n522418\n")
    s = load_split(tmp_path, "dev")
    assert s.caps_per_image == 5 and s.n_images == 2 and s.ids == ["391895", "522418"]
    assert s.region_mask.all() and s.boxes is None and s.image_paths is None and s.grounding is None
    assert s.meta == {} and available_splits(tmp_path) == ["dev"]


def test_k_from_meta_and_variable_regions_mask(tmp_path):
    _write(tmp_path, n_img=2, k=3, regions=np.array([[1, 1, 0, 0], [1, 0, 1, 0]], dtype=bool))
    write_meta(tmp_path, {"caps_per_image": 3})
    s = load_split(tmp_path, "test")
    assert s.caps_per_image == 3 and s.region_mask.tolist() == [[1, 1, 0, 0], [1, 0, 1, 0]]


def _corrupt(tmp_path, kind):
    _write(tmp_path)
    if kind == "missing_caps":
        (tmp_path / "test_caps.txt").unlink()
    elif kind == "not_multiple":
        (tmp_path / "test_caps.txt").write_text("a\nb\nc\nd\ne\n")
    elif kind == "meta_k":
        write_meta(tmp_path, {"caps_per_image": 3})
    elif kind == "boxes":
        np.save(tmp_path / "test_boxes.npy", np.zeros((3, 5, 4), np.float32))
    elif kind == "regions":
        np.save(tmp_path / "test_regions.npy", np.array([1, 2], dtype=np.int32))
    elif kind == "regions_range":
        np.save(tmp_path / "test_regions.npy", np.array([1, 9, 0], dtype=np.int32))
    elif kind == "nan":
        feats = RNG.normal(size=(3, 4, 5)).astype(np.float16)
        feats[2, 1, 3] = np.inf
        np.save(tmp_path / "test_ims.npy", feats)
    elif kind == "empty_line":
        (tmp_path / "test_caps.txt").write_text("a\nb\n\nd\ne\nf\n")
    elif kind == "utf8":
        (tmp_path / "test_caps.txt").write_bytes("a\nb\nc\nd\ne\ncaf\xe9\n".encode("latin-1"))
    elif kind == "no_split":
        return "train"
    return "test"


@pytest.mark.parametrize("kind, needle", [
    ("missing_caps", "missing required file .*test_caps.txt — run `causmatch scenes"),
    ("not_multiple", "has 5 captions, not a multiple of the 3 images"),
    ("meta_k", "caps_per_image=3"),
    ("boxes", r"test_boxes.npy has shape \(3, 5, 4\), expected \(3, 4, 4\)"),
    ("regions", "test_regions.npy has shape"),
    ("regions_range", "region counts must lie in 1..4"),
    ("nan", "NaN or infinite values \\(first in image 2\\)"),
    ("empty_line", "test_caps.txt line 3 is empty"),
    ("utf8", "test_caps.txt is not UTF-8"),
    ("no_split", "split 'train' not found in .*; available splits: test"),
])
def test_bad_inputs_give_one_line_data_errors(tmp_path, kind, needle, capsys):
    split = _corrupt(tmp_path, kind)
    with pytest.raises(DataError, match=needle) as err:
        load_split(tmp_path, split)
    assert "\n" not in str(err.value)
    # Through the CLI runner: one line "error: ...", exit status 2, no traceback.
    assert run_command(lambda argv: load_split(tmp_path, split), []) == 2
    out = capsys.readouterr()
    assert out.err.startswith("error: ") and out.err.count("\n") == 1 and "Traceback" not in out.err


def test_missing_folder_and_bad_meta(tmp_path):
    with pytest.raises(DataError, match="does not exist — run `causmatch scenes"):
        load_split(tmp_path / "nope", "test")
    _write(tmp_path)
    (tmp_path / "meta.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="must hold a JSON object"):
        load_split(tmp_path, "test")


def test_nan_check_walks_large_memmaps_in_blocks(tmp_path, monkeypatch):
    import causmatch.data.folder as folder
    monkeypatch.setattr(folder, "_BLOCK_BYTES", 200)  # force many blocks: 4*5*4 bytes per image
    feats = RNG.normal(size=(50, 4, 5)).astype(np.float32)
    feats[37, 0, 0] = np.nan
    write_split(tmp_path, "test", features=feats, captions=[f"c {i}" for i in range(50)], caps_per_image=1)
    with pytest.raises(DataError, match="first in image 37"):
        load_split(tmp_path, "test")


def test_write_split_rejects_bad_captions(tmp_path):
    with pytest.raises(DataError, match="empty or spans several lines"):
        write_split(tmp_path, "test", features=np.zeros((1, 1, 2), np.float32),
                    captions=["two\nlines"], caps_per_image=1)
    with pytest.raises(DataError, match="K\\*I captions"):
        write_split(tmp_path, "test", features=np.zeros((2, 1, 2), np.float32), captions=["a"], caps_per_image=1)
    assert not (tmp_path / "test_ims.npy").exists()
    assert json.loads(json.dumps(read_meta(tmp_path))) == {}


def test_ids_listed_once_per_caption_collapse_to_one_per_image(tmp_path):
    import numpy as np

    from causmatch.data import load_split, write_split
    feats = np.random.default_rng(0).standard_normal((3, 2, 4)).astype(np.float32)
    caps = [f"caption {c}" for c in range(6)]
    write_split(tmp_path, "test", features=feats, captions=caps, caps_per_image=2)
    (tmp_path / "test_ids.txt").write_text("7\n7\n8\n8\n9\n9\n")
    assert load_split(tmp_path, "test").ids == ["7", "8", "9"]


def test_large_feature_files_are_sampled_and_bad_rows_caught_by_the_loader(tmp_path, monkeypatch):
    import numpy as np
    import pytest

    from causmatch.data import folder as folder_mod
    from causmatch.data import load_split, write_split
    from causmatch.data.loader import CaptionPairs
    from causmatch.errors import DataError
    feats = np.ones((50, 2, 4), dtype=np.float32)
    feats[13, 1, 2] = np.nan
    caps = [f"caption {c}" for c in range(50)]
    write_split(tmp_path, "test", features=feats, captions=caps, caps_per_image=1)
    with pytest.raises(DataError, match="image 13"):
        load_split(tmp_path, "test")  # small file: scanned whole
    monkeypatch.setattr(folder_mod, "_FULL_SCAN_BYTES", 16)
    monkeypatch.setattr(folder_mod, "_SAMPLE_ROWS", 4)  # rows 0, 16, 32, 49: misses row 13
    split = load_split(tmp_path, "test")
    pairs = CaptionPairs(split)
    assert pairs[12][0].shape == (2, 4)
    with pytest.raises(DataError, match="image 13"):
        pairs[13]


def _bare(folder, n_img, n_caps, ids=None):
    """A SCAN-style folder without meta.json: features, captions and optionally ids."""
    np.save(folder / "test_ims.npy", RNG.normal(size=(n_img, 2, 3)).astype(np.float32))
    (folder / "test_caps.txt").write_text("".join(f"caption {c}\n" for c in range(n_caps)))
    if ids is not None:
        (folder / "test_ids.txt").write_text("".join(f"{i}\n" for i in ids))


@pytest.mark.parametrize("n_caps, ids, k", [
    (10, None, 5), (2, None, 1),                                    # SCAN's conventions
    (6, ["7", "7", "7", "8", "8", "8"], 3),                          # K said by per-caption ids
])
def test_caption_grouping_without_meta_follows_a_known_convention(tmp_path, n_caps, ids, k):
    _bare(tmp_path, 2, n_caps, ids)
    s = load_split(tmp_path, "test")
    assert s.caps_per_image == k and s.n_captions == n_caps


@pytest.mark.parametrize("n_caps, ids", [(6, None), (4, None), (20, None), (6, ["7", "8"]), (6, list("787878"))])
def test_an_unusual_multiple_is_refused_not_regrouped(tmp_path, n_caps, ids):
    _bare(tmp_path, 2, n_caps, ids)
    with pytest.raises(DataError, match=f"{n_caps // 2} per image\\), which fits no known layout .* meta.json"):
        load_split(tmp_path, "test")
    write_meta(tmp_path, {"caps_per_image": n_caps // 2})
    if ids is None or len(ids) == 2:
        assert load_split(tmp_path, "test").caps_per_image == n_caps // 2  # told: accepted


def test_write_split_records_k_so_its_folders_never_need_guessing(tmp_path):
    _write(tmp_path, k=3)
    _write(tmp_path, split="train", k=4)
    meta = read_meta(tmp_path)
    assert meta["caps_per_image"] == 3 and meta["caps_per_image_by_split"] == {"train": 4}
    assert load_split(tmp_path, "test").caps_per_image == 3 and load_split(tmp_path, "train").caps_per_image == 4


@pytest.mark.parametrize("change, needle", [
    (lambda p: (np.save(p / "test_ims.npy", np.zeros((0, 4, 5), np.float32)), (p / "test_caps.txt").write_text("")),
     "holds no images"),
    (lambda p: (p / "test_caps.txt").write_text(""), "holds no captions"),
    (lambda p: np.save(p / "test_ims.npy", np.zeros((3, 0, 5), np.float32)), "1..4096 regions"),
    (lambda p: np.save(p / "test_boxes.npy", np.full((3, 4, 4), np.nan, np.float32)), "NaN or infinite coordinates"),
    (lambda p: np.save(p / "test_boxes.npy", np.tile(np.float32([5, 5, 1, 9]), (3, 4, 1))), "is inverted"),
    (lambda p: np.save(p / "test_regions.npy", np.array([{}], dtype=object), allow_pickle=True), "not a readable"),
])
def test_more_bad_inputs_are_one_line_data_errors(tmp_path, change, needle):
    _write(tmp_path)
    change(tmp_path)
    with pytest.raises(DataError, match=needle) as err:
        load_split(tmp_path, "test")
    assert "\n" not in str(err.value)


def test_boxes_outside_the_image_are_kept_and_clipped_where_drawn(tmp_path):
    from causmatch.analysis.heatmaps import boxes_outside, word_heatmap
    boxes = np.tile(np.float32([-4, 2, 30, 9]), (3, 4, 1))  # left of and wider than a 16 x 16 image
    _write(tmp_path, boxes=boxes)
    s = load_split(tmp_path, "test")
    assert boxes_outside(s.boxes[0], (16, 16)) == 4
    heat = word_heatmap(np.ones(4), s.boxes[0], (16, 16), region_mask=[True, False, False, False])
    assert heat[2:9].min() == 1 and heat[:2].max() == 0
