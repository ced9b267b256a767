"""Failure cases: queries whose true item is not ranked first, filtered, sorted, opened in Explore."""
from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

import results
import state
from causmatch.analysis import failures, links
from components.errors import plain, require_finite
from components.pickers import pick_direction
from components.tables import csv_button


def _filters(ctx: state.Context) -> dict:
    """The filter widgets (bound to the view); returns the view's filters."""
    top = st.columns([2, 1, 1, 1, 1])
    with top[0]:
        pick_direction()
    top[1].number_input("Rank from", min_value=links.FIELDS["rank_lo"].low, step=1, key=state.key("rank_lo"),
                        on_change=state.changed, help="1 = the true item is first; 2 keeps only failures")
    top[2].number_input("Rank to (0: no limit)", min_value=links.FIELDS["rank_hi"].low, step=1,
                        key=state.key("rank_hi"), on_change=state.changed)
    top[3].selectbox("Effect on true pair", links.SIGNS, key=state.key("sign"), on_change=state.changed)
    two = len(ctx.models) > 1
    top[4].checkbox("Disagree", key=state.key("disagree"), on_change=state.changed,
                    disabled=not two, help="exactly one checkpoint ranks the true item first")
    return results.failure_filters(ctx)


def _row_selected(split, shown: pd.DataFrame) -> None:
    """on_select of the table: the selected query's pair (query with its true item) becomes the view's,
    to be opened in Explore."""
    rows = st.session_state["fail_table"]["selection"]["rows"]
    if not rows:
        return
    row = shown.iloc[rows[0]]
    if row["direction"] == "t2i":
        caption = int(row["query"])
        image = split.image_of(caption)
    else:
        image, caption = int(row["query"]), int(row["true_item"])
    state.open_pair(image, caption, "explore")


def render(ctx: state.Context) -> None:
    st.title("Failure cases")
    st.caption(f"{' vs '.join(plain(m.label) for m in ctx.models)} · counterfactual: {ctx.intervention or 'none'} · "
               f"{results.SPLIT_SAMPLES} draw per pair · ranks are 1-based; "
               "margin = score of the true item − score of the best wrong item")
    filters = _filters(ctx)
    full = results.failures(ctx, filters["direction"])
    require_finite(full[[c for c in ("margin", "effect_true") if c in full.columns]].to_numpy(),
                   f"the failure table ({filters['direction']})")
    sort_col, order = st.columns([2, 1])
    by = sort_col.selectbox("Sort by", failures.SORTABLE, key=state.key("sort"), on_change=state.changed,
                            format_func=lambda c: failures.COLUMNS[c].named(filters["direction"])[0])
    natural = "ascending ↑" if failures.COLUMNS[by].ascending else "descending ↓"
    order.segmented_control("Order", failures.ORDERS, required=True, key=state.key("order"), on_change=state.changed,
                            format_func={"": f"default ({natural})", "asc": "↑", "desc": "↓"}.get,
                            help="default: the column's own order, worst cases first")
    shown = results.failure_list(ctx)
    st.markdown(f"**{len(shown):,}** of {len(full):,} queries · select a row to open it in *Explore a pair*")
    st.dataframe(shown, hide_index=True, on_select=partial(_row_selected, ctx.split, shown),
                 selection_mode="single-row", key="fail_table", height=420)
    csv_button(shown, f"failures_{filters['direction']}.csv", key="fail_csv", label="Export CSV")
    if state.take_open() == "explore":
        st.switch_page("app_pages/explore.py", query_params=state.link())


if __name__ == "__main__":
    render(state.context())
