"""Loading, cached: the dataset split, the checkpoints and their analysis sessions — the app's one home for it.

Places are opened only inside the app's roots (:func:`state.roots`): a dataset folder or a checkpoint
outside them is refused with a "not allowed" error before anything is read. ``st.cache_resource``
objects are shared by every browser session and thread, so a cached matcher is put in eval mode once
and only read afterwards, and each analysis session comes with a lock that serialises its heavy calls
(whole-split matrices are scored by the one background worker, ``results.matrix_job``: it holds the lock
while it encodes the split, not while it scores, so that single pairs and queries keep answering).
Every cache is keyed by the files' sizes and modification times: a changed file is loaded again.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import streamlit as st

from state import roots


def cache_dir() -> Path:
    """The analysis cache folder: env CAUSMATCH_CACHE, else <repo>/assets/cache (git-ignored) — the folder
    ``causmatch cache`` fills by default (one rule: ``causmatch.analysis.precompute.default_cache_dir``)."""
    from causmatch.analysis.precompute import default_cache_dir
    return default_cache_dir()


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
def ensure_demo(folder: str, split: str) -> str:
    """Build the demo dataset's ``split`` when it is missing (only the split on screen, so the first page
    shows quickly; others on demand)."""
    from causmatch.data import ensure_scenes
    return str(ensure_scenes(folder, splits=(split,), progress=False))


def split_stamp(folder: Path, split: str) -> tuple:
    """Sizes and mtimes of the split's files: a changed file reloads the split."""
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                        for p in Path(folder).glob(f"{split}_*") if p.is_file()))


@st.cache_resource(show_spinner=False, max_entries=8)
def load_split(folder: str, split: str, stamp: tuple):
    """One split of a resolved dataset folder (``stamp``: :func:`split_stamp`), shared by every session."""
    from causmatch.data import load_split as load
    return load(folder, split)


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
            ensure_demo(str(path), split)
    data = load_split(str(path.resolve()), split, split_stamp(path, split))
    if data.n_images == 0 or data.n_captions == 0:
        raise DataError(f"split '{split}' of the dataset folder '{shown}' has {data.n_images} images and "
                        f"{data.n_captions} captions — nothing to analyse; choose another split or dataset")
    return data


def checkpoint_place(value: str) -> Path:
    """The checkpoint folder a view field names, inside the roots (CheckpointError "not allowed" otherwise)."""
    return roots().resolve(value, "checkpoint")


def shown_place(path: Path | str) -> str:
    """A folder as the user sees it: relative to its root (never a server path outside the roots)."""
    return roots().link(path) or Path(path).name


def checkpoint_stamp(path: Path) -> tuple:
    """Names and mtimes of a checkpoint folder's files: a changed file reloads the checkpoint."""
    return tuple(sorted((f.name, f.stat().st_mtime_ns) for f in path.iterdir())) if path.is_dir() else ()


@st.cache_resource(show_spinner=False, max_entries=4)
def load_matcher(path: str, stamp: tuple):
    """A checkpoint's matcher in eval mode (``stamp``: :func:`checkpoint_stamp`), shared by every session."""
    from causmatch.checkpoint import load_matcher as load
    matcher = load(path)
    matcher.eval()  # shared by every session: never switched back to training mode
    return matcher


@st.cache_resource(show_spinner=False, max_entries=8)
def analysis_session(ckpt: str, ckpt_stamp: tuple, folder: str, split: str, stamp: tuple):
    """(AnalysisSession, lock) per (checkpoint, split), shared by all browser sessions.

    The lock serialises the heavy calls so that two users never compute the same thing twice at once; a
    whole-split matrix is computed once per server by the background worker (one job per matrix).
    """
    from causmatch.analysis import AnalysisSession
    data = load_split(folder, split, stamp)
    matcher = load_matcher(ckpt, ckpt_stamp)
    return AnalysisSession(matcher, data, checkpoint_path=ckpt, cache_dir=cache_dir()), threading.Lock()


def open_session(path: str, split) -> tuple[Any, Any]:
    """(AnalysisSession, lock) for a checkpoint folder and a loaded split (CheckpointError on mismatch)."""
    p = Path(path).expanduser().resolve()
    stamp = checkpoint_stamp(p)
    load_matcher(str(p), stamp)  # a bad checkpoint raises its own one-line error first
    return analysis_session(str(p), stamp, str(split.folder), split.split, split_stamp(split.folder, split.split))
