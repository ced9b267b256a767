"""Training: config (frozen dataclasses + ``--set``), the loop, and ``torchrun`` support."""
from causmatch.training.config import ModelSection, TrainConfig, resolve_config
from causmatch.training.trainer import Trainer, train

__all__ = ["ModelSection", "TrainConfig", "resolve_config", "Trainer", "train"]
