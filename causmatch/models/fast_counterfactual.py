"""The ``fast`` implementation under whole-map counterfactuals (random, uniform, reversed, shuffle): no grad, no maps.

It works in the layout of the factual inference path (:func:`attention.fast_scores`), with the keys on axis 1
and the owner of the key Gram matrix on axis 0: ``[I, R, W, C]`` for t2i (words query regions, the region gram
is per image), ``[C, W, I, R]`` for i2t (regions query words, the word gram is per caption). The Gram product is
then one ``bmm`` on the map as it lies, and the key reductions are running ``addcmul``s over axis 1, as in the
factual path, so a counterfactual costs the factual passes minus the learned softmax plus its draw.

The draw is the expensive part: the counter hash is a dozen integer passes per map entry. So each shard is
scored in chunks of the gram owner (:func:`chunk_rows`: a few MiB per map-sized buffer on the CPU, the whole
shard on a GPU) and each chunk goes through hash → draw → relevance → pooling while it is still in the cache;
only the ``[X, Y]`` scores leave a chunk. Every pair's result is computed within one chunk, so chunk (and shard)
boundaries change only float rounding (vectorised loop bodies vs scalar tails), never a draw.

* random / uniform: the counterfactual map does not depend on the learned attention, so no learned map is
  computed at all;
* reversed / shuffle: the learned map of the chunk is built once (an unnormalised softmax divided by its key
  sum — reversed is ``max(α) − α`` of the *normalised* α) and shared by every intervention of the call.

The draws are bit-identical to the interventions' own ``apply`` on ``[..., Q, K]`` maps whatever the layout,
chunk or shard: the hash of an entry is :func:`counter_hash.entry_hash32_` of its global ``(image id, caption
id)`` pair hash, its query and its key, and the values come from the interventions' own helpers
(:meth:`Random.values`, :func:`shuffle_keys`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from causmatch.counter_hash import entry_hash32_, pair_hash32
from causmatch.interventions import Random, Reversed, Shuffle, Uniform
from causmatch.interventions.maps import shuffle_keys
from causmatch.models.attention import EPS, _dot_along, aggregate, fast_logits_exp

CHUNK_BYTES = 2 * 2**20  # one map-sized float32 buffer per chunk on the CPU (a few of them stay in the cache)


def chunk_rows(n_rows: int, row_entries: int, device: torch.device) -> int:
    """Gram owners per chunk: about :data:`CHUNK_BYTES` of float32 map on the CPU, all rows on other devices."""
    if device.type != "cpu":
        return max(1, n_rows)
    return max(1, min(n_rows, CHUNK_BYTES // (4 * max(1, row_entries))))


def trailing_key_counts(kmask: torch.Tensor) -> list[int] | None:
    """Valid keys per gram owner when every owner's valid keys come first (``kmask [X, K, 1, 1]``), else None."""
    K = kmask.shape[1]
    counts = kmask.sum(1).view(-1)  # [X]
    first = torch.arange(K, device=kmask.device).view(1, K, 1, 1) < counts.view(-1, 1, 1, 1)
    return counts.tolist() if torch.equal(first, kmask.expand_as(first)) else None


def _learned_maps(s: torch.Tensor, qmask: torch.Tensor | None, kmask: torch.Tensor, qdim: int, norm: str,
                  lam: float) -> torch.Tensor:
    """The learned attention on ``s [X, K, ., .]`` (queries on ``qdim``): each query's weights over the keys
    (axis 1) sum to 1, masked keys exactly 0. ``qmask`` (bool, None: all valid) excludes padded queries from the
    softmax norm's column softmax."""
    alpha = F.leaky_relu(s, 0.1) if norm == "clipped_l2norm" else s.clone()
    alpha = fast_logits_exp(alpha, qmask, norm, qdim, lam)  # exp(λ·normalize(s)): no max needed, |.| <= λ
    alpha.mul_(kmask)  # masked keys: exactly 0 weight
    return alpha.div_(alpha.sum(1, keepdim=True).clamp_min_(torch.finfo(alpha.dtype).tiny))


def _draw(iv, base: torch.Tensor | None, s: torch.Tensor, kmask: torch.Tensor, all_keys: bool,
          hash_of) -> torch.Tensor:
    """The intervened map of one chunk, ``[X, K, ., .]`` contiguous (the kinds are checked by exact class)."""
    kind = type(iv)
    if kind is Random:
        alpha = iv.values(hash_of(iv.seed), s.dtype)
        return alpha if all_keys else alpha.mul_(kmask)
    if kind is Uniform:
        w = kmask.to(s.dtype)
        return (w / w.sum(1, keepdim=True).clamp_min(1)).expand(s.shape).contiguous()
    if kind is Reversed:  # the learned map is 0 at masked keys, as apply's ``attn * key_mask``
        alpha = torch.sub(base.amax(1, keepdim=True), base)
        return alpha if all_keys else alpha.mul_(kmask)
    if kind is Shuffle:
        return shuffle_keys(base, kmask, hash_of(iv.seed), 1, all_valid=all_keys)
    raise TypeError(f"no fast draw for {kind.__name__}")  # impl.fast_counterfactual admits only the four


def _chunk_scores(alpha: torch.Tensor, s: torch.Tensor, qmask: torch.Tensor, gram: torch.Tensor,
                  qnorms: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Relevance ``[X, ., .]`` of the intervened maps ``alpha [X, K, ., .]`` on sims ``s``, and the queries that
    count (valid, and not emptied by the intervention). Relevance in the exact Gram form."""
    X, K = alpha.shape[:2]
    num = _dot_along(alpha, s, 1)  # [X, ., .]  = q · a
    a = alpha.view(X, K, -1)
    quad = _dot_along(torch.bmm(gram, a).view_as(alpha), alpha, 1)  # [X, ., .]  = |a|^2, one bmm per gram owner
    den = quad.clamp_min_(EPS * EPS).sqrt_()
    if qnorms is not None:
        den = den.mul_(qnorms)
    # An intervention may leave a row empty: it drops out. Every kind's weights are >= 0, so a row is empty
    # exactly when its key sum is 0 (one outer-axis reduction, cheaper than a boolean map and ``any``).
    active = qmask & alpha.sum(1).ne(0)
    return num.div_(den.clamp_min_(EPS)), active


def _direction(s, *, kmask, qmask, qmask_learned, qdim, gram, qnorms, pair_ids, q, k, query, to_ic, interventions,
               learned, norm, lam, agg, lambda_lse) -> list[torch.Tensor]:
    """One direction on ``s [X, K, ., .]``: one ``[X, Y]`` score per intervention (``to_ic`` turns a
    ``[X, ., .]`` relevance into ``[rows, columns, queries]`` of the result)."""
    X, K = s.shape[:2]
    step = chunk_rows(X, s[0].numel(), s.device)
    counts = trailing_key_counts(kmask) if s.device.type == "cpu" else None
    pair_hashes = {}  # per seed: the per-pair part of the hash, [X, 1, ., .]
    outs: list[list[torch.Tensor]] = [[] for _ in interventions]
    for x0 in range(0, X, step):
        x1 = min(X, x0 + step)
        # Padding at the end: keys past the chunk's largest valid count weigh 0 under every kind, so they are
        # left out (their terms of the sums are exact zeros); the draws of the other keys keep their own k.
        n = K if counts is None else max(1, max(counts[x0:x1]))
        sc, km = s[x0:x1, :n], kmask[x0:x1, :n] if kmask.shape[0] > 1 else kmask[:, :n]
        kk = k[:, :n]

        def hash_of(seed, x0=x0, x1=x1, kk=kk):
            if seed not in pair_hashes:
                pair_hashes[seed] = pair_hash32(seed, query, pair_ids[0], pair_ids[1], s.device)
            ph = pair_hashes[seed]
            return entry_hash32_(ph[x0:x1] if ph.shape[0] > 1 else ph, q, kk)

        all_keys = bool(km.all())
        base = _learned_maps(sc, qmask_learned, km, qdim, norm, lam) if learned else None
        qm = qmask[x0:x1] if qmask.shape[0] > 1 else qmask
        g = gram[x0:x1, :n, :n]
        for out, iv in zip(outs, interventions):
            rel, active = _chunk_scores(_draw(iv, base, sc, km, all_keys, hash_of), sc, qm, g, qnorms)
            rel, active = to_ic(rel), to_ic(active)
            out.append(aggregate(rel, active, agg, lambda_lse))
    return [torch.cat(o, 0) for o in outs]


def fast_cf_scores(words: torch.Tensor, word_mask: torch.Tensor, regions: torch.Tensor,
                   region_mask: torch.Tensor, word_gram: torch.Tensor, region_gram: torch.Tensor, *,
                   interventions: list, learned: bool, image_ids: torch.Tensor, caption_ids: torch.Tensor,
                   direction: str, norm: str, lambda_softmax: float, agg: str, lambda_lse: float,
                   region_norms: torch.Tensor | None = None) -> list[torch.Tensor]:
    """Scores ``[I, C]`` of all pairs under each counterfactual intervention, without maps or autograd.

    words ``[C, W, D]``, word_mask ``[C, W]``, regions ``[I, R, D]``, region_mask ``[I, R]``, grams
    ``[C, W, W]`` / ``[I, R, R]``, image_ids ``[I]`` / caption_ids ``[C]`` (global ids keying the draws),
    region_norms ``[I, R]`` (None: unit regions). ``interventions`` are instances of exactly the registry's
    whole-map counterfactual classes (random, uniform, reversed, shuffle: :func:`impl.fast_counterfactual`);
    ``learned`` says whether any of them reads the learned map (reversed, shuffle). Equal to the eager path to
    float rounding for norms in ``attention.FAST_NORMS``. The caller must hold ``torch.no_grad()``.
    """
    C, W, D = words.shape
    I, R, _ = regions.shape
    dev = words.device
    if I == 0 or C == 0:
        return [regions.new_zeros(I, C) for _ in interventions]
    words = words * word_mask.unsqueeze(-1).to(words.dtype)  # padded words give exact-0 sims
    kw = dict(interventions=interventions, learned=learned, norm=norm, lam=lambda_softmax, agg=agg,
              lambda_lse=lambda_lse)
    i32 = dict(device=dev, dtype=torch.int32)
    parts = []
    s = None
    if direction in ("i2t", "both"):
        s = (words.reshape(C * W, D) @ regions.reshape(I * R, D).t()).view(C, W, I, R)  # [C, W, I, R]
    if direction in ("t2i", "both"):  # words query regions: [I, R, W, C], the region gram per image
        s_t = (regions.reshape(I * R, D) @ words.transpose(0, 1).reshape(W * C, D).t()).view(I, R, W, C) \
            if s is None else s.permute(2, 3, 1, 0).contiguous()
        wm = word_mask.t().reshape(1, W, C)  # [1, W, C]
        parts.append(_direction(
            s_t, kmask=region_mask.view(I, R, 1, 1), qmask=wm,
            qmask_learned=None if norm != "softmax" or bool(word_mask.all()) else wm.unsqueeze(0), qdim=2,
            gram=region_gram, qnorms=None, pair_ids=(image_ids.view(I, 1, 1, 1), caption_ids.view(1, 1, 1, C)),
            q=torch.arange(W, **i32).view(1, 1, W, 1), k=torch.arange(R, **i32).view(1, R, 1, 1), query="words",
            to_ic=lambda x: x.transpose(1, 2), **kw))
    if direction in ("i2t", "both"):  # regions query words: [C, W, I, R], the word gram per caption
        rm = region_mask.view(1, I, R)
        sc = _direction(
            s, kmask=word_mask.view(C, W, 1, 1), qmask=rm,
            qmask_learned=None if bool(region_mask.all()) else rm.unsqueeze(0), qdim=3, gram=word_gram,
            qnorms=None if region_norms is None else region_norms.view(1, I, R),
            pair_ids=(image_ids.view(1, 1, I, 1), caption_ids.view(C, 1, 1, 1)),
            q=torch.arange(R, **i32).view(1, 1, 1, R), k=torch.arange(W, **i32).view(1, W, 1, 1), query="regions",
            to_ic=lambda x: x, **kw)
        parts.append([x.t() for x in sc])  # [C, I] -> [I, C]
    if len(parts) == 1:
        return parts[0]
    return [(a + b) / 2 for a, b in zip(*parts)]
