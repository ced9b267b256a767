"""The matcher: encoders + cross attention that returns its maps, and the sharded similarity matrix.

``Matcher.similarity`` scores all ``I × C`` pairs of a batch (maps ``[I, C, W, R]``), ``pair_scores``
only aligned pairs (``[N, W, R]``). ``similarity`` runs one of four named implementations (``impl``:
reference, eager, fast, compiled), picked by the one rule in :mod:`causmatch.models.impl`; ``pair_scores``
always runs the eager one (the exact Gram form of :mod:`causmatch.models.attention`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from causmatch.errors import ConfigError
from causmatch.interventions import check_targets_for, target_of
from causmatch.models import attention as A
from causmatch.models import reference
from causmatch.models import sgraf as G
from causmatch.models.config import MatcherConfig
from causmatch.models.encoders import GRUTextEncoder, HFTextEncoder, ImageEncoder
from causmatch.models.fast_counterfactual import fast_cf_scores
from causmatch.models.fused import fused_scores
from causmatch.models.impl import choose_impl
from causmatch.runtime import warm_up_vml


@dataclass
class ImageEmb:
    """Encoded images: regions ``[I, R, D]`` (unit vectors, 0 at padding), mask ``[I, R]``, gram ``[I, R, R]``.

    ``glo [I, D]``: a SGRAF head's self-attended image vectors (None: SCAN's head, or not computed yet).
    """

    regions: torch.Tensor
    mask: torch.Tensor
    gram: torch.Tensor
    glo: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.regions.shape[0]

    def __getitem__(self, idx) -> "ImageEmb":
        idx = [idx] if isinstance(idx, int) else idx
        return ImageEmb(self.regions[idx], self.mask[idx], self.gram[idx],
                        None if self.glo is None else self.glo[idx])

    def to(self, device) -> "ImageEmb":
        return ImageEmb(self.regions.to(device), self.mask.to(device), self.gram.to(device),
                        None if self.glo is None else self.glo.to(device))


@dataclass
class TextEmb:
    """Encoded captions: words ``[C, W, D]``, mask ``[C, W]``, gram ``[C, W, W]``, tokens (the W axis).

    ``glo [C, D]``: a SGRAF head's self-attended caption vectors (None: SCAN's head, or not computed yet).
    """

    words: torch.Tensor
    mask: torch.Tensor
    gram: torch.Tensor
    tokens: list[list[str]]
    glo: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.words.shape[0]

    def __getitem__(self, idx) -> "TextEmb":
        if isinstance(idx, int):
            idx = [idx]
        if isinstance(idx, slice):
            toks = self.tokens[idx]
        else:
            toks = [self.tokens[int(i)] for i in (idx.tolist() if torch.is_tensor(idx) else idx)]
        glo = None if self.glo is None else self.glo[idx]
        return TextEmb(self.words[idx], self.mask[idx], self.gram[idx], toks, glo)

    def widths(self) -> torch.Tensor:
        """``[C]`` long: each caption's last valid word column + 1 (0 for a caption with no valid word)."""
        return (self.mask * torch.arange(1, self.mask.shape[1] + 1, device=self.mask.device)).amax(1)

    def trimmed(self) -> "TextEmb":
        """Drop trailing word columns that no caption here uses (saves work on short-caption shards)."""
        return self.first_words(max(1, int(self.widths().max())) if len(self) else 1)

    def first_words(self, W: int) -> "TextEmb":
        """The first ``W`` word columns (views, no copy)."""
        return TextEmb(self.words[:, :W], self.mask[:, :W], self.gram[:, :W, :W], self.tokens, self.glo)

    def to(self, device) -> "TextEmb":
        return TextEmb(self.words.to(device), self.mask.to(device), self.gram.to(device), self.tokens,
                       None if self.glo is None else self.glo.to(device))


@dataclass
class Scores:
    """Scores ``[I, C]`` (``[N]`` for aligned pairs); maps and relevances only with ``return_maps=True``."""

    score: torch.Tensor
    t2i: torch.Tensor | None = None               # [I, C, W, R] word -> region attention
    i2t: torch.Tensor | None = None               # [I, C, R, W] region -> word attention
    word_relevance: torch.Tensor | None = None    # [I, C, W] t2i relevance R_j
    region_relevance: torch.Tensor | None = None  # [I, C, R] i2t relevance
    filtration: torch.Tensor | None = None        # [I, C, W+1] SAF's node weights (node 0: the global one)


class Matcher(nn.Module):
    """Region–word cross-attention matcher (SCAN family); the formulas are in :mod:`causmatch.models.attention`."""

    def __init__(self, config: MatcherConfig, vocab=None):
        super().__init__()
        warm_up_vml()  # MKL's vector maths once on one thread before any threaded call (correctness guard)
        self.config, self.vocab = config, vocab
        self.img_enc = ImageEncoder(config.img_dim, config.embed_size, config.img_norm)
        t = config.text
        if t.encoder == "gru":
            if vocab is None:
                raise ConfigError("a GRU text encoder needs a vocabulary — build one with "
                                  "Vocabulary.from_captions(split.captions)")
            self.txt_enc = GRUTextEncoder(vocab, t.word_dim, config.embed_size, t.num_layers,
                                          t.bidirectional, t.start_end, t.tokenizer, config.txt_norm)
        else:
            self.txt_enc = HFTextEncoder(t.path, config.embed_size, t.freeze, t.tokenizer, config.txt_norm)
        if config.similarity != "scan":  # SGRAF's head, named as the official code's sim_enc
            self.sim_enc = G.EncoderSimilarity(config.embed_size, config.sim_dim, G.module_name(config.similarity),
                                               config.sgr_step, config.num_region)

    @classmethod
    def from_config(cls, config: MatcherConfig | dict, vocab=None) -> "Matcher":
        if isinstance(config, dict):
            config = MatcherConfig.from_dict(config)
        return cls(config, vocab)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------ encoding
    def encode_images(self, features, region_mask=None) -> ImageEmb:
        """features ``[I, R, F]`` (tensor, numpy or memmap), region_mask ``[I, R]`` bool → :class:`ImageEmb`."""
        v, mask = self.img_enc(features, region_mask)  # [I, R, D], [I, R]
        glo = self.sim_enc.global_images(v, mask) if self.config.similarity != "scan" else None  # [I, D]
        return ImageEmb(v, mask, v @ v.transpose(1, 2), glo)  # gram [I, R, R]

    def encode_captions(self, captions: list[str]) -> TextEmb:
        """captions (C strings) → :class:`TextEmb` (W = longest caption in tokens)."""
        e, mask, toks = self.txt_enc(captions)  # [C, W, D], [C, W]
        glo = self.sim_enc.global_captions(e, mask) if self.config.similarity != "scan" else None  # [C, D]
        return TextEmb(e, mask, e @ e.transpose(1, 2), toks, glo)  # gram [C, W, W]

    def tokens(self, caption: str) -> list[str]:
        """The W axis of this caption's maps (with <start>/<end> when the config says so)."""
        return self.txt_enc.tokens(caption)

    def unknown_words(self, caption: str) -> list[str]:
        """Words of ``caption`` the text encoder does not know (mapped to <unk>)."""
        return self.txt_enc.unknown_words(caption)

    # ------------------------------------------------------------------ scoring
    def _directions(self, s, img_mask_q, txt_mask_q, img_key, txt_key, img_gram, txt_gram, img_norms,
                    txt_norms, interventions, ids, return_maps) -> list[Scores]:
        """t2i / i2t on ``s [..., W, R]`` (masks shaped for the batch layout), one :class:`Scores` per intervention.

        The learned maps are computed once per direction and shared by every intervention.
        """
        a = self.config.attention
        outs = [Scores(score=None) for _ in interventions]
        parts: list[list[torch.Tensor]] = [[] for _ in interventions]
        runs = []
        if a.direction in ("t2i", "both"):
            runs.append(("words", s, txt_mask_q, img_key, img_gram, txt_norms, "t2i", "word_relevance"))
        if a.direction in ("i2t", "both"):
            runs.append(("regions", s.transpose(-1, -2), img_mask_q, txt_key, txt_gram, img_norms,  # [..., R, W]
                         "i2t", "region_relevance"))
        for query, sq, qmask, kmask, gram, qnorms, map_name, rel_name in runs:
            learned = A.attention_maps(sq, qmask, kmask, a.norm, a.lambda_softmax)  # [..., Q, K]
            for n, iv in enumerate(interventions):
                alpha = learned if iv is None else iv.apply(learned, kmask, query=query, pair_ids=ids)
                sc, rel = A.score_maps(alpha, sq, qmask, gram, agg=a.agg, lambda_lse=a.lambda_lse,
                                       query_norms=qnorms, intervened=iv is not None)
                parts[n].append(sc)
                if return_maps:
                    setattr(outs[n], map_name, alpha)
                    setattr(outs[n], rel_name, rel)
        for out, p in zip(outs, parts):
            out.score = p[0] if len(p) == 1 else (p[0] + p[1]) / 2
        return outs

    def _region_norms(self, img: ImageEmb) -> torch.Tensor | None:
        """|v_r| for i2t queries; None when regions are unit vectors (img_norm)."""
        return None if self.config.img_norm else img.gram.diagonal(dim1=-2, dim2=-1).clamp_min(A.EPS**2).sqrt()

    def _word_norms(self, txt: TextEmb) -> torch.Tensor | None:
        """|e_w| for t2i queries; None when words are unit vectors (txt_norm)."""
        return None if self.config.txt_norm else txt.gram.diagonal(dim1=-2, dim2=-1).clamp_min(A.EPS**2).sqrt()

    def _all_pairs_layout(self, img: ImageEmb, txt: TextEmb, pair_ids):
        I, C = len(img), len(txt)
        ids = None
        if pair_ids is not None:
            ids = (torch.as_tensor(pair_ids[0]).view(I, 1), torch.as_tensor(pair_ids[1]).view(1, C))
        norms, wnorms = self._region_norms(img), self._word_norms(txt)
        return A.cosine_sims(txt.words, img.regions), dict(  # s [I, C, W, R]
            img_mask_q=img.mask[:, None, :],             # [I, 1, R]
            txt_mask_q=txt.mask[None, :, :],             # [1, C, W]
            img_key=img.mask[:, None, None, :],          # [I, 1, 1, R]
            txt_key=txt.mask[None, :, None, :],          # [1, C, 1, W]
            img_gram=img.gram[:, None],                  # [I, 1, R, R]
            txt_gram=txt.gram[None],                     # [1, C, W, W]
            img_norms=None if norms is None else norms[:, None, :],  # [I, 1, R]
            txt_norms=None if wnorms is None else wnorms[None],      # [1, C, W]
            ids=ids)

    def _aligned_layout(self, img: ImageEmb, txt: TextEmb, pair_ids):
        if len(img) != len(txt):
            raise ConfigError(f"pair_scores needs as many images as captions, got {len(img)} and {len(txt)}")
        ids = None if pair_ids is None else (torch.as_tensor(pair_ids[0]), torch.as_tensor(pair_ids[1]))
        s = torch.einsum("nwd,nrd->nwr", txt.words, img.regions)  # [N, W, R]
        return s, dict(img_mask_q=img.mask, txt_mask_q=txt.mask,                     # [N, R], [N, W]
                       img_key=img.mask[:, None, :], txt_key=txt.mask[:, None, :],  # [N, 1, R], [N, 1, W]
                       img_gram=img.gram, txt_gram=txt.gram, img_norms=self._region_norms(img),
                       txt_norms=self._word_norms(txt), ids=ids)

    def similarity(self, img: ImageEmb, txt: TextEmb, intervention=None, *, pair_ids=None,
                   return_maps: bool = False, impl: str | None = None) -> Scores:
        """All ``I × C`` pairs: ``score [I, C]``; maps ``t2i [I, C, W, R]`` / ``i2t [I, C, R, W]`` if asked.

        ``pair_ids = (image_ids [I], caption_ids [C])``: global indices keying stochastic interventions.
        ``impl``: the implementation, ``"reference" | "eager" | "fast" | "compiled"``; None lets
        :func:`causmatch.models.impl.choose_impl` pick (the table is there). A named one that cannot serve the
        call raises a one-line :class:`ConfigError`.
        """
        return self.similarity_many(img, txt, [intervention], pair_ids=pair_ids, return_maps=return_maps,
                                    impl=impl)[0]

    def similarity_many(self, img: ImageEmb, txt: TextEmb, interventions, *, pair_ids=None,
                        return_maps: bool = False, impl: str | None = None) -> list[Scores]:
        """:meth:`similarity` under several interventions (None = learned) sharing one cosine and map pass."""
        interventions = list(interventions)
        check_targets_for(self.config.similarity, [iv for iv in interventions if iv is not None])
        impl = self.choose_impl(img, txt, interventions, return_maps=return_maps, impl=impl)
        if impl == "sgraf":
            return self._sgraf(img, txt, interventions, pair_ids, return_maps, aligned=False)
        if impl == "reference":
            return [self._reference(img, txt, iv, pair_ids, return_maps) for iv in interventions]
        if impl in ("fast", "compiled") and all(iv is None for iv in interventions):  # the learned scores
            score = self._fast_similarity(img, txt, fused_scores if impl == "compiled" else A.fast_scores)
            return [Scores(score=score) for _ in interventions]
        if impl == "fast":  # whole-map counterfactuals only (the rule checked)
            return [Scores(score=sc) for sc in self._fast_counterfactual(img, txt, interventions, pair_ids)]
        s, layout = self._all_pairs_layout(img, txt, pair_ids)
        return self._directions(s, interventions=interventions, return_maps=return_maps, **layout)

    def choose_impl(self, img: ImageEmb, txt: TextEmb, interventions, *, return_maps: bool = False,
                    impl: str | None = None) -> str:
        """The implementation that :meth:`similarity_many` uses for these inputs (:func:`impl.choose_impl`)."""
        dev = img.regions.device.type
        grad = torch.is_grad_enabled() and any(t.requires_grad for t in (img.regions, img.gram, txt.words, txt.gram))
        return choose_impl(self.config, impl, grad=grad, autocast=torch.is_autocast_enabled(dev),
                           return_maps=return_maps, interventions=interventions)

    def _reference(self, img: ImageEmb, txt: TextEmb, intervention, pair_ids, return_maps: bool) -> Scores:
        """One intervention through :func:`causmatch.models.reference.similarity` (context vectors built)."""
        a = self.config.attention
        out = reference.similarity(txt.words, txt.mask, img.regions, img.mask, direction=a.direction, norm=a.norm,
                                   lambda_softmax=a.lambda_softmax, agg=a.agg, lambda_lse=a.lambda_lse,
                                   intervention=intervention, pair_ids=pair_ids)
        return Scores(**out) if return_maps else Scores(score=out["score"])

    def _fast_similarity(self, img: ImageEmb, txt: TextEmb, score) -> torch.Tensor:
        """``score [I, C]`` through ``score``: :func:`attention.fast_scores` or its compiled twin ``fused_scores``."""
        a = self.config.attention
        with torch.no_grad():
            return score(txt.words, txt.mask, img.regions, img.mask, txt.gram, img.gram, direction=a.direction,
                         norm=a.norm, lambda_softmax=a.lambda_softmax, agg=a.agg, lambda_lse=a.lambda_lse,
                         region_norms=self._region_norms(img))

    def _fast_counterfactual(self, img: ImageEmb, txt: TextEmb, interventions, pair_ids) -> list[torch.Tensor]:
        """``score [I, C]`` per counterfactual kind through :func:`fast_counterfactual.fast_cf_scores`."""
        a = self.config.attention
        I, C = len(img), len(txt)
        ids = (torch.arange(I), torch.arange(C)) if pair_ids is None else pair_ids
        dev = img.regions.device
        with torch.no_grad():
            return fast_cf_scores(
                txt.words, txt.mask, img.regions, img.mask, txt.gram, img.gram, interventions=interventions,
                learned=any(iv.reads_learned_map for iv in interventions),
                image_ids=torch.as_tensor(ids[0], device=dev).reshape(I),
                caption_ids=torch.as_tensor(ids[1], device=dev).reshape(C), direction=a.direction, norm=a.norm,
                lambda_softmax=a.lambda_softmax, agg=a.agg, lambda_lse=a.lambda_lse,
                region_norms=self._region_norms(img))

    def pair_scores(self, img: ImageEmb, txt: TextEmb, intervention=None, *, pair_ids=None,
                    return_maps: bool = False) -> Scores:
        """Aligned pairs (image n with caption n): ``score [N]``, maps ``[N, W, R]`` / ``[N, R, W]``."""
        return self.pair_scores_many(img, txt, [intervention], pair_ids=pair_ids, return_maps=return_maps)[0]

    def pair_scores_many(self, img: ImageEmb, txt: TextEmb, interventions, *, pair_ids=None,
                         return_maps: bool = False) -> list[Scores]:
        """:meth:`pair_scores` under several interventions (None = learned), sharing the learned maps."""
        check_targets_for(self.config.similarity, [iv for iv in interventions if iv is not None])
        if self.config.similarity != "scan":
            return self._sgraf(img, txt, list(interventions), pair_ids, return_maps, aligned=True)
        s, layout = self._aligned_layout(img, txt, pair_ids)
        return self._directions(s, interventions=list(interventions), return_maps=return_maps, **layout)


    # ------------------------------------------------------------------ SGRAF heads
    def with_globals(self, img: ImageEmb, txt: TextEmb, chunk: int = 1024) -> tuple[ImageEmb, TextEmb]:
        """``img``, ``txt`` with a SGRAF head's global vectors (computed in chunks where missing); as is for SCAN."""
        if self.config.similarity == "scan":
            return img, txt
        if img.glo is None:
            glo = [self.sim_enc.global_images(img.regions[a:b], img.mask[a:b]) for a, b in _shards(len(img), chunk)]
            img = ImageEmb(img.regions, img.mask, img.gram, torch.cat(glo) if glo else img.regions[:, 0])
        if txt.glo is None:
            glo = [self.sim_enc.global_captions(txt.words[a:b], txt.mask[a:b]) for a, b in _shards(len(txt), chunk)]
            txt = TextEmb(txt.words, txt.mask, txt.gram, txt.tokens, torch.cat(glo) if glo else txt.words[:, 0])
        return img, txt

    def _sgraf(self, img: ImageEmb, txt: TextEmb, interventions, pair_ids, return_maps: bool, *,
               aligned: bool) -> list[Scores]:
        """A SGRAF head (:mod:`causmatch.models.sgraf`) on the eager t2i maps, one :class:`Scores` per intervention.

        An intervention edits the t2i maps as for SCAN's head; a word whose row it empties loses its node.
        """
        a = self.config.attention
        img, txt = self.with_globals(img, txt)
        if aligned:
            s, lay = self._aligned_layout(img, txt, pair_ids)  # s [N, W, R]
            qmask = txt.mask  # [N, W]
        else:
            s, lay = self._all_pairs_layout(img, txt, pair_ids)  # s [I, C, W, R]
            qmask = txt.mask[None].expand(len(img), -1, -1)  # [I, C, W]
        learned = A.attention_maps(s, lay["txt_mask_q"], lay["img_key"], a.norm, a.lambda_softmax)  # [..., W, R]
        outs = []
        for iv in interventions:
            on_maps = iv is not None and target_of(iv).name == "attention"  # else: the learned maps
            alpha = iv.apply(learned, lay["img_key"], query="words", pair_ids=lay["ids"]) if on_maps else learned
            nodes = A.active_queries(alpha, qmask) if on_maps else qmask
            edit = None if iv is None or on_maps else (lambda w, m, iv=iv: iv.edit(w, m, lay["ids"]))
            score, filtration = self.sim_enc.score(alpha, txt.words, img.regions, nodes, img.glo, txt.glo,
                                                   edit_filtration=edit)
            outs.append(Scores(score=score, t2i=alpha, filtration=filtration) if return_maps else Scores(score=score))
        return outs


def _shards(n: int, size: int):
    return [(a, min(a + size, n)) for a in range(0, n, size)]


@torch.no_grad()
def sharded_similarity(matcher: Matcher, img: ImageEmb, txt: TextEmb, intervention=None, *,
                       shard_images: int = 128, shard_captions: int = 128, progress: bool = False,
                       image_ids=None, caption_ids=None, impl: str | None = None) -> np.ndarray:
    """The full ``[I, C]`` float32 score matrix, computed in ``shard_images × shard_captions`` blocks.

    Peak memory is bounded by one block's maps (``shard_images·shard_captions·W·R`` floats, a few
    tensors of that size). Stochastic interventions are keyed by global ids (default: positions), so the
    result does not depend on the shard sizes. ``impl`` names the implementation of every block
    (:meth:`Matcher.similarity`); ``"compiled"`` compiles once per process, then makes fewer passes per shard.
    Programs that score large splits on the CPU call :func:`causmatch.runtime.configure` first (glibc then
    keeps freed shard buffers).
    """
    if shard_images < 1 or shard_captions < 1:
        raise ConfigError("shard sizes must be at least 1")
    dev = matcher.device
    order = None
    if matcher.config.similarity != "scan":  # SGRAF: globals once, blocks cut to the memory budget
        img, txt = matcher.with_globals(img.to(dev), txt.to(dev))
        order = torch.argsort(txt.widths(), stable=True)  # captions by length: a block's graph pads few nodes
        shard_images, shard_captions = G.block_shape(
            len(img), len(txt), words=int(txt.widths().max()) if len(txt) else 1, regions=img.regions.shape[1],
            embed_size=img.regions.shape[-1], sim_dim=matcher.config.sim_dim, budget_bytes=G.block_budget(dev),
            max_images=shard_images, max_captions=shard_captions)
    img_ids = torch.arange(len(img)) if image_ids is None else torch.as_tensor(image_ids)
    cap_ids = torch.arange(len(txt)) if caption_ids is None else torch.as_tensor(caption_ids)
    if order is not None:  # ids travel with their captions, so the draws are the same
        txt, cap_ids = txt[order], cap_ids[order.cpu()]
    # Scores stay on the device until the end, and each caption shard's width (its longest caption) is
    # known up front: no host-device synchronisation per shard, so a GPU never waits for the Python loop.
    out = torch.zeros(len(img), len(txt), dtype=torch.float32, device=dev)
    widths = txt.widths().cpu().numpy()  # [C]
    blocks = [(i, c) for i in _shards(len(img), shard_images) for c in _shards(len(txt), shard_captions)]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(blocks), desc="similarity", unit="block")
    for (i0, i1), (c0, c1) in blocks:
        im = img[slice(i0, i1)].to(dev)
        tx = txt[slice(c0, c1)].first_words(max(1, int(widths[c0:c1].max()))).to(dev)
        # Global ids key the stochastic interventions' draws; learned scores need none (no copy per shard).
        ids = None if intervention is None else (img_ids[i0:i1].to(dev), cap_ids[c0:c1].to(dev))
        out[i0:i1, c0:c1] = matcher.similarity(im, tx, intervention, pair_ids=ids, impl=impl).score  # [i, c]
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    if order is not None:
        out = out[:, torch.argsort(order)]
    return out.cpu().numpy()
