"""App state: command-line arguments, allowed roots, the shareable view in the URL, and cached loaders.

The *view* is one plain dict in ``st.session_state`` holding everything a shared link must
restore (dataset, split, checkpoints, pair, word, intervention, direction ...). It is read
from the URL once per browser session, widgets are bound to it with :func:`widget_key`,
and it is written back to ``st.query_params`` at the end of every run. Widget values live
in the view rather than in widget state, so they survive page switches (Streamlit drops
the state of widgets that a page does not draw).

Datasets and checkpoints are opened only inside the app's roots (``-- --root DIR``; by default the
repository's ``checkpoints/`` and ``assets/``, plus the folders named by ``--data``/``--checkpoint``/
``--checkpoint2``): :class:`causmatch.analysis.places.Roots` resolves a place and refuses the rest, and
the view holds places relative to a root, so a link opens the same place in another checkout.

Everything computed comes from ``causmatch``; this module only loads and caches it.
``st.cache_resource`` objects are shared by every session and thread, so the cached
matchers are put in eval mode once and only read afterwards.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import streamlit as st

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CHECKPOINT = REPO / "checkpoints" / "causmatch-scenes"
DEFAULT_CHECKPOINT2 = REPO / "checkpoints" / "scan-scenes"

INTERVENTION_KINDS = ("random", "uniform", "reversed", "shuffle",
                      "mask-regions", "keep-regions", "mask-words", "keep-words", "swap-words")
TARGETED_REGIONS = ("mask-regions", "keep-regions")
TARGETED_WORDS = ("mask-words", "keep-words", "swap-words")

# name -> (type, default). Every field is restored from and written to the URL.
VIEW_FIELDS: dict[str, tuple[type, Any]] = {
    "data": (str, ""),
    "split": (str, "test"),
    "ckpt": (str, ""),
    "ckpt2": (str, ""),
    "image": (int, 0),
    "caption": (int, 0),      # global caption index (caption c belongs to image c // K)
    "text": (str, ""),        # a typed caption replaces the dataset caption when not empty
    "word": (int, 0),         # token index in the caption
    "region": (int, 0),
    "iv": (str, "random"),    # intervention kind
    "targets": (str, ""),     # comma-separated word/region indices for targeted kinds
    "tkind": (str, ""),       # the kind the targets were picked for (they never carry over to another)
    "samples": (int, 8),
    "seed": (int, 0),
    "dir": (str, "t2i"),      # t2i: caption query over images; i2t: image query over captions
    "k": (int, 5),
    "rank_lo": (int, 2),
    "rank_hi": (int, 0),      # 0: no upper bound
    "sign": (str, "any"),
    "disagree": (int, 0),
    "cf": (str, "off"),       # Overview: counterfactual results off | sidebar | all
}
_VIEW = "_view"


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


DEFAULT_ROOTS = (REPO / "checkpoints", REPO / "assets")


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


def _coerce(name: str, raw: Any) -> Any:
    kind, default = VIEW_FIELDS[name]
    try:
        return kind(raw)
    except (TypeError, ValueError):
        return default  # a hand-edited URL with a bad value falls back to the default


def default_view(args: AppArgs) -> dict[str, Any]:
    """The view on a fresh start: field defaults, then the command-line arguments."""
    allowed = app_roots(args)

    def place(value: str) -> str:  # a command-line path (relative to the working folder) as a link
        return (allowed.link(value) or value) if value.strip() else ""

    def demo(path: Path) -> str:  # a demo checkpoint, when it exists and the roots allow it
        return (allowed.link(path) or "") if path.exists() else ""

    view = {name: default for name, (_, default) in VIEW_FIELDS.items()}
    view["split"] = args.split or "test"
    view["data"] = place(args.data)
    view["ckpt"] = place(args.checkpoint) or demo(DEFAULT_CHECKPOINT)
    if args.checkpoint2:
        view["ckpt2"] = place(args.checkpoint2)
    elif not args.checkpoint:
        view["ckpt2"] = demo(DEFAULT_CHECKPOINT2)
    return view


# View fields that name a place, and what kind of place (causmatch.analysis.places.KINDS).
PLACES = {"data": "data", "ckpt": "checkpoint", "ckpt2": "checkpoint"}


def _problems() -> list[str]:
    return st.session_state.setdefault("_notices", [])


def add_notice(message: str) -> None:
    """An error for this run's main panel (e.g. targets that do not fit the pair)."""
    if message not in _problems():
        _problems().append(message)


def take_notices() -> list[str]:
    """The notices of this run, then the link's refused targets while the user has not picked new ones."""
    out = list(_problems())
    _problems().clear()
    link = st.session_state.get("_link_notice")
    if link is not None:
        message, kind = link
        if view()["iv"] == kind and not view()["targets"]:
            out.append(message)
        else:
            del st.session_state["_link_notice"]
    return out


def _url_targets(view: dict[str, Any]) -> None:
    """Targets belong to the kind they were picked for: a link whose targets were made for another
    kind (``tkind``), or that gives targets to a kind without any, has them cleared — never reinterpreted."""
    from causmatch.interventions import target_rule
    targets, kind, owner = view["targets"].strip(), view["iv"], view["tkind"].strip()
    if not targets:
        view["targets"], view["tkind"] = "", ""
        return
    if target_rule(kind) is None or (owner and owner != kind):
        whose = f"were picked for {owner}" if owner else "belong to no targeted kind"
        st.session_state["_link_notice"] = (
            f"ConfigError: the link's targets ({targets[:60]}) {whose}, not for {kind} — they were cleared, "
            "not reinterpreted; pick the targets again in the sidebar", kind)
        view["targets"], view["tkind"] = "", ""
        return
    view["tkind"] = kind


_FROM_URL = "_url_fields"


def add_warning(message: str) -> None:
    """A warning for this run's main panel (a link's value that was replaced, said once)."""
    found = st.session_state.setdefault("_warnings", [])
    if message not in found:
        found.append(message)


def take_warnings() -> list[str]:
    out = list(st.session_state.get("_warnings", []))
    st.session_state["_warnings"] = []
    return out


def _shown_value(raw: Any) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(raw))
    return text if len(text) <= 40 else text[:39] + "…"


def init_view(args: AppArgs, query: dict[str, str]) -> dict[str, Any]:
    """Create the session's view once: defaults < command line < URL.

    A link's value that cannot be read (``image=abc``) or that does not fit its widget when the widget
    is first drawn (``image=99999``, ``iv=bogus``) is replaced by the default with a warning that says so.
    """
    if _VIEW not in st.session_state:
        view = default_view(args)
        for name in VIEW_FIELDS:
            if name in query:
                view[name] = _coerce(name, query[name])
                kind, default = VIEW_FIELDS[name]
                if view[name] == default and str(query[name]).strip() != str(default):
                    try:
                        kind(query[name])
                    except (TypeError, ValueError):
                        add_warning(f"The link's {name}='{_shown_value(query[name])}' is not a "
                                    f"{'whole number' if kind is int else 'value'} — {name} {default!r} is shown instead.")
        _url_targets(view)
        st.session_state[_FROM_URL] = {name for name in VIEW_FIELDS if name in query}
        st.session_state[_VIEW] = view
    return st.session_state[_VIEW]


def normalize_places() -> None:
    """Write the view's allowed places relative to their root (what the sidebar shows and links carry)."""
    current, allowed = view(), roots()
    for name, kind in PLACES.items():
        link = _as_link(current[name], kind, allowed)
        if link != current[name]:
            current[name] = link
            st.session_state.pop(f"w_{name}", None)


def view() -> dict[str, Any]:
    """The current session's view (created by :func:`init_view`)."""
    return st.session_state[_VIEW]


def set_view(**values: Any) -> None:
    """Change view fields (and the widgets bound to them) before widgets are drawn."""
    current = view()
    for name, value in values.items():
        current[name] = _coerce(name, value)
        st.session_state.pop(f"w_{name}", None)


def widget_key(name: str, valid: Callable[[Any], bool] | None = None, fallback: Any = None) -> str:
    """Bind a widget to the view field ``name``: returns the widget key to pass.

    Before the widget is drawn its state is seeded from the view (replaced by ``fallback``
    when ``valid`` rejects it, e.g. a word index past the end of a new caption). Widgets
    bound this way must not also be given a default (``index=``/``value=``).
    """
    key = f"w_{name}"
    value = view()[name]
    from_url = st.session_state.get(_FROM_URL, set())
    if valid is not None and not valid(value):
        if name in from_url:  # the link asked for something this view does not have: say so, once
            add_warning(f"The link's {name}={_shown_value(value)} does not fit this view — "
                        f"{name} {_shown_value(fallback)} is shown instead.")
        value = fallback
        view()[name] = value
    from_url.discard(name)
    # Always re-assigned: a widget with the same key on another page is another widget, and it
    # would start from its own default rather than from the state the previous page left.
    st.session_state[key] = value
    return key


def sync_widgets() -> None:
    """Copy the bound widgets' values into the view.

    Called at the start of every run: the widgets' state then already holds what the user
    just changed, while the view still holds the previous run's values.
    """
    current = view()
    for name in VIEW_FIELDS:
        key = f"w_{name}"
        if key in st.session_state and st.session_state[key] is not None:
            current[name] = _coerce(name, st.session_state[key])


def url_params(current: dict[str, Any]) -> dict[str, str]:
    """The view as URL parameters; fields at their default are left out to keep links short."""
    out = {}
    for name, (_, default) in VIEW_FIELDS.items():
        value = current.get(name, default)
        if value != default or name in ("data", "ckpt"):
            out[name] = str(value)
    return out


def write_url() -> None:
    """Write the view to ``st.query_params`` (only when it changed, to avoid browser history noise)."""
    wanted = url_params(view())
    if dict(st.query_params.to_dict()) != wanted:
        st.query_params.from_dict(wanted)


# --------------------------------------------------------------------------------------------
# Cached loaders. The split and the matchers are shared resources (read-only after loading).

def default_data_dir() -> Path:
    from causmatch.data import default_scenes_dir
    return Path(default_scenes_dir())


def resolve_data_dir(folder: str) -> Path:
    """The view's dataset folder inside the roots (DataError "not allowed" otherwise); empty: the demo."""
    return roots().resolve(folder, "data") if folder.strip() else default_data_dir()


def data_splits(folder: str) -> list[str]:
    """The splits the view's dataset folder offers (the demo also offers those it builds on demand)."""
    from causmatch.data import available_splits
    path = resolve_data_dir(folder)
    found = available_splits(path) if path.is_dir() else []
    if not folder.strip():
        from causmatch.data.scenes import DEFAULT_SIZES
        found = list(dict.fromkeys([*found, *DEFAULT_SIZES]))
    return found


@st.cache_resource(show_spinner=False, max_entries=4)
def _ensure_demo(folder: str, split: str) -> str:
    from causmatch.data import ensure_scenes
    # Only the split on screen is built, so the first page shows quickly; others on demand.
    return str(ensure_scenes(folder, splits=(split,), progress=False))


@st.cache_resource(show_spinner=False, max_entries=8)
def _load_split(folder: str, split: str, stamp: tuple):
    from causmatch.data import load_split
    return load_split(folder, split)


def _split_stamp(folder: Path, split: str) -> tuple:
    """Sizes and mtimes of the split's files: a changed file reloads the split."""
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                        for p in folder.glob(f"{split}_*") if p.is_file()))


def load_data(folder: str, split: str):
    """Load (and for the demo folder, build when missing) one split; DataError on a bad folder.

    The folder must lie inside the roots and the split must be one of its splits, both checked
    before any file of the split is touched.
    """
    from causmatch.analysis.places import check_split
    from causmatch.errors import DataError
    path = resolve_data_dir(folder)
    shown = folder.strip() or "the demo"
    if folder.strip() and not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise DataError(f"the dataset folder '{shown}' {what} — check the name (relative to a root: "
                        f"{roots().labels()})")
    check_split(split, data_splits(folder), where=f"the dataset folder '{shown}'")
    if not folder.strip():
        with st.spinner(f"Building the demo dataset's {split} split (first start only)…"):
            _ensure_demo(str(path), split)
    data = _load_split(str(path.resolve()), split, _split_stamp(path, split))
    if data.n_images == 0 or data.n_captions == 0:
        raise DataError(f"split '{split}' of the dataset folder '{shown}' has {data.n_images} images and "
                        f"{data.n_captions} captions — nothing to analyse; choose another split or dataset")
    return data


def load_checkpoint_place(value: str) -> Path:
    """The checkpoint folder a view field names, inside the roots (CheckpointError "not allowed" otherwise)."""
    return roots().resolve(value, "checkpoint")


def shown_place(path: Path | str) -> str:
    """A folder as the user sees it: relative to its root (never a server path outside the roots)."""
    return roots().link(path) or Path(path).name


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_matcher(path: str, stamp: tuple):
    from causmatch.checkpoint import load_matcher
    matcher = load_matcher(path)
    matcher.eval()  # shared by every session: never switched back to training mode
    return matcher


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
    return f"{view()['iv']} needs its targets — pick them in the sidebar"


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
