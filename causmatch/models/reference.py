"""The reference: SCAN's cross attention in its textbook form, with the attended context vectors built.

This is the one statement of the maths that every implementation is checked against (the tests' star of
parity checks, the SCAN-import parity test, the similarity benchmark's baseline) and the ``"reference"``
implementation of :meth:`Matcher.similarity <causmatch.models.matcher.Matcher.similarity>`. It is written
for clarity, not speed, and shares no code with :mod:`causmatch.models.attention`:

1. ``s_qk = q · k`` for every query ``q`` and key ``k`` of a pair;
2. SCAN's feature normalisation of ``s`` over the valid queries of each key (``norm``);
3. ``α_qk = softmax_k(λ · s̃_qk)`` over the valid keys; padded queries get an all-zero row;
4. an intervention (optional) replaces ``α``; a query whose row it empties drops out;
5. the context vector ``a_q = Σ_k α_qk k`` and the relevance ``R_q = cos(q, a_q)``;
6. the pair's score pools ``R`` over the remaining queries (``lse``: ``(1/λ_lse) log Σ exp(λ_lse R)``,
   ``mean``, ``max``, ``sum``); a pair with no remaining query scores 0.

In t2i the queries are a caption's words and the keys an image's regions; in i2t the reverse; ``both``
averages the two scores. All functions broadcast over leading batch axes (``[..., Q, D]`` queries,
``[..., K, D]`` keys), so one caption against a shard of images (SCAN's evaluation loop) and all pairs of
a batch at once are the same calls.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-8  # as SCAN: the l1/l2 normalisation and the cosine add or clamp with it


def normalise(s: torch.Tensor, norm: str, query_mask: torch.Tensor) -> torch.Tensor:
    """SCAN's ``raw_feature_norm`` of ``s [..., Q, K]`` over the valid queries (``query_mask [..., Q]``) of each key.

    Padded queries are left out of every sum and come out 0.
    """
    qm = query_mask.unsqueeze(-1)  # [..., Q, 1]
    x = torch.where(qm, s, torch.zeros_like(s))
    if norm.startswith("clipped"):
        x = F.leaky_relu(x, 0.1)
    if norm.endswith("l2norm"):
        x = x / (x.pow(2).sum(-2, keepdim=True).sqrt() + EPS)
    elif norm.endswith("l1norm"):
        x = x / (x.abs().sum(-2, keepdim=True) + EPS)
    elif norm == "softmax":
        x = torch.softmax(torch.where(qm, s, torch.full_like(s, float("-inf"))), dim=-2)
    elif norm not in ("no_norm", "clipped"):
        raise ValueError(f"unknown norm {norm!r}")  # configs are validated before reaching the maths
    return torch.where(qm, x, torch.zeros_like(x))


def attention(query: torch.Tensor, keys: torch.Tensor, query_mask: torch.Tensor, key_mask: torch.Tensor, *,
              norm: str, lambda_softmax: float) -> torch.Tensor:
    """The learned attention ``α [..., Q, K]`` (steps 1–3): query ``[..., Q, D]``, keys ``[..., K, D]``.

    Each valid query's row is a distribution over the valid keys (``key_mask [..., K]``); padded query rows,
    and rows of a pair with no valid key, are all 0.
    """
    s = query @ keys.transpose(-1, -2)  # [..., Q, K]
    logits = lambda_softmax * normalise(s, norm, query_mask)
    km = key_mask.unsqueeze(-2)  # [..., 1, K]
    alpha = torch.softmax(torch.where(km, logits, torch.full_like(logits, float("-inf"))), dim=-1)
    keep = query_mask.unsqueeze(-1) & km  # [..., Q, K]
    return torch.where(keep, alpha, torch.zeros_like(alpha))  # (a row with no valid key was NaN)


def relevance(query: torch.Tensor, alpha: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """``R_q = cos(q, a_q)`` with the context vectors ``a = α @ keys`` built explicitly → ``[..., Q]`` (step 5)."""
    context = alpha @ keys  # [..., Q, D]
    dot = (query * context).sum(-1)
    return dot / (query.norm(dim=-1) * context.norm(dim=-1)).clamp_min(EPS)


def pool(rel: torch.Tensor, mask: torch.Tensor, agg: str, lambda_lse: float) -> torch.Tensor:
    """Pool ``rel [..., Q]`` over the queries where ``mask [..., Q]`` → ``[...]`` (step 6); 0 where none is left."""
    if agg == "lse":
        out = torch.log(torch.where(mask, torch.exp(lambda_lse * rel), torch.zeros_like(rel)).sum(-1)) / lambda_lse
    elif agg == "mean":
        out = torch.where(mask, rel, torch.zeros_like(rel)).sum(-1) / mask.sum(-1).clamp_min(1)
    elif agg == "max":
        out = torch.where(mask, rel, torch.full_like(rel, float("-inf"))).amax(-1)
    elif agg == "sum":
        out = torch.where(mask, rel, torch.zeros_like(rel)).sum(-1)
    else:
        raise ValueError(f"unknown agg {agg!r}")
    return torch.where(mask.any(-1), out, torch.zeros_like(out))


def direction_scores(query, query_mask, keys, key_mask, *, norm: str, lambda_softmax: float, agg: str,
                     lambda_lse: float, intervene=None):
    """One direction end to end (steps 1–6) → ``(score [...], alpha [..., Q, K], rel [..., Q])``.

    ``intervene`` (optional) maps the learned ``α`` to the intervened one.
    """
    alpha = attention(query, keys, query_mask, key_mask, norm=norm, lambda_softmax=lambda_softmax)
    if intervene is not None:
        alpha = intervene(alpha)
    rel = relevance(query, alpha, keys)  # [..., Q]
    kept = query_mask & (alpha != 0).any(-1)  # a row the intervention emptied drops out
    return pool(rel, kept, agg, lambda_lse), alpha, rel


def similarity(words: torch.Tensor, word_mask: torch.Tensor, regions: torch.Tensor, region_mask: torch.Tensor, *,
               direction: str, norm: str, lambda_softmax: float, agg: str, lambda_lse: float,
               intervention=None, pair_ids=None) -> dict:
    """Every image × caption pair: words ``[C, W, D]``, regions ``[I, R, D]``, masks ``[C, W]`` / ``[I, R]``.

    Returns ``{"score": [I, C], "t2i": [I, C, W, R] | None, "i2t": [I, C, R, W] | None, "word_relevance":
    [I, C, W] | None, "region_relevance": [I, C, R] | None}``. ``intervention`` is an object with
    ``apply(alpha, key_mask, query=, pair_ids=)``; ``pair_ids = (image_ids [I], caption_ids [C])`` key its
    draws (default: positions). Memory is ``I·C·(W + R)·D``: for tests and small batches.
    """
    I, C = regions.shape[0], words.shape[0]
    img_ids, cap_ids = (torch.arange(I), torch.arange(C)) if pair_ids is None else pair_ids
    ids = (torch.as_tensor(img_ids).view(I, 1), torch.as_tensor(cap_ids).view(1, C))
    w = words.unsqueeze(0).expand(I, *words.shape)  # [I, C, W, D]
    r = regions.unsqueeze(1).expand(I, C, *regions.shape[1:])  # [I, C, R, D]
    wm = word_mask.unsqueeze(0).expand(I, *word_mask.shape)  # [I, C, W]
    rm = region_mask.unsqueeze(1).expand(I, C, region_mask.shape[1])  # [I, C, R]
    opts = dict(norm=norm, lambda_softmax=lambda_softmax, agg=agg, lambda_lse=lambda_lse)
    out = dict(t2i=None, i2t=None, word_relevance=None, region_relevance=None)
    scores = []

    def hook(query: str, key_mask: torch.Tensor):
        if intervention is None:
            return None
        return lambda al: intervention.apply(al, key_mask.unsqueeze(-2), query=query, pair_ids=ids)

    if direction in ("t2i", "both"):
        sc, out["t2i"], out["word_relevance"] = direction_scores(w, wm, r, rm, intervene=hook("words", rm), **opts)
        scores.append(sc)
    if direction in ("i2t", "both"):
        sc, out["i2t"], out["region_relevance"] = direction_scores(r, rm, w, wm, intervene=hook("regions", wm),
                                                                   **opts)
        scores.append(sc)
    if not scores:
        raise ValueError(f"unknown direction {direction!r}")
    out["score"] = scores[0] if len(scores) == 1 else (scores[0] + scores[1]) / 2
    return out
