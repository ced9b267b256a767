"""Interventions ``do(α = ᾱ)`` on attention maps: small immutable objects applied to a map.

Every intervention maps ``attn [..., Q, K]`` to a map of the same shape; keys outside ``key_mask``
always come out 0. ``query`` says what the rows are: ``"words"`` (t2i) or ``"regions"`` (i2t), so that
"mask words" zeroes word *rows* in t2i and word *columns* in i2t. A row left all zero removes that query
from the pair's score. Relevance is a cosine, so no intervention needs to renormalise its rows.

Stochastic interventions draw from a counter-based hash keyed by ``(seed, image id, caption id, q, k)``:
a pair's counterfactual is the same whatever batch or shard it is computed in. Indices beyond a map's
size (a word past a caption's end) have no effect when a map is *applied*, so a spec means the same for
every batch.

Validation (before any work): construction refuses empty, negative, non-integer and duplicate targets
and a ``swap-words`` without exactly two distinct words. Range depends on the data, so callers check
it with :meth:`Intervention.validate` (``n_words``/``n_regions``: the pair's word and region counts in
``explain``, the split's maxima for whole-split runs) or :func:`validate_intervention`; pickers learn
which axis and how many targets a kind takes from :func:`target_rule`. Every failure is a one-line
:class:`ConfigError`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from causmatch.errors import ConfigError

COUNTERFACTUAL_KINDS = ("random", "uniform", "reversed", "shuffle")

_M32 = 0xFFFFFFFF
_QUERY_SALT = {"words": 0x2545F491, "regions": 0x5851F42D}


def _mix(x: torch.Tensor) -> torch.Tensor:
    """32-bit avalanche hash of int64 values in [0, 2^32); the constants (< 2^31) never overflow int64."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _M32
    x = x ^ (x >> 15)
    x = (x * 0x1B873593) & _M32
    return x ^ (x >> 16)


def _default_ids(lead: torch.Size, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions as ids: ``[I, C]`` maps → (rows, columns); ``[N]`` aligned pairs → (n, n)."""
    if len(lead) >= 2:
        return (torch.arange(lead[-2], device=device).unsqueeze(1), torch.arange(lead[-1], device=device).unsqueeze(0))
    n = lead[0] if len(lead) == 1 else 1
    ids = torch.arange(n, device=device).reshape(lead)
    return ids, ids


def _mix32_(x: torch.Tensor) -> torch.Tensor:
    """:func:`_mix` on int32 tensors holding the same 32 bits, in place (returns ``x``).

    int32 multiplication wraps modulo 2^32 exactly as the masked int64 product does, and masking
    after each arithmetic shift turns it into the logical shift of the unsigned value, so the bits
    equal :func:`_mix`'s — at a fraction of the cost (int64 multiplies do not vectorise).
    """
    t = torch.empty_like(x)  # one scratch buffer: fresh temporaries per step cost ~3x the arithmetic
    for shift, mult in ((16, 0x7FEB352D), (15, 0x1B873593), (16, None)):
        torch.bitwise_right_shift(x, shift, out=t).bitwise_and_((1 << (32 - shift)) - 1)
        x.bitwise_xor_(t)
        if mult is not None:
            x.mul_(mult)
    return x


def _as_int32(x: torch.Tensor) -> torch.Tensor:
    """int64 values in [0, 2^32) → int32 with the same bits."""
    return torch.where(x >= 1 << 31, x - (1 << 32), x).to(torch.int32)


def counter_hash32(shape: torch.Size, seed: int, query: str, pair_ids, device) -> torch.Tensor:
    """:func:`counter_hash` as int32 bit patterns (``int64 value = h & 0xFFFFFFFF``), ``[..., Q, K]``."""
    lead, (Q, K) = shape[:-2], shape[-2:]
    img, cap = pair_ids if pair_ids is not None else _default_ids(lead, device)
    h = _mix(torch.tensor((seed ^ _QUERY_SALT[query]) & _M32, device=device))
    h = _mix(h ^ (torch.as_tensor(img, device=device).long() & _M32))
    h = _mix(h ^ (torch.as_tensor(cap, device=device).long() & _M32))  # [...] per pair
    h = _as_int32(h.expand(lead)).unsqueeze(-1).unsqueeze(-1)  # [..., 1, 1]
    q = torch.arange(Q, device=device, dtype=torch.int32).view(Q, 1)
    k = torch.arange(K, device=device, dtype=torch.int32).view(1, K)
    return _mix32_(_mix32_(h ^ q) ^ k)  # [..., Q, K]; the first mix is on [..., Q, 1] only


def counter_hash(shape: torch.Size, seed: int, query: str, pair_ids, device) -> torch.Tensor:
    """Hash values in [0, 2^32) (int64) for every entry of a ``[..., Q, K]`` map, from (seed, ids, q, k) only."""
    return counter_hash32(shape, seed, query, pair_ids, device).long() & _M32


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


def _check_indices(name: str, indices) -> tuple[int, ...]:
    """Targets as a tuple of distinct ints >= 0 (ConfigError otherwise), order kept."""
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
    one = {"words": "word", "regions": "region", "queries": "query"}.get(what, what)
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
    """Base class. Subclasses implement ``_apply(attn, key_mask, query, pair_ids)``."""

    @property
    def stochastic(self) -> bool:
        return hasattr(self, "seed")

    @property
    def name(self) -> str:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    def with_seed(self, seed: int) -> "Intervention":
        """The same intervention with another seed (deterministic ones return themselves)."""
        return dataclasses.replace(self, seed=int(seed)) if self.stochastic else self

    def apply(self, attn: torch.Tensor, key_mask: torch.Tensor, *, query: str = "words",
              pair_ids=None) -> torch.Tensor:
        """``attn [..., Q, K]`` → intervened map ``[..., Q, K]``; ``key_mask [..., Q|1, K]`` bool.

        ``pair_ids``: (image ids, caption ids), each broadcastable to ``attn.shape[:-2]``; default: positions.
        """
        if query not in _QUERY_SALT:
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

    def describe(self) -> str:
        return "learned attention (no intervention)"

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

    def describe(self) -> str:
        return "uniform attention over the valid keys"

    def _apply(self, attn, km, query, pair_ids):
        w = km.to(attn.dtype)
        return w / w.sum(-1, keepdim=True).clamp_min(1)


@dataclass(frozen=True)
class Reversed(Intervention):
    """``max(α) − α`` per row over the valid keys: the most attended key gets the least weight."""

    name = "reversed"

    def describe(self) -> str:
        return "reversed attention (max − α per row)"

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
    """Zero (mask) or keep some regions or words, on whichever axis they sit for this direction."""

    indices: tuple[int, ...] = ()
    _target = "regions"
    _keep = False

    def __post_init__(self):
        idx = (self.indices,) if isinstance(self.indices, int) else self.indices
        object.__setattr__(self, "indices", _check_indices(self._kind, idx))

    @property
    def _kind(self) -> str:
        return ("keep-" if self._keep else "mask-") + self._target

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

    _target = "regions"


@dataclass(frozen=True)
class MaskWords(_Targeted):
    """Zero the given words: their rows in t2i (removing them from the score), their columns in i2t."""

    _target = "words"


@dataclass(frozen=True)
class KeepRegions(_Targeted):
    """Keep only the given regions."""

    _target = "regions"
    _keep = True


@dataclass(frozen=True)
class KeepWords(_Targeted):
    """Keep only the given words."""

    _target = "words"
    _keep = True


@dataclass(frozen=True)
class SwapWords(Intervention):
    """Swap the attention of words ``i`` and ``j``: rows in t2i, columns in i2t."""

    i: int = 0
    j: int = 1

    def __post_init__(self):
        ij = _check_indices("swap-words", (self.i, self.j))  # >= 0 and different
        object.__setattr__(self, "i", ij[0])
        object.__setattr__(self, "j", ij[1])

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


@dataclass(frozen=True)
class OnlyQueries(Intervention):
    """Apply ``inner`` to the given query rows only (the others keep the learned attention)."""

    inner: Intervention = field(default_factory=lambda: Random())
    indices: tuple[int, ...] = ()

    def __post_init__(self):
        if not isinstance(self.inner, Intervention):
            raise ConfigError(f"OnlyQueries needs an Intervention, got {type(self.inner).__name__}")
        object.__setattr__(self, "indices", _check_indices("only-queries", self.indices))

    @property
    def stochastic(self) -> bool:
        return self.inner.stochastic

    @property
    def name(self) -> str:
        return f"{self.inner.name}@" + ",".join(str(i) for i in self.indices)

    def describe(self) -> str:
        return f"{self.inner.describe()} on queries " + ", ".join(str(i) for i in self.indices)

    def with_seed(self, seed: int) -> "OnlyQueries":
        return dataclasses.replace(self, inner=self.inner.with_seed(seed))

    def validate(self, *, n_words=None, n_regions=None, scope: str = "") -> "Intervention":
        """The inner intervention, and the query rows against the larger query axis given (words or
        regions: which one is the query depends on the model's direction)."""
        self.inner.validate(n_words=n_words, n_regions=n_regions, scope=scope)
        sizes = [int(n) for n in (n_words, n_regions) if n is not None]
        if sizes:
            _check_range("only-queries", "queries", self.indices, max(sizes), max(sizes), scope)
        return self

    def _apply(self, attn, km, query, pair_ids):
        rows = _axis_selector(attn.shape[-2], self.indices, attn.device).unsqueeze(-1)  # [Q, 1]
        return torch.where(rows, self.inner.apply(attn, km, query=query, pair_ids=pair_ids), attn)


_SIMPLE = {"none": Identity, "identity": Identity, "uniform": Uniform, "reversed": Reversed}
_TARGETED = {"mask-regions": MaskRegions, "mask-words": MaskWords, "keep-regions": KeepRegions,
             "keep-words": KeepWords}
_SPECS = "none, random, uniform, reversed, shuffle, mask-regions=0,3, keep-regions=2, mask-words=1, " \
         "keep-words=1, swap-words=1,4"


@dataclass(frozen=True)
class TargetRule:
    """What a targeted kind takes: targets on ``axis`` ("words" or "regions"), between ``min_count``
    and ``max_count`` of them (distinct, each in ``0..n-1`` for the pair's or split's count ``n``)."""

    kind: str
    axis: str
    min_count: int
    max_count: int


_RULES = {k: TargetRule(k, cls._target, 1, MAX_TARGETS) for k, cls in _TARGETED.items()}
_RULES["swap-words"] = TargetRule("swap-words", "words", 2, 2)


def target_rule(kind: str) -> TargetRule | None:
    """The :class:`TargetRule` of a targeted kind (``"mask-regions"``…), None for kinds without targets."""
    return _RULES.get(str(kind).strip().lower())


def validate_intervention(spec, *, n_words: int | None = None, n_regions: int | None = None, seed: int = 0,
                          scope: str = "") -> Intervention:
    """Parse ``spec`` (a string, an Intervention or None) and check it against the data's sizes
    (:meth:`Intervention.validate`); the checked Intervention, or a one-line ConfigError."""
    if spec is None or isinstance(spec, str):
        iv = parse_intervention(spec, seed=seed)
    elif isinstance(spec, Intervention):
        iv = spec
    elif hasattr(spec, "apply"):
        return spec  # a duck-typed map transform: it has no targets to check
    else:
        raise ConfigError(f"{spec!r} is not an intervention — pass a name like 'random' or an Intervention object")
    return iv.validate(n_words=n_words, n_regions=n_regions, scope=scope)


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


def parse_intervention(spec: str | None, seed: int = 0) -> Intervention:
    """Build an intervention from its spec (the inverse of ``.name``), e.g. ``"mask-regions=0,3"``."""
    text = "none" if spec is None else str(spec).strip().lower()
    kind, _, arg = text.partition("=")
    if kind in _SIMPLE and not arg:
        return _SIMPLE[kind]()
    if kind == "shuffle" and not arg:
        return Shuffle(seed=seed)
    if kind == "random":
        bounds = _numbers(kind, arg, float) if arg else [0.0, 2.0]
        if len(bounds) != 2:
            raise ConfigError(f"intervention '{text}' needs two bounds, e.g. random=0,2")
        if not all(math.isfinite(b) for b in bounds):
            raise ConfigError(f"intervention '{text}' needs finite bounds, e.g. random=0,2")
        return Random(low=bounds[0], high=bounds[1], seed=seed)
    if kind in _TARGETED and arg:
        return _TARGETED[kind](indices=tuple(_numbers(kind, arg)))
    if kind == "swap-words" and arg:
        ij = _numbers(kind, arg)
        if len(ij) != 2:
            raise ConfigError(f"intervention '{text}' needs two word indices, e.g. swap-words=1,4")
        return SwapWords(ij[0], ij[1])
    if kind in _RULES:
        raise ConfigError(f"intervention '{kind}' needs its {_RULES[kind].axis} as targets, e.g. "
                          f"{'swap-words=1,4' if kind == 'swap-words' else kind + '=0,3'}")
    if kind in _SIMPLE or kind == "shuffle":
        raise ConfigError(f"intervention '{kind}' takes no targets — write just '{kind}'")
    raise ConfigError(f"unknown intervention '{spec}' — use one of: {_SPECS}")
