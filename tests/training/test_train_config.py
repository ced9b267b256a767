"""TrainConfig: defaults, JSON files, --set overrides, presets, one-line errors."""
import dataclasses
import json

import pytest

from causmatch.errors import ConfigError
from causmatch.models import MatcherConfig
from causmatch.training.config import ModelSection, TrainConfig, apply_override, config_from_dict, resolve_config


def test_defaults_follow_scan_and_design():
    cfg = TrainConfig()
    assert (cfg.batch_size, cfg.lr, cfg.grad_clip, cfg.margin) == (128, 2e-4, 2.0, 0.2)
    assert cfg.lambda_eff == 1.0 and cfg.counterfactual == "random" and cfg.max_violation is True


def test_model_section_mirrors_matcher_config():
    assert [f.name for f in dataclasses.fields(ModelSection)] == [f.name for f in dataclasses.fields(MatcherConfig)]
    mc = ModelSection(embed_size=64).matcher_config(12)
    assert isinstance(mc, MatcherConfig) and mc.img_dim == 12 and mc.embed_size == 64
    with pytest.raises(ConfigError, match="img_dim=5"):
        ModelSection(img_dim=5).matcher_config(12)


def test_set_overrides_parse_by_field_type():
    cfg = resolve_config(overrides=["model.attention.lambda_softmax=4", "lambda_eff=0", "epochs=3",
                                    "max_violation=false", "model.text.path=none", "counterfactual=shuffle"])
    assert cfg.model.attention.lambda_softmax == 4.0 and isinstance(cfg.model.attention.lambda_softmax, float)
    assert cfg.lambda_eff == 0.0 and cfg.epochs == 3 and cfg.max_violation is False
    assert cfg.model.text.path is None and cfg.counterfactual == "shuffle"


@pytest.mark.parametrize("assignment, match", [
    ("nope=1", "unknown config key 'nope'"),
    ("model.attention.nope=1", "unknown config key 'model.attention.nope'"),
    ("epochs=two", "expected int"),
    ("max_violation=maybe", "true or false"),
    ("lambda_eff", "key=value"),
    ("model.attention=3", "is a section"),
    ("model.attention.norm=bad", "norm"),
    ("counterfactual=bogus", "counterfactual must be one of"),
    ("lr_schedule=linear", "lr_schedule"),
    ("epochs.x=1", "not a section"),
    ("effect_margin=-0.1", "effect_margin must be >= 0"),
    ("effect_violation=max", "effect_violation must be"),
    ("effect_loss=bce", "effect_loss must be one of"),
    ("effect_temperature=0", "effect_temperature must be > 0"),
    ("effect_warmup_epochs=-1", "effect_warmup_epochs must be >= 0"),
    ("max_violation_warmup_epochs=-1", "max_violation_warmup_epochs must be >= 0"),
    ("max_violation_warmup_epochs=true", "max_violation_warmup_epochs"),
    ("model.img_dim=-1", "model.img_dim=-1 is not valid"),
    ("model.text.word_dim=0", "text.word_dim=0 is not valid"),
    ("seed=-1", r"seed must be a whole number in 0..4294967295"),
    ("seed=4294967296", r"seed must be a whole number in 0..4294967295"),
    ("seed=99999999999999999999999", "seed must be a whole number"),
])
def test_bad_overrides_are_one_line_config_errors(assignment, match):
    with pytest.raises(ConfigError, match=match) as info:
        apply_override(TrainConfig(), assignment)
    assert "\n" not in str(info.value)


def test_json_file_then_model_preset_then_set(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"epochs": 2, "lambda_eff": 0.5, "lr": 1,
                                "model": {"embed_size": 32, "attention": {"agg": "mean"}}}))
    cfg = resolve_config(path)
    assert cfg.epochs == 2 and cfg.lr == 1.0 and cfg.model.embed_size == 32 and cfg.model.attention.agg == "mean"
    assert resolve_config(path, model="causmatch").lambda_eff == 0.5
    assert resolve_config(path, model="scan").lambda_eff == 0.0
    assert resolve_config(path, ["lambda_eff=2"], model="scan").lambda_eff == 2.0
    assert resolve_config(None, ["lambda_eff=0"], model="causmatch").lambda_eff == 0.0
    assert resolve_config(None, model="causmatch", base=TrainConfig(lambda_eff=0)).lambda_eff == 1.0


@pytest.mark.parametrize("content, match", [
    ('{"epochs": "3"}', "expected int"),
    ('{"epochs": true}', "expected int"),
    ('{"model": {"bogus": 1}}', "unknown config key 'model.bogus'"),
    ('{"model": 3}', "must be a JSON object"),
    ('[1, 2]', "JSON object"),
    ('{"epochs": ', "not valid JSON"),
])
def test_bad_files(tmp_path, content, match):
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=match):
        resolve_config(path)


def test_missing_file_and_round_trip(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        resolve_config(tmp_path / "missing.json")
    cfg = resolve_config(overrides=["model.text.word_dim=16", "seed=7"])
    again = config_from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_repo_config_files_load():
    import json
    from pathlib import Path
    paths = sorted(Path(__file__).resolve().parents[2].joinpath("configs").glob("*.json"))
    assert "scenes.json" in [p.name for p in paths], paths  # the demo's config is among them
    for path in paths:
        cfg = resolve_config(path)
        for key, value in json.loads(path.read_text()).items():  # each file's settings are the ones used
            if not isinstance(value, dict):
                assert getattr(cfg, key) == value, (path.name, key)


def test_effect_term_options_parse_and_default_to_the_ranking_terms():
    cfg = TrainConfig()
    assert cfg.effect_margin is None and cfg.effect_violation is None and cfg.effect_loss == "hinge"
    assert cfg.effect_warmup_epochs == 0
    cfg = resolve_config(overrides=["effect_margin=0.05", "effect_violation=sum", "effect_loss=xent",
                                    "effect_temperature=0.02", "effect_warmup_epochs=2"])
    assert (cfg.effect_margin, cfg.effect_violation, cfg.effect_loss) == (0.05, "sum", "xent")
    assert (cfg.effect_temperature, cfg.effect_warmup_epochs) == (0.02, 2)
    assert resolve_config(overrides=["effect_margin=0.1", "effect_margin=none"]).effect_margin is None
    assert config_from_dict(cfg.to_dict()) == cfg


def test_the_model_section_is_the_matcher_config_not_a_copy():
    assert issubclass(ModelSection, MatcherConfig)
    assert [n for n in ModelSection.__annotations__] == ["img_dim"]  # the only field it declares (default 0)
    assert ModelSection().img_dim == 0 and ModelSection(img_dim=7).matcher_config(7).img_dim == 7
    with pytest.raises(ConfigError, match="model.img_dim=-1 is not valid"):
        ModelSection(img_dim=-1)
    with pytest.raises(ConfigError, match="img_dim=0 is not valid"):
        MatcherConfig(img_dim=0)  # only the training section reads 0 as "from the data"
    with pytest.raises(ConfigError, match="attention.agg='Max' is not valid"):  # MatcherConfig's own validators
        resolve_config(overrides=["model.attention.agg=Max"])


@pytest.mark.parametrize("key", ["bogus", "text.wrod_dim", "attention.nope"])
def test_one_parser_one_message_for_json_set_and_checkpoints(tmp_path, key):
    """An unknown key reads the same from a matcher config (a checkpoint), a training JSON file, --set and a
    saved training config: one parser serves them all."""
    section, _, name = key.rpartition(".")
    nested = {name: 1} if not section else {section: {name: 1}}
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"model": nested}))
    messages = []
    for call in (lambda: MatcherConfig.from_dict({"img_dim": 4, **nested}),
                 lambda: resolve_config(path),
                 lambda: resolve_config(overrides=[f"model.{key}=1"]),
                 lambda: config_from_dict({"model": nested})):
        with pytest.raises(ConfigError) as err:
            call()
        messages.append(str(err.value))
    assert all("\n" not in m and "valid keys here" in m for m in messages)
    assert f"unknown config key '{key}'" in messages[0]
    assert all(f"unknown config key 'model.{key}'" in m for m in messages[1:])


@pytest.mark.parametrize("bad, match", [
    ({"embed_size": "64"}, "bad value '64' for model.embed_size: expected int"),
    ({"img_norm": 1}, "expected bool"),
    ({"text": 3}, "config section 'model.text' must be a JSON object"),
    ({"attention": {"lambda_softmax": None}}, "expected float"),
])
def test_json_types_are_checked_alike_in_both_configs(bad, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"model": bad})
    with pytest.raises(ConfigError, match=match.replace("model.", "")):
        MatcherConfig.from_dict({"img_dim": 4, **bad})


def test_saved_checkpoint_configs_still_load():
    """The demo checkpoints' config.json (written before the parser was shared): the matcher section and the
    training section both load, and round-trip unchanged."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "checkpoints"
    found = sorted(root.glob("*/config.json"))
    if not found:
        pytest.skip("no demo checkpoints in this checkout")
    for path in found:
        saved = json.loads(path.read_text())
        mc = MatcherConfig.from_dict(saved["matcher"])
        assert MatcherConfig.from_dict(mc.to_dict()) == mc
        assert mc.to_dict() == {**mc.to_dict(), **{k: v for k, v in saved["matcher"].items() if k not in
                                                   ("text", "attention")}}
        if saved.get("train") is not None:
            tc = config_from_dict(saved["train"])
            assert config_from_dict(tc.to_dict()) == tc
            assert tc.model.matcher_config(mc.img_dim) == mc


def test_max_violation_warmup_defaults_to_off_and_parses():
    assert TrainConfig().max_violation_warmup_epochs == 0
    cfg = resolve_config(overrides=["max_violation_warmup_epochs=1"], model="scan")
    assert (cfg.max_violation_warmup_epochs, cfg.max_violation, cfg.lambda_eff) == (1, True, 0.0)
    assert config_from_dict(cfg.to_dict()) == cfg
    saved = TrainConfig().to_dict()
    del saved["max_violation_warmup_epochs"]  # a checkpoint saved before the key existed
    assert config_from_dict(saved).max_violation_warmup_epochs == 0
