"""Failure cases: queries whose true item is not ranked first, filtered, sorted, opened in Explore."""
from __future__ import annotations

from functools import partial

import pandas as pd
import streamlit as st

import results
import state
from causmatch.analysis import links
from components.errors import plain, require_finite
from components.pickers import pick_direction
from components.tables import csv_button

SORTS = {"rank": False, "margin": True, "effect_true": True, "effect_wrong": False, "query": True}


def _filters(ctx: state.Context) -> dict:
    top = st.columns([2, 1, 1, 1, 1])
    with top[0]:
        direction = pick_direction()
    lo = top[1].number_input("Rank from", min_value=links.FIELDS["rank_lo"].low, step=1, key=state.key("rank_lo"),
                             on_change=state.changed, help="1 = the true item is first; 2 keeps only failures")
    hi = top[2].number_input("Rank to (0: no limit)", min_value=links.FIELDS["rank_hi"].low, step=1,
                             key=state.key("rank_hi"), on_change=state.changed)
    sign = top[3].selectbox("Effect on true pair", links.SIGNS, key=state.key("sign"), on_change=state.changed)
    two = len(ctx.models) > 1
    disagree = top[4].checkbox("Disagree", key=state.key("disagree"), on_change=state.changed,
                               disabled=not two, help="exactly one checkpoint ranks the true item first")
    return dict(direction=direction, rank_min=int(lo) - 1, rank_max=int(hi) - 1 if hi else None,
                effect_sign=None if sign == "any" else sign, disagreement=bool(disagree) and two)


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


def shown_table(df: pd.DataFrame) -> pd.DataFrame:
    """The table as shown: 1-based ranks, columns that are all empty dropped."""
    out = df.copy()
    for col in ("rank", "rank_cf", "rank_other"):
        out[col] = out[col].where(out[col] < 0, out[col] + 1)
    if (df["rank_other"] < 0).all():
        out = out.drop(columns=["rank_other", "disagree"])
    if out["pointing"].isna().all():
        out = out.drop(columns=["pointing"])
    if (out["query_text"] == "").all():
        out = out.drop(columns=["query_text"])
    return out.reset_index(drop=True)


def render(ctx: state.Context) -> None:
    st.title("Failure cases")
    st.caption(f"{' vs '.join(plain(m.label) for m in ctx.models)} · counterfactual: {ctx.intervention or 'none'} · "
               f"{results.SPLIT_SAMPLES} draw per pair · ranks are 1-based; "
               "margin = score of the true item − score of the best wrong item")
    filters = _filters(ctx)
    full = results.failures(ctx, filters["direction"])
    require_finite(full[[c for c in ("margin", "effect_true") if c in full.columns]].to_numpy(),
                   f"the failure table ({filters['direction']})")
    df = results.filter_failures(full, **filters)
    sort_col, order = st.columns([2, 1])
    by = sort_col.selectbox("Sort by", list(SORTS), key="fail_sort")
    asc = order.toggle("Ascending", value=SORTS[by], key=f"fail_asc_{by}")
    shown = shown_table(df.sort_values(by, ascending=asc, kind="stable"))
    st.markdown(f"**{len(shown):,}** of {len(full):,} queries · select a row to open it in *Explore a pair*")
    st.dataframe(shown, hide_index=True, on_select=partial(_row_selected, ctx.split, shown),
                 selection_mode="single-row", key="fail_table", height=420)
    csv_button(shown, f"failures_{filters['direction']}.csv", key="fail_csv", label="Export CSV")
    if state.take_open() == "explore":
        st.switch_page("app_pages/explore.py", query_params=state.link())


if __name__ == "__main__":
    render(state.context())
