"""The ``fast`` implementation under whole-map counterfactuals (random, uniform, reversed, shuffle): no grad, no maps.

The eager path (``attention.attention_maps`` + ``attention.score_maps``) keeps every step autograd-friendly
and out of place, and lays the maps out as ``[I, C, Q, K]`` views of the GEMM's ``[C, W, I, R]`` output,
which costs several strided copies per draw. Here each direction works in the layout its key Gram product wants,
``[X, Y, Q, K]`` with ``X`` the axis that owns the gram (images for t2i, captions for i2t), so the
``ᾱ G`` product is one contiguous ``bmm`` with no transposing copy.

* random / uniform: the counterfactual map does not depend on the learned attention, so no learned map is
  computed at all (only the sims, the draw, the ``bmm`` and the reductions);
* reversed / shuffle: the learned map is built once in place (an unnormalised softmax, then divided by
  its row sum — reversed is ``max(α) − α`` of the *normalised* α) and shared by every draw.

The draws are the interventions' own ``apply`` with global ``(image id, caption id)`` pair ids broadcast
to the ``[X, Y]`` layout, so they are bit-identical to the eager path's whatever the shard.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from causmatch.models.attention import EPS, aggregate, fast_logits_exp


def _learned_maps(s: torch.Tensor, qmask: torch.Tensor, kmask: torch.Tensor, norm: str,
                  lam: float) -> torch.Tensor:
    """The learned attention ``α [X, Y, Q, K]`` (rows sum to 1, masked keys and padded rows exactly 0).

    ``s`` is a strided ``[X, Y, Q, K]`` view; the first copy makes it contiguous in this layout.
    """
    alpha = torch.empty(s.shape, dtype=s.dtype, device=s.device).copy_(s)  # [X, Y, Q, K]
    if norm == "clipped_l2norm":
        F.leaky_relu(alpha, 0.1, inplace=True)
    qm = qmask.unsqueeze(-1)  # [X|1, Y|1, Q, 1]
    # exp(λ·normalize(s)) without max-subtraction: |normalize(s)| <= 1 and λ <= MAX_FAST_LAMBDA.
    alpha = fast_logits_exp(alpha, None if bool(qm.all()) else qm, norm, 2, lam)
    alpha.mul_(kmask)  # masked keys: exactly 0 weight
    alpha.div_(alpha.sum(-1, keepdim=True).clamp_min(torch.finfo(alpha.dtype).tiny))  # [X, Y, Q, K]
    return alpha.mul_(qm)  # padded query rows: all 0 (the exp above made them 1)


def _cf_scores(alpha: torch.Tensor, s: torch.Tensor, qmask: torch.Tensor, gram: torch.Tensor,
               agg: str, lambda_lse: float, qnorms: torch.Tensor | None) -> torch.Tensor:
    """Pooled score ``[X, Y]`` of intervened maps ``alpha [X, Y, Q, K]`` (contiguous) on sims ``s``.

    Relevance in the exact Gram form; rows an intervention left empty drop out, as in the eager path.
    """
    X, Y, Q, K = alpha.shape
    num = (alpha * s).sum(-1)  # [X, Y, Q]  = q · a
    a = alpha.view(X, Y * Q, K)
    quad = torch.bmm(a, gram).mul_(a).sum(-1).view(X, Y, Q)  # [X, Y, Q]  = |a|^2, one bmm per gram owner
    den = quad.clamp_min_(EPS * EPS).sqrt_()
    if qnorms is not None:
        den = den * qnorms
    rel = num.div_(den.clamp_min_(EPS))  # [X, Y, Q]
    active = qmask & (alpha != 0).any(-1)  # [X, Y, Q]
    return aggregate(rel, active, agg, lambda_lse)  # [X, Y]


def _direction(s, qmask, kmask, gram, qnorms, *, query, ids, interventions, learned, norm, lam, agg,
               lambda_lse) -> list[torch.Tensor]:
    """One direction on ``s [X, Y, Q, K]``: one ``[X, Y]`` score per intervention."""
    base = _learned_maps(s, qmask, kmask, norm, lam) if learned else s.new_zeros(()).expand(s.shape)
    out = []
    for iv in interventions:
        alpha = iv.apply(base, kmask, query=query, pair_ids=ids).contiguous()  # [X, Y, Q, K]
        out.append(_cf_scores(alpha, s, qmask, gram, agg, lambda_lse, qnorms))
    return out


def fast_cf_scores(words: torch.Tensor, word_mask: torch.Tensor, regions: torch.Tensor,
                   region_mask: torch.Tensor, word_gram: torch.Tensor, region_gram: torch.Tensor, *,
                   interventions: list, learned: bool, image_ids: torch.Tensor, caption_ids: torch.Tensor,
                   direction: str, norm: str, lambda_softmax: float, agg: str, lambda_lse: float,
                   region_norms: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Scores ``[I, C]`` of all pairs under each counterfactual intervention, without maps or autograd.

    words ``[C, W, D]``, word_mask ``[C, W]``, regions ``[I, R, D]``, region_mask ``[I, R]``, grams
    ``[C, W, W]`` / ``[I, R, R]``, image_ids ``[I]`` / caption_ids ``[C]`` (global ids keying the draws),
    region_norms ``[I, R]`` (None: unit regions). ``interventions`` are objects with
    ``apply(attn, key_mask, query=, pair_ids=)`` (random, uniform, reversed, shuffle); ``learned`` says
    whether any of them reads the learned map (reversed, shuffle). Equal to the eager path to float
    rounding for norms in ``attention.FAST_NORMS``. The caller must hold ``torch.no_grad()``.
    """
    C, W, D = words.shape
    I, R, _ = regions.shape
    kw = dict(interventions=interventions, learned=learned, norm=norm, lam=lambda_softmax, agg=agg,
              lambda_lse=lambda_lse)
    parts = []
    if direction in ("t2i", "both"):  # words query regions; the region gram is per image: X = I, Y = C
        s = (words.reshape(C * W, D) @ regions.reshape(I * R, D).t()).view(C, W, I, R).permute(2, 0, 1, 3)
        parts.append(_direction(s, word_mask.unsqueeze(0), region_mask.view(I, 1, 1, R), region_gram, None,
                                query="words", ids=(image_ids.view(I, 1), caption_ids.view(1, C)), **kw))
    if direction in ("i2t", "both"):  # regions query words; the word gram is per caption: X = C, Y = I
        s = (regions.reshape(I * R, D) @ words.reshape(C * W, D).t()).view(I, R, C, W).permute(2, 0, 1, 3)
        qn = None if region_norms is None else region_norms.unsqueeze(0)  # [1, I, R]
        sc = _direction(s, region_mask.unsqueeze(0), word_mask.view(C, 1, 1, W), word_gram, qn,
                        query="regions", ids=(image_ids.view(1, I), caption_ids.view(C, 1)), **kw)
        parts.append([x.t() for x in sc])  # [C, I] -> [I, C]
    if len(parts) == 1:
        return parts[0]
    return [(a + b) / 2 for a, b in zip(*parts)]
