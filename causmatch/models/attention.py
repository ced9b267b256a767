"""Cross-attention maths as plain functions on tensors (no config objects).

Maps use a ``[..., Q, K]`` layout: the query axis ``Q`` is normalised over (SCAN's feature
normalisation), the key axis ``K`` gets the softmax. In t2i the queries are words and the keys regions
(``[I, C, W, R]``); in i2t the mirror (``[I, C, R, W]``).

The relevance of a query is the cosine between the query vector ``q`` and its attended context
``a = Σ_k α_k v_k``. With ``s_k = q · v_k`` and the key Gram matrix ``G = V Vᵀ`` it is exactly
``(Σ_k α_k s_k) / (|q| sqrt(αᵀ G α))``, so the context vectors (``[..., Q, D]`` per pair) are never built.
:mod:`causmatch.models.reference` builds them explicitly, as SCAN does: every implementation is checked
against it. Here live the ``eager`` implementation (:func:`attention_maps`, :func:`score_maps`: autograd,
maps, every option) and the ``fast`` one (:func:`fast_scores`: no-grad, in place); see
:mod:`causmatch.models.impl` for which serves a call.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-8  # as SCAN: keeps padded / all-zero rows finite


def safe_norm(x: torch.Tensor, dim: int) -> torch.Tensor:
    """``|x|`` along ``dim`` (kept), with a gradient that stays finite at zero vectors (padding).

    ``sqrt`` has an infinite slope at 0, so the squared norm is clamped to a tiny positive value first
    (``clamp`` passes no gradient there); the value differs from the true norm by under 1e-8.
    """
    tiny = max(EPS * EPS, torch.finfo(x.dtype).tiny)
    return x.pow(2).sum(dim, keepdim=True).clamp_min(tiny).sqrt()


def cosine_sims(words: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """Word–region dot products for all pairs: words ``[C, W, D]``, regions ``[I, R, D]`` → ``[I, C, W, R]``.

    With unit vectors these are cosines. Memory is ``I·C·W·R``: no ``[I, C, W, D]`` tensor is made.
    """
    I, R, D = regions.shape
    C, W, _ = words.shape
    # One GEMM: [C*W, D] @ [D, I*R] -> [C*W, I*R], then a view/permute (no copy of D-sized data).
    flat = words.reshape(C * W, D) @ regions.reshape(I * R, D).t()  # [C*W, I*R]
    return flat.view(C, W, I, R).permute(2, 0, 1, 3)  # [I, C, W, R]


def _masked_fill_min(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` where ``mask`` else the dtype's most negative finite value (softmax weight 0, no NaN)."""
    return x.masked_fill(~mask, torch.finfo(x.dtype).min)


def _all(mask: torch.Tensor) -> bool:
    """True when a mask has no padding, so the masking passes over the big map can be skipped."""
    return bool(mask.all())


def _scaled_norm(s: torch.Tensor, norm: str, query_mask: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale · normalize_sims(s)`` with as few passes over the ``[..., Q, K]`` map as possible."""
    qm = None if _all(query_mask) else query_mask.unsqueeze(-1).to(s.dtype)  # [..., Q, 1]
    if norm in ("clipped_l2norm", "l2norm", "clipped_l1norm", "l1norm", "clipped"):
        x = F.leaky_relu(s, 0.1) if norm.startswith("clipped") else s  # [..., Q, K]
        if qm is not None:
            x = x * qm
        if norm == "clipped":  # leaky ReLU only, no normalisation
            return x * scale
        n = safe_norm(x, -2) if norm.endswith("l2norm") else x.abs().sum(-2, keepdim=True)  # [..., 1, K]
        return x * (scale / (n + EPS))
    if norm == "softmax":
        x = s if qm is None else s.masked_fill(qm == 0, torch.finfo(s.dtype).min)
        x = torch.softmax(x, dim=-2)
        return scale * (x if qm is None else x * qm)
    if norm == "no_norm":
        return scale * (s if qm is None else s * qm)
    raise ValueError(f"unknown norm {norm!r}")  # configs are validated before reaching the maths


def normalize_sims(s: torch.Tensor, norm: str, query_mask: torch.Tensor) -> torch.Tensor:
    """SCAN's feature normalisation of ``s [..., Q, K]`` across the valid queries of each key.

    ``query_mask`` is bool, broadcastable to ``s.shape[:-1]`` (``[..., Q]``). Padded queries come out 0.
    """
    return _scaled_norm(s, norm, query_mask, 1.0)


def attention_maps(s: torch.Tensor, query_mask: torch.Tensor, key_mask: torch.Tensor, norm: str,
                   lambda_softmax: float) -> torch.Tensor:
    """Attention ``α [..., Q, K]``: normalise over queries, then softmax over the valid keys.

    ``query_mask`` broadcastable to ``[..., Q]``; ``key_mask`` broadcastable to ``[..., Q|1, K]``.
    Masked keys get exactly 0, and padded query rows are all 0 (so they drop out of the score).
    """
    logits = _scaled_norm(s, norm, query_mask, lambda_softmax)  # [..., Q, K]
    if not _all(key_mask):
        logits = _masked_fill_min(logits, key_mask)  # exp underflows to exactly 0 at masked keys
    alpha = torch.softmax(logits, dim=-1)  # [..., Q, K]
    if not _all(key_mask.any(-1)):
        alpha = alpha * key_mask  # a row with no valid key at all would otherwise be uniform
    if not _all(query_mask):
        alpha = alpha * query_mask.unsqueeze(-1).to(alpha.dtype)
    return alpha


def _times_gram(alpha: torch.Tensor, gram: torch.Tensor) -> torch.Tensor:
    """``alpha @ gram`` without expanding a gram shared along one batch axis (``[I,1,K,K]`` / ``[1,C,K,K]``).

    A broadcast matmul would copy the gram for every pair; folding the shared axis into the rows gives
    one GEMM per image (or caption) instead.
    """
    if alpha.dim() == 4 and gram.dim() == 4:
        I, C, Q, K = alpha.shape
        if gram.shape[:2] == (I, 1):  # per-image gram (t2i keys are regions)
            return torch.bmm(alpha.reshape(I, C * Q, K), gram[:, 0]).view(I, C, Q, K)
        if gram.shape[:2] == (1, C):  # per-caption gram (i2t keys are words)
            a = alpha.transpose(0, 1).reshape(C, I * Q, K)
            return torch.bmm(a, gram[0]).view(C, I, Q, K).transpose(0, 1)
    return torch.matmul(alpha, gram)


def relevance(alpha: torch.Tensor, s: torch.Tensor, gram: torch.Tensor,
              query_norms: torch.Tensor | None = None) -> torch.Tensor:
    """Relevance ``cos(q, Σ_k α_k v_k)`` of each query, in the exact Gram form.

    alpha, s: ``[..., Q, K]``; gram: the key Gram matrix ``[..., K, K]`` (broadcast over the other dims);
    query_norms: ``|q|`` broadcastable to ``[..., Q]`` (None means unit queries). Returns ``[..., Q]``.
    Computed in float32 so autocast (bf16/fp16) does not lose the small denominators.
    """
    a32, s32 = alpha.float(), s.float()
    num = (a32 * s32).sum(-1)  # [..., Q]  = q · a
    quad = _times_gram(a32, gram.float()).mul_(a32).sum(-1)  # [..., Q]  = |a|^2 (in place: bmm output unused)
    den = quad.clamp_min(EPS * EPS).sqrt()  # clamp: a zero row has |a| = 0 and a finite gradient
    if query_norms is not None:
        den = den * query_norms.float()
    return num / den.clamp_min(EPS)


def aggregate(rel: torch.Tensor, mask: torch.Tensor, agg: str, lambda_lse: float) -> torch.Tensor:
    """Pool query relevances ``rel [..., Q]`` over the queries where ``mask [..., Q]`` → ``[...]``.

    ``lse``: ``(1/λ) log Σ exp(λ R)``; ``mean``: the average; ``max``: the largest; ``sum``: the sum.
    A pair with no valid query scores 0.
    """
    mask = mask.expand_as(rel)
    any_valid = mask.any(-1)  # [...]
    if agg == "max":
        out = torch.where(mask, rel, torch.full_like(rel, float("-inf"))).amax(-1)
    elif agg == "sum":
        out = (rel * mask).sum(-1)
    elif agg == "lse":
        # Rows with nothing valid get finite dummy logits so neither value nor gradient is NaN.
        x = torch.where(mask, lambda_lse * rel, torch.full_like(rel, float("-inf")))
        x = torch.where(any_valid.unsqueeze(-1), x, torch.zeros_like(rel))
        out = torch.logsumexp(x, dim=-1) / lambda_lse
    elif agg == "mean":
        out = (rel * mask).sum(-1) / mask.sum(-1).clamp_min(1)
    else:
        raise ValueError(f"unknown agg {agg!r}")
    return torch.where(any_valid, out, torch.zeros_like(out))


def active_queries(alpha: torch.Tensor, query_mask: torch.Tensor) -> torch.Tensor:
    """Valid queries whose attention row is not all zero (an intervention may empty a row) → ``[..., Q]``."""
    return query_mask & (alpha != 0).any(-1)


def score_maps(alpha: torch.Tensor, s: torch.Tensor, query_mask: torch.Tensor, gram: torch.Tensor, *, agg: str,
               lambda_lse: float, query_norms: torch.Tensor | None = None, intervened: bool = True):
    """Relevance and pooled score of given maps: ``alpha, s [..., Q, K]`` → ``(score [...], rel [..., Q])``.

    ``intervened=False`` says the maps are the learned ones (no row can be empty), skipping that check.
    """
    rel = relevance(alpha, s, gram, query_norms)  # [..., Q]
    active = active_queries(alpha, query_mask) if intervened else query_mask
    return aggregate(rel, active, agg, lambda_lse), rel


# ---------------------------------------------------------------- no-grad inference path

FAST_NORMS = ("clipped_l2norm", "l2norm", "softmax")
MAX_FAST_LAMBDA = 30.0  # |a|^2 sums exp(2λ) terms: exp(60) times 10^4 key pairs stays far below float32's max


def fast_path_ok(norm: str, lambda_softmax: float, *, unit_words: bool = True) -> bool:
    """The one rule for when the no-grad paths (:func:`fast_scores`, the fused and counterfactual twins) apply.

    The normalised sims must lie in [-1, 1] (norms in :data:`FAST_NORMS`, λ bounded), so ``exp(λ s̃)`` cannot
    overflow without a max-subtraction; and the words must be unit vectors (``unit_words``: the matcher's
    ``txt_norm``), since those paths take a word's relevance denominator as 1. Everything else (``no_norm``,
    ``clipped``, ``l1norm``, ``clipped_l1norm``, words not l2-normalised) runs the general path. Any ``agg``
    and unnormalised regions are served by both.
    """
    return unit_words and norm in FAST_NORMS and 0 < lambda_softmax <= MAX_FAST_LAMBDA


def _dot_along(x: torch.Tensor, y: torch.Tensor, dim: int, keepdim: bool = False) -> torch.Tensor:
    """``(x * y).sum(dim)`` for an outer ``dim`` as a running ``addcmul`` over its slices.

    On the CPU it reads both maps once and writes only the small result; the vectorised forms write a
    map-sized product first. One thread, ``dim=1`` of a ``[64, 36, 12, 128]`` map: this loop 8.2 ms,
    ``(x * y).sum(1)`` 50 ms, ``torch.linalg.vecdot`` 33 ms, ``einsum`` 64 ms (at ``[32, 36, 12, 64]`` all
    about 2 ms). None of them sums in the same order, so replacing it would also change the scores' last bits.
    On a GPU the loop would be one launch per slice: there it is the plain product and sum.
    """
    if x.device.type != "cpu":  # on a GPU one product + sum is two launches; the loop would be one per slice
        return (x * y).sum(dim, keepdim=keepdim)
    acc = x.select(dim, 0) * y.select(dim, 0)
    for k in range(1, x.shape[dim]):
        acc.addcmul_(x.select(dim, k), y.select(dim, k))
    return acc.unsqueeze(dim) if keepdim else acc


def fast_logits_exp(x: torch.Tensor, qmask: torch.Tensor | None, norm: str, dim: int, lam: float,
                     work: torch.Tensor | None = None) -> torch.Tensor:
    """In place: ``x [.., Q.., K..]`` (queries on ``dim``, already clipped) → ``exp(λ · normalize(x))``.

    This is an unnormalised softmax: relevance is invariant to rescaling a query's attention row, so the
    softmax denominator is never needed, and with ``|normalize(x)| <= 1`` neither is the max-subtraction.
    """
    if norm == "softmax":  # softmax over the queries of each key; padded queries excluded
        if qmask is not None:
            x.masked_fill_(~qmask, torch.finfo(x.dtype).min)
        x = torch.softmax(x, dim=dim).mul_(lam)
        if qmask is not None:
            x.mul_(qmask)
    else:
        if qmask is not None:
            x.mul_(qmask)
        if dim % x.dim() == x.dim() - 1:  # innermost axis: a plain reduction
            sq = torch.square(x) if work is None else torch.square(x, out=work)  # scratch: x^2
            n = sq.sum(dim, keepdim=True).sqrt_()  # (linalg.vector_norm is several times slower here)
        else:
            n = _dot_along(x, x, dim, keepdim=True).sqrt_()
        x.mul_(n.add_(EPS).reciprocal_().mul_(lam))  # λ folded into the small per-key factor
    return x.exp_()


def _first_pass(s: torch.Tensor, norm: str) -> torch.Tensor:
    """A fresh copy of ``s`` to turn into attention, with the leaky-ReLU clip folded into the copy."""
    return F.leaky_relu(s, 0.1) if norm == "clipped_l2norm" else s.clone()


def fast_scores(words: torch.Tensor, word_mask: torch.Tensor, regions: torch.Tensor, region_mask: torch.Tensor,
                word_gram: torch.Tensor, region_gram: torch.Tensor, *, direction: str, norm: str,
                lambda_softmax: float, agg: str, lambda_lse: float,
                region_norms: torch.Tensor | None = None) -> torch.Tensor:
    """Scores ``[I, C]`` of all pairs, without maps or autograd: the path of evaluation and sharded scoring.

    words ``[C, W, D]``, word_mask ``[C, W]``, regions ``[I, R, D]``, region_mask ``[I, R]``, grams
    ``[C, W, W]`` / ``[I, R, R]``, region_norms ``[I, R]`` (None: unit regions). Equal to
    the eager path on the learned maps (to float rounding) for norms in :data:`FAST_NORMS`. Memory is bounded by
    the caller's shard size (cache-sized caption blocks inside a shard were not faster on the benchmark CPU).
    The caller must hold ``torch.no_grad()``.
    """
    C, W, D = words.shape
    I, R, _ = regions.shape
    words = words * word_mask.unsqueeze(-1).to(words.dtype)  # [C, W, D] padded words give exact-0 sims
    keys_t = regions.reshape(I * R, D).t()  # [D, I*R]
    rm = None if bool(region_mask.all()) else region_mask.view(1, 1, I, R)
    if C == 0:
        return regions.new_zeros(I, 0)
    parts = []
    if direction == "t2i":  # its own layout straight from the GEMM: regions first, captions innermost
        s_t = (regions.reshape(I * R, D) @ words.transpose(0, 1).reshape(-1, D).t()).view(I, R, W, C)
    else:
        s = (words.reshape(-1, D) @ keys_t).view(C, W, I, R)  # [C, W, I, R]
        s_t = s.permute(2, 3, 1, 0).contiguous() if direction == "both" else None  # [I, R, W, C]
    if s_t is not None:
        wm = None if bool(word_mask.all()) else word_mask.t().reshape(1, 1, W, C)
        parts.append(_fast_t2i(s_t, wm, region_mask, region_gram, word_mask, norm, lambda_softmax, agg, lambda_lse))
    if direction in ("i2t", "both"):
        wm = None if bool(word_mask.all()) else word_mask.view(C, W, 1, 1)
        parts.append(_fast_i2t(s, wm, rm, word_gram, region_mask, norm, lambda_softmax, agg, lambda_lse,
                               region_norms))
    return parts[0] if len(parts) == 1 else (parts[0] + parts[1]) / 2  # [I, C]


def _fast_t2i(s, wm, region_mask, region_gram, word_mask, norm, lam, agg, lambda_lse) -> torch.Tensor:
    """t2i on ``s [I, R, W, C]``: words query regions. Returns ``[I, C]``.

    In this layout the Gram product is ``G_i @ α_i`` per image on the map as it lies (``[R, R] @ [R, W·C]``,
    no transposing copy), and the norm and relevance reductions run over outer axes, in full vectors along
    the captions. Two map-sized buffers besides ``s`` (``alpha``, ``work``), reused in place: a fresh large
    allocation costs page faults comparable to a pass over the map.
    """
    I, R, W, C = s.shape
    alpha = _first_pass(s, norm)  # [I, R, W, C]
    work = torch.empty_like(alpha)
    # Padded words were zeroed before the GEMM, so only the softmax norm still needs their mask.
    alpha = fast_logits_exp(alpha, wm if norm == "softmax" else None, norm, 2, lam, work)
    if not bool(region_mask.all()):
        alpha.mul_(region_mask.view(I, R, 1, 1))  # masked regions get exactly 0 weight
    a = alpha.view(I, R, W * C)
    quad = _dot_along(torch.bmm(region_gram, a, out=work.view(I, R, W * C)), a, 1)  # [I, W*C] = |Σ_r α_r v_r|^2
    num = _dot_along(alpha, s, 1)  # [I, W, C]  = e_w · a_w
    rel = num / quad.view(I, W, C).clamp_min(EPS * EPS).sqrt().clamp_min(EPS)  # [I, W, C]
    return aggregate(rel.transpose(1, 2), word_mask.unsqueeze(0), agg, lambda_lse)  # [I, C]


def _fast_i2t(s, wm, rm, word_gram, region_mask, norm, lam, agg, lambda_lse, region_norms) -> torch.Tensor:
    """i2t on ``s [C, W, I, R]``: regions query words (softmax over W, normalised over R). Returns ``[I, C]``."""
    C, W, I, R = s.shape
    alpha = fast_logits_exp(_first_pass(s, norm), rm, norm, 3, lam, torch.empty_like(s))  # [C, W, I, R]
    if wm is not None:
        alpha.mul_(wm)  # padded words get exactly 0 weight
    a = alpha.view(C, W, I * R)
    quad = _dot_along(torch.bmm(word_gram, a), a, 1)  # [C, I*R]  per-caption gram: one clean bmm
    num = _dot_along(alpha, s, 1)  # [C, I, R]
    den = quad.view(C, I, R).clamp_min(EPS * EPS).sqrt()
    if region_norms is not None:
        den = den * region_norms.unsqueeze(0)
    rel = (num / den.clamp_min(EPS)).permute(1, 0, 2)  # [I, C, R]
    return aggregate(rel, region_mask.unsqueeze(1), agg, lambda_lse)  # [I, C]
