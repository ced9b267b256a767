"""App state: command-line arguments, allowed roots, the shareable view, and the run's loaded context.

The *view* is everything a shared link restores (the fields of :data:`causmatch.analysis.links.FIELDS`:
dataset, split, checkpoints, pair, word, intervention, direction …). It lives in ``st.session_state``,
one entry per field under :func:`key` — the same key the field's widget is given, so the widget's value
*is* the view's value. Its life in a browser session:

* :func:`start` reads the link (``st.query_params``) once, at the start of the session, and validates
  it there: values that cannot be read or are not allowed are replaced by their default with a warning
  (:func:`causmatch.analysis.links.read_link`), targets are given to the kind they were picked for, and
  places are written relative to a root (``-- --root DIR``; by default the repository's ``checkpoints/``
  and ``assets/``, plus the folders named by ``--data``/``--checkpoint``/``--checkpoint2``), so a link
  opens the same place in another checkout. An older link's absolute place from another checkout
  (``/home/alice/CausMatch/checkpoints/x``) opens the one place inside the roots it names
  (``checkpoints/x``; :meth:`~causmatch.analysis.places.Roots.relocate`), with a warning. Any other place
  outside the roots is kept as typed: loading it is refused with a "not allowed" error panel.
* :func:`keep`, at the start of every run, re-assigns the view's entries: Streamlit forgets the state of
  a widget that the page being drawn does not draw, and a re-assigned entry is kept instead (Streamlit's
  own idiom for widget state that outlives a page switch).
* Widgets change the view themselves; their ``on_change`` callback (:func:`changed`, or one of the
  callbacks below for changes that touch more than one field) writes the link with :func:`write_link`.
  Pages never assign view values: a value their picker does not offer (an image number past the end of
  another dataset, a link's ``image=99999``) is replaced before the picker is drawn by :func:`fit`.

Loading lives in :mod:`loaders`; everything computed comes from ``causmatch`` through :mod:`results`.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Container
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

from causmatch.analysis import links
from causmatch.interventions import target_rule

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = REPO / "checkpoints" / "causmatch-scenes"
DEFAULT_CHECKPOINT2 = REPO / "checkpoints" / "scan-scenes"
DEFAULT_ROOTS = (REPO / "checkpoints", REPO / "assets")

# View fields that name a place, and what kind of place (causmatch.analysis.places.KINDS).
PLACES = {"data": "data", "ckpt": "checkpoint", "ckpt2": "checkpoint"}
TARGETS_KEY = "w_targets_list"  # the target picker's widget: the view's targets that fit this pair

_STARTED, _FROM_LINK, _LINK_WARNINGS = "_started", "_from_link", "_link_warnings"
_LINK_NOTICE, _NOTICES, _CLEARED, _OPEN = "_link_notice", "_notices", "_targets_cleared", "_open_page"
_PICKED_FOR = "_picked_for"
# A view field whose value only means something for the values of other fields: a word index belongs to its
# caption, a region index to its image (and both to the dataset). When those change, the value goes back to its
# default (:func:`changed`) — word 3 of one caption never silently becomes word 3 of another.
BELONGS_TO = {"word": ("data", "split", "image", "caption", "text"), "region": ("data", "split", "image"),
              "cword": ("data", "split", "image", "caption", "text")}
_PAIR_WORD_OF = "_pair_word_of"  # the failure (direction, query) the Failing pair's word was picked for


@dataclass(frozen=True)
class AppArgs:
    """Arguments given after ``--`` on the ``streamlit run`` command line."""

    checkpoint: str = ""
    checkpoint2: str = ""
    data: str = ""
    split: str = "test"
    roots: tuple[str, ...] = ()


def parse_args(argv: list[str] | None = None) -> AppArgs:
    """Parse ``-- [--root DIR ...] --checkpoint CKPT [--checkpoint2 CKPT] --data DIR --split SPLIT``.

    Unknown arguments are ignored so that the app also runs under pytest's argv (AppTest).
    """
    parser = argparse.ArgumentParser(prog="streamlit run app/streamlit_app.py --", add_help=False)
    parser.add_argument("--checkpoint", default="")
    parser.add_argument("--checkpoint2", default="")
    parser.add_argument("--data", default="")
    parser.add_argument("--split", default="test")
    parser.add_argument("--root", action="append", default=[])
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return AppArgs(known.checkpoint, known.checkpoint2, known.data, known.split, tuple(known.root))


def app_roots(args: AppArgs | None = None):
    """The folders this app may open: ``--root`` folders (default: the repository's ``checkpoints/`` and
    ``assets/``), then each folder named by ``--data``, ``--checkpoint`` or ``--checkpoint2``."""
    from causmatch.analysis.places import Roots
    args = parse_args() if args is None else args
    named = [p for p in (args.data, args.checkpoint, args.checkpoint2) if p.strip()]
    return Roots([*(args.roots or DEFAULT_ROOTS), *named])


def roots():
    """This process's roots (from its command line)."""
    return app_roots(parse_args())


def _as_link(value: str, kind: str, allowed) -> str:
    """``value`` written relative to a root when it is allowed; unchanged otherwise (refused later)."""
    if not value.strip():
        return value
    try:
        return allowed.link(allowed.resolve(value, kind)) or value
    except Exception:  # noqa: BLE001 — a refused place stays as typed; loading shows the error panel
        return value


def default_view(args: AppArgs) -> dict[str, Any]:
    """The view on a fresh start: field defaults, then the command-line arguments."""
    allowed = app_roots(args)

    def place(value: str) -> str:  # a command-line path (relative to the working folder) as a link
        return (allowed.link(value) or value) if value.strip() else ""

    def demo(path: Path) -> str:  # a demo checkpoint, when it exists and the roots allow it
        return (allowed.link(path) or "") if path.exists() else ""

    view = links.default_view()
    view["split"] = args.split or "test"
    view["data"] = place(args.data)
    view["ckpt"] = place(args.checkpoint) or demo(DEFAULT_CHECKPOINT)
    if args.checkpoint2:
        view["ckpt2"] = place(args.checkpoint2)
    elif not args.checkpoint:
        view["ckpt2"] = demo(DEFAULT_CHECKPOINT2)
    return view


# --------------------------------------------------------------------------------------------
# The view in session state.

def key(name: str) -> str:
    """The session-state key of view field ``name`` (and of the widget that shows it)."""
    return f"w_{name}"


def start(args: AppArgs, query: dict[str, str]) -> None:
    """Read the link into the session's view — once per browser session: defaults < command line < link."""
    state = st.session_state
    if state.get(_STARTED):
        return
    view, warnings = links.read_link(query, default_view(args))
    notice = links.own_targets(view)
    if notice is not None:
        state[_LINK_NOTICE] = (notice, view["iv"])
    allowed = app_roots(args)
    for name, kind in PLACES.items():
        view[name] = _as_link(view[name], kind, allowed)
        moved = allowed.relocate(view[name]) if name in query and not allowed.allowed(view[name], kind) else None
        if moved is not None:  # an older link's absolute place from another checkout: the same place here
            warnings.append(links.moved_warning(name, view[name], moved))
            view[name] = moved
    for name in links.FIELDS:
        state[key(name)] = view[name]
    state[_LINK_WARNINGS] = warnings
    state[_FROM_LINK] = {name for name in links.FIELDS if name in query}
    state[_PAIR_WORD_OF] = failure_of(view)  # a link's word belongs to the link's failure
    state[_STARTED] = True
    _picked_here(*BELONGS_TO)  # the link's word and region are its pair's
    write_link()


def keep() -> None:
    """Keep every view entry through this run, whether or not this page draws its widget."""
    for name in links.FIELDS:
        if key(name) in st.session_state:
            st.session_state[key(name)] = st.session_state[key(name)]


def value(name: str) -> Any:
    """The view's value of field ``name`` (as the field's type: a checkbox's True is 1)."""
    return links.coerce(name, st.session_state[key(name)])


def view() -> dict[str, Any]:
    """A copy of the whole view (changing it changes nothing: widgets and callbacks change the view)."""
    return {name: value(name) for name in links.FIELDS}


def link() -> dict[str, str]:
    """The view as link parameters."""
    return links.link_params(view())


def write_link() -> None:
    """Write the view to ``st.query_params`` when it differs (browser history stays quiet otherwise).

    Called by the widgets' callbacks, and once at the end of every run: navigating to another page
    starts from a bare address, and a value fitted to its picker changes the view too.
    """
    wanted = link()
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)


def _owners(name: str) -> tuple:
    return tuple(value(owner) for owner in BELONGS_TO[name])


def _picked_here(*names: str) -> None:
    """The values of ``names`` now belong to the current values of the fields they belong to."""
    picked = st.session_state.setdefault(_PICKED_FOR, {})
    for name in names:
        picked[name] = _owners(name)


def _drop_strays() -> None:
    """A word or region picked for another pair (or image, or dataset) than the view's goes back to its default."""
    picked = st.session_state.setdefault(_PICKED_FOR, {})
    for name in BELONGS_TO:
        if name in picked and picked[name] != _owners(name):
            st.session_state[key(name)] = links.FIELDS[name].default
        picked[name] = _owners(name)


def changed() -> None:
    """``on_change`` of a widget bound to the view: the view is the link's no longer, so its warnings go; a word
    or region index that belonged to the pair before this change goes back to its default (:data:`BELONGS_TO`).

    A widget inside a section that reruns alone (``components.sections``) reruns only its section; the whole
    page is asked for instead when something drawn outside the section follows this change: the link's
    warnings on top of the page (they go)."""
    whole = bool(st.session_state.get(_LINK_WARNINGS))
    st.session_state[_LINK_WARNINGS] = []
    _drop_strays()
    write_link()
    if whole:
        st.rerun()  # from a callback: the run after it is the whole page's (callbacks only: never in a page)


def fit(name: str, offered: Container | Callable[[Any], bool], instead: Any, warn: bool = True) -> str:
    """Before drawing field ``name``'s picker: when the view's value is not ``offered``, show ``instead``.

    ``offered``: the values the picker offers (a collection, or a test). A link's value replaced this way
    is said once in a warning (unless ``warn`` is False: the value follows another field, e.g. the image
    of the query caption). Returns the key to give the picker.
    """
    current = value(name)
    fits = offered(current) if callable(offered) else current in offered
    from_link = st.session_state.setdefault(_FROM_LINK, set())
    if not fits:
        if warn and name in from_link:
            add_link_warning(links.misfit_warning(name, current, instead))
        st.session_state[key(name)] = instead
    from_link.discard(name)
    if name in BELONGS_TO:  # drawn for the view's pair: its value is that pair's from now on
        _picked_here(name)
    return key(name)


# Callbacks for changes that touch more than one field.

def place_changed(name: str) -> None:
    """A dataset or checkpoint folder typed in the sidebar: written relative to its root when allowed."""
    st.session_state[key(name)] = _as_link(str(st.session_state[key(name)]), PLACES[name], roots())
    changed()


def kind_changed() -> None:
    """Another intervention kind: targets picked for another kind are cleared, never reinterpreted."""
    kind = value("iv")
    owner = value("tkind")
    if value("targets") and (target_rule(kind) is None or owner != kind):
        if target_rule(kind) is not None:
            st.session_state[_CLEARED] = kind
        st.session_state[key("targets")], st.session_state[key("tkind")] = "", ""
        st.session_state[TARGETS_KEY] = []
    changed()


def targets_picked(kind: str) -> None:
    """The target picker's choice becomes the view's targets, owned by ``kind``."""
    picked = [int(t) for t in st.session_state.get(TARGETS_KEY) or []]
    st.session_state[key("targets")] = ",".join(map(str, picked))
    st.session_state[key("tkind")] = kind if picked else ""
    changed()


def pair_changed() -> None:
    """``on_change`` of the pair pickers (image, caption, typed text): :func:`changed`, whose check sends the
    word and the region picked for the old pair back to their defaults — word 2 of one caption is another
    word of the next — instead of carrying them over (:data:`BELONGS_TO`; a region is its image's, so it
    stays when only the caption changes)."""
    changed()


def open_pair(image: int, caption: int, page: str = "explore") -> None:
    """Make (image, caption) the view's pair and ask for ``page`` (:func:`take_open`)."""
    for name, new in (("image", image), ("caption", caption), ("text", ""), ("word", 0)):
        st.session_state[key(name)] = new
    _picked_here(*BELONGS_TO)
    st.session_state[_OPEN] = page
    changed()


def failure_of(view: dict[str, Any]) -> tuple:
    """The failure a view shows on the Failing pair page: (dataset, split, direction, query) — the query is
    the caption for caption → images (``t2i``), the image for image → captions (``i2t``)."""
    direction = str(view["dir"])
    return str(view["data"]), str(view["split"]), direction, int(view["caption" if direction == "t2i" else "image"])


def open_failure(direction: str, query: int, image: int, caption: int, page: str | None = "failing_pair") -> None:
    """Make one failure the view's — its direction, and its query with the true item as the pair (so that
    Explore opens the true pair) — and ask for ``page`` (:func:`take_open`; None: stay on this page). The
    Failing pair's word goes back to the most informative one: a word picked for another caption never
    carries over."""
    for name, new in (("dir", direction), ("image", int(image)), ("caption", int(caption)), ("text", ""),
                      ("word", 0), ("pword", -1)):
        st.session_state[key(name)] = new
    st.session_state[_PAIR_WORD_OF] = failure_of(view())
    if page:
        st.session_state[_OPEN] = page
    changed()


def pair_word(n_words: int) -> str:
    """Before drawing the Failing pair's word picker, for the view's failure whose caption has ``n_words``.

    The view's word (``pword``, -1 = the most informative) belongs to the failure it was picked for: when
    another failure is shown (changed on another page, walked to) it goes back to -1 without a word. A
    link's word past the caption's end goes back to -1 with a warning. Returns the key to give the picker.
    """
    failure = failure_of(view())
    if st.session_state.get(_PAIR_WORD_OF) != failure:
        st.session_state[key("pword")] = -1
        st.session_state.setdefault(_FROM_LINK, set()).discard("pword")
        st.session_state[_PAIR_WORD_OF] = failure
    current = value("pword")
    if not -1 <= current < n_words:
        if "pword" in st.session_state.setdefault(_FROM_LINK, set()):
            add_link_warning(f"The link's pword={links.shown_value(current)} does not fit this caption "
                             f"({n_words} words) — its most informative word is shown instead.")
        st.session_state[key("pword")] = -1
    st.session_state[_FROM_LINK].discard("pword")
    return key("pword")


def take_open() -> str | None:
    """The page a callback asked for (once), or None."""
    return st.session_state.pop(_OPEN, None)


def targets_cleared() -> str | None:
    """The kind whose picker starts empty because the targets were picked for another kind (said once)."""
    return st.session_state.pop(_CLEARED, None)


def targets_picker(shown: list[int]) -> str:
    """Before drawing the target picker: it shows the view's targets that fit this pair (its options
    change with the pair, so it is set from the view on every run). Returns the key to give it."""
    st.session_state[TARGETS_KEY] = list(shown)
    return TARGETS_KEY


# --------------------------------------------------------------------------------------------
# Messages of this run: errors for the main panel, and the warnings of a replaced link value.

def _add(where: str, message: str) -> None:
    """Add ``message`` to the session-state list ``where`` once."""
    found = st.session_state.setdefault(where, [])
    if message not in found:
        found.append(message)


def add_notice(message: str) -> None:
    """An error for this run's main panel (e.g. targets that do not fit the pair)."""
    _add(_NOTICES, message)


def take_notices() -> list[str]:
    """The notices of this run, then the link's refused targets while the user has not picked new ones."""
    out = list(st.session_state.get(_NOTICES, []))
    st.session_state[_NOTICES] = []
    notice = st.session_state.get(_LINK_NOTICE)
    if notice is not None:
        message, kind = notice
        if value("iv") == kind and not value("targets"):
            out.append(message)
        else:
            del st.session_state[_LINK_NOTICE]
    return out


def add_link_warning(message: str) -> None:
    """A link's value that was replaced (shown until the view is changed)."""
    _add(_LINK_WARNINGS, message)


def link_warnings() -> list[str]:
    """The link's values that were replaced, shown until the user changes the view."""
    return list(st.session_state.get(_LINK_WARNINGS, []))


# --------------------------------------------------------------------------------------------
# The per-run context the pages read: loaded data, checkpoints and the chosen intervention.

@dataclass
class Model:
    """One loaded checkpoint and its analysis session."""

    label: str
    path: Path
    matcher: Any
    session: Any


@dataclass
class Context:
    """What the sidebar loaded for this run; pages get it from :func:`context`."""

    data_dir: Path
    split: Any                      # causmatch.data.SplitData
    models: list[Model]
    intervention: str | None        # a parse_intervention spec; None when a targeted kind lacks targets
    samples: int
    seed: int


_CTX = "_ctx"


def missing_counterfactual(ctx: Context) -> str | None:
    """Why the chosen kind has no counterfactual this run (a targeted kind without usable targets), or None."""
    if ctx.intervention is not None:
        return None
    return f"{value('iv')} needs its targets — pick them in the sidebar"


def set_context(ctx: Context | None, error: BaseException | None = None) -> None:
    st.session_state[_CTX] = (ctx, error)


def context() -> Context:
    """This run's context; re-raises the loading error so the page shows it in the error panel."""
    ctx, error = st.session_state.get(_CTX, (None, None))
    if error is not None:
        raise error
    if ctx is None:
        from causmatch.errors import ConfigError
        raise ConfigError("nothing is loaded — choose a dataset folder and a checkpoint in the sidebar")
    return ctx
