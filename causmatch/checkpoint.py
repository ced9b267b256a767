"""Checkpoints: a directory with ``config.json``, ``model.safetensors`` and optionally ``train_state.pt``.

Written atomically (a temporary directory beside the target, then renamed). Loading is strict and
never unpickles anything implicitly: weights come from safetensors, and the optional training state is
read with ``torch.load(weights_only=True)``. Every problem is a one-line :class:`CheckpointError`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import torch

from causmatch.errors import CausMatchError, CheckpointError
from causmatch.models import Matcher, MatcherConfig

FORMAT = "causmatch-checkpoint"
FORMAT_VERSION = 1
CONFIG, WEIGHTS, TRAIN_STATE = "config.json", "model.safetensors", "train_state.pt"


def _plain(obj):
    """A JSON-ready version of a config (dataclass or object with ``to_dict``) or dict."""
    if obj is None or isinstance(obj, dict):
        return obj
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if dataclasses.is_dataclass(obj):
        return dataclasses.asdict(obj)
    raise CheckpointError(f"cannot store a {type(obj).__name__} in config.json — pass a dict or a dataclass")


def save_matcher(matcher: Matcher, path, *, train_config=None, train_state: dict | None = None,
                 extra: dict | None = None) -> Path:
    """Write ``matcher`` (config, vocabulary, weights) to the directory ``path``, replacing it atomically.

    ``train_config``: the training settings (dict or dataclass); ``train_state``: a dict of tensors and plain
    values (optimizer state, epoch); ``extra``: anything JSON-ready, e.g. ``{"dataset_fingerprint": ...}``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = {"format": FORMAT, "format_version": FORMAT_VERSION, "matcher": matcher.config.to_dict(),
           "img_dim": matcher.config.img_dim,
           "vocab": matcher.vocab.to_dict() if matcher.vocab is not None else None,
           "text_path": matcher.config.text.path, "train": _plain(train_config),
           "dataset_fingerprint": (extra or {}).get("dataset_fingerprint"), "extra": extra or {}}
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        (tmp / CONFIG).write_text(json.dumps(cfg, indent=2, ensure_ascii=False), encoding="utf-8")
        weights = {k: v.detach().to("cpu").contiguous() for k, v in matcher.state_dict().items()}
        save_file(weights, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        if train_state is not None:
            torch.save(train_state, tmp / TRAIN_STATE)
        _replace_dir(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _replace_dir(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path``; an existing ``path`` is moved aside first and removed only afterwards."""
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(path, old)
    try:
        os.replace(tmp, path)
    except OSError:
        if old is not None:
            os.replace(old, path)  # put the previous checkpoint back
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_checkpoint_config(path) -> dict:
    """The parsed ``config.json`` of a checkpoint directory (CheckpointError if missing or unreadable)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} not found — give a checkpoint directory written by causmatch train")
    f = path / CONFIG
    if not f.is_file():
        raise CheckpointError(f"checkpoint {path} has no {CONFIG} — it is incomplete; retrain or copy it again")
    try:
        cfg = json.loads(f.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{f} is not valid JSON ({type(err).__name__}) — the checkpoint is corrupt") from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT:
        raise CheckpointError(f"{f} is not a CausMatch checkpoint config — for SCAN models use causmatch import-scan")
    if cfg.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{f} has format version {cfg.get('format_version')!r}, this CausMatch reads "
                              f"{FORMAT_VERSION} — upgrade causmatch")
    return cfg


def _read_weights(f: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not f.is_file():
        raise CheckpointError(f"checkpoint {f.parent} has no {WEIGHTS} — it is incomplete; retrain or copy it again")
    try:
        return load_file(str(f))
    except Exception as err:  # safetensors raises its own error types for truncated or corrupt files
        first = (str(err).splitlines() or [type(err).__name__])[0][:120]
        raise CheckpointError(f"{f} cannot be read ({first}) — the file is truncated or corrupt") from None


def _check_state(matcher: Matcher, weights: dict[str, torch.Tensor], where: Path) -> None:
    expected = matcher.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise CheckpointError(f"{where} does not match its config ({len(missing)} missing, {len(unexpected)} "
                              f"unexpected weights, e.g. {what}) — the checkpoint is inconsistent")
    for k, v in expected.items():
        if tuple(weights[k].shape) != tuple(v.shape):
            raise CheckpointError(f"{where}: weight {k} has shape {tuple(weights[k].shape)} but the config needs "
                                  f"{tuple(v.shape)} (vocabulary or sizes differ) — the checkpoint is inconsistent")


def load_matcher(path, map_location="cpu") -> Matcher:
    """Rebuild the matcher from a checkpoint directory alone (strict: every weight present and shaped right)."""
    from causmatch.data import Vocabulary

    path = Path(path)
    cfg = read_checkpoint_config(path)
    try:
        config = MatcherConfig.from_dict(cfg.get("matcher"))
        vocab = Vocabulary.from_dict(cfg["vocab"]) if cfg.get("vocab") is not None else None
        matcher = Matcher.from_config(config, vocab)
    except CausMatchError as err:
        raise CheckpointError(f"{path / CONFIG} cannot be used: {err}") from None
    weights = _read_weights(path / WEIGHTS)
    _check_state(matcher, weights, path / WEIGHTS)
    matcher.load_state_dict(weights, strict=True)
    return matcher.to(map_location).eval()


def load_train_state(path, map_location="cpu") -> dict | None:
    """The ``train_state.pt`` dict of a checkpoint (``weights_only=True``), or None if it has none."""
    f = Path(path) / TRAIN_STATE
    if not f.is_file():
        return None
    try:
        return torch.load(f, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated files or disallowed globals
        first = (str(err).splitlines() or [type(err).__name__])[0][:120]
        raise CheckpointError(f"{f} cannot be read safely ({first}) — resume from another checkpoint") from None


def checkpoint_fingerprint(path) -> str:
    """A stable hash of the checkpoint's config and weights (for caches keyed by checkpoint)."""
    path = Path(path)
    read_checkpoint_config(path)
    h = hashlib.sha256()
    for name in (CONFIG, WEIGHTS):
        f = path / name
        if not f.is_file():
            raise CheckpointError(f"checkpoint {path} has no {name} — it is incomplete; retrain or copy it again")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def check_compatible(matcher: Matcher, split) -> None:
    """CheckpointError if the dataset's region features do not have the size the model was trained on."""
    got = int(split.features.shape[-1])
    if got != matcher.config.img_dim:
        raise CheckpointError(f"the checkpoint expects {matcher.config.img_dim}-dim region features but "
                              f"{split.folder} ({split.split}) has {got} — use a checkpoint trained on this kind "
                              "of features")
