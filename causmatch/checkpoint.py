"""Checkpoints: a directory with ``config.json``, ``model.safetensors`` and optionally ``train_state.pt``.

Written atomically (a temporary directory beside the target, then renamed into place; see
:mod:`causmatch.outputs`), so a kill at any moment leaves the old or the new checkpoint. Loading is strict,
refuses NaN/inf weights, and never unpickles anything implicitly: weights come from safetensors, and the
optional training state is read with ``torch.load(weights_only=True)``. Every problem is a one-line
:class:`CheckpointError`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import torch

from causmatch.errors import CausMatchError, CheckpointError
from causmatch.models import Matcher, MatcherConfig
from causmatch.outputs import (
    check_output_dir,
    crash_point,
    describe_folder,
    is_leftover,
    link_tree,
    os_error_message,
    publish_dir,
    recover_dir,
    stage_dir,
)

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
                 extra: dict | None = None, keep: tuple[str, ...] = (), drop: tuple[str, ...] = (),
                 label: str = "checkpoint") -> Path:
    """Write ``matcher`` (config, vocabulary, weights) to the directory ``path``, replacing it atomically.

    ``train_config``: the training settings (dict or dataclass); ``train_state``: a dict of tensors and plain
    values (optimizer state, epoch); ``extra``: anything JSON-ready, e.g. ``{"dataset_fingerprint": ...}``.
    An existing ``path`` is replaced only if it is a checkpoint directory (its own files, plus the
    sub-folders named in ``keep``, which are carried into the new version by hard links, and in ``drop``,
    which are not); anything else is a :class:`CheckpointError`. ``label`` names the steps for
    :func:`causmatch.outputs.crash_point`.
    """
    from safetensors.torch import save_file

    path = Path(os.path.abspath(Path(path).expanduser()))
    recover_dir(path)
    foreign = _foreign_entries(path, (*keep, *drop))
    if foreign:
        raise CheckpointError(f"{path} is not a checkpoint directory ({foreign}) — it is not replaced; "
                              "choose another path")
    cfg = {"format": FORMAT, "format_version": FORMAT_VERSION, "matcher": matcher.config.to_dict(),
           "img_dim": matcher.config.img_dim,
           "vocab": matcher.vocab.to_dict() if matcher.vocab is not None else None,
           "text_path": matcher.config.text.path, "train": _plain(train_config),
           "dataset_fingerprint": (extra or {}).get("dataset_fingerprint"), "extra": extra or {}}
    text = json.dumps(cfg, indent=2, ensure_ascii=False)
    try:
        with stage_dir(path) as tmp:
            weights = {k: v.detach().to("cpu").contiguous() for k, v in matcher.state_dict().items()}
            save_file(weights, str(tmp / WEIGHTS), metadata={"format": FORMAT})
            crash_point(f"{label}.weights")
            if train_state is not None:
                torch.save(train_state, tmp / TRAIN_STATE)
                crash_point(f"{label}.train_state")
            for name in keep:
                if (path / name).is_dir():
                    link_tree(path / name, tmp / name)
            crash_point(f"{label}.kept")
            (tmp / CONFIG).write_text(text, encoding="utf-8")
            publish_dir(tmp, path, label=label)
    except OSError as err:
        raise CheckpointError(os_error_message(err, path, "write the checkpoint")) from None
    return path


CHECKPOINT_FILES = (CONFIG, WEIGHTS, TRAIN_STATE)


def _foreign_entries(path: Path, keep=()) -> str | None:
    """None if ``path`` is missing, empty or holds only checkpoint files (and ``keep`` folders)."""
    if not os.path.lexists(path):
        return None
    if path.is_symlink() or not path.is_dir():
        return "it is a file"
    names = [n for n in os.listdir(path) if not is_leftover(n)]
    other = sorted(n for n in names if n not in CHECKPOINT_FILES and not (n in keep and (path / n).is_dir()))
    if other:
        return f"it holds {len(other)} other entr{'y' if len(other) == 1 else 'ies'}, e.g. {other[0]}"
    if names and CONFIG in names:
        try:
            read_checkpoint_config(path)
        except CheckpointError:
            return f"its {CONFIG} is not a CausMatch checkpoint config"
    return None


def check_checkpoint_out(out, *, command: str, consent: bool, consent_hint: str = "--overwrite",
                         subdirs: tuple[str, ...] = ()) -> str:
    """May ``causmatch COMMAND`` write the checkpoint directory ``out``? ("new", "empty" or "previous").

    A previous output is a checkpoint directory written by the same command (``checkpoint_origin``), with
    only checkpoint files and the checkpoint sub-folders ``subdirs`` (``last`` for train). See
    :func:`causmatch.outputs.check_output_dir` for the rules.
    """
    out = Path(os.path.abspath(Path(out).expanduser()))
    for sub in subdirs:
        recover_dir(out / sub)

    def recognise(folder: Path, names: list[str]) -> str | None:
        origin = checkpoint_origin(folder) if CONFIG in names else None
        sub_origins = {checkpoint_origin(folder / s) if _foreign_entries(folder / s) is None else "other"
                       for s in ("last",) if s in names}
        if all(n in (CONFIG, WEIGHTS) or n in subdirs for n in names) and sub_origins <= {command}:
            if origin == command or (origin is None and CONFIG not in names and WEIGHTS not in names):
                return None
        train_shaped = all(n in (CONFIG, WEIGHTS, "last") for n in names)
        for kind in ("train", "import-scan", "import-sgraf"):
            if origin == kind or kind in sub_origins:
                return (f"a checkpoint written by causmatch {kind}" if train_shaped else
                        f"a causmatch {kind} checkpoint plus other files ({describe_folder(folder)})")
        if origin is not None:
            return "a checkpoint written by another program"
        return describe_folder(folder)

    return check_output_dir(out, command=command, recognise=recognise, consent=consent, consent_hint=consent_hint)


def checkpoint_origin(path) -> str | None:
    """"train", "import-scan", "import-sgraf" or "checkpoint" for a complete checkpoint directory, None otherwise."""
    path = Path(path)
    try:
        if not (path / WEIGHTS).is_file():
            return None
        cfg = read_checkpoint_config(path)
    except (CheckpointError, OSError):
        return None
    if cfg.get("train") is not None:
        return "train"
    imported = (cfg.get("extra") or {}).get("imported_from")
    if imported:
        return "import-sgraf" if isinstance(imported, dict) and imported.get("format") == "SGRAF" else "import-scan"
    return "checkpoint"


def read_checkpoint_config(path) -> dict:
    """The parsed ``config.json`` of a checkpoint directory (CheckpointError if missing or unreadable)."""
    path = Path(path)
    if not path.is_dir():
        try:
            recover_dir(path)  # a save killed between parking the old version and publishing the new one
        except OSError:
            pass
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


def _check_finite(value: torch.Tensor, what: str, where: Path) -> None:
    """CheckpointError naming ``what`` when the floating-point tensor ``value`` holds NaN or inf."""
    if torch.is_tensor(value) and (value.is_floating_point() or value.is_complex()):
        bad = int((~torch.isfinite(value)).sum())
        if bad:
            raise CheckpointError(f"{where}: {what} holds {bad} NaN/inf value(s) of {value.numel()} — the "
                                  "checkpoint is unusable (training diverged or the file was damaged); use "
                                  "another checkpoint")


def _check_finite_tree(obj, what: str, where: Path) -> None:
    if torch.is_tensor(obj):
        _check_finite(obj, what, where)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _check_finite_tree(v, f"{what}.{k}" if what else str(k), where)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_finite_tree(v, f"{what}[{i}]", where)


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
    for name, value in weights.items():
        _check_finite(value, f"weight {name}", path / WEIGHTS)
    matcher.load_state_dict(weights, strict=True)
    return matcher.to(map_location).eval()


def load_train_state(path, map_location="cpu") -> dict | None:
    """The ``train_state.pt`` dict of a checkpoint (``weights_only=True``), or None if it has none."""
    f = Path(path) / TRAIN_STATE
    if not f.is_file():
        return None
    try:
        state = torch.load(f, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated files or disallowed globals
        first = (str(err).splitlines() or [type(err).__name__])[0][:120]
        raise CheckpointError(f"{f} cannot be read safely ({first}) — resume from another checkpoint") from None
    _check_finite_tree(state, "", f)
    return state


def state_digest(module: torch.nn.Module, h=None) -> str:
    """sha256 of the module's parameters and buffers, in name order (bitwise equality of the weights).
    ``h``: a hash object to continue (what was fed to it first counts too)."""
    h = hashlib.sha256() if h is None else h
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def model_fingerprint(matcher: Matcher) -> str:
    """A stable hash of a matcher's config and weights (for caches of matchers without a checkpoint folder;
    :func:`checkpoint_fingerprint` hashes a folder's files)."""
    h = hashlib.sha256(json.dumps(matcher.config.to_dict(), sort_keys=True, default=str).encode())
    return state_digest(matcher, h)[:16]


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
