"""Matcher configuration: frozen dataclasses, validated on construction, unknown keys rejected.

``MatcherConfig.to_dict()`` is what a checkpoint's ``config.json`` stores under ``"matcher"``;
``MatcherConfig.from_dict()`` rebuilds it through the library's one config parser
(:func:`causmatch.config.from_dict`, which also reads training configs and ``--set`` overrides) and
raises :class:`ConfigError` (one line) on an unknown key or a bad value, so a typo in a config file never
silently falls back to a default. Keys a config was written without take their defaults (old checkpoints
load with the behaviour they had).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from causmatch.config import from_dict
from causmatch.data.vocab import DEFAULT_TOKENIZER, TOKENIZERS
from causmatch.errors import ConfigError

TEXT_ENCODERS = ("gru", "hf")
DIRECTIONS = ("t2i", "i2t", "both")
# SCAN's raw_feature_norm values (its func_attention): how the word-region sims are normalised over the
# queries before the softmax over keys. "clipped" = leaky ReLU(0.1) only; "clipped_*" = leaky ReLU, then the norm.
NORMS = ("clipped_l2norm", "l2norm", "softmax", "no_norm", "clipped", "l1norm", "clipped_l1norm")
AGGS = ("lse", "mean", "max", "sum")  # SCAN's agg_func LogSumExp, Mean, Max, Sum over the queries
# The similarity head on top of the t2i attention: SCAN's pooled cosine relevance, or SGRAF's (Diao et al. 2021)
# similarity vectors reasoned over by a graph (sgr) or weighted by attention filtration (saf); see sgraf.py.
SIMILARITIES = ("scan", "saf", "sgr")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not valid — choose one of: {', '.join(choices)}")


def _check_positive(name: str, value: Any, *, integer: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
        what = "a positive integer" if integer else "a positive number"
        raise ConfigError(f"{name}={value!r} is not valid — give {what}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}={value!r} is not valid — give true or false")


class _Config:
    """``to_dict`` / ``from_dict`` of a config dataclass (the one parser: :func:`causmatch.config.from_dict`)."""

    _prefix = ""  # the section's name in messages ("text.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict):
        return from_dict(cls, d, prefix=cls._prefix)


@dataclass(frozen=True)
class TextConfig(_Config):
    """Text encoder: ``gru`` (SCAN's word embedding + GRU) or ``hf`` (a local Hugging Face folder)."""

    encoder: str = "gru"
    word_dim: int = 300          # GRU word-embedding size
    num_layers: int = 1          # GRU layers
    bidirectional: bool = True   # GRU: the two directions are averaged, as in SCAN
    path: str | None = None      # hf: the model folder (config.json, weights, tokenizer)
    freeze: bool = False         # hf: keep the transformer's weights fixed (only the projection trains)
    start_end: bool = False      # gru: wrap tokens in <start>/<end> (SCAN's vocabulary convention)
    tokenizer: str = DEFAULT_TOKENIZER  # "regex" or "nltk" (SCAN's); configs without it used "regex"
    _prefix = "text."

    def __post_init__(self):
        _check_choice("text.encoder", self.encoder, TEXT_ENCODERS)
        _check_choice("text.tokenizer", self.tokenizer, TOKENIZERS)
        _check_positive("text.word_dim", self.word_dim, integer=True)
        _check_positive("text.num_layers", self.num_layers, integer=True)
        for name in ("bidirectional", "freeze", "start_end"):
            _check_bool(f"text.{name}", getattr(self, name))
        if self.encoder == "hf" and not self.path:
            raise ConfigError("text.encoder=hf needs text.path — the folder of a Hugging Face model")
        if self.path is not None and not isinstance(self.path, str):
            raise ConfigError(f"text.path={self.path!r} is not valid — give a folder path as a string")



@dataclass(frozen=True)
class AttentionConfig(_Config):
    """Cross attention (SCAN's options): direction, similarity normalisation, temperatures, pooling."""

    direction: str = "t2i"
    norm: str = "clipped_l2norm"
    lambda_softmax: float = 9.0   # temperature of the softmax over keys
    agg: str = "lse"
    lambda_lse: float = 6.0       # temperature of the LogSumExp pooling over queries
    _prefix = "attention."

    def __post_init__(self):
        _check_choice("attention.direction", self.direction, DIRECTIONS)
        _check_choice("attention.norm", self.norm, NORMS)
        _check_choice("attention.agg", self.agg, AGGS)
        _check_positive("attention.lambda_softmax", self.lambda_softmax)
        _check_positive("attention.lambda_lse", self.lambda_lse)



@dataclass(frozen=True)
class MatcherConfig(_Config):
    """Everything needed to rebuild a :class:`~causmatch.models.Matcher` (besides vocabulary and weights)."""

    img_dim: int
    embed_size: int = 1024
    img_norm: bool = True        # l2-normalise the projected regions (SCAN: not no_imgnorm)
    txt_norm: bool = True        # l2-normalise the word features (SCAN: not no_txtnorm)
    text: TextConfig = field(default_factory=TextConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    similarity: str = "scan"     # the head: "scan" (pooled relevance), "saf" or "sgr" (SGRAF; sgraf.py)
    sim_dim: int = 256           # saf/sgr: size of the similarity vectors (SGRAF's sim_dim)
    sgr_step: int = 3            # sgr: graph-reasoning steps (SGRAF's sgr_step)
    num_region: int = 36         # saf/sgr: region slots of the visual self-attention's batch norm (SGRAF: 36)

    def __post_init__(self):
        self._check_img_dim()
        _check_positive("embed_size", self.embed_size, integer=True)
        _check_bool("img_norm", self.img_norm)
        _check_bool("txt_norm", self.txt_norm)
        _check_choice("similarity", self.similarity, SIMILARITIES)
        _check_positive("sim_dim", self.sim_dim, integer=True)
        _check_positive("sgr_step", self.sgr_step, integer=True)
        _check_positive("num_region", self.num_region, integer=True)
        # Accept nested dicts so MatcherConfig(**json) works; store the frozen dataclasses.
        object.__setattr__(self, "text", TextConfig.from_dict(self.text))
        object.__setattr__(self, "attention", AttentionConfig.from_dict(self.attention))
        if self.similarity != "scan" and self.attention.direction != "t2i":
            raise ConfigError(f"similarity={self.similarity} builds on the t2i attention only (SGRAF's), not "
                              f"attention.direction={self.attention.direction} — set attention.direction=t2i")

    def _check_img_dim(self) -> None:
        _check_positive("img_dim", self.img_dim, integer=True)

    @classmethod
    def from_dict(cls, d: dict) -> "MatcherConfig":
        if isinstance(d, dict) and "img_dim" not in d:
            raise ConfigError("matcher config has no img_dim — give the region-feature size")
        return super().from_dict(d)

    def replace(self, **changes) -> "MatcherConfig":
        """A copy with some top-level fields changed (validated again)."""
        return dataclasses.replace(self, **changes)
