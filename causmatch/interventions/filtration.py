"""Interventions on SAF's filtration weights, a second intervention *target* beside the attention maps.

SGRAF's SAF head (:mod:`causmatch.models.sgraf`) scores a pair from similarity nodes — node 0 the global one,
node ``j + 1`` the caption's word ``j`` — weighted by its filtration ``f = l1norm(sigmoid(BN(w · s_n + b)))``:
``f`` says which words (and how much the global match) the score listens to, so it is attention of its own.
:class:`OnFiltration` applies an attention kind (``uniform``, ``random``, ``shuffle``, ``mask-words``,
``keep-words``: the registry's :data:`~causmatch.interventions.registry.TARGETS` says which) to ``f`` instead of
to the cross-attention, which it leaves as learned. The spec is the kind's prefixed with ``filtration:``
(``filtration:uniform``, ``filtration:mask-words=0,3``).

How a kind reads on the weights: the nodes are the keys of a one-row map (so ``uniform`` gives every node
taking part the same weight, ``random`` draws U(low, high) per node keyed by ``(seed, image id, caption id,
node)`` as every stochastic kind is, ``shuffle`` permutes the weights over the nodes); word targets name words,
as on the attention (``mask-words=0`` removes word 0's node from the sum; ``keep-words`` keeps the given words
*and the global node*, which is not a word). The edited weights are l1-normalised again; the score then
follows SAF's formula (``l2norm(Σ f_n s_n)``). A word whose attention row an intervention empties is not a node
at all, so its weight is 0 whatever the kind.

With ``words`` set (the per-word effects), row ``n`` of a batch of aligned pairs takes the edited weight of
word ``words[n]``'s node only and keeps the learned weights elsewhere — the filtration twin of
:class:`~causmatch.interventions.per_row.WordPerRow`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from causmatch.errors import ConfigError
from causmatch.interventions.maps import Intervention, KeepWords, Uniform, _Targeted
from causmatch.interventions.per_row import _check_per_row

PREFIX = "filtration:"
EPS = 1e-8


@dataclass(frozen=True)
class OnFiltration(Intervention):
    """``inner`` applied to SAF's filtration weights ``[..., W+1]`` (the attention maps are left as learned)."""

    inner: Intervention = field(default_factory=Uniform)
    words: tuple[int, ...] | None = None  # per-row word (the per-word effects); None: every node

    target = "filtration"

    def __post_init__(self):
        if not isinstance(self.inner, Intervention) or isinstance(self.inner, OnFiltration):
            raise ConfigError(f"a filtration intervention needs an attention kind to apply, got "
                              f"{type(self.inner).__name__} — e.g. filtration:uniform")
        if self.words is not None:
            object.__setattr__(self, "words", _check_per_row("filtration (per word)", self.words))

    @property
    def stochastic(self) -> bool:
        return bool(self.inner.stochastic)

    @property
    def name(self) -> str:
        return PREFIX + self.inner.name

    def describe(self) -> str:
        iv = self.inner
        seed = f", seed {iv.seed}" if iv.stochastic else ""
        words = ", ".join(str(i) for i in getattr(iv, "indices", ()))
        what = {"uniform": "uniform filtration weights (every word and the global match alike)",
                "shuffle": f"shuffled filtration weights{seed}",
                "mask-words": f"words {words} removed from the filtration",
                "keep-words": f"filtration on words {words} and the global match only"}.get(
                    iv.kind.name if iv.kind else "")
        if what is None:  # random (and any other kind the registry allows)
            what = iv.describe().replace("attention", "filtration weights")
        return what + (" (one word per pair)" if self.words is not None else "") + "; the attention as learned"

    def with_seed(self, seed: int) -> "OnFiltration":
        return dataclasses.replace(self, inner=self.inner.with_seed(seed))

    def for_each_word(self, words) -> "OnFiltration":
        """The batched per-word form: row ``n`` edits word ``words[n]``'s weight only."""
        return dataclasses.replace(self, words=tuple(words))

    def validate(self, *, n_words=None, n_regions=None, scope: str = "") -> "Intervention":
        self.inner.validate(n_words=n_words, n_regions=None, scope=scope)
        return self

    def _apply(self, attn, km, query, pair_ids):
        return attn  # the attention maps keep their learned weights

    def _on_nodes(self) -> Intervention:
        """``inner`` with its word targets moved to node indices (word ``j`` is node ``j + 1``)."""
        if not isinstance(self.inner, _Targeted):
            return self.inner
        nodes = tuple(i + 1 for i in self.inner.indices)
        if isinstance(self.inner, KeepWords):
            nodes = (0, *nodes)  # the global node is not a word: keep-words keeps it
        return dataclasses.replace(self.inner, indices=nodes)

    def edit(self, weights: torch.Tensor, node_mask: torch.Tensor, pair_ids=None) -> torch.Tensor:
        """Learned weights ``[..., W+1]`` (``node_mask`` the nodes taking part) → the intervened weights.

        ``pair_ids``: (image ids, caption ids) broadcastable to the leading axes (default: positions).
        """
        km = node_mask.unsqueeze(-2)  # [..., 1, W+1]: one row whose keys are the nodes
        new = self._on_nodes().apply(weights.unsqueeze(-2), km, query="regions", pair_ids=pair_ids).squeeze(-2)
        if self.words is not None:
            if weights.dim() != 2 or weights.shape[0] != len(self.words):
                raise ConfigError(f"the per-word filtration intervention needs aligned pairs [N, W+1] with N = "
                                  f"{len(self.words)}, got weights of shape {tuple(weights.shape)}")
            pos = torch.arange(weights.shape[-1], device=weights.device)
            sel = pos.unsqueeze(0) == (torch.as_tensor(self.words, device=weights.device) + 1).unsqueeze(1)
            new = torch.where(sel, new, weights)
        new = new * node_mask
        return new / (new.abs().sum(-1, keepdim=True) + EPS)
