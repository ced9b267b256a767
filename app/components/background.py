"""Where a whole-split result will go while the background worker computes it: "computing … (x/y, ~N s left)"
with Cancel, a failed job's one-line error with Try again, a cancelled job with Compute. The status polls
on its own (``st.fragment(run_every=...)``) — the rest of the page stays as drawn — and reruns the page
once every job it waits for has finished, so that the result fills in.

    from components import background
    jobs = results.pending(ctx, [(model, None), (model, ctx.intervention)])
    if jobs:
        background.status(jobs, key="fail")   # drawn where the table will be
    else:
        ...draw the table...
"""
from __future__ import annotations

import streamlit as st

import results
import state
from components.errors import plain, show_error

POLL_S = 1.0  # seconds between two looks at the jobs (the status section alone reruns)
MARK = "bg_status"  # the status containers' key prefix (CSS class st-key-bg_status_<key>)


def line(now) -> str:
    """One job's status as one line (Markdown-safe)."""
    label = plain(now.label)
    if now.state == "queued":
        ahead = f", {now.position} job{'s' if now.position != 1 else ''} ahead" if now.position else ""
        return f"{label} — waiting{ahead}"
    if now.state == "running":
        count = f" ({now.done:,}/{now.total:,}" if now.total else " (starting"
        left = f", ~{max(1, round(now.eta))} s left)" if now.eta is not None and now.total else ")"
        return f"computing {label} …{count}{left}"
    if now.state == "failed":
        return f"{label} — failed: {plain(state.roots().redact(now.error or ''))}"
    if now.state == "cancelled":
        return f"{label} — cancelled"
    return f"{label} — done"


def _draw(keys: list[str], key: str) -> None:
    from causmatch.analysis.jobs import worker
    jobs = [worker().get(k) for k in keys]
    if all(j is None or j.status().state == "done" for j in jobs):
        st.rerun()  # every result has landed (or was forgotten): the page draws them
    for n, job in enumerate(jobs):
        if job is None:
            continue
        now = job.status()
        text, right = st.columns([5, 1], vertical_alignment="center")
        if now.state in ("queued", "running"):
            text.progress(now.fraction, text=line(now))
            right.button("Cancel", key=f"bg_cancel_{key}_{n}", on_click=results.cancel, args=(job.key,),
                         help="stop this computation at its next shard; nothing is written to the cache")
        elif now.state in ("failed", "cancelled"):
            (text.error if now.state == "failed" else text.info)(line(now))
            right.button("Try again" if now.state == "failed" else "Compute", key=f"bg_retry_{key}_{n}",
                         on_click=results.retry, args=(job.key,))
        else:
            text.caption(line(now))


def status(jobs: list, key: str, what: str = "") -> None:
    """The status of ``jobs`` (:func:`results.pending`), polled every :data:`POLL_S` s while any is queued or
    running; ``what``: the result that will appear here (one line above the status)."""
    if what:
        st.caption(what)
    keys = [j.key for j in jobs]
    active = any(not j.status().finished for j in jobs)

    def draw(*args) -> None:
        try:
            _draw(*args)
        except Exception as exc:  # noqa: BLE001 — as a section: the error panel in place, never a traceback
            show_error(exc, where=f"status {key}", redact=state.roots().redact)
    draw.__name__ = draw.__qualname__ = f"background_{key}"  # one fragment per status on a page
    with st.container(key=f"{MARK}_{key}"):  # the page's browser tests wait until no such container is left
        st.fragment(draw, run_every=POLL_S if active else None)(keys, key)
