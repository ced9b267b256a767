"""The app's single error panel.

Every :class:`causmatch.errors.CausMatchError` raised while a page runs is shown as a
one-line ``st.error`` with what went wrong and what to do; any other exception gets a
one-line summary too and its traceback goes to the server log, never to the user.
Streamlit's own control flow (``st.rerun``, ``st.switch_page``, ``st.stop``) derives from
``BaseException`` and passes through untouched.
"""
from __future__ import annotations

import logging
import re
from typing import Callable

import numpy as np
import streamlit as st

from causmatch.errors import CausMatchError, DataError

log = logging.getLogger("causmatch.app")

_UNEXPECTED_HINT = ("check the dataset folder, split and checkpoints in the sidebar; "
                    "if it persists, run the same step with the `causmatch` command line")


_MARKDOWN = re.compile(r"([\\`*_\[\]<>#|~$])")


def plain(text: str) -> str:
    """``text`` with Markdown's active characters escaped, so that text from a link, a dataset or the user
    is shown as typed: never a link, a colour directive, a formula or code that it did not spell out."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def error_message(exc: BaseException, redact: Callable[[str], str] | None = None) -> str:
    """One line for the user: the library's message, or a summary of an unexpected error.

    ``redact`` rewrites server paths (e.g. the roots' folders to their labels) before it is shown.
    """
    if isinstance(exc, CausMatchError):
        text = f"{type(exc).__name__}: {exc}"
    else:
        first = " ".join(str(exc).split())[:200] or type(exc).__name__
        text = f"Unexpected error ({type(exc).__name__}: {first}) — {_UNEXPECTED_HINT}."
    return redact(text) if redact is not None else text


def show_error(exc: BaseException, where: str = "page", redact: Callable[[str], str] | None = None) -> None:
    """Draw the error panel for ``exc`` and log the traceback for unexpected errors."""
    if not isinstance(exc, CausMatchError):
        log.exception("unexpected error in the %s", where, exc_info=exc)
    st.error(plain(error_message(exc, redact)), icon=":material/error:")


def show_notices(messages: list[str]) -> None:
    """Error panels for problems found while reading the view (e.g. a link's refused targets)."""
    for message in messages:
        st.error(plain(message), icon=":material/error:")


def require_finite(values, what: str) -> None:
    """Refuse to show a number that is not finite: a DataError naming ``what`` (never "nan" beside a rank)."""
    arr = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise DataError(f"{what}: {int(bad.sum())} of {arr.size} value(s) are not finite (NaN or infinite) — "
                        "the checkpoint or the features hold non-finite numbers; check them with "
                        "`causmatch evaluate` and retrain or re-extract")
