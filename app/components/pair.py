"""Drawing one :class:`causmatch.analysis.PairExplanation`: image, maps, effects.

Colours for the image overlays come from ``causmatch.analysis.heatmaps`` (factual and
counterfactual on one shared scale, a signed difference map, a colour bar); this module
only arranges them.
"""
from __future__ import annotations

import html

import cv2
import numpy as np
import streamlit as st

from causmatch.analysis import heatmaps as hm
from causmatch.pointing import word_region_map as map_of
from components import figures
from components.errors import require_finite
from components.images import image_panel, load_rgb


def _rows_as_shares(m: np.ndarray) -> np.ndarray:
    """Each query row divided by its sum (all-zero rows stay 0).

    Display only: a relevance R_j is a cosine, invariant to rescaling a row of the attention,
    so counterfactual maps are not renormalised (random draws are U(0, 2)); as
    shares of each row, factual and counterfactual maps become comparable on one colour scale.
    """
    m = np.asarray(m, dtype=np.float64)  # [W, R]
    total = m.sum(axis=1, keepdims=True)  # [W, 1]
    return np.divide(m, total, out=np.zeros_like(m), where=total > 0)


def word_region_map(ex, counterfactual: bool = False) -> tuple[np.ndarray | None, str]:
    """The word × region map ``[W, R]`` to show (each row as shares summing to 1) and its name.

    t2i models have it directly (each word's attention over regions); i2t-only models have the
    region → word map, shown transposed (how much each region attends to the word).
    """
    t2i = ex.cf_t2i_mean if counterfactual else ex.t2i
    i2t = ex.cf_i2t_mean if counterfactual else ex.i2t
    m = map_of(t2i, None if i2t is None else np.asarray(i2t))  # [W,R]
    if m is None:
        return None, ""
    what = "word → region attention (t2i)" if t2i is not None else "region → word attention (i2t), transposed"
    return _rows_as_shares(m), what


def region_labels(ex) -> list[str]:
    return [f"r{r}" for r in range(len(ex.region_mask))]


def valid_regions(ex) -> list[int]:
    return [int(r) for r in np.flatnonzero(ex.region_mask)]


def overlays_available(ex) -> str | None:
    """None when overlays can be drawn; otherwise the reason shown to the user."""
    if ex.boxes is None:
        return "this dataset has no region boxes (`{split}_boxes.npy`), so no overlay on the image is drawn"
    if not ex.image_path or load_rgb(ex.image_path) is None:
        return "this dataset has no readable image files (`{split}_images.txt`), so no overlay is drawn"
    boxes = _valid_boxes(ex)
    if not np.isfinite(boxes).all():
        return (f"image {ex.image}'s region boxes hold NaN or infinite coordinates, so no overlay is drawn "
                "— regenerate `{split}_boxes.npy`")
    return None


def _valid_boxes(ex) -> np.ndarray:
    """The boxes ``[R valid, 4]`` of the pair's valid regions, as float64."""
    return np.asarray(ex.boxes, dtype=np.float64).reshape(-1, 4)[np.asarray(ex.region_mask, bool).reshape(-1)]


def clipped_boxes_note(ex) -> str | None:
    """A note when some valid boxes reach past the image (they are drawn clipped to it), else None."""
    if overlays_available(ex) is not None:
        return None
    h, w = load_rgb(ex.image_path).shape[:2]
    b = _valid_boxes(ex)
    out = (b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > w) | (b[:, 3] > h)
    if not out.any():
        return None
    regions = [int(r) for r in np.flatnonzero(ex.region_mask)[out]]
    return (f"{len(regions)} region box(es) (r{', r'.join(map(str, regions[:8]))}{' …' if len(regions) > 8 else ''}) "
            f"reach past the image ({w}×{h} pixels): they are drawn clipped to it.")


def boxes_image(ex, highlight: list[int] | None = None) -> np.ndarray:
    """The pair's image with every valid region's box and label (highlighted ones on top)."""
    rgb = load_rgb(ex.image_path)
    return hm.draw_boxes(rgb, ex.boxes, labels=region_labels(ex), highlight=highlight,
                         region_mask=ex.region_mask)


def word_overlays(ex, word: int, mode: str = "max", scale: tuple[float, float] | None = None) -> dict:
    """Factual, counterfactual and difference overlays of one word, plus their colour bars.

    Factual and counterfactual share one (vmin, vmax) — ``scale`` when given (one scale over several
    pairs, e.g. a query's true and wrong pair), returned as ``"scale"``; the difference has its own
    symmetric scale.
    """
    rgb = load_rgb(ex.image_path)
    size = rgb.shape[:2]
    # The heat is blended over a faded grey copy of the image: over the coloured objects themselves
    # (a yellow heat on a blue square turns grey) or over dark pixels, the colours would no longer
    # read on the colour bar; the faded copy keeps the shapes visible without shifting the colours.
    grey = cv2.cvtColor(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    grey = cv2.addWeighted(grey, 0.5, np.full_like(grey, 255), 0.5, 0.0)
    fact, _ = word_region_map(ex)
    cf, _ = word_region_map(ex, counterfactual=True)
    heat_f = hm.word_heatmap(fact[word], ex.boxes, size, mode=mode, region_mask=ex.region_mask)  # [H,W]
    heat_c = hm.word_heatmap(cf[word], ex.boxes, size, mode=mode, region_mask=ex.region_mask)    # [H,W]
    vmin, vmax = hm.shared_scale(heat_f, heat_c) if scale is None else (float(scale[0]), float(scale[1]))
    diff_rgb, limit = hm.signed_difference(heat_f, heat_c)
    return {
        "scale": (vmin, vmax),
        "factual": hm.overlay(grey, hm.colorize(heat_f, vmin, vmax), 0.8),
        "counterfactual": hm.overlay(grey, hm.colorize(heat_c, vmin, vmax), 0.8),
        "difference": hm.overlay(grey, diff_rgb, 0.8),
        "bar": hm.colorbar(vmin, vmax, height=size[0], width=96),
        "diff_bar": hm.colorbar(-limit, limit, cmap="coolwarm", height=size[0], width=96),
    }


def highlighted_words(tokens: list[str], weights: np.ndarray) -> str:
    """HTML of the caption with each word's background as strong as its weight (max = full)."""
    w = np.asarray(weights, dtype=np.float64)  # [W]
    top = float(w.max()) if w.size and w.max() > 0 else 1.0
    spans = []
    for tok, v in zip(tokens, w):
        alpha = max(0.0, float(v) / top)
        spans.append(f'<span title="{v:.4f}" style="background: rgba(231, 76, 60, {alpha:.2f}); '
                     f'padding: 2px 4px; margin: 1px; border-radius: 4px; font-size: 1.1rem">'
                     f'{html.escape(tok)}</span>')
    return " ".join(spans)


def scores_row(ex, compact: bool = False, missing: str | None = None) -> None:
    """Score, counterfactual score and effect as metrics, the effect's 95% interval below them.

    ``missing``: why there is no counterfactual (a targeted kind without usable targets); then only
    the score is shown, never an effect of 0 that no intervention produced.
    """
    require_finite([ex.score, ex.cf_score, ex.effect, ex.effect_low, ex.effect_high],
                   f"the scores of image {ex.image} with “{ex.text[:60]}”")
    cols = st.columns(3)
    digits = 3 if compact else 4
    cols[0].metric("Score S(α)", f"{ex.score:.{digits}f}")
    if missing:
        cols[1].metric("Counterfactual S(ᾱ)", "—", help=missing)
        cols[2].metric("Effect", "—", help=missing)
        st.caption(f"No counterfactual: {missing}.")
        return
    cols[1].metric("Counterfactual S(ᾱ)", f"{ex.cf_score:.{digits}f}", help=f"{ex.intervention}")
    cols[2].metric("Effect", f"{ex.effect:+.{digits}f}",
                   help="S(α) − mean S(ᾱ): how much the learned attention adds to the match")
    st.caption(f"Effect 95% interval [{ex.effect_low:+.4f}, {ex.effect_high:+.4f}] over {ex.samples} "
               f"draw(s) of the counterfactual ({ex.intervention}).")


def matrices_side_by_side(ex, key: str) -> None:
    """Factual | counterfactual | difference word × region matrices on one colour scale."""
    fact, what = word_region_map(ex)
    cf, _ = word_region_map(ex, counterfactual=True)
    if fact is None or cf is None:
        st.info("This model returns no attention maps for this direction.")
        return
    regions = valid_regions(ex)
    labels = [f"r{r}" for r in regions]
    f, c = fact[:, regions], cf[:, regions]  # [W, R valid]
    zmin, zmax = hm.shared_scale(f, c)
    lim = float(np.abs(f - c).max()) or 1.0
    cols = st.columns(3)
    panels = (("Factual α", f, dict(zmin=zmin, zmax=zmax)),
              ("Counterfactual ᾱ (mean of draws)", c, dict(zmin=zmin, zmax=zmax)),
              ("Difference α − ᾱ", f - c, dict(zmin=-lim, zmax=lim, cmap="coolwarm")))
    for col, (title, mat, scale) in zip(cols, panels):
        fig = figures.attention_matrix(mat, ex.tokens, labels, title=title, **scale)
        col.plotly_chart(fig, key=f"{key}_{title[:4]}", theme=None, config={"displaylogo": False})
    st.caption(f"{what}, each word's row as shares of 1. Factual and counterfactual share one colour scale "
               f"[{zmin:.3f}, {zmax:.3f}]; "
               f"the difference uses a symmetric scale [−{lim:.3f}, {lim:.3f}].")


def overlay_row(ex, word: int, key: str) -> None:
    """Factual | counterfactual | difference overlays of one word, with colour bars and PNG downloads."""
    ov = word_overlays(ex, word)
    cols = st.columns([4, 4, 1.6, 4, 1.6])  # the colour bars at about the overlays' scale
    tok = ex.tokens[word]
    with cols[0]:
        image_panel(ov["factual"], f"factual: “{tok}”", download=f"{key}_factual.png", key=f"{key}_dlf")
    with cols[1]:
        image_panel(ov["counterfactual"], f"counterfactual: “{tok}”", download=f"{key}_cf.png",
                    key=f"{key}_dlc")
    with cols[2]:
        st.image(ov["bar"], caption="shared scale", width="stretch")
    with cols[3]:
        image_panel(ov["difference"], "difference (blue: cf higher, red: factual higher)",
                    download=f"{key}_diff.png", key=f"{key}_dld")
    with cols[4]:
        st.image(ov["diff_bar"], caption="α − ᾱ", width="stretch")


def effect_charts(ex, word: int | None, key: str) -> None:
    cols = st.columns(2)
    if ex.word_effects is not None:
        fig = figures.effect_bars(ex.tokens, ex.word_effects, title="Per-word effect", axis="word",
                                  highlight=word)
        cols[0].plotly_chart(fig, key=f"{key}_we", config={"displaylogo": False})
    if ex.region_effects is not None:
        regions = valid_regions(ex)
        fig = figures.effect_bars([f"r{r}" for r in regions], np.asarray(ex.region_effects)[regions],
                                  title="Per-region effect (score drop without the region)", axis="region")
        cols[1].plotly_chart(fig, key=f"{key}_re", config={"displaylogo": False})
