"""`causmatch train` / `causmatch evaluate` in-process: outputs, JSON, and one-line errors."""
import json

import pytest

from causmatch.cli import main as cli  # noqa: E402
from tests.training.tiny_data import TINY_OVERRIDES, make_tiny_dataset


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = make_tiny_dataset(root / "data", n_train=32, n_dev=10, n_test=10)
    sets = [a for s in TINY_OVERRIDES for a in ("--set", s)]
    assert cli(["train", "--data", str(data), "--out", str(root / "ckpt"), "--model", "scan",
                "--no-progress", *sets]) == 0
    return data, root / "ckpt"


def test_train_saves_scan_preset(trained):
    _, ckpt = trained
    cfg = json.loads((ckpt / "config.json").read_text())["train"]
    assert cfg["lambda_eff"] == 0.0 and cfg["epochs"] == 2


def test_print_config(capsys, tmp_path):
    assert cli(["train", "--data", "x", "--out", "y", "--print-config", "--set", "model.embed_size=8"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["embed_size"] == 8


def test_evaluate_table_and_json(trained, tmp_path, capsys):
    data, ckpt = trained
    out = tmp_path / "r.json"
    assert cli(["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--split", "test",
                "--fold5", "--intervention", "random", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "5-fold 2 (mean)" in text and "all 10 images" in text and "grounding accuracy" in text
    assert "mean effect" in text
    res = json.loads(out.read_text())
    assert res["n_images"] == 10 and res["intervention"] != "none" and 0 <= res["metrics"]["rsum"] <= 600
    assert set(res["grounding"]["by_type"]) == {"colour", "shape", "size"}
    assert cli(["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--limit-images", "4",
                "--no-grounding"]) == 0
    assert "4 images, 8 captions" in capsys.readouterr().out


@pytest.mark.parametrize("argv, match", [
    (["evaluate", "--checkpoint", "{tmp}/nope", "--data", "{data}"], "checkpoint"),
    (["evaluate", "--checkpoint", "{ckpt}", "--data", "{tmp}/nodata"], ""),
    (["evaluate", "--checkpoint", "{ckpt}", "--data", "{data}", "--intervention", "bogus"], "bogus"),
    (["evaluate", "--checkpoint", "{ckpt}", "--data", "{data}", "--fold5", "--limit-images", "7"], "divisible"),
    (["evaluate", "--checkpoint", "{ckpt}", "--data", "{data}", "--limit-images", "0"], "--limit-images"),
    (["train", "--data", "{data}", "--out", "{tmp}/o", "--set", "nope=1"], "unknown config key"),
    (["train", "--data", "{data}", "--out", "{tmp}/o", "--config", "{tmp}/missing.json"], "not found"),
    (["train", "--data", "{tmp}/nodata", "--out", "{tmp}/o"], ""),
    (["train", "--data", "{data}", "--out", "{tmp}/o2", "--resume"], "--resume"),
])
def test_bad_inputs_exit_2_with_one_line(trained, tmp_path, capsys, argv, match):
    data, ckpt = trained
    argv = [a.format(tmp=tmp_path, data=data, ckpt=ckpt) for a in argv]
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and match in err


@pytest.mark.slow  # compiles the fused kernels (about 10 s the first time in a process)
def test_evaluate_fused_gives_the_same_metrics(trained, tmp_path):
    data, ckpt = trained
    plain, fused = tmp_path / "plain.json", tmp_path / "fused.json"
    args = ["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--split", "test", "--no-grounding",
            "--shard", "4"]
    assert cli([*args, "--json", str(plain)]) == 0
    assert cli([*args, "--fused", "--json", str(fused)]) == 0
    assert json.loads(fused.read_text())["metrics"] == json.loads(plain.read_text())["metrics"]


@pytest.mark.parametrize("existing, refused", [
    (None, False),                                    # a new file
    ("evaluate", False),                              # our previous result: replaced (the user named it again)
    ("notes", True),                                  # someone's file: never replaced
    ('{"metrics": {}}', True),                        # a JSON that is not a full evaluate result
    ("folder", True),
])
def test_evaluate_json_target_is_checked_before_the_work(trained, tmp_path, capsys, monkeypatch, existing, refused):
    data, ckpt = trained
    out = tmp_path / "r.json"
    if existing == "folder":
        out.mkdir()
    elif existing == "evaluate":
        assert cli(["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--no-grounding",
                    "--json", str(out)]) == 0
    elif existing is not None:
        out.write_text(existing)
    before = out.read_text() if out.is_file() else None
    import causmatch.evaluation as ev

    calls = []
    real = ev.evaluate
    monkeypatch.setattr(ev, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    capsys.readouterr()
    code = cli(["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--no-grounding", "--json", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    if refused:
        assert code == 2 and len(err) == 1 and "--json" in err[0] and "nothing was written" in err[0]
        assert not calls  # refused before any scoring
        assert (out.read_text() if out.is_file() else None) == before
    else:
        assert code == 0 and calls and json.loads(out.read_text())["n_images"] == 10
