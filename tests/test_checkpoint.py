"""Checkpoint directories: round trip, atomic replace, strict loading, one-line errors, no pickle."""
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from causmatch.checkpoint import (
    check_compatible,
    checkpoint_fingerprint,
    load_matcher,
    load_train_state,
    read_checkpoint_config,
    save_matcher,
)
from causmatch.data import Vocabulary
from causmatch.errors import CheckpointError
from causmatch.models import AttentionConfig, Matcher, MatcherConfig, TextConfig

CAPS = ["a red ball", "a blue cube left of a ball", "green cone"]


def matcher(seed=0, direction="both"):
    torch.manual_seed(seed)
    cfg = MatcherConfig(img_dim=6, embed_size=8, text=TextConfig(word_dim=5),
                        attention=AttentionConfig(direction=direction, agg="mean"))
    return Matcher.from_config(cfg, Vocabulary.from_captions(CAPS))


def scores(m):
    with torch.no_grad():
        img = m.encode_images(torch.linspace(-1, 1, 3 * 4 * 6).view(3, 4, 6))
        return m.similarity(img, m.encode_captions(CAPS)).score


def one_line_error(fn, *args):
    with pytest.raises(CheckpointError) as err:
        fn(*args)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_round_trip_gives_identical_scores(tmp_path):
    m = matcher()
    save_matcher(m, tmp_path / "ck", train_config={"lr": 2e-4}, train_state={"epoch": 3, "w": torch.ones(2)},
                 extra={"dataset_fingerprint": "abc"})
    back = load_matcher(tmp_path / "ck")
    assert back.config == m.config and back.vocab == m.vocab
    assert torch.equal(scores(back), scores(m))
    cfg = read_checkpoint_config(tmp_path / "ck")
    assert cfg["train"] == {"lr": 2e-4} and cfg["dataset_fingerprint"] == "abc" and cfg["img_dim"] == 6
    state = load_train_state(tmp_path / "ck")
    assert state["epoch"] == 3 and torch.equal(state["w"], torch.ones(2))


def test_replace_is_atomic_and_leaves_no_temp(tmp_path):
    save_matcher(matcher(0), tmp_path / "ck")
    fp0 = checkpoint_fingerprint(tmp_path / "ck")
    assert fp0 == checkpoint_fingerprint(tmp_path / "ck")
    save_matcher(matcher(1), tmp_path / "ck")
    assert checkpoint_fingerprint(tmp_path / "ck") != fp0
    assert torch.equal(scores(load_matcher(tmp_path / "ck")), scores(matcher(1)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]
    assert load_train_state(tmp_path / "ck") is None


def test_missing_and_corrupt(tmp_path):
    assert "not found" in one_line_error(load_matcher, tmp_path / "nope")
    save_matcher(matcher(), tmp_path / "ck")
    w = tmp_path / "ck" / "model.safetensors"
    data = w.read_bytes()
    w.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in one_line_error(load_matcher, tmp_path / "ck")
    w.write_bytes(b"\x00" * 7)
    one_line_error(load_matcher, tmp_path / "ck")
    w.unlink()
    assert "model.safetensors" in one_line_error(load_matcher, tmp_path / "ck")
    (tmp_path / "ck" / "config.json").write_text("{not json")
    assert "not valid JSON" in one_line_error(load_matcher, tmp_path / "ck")
    (tmp_path / "ck" / "config.json").unlink()
    one_line_error(load_matcher, tmp_path / "ck")


def test_config_that_does_not_match_weights(tmp_path):
    import json

    save_matcher(matcher(), tmp_path / "ck")
    f = tmp_path / "ck" / "config.json"
    cfg = json.loads(f.read_text())
    cfg["matcher"]["embed_size"] = 16
    f.write_text(json.dumps(cfg))
    assert "shape" in one_line_error(load_matcher, tmp_path / "ck")
    cfg["matcher"]["embed_size"] = 8
    cfg["matcher"]["text"]["num_layers"] = 2
    f.write_text(json.dumps(cfg))
    assert "missing" in one_line_error(load_matcher, tmp_path / "ck")
    cfg["matcher"]["text"]["num_layers"] = 1
    cfg["matcher"]["bogus"] = 1
    f.write_text(json.dumps(cfg))
    assert "bogus" in one_line_error(load_matcher, tmp_path / "ck")
    del cfg["matcher"]["bogus"]
    cfg["vocab"]["word2idx"]["zebra"] = len(cfg["vocab"]["word2idx"])  # vocabulary larger than the embedding
    f.write_text(json.dumps(cfg))
    assert "shape" in one_line_error(load_matcher, tmp_path / "ck")


def test_train_state_is_never_unpickled(tmp_path):
    save_matcher(matcher(), tmp_path / "ck", train_state={"epoch": 1})
    torch.save({"obj": SimpleNamespace(a=1)}, tmp_path / "ck" / "train_state.pt")  # arbitrary object: refused
    one_line_error(load_train_state, tmp_path / "ck")


def test_check_compatible_feature_size(tmp_path):
    m = matcher()
    check_compatible(m, SimpleNamespace(features=np.zeros((2, 4, 6)), folder=Path("d"), split="test"))
    msg = one_line_error(check_compatible, m, SimpleNamespace(features=np.zeros((2, 4, 9)), folder=Path("d"),
                                                                split="test"))
    assert "6" in msg and "9" in msg
