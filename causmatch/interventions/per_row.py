"""Library-only intervention kinds (no spec string): one word's attention, or one target per batch row.

The per-word and per-region effects (:mod:`causmatch.analysis.effects`) are built from them; they are
declared in the registry like every other kind.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from causmatch.errors import ConfigError
from causmatch.interventions.maps import Identity, Intervention, as_index, check_range, check_targets


def _check_inner(kind: str, inner) -> None:
    if not hasattr(inner, "apply"):
        raise ConfigError(f"{kind} needs an intervention to apply, got {type(inner).__name__} — "
                          "pass an Intervention such as Random()")


def _word_axis(query: str) -> int:
    """The axis words sit on: the query rows in t2i (``query="words"``), the key columns in i2t."""
    return -2 if query == "words" else -1


@dataclass(frozen=True)
class OneWord(Intervention):
    """Apply ``inner`` to one word's attention only: its row in t2i, its column in i2t.

    The per-word effect (:func:`causmatch.analysis.word_effects`) intervenes this way on each word in
    turn; the other words, and the regions' rows in the i2t direction of a "both" model, keep the
    learned attention.
    """

    inner: Intervention = field(default_factory=Identity)
    index: int = 0

    def __post_init__(self):
        _check_inner("one-word", self.inner)
        object.__setattr__(self, "index", check_targets("one-word", (self.index,))[0])

    @property
    def stochastic(self) -> bool:
        return bool(getattr(self.inner, "stochastic", False))

    @property
    def name(self) -> str:
        return f"{self.inner.name}@word{self.index}"

    def describe(self) -> str:
        return f"{self.inner.describe()} on word {self.index}"

    def with_seed(self, seed: int) -> "OneWord":
        return dataclasses.replace(self, inner=self.inner.with_seed(seed))

    def validate(self, *, n_words=None, n_regions=None, scope: str = "") -> "Intervention":
        """The inner intervention, and the word against ``n_words``."""
        _validate_inner(self.inner, n_words, n_regions, scope)
        check_range("one-word", "words", (self.index,), n_words, n_regions, scope)
        return self

    def _apply(self, attn, km, query, pair_ids):
        new = self.inner.apply(attn, km, query=query, pair_ids=pair_ids)  # [..., Q, K]
        axis = _word_axis(query)
        sel = torch.zeros(attn.shape[axis], dtype=torch.bool, device=attn.device)
        if self.index < sel.numel():
            sel[self.index] = True
        sel = sel.unsqueeze(-1) if axis == -2 else sel  # [Q,1] or [K]
        return torch.where(sel, new, attn)


def _validate_inner(inner, n_words, n_regions, scope) -> None:
    if hasattr(inner, "validate"):
        inner.validate(n_words=n_words, n_regions=n_regions, scope=scope)


def _check_per_row(kind: str, indices) -> tuple[int, ...]:
    """Per-row targets: one whole number >= 0 per row; rows may repeat a target."""
    idx = tuple(indices) if hasattr(indices, "__iter__") and not isinstance(indices, (str, bytes)) else (indices,)
    for n, i in enumerate(idx):  # each row's target alone: whole, >= 0
        check_targets(f"{kind} (row {n})", (i,))
    out = tuple(as_index(i) for i in idx)
    if not out:
        raise ConfigError(f"{kind} needs one target per row, got none")
    return out


def _per_row_selector(kind: str, attn: torch.Tensor, indices: tuple[int, ...], on_rows: bool) -> torch.Tensor:
    """Bool selector for aligned maps ``attn [N, Q, K]``: row ``n`` marks query (``on_rows``) or key ``indices[n]``."""
    if attn.dim() != 3 or attn.shape[0] != len(indices):
        raise ConfigError(f"{kind} applies to aligned pairs [N, Q, K] with N = {len(indices)} (one target per "
                          f"row), got a map of shape {tuple(attn.shape)} — use pair_scores on N pairs")
    axis = -2 if on_rows else -1
    pos = torch.arange(attn.shape[axis], device=attn.device)  # [Q] or [K]
    sel = pos.unsqueeze(0) == torch.as_tensor(indices, device=attn.device).unsqueeze(1)  # [N, Q|K]
    return sel.unsqueeze(-1) if on_rows else sel.unsqueeze(-2)  # [N, Q, 1] or [N, 1, K]


@dataclass(frozen=True)
class WordPerRow(Intervention):
    """Batched :class:`OneWord`: on aligned pairs ``[N, ...]``, row ``n`` applies ``inner`` to word ``indices[n]``."""

    inner: Intervention = field(default_factory=Identity)
    indices: tuple[int, ...] = ()
    name = "word-per-row"

    def __post_init__(self):
        _check_inner(self.name, self.inner)
        object.__setattr__(self, "indices", _check_per_row(self.name, self.indices))

    @property
    def stochastic(self) -> bool:
        return bool(getattr(self.inner, "stochastic", False))

    def describe(self) -> str:
        return f"{self.inner.describe()} on one word per pair (words " + ", ".join(map(str, self.indices)) + ")"

    def with_seed(self, seed: int) -> "WordPerRow":
        return dataclasses.replace(self, inner=self.inner.with_seed(seed))

    def validate(self, *, n_words=None, n_regions=None, scope: str = "") -> "Intervention":
        _validate_inner(self.inner, n_words, n_regions, scope)
        check_range(self.name, "words", sorted(set(self.indices)), n_words, n_regions, scope)
        return self

    def _apply(self, attn, km, query, pair_ids):
        sel = _per_row_selector(self.name, attn, self.indices, query == "words")
        new = self.inner.apply(attn, km, query=query, pair_ids=pair_ids)  # [N, Q, K]
        return torch.where(sel, new, attn)


@dataclass(frozen=True)
class RegionPerRow(Intervention):
    """Batched :class:`MaskRegions`: on aligned pairs ``[N, ...]``, row ``n`` zeroes region ``indices[n]``."""

    indices: tuple[int, ...] = ()
    name = "region-per-row"

    def __post_init__(self):
        object.__setattr__(self, "indices", _check_per_row(self.name, self.indices))

    def describe(self) -> str:
        return "mask one region per pair (regions " + ", ".join(map(str, self.indices)) + ")"

    def validate(self, *, n_words=None, n_regions=None, scope: str = "") -> "Intervention":
        check_range(self.name, "regions", sorted(set(self.indices)), n_words, n_regions, scope)
        return self

    def _apply(self, attn, km, query, pair_ids):
        return attn.masked_fill(_per_row_selector(self.name, attn, self.indices, query == "regions"), 0)
