"""App state: command-line arguments, the shareable view in the URL, and cached loaders.

The *view* is one plain dict in ``st.session_state`` holding everything a shared link must
restore (dataset, split, checkpoints, pair, word, intervention, direction ...). It is read
from the URL once per browser session, widgets are bound to it with :func:`widget_key`,
and it is written back to ``st.query_params`` at the end of every run. Widget values live
in the view rather than in widget state, so they survive page switches (Streamlit drops
the state of widgets that a page does not draw).

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


def parse_args(argv: list[str] | None = None) -> AppArgs:
    """Parse ``-- --checkpoint CKPT [--checkpoint2 CKPT] --data DIR --split SPLIT``.

    Unknown arguments are ignored so that the app also runs under pytest's argv (AppTest).
    """
    parser = argparse.ArgumentParser(prog="streamlit run app/streamlit_app.py --", add_help=False)
    parser.add_argument("--checkpoint", default="")
    parser.add_argument("--checkpoint2", default="")
    parser.add_argument("--data", default="")
    parser.add_argument("--split", default="test")
    known, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return AppArgs(known.checkpoint, known.checkpoint2, known.data, known.split)


def _coerce(name: str, raw: Any) -> Any:
    kind, default = VIEW_FIELDS[name]
    try:
        return kind(raw)
    except (TypeError, ValueError):
        return default  # a hand-edited URL with a bad value falls back to the default


def default_view(args: AppArgs) -> dict[str, Any]:
    """The view on a fresh start: field defaults, then the command-line arguments."""
    view = {name: default for name, (_, default) in VIEW_FIELDS.items()}
    view["split"] = args.split or "test"
    view["data"] = args.data
    view["ckpt"] = args.checkpoint or (str(DEFAULT_CHECKPOINT) if DEFAULT_CHECKPOINT.exists() else "")
    if args.checkpoint2:
        view["ckpt2"] = args.checkpoint2
    elif not args.checkpoint and DEFAULT_CHECKPOINT2.exists():
        view["ckpt2"] = str(DEFAULT_CHECKPOINT2)
    return view


def init_view(args: AppArgs, query: dict[str, str]) -> dict[str, Any]:
    """Create the session's view once: defaults < command line < URL."""
    if _VIEW not in st.session_state:
        view = default_view(args)
        for name in VIEW_FIELDS:
            if name in query:
                view[name] = _coerce(name, query[name])
        st.session_state[_VIEW] = view
    return st.session_state[_VIEW]


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
    if valid is not None and not valid(value):
        value = fallback
        view()[name] = value
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
    """The dataset folder of the view; empty means the bundled demo ("scenes")."""
    return Path(folder).expanduser() if folder.strip() else default_data_dir()


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
    """Load (and for the demo folder, build when missing) one split; DataError on a bad folder."""
    path = resolve_data_dir(folder)
    if not folder.strip():
        with st.spinner(f"Building the demo dataset's {split} split (first start only)…"):
            _ensure_demo(str(path), split)
    return _load_split(str(path.resolve()), split, _split_stamp(path, split))


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
