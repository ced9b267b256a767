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
from components.errors import plain, require_finite
from components.images import load_rgb, png_bytes


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


def whole_regions(ex) -> list[int]:
    """The pair's whole-image regions — valid boxes covering (almost) the whole image, found from the boxes
    (:func:`causmatch.analysis.heatmaps.whole_image_regions`); [] when no overlay can be drawn."""
    if overlays_available(ex) is not None:
        return []
    size = load_rgb(ex.image_path).shape[:2]
    return [int(r) for r in np.flatnonzero(hm.whole_image_regions(ex.boxes, size, ex.region_mask))]


def region_label(ex, r: int, whole: list[int] | None = None) -> str:
    """``r3``, or ``r0 (whole)`` for a whole-image region."""
    whole = whole_regions(ex) if whole is None else whole
    return f"r{r} (whole)" if r in whole else f"r{r}"


def word_labels(ex) -> list[str]:
    """The matrix row labels: the tokens, an unknown word marked ``⚠ word (unknown)``."""
    unknown = set(ex.unknown_rows)
    return [f"⚠ {t} (unknown)" if j in unknown else t for j, t in enumerate(ex.tokens)]


def scales(ex) -> dict:
    """The pair's colour scales, one for every word (so a flat row looks flat): ``share`` = (0, top) over
    the factual and counterfactual shares of every word and valid region; ``limit`` = the largest
    |factual − counterfactual| share (the difference's symmetric scale)."""
    fact, _ = word_region_map(ex)
    cf, _ = word_region_map(ex, counterfactual=True)
    regions = valid_regions(ex)
    maps = [m for m in (fact, cf) if m is not None]
    share = hm.share_scale(*maps, columns=regions)
    limit = float(np.abs(fact[:, regions] - cf[:, regions]).max()) if fact is not None and cf is not None else 0.0
    return {"share": share, "limit": limit if limit > 0 else 1.0}


ACCUMULATION = "max"  # overlays: each pixel shows the largest share of the painted boxes covering it


def word_overlays(ex, word: int, mode: str = ACCUMULATION, scale: tuple[float, float] | None = None,
                  whole: bool = False) -> dict:
    """Factual, counterfactual and difference overlays of one word on absolute scales.

    Factual and counterfactual share one (vmin, vmax): by default the pair's :func:`scales` (0 to the
    largest share of any word), ``scale`` when given (one scale over several pairs, e.g. a query's true
    and wrong pair); the difference has its own symmetric scale. Painted: the valid regions, the
    whole-image ones only when ``whole``; pixels no painted box covers keep the (faded) image.
    Returns the three RGB overlays, ``scale``, ``limit`` (the difference's scale), ``whole`` =
    [(region, factual share, counterfactual share)] of the whole-image regions, ``painted`` (the regions
    painted) and the PNG colour bars ``bar`` / ``diff_bar``.
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
    big = whole_regions(ex)
    paint = np.asarray(ex.region_mask, bool).copy()
    if not whole:
        paint[big] = False
    heat_f = hm.word_heatmap(fact[word], ex.boxes, size, mode=mode, region_mask=paint)  # [H,W]
    heat_c = hm.word_heatmap(cf[word], ex.boxes, size, mode=mode, region_mask=paint)    # [H,W]
    where = hm.coverage(ex.boxes, size, paint)  # [H,W]
    sc = scales(ex)
    vmin, vmax = sc["share"] if scale is None else (float(scale[0]), float(scale[1]))
    if scale is None and mode == "sum":
        vmax = max(vmax, float(heat_f.max()), float(heat_c.max()))  # "sum" adds overlapping shares past it
    limit = max(sc["limit"], float(np.abs(heat_f - heat_c).max()))
    diff_rgb, limit = hm.signed_difference(heat_f, heat_c, limit=limit)
    return {
        "factual": hm.overlay(grey, hm.colorize(heat_f, vmin, vmax), 0.8, where=where),
        "counterfactual": hm.overlay(grey, hm.colorize(heat_c, vmin, vmax), 0.8, where=where),
        "difference": hm.overlay(grey, diff_rgb, 0.8, where=where),
        "scale": (vmin, vmax), "limit": limit,
        "whole": [(r, float(fact[word, r]), float(cf[word, r])) for r in big],
        "painted": [int(r) for r in np.flatnonzero(paint)],
        "bar": hm.colorbar(vmin, vmax, height=size[0], width=96),
        "diff_bar": hm.colorbar(-limit, limit, cmap="coolwarm", height=size[0], width=96),
    }


def _box_points(ex, regions: list[int], values: np.ndarray, what: str) -> list[tuple]:
    """Hover points at the painted boxes' centres: (x, y, "r3 · factual 0.213")."""
    b = np.asarray(ex.boxes, dtype=np.float64).reshape(-1, 4)
    return [((b[r, 0] + b[r, 2]) / 2, (b[r, 1] + b[r, 3]) / 2, f"r{r} · {what} {float(values[r]):.4f}")
            for r in regions]


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


HEADS = {"saf": "SGRAF (SAF)", "sgr": "SGRAF (SGR)"}


def head_note(ex) -> str | None:
    """One line on how a non-SCAN model's score is formed (what its relevance views mean); None for SCAN."""
    head = getattr(ex, "similarity", "scan")
    if head not in HEADS:
        return None
    how = "weighted by its filtration (below)" if head == "saf" else "reasoned over by a graph"
    return (f"{HEADS[head]} model: the score is a sigmoid of similarity vectors (each word against the image "
            f"context its attention gathers, plus the global match), {how} — not a pooled cosine, so it has no "
            "per-word relevance.")


def filtration_section(ex, key: str) -> None:
    """SAF's filtration weights of the pair (the global match, then each word), factual and under ᾱ."""
    f = ex.filtration
    if f is None:
        return
    require_finite(f, f"the filtration weights of image {ex.image}")
    nodes = ["⟨global⟩", *ex.tokens]
    st.markdown(highlighted_words(nodes, f), unsafe_allow_html=True)
    cf = ex.cf_filtration
    rows = {"node": nodes, "factual": np.asarray(f, np.float64)}
    if cf is not None and not np.allclose(cf, f, atol=1e-7):
        rows["counterfactual (mean)"] = np.asarray(cf, np.float64)
    import pandas as pd

    with st.expander("Filtration weights per node"):
        st.dataframe(pd.DataFrame(rows).round(4), hide_index=True, key=f"{key}_filtration")
    st.caption("Shading: SAF's filtration weight of each similarity node — the global match first, then each "
               "word; they sum to 1 (hover a word for its value). They say which words the score listens to. "
               + ("The sidebar's intervention edits these weights (the attention stays as learned)."
                  if str(ex.intervention).endswith("the attention as learned") else
                  "A filtration:… intervention in the sidebar edits them instead of the attention."))


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


def matrix_figure(ex, mat: np.ndarray, regions: list[int], *, title: str, zmin: float, zmax: float,
                  cmap: str = "inferno"):
    """One word × region matrix of the pair (valid regions, whole-image ones labelled), unknown words greyed."""
    whole = whole_regions(ex)
    fig = figures.attention_matrix(mat, word_labels(ex), [region_label(ex, r, whole) for r in regions],
                                   title=title, zmin=zmin, zmax=zmax, cmap=cmap)
    return figures.mark_rows(fig, ex.unknown_rows, note="words the model does not know (<unk>)")


def matrices_side_by_side(ex, key: str) -> None:
    """Factual | counterfactual | difference word × region matrices on the pair's absolute scales."""
    fact, what = word_region_map(ex)
    cf, _ = word_region_map(ex, counterfactual=True)
    if fact is None or cf is None:
        st.info("This model returns no attention maps for this direction.")
        return
    regions = valid_regions(ex)
    f, c = fact[:, regions], cf[:, regions]  # [W, R valid]
    sc = scales(ex)
    (zmin, zmax), lim = sc["share"], sc["limit"]
    whole = whole_regions(ex)
    panels = (("Factual α", f, zmin, zmax, "inferno"), ("Counterfactual ᾱ (mean of draws)", c, zmin, zmax, "inferno"),
              ("Difference α − ᾱ", f - c, -lim, lim, "coolwarm"))
    fig = figures.attention_panels(panels, word_labels(ex), [region_label(ex, r, whole) for r in regions],
                                   bars=("share (α and ᾱ)", "α − ᾱ"))
    figures.show(figures.mark_rows(fig, ex.unknown_rows, note=None, panels=3), key=key)
    st.caption(f"{what}, each word's row as shares of 1. Factual and counterfactual share one absolute scale, "
               f"0 to the largest share of any word ({zmax:.3f}); the difference uses a symmetric scale "
               f"[−{lim:.3f}, {lim:.3f}]." + (" Grey rows: words the model does not know (<unk>)."
                                              if ex.unknown_rows else ""))


def overlay_row(ex, word: int, key: str, *, whole: bool = False, name_parts: tuple = ()) -> None:
    """Factual | counterfactual overlays of one word with their shared colour bar, the difference with its
    own (one figure), the whole-image region's share said apart, and PNG downloads that carry their colour bar.

    ``name_parts``: what names the downloaded files (checkpoint, image, caption or text, intervention, seed).
    """
    ov = word_overlays(ex, word, whole=whole)
    tok = ex.tokens[word]
    fact, _ = word_region_map(ex)
    cf, _ = word_region_map(ex, counterfactual=True)
    (vmin, vmax), lim = ov["scale"], ov["limit"]
    painted = ov["painted"]
    fig = figures.overlay_panels(
        [ov["factual"], ov["counterfactual"]], [f"factual α: “{tok}”", f"counterfactual ᾱ: “{tok}”"],
        vmin=vmin, vmax=vmax, bar_title="share of the word's attention",
        hover=[_box_points(ex, painted, fact[word], "factual"), _box_points(ex, painted, cf[word], "counterfactual")],
        then=dict(images=[ov["difference"]], titles=["difference α − ᾱ"], vmin=-lim, vmax=lim, cmap="coolwarm",
                  bar_title="α − ᾱ (red: factual higher)",
                  hover=[_box_points(ex, painted, fact[word] - cf[word], "α − ᾱ")]))
    figures.show(fig, key=f"{key}_ov")
    if ov["whole"]:
        parts = "; ".join(f"{region_label(ex, r, [r])}: factual {a:.3f}, counterfactual {b:.3f}"
                          for r, a, b in ov["whole"])
        how = "painted too" if whole else "not painted (switch *Paint the whole-image region* to paint it)"
        st.caption(f"Whole-image region — its share of the attention of “{plain(tok)}”: {parts} — {how}.")
    st.caption(f"Each pixel shows the largest share of the painted boxes covering it (`{ACCUMULATION}`); "
               f"uncovered pixels keep the faded image. Scale: 0 to {vmax:.3f}, the largest share of any word "
               f"of this caption (factual or counterfactual), the same for every word — a flat row looks flat.")
    names = dict(factual=(ov["factual"], vmin, vmax, "inferno", f"factual: '{tok}', share of its attention"),
                 counterfactual=(ov["counterfactual"], vmin, vmax, "inferno",
                                 f"counterfactual: '{tok}', share of its attention"),
                 difference=(ov["difference"], -lim, lim, "coolwarm",
                             f"factual - counterfactual: '{tok}' (red: factual higher)"))
    cols = st.columns(len(names))
    for col, (panel, (rgb, lo, hi, cmap, title)) in zip(cols, names.items()):
        def png(rgb=rgb, lo=lo, hi=hi, cmap=cmap, title=title) -> bytes:  # drawn when the button is clicked
            return png_bytes(hm.with_colorbar(rgb, lo, hi, cmap, title))
        col.download_button(f"PNG {panel}", png,
                            file_name=hm.figure_name(*name_parts, f"w{word}-{tok}", panel), mime="image/png",
                            key=f"{key}_dl_{panel}", icon=":material/download:")


def word_effects_chart(ex, word: int | None, key: str, container=None) -> None:
    """Per-word effects, the picked word highlighted, unknown words marked."""
    if ex.word_effects is not None:
        fig = figures.effect_bars(word_labels(ex), ex.word_effects, title="Per-word effect", axis="word",
                                  highlight=word)
        figures.show(fig, key=f"{key}_we", container=container)


def region_effects_chart(ex, key: str, container=None) -> None:
    """Per-region effects (the score's drop without the region), the whole-image region named."""
    if ex.region_effects is not None:
        regions = valid_regions(ex)
        whole = whole_regions(ex)
        fig = figures.effect_bars([region_label(ex, r, whole) for r in regions],
                                  np.asarray(ex.region_effects)[regions],
                                  title="Per-region effect (score drop without the region)", axis="region")
        figures.show(fig, key=f"{key}_re", container=container)
