"""A shareable view as link parameters: its fields, reading a link, writing one, and whose targets are whose.

The app's *view* is everything a shared link must restore — dataset, split, checkpoints, pair, word,
intervention, direction … — one value per field of :data:`FIELDS`. Each field is declared once here:
its type, its default and, when the allowed values do not depend on the data, which values are allowed
(the app's pickers take their options and bounds from the same declaration).

:func:`read_link` turns a link's parameters into a view. A value that cannot be read (``image=abc``) or
that is not allowed (``iv=bogus``, ``k=100000``) is replaced by the default, and a warning says so —
never silently. Values whose allowed range depends on the loaded data (an image number, a caption, a
word) are checked by the app when it draws their picker, with the same warning (:func:`misfit_warning`).

Targets belong to the intervention kind they were picked for (``tkind``): a link whose targets were
picked for another kind, or that gives targets to a kind without any, has them cleared with a one-line
error (:func:`own_targets`) — region 0 never becomes word 0. Targets that do not fit the pair are refused
(:func:`targets_problem`), never trimmed to the ones that fit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from causmatch.analysis.failures import ORDERS, SORTABLE
from causmatch.errors import CausMatchError
from causmatch.interventions import format_spec, pickable_kinds, target_rule, validate_intervention


@dataclass(frozen=True)
class Field:
    """One view field: its type (``int`` or ``str``), its default, and the values a link may give it:
    one of ``choices`` when set, and between ``low`` and ``high`` (inclusive, when set) for numbers."""

    type: type
    default: Any
    choices: tuple | None = None
    low: int | None = None
    high: int | None = None

    def allows(self, value: Any) -> bool:
        if self.choices is not None and value not in self.choices:
            return False
        if self.low is not None and value < self.low:
            return False
        return self.high is None or value <= self.high


DIRECTIONS = ("t2i", "i2t")   # t2i: a caption queries the images; i2t: an image queries the captions
SIGNS = ("any", "positive", "negative")
CF_MODES = ("off", "sidebar", "all")  # Overview: counterfactual results off | the sidebar's kind | every kind
# Explore a pair: its views, one tab each (the link names the one open; only the open one is drawn).
EXPLORE_TABS = ("Words", "Matrices", "Regions", "Curves")
# What the pickers offer: less than the library accepts (analysis.effects.MAX_SAMPLES draws, MAX_TOP items),
# so a page stays quick on a small CPU.
SAMPLES_OFFERED, TOP_K_OFFERED = 64, 20

# name -> Field. Every field is restored from and written to the link.
FIELDS: dict[str, Field] = {
    "data": Field(str, ""),
    "split": Field(str, "test"),
    "ckpt": Field(str, ""),
    "ckpt2": Field(str, ""),
    "image": Field(int, 0, low=0),
    "caption": Field(int, 0, low=0),  # global caption index (caption c belongs to image c // K)
    "text": Field(str, ""),           # a typed caption replaces the dataset caption when not empty
    "word": Field(int, 0, low=0),     # token index in the caption
    "pword": Field(int, -1, low=-1),  # Failing pair: the word shown (token index), -1 = the most informative
    "cword": Field(int, -1, low=-1),  # Compare: the word shown (token index), -1 = where the checkpoints differ most
    "region": Field(int, 0, low=0),
    "iv": Field(str, "random", choices=pickable_kinds()),  # intervention kind
    "targets": Field(str, ""),        # comma-separated word/region indices for targeted kinds
    "tkind": Field(str, ""),          # the kind the targets were picked for (they never carry over to another)
    "samples": Field(int, 8, low=1, high=SAMPLES_OFFERED),
    "seed": Field(int, 0, low=0, high=2**31 - 1),
    "dir": Field(str, "t2i", choices=DIRECTIONS),
    "k": Field(int, 5, low=1, high=TOP_K_OFFERED),
    "rank_lo": Field(int, 2, low=1),
    "rank_hi": Field(int, 0, low=0),  # 0: no upper bound
    "sign": Field(str, "any", choices=SIGNS),
    "disagree": Field(int, 0, choices=(0, 1)),
    "cf": Field(str, "off", choices=CF_MODES),
    "whole": Field(int, 0, choices=(0, 1)),  # 1: overlays also paint the whole-image region(s)
    "tab": Field(str, EXPLORE_TABS[0], choices=EXPLORE_TABS),  # Explore a pair: the view open
    "sort": Field(str, "rank", choices=SORTABLE),   # failure table: the column it is sorted by
    "order": Field(str, "", choices=ORDERS),        # "" = that column's own order (worst cases first)
    "slice": Field(str, ""),          # a slice of the split ("word:red", "length:6-8"; analysis.slices), "" = all
}
ALWAYS_IN_LINK = ("data", "ckpt")  # written even at their default, so a link names what it shows
# A field whose start value is the server's (its command line) but whose link value belongs to another field:
# a link that names the owner means the field's own default when it leaves the field out (a link naming its
# dataset without a split is the test split; naming its checkpoint without a second one has none), so a link
# opens the same view on a server started with other arguments.
FOLLOWS = {"split": "data", "ckpt2": "ckpt"}


def default_view() -> dict[str, Any]:
    """Every field at its default."""
    return {name: f.default for name, f in FIELDS.items()}


def shown_value(raw: Any) -> str:
    """A link's value as it may be echoed: printable characters only, at most 40 of them."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(raw))
    return text if len(text) <= 40 else text[:39] + "…"


def coerce(name: str, raw: Any) -> Any:
    """``raw`` as field ``name``'s type; the field's default when it cannot be read as one."""
    field = FIELDS[name]
    try:
        return field.type(raw)
    except (TypeError, ValueError):
        return field.default


def misfit_warning(name: str, value: Any, shown_instead: Any) -> str:
    """The warning for a link's value that its picker does not offer (an empty ``shown_instead``: none)."""
    instead = f"{name} {shown_value(shown_instead)}" if str(shown_instead) != "" else f"no {name}"
    return f"The link's {name}={shown_value(value)} does not fit this view — {instead} is shown instead."


def moved_warning(name: str, value: Any, moved: str) -> str:
    """The warning for a link's place outside the app's roots that names a place inside them (an older link's
    absolute path from another checkout; :meth:`causmatch.analysis.places.Roots.relocate`)."""
    return (f"The link's {name}={shown_value(value)} is outside this app's roots — {moved}, "
            "the same place relative to its root, is opened instead.")


def read_link(query: Mapping[str, Any], start: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], list[str]]:
    """(view, warnings): ``start`` (default: every field's default) overridden by the link's parameters.

    A field the link leaves out keeps its ``start`` value — its default, as :func:`link_params` leaves
    out exactly the fields at their default — except a field that :data:`FOLLOWS` another one the link
    names, which gets its own default. Unknown parameters are ignored. A value that is not of its field's
    type or not allowed by its field is replaced by the ``start`` value, with a warning naming it. Targets
    are then given to the kind they belong to (:func:`own_targets` — its error is the caller's to show).
    """
    view = {**default_view(), **(start or {})}
    for name, owner in FOLLOWS.items():
        if owner in query and name not in query:
            view[name] = FIELDS[name].default
    warnings = []
    for name, field in FIELDS.items():
        if name not in query:
            continue
        raw = query[name]
        try:
            value = field.type(raw)
        except (TypeError, ValueError):
            what = "whole number" if field.type is int else "value"
            warnings.append(f"The link's {name}='{shown_value(raw)}' is not a {what} — "
                            f"{name} {view[name]!r} is shown instead.")
            continue
        if not field.allows(value):
            warnings.append(misfit_warning(name, value, view[name]))
            continue
        view[name] = value
    return view, warnings


def link_params(view: Mapping[str, Any]) -> dict[str, str]:
    """The view as link parameters; fields at their default are left out to keep links short."""
    out = {}
    for name, field in FIELDS.items():
        value = coerce(name, view.get(name, field.default))  # a checkbox's True is written 1
        if value != field.default or name in ALWAYS_IN_LINK:
            out[name] = str(value)
    return out


def own_targets(view: dict[str, Any]) -> str | None:
    """Give the view's targets to the kind they were picked for (in place); the error when they were cleared.

    Targets picked for another kind (``tkind``), or given to a kind that takes none, are cleared — never
    reinterpreted. Targets without an owner are taken to belong to the view's kind.
    """
    targets, kind, owner = str(view["targets"]).strip(), view["iv"], str(view["tkind"]).strip()
    if not targets:
        view["targets"], view["tkind"] = "", ""
        return None
    if target_rule(kind) is None or (owner and owner != kind):
        whose = f"were picked for {shown_value(owner)}" if owner else "belong to no targeted kind"
        view["targets"], view["tkind"] = "", ""
        return (f"ConfigError: the link's targets ({targets[:60]}) {whose}, not for {kind} — they were cleared, "
                "not reinterpreted; pick the targets again in the sidebar")
    view["tkind"] = kind
    return None


def parse_targets(text: str) -> list[int] | None:
    """Comma-separated targets as integers; None when one is not a whole number (``-1``, ``a``)."""
    parts = [t.strip() for t in str(text).split(",") if t.strip()]
    if not all(p.isdigit() for p in parts):
        return None
    return [int(p) for p in parts]


def targets_problem(kind: str, targets_text: str, offered: Sequence[int],
                    check: Callable[[str], Any] | None = None) -> str | None:
    """Why the targets ``targets_text`` cannot be used for ``kind`` on this pair (one line), or None.

    ``offered``: the pair's valid targets (its words or its valid regions); ``check``: the analysis
    session's check of a spec against the pair (raises a CausMatchError), when a session is loaded.
    A kind still being picked (swap-words' first word) is only checked for what is already chosen.
    """
    rule = target_rule(kind)
    chosen = parse_targets(targets_text)
    if chosen is None:
        return (f"ConfigError: the targets '{str(targets_text)[:60]}' are not whole numbers — pick the "
                f"{rule.axis} in the sidebar")
    if not chosen:
        return None
    valid = set(offered)
    bad = [t for t in chosen if t not in valid]
    if len(chosen) < rule.min_count:
        bad = sorted(set(bad) | {t for t in chosen if chosen.count(t) > 1})
        return (f"ConfigError: {kind}: {rule.axis} {', '.join(map(str, bad))} not valid for this pair — pick the "
                f"{rule.axis} from the list in the sidebar") if bad else None
    try:
        spec = format_spec(kind, chosen)
        if check is not None:
            check(spec)
        validate_intervention(spec)
    except CausMatchError as exc:
        return f"{type(exc).__name__}: {exc}"
    if bad and offered:
        return (f"ConfigError: {kind}: {rule.axis} {', '.join(map(str, bad))} not valid for this pair — pick the "
                f"{rule.axis} from the list in the sidebar")
    return None
