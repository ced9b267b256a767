"""Places a served app may open: folders under a fixed set of *roots*, named relative to a root.

Anyone who can reach a served app can type a dataset or checkpoint folder into its sidebar or its URL.
:class:`Roots` decides which folders that may be: a place is accepted only when it lies inside one of
the roots after ``~``, ``..`` and symbolic links are resolved. Everything else is refused with one line
that contains "not allowed" and never says whether the path exists (the same words for an existing
and a missing path, the refused value echoed only as typed).

A place is written *relative to a root* (``<label>/<path inside the root>``; a root's label is its
folder name, made unique with ``-2``, ``-3`` … in the order the roots are given), so a link names the
same place in another checkout or on another server that has a root with that label. On input, a
relative name is also looked up as a path inside each root without its label (the first that exists,
in the order of the roots), and an absolute path inside a root is accepted; :meth:`Roots.link` always
writes the labelled form. An absolute path outside the roots that an older link carried (another
checkout's ``/…/checkpoints/causmatch-scenes``) is refused, but :meth:`Roots.relocate` names the one place
inside the roots that it means, if there is exactly one, for the app to open instead with a warning.

A dataset's split is a file-name prefix inside the folder, so it is accepted only when it is one of the
folder's splits (:func:`check_split`): ``split=../../x`` never reaches the file system.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from causmatch.errors import CausMatchError, CheckpointError, ConfigError, DataError

# What is being opened -> (words for the message, the error class the app's panel shows).
KINDS: dict[str, tuple[str, type[CausMatchError]]] = {
    "data": ("dataset folder", DataError),
    "checkpoint": ("checkpoint", CheckpointError),
}
_SHOWN = 120  # characters of a refused value echoed in the message


@dataclass(frozen=True)
class Root:
    """One allowed folder: ``label`` (how links name it) and its resolved ``path``."""

    label: str
    path: Path


def _real(path: str | os.PathLike) -> Path:
    """``path`` with ``~``, ``..`` and every symbolic link resolved (missing tails kept as written)."""
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def _shown(value: str) -> str:
    """The refused value as the user typed it, on one line and cut short (never resolved)."""
    text = "".join(ch if ch.isprintable() else "?" for ch in str(value))
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def _error(kind: str) -> tuple[str, type[CausMatchError]]:
    if kind not in KINDS:
        raise ConfigError(f"unknown place kind {kind!r} — use one of: {', '.join(KINDS)}")
    return KINDS[kind]


class Roots:
    """The folders a served app may open datasets and checkpoints from (see the module docstring)."""

    def __init__(self, folders: Iterable[str | os.PathLike]):
        roots: list[Root] = []
        seen: set[Path] = set()
        labels: set[str] = set()
        for folder in folders:
            if not str(folder).strip():
                continue
            path = _real(folder)
            if path in seen:
                continue
            seen.add(path)
            base = path.name or "root"
            label, n = base, 1
            while label in labels:
                n += 1
                label = f"{base}-{n}"
            labels.add(label)
            roots.append(Root(label, path))
        self.roots: tuple[Root, ...] = tuple(roots)

    def __repr__(self) -> str:
        return f"Roots({', '.join(f'{r.label}={r.path}' for r in self.roots)})"

    def labels(self) -> str:
        """The roots as links name them, e.g. ``checkpoints/, assets/`` (no server paths)."""
        return ", ".join(f"{r.label}/" for r in self.roots) or "none"

    def _root_of(self, path: Path) -> Root | None:
        for root in self.roots:
            if path == root.path or path.is_relative_to(root.path):
                return root
        return None

    def refusal(self, value: str, kind: str) -> CausMatchError:
        """The one-line "not allowed" error for ``value`` (the same whether or not it exists)."""
        what, cls = _error(kind)
        return cls(f"the {what} '{_shown(value)}' is not allowed: this app opens only folders inside its roots "
                   f"({self.labels()}) — name one relative to a root, e.g. "
                   f"'{self.roots[0].label + '/…' if self.roots else 'ROOT/…'}', or start the app with "
                   "`-- --root DIR` to allow another folder")

    def resolve(self, value: str, kind: str) -> Path:
        """The folder that ``value`` names: ``<label>/<path>``, a path inside a root without its label,
        or an absolute path inside a root (the first of these that exists; else the first inside a root).

        Raises the kind's error class (DataError for "data", CheckpointError for "checkpoint") with
        "not allowed" when the resolved folder is outside every root; whether it exists is not checked
        here (the loader says so for places inside the roots).
        """
        _error(kind)
        text = str(value).strip()
        if not text or "\x00" in text:
            raise self.refusal(text, kind)
        try:
            raw = Path(os.path.expanduser(text))
            labelled = None
            if raw.is_absolute():
                plain = [raw]
            else:
                parts = raw.parts  # empty for "."
                root = next((r for r in self.roots if parts and r.label == parts[0]), None)
                if root is not None:
                    labelled = _real(root.path.joinpath(*parts[1:]))
                    if self._root_of(labelled) is None:  # a root's label, then out of it: an escape
                        raise self.refusal(text, kind)
                    if labelled.exists():
                        return labelled
                plain = [r.path / raw for r in self.roots]  # a path inside a root, without its label
            inside = [real for real in map(_real, plain) if self._root_of(real) is not None]
            found = next((real for real in inside if real.exists()), None)
        except (OSError, ValueError, RuntimeError):
            raise self.refusal(text, kind) from None
        if found is not None:
            return found
        if labelled is not None:
            return labelled
        if not inside:  # existence is only ever looked at inside the roots
            raise self.refusal(text, kind)
        return inside[0]

    def allowed(self, value: str, kind: str) -> bool:
        """Whether :meth:`resolve` accepts ``value``."""
        try:
            self.resolve(value, kind)
        except CausMatchError:
            return False
        return True

    def link(self, path: str | os.PathLike) -> str | None:
        """``path`` as links write it (``<label>/<relative path>``), or None when it is outside the roots."""
        real = _real(path)
        root = self._root_of(real)
        if root is None:
            return None
        rel = real.relative_to(root.path).as_posix()
        return root.label if rel in ("", ".") else f"{root.label}/{rel}"

    def relocate(self, value: str) -> str | None:
        """For a place outside every root, as an old link from another checkout or server names it
        (``/home/alice/CausMatch/checkpoints/causmatch-scenes``): the same place inside this app's roots,
        as links write it — the path from a part equal to a root's label on (``checkpoints/causmatch-scenes``)
        — when exactly one such place exists; None otherwise (nothing found, or several different places:
        ambiguous, never guessed). Only absolute paths are relocated, and only places inside the roots
        are ever looked at."""
        path = Path(os.path.expanduser(str(value).strip()))
        if not path.is_absolute() or "\x00" in str(path):
            return None
        parts = path.parts
        found = set()
        for i, part in enumerate(parts):
            for root in self.roots:
                if part != root.label:
                    continue
                try:
                    real = _real(root.path.joinpath(*parts[i + 1:]))
                    if real.is_relative_to(root.path) and real.exists():
                        found.add(self.link(real))
                except (OSError, ValueError, RuntimeError):
                    continue
        return found.pop() if len(found) == 1 else None

    def redact(self, message: str) -> str:
        """``message`` with each root's server path replaced by its label (longest paths first)."""
        for root in sorted(self.roots, key=lambda r: len(str(r.path)), reverse=True):
            message = message.replace(str(root.path), root.label)
        return message


def check_split(split: str, available: Iterable[str], where: str = "this dataset") -> str:
    """``split`` when it is one of ``available`` (a folder's splits); else a one-line DataError.

    The split names files inside the folder (``{split}_ims.npy``), so only a listed name is used:
    ``../../x`` or ``test/../../x`` never reaches the file system.
    """
    names = list(available)
    text = str(split)
    if text in names:
        return text
    if not names:
        raise DataError(f"the split '{_shown(text)}' is not allowed: {where} has no splits "
                        "(a split needs {split}_ims.npy and {split}_caps.txt) — choose another dataset folder")
    raise DataError(f"the split '{_shown(text)}' is not allowed: {where} has the split(s) {', '.join(names)} "
                    "— choose one of them in the sidebar")
