"""How each intervention kind changes an attention map: the classes (declared in the registry).

Every intervention maps ``attn [..., Q, K]`` to a map of the same shape; keys outside ``key_mask`` always come
out 0. The kinds' names, properties and descriptions live in :mod:`causmatch.interventions.registry`; the
package's docstring says how the two fit together.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from causmatch.counter_hash import QUERIES, check_seed, counter_hash32
from causmatch.errors import ConfigError

if TYPE_CHECKING:
    from causmatch.interventions.registry import InterventionKind


def _axis_selector(size: int, indices: tuple[int, ...], device) -> torch.Tensor:
    """Bool ``[size]``: True at the given indices (those beyond ``size`` are ignored)."""
    sel = torch.zeros(size, dtype=torch.bool, device=device)
    idx = [i for i in indices if i < size]
    if idx:
        sel[torch.tensor(idx, device=device)] = True
    return sel


MAX_TARGETS = 4096  # targets per intervention: more than any caption's words or any image's regions


def _registered(iv, *, exact: bool = False):
    """The registry's entry for ``iv`` (the registry imports these classes, so it is looked up when asked)."""
    from causmatch.interventions.registry import kind_of

    return kind_of(iv, exact=exact)


def as_index(value) -> int:
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


def spec_numbers(kind: str, arg: str, cast=int) -> list:
    """The comma-separated numbers of a spec's argument (``mask-regions=0,3`` → ``[0, 3]``), one-line errors."""
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


def check_targets(name: str, indices) -> tuple[int, ...]:
    """Targets as a tuple of distinct ints >= 0, at most ``MAX_TARGETS`` (a one-line ConfigError naming
    ``name`` otherwise), order kept; whole numbers of any type (``2``, ``2.0``, ``"2"``, numpy) are accepted."""
    if isinstance(indices, (str, bytes)) or not hasattr(indices, "__iter__"):
        indices = (indices,)
    try:
        out = tuple(as_index(i) for i in indices)
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


def check_range(kind: str, axis: str, indices, n_words, n_regions, scope: str) -> None:
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
        return _registered(self)

    @property
    def stochastic(self) -> bool:
        return hasattr(self, "seed")

    @property
    def reads_learned_map(self) -> bool:
        """Whether the output depends on the learned map (False: random, uniform, which a fast path may
        apply to no map at all). An unregistered subclass says True, the answer that is never wrong."""
        k = _registered(self, exact=True)
        return True if k is None else k.reads_learned_map

    @property
    def name(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        """One line for people: the kind's description (subclasses with parameters add them)."""
        k = _registered(self)
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
        object.__setattr__(self, "seed", check_seed(self.seed))

    @classmethod
    def _from_arg(cls, arg: str, text: str, seed: int) -> "Random":
        """``random`` or ``random=low,high`` (the spec's optional argument)."""
        bounds = spec_numbers("random", arg, float) if arg else [0.0, 2.0]
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
        return self.values(h, attn.dtype)

    def values(self, h: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The draws from hash bits ``h`` (int32, any shape; consumed): ``low + (high − low) · u / 2^32`` with
        ``u`` the unsigned value of the bits, computed in float64 and rounded once to ``dtype``.

        Where that equals float32 arithmetic bit for bit — ``low == 0`` and a power-of-two scale, as for the
        default U(0, 2) — it is computed in float32 (half the memory traffic): ``u`` is split into two 16-bit
        halves, ``hi · 2^16`` is exact and the one addition rounds ``u`` correctly, as the float64 → float32
        conversion does; the power-of-two scale is exact in both.
        """
        scale = (self.high - self.low) / 2.0**32
        if dtype == torch.float32 and self.low == 0 and math.frexp(scale)[0] == 0.5 and 2**-100 <= scale <= 2**60:
            lo = h.bitwise_and(0xFFFF).to(torch.float32)
            u = h.bitwise_right_shift_(16).bitwise_and_(0xFFFF).to(torch.float32)
            return u.mul_(65536.0).add_(lo).mul_(scale)
        u = h.to(torch.float64).remainder_(2.0**32)  # the unsigned value of the bits, exactly
        return u.mul_(scale).add_(self.low).to(dtype)


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

    def __post_init__(self):
        object.__setattr__(self, "seed", check_seed(self.seed))

    @property
    def name(self) -> str:
        return "shuffle"

    def describe(self) -> str:
        return f"shuffled attention (a permutation of the keys per row), seed {self.seed}"

    def _apply(self, attn, km, query, pair_ids):
        h = counter_hash32(attn.shape, self.seed, query, pair_ids, attn.device)
        return shuffle_keys(attn, km, h, -1)


def shuffle_keys(attn: torch.Tensor, key_mask: torch.Tensor, h: torch.Tensor, dim: int,
                 all_valid: bool | None = None) -> torch.Tensor:
    """Each row's valid keys (along ``dim``) permuted: the key in the ``j``-th valid place takes the weight of
    the valid key with the ``j``-th smallest unsigned hash (ties: the earlier key); invalid keys get 0.

    ``attn`` has 0 at invalid keys; ``key_mask`` (bool) broadcasts to it and may be unexpanded (the valid
    places are sorted on its own shape); ``h`` holds the int32 hash bits of every entry (consumed).
    ``all_valid``: whether every key is valid (None: checked). The layout is free: keys on the last axis are
    ordered by ``argsort``; keys on an outer axis (:mod:`causmatch.models.fast_counterfactual`) by a sorting
    network of whole slices (:func:`_network_sort_`, several times faster there) — the same permutation.
    """
    dim = dim % attn.dim()
    K = attn.shape[dim]
    if all_valid is None:
        all_valid = bool(key_mask.all())
    if dim == attn.dim() - 1:
        if all_valid:  # flipping the sign bit makes int32 order the unsigned order (no wider copy needed)
            perm = h.bitwise_xor_(-(1 << 31)).argsort(dim=dim, stable=True)
        else:
            big = torch.tensor(1 << 40, device=attn.device)  # sorts invalid keys after every valid one
            perm = torch.where(key_mask, h.long() & 0xFFFFFFFF, big).argsort(dim=dim, stable=True)
    else:  # unique keys (hash, key) packed in int64: sorted, their low bits are the permutation
        bits = max(1, (K - 1).bit_length())
        # the sign-flipped bits order as the unsigned hash; shifted left, the key's position fills the low bits
        packed = h.bitwise_xor_(-(1 << 31)).long().bitwise_left_shift_(bits)
        if not all_valid:  # invalid keys after every valid one
            packed = torch.where(key_mask, packed, torch.tensor(1 << (31 + bits), device=attn.device))
        perm = _network_sort_(packed.bitwise_or_(_positions(K, dim, attn)), dim).bitwise_and_((1 << bits) - 1)
    vals = attn.gather(dim, perm)  # past the valid count these are masked zeros
    if all_valid:
        return vals
    pos = _positions(K, dim, attn)
    order = torch.where(key_mask, pos, pos + K).argsort(dim=dim, stable=True)  # valid places, in order
    if torch.equal(order, pos.expand_as(order)):  # valid keys first (padding at the end): already in place
        return vals
    return torch.zeros_like(attn).scatter_(dim, order.expand_as(attn), vals)


def _positions(K: int, dim: int, like: torch.Tensor) -> torch.Tensor:
    """``0..K-1`` along ``dim`` (int64), broadcastable to ``like``."""
    shape = [1] * like.dim()
    shape[dim] = K
    return torch.arange(K, device=like.device).view(shape)


@functools.cache
def _network(n: int) -> tuple[tuple[int, int, int], ...]:
    """Batcher's odd–even merge sort for ``n`` keys, as runs ``(first, distance, count)`` of comparators
    ``(first + i, first + distance + i)``, ``i < count``; the runs of a round touch disjoint keys."""
    out = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    a = i + j
                    if a // (2 * p) != (a + k) // (2 * p):
                        continue
                    if out and out[-1][1] == k and out[-1][0] + out[-1][2] == a and out[-1][2] < k:
                        out[-1][2] += 1
                    else:
                        out.append([a, k, 1])
            k //= 2
        p *= 2
    return tuple(tuple(r) for r in out)


def _network_sort_(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Sort ``x`` along ``dim`` in place (ascending; returns ``x``) with :func:`_network`: each run of
    comparators is a ``minimum``/``maximum`` of two slabs of slices, so the work is whole-slice elementwise
    passes rather than one small sort per row."""
    n = x.shape[dim]
    tmp = torch.empty_like(x.narrow(dim, 0, max(1, n // 2)))
    for a, d, m in _network(n):
        lo, hi, t = x.narrow(dim, a, m), x.narrow(dim, a + d, m), tmp.narrow(dim, 0, m)
        torch.minimum(lo, hi, out=t)
        torch.maximum(lo, hi, out=hi)
        lo.copy_(t)
    return x


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
        return _registered(self).name

    @property
    def _target(self) -> str:
        return _registered(self).axis

    @property
    def name(self) -> str:
        return f"{self._kind}=" + ",".join(str(i) for i in self.indices)

    def describe(self) -> str:
        verb = "keep only" if self._keep else "mask"
        return f"{verb} {self._target} " + ", ".join(str(i) for i in self.indices)

    def validate(self, *, n_words=None, n_regions=None, scope: str = "") -> "Intervention":
        check_range(self._kind, self._target, self.indices, n_words, n_regions, scope)
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
        check_range("swap-words", "words", (self.i, self.j), n_words, n_regions, scope)
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
