"""Overview: R@K of the loaded checkpoints (factual and counterfactual), effects, grounding."""
from __future__ import annotations

import pandas as pd
import streamlit as st

import loaders
import results
import state
from causmatch.analysis import links
from causmatch.interventions import COUNTERFACTUAL_KINDS
from components import figures, help
from components.errors import plain
from components.images import load_rgb
from components.tables import table

METRICS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum", "i2t_medr", "t2i_medr")


def dataset_summary(ctx: state.Context) -> None:
    split = ctx.split
    cols = st.columns(4)
    cols[0].metric("Images", f"{split.n_images:,}")
    cols[1].metric("Captions", f"{split.n_captions:,}")
    cols[2].metric("Regions per image", f"{split.features.shape[1]}")
    cols[3].metric("Checkpoints", f"{len(ctx.models)}")
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


def recall_frame(ctx: state.Context, mode: str) -> pd.DataFrame:
    """One row per (checkpoint, attention): factual, plus the sidebar's intervention or every kind."""
    extra = {"off": [], "sidebar": [ctx.intervention] if ctx.intervention else [],
             "all": list(COUNTERFACTUAL_KINDS)}[mode]
    specs = [None] + extra
    rows = []
    for model in ctx.models:
        for spec in dict.fromkeys(specs):
            metrics = results.recall(ctx, model, spec)
            rows.append({"checkpoint": model.label, "attention": spec or "factual",
                         **{m: round(float(metrics[m]), 2) for m in METRICS}})
    return pd.DataFrame(rows)


def _effects(ctx: state.Context) -> None:
    st.subheader("Effect of the learned attention")
    if ctx.intervention is None:
        st.info("Pick targets for the targeted intervention in the sidebar to see effects.")
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


def render(ctx: state.Context) -> None:
    st.title("Overview")
    dataset_summary(ctx)
    preview(ctx)
    st.subheader("Retrieval (R@K, %)")
    mode = st.segmented_control(
        "Counterfactual results", links.CF_MODES, format_func=CF_NAMES.get, required=True,
        key=state.key("cf"), on_change=state.changed,
        help="each counterfactual kind needs one whole-split similarity matrix per checkpoint: "
             "minutes the first time on a small CPU, then read from the disk cache")
    st.caption(f"Whole-split counterfactual matrices use {results.SPLIT_SAMPLES} draw per pair (as in training); "
               "*Explore a pair* and *Retrieval* average the sidebar's samples.")
    table(recall_frame(ctx, mode), "recall.csv", key="ov_recall")
    help.how_to_read("recall", "effect", "pointing")
    _grounding(ctx)
    if mode != "off":
        _effects(ctx)
    else:
        st.caption("Effect distributions: choose a counterfactual above.")


if __name__ == "__main__":
    render(state.context())
