"""Failing pair: one query beside its true item and its best wrong item, the same word over both."""
from __future__ import annotations

import html
from dataclasses import replace

import numpy as np
import pandas as pd
import streamlit as st

import results
import state
from causmatch.analysis import heatmaps as hm
from causmatch.analysis import pair_view
from causmatch.errors import CausMatchError, ConfigError
from causmatch.interventions import target_rule
from components import background, figures, help, pair
from components.errors import plain, require_finite
from components.images import png_bytes
from components.sections import section

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
    """Previous / next failure of the Failure cases list (its filters, slice and sort) and back to it. The list
    needs whole-split scores: until the background worker has them, the walk waits with their status and the
    pair is shown meanwhile (a first visit does not wait for the whole split)."""
    jobs = results.pending(ctx, results.failure_matrices(ctx))
    rows, problem = None, "its whole-split scores are still being computed (status below)"
    if not jobs:
        try:
            rows = results.failure_list(ctx)
        except CausMatchError as exc:  # e.g. a filter the list refuses: the pair is still shown, the walk is not
            rows, problem = None, str(exc)
    if rows is not None:
        rows = rows[rows["direction"] == direction] if "direction" in rows.columns else rows
    keys = [] if rows is None else [int(q) for q in rows["query"]]
    prev, nxt, pos = pair_view.neighbours(keys, query)
    cols = st.columns([1, 1, 1.4, 3])
    for col, target, label, icon, key in ((cols[0], prev, "Previous", ":material/arrow_back:", "fp_prev"),
                                          (cols[1], nxt, "Next" if pos is not None else "First",
                                           ":material/arrow_forward:", "fp_next")):
        args = None if target is None else (direction, *_row_pair(ctx.split, direction,
                                                                  rows.iloc[keys.index(target)]))
        col.button(label, icon=icon, key=key, disabled=args is None, width="stretch",
                   on_click=None if args is None else state.open_failure, args=(*args, None) if args else None)
    if cols[2].button("Back to the table", icon=":material/table_rows:", key="fp_back", width="stretch"):
        st.switch_page(FAILURES_PAGE, query_params=state.link())
    where = (f"the Failure cases list is unavailable: {plain(problem)}" if rows is None else
             f"failure {pos + 1} of {len(keys):,} in the Failure cases list (its filters, slice and sort)"
             if pos is not None else
             f"this query is not in the Failure cases list ({len(keys):,} rows with its filters, slice and sort)")
    cols[3].caption(where)
    if jobs:
        background.status(jobs, key="fp_walk", what="Previous / Next walk the Failure cases list; it is computed "
                          "in the background (the pair below does not wait for it).")


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


def _why_word(ex_true, ex_wrong, choice: pair_view.WordChoice, word: int, common: frozenset) -> None:
    """The measure behind the most informative word, per word of the caption."""
    what = {"relevance": "relevance in the true pair − relevance in the wrong pair",
            "attention": "total-variation distance of its attention over the image's regions",
            "none": "no per-word measure"}[choice.measure]
    two = list(ex_true.tokens) != list(ex_wrong.tokens)  # an image query: two captions
    with st.expander(f"Why “{plain(ex_true.tokens[choice.index])}”: each word's {what}"):
        rows = []
        for j, tok in enumerate(ex_true.tokens):
            k = choice.wrong_index(j)
            row = {"word": f"{j} · {tok}"}
            if two:
                row["in the wrong caption"] = "—" if k < 0 else f"{k} · {ex_wrong.tokens[k]}"
            if choice.measure == "relevance":
                row["relevance, true"] = float(ex_true.word_relevance[j])
                row["relevance, wrong"] = None if k < 0 else float(ex_wrong.word_relevance[k])
            row["|difference|"] = None if np.isnan(choice.values[j]) else float(choice.values[j])
            if j == choice.index:
                row["chosen"] = "most informative"
            elif not choice.usable[j]:
                row["chosen"] = "never (unknown or special)"
            elif str(tok) in common:
                row["chosen"] = "only if no other (in most captions)"
            else:
                row["chosen"] = "shown" if j == word else ""
            rows.append(row)
        st.dataframe(pd.DataFrame(rows).round(4), hide_index=True, key="fp_words")
        st.caption("A word's relevance is the cosine between the word and the image context it attends to — the "
                   "per-word term the score pools. The most informative word has the largest |difference|: there "
                   "the two pairs' matches disagree most (ties: the lower index). Words the model does not know "
                   "are never chosen; words in more than half of the split's captions only when no other word "
                   "can be compared.")


def _fit(ctx: state.Context):
    """The dataset's rule of which captions fit which images, as ``fits(image, caption)``, or None (no rule);
    files that disagree are said in a caption, never an error: the failing pair stands without the rule."""
    try:
        fits = results.fit_rule(ctx)
    except CausMatchError as exc:
        st.caption(f"Whether the wrong item also fits the query is unknown: {plain(str(exc))}")
        return None
    return None if fits is None else (lambda image, caption: bool(fits[image, caption]))


def _explain(ctx: state.Context, model: state.Model, pair_of: tuple[int, int], apart: str | None):
    """(PairExplanation, why it has no counterfactual or None). Targets that do not fit this pair — picked on
    another item (``apart``), or refused by the pair's check — are never applied: the pair is explained
    factual only, and the reason is said beside its numbers."""
    if apart is None:
        try:
            return results.explain(ctx, model, *pair_of), None
        except ConfigError as exc:
            if target_rule(state.value("iv")) is None:
                raise
            apart = f"the targets do not fit this pair ({exc})"
    return results.explain(replace(ctx, intervention=None), model, *pair_of), apart


def _numbers(ctx: state.Context, fp: pair_view.FailingPair, ex_true, ex_wrong, item: str, nocf: tuple) -> None:
    """Both pairs' scores, effects with their interval, and ranks, one row each; ``nocf``: per pair, why it
    has no counterfactual (then "—", never an effect that no intervention produced)."""
    rows = []
    for name, ex, rank, cf_rank, missing in (
            (f"true {item} {fp.true_item}", ex_true, fp.rank, fp.cf_rank, nocf[0]),
            (f"best wrong {item} {fp.wrong_item}", ex_wrong, fp.wrong_rank, fp.wrong_cf_rank, nocf[1])):
        require_finite([ex.score, ex.cf_score, ex.effect, ex.effect_low, ex.effect_high],
                       f"the scores of image {ex.image} with caption {ex.caption}")
        cf = not missing
        rows.append({"pair": name, "S(α)": f"{ex.score:.4f}", "S(ᾱ)": f"{ex.cf_score:.4f}" if cf else "—",
                     "effect": f"{ex.effect:+.4f}" if cf else "—",
                     "95% interval": f"[{ex.effect_low:+.4f}, {ex.effect_high:+.4f}]" if cf else "—",
                     "rank (α)": rank + 1, "rank (ᾱ)": cf_rank + 1 if cf else None})
    col = st.column_config
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="fp_numbers", column_config={
        "pair": col.TextColumn("pair", help="the query with this item"),
        "S(α)": col.TextColumn("S(α)", help="the score with the model's own attention α"),
        "S(ᾱ)": col.TextColumn("S(ᾱ)", help=f"the score with the counterfactual attention ᾱ ({ex_true.intervention}), "
                                            f"mean of {ex_true.samples} draw(s)"),
        "effect": col.TextColumn("effect", help="S(α) − mean S(ᾱ): what the learned attention adds to this match"),
        "95% interval": col.TextColumn("95% interval", help="of the effect, over the draws of ᾱ"),
        "rank (α)": col.NumberColumn("rank (α)", help=f"1-based, among {fp.gallery:,} {item}s, with α"),
        "rank (ᾱ)": col.NumberColumn("rank (ᾱ)", help="1-based, " + help.cf_rank_label(
            results.draws(ctx, ctx.intervention), ctx.intervention, ctx.seed)
            + " — the same number on every page"),
    })
    for name, missing in zip(("true", "best wrong"), nocf):
        if missing:
            st.caption(f"No counterfactual for the {name} pair: {plain(missing)}.")


def _captions(fp: pair_view.FailingPair, ex_true, ex_wrong, word: int, wrong_word: int) -> None:
    """Image query: both captions, each with the word compared marked (the wrong one's when it has it)."""
    cols = st.columns(2)
    cols[0].markdown(f"**True caption {fp.true_item}:** " + _marked(ex_true.tokens, word), unsafe_allow_html=True)
    cols[1].markdown(f"**Best wrong caption {fp.wrong_item}:** " + _marked(ex_wrong.tokens, wrong_word),
                     unsafe_allow_html=True)


def _overlays(ctx: state.Context, model: state.Model, fp: pair_view.FailingPair, ex_true, ex_wrong, word: int,
              wrong_word: int, item: str, nocf: tuple) -> None:
    """The word's factual and counterfactual attention over the true and the wrong item, on ONE scale."""
    for ex in (ex_true, ex_wrong):
        note = pair.overlays_available(ex)
        if note is not None:
            st.info(f"No overlays: {note.format(split=ctx.split.split)}. The scores, ranks and the word still hold.")
            return
        if pair.word_region_map(ex)[0] is None:
            st.info("This model returns no attention maps for this direction.")
            return
    tok = ex_true.tokens[word]
    whole = sorted(set(pair.whole_regions(ex_true)) | set(pair.whole_regions(ex_wrong)))
    if whole:
        st.toggle("Paint the whole-image region", key=state.key("whole"), on_change=state.changed,
                  help="a box covering the whole image: painted, it colours every pixel its share (with max) and "
                       "hides the objects' contrast; its share is given below either way")
    paint_whole = bool(state.value("whole")) and bool(whole)
    shown = [(ex_true, word, f"true {item} {fp.true_item}", not nocf[0])]
    if wrong_word >= 0:
        shown.append((ex_wrong, wrong_word, f"wrong {item} {fp.wrong_item}", not nocf[1]))
    top = max(pair.scales(ex)["share"][1] for ex, _, _, _ in shown)
    scale = (0.0, top if top > 0 else 1.0)
    panels, titles, whole_notes, files = [], [], [], []
    for ex, j, name, cf in shown:
        ov = pair.word_overlays(ex, j, scale=scale, whole=paint_whole)
        drawn = [("factual", ov["factual"], f"{name} - factual a: '{ex.tokens[j]}'")]
        if cf:  # a pair without a counterfactual shows no ᾱ panel
            drawn.append(("counterfactual", ov["counterfactual"], f"{name} - counterfactual a-bar: '{ex.tokens[j]}'"))
        panels += [rgb for _, rgb, _ in drawn]
        titles += [f"{name} · {'α' if panel == 'factual' else 'ᾱ'}" for panel, _, _ in drawn]
        whole_notes += [f"{name}: r{r} factual {a:.3f}" + (f", counterfactual {b:.3f}" if cf else "")
                        for r, a, b in ov["whole"]]
        what = f"cap{ex.caption}"
        for panel, rgb, title in drawn:
            files.append((f"{name.split(' ')[0]} {'α' if panel == 'factual' else 'ᾱ'}", rgb, title,
                          hm.figure_name(model.label, f"img{ex.image}", what, f"w{j}-{ex.tokens[j]}", panel,
                                         ctx.intervention or "none", f"seed{ctx.seed}")))
    fig = figures.overlay_panels(panels, titles, vmin=scale[0], vmax=scale[1],
                                 bar_title=f"share of “{tok}”'s attention", height=330)
    figures.show(fig, key="fp_overlays")
    if wrong_word < 0:
        st.info(f"“{plain(tok)}” does not occur in the best wrong caption: only the true pair is drawn.")
    st.caption(f"One colour scale for every panel: 0 to {scale[1]:.3f}, the largest share of any word of "
               f"{'either caption' if fp.direction == 'i2t' else 'the caption over either image'} (factual or "
               f"counterfactual). Each pixel shows the largest share of the painted boxes covering it; uncovered "
               f"pixels keep the faded image.")
    if whole_notes:
        how = "painted too" if paint_whole else "not painted"
        st.caption(f"Whole-image region — share of “{plain(tok)}”'s attention: {'; '.join(whole_notes)} — {how}.")
    cols = st.columns(len(files))
    for k, (col, (label, rgb, title, name)) in enumerate(zip(cols, files)):
        col.download_button(f"PNG {label}", png_bytes(hm.with_colorbar(rgb, *scale, "inferno", title)),
                            file_name=name, mime="image/png", key=f"fp_dl_{k}", icon=":material/download:")


def _marked(tokens: list[str], word: int) -> str:
    """The caption as HTML with the shown word marked (each word shown as typed: HTML and Markdown escaped)."""
    return " ".join(f'<mark style="padding: 1px 4px; border-radius: 4px">{plain(html.escape(t))}</mark>'
                    if j == word else plain(html.escape(t)) for j, t in enumerate(tokens))


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
        st.warning(f"The best wrong {item} also matches the query — {fp.match_reason}: ranking it first may be a "
                   "correct retrieval, not a failure.", icon=":material/rule:")


def render(ctx: state.Context) -> None:
    st.title("Failing pair")
    model, split = ctx.models[0], ctx.split
    direction, query = _failure(split)
    item = "image" if direction == "t2i" else "caption"
    _walk(ctx, direction, query)
    res = results.rank(ctx, model, direction, query, state.value("k"))
    fp = pair_view.failing_pair(res, fits=_fit(ctx), captions=split.captions, caps_per_image=split.caps_per_image)
    missing = state.missing_counterfactual(ctx)
    ex_true, true_nocf = _explain(ctx, model, fp.true_pair, None)
    ex_wrong, wrong_nocf = _explain(ctx, model, fp.wrong_pair, pair_view.targets_apart(direction, state.value("iv")))
    nocf = (missing or true_nocf, missing or wrong_nocf)
    what = f"caption {query} “{plain(split.captions[query])}”" if direction == "t2i" else f"image {query}"
    st.markdown(f"**Query:** {what} · true {item} {fp.true_item} · best wrong {item} {fp.wrong_item} · "
                f"{plain(model.label)} · counterfactual {ctx.intervention or 'none'}")
    if state.value("text"):
        st.caption("The caption typed in *Explore a pair* is not used here: a failing pair is a query of the dataset.")
    _status(fp, item)
    n_draws = results.draws(ctx, ctx.intervention)
    cols = st.columns(4)
    cols[0].metric("Margin", f"{fp.margin:+.4f}", help="S(α) of the true item − S(α) of the best wrong item")
    cols[1].metric("Margin under ᾱ", "—" if any(nocf) else f"{fp.cf_margin:+.4f}",
                   help="the same with the counterfactual scores: " + help.cf_rank_label(
                       n_draws, ctx.intervention, ctx.seed))
    cols[2].metric(f"True {item}'s rank", fp.rank + 1, delta=None if nocf[0] else fp.rank - fp.cf_rank,
                   delta_color="normal",
                   help="under α; the arrow: how far it moves under ᾱ (positive: it rises)")
    cols[3].metric(f"Best wrong {item}'s rank", fp.wrong_rank + 1)
    if ctx.intervention and not any(nocf):
        what = help.cf_draws(n_draws, ctx.intervention, ctx.seed)
        st.caption(f"Under ᾱ ({what}): the margin, the arrow under the true {item}'s rank and the table's "
                   "S(ᾱ), effect and rank (ᾱ).")
    _numbers(ctx, fp, ex_true, ex_wrong, item, nocf)
    section(_word_section, ctx, model, fp, ex_true, ex_wrong, item, nocf, key="failing_word")
    help.how_to_read("margin", "scores", "effect", "interval", "ranks")


def _word_section(ctx: state.Context, model: state.Model, fp: pair_view.FailingPair, ex_true, ex_wrong, item: str,
                  nocf: tuple) -> None:
    """The word picker and everything drawn for the word: reruns alone when another word is picked."""
    direction = fp.direction
    common = results.common_words(ctx, model)
    choice = pair_view.choose_word(ex_true, ex_wrong, common)
    left, right = st.columns([2, 3], vertical_alignment="bottom")
    with left:
        word = _pick_word(ex_true, choice)
    wrong_word = choice.wrong_index(word)
    if direction == "t2i":
        right.markdown("**Caption:** " + _marked(ex_true.tokens, word), unsafe_allow_html=True)
    else:
        _captions(fp, ex_true, ex_wrong, word, wrong_word)
    if choice.note:
        st.caption(f"Word: {plain(choice.note)}.")
    _overlays(ctx, model, fp, ex_true, ex_wrong, word, wrong_word, item, nocf)
    _why_word(ex_true, ex_wrong, choice, word, common)


if __name__ == "__main__":
    render(state.context())
