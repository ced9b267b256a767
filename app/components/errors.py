"""The app's single error panel.

Every :class:`causmatch.errors.CausMatchError` raised while a page runs is shown as a
one-line ``st.error`` with what went wrong and what to do; any other exception gets a
one-line summary too and its traceback goes to the server log, never to the user.
Streamlit's own control flow (``st.rerun``, ``st.switch_page``, ``st.stop``) derives from
``BaseException`` and passes through untouched.
"""
from __future__ import annotations

import logging

import streamlit as st

from causmatch.errors import CausMatchError

log = logging.getLogger("causmatch.app")

_UNEXPECTED_HINT = ("check the dataset folder, split and checkpoints in the sidebar; "
                    "if it persists, run the same step with the `causmatch` command line")


def error_message(exc: BaseException) -> str:
    """One line for the user: the library's message, or a summary of an unexpected error."""
    if isinstance(exc, CausMatchError):
        return f"{type(exc).__name__}: {exc}"
    first = " ".join(str(exc).split())[:200] or type(exc).__name__
    return f"Unexpected error ({type(exc).__name__}: {first}) — {_UNEXPECTED_HINT}."


def show_error(exc: BaseException, where: str = "page") -> None:
    """Draw the error panel for ``exc`` and log the traceback for unexpected errors."""
    if not isinstance(exc, CausMatchError):
        log.exception("unexpected error in the %s", where, exc_info=exc)
    st.error(error_message(exc), icon=":material/error:")
