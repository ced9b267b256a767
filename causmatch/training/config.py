"""Training configuration: a frozen dataclass, JSON files and ``--set key=value`` overrides.

The ``model`` section is :class:`~causmatch.models.MatcherConfig` (``img_dim = 0``: from the data), and files,
overrides and saved configs are read by the library's one config parser (:mod:`causmatch.config`).
Resolution order (later wins): field defaults → ``--config FILE`` (JSON, nested objects for
sections) → ``--model causmatch|scan`` → ``--set dotted.key=value``. Unknown keys and
values of the wrong type raise a one-line :class:`~causmatch.errors.ConfigError`.
The resolved config is saved in the checkpoint's ``config.json`` (``TrainConfig.to_dict``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from causmatch.config import apply_override, from_dict, load_config_file
from causmatch.counter_hash import SEED_MAX
from causmatch.errors import ConfigError
from causmatch.interventions import COUNTERFACTUAL_KINDS
from causmatch.losses import EFFECT_LOSSES, EFFECT_VIOLATIONS
from causmatch.models import MatcherConfig

__all__ = ["ModelSection", "TrainConfig", "apply_override", "config_from_dict", "load_config_file", "merge_dict",
           "resolve_config"]

LR_SCHEDULES = ("step", "cosine", "constant")
AMP_MODES = ("off", "bf16", "fp16")
MODEL_PRESETS = ("causmatch", "scan")
DEFAULT_LAMBDA_EFF = 1.0


@dataclass(frozen=True)
class ModelSection(MatcherConfig):
    """The ``model`` section: :class:`MatcherConfig` itself (its fields, sections and validation, inherited),
    except that ``img_dim = 0`` (the default) means "take the region-feature size from the data"."""

    img_dim: int = 0

    def _check_img_dim(self) -> None:
        if isinstance(self.img_dim, bool) or not isinstance(self.img_dim, int) or self.img_dim < 0:
            raise ConfigError(f"model.img_dim={self.img_dim!r} is not valid — give 0 (from the data) or a size")

    def matcher_config(self, img_dim: int) -> MatcherConfig:
        """The MatcherConfig for region features of size ``img_dim``."""
        if self.img_dim and self.img_dim != img_dim:
            raise ConfigError(f"model.img_dim={self.img_dim} but the data's region features have size "
                              f"{img_dim}; set model.img_dim=0 to take it from the data")
        return MatcherConfig(**{**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                                "img_dim": img_dim})


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the data folder.

    ``model.img_dim = 0`` means "take the region-feature size from the data".
    Learning rate: ``step`` multiplies it by ``lr_decay`` every ``lr_decay_epochs`` epochs
    (SCAN: 2e-4, ×0.1 after 15 epochs); ``cosine`` anneals it per step to 0 over the run;
    ``constant`` keeps it. ``lambda_eff = 0`` trains the SCAN baseline with the same code.
    ``max_violation_warmup_epochs = N > 0`` (with ``max_violation``) sums the ranking violations over all
    in-batch negatives for the first N epochs and keeps only the hardest negative after (VSE++'s practice;
    0 = hardest from the start).
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
    max_violation_warmup_epochs: int = 0
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
            (not isinstance(self.max_violation_warmup_epochs, bool) and self.max_violation_warmup_epochs >= 0,
             "max_violation_warmup_epochs must be >= 0 (0 = hardest negatives from the start)"),
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
            (not isinstance(self.seed, bool) and isinstance(self.seed, int) and 0 <= self.seed <= SEED_MAX,
             f"seed must be a whole number in 0..{SEED_MAX} (it seeds torch, the data order and the "
             f"counterfactual's draws), got {self.seed!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"bad training config: {message}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def merge_dict(obj, data: dict, prefix: str = ""):
    """Config ``obj`` with the values of the nested dict ``data`` applied (:func:`causmatch.config.from_dict`)."""
    return from_dict(type(obj), data, obj, prefix)


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
    """Rebuild a saved config (``TrainConfig.to_dict()`` output); unknown keys rejected, keys left out default."""
    return from_dict(TrainConfig, data, TrainConfig())
