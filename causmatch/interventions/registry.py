"""The intervention registry: every kind declared once, and what is built from it.

:data:`KINDS` declares each kind: its name (the spec used on the CLI and in URLs), its class (in
:mod:`causmatch.interventions.maps`), whether it is stochastic, whether it reads the learned map, the axis its
targets index (``words``/``regions``/``none``) and how many it takes, a one-line description for the UI, an
example spec. :func:`parse_intervention`, :func:`format_spec`, :func:`target_rule`, the validators and
:data:`COUNTERFACTUAL_KINDS` are built from it; :func:`get_kind` and :func:`kind_of` look kinds up.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from causmatch.errors import ConfigError
from causmatch.interventions import filtration, maps, per_row
from causmatch.interventions.maps import MAX_TARGETS, Intervention, spec_numbers

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
    InterventionKind("none", maps.Identity, False, True, "none", 0, 0,
                     "learned attention (no intervention)", "none", aliases=("identity",)),
    InterventionKind("random", maps.Random, True, False, "none", 0, 0,
                     "random attention: weights drawn uniformly at random (random=low,high; default 0,2)",
                     "random", counterfactual=True),
    InterventionKind("uniform", maps.Uniform, False, False, "none", 0, 0,
                     "uniform attention over the valid keys", "uniform", counterfactual=True),
    InterventionKind("reversed", maps.Reversed, False, True, "none", 0, 0,
                     "reversed attention (max − α per row)", "reversed", counterfactual=True),
    InterventionKind("shuffle", maps.Shuffle, True, True, "none", 0, 0,
                     "shuffled attention: each row's weights permuted at random over its keys", "shuffle",
                     counterfactual=True),
    InterventionKind("mask-regions", maps.MaskRegions, False, True, "regions", 1, _N,
                     "mask the given regions (no word attends to them)", "mask-regions=0,3"),
    InterventionKind("keep-regions", maps.KeepRegions, False, True, "regions", 1, _N,
                     "keep only the given regions", "keep-regions=0,3"),
    InterventionKind("mask-words", maps.MaskWords, False, True, "words", 1, _N,
                     "mask the given words (removed from the caption's score)", "mask-words=0,3"),
    InterventionKind("keep-words", maps.KeepWords, False, True, "words", 1, _N,
                     "keep only the given words", "keep-words=0,3"),
    InterventionKind("swap-words", maps.SwapWords, False, True, "words", 2, 2,
                     "swap the attention of two words", "swap-words=1,4"),
    InterventionKind("one-word", per_row.OneWord, False, True, "words", 1, 1,
                     "an intervention on one word's attention only (per-word effects)", spec=False),
    InterventionKind("word-per-row", per_row.WordPerRow, False, True, "words", 1, _N,
                     "batched one-word: pair n intervenes on its own word (per-word effects)", spec=False),
    InterventionKind("region-per-row", per_row.RegionPerRow, False, True, "regions", 1, _N,
                     "batched mask-regions: pair n masks its own region (per-region effects)", spec=False),
    InterventionKind("filtration", filtration.OnFiltration, False, True, "none", 0, 0,
                     "a kind applied to SAF's filtration weights instead of the attention (spec 'filtration:KIND')",
                     spec=False),
)}
_BY_CLASS = {k.cls: k for k in KINDS.values()}
_SPEC_NAMES = {n: k for k in KINDS.values() if k.spec for n in (k.name, *k.aliases)}

COUNTERFACTUAL_KINDS = tuple(k.name for k in KINDS.values() if k.counterfactual)


@dataclass(frozen=True)
class InterventionTarget:
    """What an intervention edits, declared once in :data:`TARGETS`.

    ``prefix``: the spec's prefix (``""`` for the attention maps); ``kinds``: the spec kinds that apply to it;
    ``heads``: the ``model.similarity`` values whose models have it (empty: every model); ``description``: one
    line for people.
    """

    name: str
    prefix: str
    kinds: tuple[str, ...]
    heads: tuple[str, ...]
    description: str


TARGETS: dict[str, InterventionTarget] = {t.name: t for t in (
    InterventionTarget("attention", "", tuple(k.name for k in KINDS.values() if k.spec), (),
                       "the cross-attention maps α (which regions each word attends to)"),
    InterventionTarget("filtration", filtration.PREFIX, ("uniform", "random", "shuffle", "mask-words", "keep-words"),
                       ("saf",), "SAF's filtration weights (how much each word, and the global match, counts in "
                                 "the score)"),
)}


def target_of(iv) -> InterventionTarget:
    """The :class:`InterventionTarget` an intervention object edits (``attention`` unless it says otherwise)."""
    return TARGETS.get(getattr(iv, "target", "attention"), TARGETS["attention"])


def check_targets_for(similarity: str, interventions) -> None:
    """Refuse (one-line ConfigError) an intervention whose target a model with head ``similarity`` lacks."""
    for iv in interventions:
        t = target_of(iv)
        if t.heads and similarity not in t.heads:
            raise ConfigError(f"intervention '{iv.name}' edits {t.description.split(' (')[0]}, which a "
                              f"model.similarity={similarity} model does not have — use an attention "
                              f"intervention (e.g. {t.kinds[0]}) or a {'/'.join(t.heads)} checkpoint")
_SPECS = ", ".join(k.example for k in KINDS.values() if k.spec)


def _split_target(name) -> tuple["InterventionTarget | None", str]:
    """``("filtration:uniform")`` → (the filtration target, ``"uniform"``); (None, name) without a prefix."""
    text = str(name).strip().lower()
    for t in TARGETS.values():
        if t.prefix and text.startswith(t.prefix):
            return t, text[len(t.prefix):].strip()
    return None, text


def _on_target(t: "InterventionTarget", k: InterventionKind) -> InterventionKind:
    """Kind ``k`` as offered on target ``t`` (its prefixed name, example and description)."""
    return dataclasses.replace(k, name=t.prefix + k.name, example=t.prefix + k.example, aliases=(),
                               description=f"{k.description} — on {t.description.split(' (')[0]} instead "
                                           f"(model.similarity {'/'.join(t.heads)} only)")


def get_kind(name: str) -> InterventionKind:
    """The kind named ``name`` (a spec name or alias, any case; library-only kinds by their name too; a kind on
    another target by its prefixed name, e.g. ``filtration:uniform``); a one-line ConfigError for an unknown
    name."""
    t, inner = _split_target(name)
    if t is not None:
        k = _SPEC_NAMES.get(inner.partition("=")[0])
        if k is None or k.name not in t.kinds:
            raise ConfigError(f"unknown intervention kind '{name}' — on the {t.name} target use one of: "
                              f"{', '.join(t.prefix + n for n in t.kinds)}")
        return _on_target(t, k)
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
    """The kinds a person picks from (every kind with a spec except ``none``), in the registry's order, then
    the kinds of the other targets by their prefixed names (``filtration:uniform``…)."""
    return tuple(k.name for k in KINDS.values() if k.spec and k.name != "none") + tuple(
        t.prefix + n for t in TARGETS.values() if t.prefix for n in t.kinds)


def target_rule(kind: str) -> TargetRule | None:
    """The :class:`TargetRule` of a targeted kind (``"mask-regions"``, ``"filtration:mask-words"``…), None for
    kinds without targets."""
    t, inner = _split_target(kind)
    k = _SPEC_NAMES.get(inner)
    if k is None or (t is not None and k.name not in t.kinds):
        return None
    return k.rule if t is None or k.rule is None else dataclasses.replace(k.rule, kind=t.prefix + k.name)


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


_COUNT_WORDS = {1: "one", 2: "two", 3: "three"}


def parse_intervention(spec: str | None, seed: int = 0) -> Intervention:
    """Build an intervention from its spec (the inverse of ``.name``), e.g. ``"mask-regions=0,3"``.

    ``kind`` or ``kind=arguments``: untargeted kinds take none (``random`` optionally ``low,high``),
    targeted kinds take their targets, comma-separated; stochastic kinds get ``seed``.
    """
    text = "none" if spec is None else str(spec).strip().lower()
    for t in TARGETS.values():
        if t.prefix and text.startswith(t.prefix):
            inner = text[len(t.prefix):].strip()
            if inner.partition("=")[0].strip() not in t.kinds:
                raise ConfigError(f"intervention '{spec}': on the {t.name} target use one of: "
                                  f"{', '.join(t.prefix + k for k in t.kinds)}")
            return filtration.OnFiltration(parse_intervention(inner, seed=seed))
    name, _, arg = text.partition("=")
    k = _SPEC_NAMES.get(name)
    if k is None:
        raise ConfigError(f"unknown intervention '{spec}' — use one of: {_SPECS}")
    if k.targeted:
        if not arg:
            raise ConfigError(f"intervention '{name}' needs its {k.axis} as targets, e.g. {k.example}")
        targets = spec_numbers(name, arg)
        if not k.min_targets <= len(targets) <= k.max_targets:  # at most MAX_TARGETS: checked by spec_numbers
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
    t, inner = _split_target(kind)
    if t is not None:
        get_kind(kind)  # a kind the target offers
        return parse_intervention(t.prefix + format_spec(inner, targets)).name
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
