"""Compare checkpoints: the same pair and the same query under two checkpoints, side by side.

What is compared is drawn on one scale for every checkpoint: the overlays and the word × region matrices
share one colour scale (0 to the largest attention share of any word under any checkpoint), the per-word
effect charts one axis range; scores and effects have 4 decimals everywhere, and the page says the scales.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import results
import state
from causmatch.analysis import pair_view
from components import figures, help, pair
from components.errors import plain, require_finite
from components.pickers import pick_index, pick_pair

DIGITS = 4  # decimals of every score and effect on this page


def shared_scales(explanations: list) -> dict:
    """One scale for all checkpoints: ``share`` = (0, top) of the attention shares (factual and
    counterfactual, every word, valid regions) and ``effects`` = the per-word effect axis range."""
    tops = [pair.scales(ex)["share"][1] for ex in explanations if pair.word_region_map(ex)[0] is not None]
    effects = [ex.word_effects for ex in explanations if ex.word_effects is not None]
    return {"share": (0.0, max(tops or [1.0])),
            "effects": figures.shared_range(*effects) if effects else None}


def telling_word(ctx: state.Context, explanations: list) -> tuple[int, str]:
    """The word shown first, and what it was chosen by: with two checkpoints the word whose relevance
    differs most between them (``pair_view.choose_word``, A's pair against B's: same image, same caption),
    with one the word with the largest per-word effect; never a common word ("a") while another is left."""
    first = explanations[0]
    common = results.common_words(ctx, ctx.models[0])
    if len(explanations) > 1:
        choice = pair_view.choose_word(first, explanations[1], common)
        measure = "attention" if choice.measure == "attention" else "relevance"  # SGRAF reports no relevance
        return choice.index, choice.note or f"where the two checkpoints' {measure} differs most"
    usable = pair_view.usable_words(first.tokens, first.unknown_words)
    rare = usable & np.array([str(t) not in common for t in first.tokens], dtype=bool)
    values = np.abs(np.asarray(first.word_effects, dtype=np.float64)) if first.word_effects is not None \
        else np.full(len(first.tokens), np.nan)
    return pair_view.most_informative_word(values, rare if rare.any() else usable), "largest per-word effect"


def pick_word(ctx: state.Context, explanations: list) -> int:
    """The word of the overlays: the view's, or (-1, the default) the most telling one (:func:`telling_word`)."""
    tokens = explanations[0].tokens
    auto, why = telling_word(ctx, explanations)
    labels = {-1: f"{auto} · {tokens[auto]} — {why}", **{j: f"{j} · {t}" for j, t in enumerate(tokens)}}
    word = pick_index("Word for the overlays", "cword", [-1, *range(len(tokens))], labels)
    return auto if word < 0 else word


def _scores_column(model: state.Model, ex, missing: str | None) -> None:
    st.subheader(plain(model.label))
    pair.scores_row(ex, missing=missing)
    note = pair.head_note(ex)  # an SGRAF score is a sigmoid of similarity vectors: its scale is not SCAN's
    if note:
        st.caption(note)
    pair.filtration_section(ex, key=f"cmp_{plain(model.label)[:1]}")


def _overlays(models: list, explanations: list, word: int, scale: dict, missing: str | None) -> None:
    """The word's factual overlays of every checkpoint side by side, then the counterfactual ones: one row
    per kind of attention, one colour scale for all of them (the page's width goes to the images)."""
    drawable = [(m, ex) for m, ex in zip(models, explanations)
                if pair.overlays_available(ex) is None and pair.word_region_map(ex)[0] is not None]
    if not drawable:
        return
    vmin, vmax = scale["share"]
    rows = {"factual": "factual α", "counterfactual": "counterfactual ᾱ"}
    if missing:  # without a counterfactual there is no ᾱ to draw (never the factual twice)
        rows.pop("counterfactual")
    done = [(m, ex, pair.word_overlays(ex, min(word, len(ex.tokens) - 1), scale=scale["share"]))
            for m, ex in drawable]
    for kind, name in rows.items():
        titles = [f"{plain(m.label)} · {name}: “{ex.tokens[min(word, len(ex.tokens) - 1)]}”" for m, ex, _ in done]
        fig = figures.overlay_panels([ov[kind] for _, _, ov in done], titles, vmin=vmin, vmax=vmax,
                                     bar_title="share of the word's attention", height=380)
        figures.show(fig, key=f"cmp_ov_{kind}")


def _maps_column(slot: int, ex, word: int, scale: dict, missing: str | None = None) -> None:
    word = min(word, len(ex.tokens) - 1)  # another vocabulary may tokenise the caption differently
    fact, what = pair.word_region_map(ex)
    vmin, vmax = scale["share"]
    if fact is not None:
        regions = pair.valid_regions(ex)
        fig = pair.matrix_figure(ex, fact[:, regions], regions, title=what, zmin=vmin, zmax=vmax)
        figures.show(fig, key=f"cmp_m_{slot}")
    if ex.word_effects is not None and not missing:
        fig = figures.effect_bars(ex.tokens, ex.word_effects, title="Per-word effect", axis="word",
                                  highlight=word, xrange=scale["effects"], digits=DIGITS)
        figures.show(fig, key=f"cmp_we_{slot}")


def scales_note(scale: dict, n_models: int) -> str:
    """What the shared scales are, said under the columns."""
    who = "both checkpoints" if n_models == 2 else ("every checkpoint" if n_models > 2 else "the checkpoint")
    text = (f"Shared scales: the overlays and word × region matrices of {who} use one colour scale, 0 to "
            f"{scale['share'][1]:.{DIGITS}f} (the largest share of any word's attention, factual or counterfactual)")
    if scale["effects"] is not None:
        lo, hi = scale["effects"]
        text += f"; the per-word effect charts one axis, {lo:+.{DIGITS}f} to {hi:+.{DIGITS}f}"
    return text + ". Equal colours and equal bar lengths mean equal values across the columns."


def _ranks(ctx: state.Context, caption: int, image: int) -> pd.DataFrame:
    """The pair's caption as a query and its image as a query, under every checkpoint (1-based ranks)."""
    cf = help.cf_rank_label(results.draws(ctx, ctx.intervention), ctx.intervention, ctx.seed)
    rows = []
    for model in ctx.models:
        for direction, query in (("t2i", caption), ("i2t", image)):
            res = results.rank(ctx, model, direction, query, 5)
            require_finite(res.scores, f"{model.label}: the scores of {'caption' if direction == 't2i' else 'image'} "
                                       f"query {query}")
            rows.append({"checkpoint": model.label, "query": f"{'caption' if direction == 't2i' else 'image'} {query}",
                         "rank under α": res.rank + 1, cf: res.cf_rank + 1,
                         "S(α) of the true item": round(float(res.scores[res.true_item]), DIGITS)})
    return pd.DataFrame(rows)


def render(ctx: state.Context) -> None:
    st.title("Compare checkpoints")
    if len(ctx.models) < 2:
        st.info("Load a second checkpoint in the sidebar to compare two models on the same pair.")
    image, caption, text = pick_pair(ctx.split)
    explanations = [results.explain(ctx, model, image, caption, text) for model in ctx.models]
    word = pick_word(ctx, explanations)
    scale = shared_scales(explanations)
    missing = state.missing_counterfactual(ctx)
    for col, model, ex in zip(st.columns(len(ctx.models)), ctx.models, explanations):
        with col:
            _scores_column(model, ex, missing)
    _overlays(ctx.models, explanations, word, scale, missing)
    for slot, (col, ex) in enumerate(zip(st.columns(len(ctx.models)), explanations)):
        with col:
            _maps_column(slot, ex, word, scale, missing)
    st.caption(scales_note(scale, len(ctx.models)))
    heads = {getattr(ex, "similarity", "scan") for ex in explanations}
    help.how_to_read("scores", "effect", "interval", "attention", "word_effects", "ranks",
                     *(("sgraf",) if heads - {"scan"} else ()))
    if not text:
        st.subheader("Ranks of this pair's queries")
        ranks = _ranks(ctx, caption, image)  # each query scored alone until the whole-split matrices are built
        st.dataframe(ranks, hide_index=True, column_config={
            "S(α) of the true item": st.column_config.NumberColumn(format=f"%.{DIGITS}f")})


if __name__ == "__main__":
    render(state.context())
