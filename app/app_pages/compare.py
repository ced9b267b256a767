"""Compare checkpoints: the same pair and the same query under two checkpoints, side by side."""
from __future__ import annotations

import pandas as pd
import streamlit as st

import results
import state
from components import figures, pair
from components.errors import plain, require_finite
from components.pickers import pick_index, pick_pair


def _pair_column(model: state.Model, ex, word: int, zmax: float, missing: str | None = None) -> None:
    word = min(word, len(ex.tokens) - 1)  # another vocabulary may tokenise the caption differently
    st.subheader(plain(model.label))
    pair.scores_row(ex, compact=True, missing=missing)
    fact, what = pair.word_region_map(ex)
    if pair.overlays_available(ex) is None and fact is not None:
        ov = pair.word_overlays(ex, word)
        cols = st.columns([4, 4, 1.6])
        cols[0].image(ov["factual"], caption=f"factual: “{ex.tokens[word]}”", width="stretch")
        cols[1].image(ov["counterfactual"], caption="counterfactual", width="stretch")
        cols[2].image(ov["bar"], caption="scale", width="stretch")
    if fact is not None:
        regions = pair.valid_regions(ex)
        fig = figures.attention_matrix(fact[:, regions], ex.tokens, [f"r{r}" for r in regions],
                                       title=f"{what}", zmin=0.0, zmax=zmax)
        st.plotly_chart(fig, key=f"cmp_m_{model.label}", theme=None, config={"displaylogo": False})
    if ex.word_effects is not None:
        st.plotly_chart(figures.effect_bars(ex.tokens, ex.word_effects, title="Per-word effect", axis="word",
                                            highlight=word), key=f"cmp_we_{model.label}",
                        config={"displaylogo": False})


def _ranks(ctx: state.Context, caption: int, image: int) -> pd.DataFrame:
    """The pair's caption as a query and its image as a query, under every checkpoint (1-based ranks)."""
    rows = []
    for model in ctx.models:
        for direction, query in (("t2i", caption), ("i2t", image)):
            res = results.rank(ctx, model, direction, query, 5)
            require_finite(res.scores, f"{model.label}: the scores of {'caption' if direction == 't2i' else 'image'} "
                                       f"query {query}")
            rows.append({"checkpoint": model.label, "query": f"{'caption' if direction == 't2i' else 'image'} {query}",
                         "rank": res.rank + 1, "rank_cf": res.cf_rank + 1,
                         "score_true": round(float(res.scores[res.true_item]), 4)})
    return pd.DataFrame(rows)


def render(ctx: state.Context) -> None:
    st.title("Compare checkpoints")
    if len(ctx.models) < 2:
        st.info("Load a second checkpoint in the sidebar to compare two models on the same pair.")
    image, caption, text = pick_pair(ctx.split)
    tokens = ctx.models[0].matcher.tokens(text or ctx.split.captions[caption])
    word = pick_index("Word for the overlays", "word", list(range(len(tokens))),
                      {j: f"{j} · {t}" for j, t in enumerate(tokens)})
    explanations = [results.explain(ctx, model, image, caption, text) for model in ctx.models]
    # One colour scale for both matrices (row shares), so the two models' attention compares at a glance.
    maps = [pair.word_region_map(ex)[0] for ex in explanations]
    zmax = max([float(m.max()) for m in maps if m is not None and m.size] or [1.0])
    cols = st.columns(len(ctx.models))
    for col, model, ex in zip(cols, ctx.models, explanations):
        with col:
            _pair_column(model, ex, word, zmax, state.missing_counterfactual(ctx))
    if not text:
        st.subheader("Ranks of this pair's queries")
        st.dataframe(_ranks(ctx, caption, image), hide_index=True)


if __name__ == "__main__":
    render(state.context())
