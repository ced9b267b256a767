"""Retrieval: one query's ranking under factual and counterfactual attention."""
from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

import results
import state
from causmatch.analysis import links
from components import figures, help
from components.errors import plain, require_finite
from components.images import framed, load_rgb
from components.pickers import pick_direction
from components.sections import section, sidebar_follows_pair
from components.tables import table


def pick_query(split, direction: str) -> int:
    """The query: a caption (t2i, over images) or an image (i2t, over captions), bound to the view."""
    if direction == "t2i":
        n = split.n_captions
        c = st.number_input(f"Caption query (0–{n - 1})", min_value=0, max_value=n - 1, step=1,
                            key=state.fit("caption", range(n), 0), on_change=state.changed)
        st.markdown(f"**Query:** “{plain(split.captions[c])}” (true image {split.image_of(c)})")
        image = split.image_of(c)  # the pair is the query with its image: Explore then opens this very pair
        state.fit("image", (image,), image, warn=False)
        return int(c)
    n = split.n_images
    i = st.number_input(f"Image query (0–{n - 1})", min_value=0, max_value=n - 1, step=1,
                        key=state.fit("image", range(n), 0), on_change=state.changed)
    own = [int(c) for c in split.captions_of(i)]
    st.markdown(f"**Query:** image {i} (true captions {', '.join(map(str, own))})")
    state.fit("caption", own, own[0], warn=False)  # the pair is the query image with one of its captions
    return int(i)


# The top-k table's columns: (name shown, help). The CSV keeps the library's names.
TOP_COLUMNS = {
    "position": ("position", "place in this top-k list (1 = best)"),
    "item": ("item", "the image (caption query) or caption (image query) number"),
    "score": ("S(α)", "the matcher's score with its learned attention"),
    "cf_score": ("S(ᾱ)", "the score under the counterfactual attention, mean over its draws"),
    "rank": ("rank under α", "1-based rank among the whole gallery, factual"),
    "cf_rank": ("rank under ᾱ", "1-based rank under the counterfactual attention"),
    "moved": ("moved", "rank under α − rank under ᾱ: positive when the item rose under ᾱ"),
    "is_true": ("true", "the query's true item"),
    "caption": ("caption", "the caption's text"),
}


def top_frame(rows: list[dict], split, direction: str) -> pd.DataFrame:
    """A top-k list as a table with 1-based ranks and the items' text (the library's column names)."""
    df = pd.DataFrame(rows)
    df.insert(0, "position", range(1, len(df) + 1))
    df["rank"] += 1
    df["cf_rank"] += 1
    if direction == "i2t":
        df["caption"] = [split.captions[i] for i in df["item"]]
    return df


def top_columns(df: pd.DataFrame, direction: str, n_draws: int = 1) -> dict:
    """``st.column_config`` of the top-k table: human names, help, 4 decimals for scores."""
    out = {}
    for col in df.columns:
        name, text = TOP_COLUMNS.get(col, (col, ""))
        if col == "item":
            name = "image" if direction == "t2i" else "caption #"
        if col == "cf_rank":
            name = help.cf_rank_label(n_draws)
        if col in ("score", "cf_score"):
            out[col] = st.column_config.NumberColumn(name, help=text, format="%.4f")
        elif col == "caption":
            out[col] = st.column_config.TextColumn(name, help=text, width="large")
        else:
            out[col] = st.column_config.Column(name, help=text)
    return out


def _grid(rows: list[dict], split, direction: str, score_key: str, columns: int = 5) -> None:
    """Top items as an image grid (t2i) or a caption list (i2t), each with its score."""
    if direction == "i2t":
        for pos, row in enumerate(rows, 1):
            mark = " — **true caption**" if row["is_true"] else ""
            st.markdown(f"{pos}. `{row[score_key]:.4f}` {plain(split.captions[row['item']])}{mark}")
        return
    cols = st.columns(columns)
    for pos, row in enumerate(rows):
        label = f"#{pos + 1} · image {row['item']} · {row[score_key]:.4f}" + (" · TRUE" if row["is_true"] else "")
        rgb = load_rgb(split.image_paths[row["item"]]) if split.image_paths else None
        with cols[pos % columns]:
            if rgb is not None:
                st.image(framed(rgb) if row["is_true"] else rgb, caption=label, width="stretch")
            else:
                st.markdown(label)


def _query_section(ctx: state.Context) -> None:
    """Everything drawn for the picked query (direction, k, query): reruns alone when they change."""
    model = ctx.models[0]
    top = st.columns([2, 1])
    with top[0]:
        direction = pick_direction()
    k_field = links.FIELDS["k"]
    k = top[1].slider("Top k", k_field.low, k_field.high, key=state.key("k"), on_change=state.changed)
    query = pick_query(ctx.split, direction)
    res = results.rank(ctx, model, direction, query, k)
    require_finite(np.concatenate([np.ravel(res.scores), np.ravel(res.cf_scores)]),
                   f"the scores of {'caption' if direction == 't2i' else 'image'} query {query}")
    n_draws = results.draws(ctx, ctx.intervention)
    cols = st.columns([1, 2])  # the counterfactual rank's label names kind, draws and seed: it gets the room
    cols[0].metric("True item's rank, factual", res.rank + 1, help="rank under α, 1-based (1 = best)")
    cf_label = help.cf_rank_label(n_draws, ctx.intervention, ctx.seed)
    cols[1].metric(f"… {cf_label}", res.cf_rank + 1, delta=res.rank - res.cf_rank,
                   delta_color="normal", help="positive: the true item rose under the counterfactual attention")
    help.how_to_read("ranks", "scores")
    if direction == "t2i" and not ctx.split.image_paths:
        st.info("This dataset has no image files, so the top images are listed by number.")
    left, right = st.columns(2)
    with left:
        st.subheader("Factual top-k")
        _grid(res.top, ctx.split, direction, "score")
        if st.button("Failing pair: the true item beside the best wrong one", icon=":material/compare_arrows:",
                     key="rt_failing_pair", help="this query's true and best-scoring wrong item side by side, "
                     "with the same word's attention over both"):
            st.switch_page("app_pages/failing_pair.py", query_params=state.link())
    with right:
        st.subheader("Counterfactual top-k")
        _grid(res.cf_top, ctx.split, direction, "cf_score")
    if direction == "i2t":
        st.caption("The query image's own captions are marked **true caption**; positions are 1-based.")
    elif ctx.split.image_paths:
        st.caption("The true image is framed in green (TRUE); positions are 1-based.")
    else:
        st.caption("The true image is marked TRUE; positions are 1-based.")
    st.subheader("How the top items moved")
    items = {r["item"]: r for r in res.top + res.cf_top}
    fig = figures.rank_moves([f"{'img' if direction == 't2i' else 'cap'} {i}" for i in items],
                             [r["rank"] + 1 for r in items.values()], [r["cf_rank"] + 1 for r in items.values()],
                             title="each item of either top-k: rank under α → rank under ᾱ",
                             before_label="rank under α", after_label=cf_label,
                             true=[r["is_true"] for r in items.values()])
    figures.show(fig, key="rt_moves")
    df = top_frame(res.top, ctx.split, direction)
    table(df, f"retrieval_{direction}_{query}.csv", key="rt_table", column_config=top_columns(df, direction, n_draws))


def render(ctx: state.Context) -> None:
    st.title("Retrieval")
    section(_query_section, ctx, key="retrieval_query", alone=not sidebar_follows_pair())


if __name__ == "__main__":
    render(state.context())
