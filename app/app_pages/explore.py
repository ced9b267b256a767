"""Explore a pair: image and boxes, word × region attention, factual vs counterfactual, effects."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import results
import state
from components import figures, pair
from components.errors import plain
from components.images import image_panel
from components.pickers import pick_index, pick_pair


def _attention_section(ex, split_name: str) -> None:
    fact, what = pair.word_region_map(ex)
    note = pair.overlays_available(ex)
    left, right = st.columns([2, 3])
    with left:
        if note is None:
            image_panel(pair.boxes_image(ex), f"image {ex.image} with its regions",
                        download=f"image{ex.image}_boxes.png", key="dl_boxes")
            clipped = pair.clipped_boxes_note(ex)
            if clipped:
                st.warning(clipped, icon=":material/crop:")
        else:
            st.info(f"No overlays: {note.format(split=split_name)}. Matrices, scores and ranks still work.")
    with right:
        if fact is not None:
            regions = pair.valid_regions(ex)
            fig = figures.attention_matrix(fact[:, regions], ex.tokens, [f"r{r}" for r in regions],
                                           title=f"Attention: {what}")
            st.plotly_chart(fig, key="ex_matrix", theme=None, config={"displaylogo": False})


def _word_section(ex) -> int:
    st.subheader("One word over the image")
    labels = {j: f"{j} · {t}" for j, t in enumerate(ex.tokens)}
    word = pick_index("Word", "word", list(range(len(ex.tokens))), labels)
    if pair.overlays_available(ex) is None and pair.word_region_map(ex)[0] is not None:
        pair.overlay_row(ex, word, key=f"i{ex.image}_w{word}")
    return word


def _region_section(ex) -> None:
    st.subheader("One region → the words")
    regions = pair.valid_regions(ex)
    cols = st.columns([1, 3])
    region = pick_index("Region", "region", regions, {r: f"r{r}" for r in regions}, container=cols[0])
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


def _kinds_table(ctx: state.Context, model: state.Model, image: int, caption: int, text: str) -> None:
    rows = results.effects_by_kind(ctx, model, image, caption, text)
    df = pd.DataFrame([{"counterfactual": r["kind"], "S(ᾱ)": r["cf_score"], "effect": r["effect"],
                        "95% low": r["effect_low"], "95% high": r["effect_high"], "draws": r["samples"]}
                       for r in rows])
    st.dataframe(df.round(4), hide_index=True, key="ex_kinds")


def render(ctx: state.Context) -> None:
    st.title("Explore a pair")
    model = ctx.models[0]
    image, caption, text = pick_pair(ctx.split)
    ex = results.explain(ctx, model, image, caption, text)
    if ex.unknown_words:
        st.warning("Unknown words (encoded as <unk>, they carry no meaning for this model): "
                   + ", ".join(plain(w) for w in ex.unknown_words))
    st.caption(f"{plain(model.label)} · “{plain(ex.text)}” · intervention: {ex.intervention}")
    pair.scores_row(ex, missing=state.missing_counterfactual(ctx))
    with st.expander("Effect under every counterfactual kind"):
        _kinds_table(ctx, model, image, caption, text)
    _attention_section(ex, ctx.split.split)
    word = _word_section(ex)
    st.subheader("Factual | counterfactual | difference")
    pair.matrices_side_by_side(ex, key="ex_side")
    _region_section(ex)
    st.subheader("Which words and regions carry the match")
    pair.effect_charts(ex, word, key="ex")


if __name__ == "__main__":
    render(state.context())
