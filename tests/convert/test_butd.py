import json

import numpy as np
import pytest

from causmatch.cli import main as cli_main
from causmatch.convert.butd import PARTIAL, convert_butd
from causmatch.convert.butd_tsv import iter_tsv
from causmatch.data import load_split
from causmatch.errors import DataError

from .butd_files import butd_line, make_rows, write_karpathy, write_tsv

SPLITS = {"train": [11, 12, 13], "restval": [14], "val": [21, 22], "test": [31, 32]}
ALL_IDS = [i for ids in SPLITS.values() for i in ids]


@pytest.fixture
def files(tmp_path):
    rows = make_rows(ALL_IDS, boxes_per_image=[3, 2, 3, 1, 3, 3, 2, 3])
    order = ALL_IDS[::-1]  # TSV order differs from the split file's order
    write_tsv(tmp_path / "a.tsv", {i: rows[i] for i in order[:4]})
    write_tsv(tmp_path / "b.tsv", {i: rows[i] for i in order[4:]})
    karpathy = write_karpathy(tmp_path / "dataset_flickr30k.json", SPLITS)
    return tmp_path, rows, karpathy


def test_convert_writes_loadable_padded_splits(files):
    tmp, rows, karpathy = files
    (tmp / "images").mkdir()
    out = tmp / "out"
    summary = convert_butd([tmp / "a.tsv", tmp / "b.tsv"], karpathy, out, images_root=tmp / "images")
    assert summary["train"]["images"] == 4 and summary["train"]["regions"] == 3
    train = load_split(out, "train")
    assert train.features.shape == (4, 3, 8) and train.caps_per_image == 5
    assert train.ids == ["11", "12", "13", "14"]  # train then restval, in split-file order
    boxes, feats = rows[12]
    np.testing.assert_array_equal(train.features[1, :2], feats)
    np.testing.assert_array_equal(train.features[1, 2], 0)  # padding row
    np.testing.assert_array_equal(train.boxes[1, :2], boxes)
    assert train.region_mask.sum(axis=1).tolist() == [3, 2, 3, 1]
    assert train.captions[5] == "image 12 caption 0"  # whitespace normalised, first 5 sentences
    assert train.image_paths[3].resolve() == (tmp / "images" / "14.jpg").resolve()
    dev, test = load_split(out, "dev"), load_split(out, "test")
    assert dev.n_images == 2 and test.n_images == 2
    assert (out / "test_regions.npy").exists() and not (out / "dev_regions.npy").exists()  # 3,3 boxes
    meta = json.loads((out / "meta.json").read_text())
    assert meta["caps_per_image"] == 5 and meta["source"]["tsv"] == ["a.tsv", "b.tsv"]
    assert not (out / PARTIAL).exists()


def test_fp16_and_max_boxes_skip_the_scan(files):
    tmp, rows, karpathy = files
    out = tmp / "out"
    convert_butd([tmp / "a.tsv", tmp / "b.tsv"], karpathy, out, splits=["test"], fp16=True, max_boxes=5)
    test = load_split(out, "test")
    assert test.features.dtype == np.float16 and test.features.shape == (2, 5, 8)
    np.testing.assert_allclose(test.features[0, :2], rows[31][1], atol=1e-2)
    assert not (out / "train_ims.npy").exists()


def test_coco_test_is_also_testall(tmp_path):
    ids = {"train": [1, 2], "val": [3], "test": [4, 5]}
    rows = make_rows([1, 2, 3, 4, 5])
    write_tsv(tmp_path / "c.tsv", rows)
    karpathy = write_karpathy(tmp_path / "dataset_coco.json", ids, dataset="coco")
    out = tmp_path / "coco"
    convert_butd([tmp_path / "c.tsv"], karpathy, out, images_root=tmp_path, splits=["testall"])
    testall = load_split(out, "testall")
    assert testall.n_images == 2 and testall.ids == ["4", "5"]
    assert testall.image_paths[0].resolve() == (tmp_path / "val2014" / "COCO_val2014_000000000004.jpg").resolve()
    assert load_split(out, "test").n_images == 2


def test_interrupted_run_leaves_output_untouched_and_rerun_starts_clean(files):
    tmp, rows, karpathy = files
    out = tmp / "out"
    bad = tmp / "bad.tsv"
    bad.write_text((tmp / "a.tsv").read_text() + butd_line(99, *rows[11]))  # 99: not in the split file
    with pytest.raises(DataError):  # max_boxes skips the scan pass, so this fails mid-conversion
        convert_butd([tmp / "b.tsv", bad], karpathy, out, max_boxes=3)
    assert not list(out.glob("*_ims.npy"))  # nothing half-written is published
    assert (out / PARTIAL).exists()
    convert_butd([tmp / "a.tsv", tmp / "b.tsv"], karpathy, out)
    assert load_split(out, "train").n_images == 4 and not (out / PARTIAL).exists()


def _error(tsv, karpathy, out, **kw) -> str:
    with pytest.raises(DataError) as err:
        convert_butd(tsv, karpathy, out, **kw)
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_bad_tsv_lines_are_one_line_errors(files):
    tmp, rows, karpathy = files
    good = (tmp / "a.tsv").read_text().splitlines(keepends=True)
    truncated = tmp / "trunc.tsv"
    truncated.write_text("".join(good[:2]) + good[2][: len(good[2]) // 2])  # cut inside features
    assert "trunc.tsv line 3" in _error([truncated], karpathy, tmp / "o1", max_boxes=3)
    cut_fields = tmp / "fields.tsv"
    cut_fields.write_text(good[0] + "\t".join(good[1].split("\t")[:3]))
    msg = _error([cut_fields], karpathy, tmp / "o2", max_boxes=3)
    assert "fields.tsv line 2" in msg and "3 tab-separated fields" in msg and "truncated" in msg
    extra = tmp / "extra.tsv"
    extra.write_text(good[0].rstrip("\n") + "\tmore\n")
    assert "7 tab-separated fields" in _error([extra], karpathy, tmp / "o3", max_boxes=3)
    boxes, feats = rows[32]
    wrong = tmp / "wrong.tsv"
    wrong.write_text(butd_line(32, boxes[:, :3], feats))  # 3 floats per box
    assert "field 'boxes' decodes to 36 bytes, expected 48" in _error([wrong], karpathy, tmp / "o4")
    unknown = tmp / "unknown.tsv"
    unknown.write_text(butd_line(77, boxes, feats))
    assert "image_id 77 is not in dataset_flickr30k.json" in _error([unknown], karpathy, tmp / "o5")
    assert "are not in the TSV files" in _error([tmp / "a.tsv"], karpathy, tmp / "o6")
    assert "more than --max-boxes 2" in _error([tmp / "a.tsv", tmp / "b.tsv"], karpathy, tmp / "o7",
                                                max_boxes=2)
    twice = _error([tmp / "a.tsv", tmp / "a.tsv", tmp / "b.tsv"], karpathy, tmp / "o8")
    assert "appears twice" in twice


def test_tsv_reader_streams_without_decoding(files):
    tmp, _, _ = files
    rows = list(iter_tsv([tmp / "a.tsv"], decode=False))
    assert [r.image_id for r in rows] == [32, 31, 22, 21] and rows[0].features is None
    assert rows[0].num_boxes == 3 and rows[0].line == 1


def test_cli_convert_butd(files, capsys):
    tmp, _, karpathy = files
    out = tmp / "cli"
    rc = cli_main(["convert-butd", "--tsv", str(tmp / "a.tsv"), str(tmp / "b.tsv"), "--karpathy", str(karpathy),
                   "--out", str(out), "--splits", "dev,test"])
    assert rc == 0 and load_split(out, "dev").n_images == 2
    rc = cli_main(["convert-butd", "--tsv", str(tmp / "a.tsv"), "--karpathy", str(karpathy), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1


@pytest.mark.parametrize("change, message", [
    (lambda b, f: (b, np.where(np.arange(f.size).reshape(f.shape) == 3, np.nan, f)), "features hold NaN"),
    (lambda b, f: (np.where(np.arange(b.size).reshape(b.shape) == 1, np.inf, b), f), "boxes hold NaN"),
    (lambda b, f: (b[:, [2, 1, 0, 3]], f), "x2 < x1"),
])
def test_bad_tsv_values_are_refused_naming_the_line(files, change, message):
    tmp, rows, karpathy = files
    boxes, feats = rows[31]
    write_tsv(tmp / "c.tsv", {**{i: rows[i] for i in (32,)}, 31: change(boxes, feats)})
    with pytest.raises(DataError, match=f"c.tsv line 2 \\(image_id 31\\): the {message}" if "x2" not in message
                       else "c.tsv line 2 .*x2 < x1"):
        convert_butd([tmp / "c.tsv"], karpathy, tmp / "out", splits=["test"])
    assert not (tmp / "out" / "test_ims.npy").exists()


def test_boxes_outside_the_image_are_clipped_and_counted(files):
    tmp, rows, karpathy = files
    boxes, feats = rows[31]
    boxes = boxes.copy()
    boxes[0] = [-20, 10, 40, 900]  # left of and below a 500 x 375 image
    write_tsv(tmp / "c.tsv", {31: (boxes, feats), 32: rows[32]})
    summary = convert_butd([tmp / "c.tsv"], karpathy, tmp / "out", splits=["test"])
    assert summary["test"]["clipped_boxes"] == 1
    np.testing.assert_array_equal(load_split(tmp / "out", "test").boxes[0, 0], [0, 10, 40, 375])


@pytest.mark.parametrize("flag, value", [("--caps-per-image", "0"), ("--caps-per-image", "-2"), ("--max-boxes", "0")])
def test_cli_refuses_impossible_counts_before_reading(files, capsys, flag, value):
    tmp, _, karpathy = files
    code = cli_main(["convert-butd", "--tsv", str(tmp / "a.tsv"), "--karpathy", str(karpathy),
                     "--out", str(tmp / "out"), flag, value])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {flag} must be") and err.count("\n") == 1
    assert not (tmp / "out").exists()
