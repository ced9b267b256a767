"""Import a SCAN checkpoint (``model_best.pth.tar`` + vocabulary JSON) as a CausMatch checkpoint.

SCAN (Lee et al., ECCV 2018) saves ``torch.save({"model": [img_enc.state_dict(),
txt_enc.state_dict()], "opt": argparse.Namespace, "epoch", "best_rsum", "Eiters"})``.
Our :class:`~causmatch.models.Matcher` uses SCAN's own module names (``fc``, ``embed``,
``rnn``) under ``img_enc.`` / ``txt_enc.``, so the weights map one to one; the options map
to a :class:`MatcherConfig`. Every option SCAN's ``train.py`` runs with maps: ``cross_attn`` t2i/i2t, all
``raw_feature_norm`` values of its ``func_attention``, the four ``agg_func``, ``no_imgnorm``, ``no_txtnorm``,
``bi_gru``, ``num_layers``, ``precomp_enc_type`` basic and weight_norm (folded into one weight). The imported
model tokenizes with ``"nltk"`` (SCAN's ``word_tokenize``), so its vocabulary lines up. A value SCAN itself
would reject (another ``cross_attn``, an unknown norm or pooling, another encoder type) is refused with a
one-line error instead of producing a model whose scores silently differ from SCAN's.
"""
from __future__ import annotations

import argparse
import numbers
import pickle
import zipfile
from pathlib import Path

import torch

from causmatch.convert import safe_unpickle
from causmatch.data import Vocabulary
from causmatch.errors import CheckpointError
from causmatch.models import AttentionConfig, Matcher, MatcherConfig, TextConfig
from causmatch.models.config import NORMS

AGG = {"LogSumExp": "lse", "Mean": "mean", "Max": "max", "Sum": "sum"}
ENCODER_TYPES = ("basic", "weight_norm")


def read_torch_checkpoint(path: str | Path, *, allow_pickle: bool = False, fmt: str = "SCAN") -> tuple[dict, list]:
    """Unpickle (restricted) a SCAN-family ``torch.save`` file → ``(opt as dict, the 'model' list)``.

    ``fmt`` names the family in the one-line errors; the caller checks how many state dicts ``model`` holds.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{fmt} checkpoint {path} not found — check --checkpoint")
    if not allow_pickle:
        raise CheckpointError(f"{path.name} is a pickle (torch.save) file and unpickling can run arbitrary "
                              "code — pass --allow-pickle if you trust its source (only the types a "
                              f"{fmt} checkpoint holds are then accepted)")
    try:
        data = torch.load(path, map_location="cpu", pickle_module=safe_unpickle, weights_only=False)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError, OSError,
            IndexError, KeyError, AttributeError, TypeError) as err:
        first = (str(err).splitlines() or [type(err).__name__])[0][:120]
        raise CheckpointError(f"{path.name} is truncated or not a torch checkpoint ({first}) — "
                              "download or copy it again") from None
    model = data.get("model") if isinstance(data, dict) else None
    if not (isinstance(model, (list, tuple)) and all(isinstance(m, dict) for m in model)):
        model = None
    opt = data.get("opt") if isinstance(data, dict) else None
    if isinstance(opt, argparse.Namespace):
        opt = vars(opt)
    return (opt if isinstance(opt, dict) else None), (list(model) if model is not None else None)


def read_scan_checkpoint(path: str | Path, *, allow_pickle: bool = False) -> tuple[dict, dict, dict]:
    """Unpickle (restricted) a SCAN checkpoint → ``(opt as dict, img_enc state, txt_enc state)``."""
    opt, model = read_torch_checkpoint(path, allow_pickle=allow_pickle, fmt="SCAN")
    name = Path(path).name
    if model is not None and len(model) == 3:
        raise CheckpointError(f"{name} holds three state dicts (image, text and similarity encoders): it is an "
                              "SGRAF checkpoint — use causmatch import-sgraf")
    if model is None or len(model) != 2:
        raise CheckpointError(f"{name} has no 'model' entry holding [image-encoder, text-encoder] "
                              "state dicts — is it a SCAN checkpoint?")
    if opt is None:
        raise CheckpointError(f"{name} has no 'opt' namespace of training options — is it a SCAN checkpoint?")
    return opt, dict(model[0]), dict(model[1])


def _need(opt: dict, key: str, fmt: str = "SCAN"):
    if key not in opt:
        raise CheckpointError(f"the {fmt} options have no '{key}' — the checkpoint is not from {fmt}'s train.py")
    return opt[key]


def _refuse(what: str) -> None:
    raise CheckpointError(f"unsupported SCAN option {what} — SCAN's own code does not run with it either, so "
                          "it is not imported")


def _number(opt: dict, key: str, default=None, kind=float, fmt: str = "SCAN"):
    """A positive option (``default`` None: required); a one-line CheckpointError for anything else."""
    value = _need(opt, key, fmt) if default is None else opt.get(key, default)
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < float("inf") \
            or (kind is int and value != int(value)):
        what = "positive integer" if kind is int else "positive number"
        raise CheckpointError(f"the {fmt} option {key}={value!r} is not a {what} — the checkpoint's "
                              "options are damaged")
    return kind(value)


def _flag(opt: dict, key: str, fmt: str = "SCAN") -> bool:
    value = opt.get(key, False)
    if not isinstance(value, (bool, numbers.Integral)) or value not in (0, 1):
        raise CheckpointError(f"the {fmt} option {key}={value!r} is not true or false — the checkpoint's "
                              "options are damaged")
    return bool(value)


def gru_text_config(opt: dict, fmt: str = "SCAN") -> TextConfig:
    """The GRU text encoder SCAN and its descendants train: ``<start>``/``<end>``, NLTK tokens."""
    return TextConfig(encoder="gru", word_dim=_number(opt, "word_dim", kind=int, fmt=fmt),
                      num_layers=_number(opt, "num_layers", 1, int, fmt=fmt), bidirectional=_flag(opt, "bi_gru", fmt),
                      start_end=True, tokenizer="nltk")


def scan_matcher_config(opt: dict) -> MatcherConfig:
    """SCAN's ``opt`` → :class:`MatcherConfig` (GRU text with <start>/<end>, NLTK tokens; CheckpointError if
    an option is one SCAN's own code would reject)."""
    direction, norm, agg = _need(opt, "cross_attn"), _need(opt, "raw_feature_norm"), _need(opt, "agg_func")
    if direction not in ("t2i", "i2t"):
        _refuse(f"cross_attn={direction!r} (t2i or i2t)")
    if norm not in NORMS:
        _refuse(f"raw_feature_norm={norm!r} (SCAN's are: {', '.join(NORMS)})")
    if agg not in AGG:
        _refuse(f"agg_func={agg!r} (SCAN's are: {', '.join(AGG)})")
    if opt.get("precomp_enc_type", "basic") not in ENCODER_TYPES:
        _refuse(f"precomp_enc_type={opt['precomp_enc_type']!r} (basic or weight_norm)")
    return MatcherConfig(
        img_dim=_number(opt, "img_dim", kind=int), embed_size=_number(opt, "embed_size", kind=int),
        img_norm=not _flag(opt, "no_imgnorm"), txt_norm=not _flag(opt, "no_txtnorm"),
        text=gru_text_config(opt),
        attention=AttentionConfig(direction=direction, norm=norm, agg=AGG[agg],
                                  lambda_softmax=_number(opt, "lambda_softmax", 9.0),
                                  lambda_lse=_number(opt, "lambda_lse", 6.0)))


def _fold_weight_norm(img_state: dict) -> dict:
    """SCAN's ``weight_norm`` image encoder stores ``fc.weight_g``/``fc.weight_v``: fold into ``fc.weight``."""
    if "fc.weight_g" not in img_state:
        return img_state
    state = dict(img_state)
    g, v = state.pop("fc.weight_g"), state.pop("fc.weight_v")
    if g.numel() == 1:  # weight_norm(..., dim=None): one norm over the whole matrix
        state["fc.weight"] = v * (g / v.norm())
    else:  # per output row
        state["fc.weight"] = v * (g.view(-1, 1) / v.norm(dim=1, keepdim=True))
    return state


def scan_state_dict(img_state: dict, txt_state: dict) -> dict:
    """SCAN's two state dicts → one with our Matcher's names (``img_enc.fc.*``, ``txt_enc.embed/rnn.*``)."""
    state = {f"img_enc.{k}": v for k, v in _fold_weight_norm(img_state).items()}
    state.update({f"txt_enc.{k}": v for k, v in txt_state.items()})
    return state


PARTS = {"img_enc": "image encoder", "txt_enc": "text encoder", "sim_enc": "similarity encoder"}


def load_weights(matcher: Matcher, state: dict, *, fmt: str = "SCAN", official=None,
                 options: str = "num_layers, bi_gru", shapes: str = "img_dim/embed_size/word_dim") -> None:
    """Load ``state`` (our names) into ``matcher``, strictly: every key, every shape, finite values.

    ``official(our key)`` is the file's own name of a weight (for messages; default: the key without its
    ``img_enc.``/``txt_enc.``/``sim_enc.`` part); ``options``/``shapes`` name the
    options that decide which keys exist and their shapes. Each problem is one CheckpointError line.
    """
    def name(key: str) -> str:
        return official(key) if official is not None else key.split(".", 1)[1]

    def part(key: str) -> str:
        return PARTS.get(key.split(".", 1)[0], "model")

    ours = matcher.state_dict()
    unexpected = sorted(set(state) - set(ours))
    if unexpected:
        raise CheckpointError(f"unexpected key '{name(unexpected[0])}' in the {fmt} {part(unexpected[0])} — "
                              f"the options ({options}) do not match the weights")
    missing = sorted(set(ours) - set(state))
    if missing:
        raise CheckpointError(f"the {fmt} checkpoint lacks '{name(missing[0])}' in its {part(missing[0])} — "
                              f"the options ({options}) do not match the weights")
    for key, value in state.items():
        if not torch.is_tensor(value):
            raise CheckpointError(f"{fmt} weight '{name(key)}' is a {type(value).__name__}, not a tensor — "
                                  "the checkpoint is damaged")
        if tuple(value.shape) != tuple(ours[key].shape):
            raise CheckpointError(f"{fmt} weight '{name(key)}' has shape {tuple(value.shape)}, the "
                                  f"options imply {tuple(ours[key].shape)} — {shapes} are wrong")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{fmt} weight '{name(key)}' has non-finite values (nan or inf) — the "
                                  "checkpoint is damaged; download or copy it again")
        if key.endswith("running_var") and bool((value < 0).any()):
            raise CheckpointError(f"{fmt} batch-norm statistic '{name(key)}' has negative variances — the "
                                  "checkpoint is damaged; download or copy it again")
    matcher.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()},
                            strict=True)


def check_vocab_rows(txt_state: dict, vocab: Vocabulary, fmt: str = "SCAN") -> None:
    """The text encoder's word embedding has one row per vocabulary word (one-line CheckpointError)."""
    rows = txt_state.get("embed.weight")
    if rows is None or not torch.is_tensor(rows) or rows.dim() != 2:
        raise CheckpointError(f"the {fmt} text encoder has no 'embed.weight' — is it a {fmt} checkpoint?")
    if rows.shape[0] != len(vocab):
        raise CheckpointError(f"the vocabulary has {len(vocab)} words but the checkpoint's word embedding has "
                              f"{rows.shape[0]} rows — pass the vocab JSON the model was trained with")


def imported_options(opt: dict, keep: tuple[str, ...]) -> dict:
    """The plain-valued training options worth recording in the imported checkpoint's config."""
    return {k: opt[k] for k in keep if k in opt and isinstance(opt[k], (str, int, float, bool))}


def scan_to_matcher(opt: dict, img_state: dict, txt_state: dict, vocab: Vocabulary) -> Matcher:
    """Build our Matcher from SCAN's options, weights and vocabulary (all checked)."""
    check_vocab_rows(txt_state, vocab)
    matcher = Matcher(scan_matcher_config(opt), vocab)
    load_weights(matcher, scan_state_dict(img_state, txt_state),
                 options="num_layers, bi_gru, precomp_enc_type")
    return matcher.eval()


def import_scan(checkpoint: str | Path, vocab: str | Path, out: str | Path, *,
                allow_pickle: bool = False) -> Matcher:
    """Read a SCAN checkpoint and vocabulary JSON, write our checkpoint directory ``out``; returns the model."""
    from causmatch.checkpoint import save_matcher  # after the data/models imports (import direction)

    opt, img_state, txt_state = read_scan_checkpoint(checkpoint, allow_pickle=allow_pickle)
    matcher = scan_to_matcher(opt, img_state, txt_state, Vocabulary.load(vocab))
    keep = ("data_name", "cross_attn", "raw_feature_norm", "agg_func", "lambda_lse", "lambda_softmax",
            "no_imgnorm", "no_txtnorm", "bi_gru", "precomp_enc_type",
            "margin", "max_violation", "num_epochs", "learning_rate", "batch_size")
    extra = {"imported_from": {"format": "SCAN", "checkpoint": Path(checkpoint).name,
                               "vocab": Path(vocab).name,
                               "options": imported_options(opt, keep)}}
    save_matcher(matcher, out, extra=extra)
    return matcher
