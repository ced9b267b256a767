"""Explore a pair: its scores, then one view at a time (a tab each): Words (the image, per-word effects, one
word over the image), Matrices (factual | counterfactual | difference), Regions (one region → the words,
per-region effects), Curves (deletion and insertion)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import results
import state
from causmatch.analysis import grounding, links
from causmatch.analysis import heatmaps as hm
from components import figures, help, pair
from components.errors import plain
from components.images import image_panel
from components.pickers import pick_index, pick_pair
from components.sections import section, sidebar_follows_pair


def _matrices_view(ex) -> None:
    st.subheader("Factual | counterfactual | difference")
    pair.matrices_side_by_side(ex, key="ex_side")
    help.how_to_read("attention")


def _name_parts(ctx: state.Context, model: state.Model, ex) -> tuple:
    """What names this pair's downloaded figures: checkpoint, image, caption (or typed text), intervention, seed."""
    what = f"cap{ex.caption}" if ex.caption is not None else hm.text_tag(ex.text)
    return (model.label, f"img{ex.image}", what, ctx.intervention or "none", f"seed{ctx.seed}")


def _boxes_image(ex, split_name: str) -> None:
    """The image with its region boxes (and the notes on clipped boxes and the whole-image region)."""
    note = pair.overlays_available(ex)
    if note is not None:
        st.info(f"No overlays: {note.format(split=split_name)}. Matrices, scores and ranks still work.")
        return
    image_panel(pair.boxes_image(ex), f"image {ex.image} with its regions",
                download=f"image{ex.image}_boxes.png", key="dl_boxes")
    clipped = pair.clipped_boxes_note(ex)
    if clipped:
        st.warning(clipped, icon=":material/crop:")
    whole = pair.whole_regions(ex)
    if whole:
        st.caption(f"{', '.join(f'r{r}' for r in whole)}: the whole image (a box covering it), "
                   "listed as “(whole)” in the matrices and kept out of the painted overlays by default.")


def _word_section(ctx: state.Context, model: state.Model, ex) -> None:
    """The image and every word's effect (the picked word's bar highlighted) above the picked word's factual and
    counterfactual attention over the image: one section, so that a word pick reruns it alone
    (:mod:`components.sections`)."""
    left, right = st.columns([2, 3])
    with left:
        _boxes_image(ex, ctx.split.split)
    with right:
        st.subheader("Which words carry the match")
        labels = {j: f"{j} · {t}" + (" (unknown)" if j in ex.unknown_rows else "") for j, t in enumerate(ex.tokens)}
        word = pick_index("Word", "word", list(range(len(ex.tokens))), labels)
        pair.word_effects_chart(ex, word, key="ex")
        help.how_to_read("word_effects")
    if pair.overlays_available(ex) is None and pair.word_region_map(ex)[0] is not None:
        st.subheader(f"“{plain(ex.tokens[word])}” over the image")
        whole = pair.whole_regions(ex)
        if whole:
            st.toggle("Paint the whole-image region", key=state.key("whole"), on_change=state.changed,
                      help=f"{', '.join(f'r{r}' for r in whole)} covers the whole image: painted, it colours "
                           "every pixel its share (with max) and hides the objects' contrast; its share is "
                           "given below the overlays either way.")
        pair.overlay_row(ex, word, key=f"i{ex.image}_w{word}", whole=bool(state.value("whole")) and bool(whole),
                         name_parts=_name_parts(ctx, model, ex))


def _region_section(ex) -> None:
    st.subheader("One region → the words")
    regions = pair.valid_regions(ex)
    cols = st.columns([1, 3])
    whole = pair.whole_regions(ex)
    region = pick_index("Region", "region", regions, {r: pair.region_label(ex, r, whole) for r in regions},
                        container=cols[0])
    fact, _ = pair.word_region_map(ex)
    if ex.i2t is not None:
        weights, how = np.asarray(ex.i2t)[region], "region → word attention (i2t)"
    else:
        weights, how = fact[:, region], "each word's attention on this region (t2i)"
    with cols[1]:
        st.markdown(pair.highlighted_words(ex.tokens, weights), unsafe_allow_html=True)
        st.caption(f"Shading: {how}; hover a word for its value.")
    if pair.overlays_available(ex) is None:
        cols[0].image(pair.boxes_image(ex, highlight=[region]), caption=f"region r{region}", width="stretch")


def _regions_view(ex) -> None:
    section(_region_section, ex, key="explore_region")
    st.subheader("Which regions carry the match")
    cols = st.columns(2)
    pair.region_effects_chart(ex, key="ex", container=cols[0])
    help.how_to_read("region_effects", container=cols[1])


def _kinds_table(ctx: state.Context, model: state.Model, image: int, caption: int, text: str) -> None:
    rows = results.effects_by_kind(ctx, model, image, caption, text)
    df = pd.DataFrame([{"counterfactual": r["kind"], "S(ᾱ)": r["cf_score"], "effect": r["effect"],
                        "95% low": r["effect_low"], "95% high": r["effect_high"], "draws": r["samples"]}
                       for r in rows])
    st.dataframe(df.round(4), hide_index=True, key="ex_kinds")


def _order(regions: list[int]) -> str:
    shown = ", ".join(f"r{r}" for r in regions[:12])
    return shown + (" …" if len(regions) > 12 else "")


def _curves_section(ctx: state.Context, model: state.Model, ex) -> None:
    st.subheader("Deletion and insertion")
    if ex.caption is None:
        st.info("The curves are computed for the dataset's captions: pick one instead of a typed caption.")
        return
    mask = np.asarray(ex.region_mask, bool)
    if mask.sum() < 2:
        st.info(f"Image {ex.image} has one valid region: there is nothing to remove or add.")
        return
    baselines = {}
    if ex.cf_t2i_mean is not None and ctx.intervention is not None:
        baselines["counterfactual order"] = grounding.attention_order(ex.cf_t2i_mean, mask)
    baselines["random order"] = grounding.random_order(mask, ctx.seed)
    found = results.curves(ctx, model, ex.image, ex.caption, baselines)
    yrange = figures.shared_range(ex.score, *(c.scores for kind in found.values() for c in kind.values()))
    cols = st.columns(2)
    rows = []
    for col, kind in zip(cols, ("deletion", "insertion")):
        named = {"attention order" if name == "attention" else name: c for name, c in found[kind].items()}
        lines = {f"{name} · normalised area {c.mean_score:.4f}": (c.fraction, c.scores, "order: " + _order(c.removed))
                 for name, c in named.items()}
        axis = "regions removed" if kind == "deletion" else "regions kept (added)"
        fig = figures.score_curves(lines, title=kind.capitalize(), axis=axis, reference=ex.score, yrange=yrange)
        figures.show(fig, key=f"ex_curve_{kind}", container=col)
        rows += [{"curve": kind, "order": name, "normalised area": c.mean_score, "area": c.area,
                  "true image's rank at the end": int(c.ranks[-1]) + 1} for name, c in named.items()]
    st.dataframe(pd.DataFrame(rows).round(4), hide_index=True, key="ex_curves", column_config={
        "normalised area": st.column_config.NumberColumn(
            help="Area under the score curve ÷ the range of fractions: the curve's mean score"),
        "area": st.column_config.NumberColumn(help="Trapezoid area under the score over the fraction of regions"),
        "true image's rank at the end": st.column_config.NumberColumn(
            help="1-based rank of the true image for this caption with the last step's regions (the rest of the "
                 "gallery unchanged)")})
    cf_note = (" The counterfactual order ranks the regions by the mean counterfactual attention "
               f"({ex.intervention}); ties keep the index order." if "counterfactual order" in baselines else "")
    st.caption("Regions are removed (deletion) or added (insertion) one at a time in the order of the factual "
               "attention mass summed over the words; the baselines use the same pair in another order, on the "
               f"same axes.{cf_note} Random order: seed {ctx.seed}. Normalised area = the area under the score "
               "curve divided by the range of fractions (the curve's mean score): a faithful attention has a "
               "lower deletion area and a higher insertion area than its baselines.")
    help.how_to_read("curves")


def _pair_section(ctx: state.Context) -> None:
    """Everything drawn for the picked pair; its word and region sections rerun alone inside it."""
    model = ctx.models[0]
    image, caption, text = pick_pair(ctx.split)
    ex = results.explain(ctx, model, image, caption, text)
    if ex.unknown_words:
        st.warning("Unknown words (encoded as <unk>, they carry no meaning for this model; their rows are greyed "
                   "in the matrices): " + ", ".join(plain(w) for w in ex.unknown_words))
    st.caption(f"{plain(model.label)} · “{plain(ex.text)}” · intervention: {ex.intervention}")
    pair.scores_row(ex, missing=state.missing_counterfactual(ctx))
    note = pair.head_note(ex)
    if note:
        st.caption(note)
    help.how_to_read("scores", "effect", "interval", *(("sgraf",) if note else ()))
    if ex.filtration is not None:
        st.subheader("What the score listens to (SAF's filtration)")
        pair.filtration_section(ex, key="ex")
    kinds = st.expander("Effect under every counterfactual kind", key="ex_kinds_open", on_change="rerun")
    if kinds.open:  # computed and drawn only while open (four counterfactuals of the pair)
        with kinds:
            _kinds_table(ctx, model, image, caption, text)
    # One view at a time (the link's ``tab``): only the open tab is drawn, so a pick redraws what is on screen.
    words, matrices, regions, curves = st.tabs(links.EXPLORE_TABS, key=state.key("tab"), on_change=state.changed)
    if words.open:
        with words:
            section(_word_section, ctx, model, ex, key="explore_word")
    if matrices.open:
        with matrices:
            _matrices_view(ex)
    if regions.open:
        with regions:
            _regions_view(ex)
    if curves.open:
        with curves:
            _curves_section(ctx, model, ex)


def render(ctx: state.Context) -> None:
    st.title("Explore a pair")
    section(_pair_section, ctx, key="explore_pair", alone=not sidebar_follows_pair())


if __name__ == "__main__":
    render(state.context())
