"""Selection widgets bound to the shareable view (pair, word, region, direction, top-k).

Each picker is given its view field's key (:func:`state.fit` first replaces a value the picker does not
offer) and :func:`state.changed` as its callback: the widget changes the view, the callback the link.
"""
from __future__ import annotations

import streamlit as st

import state
from causmatch.analysis import links, slices


def pick_pair(split, key_prefix: str = "") -> tuple[int, int, str]:
    """Image number, one of its captions, or a typed caption. Returns (image, caption, text).

    Picking another pair sends the word and region back to their defaults (:func:`state.pair_changed`)."""
    n = split.n_images
    cols = st.columns([1, 3])
    image = cols[0].number_input(f"Image (0–{n - 1})", min_value=0, max_value=n - 1, step=1,
                                 key=state.fit("image", range(n), 0), on_change=state.pair_changed)
    own = [int(c) for c in split.captions_of(image)]
    caption = cols[1].selectbox(
        "Caption", own, key=state.fit("caption", own, own[0]), on_change=state.pair_changed,
        format_func=lambda c: f"#{c} · {split.captions[c]}")
    text = st.text_input("…or type a caption (replaces the one above)", key=state.key("text"),
                         on_change=state.pair_changed, placeholder="e.g. a small red circle left of a blue square")
    return int(image), int(caption), text.strip()


def pick_index(label: str, name: str, options: list[int], labels: dict[int, str] | None = None,
               container=st) -> int:
    """A select box over integer options bound to view field ``name`` (the first option if the view's is not one)."""
    return int(container.selectbox(label, options, key=state.fit(name, options, options[0]),
                                   on_change=state.changed, format_func=(labels or {}).get if labels else str))


DIRECTION_NAMES = {"t2i": "caption → images", "i2t": "image → captions"}


def pick_direction(container=st) -> str:
    return container.segmented_control("Query", links.DIRECTIONS, format_func=DIRECTION_NAMES.get, required=True,
                                       key=state.key("dir"), on_change=state.changed)


def pick_slice(found, container=st) -> str:
    """The slice picker (view field ``slice``, "" = the whole split) over every slice ``found``
    (``causmatch.analysis.slices.SplitSlices``) offers, plus the link's own range when it is not a bin."""
    key = state.fit("slice", lambda v: v == "" or found.valid(v), "")
    current = state.value("slice")
    options = ["", *found.keys()]
    if current and current not in options:
        options.append(current)  # a link's range that is not one of the bins (length:3-5)

    def label(k: str) -> str:
        if not k:
            return "whole split"
        sl = found.get(k)
        if sl.family in slices.QUERY_FAMILIES:  # each direction's queries by their own label
            return f"{sl.title} ({int(sl.captions.sum()):,} caption, {int(sl.images.sum()):,} image queries)"
        n = int(sl.images.sum()) if sl.images is not None else int(sl.captions.sum())
        return f"{sl.title} ({n:,} {'images' if sl.images is not None else 'captions'})"
    return container.selectbox("Slice", options, key=key, on_change=state.changed, format_func=label,
                               help="cut to the queries of one slice of the split (Failure cases › Slices); "
                                    "type to search the words")
