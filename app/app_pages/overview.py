"""Overview: R@K of the loaded checkpoints (factual and counterfactual), effects, grounding."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

import loaders
import results
import state
from causmatch.analysis import links, slices
from causmatch.interventions import COUNTERFACTUAL_KINDS
from components import background, figures, help
from components.errors import plain
from components.images import load_rgb
from components.pickers import pick_slice
from components.tables import column_config, table

METRICS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum", "i2t_medr", "t2i_medr")
_WAYS = {"i2t": ("i→c", "image → captions: an image queries the captions"),
         "t2i": ("c→i", "caption → images: a caption queries the images")}


def recall_columns() -> dict:
    """The R@K tables' readable column names, with help (the CSV keeps the short names)."""
    named = {"checkpoint": ("Checkpoint", "A: the first checkpoint, B: the second", "name"),
             "attention": ("Attention", "factual: the learned attention α; otherwise the counterfactual kind ᾱ",
                           "name"),
             "draws": ("Draws", "draws of ᾱ the row's numbers average (the sidebar's samples, seeds seed … "
                       "seed+K−1; 1 for the factual attention or a deterministic kind)", "id")}
    for way, (short, what) in _WAYS.items():
        for k in (1, 5, 10):
            named[f"{way}_r{k}"] = (f"R@{k} {short}", f"{what}; % of queries with a matching item in the top {k}",
                                    "pct")
    named["rsum"] = ("rSum", "the sum of the six R@K (at most 600)", "pct")
    for way, (short, what) in _WAYS.items():
        named[f"{way}_medr"] = (f"medr {short}", f"{what}; median rank of the first matching item (1 = first)",
                                "pct")
    columns = column_config(named)
    # "factual" and the kinds' names are short: a narrower column lets the table fit 1280 px beside the sidebar
    for name, width in (("checkpoint", 136), ("attention", 80)):
        columns[name] = st.column_config.TextColumn(named[name][0], help=named[name][1], width=width)
    return columns


def spread(values: np.ndarray) -> tuple[str, str]:
    """(``min–max``, ``min a · median b · max c``) of integer counts; one number when they are all equal."""
    lo, mid, hi = int(values.min()), float(np.median(values)), int(values.max())
    if lo == hi:
        return f"{lo}", f"all {lo}"
    return f"{lo}–{hi}", f"min {lo} · median {mid:g} · max {hi}"


def _counts_chart(values: np.ndarray, axis: str, unit: str, container) -> None:
    """How many items have each count (every count from the smallest to the largest, zeros included)."""
    lo, hi = int(values.min()), int(values.max())
    frame = pd.DataFrame({axis: np.arange(lo, hi + 1), unit: np.bincount(values - lo, minlength=hi - lo + 1)})
    chart = alt.Chart(frame, height=170).mark_bar().encode(
        x=alt.X(f"{axis}:O", axis=alt.Axis(labelAngle=0, labelOverlap="parity")),
        y=alt.Y(f"{unit}:Q"), tooltip=[alt.Tooltip(f"{axis}:O"), alt.Tooltip(f"{unit}:Q", format=",")])
    container.altair_chart(chart, width="stretch")  # the app's theme, light or dark


def dataset_summary(ctx: state.Context) -> None:
    """The split at a glance: sizes, and the real distributions of valid regions per image and words per
    caption (not the padded region axis)."""
    split = ctx.split
    found = results.slices(ctx, outcomes=False)  # valid regions per image and tokens per caption, once per split
    regions, words = found.regions, found.length
    (region_range, region_text), (word_range, word_text) = spread(regions), spread(words)
    padded = split.features.shape[1]
    cols = st.columns(5)
    cols[0].metric("Images", f"{split.n_images:,}")
    cols[1].metric("Captions", f"{split.n_captions:,}", help=f"{split.caps_per_image} captions per image")
    cols[2].metric("Regions per image", region_range,
                   help=f"valid regions of an image ({region_text}): the region mask's count, padding not counted "
                        f"(the features are padded to {padded} regions)")
    cols[3].metric("Words per caption", word_range, help=f"tokens of a caption ({word_text})")
    cols[4].metric("Checkpoints", f"{len(ctx.models)}")
    charts = st.columns(2)
    _counts_chart(regions, "valid regions", "images", charts[0])
    _counts_chart(words, "words", "captions", charts[1])
    charts[0].caption(f"Valid regions per image: {region_text} (features padded to {padded}).")
    charts[1].caption(f"Words per caption: {word_text}; {split.caps_per_image} captions per image.")
    st.caption(f"Dataset {plain(loaders.shown_place(ctx.data_dir))} · split {plain(split.split)} · "
               + " · ".join(f"{plain(m.label)} ({plain(loaders.shown_place(m.path))})" for m in ctx.models))


def preview(ctx: state.Context, n: int = 6) -> None:
    """The first scenes with one caption each: the data at a glance, shown before any model runs."""
    split = ctx.split
    if not split.image_paths:
        return
    cols = st.columns(n)
    for i, col in zip(range(min(n, split.n_images)), cols):
        rgb = load_rgb(split.image_paths[i])
        if rgb is not None:
            col.image(rgb, caption=f"{i}: {split.captions[split.captions_of(i)[0]]}", width="stretch")


CF_NAMES = {"off": "factual only", "sidebar": "+ the sidebar's intervention", "all": "+ every counterfactual kind"}


def attention_specs(ctx: state.Context, mode: str) -> list[str | None]:
    """The attentions compared: factual (None), plus the sidebar's intervention or every kind."""
    extra = {"off": [], "sidebar": [ctx.intervention] if ctx.intervention else [],
             "all": list(COUNTERFACTUAL_KINDS)}[mode]
    return list(dict.fromkeys([None] + extra))


def wanted(ctx: state.Context, mode: str) -> list[tuple[state.Model, str | None]]:
    """The whole-split matrices the R@K tables of ``mode`` rank: one per (checkpoint, attention)."""
    return [(model, spec) for model in ctx.models for spec in attention_specs(ctx, mode)]


def attention_cells(ctx: state.Context, spec: str | None) -> dict:
    """A row's attention ("factual" or the kind) and the draws of ᾱ its numbers average (1 when factual)."""
    return {"attention": spec or "factual", "draws": results.draws(ctx, spec)}


def recall_frame(ctx: state.Context, mode: str, fit_aware: bool = False, rows_of=None) -> pd.DataFrame:
    """One row per (checkpoint, attention): factual, plus the sidebar's intervention or every kind.
    ``fit_aware``: fit-aware R@K (a hit when any item the query fits ranks there) instead of R@K.
    ``rows_of``: only these (checkpoint, attention) pairs (default: every one of ``mode``)."""
    get = results.fit_recall if fit_aware else results.recall
    rows = []
    for model, spec in (wanted(ctx, mode) if rows_of is None else rows_of):
        metrics = get(ctx, model, spec)
        rows.append({"checkpoint": model.label, **attention_cells(ctx, spec),
                     **{m: round(float(metrics[m]), 2) for m in METRICS}})
    return pd.DataFrame(rows, columns=["checkpoint", "attention", "draws", *METRICS])


def slice_recall_frame(ctx: state.Context, mode: str, key: str, specs=None) -> pd.DataFrame:
    """R@K of one slice, one row per (checkpoint, attention); image → caption columns empty for a caption
    slice (it does not cut image queries), rsum only when both directions are cut. ``specs``: only these
    attentions (default: every one of ``mode``)."""
    rows = []
    for spec in (attention_specs(ctx, mode) if specs is None else specs):
        for r in results.slice_table(ctx, [key], spec, effects=False).to_dict("records"):
            six = [r[m] for m in METRICS if m.endswith(("_r1", "_r5", "_r10"))]
            r["rsum"] = sum(six) if all(v == v for v in six) else float("nan")
            rows.append({"checkpoint": r["checkpoint"], **attention_cells(ctx, spec),
                         **{m: round(float(r[m]), 2) for m in METRICS}})
    return pd.DataFrame(rows, columns=["checkpoint", "attention", "draws", *METRICS])


def _slice_recall(ctx: state.Context, mode: str, rows_of: list) -> None:
    """The R@K above cut to one slice of the split (the view's slice, shared with Failure cases)."""
    found = results.slices(ctx)
    key = pick_slice(found)
    if not key:
        st.caption("Cut by a slice (a word, caption length, valid regions, the generator's labels, the first "
                   "checkpoint's outcome) to see its R@K.")
        return
    sl = found.get(key)
    n = f"{int(sl.captions.sum()):,} captions" + (f" of {int(sl.images.sum()):,} images" if sl.images is not None
                                                 else " (a caption slice: no image → caption recall)")
    if sl.family in slices.QUERY_FAMILIES:
        n = (f"{int(sl.captions.sum()):,} caption and {int(sl.images.sum()):,} image queries, each by its own "
             f"outcome under {plain(ctx.models[0].label)}")
    st.caption(f"R@K of the slice *{plain(sl.title)}* — {n}; ranks among the whole split's items.")
    specs = [spec for spec in attention_specs(ctx, mode) if all((m, spec) in rows_of for m in ctx.models)]
    table(slice_recall_frame(ctx, mode, key, specs), "recall_slice.csv", key="ov_slice_recall",
          column_config=recall_columns())


def _fit_aware(ctx: state.Context, mode: str, rows_of: list) -> None:
    """Fit-aware R@K beside the R@K above (the same rows) and how many images each caption fits — scenes
    splits only (their scene descriptions say which captions are true of which images); elsewhere, why not."""
    matrix, why = results.fits(ctx)
    if matrix is None:
        st.caption(f"No fit-aware R@K: {plain(why)}")
        return
    st.markdown("**Fit-aware R@K (%)** — a query is a hit at K when any item it fits is in the top K "
                "(rows as above)")
    table(recall_frame(ctx, mode, fit_aware=True, rows_of=rows_of), "recall_fit_aware.csv", key="ov_fit_recall",
          column_config=recall_columns())
    spread = results.fit_spread(ctx)
    per_cap, per_img = spread["fits_per_caption"], spread["fitting_captions_per_image"]

    def line(d: dict) -> str:
        return f"min {d['min']:,} · median {d['median']:g} · max {d['max']:,}"
    st.caption(f"Images each caption fits: {line(per_cap)} ({100 * per_cap['only_own']:.1f} % of the captions fit "
               f"only their own image) · captions that fit each image: {line(per_img)} (its own "
               f"{ctx.split.caps_per_image} included).")


def _effects(ctx: state.Context) -> None:
    st.subheader("Effect of the learned attention")
    if ctx.intervention is None:
        st.info("Pick targets for the targeted intervention in the sidebar to see effects.")
        return
    jobs = results.pending(ctx, [need for m in ctx.models for need in results.failure_matrices(ctx, [m])])
    if jobs:
        background.status(jobs, key="ov_effects", what="The effect histograms appear here when the counterfactual "
                          "scores are computed.")
        return
    cols = st.columns(len(ctx.models))
    for col, model in zip(cols, ctx.models):
        df = results.failures(state.Context(**{**ctx.__dict__, "models": [model]}), "t2i")
        means = results.effect_means(ctx, model)
        fig = figures.effect_histogram({"matching pairs": df["effect_true"].to_numpy(),
                                        "hardest non-matching pair per caption": df["effect_wrong"].to_numpy()},
                                       title=f"{model.label} — {ctx.intervention}")
        col.plotly_chart(fig, key=f"ov_hist_{model.label}", config={"displaylogo": False})
        col.caption(f"Mean effect: matching {means['matching']:+.4f} · all non-matching "
                    f"{means['non_matching']:+.4f}")


def _grounding(ctx: state.Context) -> None:
    st.subheader("Grounding accuracy by word type")
    found = {m.label: results.grounding(ctx, m) for m in ctx.models}
    if all(r is None for r in found.values()):
        st.info(f"No grounding: this split has no `{ctx.split.split}_grounding.jsonl` (which regions each "
                "word names), so grounding accuracy cannot be measured.")
        return
    types = sorted({t for r in found.values() if r for t in r["by_type"]})
    series = {label: [r["by_type"].get(t, 0.0) for t in types] + [r["overall"]]
              for label, r in found.items() if r}
    chance = next(r["chance"] for r in found.values() if r)
    st.plotly_chart(figures.grouped_bars(types + ["overall"], series, title="most-attended region is a true region",
                                         axis="accuracy (%)", reference=("chance", chance)),
                    key="ov_ground", config={"displaylogo": False})
    st.caption(f"Chance (a valid region picked at random): {chance:.1f}%.")


def cost_line(ctx: state.Context) -> str:
    """What each choice of the control costs before it is chosen, and the draws its rows average."""
    n = results.draws(ctx, ctx.intervention) if ctx.intervention else 1
    parts = []
    for mode in ("sidebar", "all"):
        note = results.cost_note(ctx, [row for row in wanted(ctx, mode) if row[1] is not None])
        parts.append(f"*{CF_NAMES[mode]}*: {note or 'cached'}")
    return (f"Counterfactual rows average the sidebar's draws ({n} of a stochastic kind, seed {ctx.seed}), as every "
            "page does. " + " · ".join(parts) + ".")


def render(ctx: state.Context) -> None:
    st.title("Overview")
    dataset_summary(ctx)
    preview(ctx)
    st.subheader("Retrieval (R@K, %)")
    mode = st.segmented_control(
        "Counterfactual results", links.CF_MODES, format_func=CF_NAMES.get, required=True,
        key=state.key("cf"), on_change=state.changed,
        help="each counterfactual kind needs one whole-split similarity matrix per checkpoint, computed in the "
             "background the first time (the rows fill in when they land), then read from the disk cache")
    st.caption(cost_line(ctx))
    results.pending(ctx, wanted(ctx, mode))  # submitted, and the quick ones waited for
    found = [(row, results.matrix_job(ctx, *row)) for row in results.unique(wanted(ctx, mode))]  # None: built
    rows_of = [row for row, job in found if job is None]
    jobs = list({j.key: j for _, j in found if j is not None}.values())
    factual = all((m, None) in rows_of for m in ctx.models)
    if rows_of:
        table(recall_frame(ctx, mode, rows_of=rows_of), "recall.csv", key="ov_recall", column_config=recall_columns())
    if jobs:
        background.status(jobs, key="ov_recall", what="Rows still to come (computed in the background; the page "
                          "stays usable):")
    if factual:  # fit-aware R@K and slices rank the factual scores: they appear with them
        _fit_aware(ctx, mode, rows_of)
        _slice_recall(ctx, mode, rows_of)
    help.how_to_read("recall", "effect", "pointing", *(("fit",) if results.fits(ctx)[0] is not None else ()))
    _grounding(ctx)
    if mode != "off":
        _effects(ctx)
    else:
        st.caption("Effect distributions: choose a counterfactual above.")


if __name__ == "__main__":
    render(state.context())
