"""Training configuration: a frozen dataclass, JSON files and ``--set key=value`` overrides.

Resolution order (later wins): field defaults → ``--config FILE`` (JSON, nested objects for
sections) → ``--model causmatch|scan`` → ``--set dotted.key=value``. Unknown keys and
values of the wrong type raise a one-line :class:`~causmatch.errors.ConfigError`.
The resolved config is saved in the checkpoint's ``config.json`` (``TrainConfig.to_dict``).
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from causmatch.errors import ConfigError
from causmatch.interventions import COUNTERFACTUAL_KINDS
from causmatch.losses import EFFECT_LOSSES, EFFECT_VIOLATIONS
from causmatch.models import AttentionConfig, MatcherConfig, TextConfig

LR_SCHEDULES = ("step", "cosine", "constant")
AMP_MODES = ("off", "bf16", "fp16")
MODEL_PRESETS = ("causmatch", "scan")
DEFAULT_LAMBDA_EFF = 1.0


@dataclass(frozen=True)
class ModelSection:
    """The ``model`` section: :class:`MatcherConfig`'s fields, with ``img_dim = 0`` meaning
    "take the region-feature size from the data" (MatcherConfig itself needs a real size)."""

    img_dim: int = 0
    embed_size: int = 1024
    img_norm: bool = True
    txt_norm: bool = True
    text: TextConfig = field(default_factory=TextConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)

    def __post_init__(self):
        if isinstance(self.img_dim, bool) or not isinstance(self.img_dim, int) or self.img_dim < 0:
            raise ConfigError(f"model.img_dim={self.img_dim!r} is not valid — give 0 (from the data) or a size")
        self.matcher_config(self.img_dim or 1)  # validate the other fields now, not at training time

    def matcher_config(self, img_dim: int) -> MatcherConfig:
        """The MatcherConfig for region features of size ``img_dim``."""
        if self.img_dim and self.img_dim != img_dim:
            raise ConfigError(f"model.img_dim={self.img_dim} but the data's region features have size "
                              f"{img_dim}; set model.img_dim=0 to take it from the data")
        return MatcherConfig(img_dim=img_dim, embed_size=self.embed_size, img_norm=self.img_norm,
                             txt_norm=self.txt_norm, text=self.text, attention=self.attention)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data folder.

    ``model.img_dim = 0`` means "take the region-feature size from the data".
    Learning rate: ``step`` multiplies it by ``lr_decay`` every ``lr_decay_epochs`` epochs
    (SCAN: 2e-4, ×0.1 after 15 epochs); ``cosine`` anneals it per step to 0 over the run;
    ``constant`` keeps it. ``lambda_eff = 0`` trains the SCAN baseline with the same code.
    ``amp`` only acts on CUDA (bf16 autocast, or fp16 autocast with a GradScaler).
    ``captions_per_epoch = N > 0`` makes an epoch a fresh random sample of N captions (0 = all),
    for short runs on CPU; ``val_limit_images = N > 0`` validates on the first N dev images.
    """

    model: ModelSection = field(default_factory=ModelSection)
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-4
    lr_schedule: str = "step"
    lr_decay_epochs: int = 15
    lr_decay: float = 0.1
    weight_decay: float = 0.0
    grad_clip: float = 2.0
    lambda_eff: float = DEFAULT_LAMBDA_EFF
    counterfactual: str = "random"
    margin: float = 0.2
    max_violation: bool = True
    effect_margin: float | None = None
    effect_violation: str | None = None
    effect_loss: str = "hinge"
    effect_temperature: float = 0.01
    effect_warmup_epochs: int = 0
    seed: int = 0
    workers: int = 0
    captions_per_epoch: int = 0
    val_every: int = 1
    val_limit_images: int = 0
    vocab_min_count: int = 1
    amp: str = "bf16"

    def __post_init__(self):
        checks = [
            (self.epochs >= 1, "epochs must be >= 1"),
            (self.batch_size >= 2, "batch_size must be >= 2 (the loss needs in-batch negatives)"),
            (self.lr > 0, "lr must be > 0"),
            (self.lr_schedule in LR_SCHEDULES, f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}"),
            (self.lr_decay_epochs >= 1, "lr_decay_epochs must be >= 1"),
            (self.grad_clip >= 0, "grad_clip must be >= 0 (0 turns clipping off)"),
            (self.lambda_eff >= 0, "lambda_eff must be >= 0 (0 = SCAN baseline)"),
            (self.counterfactual in COUNTERFACTUAL_KINDS,
             f"counterfactual must be one of {', '.join(COUNTERFACTUAL_KINDS)}"),
            (self.margin >= 0, "margin must be >= 0"),
            (self.effect_margin is None or self.effect_margin >= 0, "effect_margin must be >= 0 (or null = margin)"),
            (self.effect_violation in (None, *EFFECT_VIOLATIONS),
             f"effect_violation must be null (as max_violation) or one of {', '.join(EFFECT_VIOLATIONS)}"),
            (self.effect_loss in EFFECT_LOSSES, f"effect_loss must be one of {', '.join(EFFECT_LOSSES)}"),
            (self.effect_temperature > 0, "effect_temperature must be > 0"),
            (self.effect_warmup_epochs >= 0, "effect_warmup_epochs must be >= 0"),
            (self.workers >= 0 and self.val_every >= 1 and self.val_limit_images >= 0
             and self.captions_per_epoch >= 0,
             "workers, captions_per_epoch and val_limit_images must be >= 0, val_every >= 1"),
            (self.vocab_min_count >= 1, "vocab_min_count must be >= 1"),
            (self.amp in AMP_MODES, f"amp must be one of {', '.join(AMP_MODES)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"bad training config: {message}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _first_option(tp, convert, what: str):
    """The first non-None member of the union ``tp`` that ``convert`` accepts (ConfigError when none does)."""
    for option in typing.get_args(tp):
        if option is type(None):
            continue
        try:
            return convert(option)
        except ConfigError:
            continue
    raise ConfigError(f"{what}: expected {tp}")


def _parse_scalar(text: str, tp, key: str):
    """Parse ``text`` (from ``--set``) as type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if text.lower() in ("none", "null"):
            return None
        return _first_option(tp, lambda option: _parse_scalar(text, option, key), f"bad value '{text}' for {key}")
    if origin is typing.Literal:
        if text not in [str(a) for a in typing.get_args(tp)]:
            raise ConfigError(f"bad value '{text}' for {key}: choose one of {typing.get_args(tp)}")
        return text
    if tp is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"bad value '{text}' for {key}: expected true or false")
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            raise ConfigError(f"bad value '{text}' for {key}: expected {_type_name(tp)}") from None
    return text


def _check_json_value(value, tp, key: str):
    """Type-check a value read from a JSON file (ints are accepted for floats)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(tp):
            return None
        return _first_option(tp, lambda option: _check_json_value(value, option, key), f"bad value {value!r} for {key}")
    if origin is typing.Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"bad value {value!r} for {key}: choose one of {typing.get_args(tp)}")
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(tp, type) and not (isinstance(value, tp) and not (tp is int and isinstance(value, bool))):
        raise ConfigError(f"bad value {value!r} for {key}: expected {_type_name(tp)}")
    return value


def _field_types(obj) -> dict:
    return typing.get_type_hints(type(obj))


def _unknown(key: str, obj) -> ConfigError:
    names = ", ".join(f.name for f in dataclasses.fields(obj))
    return ConfigError(f"unknown config key '{key}'; valid keys here: {names}")


def _rebuild(obj, changes: dict):
    try:
        return dataclasses.replace(obj, **changes)
    except (TypeError, ValueError) as err:  # a section's own validation
        raise ConfigError(f"bad config value: {err}") from None
    # ConfigError from a section's __post_init__ passes through unchanged


def merge_dict(obj, data: dict, prefix: str = ""):
    """Return ``obj`` (a dataclass) with the values of nested dict ``data`` applied."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{prefix.rstrip('.') or 'top level'}' must be a JSON object")
    hints, changes = _field_types(obj), {}
    for key, value in data.items():
        if key not in hints:
            raise _unknown(prefix + key, obj)
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            changes[key] = merge_dict(current, value, prefix + key + ".")
        else:
            changes[key] = _check_json_value(value, hints[key], prefix + key)
    return _rebuild(obj, changes)


def apply_override(obj, assignment: str):
    """Apply one ``dotted.key=value`` to dataclass ``obj`` and return the new object."""
    if "=" not in assignment:
        raise ConfigError(f"bad --set '{assignment}': write it as key=value, e.g. --set lambda_eff=0")
    key, text = assignment.split("=", 1)
    return _set_path(obj, key.strip().split("."), text.strip(), key.strip())


def _set_path(obj, parts: list[str], text: str, full_key: str):
    hints = _field_types(obj)
    head = parts[0]
    if head not in hints:
        raise _unknown(full_key, obj)
    current = getattr(obj, head)
    if len(parts) > 1:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"unknown config key '{full_key}': '{head}' is not a section")
        return _rebuild(obj, {head: _set_path(current, parts[1:], text, full_key)})
    if dataclasses.is_dataclass(current):
        raise ConfigError(f"'{full_key}' is a section: set one of its keys, e.g. {full_key}.<key>=value")
    return _rebuild(obj, {head: _parse_scalar(text, hints[head], full_key)})


def load_config_file(path: str | Path) -> dict:
    """Read a JSON config file into a dict (ConfigError when missing or not JSON)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found — pass an existing JSON file to --config")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {path} is not valid JSON ({err.msg if hasattr(err, 'msg') else err})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a JSON object")
    return data


def resolve_config(config_file: str | Path | None = None, overrides: list[str] = (),
                   model: str | None = None, base: TrainConfig | None = None) -> TrainConfig:
    """Defaults → config file → ``model`` preset → ``--set`` overrides (see module docstring).

    ``model="scan"`` sets ``lambda_eff = 0``; ``model="causmatch"`` keeps a positive
    ``lambda_eff`` from the file, else uses the default.
    """
    cfg = base or TrainConfig()
    if config_file is not None:
        cfg = merge_dict(cfg, load_config_file(config_file))
    if model is not None:
        if model not in MODEL_PRESETS:
            raise ConfigError(f"unknown --model '{model}'; choose causmatch or scan")
        lam = 0.0 if model == "scan" else (cfg.lambda_eff if cfg.lambda_eff > 0 else DEFAULT_LAMBDA_EFF)
        cfg = dataclasses.replace(cfg, lambda_eff=lam)
    for assignment in overrides:
        cfg = apply_override(cfg, assignment)
    return cfg


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a saved config (``TrainConfig.to_dict()`` output); unknown keys rejected."""
    return merge_dict(TrainConfig(), data)
