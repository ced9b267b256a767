"""``causmatch explain``: JSON output and one-line errors."""
import json

import pytest

from causmatch.checkpoint import save_matcher
from causmatch.cli import main as cli_main
from tests.analysis.analysis_helpers import tiny_matcher, write_tiny


@pytest.fixture
def ckpt_data(tmp_path):
    data = tmp_path / "data"
    write_tiny(data)
    ckpt = tmp_path / "ckpt"
    save_matcher(tiny_matcher(), ckpt)
    return str(ckpt), str(data)


def run(capsys, *argv):
    code = cli_main(["explain", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_explain_prints_json(ckpt_data, capsys):
    ckpt, data = ckpt_data
    code, out, err = run(capsys, "--checkpoint", ckpt, "--data", data, "--image", "1", "--caption", "2",
                         "--intervention", "random", "--samples", "4", "--maps")
    assert code == 0, err
    d = json.loads(out)
    assert d["image"] == 1 and d["caption"] == 2 and d["samples"] == 4
    lo, hi = d["effect_interval"]
    assert lo <= d["effect"] <= hi
    assert d["effect"] == pytest.approx(d["score"] - d["cf_score"])
    assert [w["token"] for w in d["word_effects"]] == d["tokens"]
    assert 1 <= d["true_image_rank"]["factual"] <= 6 and 1 <= d["true_image_rank"]["counterfactual"] <= 6
    assert len(d["maps"]["t2i"]) == len(d["tokens"])


def test_explain_free_text_reports_unknown_words(ckpt_data, capsys):
    ckpt, data = ckpt_data
    code, out, err = run(capsys, "--checkpoint", ckpt, "--data", data, "--image", "0", "--text",
                         "red zebra square", "--intervention", "uniform")
    assert code == 0, err
    d = json.loads(out)
    assert d["unknown_words"] == ["zebra"] and d["caption"] is None and d["samples"] == 1
    assert d["effect_interval"] == [d["effect"], d["effect"]]


@pytest.mark.parametrize("extra, message", [
    (["--image", "99", "--caption", "0"], "image index 99 is out of range"),
    (["--image", "0", "--caption", "500"], "caption index 500 is out of range"),
    (["--image", "0", "--text", " "], "caption is empty"),
    (["--image", "0", "--text", "zebra"], "vocabulary"),
    (["--image", "0", "--caption", "0", "--intervention", "sideways"], "unknown intervention"),
    (["--image", "0", "--caption", "0", "--samples", "0"], "samples"),
])
def test_explain_errors_are_one_line(ckpt_data, capsys, extra, message):
    ckpt, data = ckpt_data
    code, out, err = run(capsys, "--checkpoint", ckpt, "--data", data, *extra)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_explain_missing_files(ckpt_data, capsys, tmp_path):
    ckpt, data = ckpt_data
    code, _, err = run(capsys, "--checkpoint", str(tmp_path / "nope"), "--data", data, "--image", "0", "--caption", "0")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    code, _, err = run(capsys, "--checkpoint", ckpt, "--data", str(tmp_path / "nodata"), "--image", "0",
                       "--caption", "0")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
