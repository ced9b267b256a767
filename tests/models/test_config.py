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
])
def test_bad_configs_are_one_line_config_errors(d):
    with pytest.raises(ConfigError) as err:
        MatcherConfig.from_dict(d)
    assert "\n" not in str(err.value)
