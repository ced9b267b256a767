"""Interventions ``do(α = ᾱ)`` on attention maps, and their registry: every kind declared once.

Four modules: :mod:`~causmatch.interventions.maps` (the kinds with a spec string: how each changes a map),
:mod:`~causmatch.interventions.per_row` (library-only kinds behind the per-word and per-region effects),
:mod:`~causmatch.interventions.filtration` (a kind applied to SAF's filtration weights, the second intervention
*target*: spec ``filtration:KIND``) and :mod:`~causmatch.interventions.registry` (every kind and every target
declared once, and parsing, validation and lookups built from it). Import everything from this package.

Every intervention maps ``attn [..., Q, K]`` to a map of the same shape; keys outside ``key_mask``
always come out 0. ``query`` says what the rows are: ``"words"`` (t2i) or ``"regions"`` (i2t), so that
"mask words" zeroes word *rows* in t2i and word *columns* in i2t. A row left all zero removes that query
from the pair's score. Relevance is a cosine, so no intervention needs to renormalise its rows.

The registry (:data:`KINDS`) declares each kind once: its name (the spec used
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

from causmatch.interventions.filtration import OnFiltration
from causmatch.interventions.maps import (
    MAX_TARGETS,
    Identity,
    Intervention,
    KeepRegions,
    KeepWords,
    MaskRegions,
    MaskWords,
    Random,
    Reversed,
    Shuffle,
    SwapWords,
    Uniform,
    check_targets,
)
from causmatch.interventions.per_row import OneWord, RegionPerRow, WordPerRow
from causmatch.interventions.registry import (
    AXES,
    COUNTERFACTUAL_KINDS,
    KINDS,
    TARGETS,
    InterventionKind,
    InterventionTarget,
    TargetRule,
    check_targets_for,
    format_spec,
    get_kind,
    kind_of,
    parse_intervention,
    pickable_kinds,
    resolve_intervention,
    target_of,
    target_rule,
    validate_intervention,
)

__all__ = [
    "AXES", "COUNTERFACTUAL_KINDS", "KINDS", "MAX_TARGETS", "TARGETS", "Identity", "Intervention",
    "InterventionKind", "InterventionTarget", "KeepRegions", "KeepWords", "MaskRegions", "MaskWords",
    "OnFiltration", "OneWord", "Random", "RegionPerRow", "Reversed", "Shuffle", "SwapWords", "TargetRule",
    "Uniform", "WordPerRow", "check_targets", "check_targets_for", "format_spec", "get_kind", "kind_of",
    "parse_intervention", "pickable_kinds", "resolve_intervention", "target_of", "target_rule",
    "validate_intervention",
]
