"""Sections of a page that rerun on their own: a widget changed inside one reruns that section only
(``st.fragment``), not the sidebar, the page's other sections, or the loading they repeat.

A section holds its picker and everything drawn from the picked value, so that nothing outside it goes
stale (Explore's word section holds the per-word effects, whose bar of the picked word is highlighted).
When a change inside a section touches something drawn outside it, the change's callback asks for the
whole page instead (:func:`state.changed`): the link's replaced values said on top of the page (the change
clears them). While the intervention is a targeted kind the sidebar's targets are the view's pair's words
or regions: a section that picks the pair is then drawn inline (:func:`sidebar_follows_pair`), so its picks
rerun the whole page. The sidebar's own widgets rerun the whole page.

A section reruns with the arguments of the page's last whole run (the run's context: data, checkpoints,
intervention); the view's values it fits to its pickers (:func:`state.fit`) are written to the link at its
end, as the entry script does after a whole run. Sections nest: the pair section of Explore reruns its
word and region sections with the new pair's explanation.

An error inside a section is shown in the section's place by the app's error panel
(``components.errors.show_error``: one line, the traceback to the server log), as the entry script shows a
page's: Streamlit's own handler of an error in a fragment would draw a traceback on the page.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

import streamlit as st

import state
from causmatch.interventions import target_rule
from components.errors import show_error


def sidebar_follows_pair() -> bool:
    """Whether the sidebar draws from the view's pair: a targeted kind's targets are the pair's words or
    regions, checked against it — then a section that picks the pair is drawn inline (its picks rerun the page)."""
    return target_rule(state.value("iv")) is not None


_running = threading.local()  # sections being drawn in this script thread (a session's run): nested ones inside


def _alone() -> bool:
    """Whether this run is a section's own rerun (not the whole page's). Such a run keeps the view
    (:func:`state.keep`) first: a pick made in the section must be the view's value, not only its widget's —
    on a page switch Streamlit drops the state of the last page's widgets before the next page runs, and the
    sidebar reads every field of the view first (it raised a KeyError after a word pick on Failing pair). A whole
    run keeps the view at its start, before any widget exists; a section's own run keeps it at the start of the
    outermost section only — a nested section starts after its parent drew widgets, which may not be set again."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    ctx = get_script_run_ctx()
    return bool(ctx is not None and ctx.fragment_ids_this_run)


def section(draw: Callable[..., Any], *args: Any, key: str, alone: bool = True) -> None:
    """Draw ``draw(*args)`` as a section that reruns on its own (an ``st.fragment`` named ``key``, unique
    among the sections a page draws in one run); inline when not ``alone`` (its widgets rerun the page)."""
    if not alone:
        draw(*args)
        return
    def run(*inner: Any) -> None:
        outermost = not getattr(_running, "depth", 0)
        if outermost and _alone():  # as the entry script does at the start of a whole run (below: why)
            state.keep()
        _running.depth = getattr(_running, "depth", 0) + 1
        try:
            draw(*inner)
        except Exception as exc:  # noqa: BLE001 — as the entry script: the error panel, never a traceback
            show_error(exc, where=f"section {key}", redact=state.roots().redact)
        finally:
            _running.depth -= 1
        if outermost:
            state.write_link()  # a rerun of the section alone ends here, not at the entry script's end

    run.__name__ = run.__qualname__ = f"section_{key}"  # the fragment's identity within the page
    st.fragment(run, key=key)(*args)
