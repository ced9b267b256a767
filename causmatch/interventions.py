"""Interventions ``do(α = ᾱ)`` on attention maps, and their registry: every kind declared once.

Every intervention maps ``attn [..., Q, K]`` to a map of the same shape; keys outside ``key_mask``
always come out 0. ``query`` says what the rows are: ``"words"`` (t2i) or ``"regions"`` (i2t), so that
"mask words" zeroes word *rows* in t2i and word *columns* in i2t. A row left all zero removes that query
from the pair's score. Relevance is a cosine, so no intervention needs to renormalise its rows.

The registry (:data:`KINDS`, at the end of this module) declares each kind once: its name (the spec used
on the CLI and in URLs), its class, whether it is stochastic, whether it reads the learned map, the axis
its targets index (``words``/``regions``/``none``) and how many it takes, a one-line description for the
UI, an example spec. :func:`parse_intervention`, ``describe()``, :func:`target_rule`, the validators and
:data:`COUNTERFACTUAL_KINDS` are built from it; :func:`get_kind` and :func:`kind_of` look kinds up.

Stochastic interventions draw from a counter-based hash keyed by ``(seed, image id, caption id, q, k)``:
a pair's counterfactual is the same whatever batch or shard it is computed in. Indices beyond a map's
size (a word past a caption's end) have no effect when a map is *applied*, so a spec means the same for
every batch.

Validation (before any work): construction refuses empty, negative, non-integer and duplicate targets
and a ``swap-words`` without exactly two distinct words. Range depends on the data, so callers check
it with :meth:`Intervention.validate` (``n_words``/``n_regions``: the pair's word and region counts in
``explain``, the split's maxima for whole-split runs) or :func:`validate_intervention`; pickers learn
which axis and how many targets a kind takes from :func:`target_rule` (or the kind itself). Every
failure is a one-line :class:`ConfigError`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from causmatch.counter_hash import QUERIES, counter_hash, counter_hash32
from causmatch.errors import ConfigError


def _axis_selector(size: int, indices: tuple[int, ...], device) -> torch.Tensor:
    """Bool ``[size]``: True at the given indices (those beyond ``size`` are ignored)."""
    sel = torch.zeros(size, dtype=torch.bool, device=device)
    idx = [i for i in indices if i < size]
    if idx:
        sel[torch.tensor(idx, device=device)] = True
    return sel


MAX_TARGETS = 4096  # targets per intervention: more than any caption's words or any image's regions


def _as_index(value) -> int:
    """A whole number (int, integral float/numpy scalar; never bool) or ValueError."""
    if isinstance(value, bool) or value is None:
        raise ValueError(value)
    if isinstance(value, int):
        return value
    if hasattr(value, "__index__"):
        return int(value.__index__())
    f = float(value)  # str / numpy float: must be integral
    if not f.is_integer():
        raise ValueError(value)
    return int(f)


def check_targets(name: str, indices) -> tuple[int, ...]:
    """Targets as a tuple of distinct ints >= 0, at most ``MAX_TARGETS`` (a one-line ConfigError naming
    ``name`` otherwise), order kept; whole numbers of any type (``2``, ``2.0``, ``"2"``, numpy) are accepted."""
    if isinstance(indices, (str, bytes)) or not hasattr(indices, "__iter__"):
        indices = (indices,)
    try:
        out = tuple(_as_index(i) for i in indices)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{name} needs whole-number indices, got {indices!r}") from None
    if name == "swap-words" and len(out) == 2 and out[0] == out[1] >= 0:
        raise ConfigError(f"swap-words needs two different words, got {out[0]} twice — e.g. swap-words=1,4")
    if not out or any(i < 0 for i in out):
        raise ConfigError(f"{name} needs one or more indices >= 0, got {list(out)!r}")
    if len(out) > MAX_TARGETS:
        raise ConfigError(f"{name} got {len(out)} targets; at most {MAX_TARGETS} are allowed")
    dup = sorted({i for i in out if out.count(i) > 1}) if len(set(out)) != len(out) else []
    if dup:
        raise ConfigError(f"{name} lists {', '.join(map(str, dup))} more than once — give each target once")
    return out


def _range_error(what: str, kind: str, bad: list[int], n: int, scope: str) -> ConfigError:
    if n < 1:
        return ConfigError(f"{kind}: there are no {what} to target{scope}")
    one = {"words": "word", "regions": "region"}[what]
    return ConfigError(f"{kind}: {one} {', '.join(map(str, bad))} out of range{scope} — "
                       f"valid {what}: 0..{n - 1}")


def _check_range(kind: str, axis: str, indices, n_words, n_regions, scope: str) -> None:
    n = n_words if axis == "words" else n_regions
    if n is None:
        return
    bad = sorted(i for i in indices if i >= int(n))
    if bad:
        raise _range_error(axis, kind, bad, int(n), scope)


@dataclass(frozen=True)
class Intervention:
    """Base class. Subclasses implement ``_apply(attn, key_mask, query, pair_ids)``; each kind is
    declared in :data:`KINDS` (name, properties, description)."""

    @property
    def kind(self) -> "InterventionKind | None":
        """The registered kind this object is (its class or the nearest registered base class), or None."""
        return kind_of(self)

    @property
    def stochastic(self) -> bool:
        return hasattr(self, "seed")

    @property
    def reads_learned_map(self) -> bool:
        """Whether the output depends on the learned map (False: random, uniform, which a fast path may
        apply to no map at all). An unregistered subclass says True, the answer that is never wrong."""
        k = kind_of(self, exact=True)
        return True if k is None else k.reads_learned_map

    @property
    def name(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        """One line for people: the kind's description (subclasses with parameters add them)."""
        k = kind_of(self)
        return k.description if k is not None else self.name

    def with_seed(self, seed: int) -> "Intervention":
        """The same intervention with another seed (deterministic ones return themselves)."""
        return dataclasses.replace(self, seed=int(seed)) if self.stochastic else self

    def apply(self, attn: torch.Tensor, key_mask: torch.Tensor, *, query: str = "words",
              pair_ids=None) -> torch.Tensor:
        """``attn [..., Q, K]`` → intervened map ``[..., Q, K]``; ``key_mask [..., Q|1, K]`` bool.

        ``pair_ids``: (image ids, caption ids), each broadcastable to ``attn.shape[:-2]``; default: positions.
        """
        if query not in QUERIES:
            raise ConfigError(f"query={query!r} is not valid — use 'words' (t2i) or 'regions' (i2t)")
        km = key_mask.expand_as(attn)
        return self._apply(attn * km, km, query, pair_ids) * km

    def __call__(self, attn, key_mask, **kw):
        return self.apply(attn, key_mask, **kw)

    def validate(self, *, n_words: int | None = None, n_regions: int | None = None,
                 scope: str = "") -> "Intervention":
        """Check the targets against the data; return ``self`` or raise a one-line ConfigError.

        ``n_words``: the caption's word count (its tokens, the W axis of its maps) — for a pair, or the
        split's longest caption for a whole-split run; ``n_regions``: the image's region count (the R
        axis up to its last valid region), or the split's largest. None skips that axis. ``scope`` is
        added to the message (e.g. " for image 3 and caption 15"). Untargeted kinds always pass.
        """
        return self


@dataclass(frozen=True)
class Identity(Intervention):
    """No intervention (the learned attention)."""

    name = "none"

    def _apply(self, attn, km, query, pair_ids):
        return attn


@dataclass(frozen=True)
class Random(Intervention):
    """ᾱ ~ U(low, high) i.i.d. over the valid keys (CAL's random attention)."""

    low: float = 0.0
    high: float = 2.0
    seed: int = 0

    def __post_init__(self):
        if not (math.isfinite(self.low) and math.isfinite(self.high) and 0 <= self.low < self.high):
            raise ConfigError(f"random attention needs 0 <= low < high, got low={self.low}, high={self.high}")

    @classmethod
    def _from_arg(cls, arg: str, text: str, seed: int) -> "Random":
        """``random`` or ``random=low,high`` (the spec's optional argument)."""
        bounds = _numbers("random", arg, float) if arg else [0.0, 2.0]
        if len(bounds) != 2:
            raise ConfigError(f"intervention '{text}' needs two bounds, e.g. random=0,2")
        if not all(math.isfinite(b) for b in bounds):
            raise ConfigError(f"intervention '{text}' needs finite bounds, e.g. random=0,2")
        return cls(low=bounds[0], high=bounds[1], seed=seed)

    @property
    def name(self) -> str:
        return "random" if (self.low, self.high) == (0.0, 2.0) else f"random={self.low:g},{self.high:g}"

    def describe(self) -> str:
        return f"random attention U({self.low:g}, {self.high:g}), seed {self.seed}"

    def _apply(self, attn, km, query, pair_ids):
        h = counter_hash32(attn.shape, self.seed, query, pair_ids, attn.device)  # [..., Q, K] int32 bits
        # low + (high - low) * h / 2^32 in float64, as two in-place passes (the scale is exact: a power of 2).
        u = h.to(torch.float64).remainder_(2.0**32)  # the unsigned value of the bits, exactly
        return u.mul_((self.high - self.low) / 2.0**32).add_(self.low).to(attn.dtype)


@dataclass(frozen=True)
class Uniform(Intervention):
    """Every valid key gets the same weight."""

    name = "uniform"

    def _apply(self, attn, km, query, pair_ids):
        w = km.to(attn.dtype)
        return w / w.sum(-1, keepdim=True).clamp_min(1)


@dataclass(frozen=True)
class Reversed(Intervention):
    """``max(α) − α`` per row over the valid keys: the most attended key gets the least weight."""

    name = "reversed"

    def _apply(self, attn, km, query, pair_ids):
        return attn.amax(-1, keepdim=True) - attn  # attention is >= 0 and masked keys are 0


@dataclass(frozen=True)
class Shuffle(Intervention):
    """A random permutation of each row's valid keys (the weights are kept, their places change)."""

    seed: int = 0

    @property
    def name(self) -> str:
        return "shuffle"

    def describe(self) -> str:
        return f"shuffled attention (a permutation of the keys per row), seed {self.seed}"

    def _apply(self, attn, km, query, pair_ids):
        K = attn.shape[-1]
        big = torch.tensor(1 << 40, device=attn.device)  # sorts invalid keys after every valid one
        h = counter_hash(attn.shape, self.seed, query, pair_ids, attn.device)
        perm = torch.where(km, h, big).argsort(dim=-1, stable=True)  # [..., Q, K] valid keys, random order
        pos = torch.arange(K, device=attn.device).expand_as(attn)
        order = torch.where(km, pos, pos + K).argsort(dim=-1, stable=True)  # valid keys, in order
        vals = attn.gather(-1, perm)  # [..., Q, K]; past the valid count these are masked zeros
        return torch.zeros_like(attn).scatter(-1, order, vals)


@dataclass(frozen=True)
class _Targeted(Intervention):
    """Zero (mask) or keep some regions or words, on whichever axis they sit for this direction
    (the axis and the kind's name come from the registry)."""

    indices: tuple[int, ...] = ()
    _keep = False

    def __post_init__(self):
        idx = (self.indices,) if isinstance(self.indices, int) else self.indices
        object.__setattr__(self, "indices", check_targets(self._kind, idx))

    @classmethod
    def _from_targets(cls, targets: list[int]) -> "_Targeted":
        return cls(indices=tuple(targets))

    @property
    def _kind(self) -> str:
        return kind_of(self).name

    @property
    def _target(self) -> str:
        return kind_of(self).axis

    @property
    def name(self) -> str:
        return f"{self._kind}=" + ",".join(str(i) for i in self.indices)

    def describe(self) -> str:
        verb = "keep only" if self._keep else "mask"
        return f"{verb} {self._target} " + ", ".join(str(i) for i in self.indices)

    def validate(self, *, n_words=None, n_regions=None, scope: str = "") -> "Intervention":
        _check_range(self._kind, self._target, self.indices, n_words, n_regions, scope)
        return self

    def _apply(self, attn, km, query, pair_ids):
        on_rows = query == self._target  # the target is the query axis in this direction
        axis = -2 if on_rows else -1
        sel = _axis_selector(attn.shape[axis], self.indices, attn.device)
        keep = sel if self._keep else ~sel
        keep = keep.unsqueeze(-1) if on_rows else keep  # [Q, 1] or [K]
        return attn * keep


@dataclass(frozen=True)
class MaskRegions(_Targeted):
    """Zero the attention on (t2i) or of (i2t) the given regions."""


@dataclass(frozen=True)
class MaskWords(_Targeted):
    """Zero the given words: their rows in t2i (removing them from the score), their columns in i2t."""


@dataclass(frozen=True)
class KeepRegions(_Targeted):
    """Keep only the given regions."""

    _keep = True


@dataclass(frozen=True)
class KeepWords(_Targeted):
    """Keep only the given words."""

    _keep = True


@dataclass(frozen=True)
class SwapWords(Intervention):
    """Swap the attention of words ``i`` and ``j``: rows in t2i, columns in i2t."""

    i: int = 0
    j: int = 1

    def __post_init__(self):
        ij = check_targets("swap-words", (self.i, self.j))  # >= 0 and different
        object.__setattr__(self, "i", ij[0])
        object.__setattr__(self, "j", ij[1])

    @classmethod
    def _from_targets(cls, targets: list[int]) -> "SwapWords":
        return cls(targets[0], targets[1])

    def validate(self, *, n_words=None, n_regions=None, scope: str = "") -> "Intervention":
        _check_range("swap-words", "words", (self.i, self.j), n_words, n_regions, scope)
        return self

    @property
    def name(self) -> str:
        return f"swap-words={self.i},{self.j}"

    def describe(self) -> str:
        return f"swap the attention of words {self.i} and {self.j}"

    def _apply(self, attn, km, query, pair_ids):
        axis = -2 if query == "words" else -1
        n = attn.shape[axis]
        if self.i >= n or self.j >= n:
            return attn
        perm = torch.arange(n, device=attn.device)
        perm[self.i], perm[self.j] = self.j, self.i
        return attn.index_select(axis if axis >= 0 else attn.dim() + axis, perm)


# ---------------------------------------------------------------------- per-word and per-row kinds
# Library-only kinds (no spec string): the per-word and per-region effects are built from them.

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
        _check_range("one-word", "words", (self.index,), n_words, n_regions, scope)
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
    out = tuple(_as_index(i) for i in idx)
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
        _check_range(self.name, "words", sorted(set(self.indices)), n_words, n_regions, scope)
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
        _check_range(self.name, "regions", sorted(set(self.indices)), n_words, n_regions, scope)
        return self

    def _apply(self, attn, km, query, pair_ids):
        return attn.masked_fill(_per_row_selector(self.name, attn, self.indices, query == "regions"), 0)


# ---------------------------------------------------------------------- the registry
AXES = ("words", "regions", "none")


@dataclass(frozen=True)
class TargetRule:
    """What a targeted kind takes: targets on ``axis`` ("words" or "regions"), between ``min_count``
    and ``max_count`` of them (distinct, each in ``0..n-1`` for the pair's or split's count ``n``)."""

    kind: str
    axis: str
    min_count: int
    max_count: int


@dataclass(frozen=True)
class InterventionKind:
    """One kind of intervention, declared once in :data:`KINDS`.

    ``name``: the spec (CLI, URLs, ``iv.name`` up to the targets); ``stochastic``: its draws depend on a
    seed (wrappers — ``one-word``, ``word-per-row`` — say False: an object's ``.stochastic`` follows its
    inner intervention); ``reads_learned_map``: its output depends on the learned map; ``axis``: what its
    targets index, ``words``/``regions``/``none``, ``min_targets..max_targets`` of them; ``description``:
    one line for people; ``example``: a valid spec; ``counterfactual``: a whole-map counterfactual for the
    effect ``S(α) − S(ᾱ)``; ``spec``: it has a spec string (False: built in code only); ``aliases``: other
    spec names.
    """

    name: str
    cls: type
    stochastic: bool
    reads_learned_map: bool
    axis: str
    min_targets: int
    max_targets: int
    description: str
    example: str = ""
    counterfactual: bool = False
    spec: bool = True
    aliases: tuple[str, ...] = ()

    def __post_init__(self):  # the table below is the only caller: a wrong row fails at import
        assert self.axis in AXES and (self.axis == "none") == (self.max_targets == 0), self
        assert 0 <= self.min_targets <= self.max_targets <= MAX_TARGETS, self
        assert not self.spec or _names_its_kind(self.example, self.name), self

    @property
    def targeted(self) -> bool:
        return self.axis != "none"

    @property
    def rule(self) -> TargetRule | None:
        """The :class:`TargetRule` pickers use: targeted kinds with a spec; None otherwise."""
        if not (self.targeted and self.spec):
            return None
        return TargetRule(self.name, self.axis, self.min_targets, self.max_targets)


def _names_its_kind(example: str, name: str) -> bool:
    """An example spec names its own kind (checked at import for every row of the table)."""
    return example.partition("=")[0] == name


_N = MAX_TARGETS
KINDS: dict[str, InterventionKind] = {k.name: k for k in (
    #              name            class         stoch  reads  axis       min max
    InterventionKind("none", Identity, False, True, "none", 0, 0,
                     "learned attention (no intervention)", "none", aliases=("identity",)),
    InterventionKind("random", Random, True, False, "none", 0, 0,
                     "random attention: weights drawn uniformly at random (random=low,high; default 0,2)",
                     "random", counterfactual=True),
    InterventionKind("uniform", Uniform, False, False, "none", 0, 0,
                     "uniform attention over the valid keys", "uniform", counterfactual=True),
    InterventionKind("reversed", Reversed, False, True, "none", 0, 0,
                     "reversed attention (max − α per row)", "reversed", counterfactual=True),
    InterventionKind("shuffle", Shuffle, True, True, "none", 0, 0,
                     "shuffled attention: each row's weights permuted at random over its keys", "shuffle",
                     counterfactual=True),
    InterventionKind("mask-regions", MaskRegions, False, True, "regions", 1, _N,
                     "mask the given regions (no word attends to them)", "mask-regions=0,3"),
    InterventionKind("keep-regions", KeepRegions, False, True, "regions", 1, _N,
                     "keep only the given regions", "keep-regions=0,3"),
    InterventionKind("mask-words", MaskWords, False, True, "words", 1, _N,
                     "mask the given words (removed from the caption's score)", "mask-words=0,3"),
    InterventionKind("keep-words", KeepWords, False, True, "words", 1, _N,
                     "keep only the given words", "keep-words=0,3"),
    InterventionKind("swap-words", SwapWords, False, True, "words", 2, 2,
                     "swap the attention of two words", "swap-words=1,4"),
    InterventionKind("one-word", OneWord, False, True, "words", 1, 1,
                     "an intervention on one word's attention only (per-word effects)", spec=False),
    InterventionKind("word-per-row", WordPerRow, False, True, "words", 1, _N,
                     "batched one-word: pair n intervenes on its own word (per-word effects)", spec=False),
    InterventionKind("region-per-row", RegionPerRow, False, True, "regions", 1, _N,
                     "batched mask-regions: pair n masks its own region (per-region effects)", spec=False),
)}
_BY_CLASS = {k.cls: k for k in KINDS.values()}
_SPEC_NAMES = {n: k for k in KINDS.values() if k.spec for n in (k.name, *k.aliases)}

COUNTERFACTUAL_KINDS = tuple(k.name for k in KINDS.values() if k.counterfactual)
_SPECS = ", ".join(k.example for k in KINDS.values() if k.spec)


def get_kind(name: str) -> InterventionKind:
    """The kind named ``name`` (a spec name or alias, any case; library-only kinds by their name too);
    a one-line ConfigError for an unknown name."""
    key = str(name).strip().lower().partition("=")[0]
    k = _SPEC_NAMES.get(key) or KINDS.get(key)
    if k is None:
        raise ConfigError(f"unknown intervention kind '{name}' — use one of: {', '.join(pickable_kinds())}, none")
    return k


def kind_of(iv, *, exact: bool = False) -> InterventionKind | None:
    """The registered kind of an intervention object: its class's, or with ``exact=False`` its nearest
    registered base class's; None for anything else. ``exact=True`` is for code that relies on a kind's
    implementation (a fast path), which a subclass may have changed."""
    if exact:
        return _BY_CLASS.get(type(iv))
    for c in type(iv).__mro__:
        k = _BY_CLASS.get(c)
        if k is not None:
            return k
    return None


def pickable_kinds() -> tuple[str, ...]:
    """The kinds a person picks from (every kind with a spec except ``none``), in the registry's order."""
    return tuple(k.name for k in KINDS.values() if k.spec and k.name != "none")


def target_rule(kind: str) -> TargetRule | None:
    """The :class:`TargetRule` of a targeted kind (``"mask-regions"``…), None for kinds without targets."""
    k = _SPEC_NAMES.get(str(kind).strip().lower())
    return None if k is None else k.rule


def resolve_intervention(spec, seed: int = 0):
    """An intervention from a spec string (:func:`parse_intervention`; None is ``none``), an Intervention,
    or a duck-typed object with ``apply`` (returned as it is); a one-line ConfigError for anything else."""
    if spec is None or isinstance(spec, str):
        return parse_intervention(spec, seed=seed)
    if not hasattr(spec, "apply"):
        raise ConfigError(f"{spec!r} is not an intervention — pass a name like 'random' or an Intervention object")
    return spec


def validate_intervention(spec, *, n_words: int | None = None, n_regions: int | None = None, seed: int = 0,
                          scope: str = "") -> Intervention:
    """:func:`resolve_intervention`, checked against the data's sizes (:meth:`Intervention.validate`; a
    duck-typed object has no targets to check); the checked intervention, or a one-line ConfigError."""
    iv = resolve_intervention(spec, seed)
    return iv.validate(n_words=n_words, n_regions=n_regions, scope=scope) if isinstance(iv, Intervention) else iv


def _numbers(kind: str, arg: str, cast=int) -> list:
    parts = [x.strip() for x in arg.split(",")]
    if any(x == "" for x in parts):
        raise ConfigError(f"intervention '{kind}={arg}' has an empty target — give comma-separated numbers, "
                          f"e.g. {kind}=0,3")
    if len(parts) > MAX_TARGETS:
        raise ConfigError(f"intervention '{kind}' got {len(parts)} targets; at most {MAX_TARGETS} are allowed")
    try:
        return [cast(x) for x in parts]
    except ValueError:
        raise ConfigError(f"intervention '{kind}={arg}' needs comma-separated whole numbers, "
                          f"e.g. {kind}=0,3") from None


_COUNT_WORDS = {1: "one", 2: "two", 3: "three"}


def parse_intervention(spec: str | None, seed: int = 0) -> Intervention:
    """Build an intervention from its spec (the inverse of ``.name``), e.g. ``"mask-regions=0,3"``.

    ``kind`` or ``kind=arguments``: untargeted kinds take none (``random`` optionally ``low,high``),
    targeted kinds take their targets, comma-separated; stochastic kinds get ``seed``.
    """
    text = "none" if spec is None else str(spec).strip().lower()
    name, _, arg = text.partition("=")
    k = _SPEC_NAMES.get(name)
    if k is None:
        raise ConfigError(f"unknown intervention '{spec}' — use one of: {_SPECS}")
    if k.targeted:
        if not arg:
            raise ConfigError(f"intervention '{name}' needs its {k.axis} as targets, e.g. {k.example}")
        targets = _numbers(name, arg)
        if not k.min_targets <= len(targets) <= k.max_targets:  # at most MAX_TARGETS: checked by _numbers
            n = _COUNT_WORDS.get(k.min_targets, str(k.min_targets))
            raise ConfigError(f"intervention '{text}' needs {n} {k.axis[:-1]} indices, e.g. {k.example}")
        return k.cls._from_targets(targets)
    if hasattr(k.cls, "_from_arg"):
        return k.cls._from_arg(arg, text, seed)
    if arg:
        raise ConfigError(f"intervention '{name}' takes no targets — write just '{name}'")
    return k.cls(seed=seed) if k.stochastic else k.cls()


def format_spec(kind: str, targets=()) -> str:
    """The spec of ``kind`` with ``targets``, as :func:`parse_intervention` reads it and ``.name`` writes
    it (``format_spec("mask-regions", [0, 3]) == "mask-regions=0,3"``, ``format_spec("uniform") ==
    "uniform"``); a one-line ConfigError for an unknown or library-only kind, targets given to an
    untargeted kind, or targets the kind refuses (the same checks as parsing)."""
    k = get_kind(kind)
    if not k.spec:
        raise ConfigError(f"intervention '{k.name}' is built in code and has no spec — use one of: "
                          f"{', '.join(pickable_kinds())}, none")
    if targets is None:
        targets = ()
    targets = list(targets if hasattr(targets, "__iter__") and not isinstance(targets, (str, bytes)) else [targets])
    if targets and not k.targeted:
        raise ConfigError(f"intervention '{k.name}' takes no targets — write just '{k.name}'")
    text = k.name + ("=" + ",".join(str(t) for t in targets) if targets else "")
    return parse_intervention(text).name
