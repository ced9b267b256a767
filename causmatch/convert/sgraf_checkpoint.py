"""Import an SGRAF checkpoint (``model_best.pth.tar`` + vocabulary JSON) as a CausMatch checkpoint.

SGRAF (Diao et al., AAAI 2021) saves ``torch.save({"model": [img_enc.state_dict(), txt_enc.state_dict(),
sim_enc.state_dict()], "opt": argparse.Namespace, "epoch", "best_rsum", "Eiters"})``. Its encoders are SCAN's
(the text GRU is called ``cap_rnn`` instead of ``rnn``); its similarity encoder (SAF or SGR, ``opt.module_name``)
keeps its own module names in our :mod:`causmatch.models.sgraf` head, so ``sim_enc`` loads one to one. The
options map to a :class:`MatcherConfig` with ``similarity`` ``saf``/``sgr``: ``embed_size``, ``sim_dim``,
``sgr_step``, ``word_dim``, ``num_layers``, ``bi_gru``, ``no_imgnorm``, ``no_txtnorm``, ``img_dim``; the number of
region slots of the visual self-attention's batch norm (36 in SGRAF) is read from the weights. SGRAF's
attention is SCAN's t2i with ``clipped_l2norm`` and a fixed temperature of 9 (its ``SCAN_attention(..., smooth=9.0)``
ignores any ``lambda_softmax``), tokens are SCAN's NLTK ones with ``<start>``/``<end>``.

What SCAN's importer checks is checked the same way (one home: :mod:`causmatch.convert.scan_checkpoint`):
restricted unpickling with consent, every key present and expected, every shape, finite weights, the vocabulary's
size; a SCAN file (two state dicts) is sent to ``import-scan``; an unknown ``module_name`` is refused.
"""
from __future__ import annotations

from pathlib import Path

from causmatch.convert.scan_checkpoint import (
    _flag,
    _need,
    _number,
    check_vocab_rows,
    gru_text_config,
    imported_options,
    load_weights,
    read_torch_checkpoint,
    scan_state_dict,
)
from causmatch.data import Vocabulary
from causmatch.errors import CheckpointError
from causmatch.models import AttentionConfig, Matcher, MatcherConfig

FMT = "SGRAF"
MODULES = {"SAF": "saf", "SGR": "sgr"}  # opt.module_name -> model.similarity
SMOOTH = 9.0  # SGRAF's SCAN_attention temperature (hard-coded there)
REGION_BN = "v_global_w.embedding_local.1.running_mean"  # BatchNorm1d(num_region) of the visual self-attention


def read_sgraf_checkpoint(path: str | Path, *, allow_pickle: bool = False) -> tuple[dict, dict, dict, dict]:
    """Unpickle (restricted) an SGRAF checkpoint → ``(opt as dict, img_enc, txt_enc, sim_enc state dicts)``."""
    opt, model = read_torch_checkpoint(path, allow_pickle=allow_pickle, fmt=FMT)
    name = Path(path).name
    if model is not None and len(model) == 2:
        raise CheckpointError(f"{name} holds only image- and text-encoder state dicts: it is a SCAN checkpoint "
                              "— use causmatch import-scan")
    if model is None or len(model) != 3:
        raise CheckpointError(f"{name} has no 'model' entry holding [image-encoder, text-encoder, "
                              "similarity-encoder] state dicts — is it an SGRAF checkpoint?")
    if opt is None:
        raise CheckpointError(f"{name} has no 'opt' namespace of training options — is it an SGRAF checkpoint?")
    return opt, dict(model[0]), dict(model[1]), dict(model[2])


def _num_region(sim_state: dict) -> int:
    stat = sim_state.get(REGION_BN)
    if stat is None or not hasattr(stat, "shape") or len(stat.shape) != 1 or stat.shape[0] < 1:
        raise CheckpointError(f"the SGRAF similarity encoder lacks '{REGION_BN}' (the visual self-attention's "
                              "batch norm) — is it an SGRAF checkpoint?")
    return int(stat.shape[0])


def sgraf_matcher_config(opt: dict, sim_state: dict) -> MatcherConfig:
    """SGRAF's ``opt`` (+ the region count its weights fix) → :class:`MatcherConfig` (CheckpointError if unknown)."""
    module = _need(opt, "module_name", FMT)
    if module not in MODULES:
        raise CheckpointError(f"unsupported SGRAF option module_name={module!r} (SGRAF's are: SAF, SGR) — "
                              "SGRAF's own code does not run with it either, so it is not imported")
    held = sorted(m for m in MODULES if any(str(k).startswith(f"{m}_module.") for k in sim_state))
    if len(held) == 1 and held[0] != module:
        raise CheckpointError(f"the SGRAF similarity encoder holds {held[0]} weights but the options say "
                              f"module_name={module!r} — the checkpoint's options are damaged")
    return MatcherConfig(
        img_dim=_number(opt, "img_dim", kind=int, fmt=FMT), embed_size=_number(opt, "embed_size", kind=int, fmt=FMT),
        img_norm=not _flag(opt, "no_imgnorm", FMT), txt_norm=not _flag(opt, "no_txtnorm", FMT),
        text=gru_text_config(opt, FMT),
        attention=AttentionConfig(direction="t2i", norm="clipped_l2norm", lambda_softmax=SMOOTH),
        similarity=MODULES[module], sim_dim=_number(opt, "sim_dim", kind=int, fmt=FMT),
        sgr_step=_number(opt, "sgr_step", 3, int, fmt=FMT), num_region=_num_region(sim_state))


def sgraf_state_dict(img_state: dict, txt_state: dict, sim_state: dict) -> dict:
    """SGRAF's three state dicts → one state dict with our names (its text GRU ``cap_rnn`` is our ``rnn``)."""
    txt = {("rnn." + k[len("cap_rnn."):] if k.startswith("cap_rnn.") else k): v for k, v in txt_state.items()}
    state = scan_state_dict(img_state, txt)
    state.update({f"sim_enc.{k}": v for k, v in sim_state.items()})
    return state


def official_name(key: str) -> str:
    """Our state-dict key → SGRAF's name of the weight within its encoder (``txt_enc.rnn.x`` → ``cap_rnn.x``)."""
    part, name = key.split(".", 1)
    return "cap_" + name if part == "txt_enc" and name.startswith("rnn.") else name


def sgraf_to_matcher(opt: dict, img_state: dict, txt_state: dict, sim_state: dict, vocab: Vocabulary) -> Matcher:
    """Build our Matcher (similarity ``saf``/``sgr``) from SGRAF's options, weights and vocabulary (all checked)."""
    check_vocab_rows(txt_state, vocab, FMT)
    matcher = Matcher(sgraf_matcher_config(opt, sim_state), vocab)
    load_weights(matcher, sgraf_state_dict(img_state, txt_state, sim_state), fmt=FMT, official=official_name,
                 options="num_layers, bi_gru, module_name, sgr_step",
                 shapes="img_dim/embed_size/word_dim/sim_dim")
    return matcher.eval()


def import_sgraf(checkpoint: str | Path, vocab: str | Path, out: str | Path, *,
                 allow_pickle: bool = False) -> Matcher:
    """Read an SGRAF checkpoint and vocabulary JSON, write our checkpoint directory ``out``; returns the model."""
    from causmatch.checkpoint import save_matcher  # after the data/models imports (import direction)

    opt, img_state, txt_state, sim_state = read_sgraf_checkpoint(checkpoint, allow_pickle=allow_pickle)
    matcher = sgraf_to_matcher(opt, img_state, txt_state, sim_state, Vocabulary.load(vocab))
    keep = ("data_name", "module_name", "sim_dim", "sgr_step", "no_imgnorm", "no_txtnorm", "bi_gru",
            "margin", "max_violation", "num_epochs", "learning_rate", "batch_size", "grad_clip")
    extra = {"imported_from": {"format": FMT, "checkpoint": Path(checkpoint).name, "vocab": Path(vocab).name,
                               "options": imported_options(opt, keep)}}
    save_matcher(matcher, out, extra=extra)
    return matcher
