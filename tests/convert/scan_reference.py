"""A tiny SCAN-shaped model written from the SCAN paper's formulas (Lee et al., ECCV 2018).

Deliberately independent of ``causmatch.models``: a per-caption loop that builds the attended
context vectors explicitly, as the paper describes, so the imported matcher is checked
against the formulas and not against itself. Module names (``fc``, ``embed``, ``rnn``) are the
ones SCAN's state dicts use.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

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
    def __init__(self, vocab_size, word_dim, embed_size, num_layers, bi_gru):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, word_dim)
        self.rnn = nn.GRU(word_dim, embed_size, num_layers, batch_first=True, bidirectional=bi_gru)
        self.embed_size, self.bi = embed_size, bi_gru

    def forward(self, ids, lengths):  # ids [C,W] -> words [C,W,D]
        packed = pack_padded_sequence(self.embed(ids), lengths, batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True)
        if self.bi:
            out = (out[..., :self.embed_size] + out[..., self.embed_size:]) / 2
        return l2norm(out, -1)


def attend(query, context, norm, smooth):
    """query [n,Q,D] attends over context [n,K,D] -> attended context [n,Q,D]."""
    a = torch.bmm(context, query.transpose(1, 2))  # [n,K,Q]
    if norm == "clipped_l2norm":
        a = l2norm(F.leaky_relu(a, 0.1), 2)  # normalise each key's scores over the queries
    elif norm == "l2norm":
        a = l2norm(a, 2)
    elif norm == "softmax":
        a = torch.softmax(a, dim=2)
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
        else:
            cols.append(rel.mean(1))
    return torch.stack(cols, 1)
