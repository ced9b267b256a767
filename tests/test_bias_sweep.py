"""scripts/bias_sweep.py: the plan (queue order, commands), resuming (what counts as done) and the tables —
no training or evaluation runs here."""
import csv
import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sweep():
    spec = importlib.util.spec_from_file_location("bias_sweep", ROOT / "scripts" / "bias_sweep.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bias_sweep"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _eval_result():
    metrics = {"rsum": 400.0, "i2t_r1": 60.0, "t2i_r1": 40.0}
    auc = {name: {"auc": 0.6, "lo": 0.55, "hi": 0.65, "resamples": 1000}
           for name in ("effect_top", "effect_margin", "score_margin")}
    return {"metrics": {"rsum": 10.0}, "factual_metrics": metrics, "effect": {"matching": 0.2, "non_matching": 0.05},
            "grounding": {"overall": 90.0}, "distractor_attention": {"share": 3.0, "chance": 16.0},
            "effect_auc": {"n_queries": 5000, "n_correct": 2000, **auc}}


def test_plan_goes_seed_by_seed_with_data_before_its_runs(sweep, tmp_path):
    tasks = sweep.plan(tmp_path, biases=(0.5, 0.9), seeds=(0, 1), models=("scan", "causmatch"))
    names = [t.name for t in tasks]
    assert names[:2] == ["data-test", "data-0.5"]
    trains = [n for n in names if n.startswith("train-")]
    assert trains == ["train-scan-b0.5-s0", "train-causmatch-b0.5-s0", "train-scan-b0.9-s0",
                      "train-causmatch-b0.9-s0", "train-scan-b0.5-s1", "train-causmatch-b0.5-s1",
                      "train-scan-b0.9-s1", "train-causmatch-b0.9-s1"]
    assert names.index("data-0.9") < names.index("train-scan-b0.9-s0")
    assert len([n for n in names if n.startswith("eval-")]) == 8
    by_name = {t.name: t for t in tasks}
    train = by_name["train-scan-b0.9-s1"]
    assert train.deps == ["data-0.9"] and by_name["eval-scan-b0.9-s1"].deps == ["data-test", "train-scan-b0.9-s1"]
    assert "--model scan" in train.command and "--set seed=1" in train.command and "--set epochs=3" in train.command
    assert train.command.startswith("OMP_NUM_THREADS=1 python -m causmatch train --data ")
    warm = sweep.plan(tmp_path, biases=(0.5,), seeds=(0,), models=("scan-warmup",))
    assert "--model scan --set max_violation_warmup_epochs=1" in warm[-2].command
    assert "--intervention random --json" in warm[-1].command and "--split test" in warm[-1].command


def test_later_models_go_after_the_others_within_each_seed(sweep, tmp_path):
    tasks = sweep.plan(tmp_path, biases=(0.5, 0.9), seeds=(0, 1), later=("scan",))
    names = [t.name for t in tasks if t.kind != "eval"]
    assert names == ["data-test", "data-0.5", "train-scan-warmup-b0.5-s0", "train-causmatch-b0.5-s0", "data-0.9",
                     "train-scan-warmup-b0.9-s0", "train-causmatch-b0.9-s0", "train-scan-b0.5-s0",
                     "train-scan-b0.9-s0", "train-scan-warmup-b0.5-s1", "train-causmatch-b0.5-s1",
                     "train-scan-warmup-b0.9-s1", "train-causmatch-b0.9-s1", "train-scan-b0.5-s1",
                     "train-scan-b0.9-s1"]


def test_resume_skips_what_is_done_and_continues_what_is_not(sweep, tmp_path):
    kw = dict(biases=(0.5,), seeds=(0,), models=("scan", "scan-warmup", "causmatch"), epochs=3)
    _write(tmp_path / "data" / "test" / "meta.json", {"splits": {"test": {}}, "generator": {"bias": 0.9}})
    _write(tmp_path / "data" / "bias-0.5" / "meta.json", {"splits": {"train": {}, "dev": {}},
                                                         "generator": {"bias": 0.5}})
    runs = tmp_path / "runs"
    _write(runs / "scan-b0.5-s0" / "config.json", {})                       # finished, evaluated
    _write(runs / "scan-b0.5-s0" / "last" / "config.json", {"extra": {"epoch": 3}})
    _write(tmp_path / "eval" / "scan-b0.5-s0.json", _eval_result())
    _write(runs / "scan-warmup-b0.5-s0" / "config.json", {})                # stopped after epoch 1
    _write(runs / "scan-warmup-b0.5-s0" / "last" / "config.json", {"extra": {"epoch": 1}})
    (runs / "causmatch-b0.5-s0").mkdir(parents=True)                        # an output without last/
    tasks = {t.name: t for t in sweep.plan(tmp_path, **kw)}
    assert sorted(tasks) == ["eval-causmatch-b0.5-s0", "eval-scan-warmup-b0.5-s0", "train-causmatch-b0.5-s0",
                             "train-scan-warmup-b0.5-s0"]
    assert tasks["train-scan-warmup-b0.5-s0"].extra == ["--resume"]
    assert tasks["train-causmatch-b0.5-s0"].extra == ["--overwrite"]
    assert "--resume" not in tasks["train-scan-warmup-b0.5-s0"].command  # the row's command is the canonical one
    # an evaluation JSON from before distractor attention / the AUC existed is redone
    stale = {k: v for k, v in _eval_result().items() if k != "effect_auc"}
    _write(tmp_path / "eval" / "scan-b0.5-s0.json", stale)
    assert "eval-scan-b0.5-s0" in {t.name for t in sweep.plan(tmp_path, **kw)}
    # a dataset built with another bias is not "done"
    _write(tmp_path / "data" / "bias-0.5" / "meta.json", {"splits": {"train": {}, "dev": {}},
                                                         "generator": {"bias": 0.9}})
    assert "data-0.5" in {t.name for t in sweep.plan(tmp_path, **kw)}


def test_tables_carry_every_command_and_only_evaluated_runs(sweep, tmp_path):
    _write(tmp_path / "eval" / "causmatch-b0.75-s2.json", _eval_result())
    _write(tmp_path / "eval" / "scan-b0.75-s2.json", {"metrics": {}})       # incomplete: left out
    _write(tmp_path / "runs" / "causmatch-b0.75-s2" / "config.json", {"extra": {"epoch": 2}})
    sweep_rows, auc_rows = sweep.collect(tmp_path, biases=(0.75,), seeds=(2,), models=("scan", "causmatch"))
    assert len(sweep_rows) == len(auc_rows) == 1
    row = sweep_rows[0]
    assert (row["bias"], row["seed"], row["model"], row["rsum"], row["t2i_r1"]) == ("0.75", 2, "causmatch",
                                                                                    "400.00", "40.00")
    assert row["distractor_attention"] == "3.0000" and row["best_epoch"] == 2
    steps = row["command"].split(" && ")
    assert [s.split()[4] for s in steps] == ["scenes", "scenes", "train", "evaluate"]
    assert "--bias 0.75" in steps[0] and "--splits test" in steps[1] and "--model causmatch" in steps[2]
    assert "--set seed=2" in steps[2] and "causmatch-b0.75-s2.json" in steps[3]
    text = sweep.to_csv(sweep_rows, sweep.SWEEP_FIELDS)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert parsed[0]["command"] == row["command"] and list(parsed[0]) == list(sweep.SWEEP_FIELDS)
    assert auc_rows[0]["effect_top_auc"] == "0.6000" and auc_rows[0]["top1_correct"] == 2000


def test_rows_carry_the_command_the_log_says_ran(sweep, tmp_path):
    _write(tmp_path / "eval" / "causmatch-b0.9-s0.json", _eval_result())
    log = tmp_path / "logs" / "train-causmatch-b0.9-s0.log"
    log.parent.mkdir(parents=True)
    ran = "OMP_NUM_THREADS=1 python -m causmatch train --data d --out o --device cuda"
    log.write_text(f"$ {ran} --overwrite\nepoch 1/3 ...\n$ {ran} --resume\n")
    assert sweep.logged_command(log) == ran
    row = sweep.collect(tmp_path, biases=(0.9,), seeds=(0,), models=("causmatch",))[0][0]
    steps = row["command"].split(" && ")
    assert steps[2] == ran and steps[3].startswith("OMP_NUM_THREADS=1 python -m causmatch evaluate")
    cuda = sweep.plan(tmp_path / "new", biases=(0.9,), seeds=(0,), models=("scan",), device="cuda")
    assert all(t.command.endswith("--device cuda") for t in cuda if t.kind != "data")


def test_dry_run_lists_the_plan_and_runs_nothing(sweep, tmp_path, capsys):
    assert sweep.main(["--out", str(tmp_path / "out"), "--dry-run", "--biases", "0.5", "--seeds", "0"]) == 0
    out = capsys.readouterr().out
    assert "8 task(s) to run" in out and "train-scan-warmup-b0.5-s0" in out
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, says", [
    (["--biases", "1.5"], "--biases must lie in [0, 1]"),
    (["--biases", "nan"], "--biases must lie in [0, 1]"),
    (["--biases", "-0.1"], "--biases must lie in [0, 1]"),
    (["--seeds", "-1"], "--seeds must be >= 0"),
    (["--biases", "0.5,0.5"], "lists a value twice"),
    (["--sizes", "0,10,10"], "must be >= 1"),
    (["--captions", "0"], "must be >= 1"),
    (["--biases", ","], "at least one value"),
])
def test_bad_settings_are_refused_before_any_work(sweep, tmp_path, capsys, argv, says):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        sweep.main(["--out", str(out), "--dry-run", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert says in err[-1]
    assert not out.exists()
