"""Failure cases: queries whose true item is not ranked first — filtered, cut by a slice, sorted, each opened
as its failing pair — and the split's slices side by side (R@K, mean effect, pointing accuracy)."""
from __future__ import annotations

import re
from functools import partial

import pandas as pd
import streamlit as st

import results
import state
from causmatch.analysis import failures, links, slices
from components import background, figures, help
from components.errors import plain, require_finite
from components.pickers import pick_direction, pick_slice
from components.sections import section
from components.tables import SELECT_WIDTH, column_config, csv_button, thumbnail

TABLE_WIDTH = 800  # pixels: the main column at 1280 px with the sidebar open (measured in the browser)
THUMBS = 250       # rows with a thumbnail of the query image (the first ones, in the table's order)
SLICE_WORDS = 20   # word slices in the Slices section (most frequent first); the slice picker offers every word
FAILING_PAIR = "app_pages/failing_pair.py"
SLICES_TAB = "failures_slices_tab"  # the Slices section's open tab (a family): the page's own, not the link's


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
    """on_select of the table: the selected failure becomes the view's and its failing pair is opened."""
    rows = st.session_state["fail_table"]["selection"]["rows"]
    if not rows:
        return
    row = shown.iloc[rows[0]]
    direction, query = str(row["direction"]), int(row["query"])
    if direction == "t2i":
        image, caption = split.image_of(query), query
    else:
        image, caption = query, int(row["true_item"])
    state.open_failure(direction, query, image, caption)


def _numbered(split, caption: int) -> str:
    return f"#{caption} · {split.captions[caption]}"


def display(ctx: state.Context, shown: pd.DataFrame, direction: str) -> tuple[pd.DataFrame, dict]:
    """(rows, column settings) as drawn: readable names with help (``failures.COLUMNS``), the caption
    texts (the query caption; for image queries the best wrong caption, the image beside it being the
    truth), and thumbnails of the query images (the first :data:`THUMBS` rows). The settings
    name the columns shown, in order; the rows keep every column (the selection reads them). Counterfactual
    columns say the draws they average (the sidebar's, as on every page)."""
    split = ctx.split
    out = shown.copy()
    if direction == "t2i":
        out["query_text"] = [_numbered(split, int(q)) for q in out["query"]]
    else:
        paths = split.image_paths
        if paths:
            out["query_image"] = [thumbnail(paths[int(q)]) if n < THUMBS else None
                                  for n, q in enumerate(out["query"])]
        out["wrong_text"] = [_numbered(split, int(c)) for c in out["best_wrong"]]
    present = [n for n, c in failures.COLUMNS.items() if n in out.columns and c.in_table]
    replaced = {failures.COLUMNS[n].replaces for n in present}
    n_draws = results.draws(ctx, ctx.intervention) if ctx.intervention else None
    named = {n: (*failures.COLUMNS[n].named(direction, n_draws, short=True), failures.COLUMNS[n].kind)
             for n in present if n not in replaced}
    return out, column_config(named, fit=TABLE_WIDTH - SELECT_WIDTH)


def _file_name(direction: str, key: str) -> str:
    cut = re.sub(r"[^A-Za-z0-9_-]+", "-", key.replace(":", "-")).strip("-")
    return f"failures_{direction}{'_' + cut if cut else ''}.csv"


def _table(ctx: state.Context, found: slices.SplitSlices, direction: str, full: pd.DataFrame) -> None:
    shown = results.failure_list(ctx)
    cut = results.failure_slice(ctx)
    queries = "captions" if direction == "t2i" else "images"
    if cut is not None and cut.rows(direction) is None:
        st.info(f"The slice *{plain(cut.title)}* describes captions: it cuts caption queries, not image queries — "
                "every image query is listed. Query by caption to cut the table, or pick an image slice "
                "(valid regions, bias distractor).")
    where = "" if cut is None or cut.rows(direction) is None else f" in the slice *{plain(cut.title)}*"
    st.markdown(f"**{len(shown):,}** of {len(full):,} query {queries}{where} · select a row to open its "
                "failing pair (the query beside its true and best wrong item)")
    _fit_line(ctx, direction, full)
    rows, config = display(ctx, shown, direction)
    st.dataframe(rows, hide_index=True, column_config=config, column_order=list(config),
                 on_select=partial(_row_selected, ctx.split, shown), selection_mode="single-row", key="fail_table",
                 height=420, placeholder="—",
                 row_height=44 if "query_image" in config else None)
    notes = ["ranks are 1-based (1 = first)", "ids are 0-based indices into the split"]
    if "query_image" in config and len(rows) > THUMBS:
        notes.append(f"thumbnails for the first {THUMBS} rows")
    st.caption(" · ".join(notes) + " · scores S(true pair) and S(best wrong pair) are in the CSV export")
    csv_button(shown, _file_name(direction, state.value("slice")), key="fail_csv", label="Export CSV")


def _fit_line(ctx: state.Context, direction: str, full: pd.DataFrame) -> None:
    """One line on captions that fit several images: how many of the direction's failures rank first an item
    that also fits the query (the column *Best wrong also fits*), or why the column is absent."""
    if "wrong_fits" not in full.columns:
        _, why = results.fits(ctx)
        st.caption(f"No *Best wrong also fits* column: {plain(why or 'the split has no fit matrix')}")
        return
    failed = full["rank"].to_numpy() > 0
    also = failed & full["wrong_fits"].to_numpy(bool)
    queries = "caption" if direction == "t2i" else "image"
    item = "an image the caption" if direction == "t2i" else "a caption the image"
    share = f" ({100 * also.sum() / failed.sum():.1f} %)" if failed.any() else ""
    st.caption(f"Of the {int(failed.sum()):,} failing {queries} queries, {int(also.sum()):,}{share} rank first "
               f"{item} is true of as well (*Best wrong also fits*: no model error); the slice *outcome: real "
               "failures only* hides them.")


SLICE_COLUMNS = {  # slice table column -> (label, help, kind); R@10 and medr are in its CSV export
    "checkpoint": ("Checkpoint", "the checkpoint these numbers are of", "name"),
    "label": ("Slice", "the slice's value", "name"),
    "captions": ("Captions", "captions (matching pairs) in the slice", "id"),
    "images": ("Images", "images in the slice (image slices only)", "id"),
    "t2i_r1": ("R@1 c→i", "caption → image R@1: % of the slice's captions whose image is ranked first", "pct"),
    "t2i_r5": ("R@5 c→i", "caption → image R@5: % of the slice's captions whose image is in the top 5", "pct"),
    "i2t_r1": ("R@1 i→c", "image → caption R@1: % of the slice's images with one of their captions first "
               "(image slices only)", "pct"),
    "i2t_r5": ("R@5 i→c", "image → caption R@5: % of the slice's images with a caption in the top 5 (image "
               "slices only)", "pct"),
    "effect": ("Effect", "mean effect S(α) − S(ᾱ) of the slice's matching pairs ({draws} of ᾱ per pair; the "
               "first checkpoint's, as the failure table)", "score"),
    "pointing": ("Pointing", "pointing accuracy: % of the grounded words of the slice's captions whose "
                 "most-attended region is one of theirs", "pct"),
}


def _slice_config(df: pd.DataFrame, n_draws: int = 1) -> dict:
    """Column settings of a slice table: the columns that hold a value, named with their help."""
    draws = f"{n_draws} draw{'s' if n_draws != 1 else ''}"
    return column_config({name: (label.format(draws=draws), text, kind)
                          for name, (label, text, kind) in SLICE_COLUMNS.items()
                          if name in df.columns and not df[name].isna().all()})


def _outcome_note(ctx: state.Context) -> None:
    """What the outcome slices are, and what their R@1 cannot say (it is fixed by how they are cut)."""
    first = plain(ctx.models[0].label)
    other = (f"; {plain(ctx.models[1].label)}'s R@K on them says whether it gets {first}'s failures right"
             if len(ctx.models) > 1 else "")
    st.caption(f"{first}'s queries by outcome, each direction by its own: ranked first, a failure whose best wrong "
               f"item also fits the query (no model error), a real failure. {first}'s R@1 is 100 % and 0 % on them "
               f"by construction: compare their effect and pointing accuracy{other}.")


def _slices_section(ctx: state.Context, found: slices.SplitSlices) -> None:
    st.subheader("Slices")
    st.caption("R@K, mean effect and pointing accuracy of the whole split cut into slices: by a word, the caption's "
               "length and the image's valid regions for every dataset; for scenes, by the generator's labels and "
               "by the first checkpoint's outcome (real failures: the best wrong item does not fit the query). "
               "A caption slice cuts caption queries; an image slice cuts image queries and the captions of its "
               f"images. Mean effects: the first checkpoint's, under "
               f"{plain(ctx.intervention or 'no counterfactual')}, {_draws_text(ctx)}.")
    help.how_to_read("ranks", "effect", "pointing", *(("fit",) if "outcome" in found.families else ()))
    if found.missing:
        why = dict.fromkeys(found.missing.values())
        st.caption("Not offered here: " + " · ".join(plain(w) for w in why))
    keys = found.keys(words=SLICE_WORDS)
    table = results.slice_table(ctx, ["", *keys], effects=ctx.intervention is not None)
    families = [f for f in slices.FAMILIES if f in found.families and f != "word"] + ["word"]  # words: many rows
    # One family at a time: only the open tab is drawn (its chart and table), so the page and a switch stay quick.
    tabs = st.tabs([slices.TITLES[f].capitalize() for f in families], key=SLICES_TAB, on_change="rerun")
    whole = table[table["slice"] == ""]
    for tab, family in zip(tabs, families):
        if not tab.open:
            continue
        part = table[table["family"] == family]
        with tab:
            image = family in slices.IMAGE_FAMILIES or family in slices.QUERY_FAMILIES
            cats = figures.unique_labels(list(part[part["checkpoint"] == part["checkpoint"].iloc[0]]["label"]))
            if family in slices.QUERY_FAMILIES:
                _outcome_note(ctx)
            if family in slices.QUERY_FAMILIES and "pointing" in part and part["pointing"].notna().any():
                series = {label: part[part["checkpoint"] == label]["pointing"].to_numpy()
                          for label in part["checkpoint"].unique()}
                ref = float(whole["pointing"].iloc[0])
                fig = figures.grouped_bars(cats, series, title=f"Pointing accuracy by {slices.TITLES[family]}",
                                           axis="pointing accuracy (%)",
                                           reference=(f"whole split, {ctx.models[0].label}", ref))
            else:
                series = {}
                for label in part["checkpoint"].unique():
                    rows = part[part["checkpoint"] == label]
                    series[f"{label} · caption → image"] = rows["t2i_r1"].to_numpy()
                    if image:
                        series[f"{label} · image → caption"] = rows["i2t_r1"].to_numpy()
                ref = float(whole["t2i_r1"].iloc[0])
                fig = figures.grouped_bars(cats, series, title=f"R@1 by {slices.TITLES[family]}", axis="R@1 (%)",
                                           reference=(f"whole split, {ctx.models[0].label}, caption → image", ref))
            st.plotly_chart(fig, key=f"slice_chart_{family}", config={"displaylogo": False})
            if family == "word":
                st.caption(f"The {SLICE_WORDS} most frequent words in at most half of the captions; the slice "
                           "picker above offers every word.")
            shown = pd.concat([whole, part], ignore_index=True)
            config = _slice_config(shown, results.draws(ctx, ctx.intervention))
            st.dataframe(shown, hide_index=True, column_config=config, column_order=list(config),
                         key=f"slice_table_{family}", placeholder="—")
            csv_button(shown.drop(columns=["family"]), f"slices_{family}.csv", key=f"slice_csv_{family}",
                       label="Export CSV (with R@10 and median ranks)")


def _draws_text(ctx: state.Context) -> str:
    """"8 draws per pair, seed 0" (the seed only matters with several draws)."""
    n = results.draws(ctx, ctx.intervention)
    return f"{n} draw{'s' if n != 1 else ''} per pair" + (f", seed {ctx.seed}" if n > 1 else "")


def render(ctx: state.Context) -> None:
    if state.take_open() == "failing_pair":  # a row was selected: its Failing pair, before drawing this page again
        st.switch_page(FAILING_PAIR, query_params=state.link())
    st.title("Failure cases")
    st.caption(f"{' vs '.join(plain(m.label) for m in ctx.models)} · counterfactual: "
               f"{plain(ctx.intervention or 'none')} ({_draws_text(ctx)}: the sidebar's, as on every page) · "
               "ranks are 1-based; margin = S(true pair) − S(best wrong pair)")
    fit = ("fit",) if results.fits(ctx)[0] is not None else ()
    help.how_to_read("ranks", "margin", "effect", "pointing", *fit)
    filters = _filters(ctx)
    direction = filters["direction"]
    jobs = results.pending(ctx, results.failure_matrices(ctx))
    if jobs:  # the table and the slices fill in when their matrices land; the filters stay usable
        background.status(jobs, key="failures", what="The failure table and the slices appear here when the "
                          "whole-split scores they rank are computed (in the background; other pages stay usable).")
        return
    full = results.failures(ctx, direction)
    require_finite(full[[c for c in ("margin", "effect_true") if c in full.columns]].to_numpy(),
                   f"the failure table ({direction})")
    found = results.slices(ctx)
    cut_col, sort_col, order = st.columns([2, 2, 1.4])
    pick_slice(found, cut_col)
    by = sort_col.selectbox("Sort by", failures.SORTABLE, key=state.key("sort"), on_change=state.changed,
                            format_func=lambda c: failures.COLUMNS[c].named(
                                direction, results.draws(ctx, ctx.intervention) if ctx.intervention else None)[0])
    natural = "↑" if failures.COLUMNS[by].ascending else "↓"
    order.segmented_control("Order", failures.ORDERS, required=True, key=state.key("order"), on_change=state.changed,
                            format_func={"": f"worst first {natural}", "asc": "↑", "desc": "↓"}.get,
                            help="worst first: the column's own order (lowest margin or effect, highest rank)")
    _table(ctx, found, direction, full)
    section(_slices_section, ctx, found, key="failures_slices")


if __name__ == "__main__":
    render(state.context())
