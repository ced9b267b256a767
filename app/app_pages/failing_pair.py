"""Failing pair: one query beside its true item and its best wrong item, the same word over both."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import results
import state
from causmatch.analysis import heatmaps as hm
from causmatch.analysis import pair_view
from components import help, pair
from components.errors import plain
from components.images import image_panel

FAILURES_PAGE = "app_pages/failures.py"
THIS_PAGE = "app_pages/failing_pair.py"


def _failure(split) -> tuple[str, int]:
    """The view's failure (direction, query), fitted to the split: a link's query past the end is replaced
    with a warning; the pair follows the query (the caption's image, or one of the image's captions)."""
    direction = state.value("dir")
    if direction == "t2i":
        state.fit("caption", range(split.n_captions), 0)
        c = state.value("caption")
        state.fit("image", (split.image_of(c),), split.image_of(c), warn=False)
        return direction, c
    state.fit("image", range(split.n_images), 0)
    i = state.value("image")
    own = [int(c) for c in split.captions_of(i)]
    state.fit("caption", own, own[0], warn=False)
    return direction, i


def _row_pair(split, direction: str, row) -> tuple[int, int, int]:
    """(query, image, caption) of a failure list row: the query with its true item."""
    query, true = int(row["query"]), int(row["true_item"])
    return (query, split.image_of(query), query) if direction == "t2i" else (query, query, true)


def _walk(ctx: state.Context, direction: str, query: int) -> None:
    """Previous / next failure of the Failure cases list (its filters, slice and sort) and back to it."""
    rows = results.failure_list(ctx)
    rows = rows[rows["direction"] == direction] if "direction" in rows.columns else rows
    keys = [int(q) for q in rows["query"]]
    by_query = {int(r["query"]): r for _, r in rows.iterrows()}
    prev, nxt, pos = pair_view.neighbours(keys, query)
    cols = st.columns([1, 1, 1.4, 3])
    for col, target, label, icon, key in ((cols[0], prev, "Previous", ":material/arrow_back:", "fp_prev"),
                                          (cols[1], nxt, "Next" if pos is not None else "First in the list",
                                           ":material/arrow_forward:", "fp_next")):
        args = None if target is None else (direction, *_row_pair(ctx.split, direction, by_query[target]))
        col.button(label, icon=icon, key=key, disabled=args is None, width="stretch",
                   on_click=None if args is None else state.open_failure, args=(*args, None) if args else None)
    if cols[2].button("Back to the table", icon=":material/table_rows:", key="fp_back", width="stretch"):
        st.switch_page(FAILURES_PAGE, query_params=state.link())
    where = (f"failure {pos + 1} of {len(keys):,} in the Failure cases list (its filters, slice and sort)"
             if pos is not None else
             f"this query is not in the Failure cases list ({len(keys):,} rows with its filters, slice and sort)")
    cols[3].caption(where)


def _word_label(tokens: list[str], choice: pair_view.WordChoice):
    def label(j: int) -> str:
        if j < 0:
            return f"most informative: {choice.index} · {tokens[choice.index]}"
        return f"{j} · {tokens[j]}"
    return label


def _pick_word(ex_true, choice: pair_view.WordChoice) -> int:
    """The word shown: the view's (``pword``) when it was picked for this failure, else the most informative."""
    tokens = list(ex_true.tokens)
    options = [-1, *range(len(tokens))]
    picked = st.selectbox("Word (the same word in both pairs)", options, key=state.pair_word(len(tokens)),
                          on_change=state.changed, format_func=_word_label(tokens, choice),
                          help="By default the word whose match differs most between the true and the wrong "
                               "pair (the difference of its relevance); pick any other word of the caption.")
    return choice.index if int(picked) < 0 else int(picked)


def _why_word(ex_true, ex_wrong, choice: pair_view.WordChoice, word: int) -> None:
    """The measure behind the most informative word, per word of the caption."""
    what = {"relevance": "|relevance in the true pair − relevance in the wrong pair|",
            "attention": "total-variation distance of its attention over the image's regions",
            "none": "no per-word measure"}[choice.measure]
    with st.expander(f"Why “{ex_true.tokens[choice.index]}”: each word's {what}"):
        rows = []
        for j, tok in enumerate(ex_true.tokens):
            k = choice.wrong_index(j)
            row = {"word": f"{j} · {tok}", "in the wrong caption": "—" if k < 0 else f"{k} · {ex_wrong.tokens[k]}"}
            if choice.measure == "relevance":
                row["relevance, true"] = float(ex_true.word_relevance[j])
                row["relevance, wrong"] = None if k < 0 else float(ex_wrong.word_relevance[k])
            row["difference"] = None if np.isnan(choice.values[j]) else float(choice.values[j])
            row["chosen"] = "most informative" if j == choice.index else ("shown" if j == word else "")
            if not choice.usable[j]:
                row["chosen"] = "not chosen (unknown or special)"
            rows.append(row)
        st.dataframe(pd.DataFrame(rows).round(4), hide_index=True, key="fp_words")
        st.caption("A word's relevance is the cosine between the word and the image context it attends to — the "
                   "per-word term the score pools. The word with the largest difference is where the two pairs' "
                   "matches disagree most; ties go to the lower index; unknown words are never chosen.")


def _scale(exs_words) -> tuple[float, float]:
    """One absolute scale, 0 up to the largest share, over the factual and counterfactual rows shown."""
    top = 0.0
    for ex, word in exs_words:
        regions = pair.valid_regions(ex)
        for cf in (False, True):
            m, _ = pair.word_region_map(ex, counterfactual=cf)
            if m is not None and regions:
                top = max(top, float(np.max(m[word, regions])))
    return 0.0, (top if top > 0 else 1.0)


def _side(ctx: state.Context, fp: pair_view.FailingPair, ex, word: int, title: str, rank: int, cf_rank: int,
          scale, key: str, absent: str = "") -> None:
    """One pair of the failure: title, its caption with the word marked, scores, ranks and the overlays.

    ``word`` -1: the caption lacks the word ``absent`` shown in the other pair."""
    st.subheader(title)
    if fp.direction == "i2t":
        st.markdown(_marked(ex.tokens, word), unsafe_allow_html=True)
    pair.scores_row(ex, missing=state.missing_counterfactual(ctx))
    st.caption(f"Rank {rank + 1} of {fp.gallery:,} with α · {cf_rank + 1} with ᾱ (the sidebar's "
               f"{ctx.samples} draw(s))")
    if word < 0:
        st.info(f"“{plain(absent)}” does not occur in this caption: no overlay for it.")
        return
    note = pair.overlays_available(ex)
    if note is not None:
        st.info(f"No overlays: {note.format(split=ctx.split.split)}.")
        return
    if pair.word_region_map(ex)[0] is None:
        st.info("This model returns no attention maps for this direction.")
        return
    ov = pair.word_overlays(ex, word, scale=scale)
    tok = ex.tokens[word]
    cols = st.columns(2)
    with cols[0]:
        image_panel(ov["factual"], f"factual α: “{tok}”", download=f"{key}_w{word}_factual.png", key=f"{key}_dlf")
    with cols[1]:
        image_panel(ov["counterfactual"], f"counterfactual ᾱ: “{tok}”", download=f"{key}_w{word}_cf.png",
                    key=f"{key}_dlc")


def _marked(tokens: list[str], word: int) -> str:
    """The caption as HTML with the shown word marked."""
    import html
    return " ".join(f'<mark style="padding: 1px 4px; border-radius: 4px">{html.escape(t)}</mark>' if j == word
                    else html.escape(t) for j, t in enumerate(tokens))


def _status(fp: pair_view.FailingPair, item: str) -> None:
    """Whether the query fails, by how much, and when the comparison itself is in doubt."""
    if fp.failed:  # a badge, not an error panel: the page works, the model fails
        st.markdown(f":red-badge[:material/report: Fails] the true {item} ranks {fp.rank + 1}; the best wrong "
                    f"{item} ({fp.wrong_item}) outscores it by {-fp.margin:.4f}.")
    else:
        st.markdown(f":green-badge[:material/check_circle: Not a failure] the true {item} ranks first; the best "
                    f"wrong {item} ({fp.wrong_item}) is the runner-up, {fp.margin:.4f} below.")
    if fp.tie:
        st.warning(f"The true and the best wrong {item} score the same (to float32 precision): their order comes "
                   "from the tie rule (the lower index first), not from the model.", icon=":material/balance:")
    if fp.also_matches:
        st.warning(f"The query also fits the best wrong {item} by the dataset's rule: ranking it first may be "
                   "a correct retrieval, not a failure.", icon=":material/rule:")


def render(ctx: state.Context) -> None:
    st.title("Failing pair")
    model, split = ctx.models[0], ctx.split
    direction, query = _failure(split)
    item, what = ("image", "caption") if direction == "t2i" else ("caption", "image")
    _walk(ctx, direction, query)
    res = results.rank(ctx, model, direction, query, state.value("k"))
    fp = pair_view.failing_pair(res)
    ex_true = results.explain(ctx, model, *fp.true_pair)
    ex_wrong = results.explain(ctx, model, *fp.wrong_pair)
    if direction == "t2i":
        st.markdown(f"**Query:** caption {query} “{plain(split.captions[query])}” · true image {fp.true_item} · "
                    f"best wrong image {fp.wrong_item} · {plain(model.label)} · counterfactual "
                    f"{ctx.intervention or 'none'}")
    else:
        st.markdown(f"**Query:** image {query} · true caption {fp.true_item} · best wrong caption "
                    f"{fp.wrong_item} · {plain(model.label)} · counterfactual {ctx.intervention or 'none'}")
    _status(fp, item)
    cols = st.columns(4)
    cols[0].metric("Margin", f"{fp.margin:+.4f}", help="S(α) of the true item − S(α) of the best wrong item")
    cols[1].metric("Margin under ᾱ", f"{fp.cf_margin:+.4f}",
                   help=f"the same with the counterfactual scores ({ctx.samples} draw(s))")
    cols[2].metric(f"True {item}'s rank", fp.rank + 1, delta=fp.rank - fp.cf_rank, delta_color="normal",
                   help="under α; the arrow: how far it moves under ᾱ (positive: it rises)")
    cols[3].metric(f"Best wrong {item}'s rank", fp.wrong_rank + 1)
    choice = pair_view.choose_word(ex_true, ex_wrong)
    left, right = st.columns([2, 3])
    with left:
        word = _pick_word(ex_true, choice)
    wrong_word = choice.wrong_index(word)
    with right:
        if direction == "t2i":
            st.markdown("**Caption:** " + _marked(ex_true.tokens, word), unsafe_allow_html=True)
        if choice.note:
            st.caption(f"Word: {choice.note}.")
    shown = [(ex_true, word)] + ([(ex_wrong, wrong_word)] if wrong_word >= 0 else [])
    scale = _scale(shown)
    sides = st.columns(2, border=True)
    with sides[0]:
        _side(ctx, fp, ex_true, word, f"True {item} {fp.true_item}", fp.rank, fp.cf_rank, scale, "fp_true")
    with sides[1]:
        _side(ctx, fp, ex_wrong, wrong_word, f"Best wrong {item} {fp.wrong_item}", fp.wrong_rank,
              fp.wrong_cf_rank, scale, "fp_wrong", absent=ex_true.tokens[word])
    bar, text = st.columns([1, 5])
    bar.image(hm.colorbar(*scale, height=256, width=96), caption="one scale", width="stretch")
    text.caption(f"All four overlays share one colour scale, [{scale[0]:.3f}, {scale[1]:.3f}]: the word's "
                 "attention over each valid region as a share of its row (0 up to the largest share shown), "
                 "accumulated over the regions' boxes with max.")
    _why_word(ex_true, ex_wrong, choice, word)
    help.how_to_read("margin", "scores", "effect", "interval", "ranks")


if __name__ == "__main__":
    render(state.context())
