"""The training loop in-process on tiny data: checkpoints, resume, schedules, both models."""
import json

import pytest
import torch

from causmatch.checkpoint import load_matcher
from causmatch.errors import CheckpointError, ConfigError, DataError
from causmatch.training.config import TrainConfig, resolve_config
from causmatch.training.distributed import state_digest
from causmatch.training.trainer import lr_at, train
from tests.training.tiny_data import TINY_OVERRIDES


def _cfg(*extra):
    return resolve_config(overrides=[*TINY_OVERRIDES, *extra])


def test_lr_schedules():
    step = TrainConfig(lr=1.0, lr_schedule="step", lr_decay_epochs=2, lr_decay=0.1, epochs=6)
    assert [lr_at(s, 10, step) for s in (0, 19, 20, 39, 40)] == pytest.approx([1, 1, 0.1, 0.1, 0.01])
    cos = TrainConfig(lr=1.0, lr_schedule="cosine", epochs=2)
    assert lr_at(0, 10, cos) == 1.0 and lr_at(10, 10, cos) == pytest.approx(0.5) and lr_at(20, 10, cos) < 1e-12
    assert lr_at(99, 10, TrainConfig(lr=0.3, lr_schedule="constant")) == 0.3


@pytest.mark.slow  # a training run
def test_train_writes_best_and_last_and_saves_resolved_config(tiny_data, tmp_path):
    out = tmp_path / "run"
    summary = train(tiny_data, out, _cfg("epochs=3"), progress=False, log=lambda m: None)
    assert summary["epochs"] == 3 and len(summary["history"]) == 3
    assert summary["best_rsum"] == max(h["dev_rsum"] for h in summary["history"])
    assert all(h["loss"] > 0 and "mean_effect_pos" in h for h in summary["history"])
    config = json.loads((out / "config.json").read_text())
    assert '"lambda_eff": 1.0' in json.dumps(config) and '"batch_size": 16' in json.dumps(config)
    assert not (out / "train_state.pt").exists() and (out / "last" / "train_state.pt").is_file()
    best = load_matcher(out)
    assert best.config.embed_size == 16 and best.config.img_dim == 12


@pytest.mark.slow  # a training run
def test_resume_equals_uninterrupted_run(tiny_data, tmp_path):
    straight = train(tiny_data, tmp_path / "a", _cfg("epochs=3"), progress=False, log=lambda m: None)
    train(tiny_data, tmp_path / "b", _cfg("epochs=2"), progress=False, log=lambda m: None)
    resumed = train(tiny_data, tmp_path / "b", _cfg("epochs=3"), resume=True, progress=False, log=lambda m: None)
    assert resumed["epochs"] == 3 and len(resumed["history"]) == 3
    assert resumed["state_sha256"] == straight["state_sha256"]
    assert state_digest(load_matcher(tmp_path / "b" / "last")) == straight["state_sha256"]


@pytest.mark.slow  # a training run
def test_scan_baseline_is_the_same_code_with_lambda_zero(tiny_data, tmp_path):
    summary = train(tiny_data, tmp_path / "scan", _cfg("lambda_eff=0", "lr_schedule=cosine", "grad_clip=0"),
                    progress=False, log=lambda m: None)
    assert summary["epochs"] == 2
    assert json.loads((tmp_path / "scan" / "config.json").read_text())  # written


@pytest.mark.slow  # a training run
def test_training_learns_the_tiny_task(tiny_data, tmp_path):
    torch.manual_seed(0)
    summary = train(tiny_data, tmp_path / "learn", _cfg("epochs=8"), progress=False, log=lambda m: None)
    first, best = summary["history"][0]["dev_rsum"], summary["best_rsum"]
    # 16 dev images, 32 captions: chance rSum is about 2*(1+5+10)/16*100/... well under 200
    assert best > first and best > 250, summary["history"]


def test_bad_inputs_are_one_line_errors(tiny_data, tmp_path):
    with pytest.raises(CheckpointError, match="--resume"):
        train(tiny_data, tmp_path / "none", _cfg(), resume=True, progress=False)
    with pytest.raises(DataError):
        train(tmp_path / "no-data", tmp_path / "x", _cfg(), progress=False)
    with pytest.raises(ConfigError, match="batch_size"):
        train(tiny_data, tmp_path / "y", _cfg("batch_size=1000"), progress=False)
    with pytest.raises(ConfigError, match="img_dim"):
        train(tiny_data, tmp_path / "z", _cfg("model.img_dim=7"), progress=False)


def test_epoch_sampler_subsets_are_fresh_and_disjoint_across_ranks():
    from causmatch.training.trainer import EpochSampler
    data = list(range(100))
    full = EpochSampler(data, num_replicas=1, rank=0, seed=0)
    assert sorted(full) == data
    ranks = [EpochSampler(data, num_replicas=2, rank=r, seed=0, limit=30) for r in (0, 1)]
    a, b = list(ranks[0]), list(ranks[1])
    assert len(a) == len(b) == 15 == len(ranks[0]) and not set(a) & set(b)
    ranks[0].set_epoch(1)
    assert list(ranks[0]) != a


@pytest.mark.slow  # a training run
def test_captions_per_epoch_shortens_epochs(tiny_data, tmp_path):
    logs = []
    train(tiny_data, tmp_path / "sub", _cfg("epochs=1", "captions_per_epoch=32"), progress=False, log=logs.append)
    state = torch.load(tmp_path / "sub" / "last" / "train_state.pt", weights_only=True)
    assert state["step"] == 2  # 32 captions / batch 16


@pytest.mark.slow  # a training run
def test_effect_warmup_trains_the_ranking_term_alone_first(tiny_data, tmp_path):
    summary = train(tiny_data, tmp_path / "warm", _cfg("epochs=3", "effect_warmup_epochs=2", "effect_margin=0.05",
                                                        "effect_violation=sum"),
                    progress=False, log=lambda m: None)
    effects = [h["mean_effect_pos"] for h in summary["history"]]
    assert effects[0] != effects[0] and effects[1] != effects[1]  # NaN: no counterfactual pass in warm-up
    assert effects[2] == effects[2] and summary["history"][2]["effect_rank"] > 0
