"""Configs: frozen, validated, dict round trip, unknown keys rejected with one line."""
import dataclasses

import pytest

from causmatch.errors import ConfigError
from causmatch.models import AttentionConfig, MatcherConfig, TextConfig


def test_round_trip_and_frozen():
    cfg = MatcherConfig(img_dim=128, embed_size=256, attention=AttentionConfig(direction="both", agg="mean"))
    assert MatcherConfig.from_dict(cfg.to_dict()) == cfg
    assert isinstance(MatcherConfig(**cfg.to_dict()).text, TextConfig)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.embed_size = 3


@pytest.mark.parametrize("d", [
    {"img_dim": 4, "bogus": 1},
    {"img_dim": 4, "attention": {"norm": "l3norm"}},
    {"img_dim": 4, "attention": {"lambda_lse": 0}},
    {"img_dim": 4, "text": {"encoder": "hf"}},
    {"img_dim": 4, "text": {"wrod_dim": 3}},
    {"img_dim": -1},
    {"embed_size": 4},
    {"img_dim": 4, "img_norm": "yes"},
    {"img_dim": 4, "txt_norm": 1},
    {"img_dim": 4, "text": {"tokenizer": "spacy"}},
    {"img_dim": 4, "text": {"tokenizer": None}},
    {"img_dim": 4, "attention": {"agg": "Max"}},
])
def test_bad_configs_are_one_line_config_errors(d):
    with pytest.raises(ConfigError) as err:
        MatcherConfig.from_dict(d)
    assert "\n" not in str(err.value)


def test_configs_without_the_newer_settings_keep_the_old_behaviour():
    """A config.json written before ``text.tokenizer`` and ``txt_norm`` existed (the demo checkpoints) loads
    with the regex tokenizer and l2-normalised words, the only behaviour there was."""
    old = {"img_dim": 4, "embed_size": 8, "img_norm": True,
           "text": {"encoder": "gru", "word_dim": 6, "num_layers": 1, "bidirectional": True, "path": None,
                    "freeze": False, "start_end": False},
           "attention": {"direction": "t2i", "norm": "clipped_l2norm", "lambda_softmax": 9.0, "agg": "lse",
                         "lambda_lse": 6.0}}
    cfg = MatcherConfig.from_dict(old)
    assert cfg.text.tokenizer == "regex" and cfg.txt_norm is True
    new = cfg.to_dict()
    assert new["text"]["tokenizer"] == "regex" and new["txt_norm"] is True  # every new checkpoint records them
    nltk = MatcherConfig.from_dict({**old, "txt_norm": False, "text": {**old["text"], "tokenizer": "nltk"},
                                    "attention": {**old["attention"], "norm": "clipped", "agg": "max"}})
    assert MatcherConfig.from_dict(nltk.to_dict()) == nltk


@pytest.mark.parametrize("d, match", [
    ({"img_dim": 4, "bogus": 1}, "unknown config key 'bogus'; valid keys here: img_dim, embed_size"),
    ({"img_dim": 4, "text": {"wrod_dim": 3}}, "unknown config key 'text.wrod_dim'; valid keys here: encoder"),
    ({"img_dim": "4"}, "bad value '4' for img_dim: expected int"),
    ({"img_dim": 4, "attention": []}, "config section 'attention' must be a JSON object"),
    (None, "must be a JSON object"),
])
def test_matcher_configs_are_read_by_the_one_config_parser(d, match):
    """The messages of causmatch.config, the parser the training config and --set use too."""
    with pytest.raises(ConfigError, match=match) as err:
        MatcherConfig.from_dict(d)
    assert "\n" not in str(err.value)


def test_an_int_is_read_as_a_float_and_a_config_round_trips_through_json():
    import json

    cfg = MatcherConfig.from_dict({"img_dim": 4, "attention": {"lambda_softmax": 9}})
    assert cfg.attention.lambda_softmax == 9.0 and isinstance(cfg.attention.lambda_softmax, float)
    assert MatcherConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
