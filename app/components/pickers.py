"""Selection widgets bound to the shareable view (pair, word, region, direction, top-k)."""
from __future__ import annotations

import streamlit as st

import state


def pick_pair(split, key_prefix: str = "") -> tuple[int, int, str]:
    """Image number, one of its captions, or a typed caption. Returns (image, caption, text)."""
    view = state.view()
    n = split.n_images
    cols = st.columns([1, 3])
    image = cols[0].number_input(f"Image (0–{n - 1})", min_value=0, max_value=n - 1, step=1,
                                 key=state.widget_key("image", lambda v: 0 <= v < n, 0))
    own = list(split.captions_of(image))
    caption = cols[1].selectbox(
        "Caption", own, key=state.widget_key("caption", lambda v: v in own, own[0]),
        format_func=lambda c: f"#{c} · {split.captions[c]}")
    text = st.text_input("…or type a caption (replaces the one above)", key=state.widget_key("text"),
                         placeholder="e.g. a small red circle left of a blue square")
    return int(image), int(caption), text.strip()


def pick_index(label: str, name: str, options: list[int], labels: dict[int, str] | None = None,
               container=st) -> int:
    """A select box over integer options bound to view field ``name`` (first option if stale)."""
    return int(container.selectbox(label, options, key=state.widget_key(name, lambda v: v in options, options[0]),
                                   format_func=(labels or {}).get if labels else str))


def pick_direction(container=st) -> str:
    options = ["t2i", "i2t"]
    names = {"t2i": "caption → images", "i2t": "image → captions"}
    return container.segmented_control("Query", options, format_func=names.get, required=True,
                                       key=state.widget_key("dir", lambda v: v in options, "t2i"))
