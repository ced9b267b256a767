"""Plotly figures built from arrays the analysis computed (no maths beyond layout).

Plotly heatmaps do not report clicks in Streamlit, so every figure here is for reading
(hover shows the values); selections are made with widgets next to them.

Light and dark: every builder ends in :func:`_layout`, which leaves the backgrounds transparent and
draws its own lines in a grey that reads on both; pages draw every figure with :func:`show`, which
hands it to Streamlit's theme (``theme="streamlit"``: fonts, grid and text follow the app's light or
dark theme in the browser, the traces' own colour scales are kept).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

_FONT = dict(size=13)
THEME = "streamlit"              # the plotly theme every chart is drawn with (see :func:`show`)
CONFIG = {"displaylogo": False}  # the plotly toolbar of every chart
NEUTRAL = "rgba(128,128,128,0.75)"  # zero lines, reference lines, connectors: readable on white and on black
# Line colours of a rank move (rank under α → rank under ᾱ), named in the chart's legend.
EFFECT_COLORS = {"positive": "#2e86de", "negative": "#e74c3c"}  # bars of effects: helps / hurts the match
MOVE_COLORS = {"rose": "#2e86de", "fell": "#e74c3c", "unchanged": "#95a5a6"}


def show(fig: go.Figure, key: str, container=None) -> None:
    """Draw ``fig`` in ``container`` (default ``st``) following the app's light/dark theme."""
    import streamlit as st
    (container or st).plotly_chart(fig, key=key, theme=THEME, config=CONFIG)


def colorscale(cmap: str = "inferno", steps: int = 11) -> list:
    """A plotly colour scale with exactly the colours of ``causmatch.analysis.heatmaps`` (so the
    matrices and the image overlays read the same), sampled at ``steps`` stops."""
    from causmatch.analysis.heatmaps import colorize
    rgb = colorize(np.linspace(0.0, 1.0, steps)[None, :], 0.0, 1.0, cmap)[0]  # [steps, 3]
    return [[i / (steps - 1), f"rgb({r},{g},{b})"] for i, (r, g, b) in enumerate(rgb)]


def unique_labels(labels: Sequence[str]) -> list[str]:
    """Labels as given, or position-prefixed when some repeat: a category axis merges equal labels
    (a caption with two "a" would lose a row)."""
    labels = [str(lab) for lab in labels]
    if len(set(labels)) == len(labels):
        return labels
    return [f"{j} {lab}" for j, lab in enumerate(labels)]


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    """Title, height and margins; transparent backgrounds so the figure sits on the light or dark page."""
    fig.update_layout(title=dict(text=title, x=0, font=dict(size=15)), height=height, font=_FONT,
                      margin=dict(l=10, r=10, t=40, b=10),
                      paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")
    return fig


def attention_matrix(matrix: np.ndarray, rows: Sequence[str], cols: Sequence[str], *, title: str,
                     zmin: float | None = None, zmax: float | None = None, cmap: str = "inferno",
                     zmid: float | None = None, row_axis: str = "word", col_axis: str = "region",
                     height: int | None = None) -> go.Figure:
    """A ``[rows, cols]`` attention map (e.g. words × regions) with labelled axes and hover values.

    Pass the same ``zmin``/``zmax`` to several matrices to compare them on one colour scale.
    """
    m = np.asarray(matrix, dtype=np.float64)  # [Q, K]
    fig = go.Figure(go.Heatmap(
        z=m, x=[str(c) for c in cols], y=unique_labels(rows), zmin=zmin, zmax=zmax, zmid=zmid,
        colorscale=colorscale(cmap), colorbar=dict(thickness=12),
        hovertemplate=f"{row_axis} %{{y}}<br>{col_axis} %{{x}}<br>value %{{z:.4f}}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category", title=row_axis, automargin=True)
    # Slanted column labels when they would touch side by side (many columns, or long labels like "r0 (whole)").
    slant = len(cols) > 12 or max([len(str(c)) for c in cols] or [0]) * len(cols) > 48
    fig.update_xaxes(type="category", title=col_axis, automargin=True, tickangle=-45 if slant else 0)
    return _layout(fig, title, height or max(260, 60 + 24 * len(rows)))


def _panel_spacing(ends: Sequence[bool], gap: float, room: float, room_after_last: bool
                   ) -> tuple[list[list[float]], dict[int, float]]:
    """Side-by-side panels in paper coordinates: each panel's ``[x0, x1]`` domain and, for each panel that ends a
    group (``ends[k]``), where that group's colour bar starts (``gap`` between the panels of a group, ``room`` for a
    bar after its group; the last group's bar in the figure's right margin unless ``room_after_last``)."""
    n, groups = len(ends), sum(ends)
    width = (1.0 - room * (groups - (0 if room_after_last else 1)) - gap * (n - groups)) / n
    domains, bars, x0 = [], {}, 0.0
    for k, end in enumerate(ends):
        domains.append([x0, x0 + width])
        x0 += width
        if end:
            bars[k] = x0 + 0.005
        x0 += room if end else gap
    return domains, bars


def attention_panels(panels: Sequence[tuple[str, np.ndarray, float, float, str]], rows: Sequence[str],
                     cols: Sequence[str], *, bars: Sequence[str], row_axis: str = "word",
                     col_axis: str = "region", height: int | None = None) -> go.Figure:
    """Several ``[rows, cols]`` maps side by side in ONE figure, sharing the row axis (labelled once).

    ``panels``: ``(title, matrix, zmin, zmax, cmap)``; panels with the same ``(zmin, zmax, cmap)`` share one
    colour axis and its bar, drawn right after the last of them; ``bars``: each colour axis's title, in order
    of first use. One figure draws much faster in the browser than one per panel.
    """
    from plotly.subplots import make_subplots
    n = len(panels)
    scales: list[tuple] = []
    for _, _, lo, hi, cmap in panels:
        if (lo, hi, cmap) not in scales:
            scales.append((lo, hi, cmap))
    last = {sc: max(k for k, p in enumerate(panels) if tuple(p[2:]) == sc) for sc in scales}
    # Between two panels 0.015 of the width; beside a colour bar (its ticks and title) 0.13.
    domains, bar_x = _panel_spacing([last[tuple(p[2:])] == k for k, p in enumerate(panels)], 0.015, 0.13, True)
    fig = make_subplots(rows=1, cols=n, shared_yaxes=True, subplot_titles=[p[0] for p in panels])
    ylabels, xlabels = unique_labels(rows), [str(c) for c in cols]
    slant = len(cols) > 6 or max([len(c) for c in xlabels] or [0]) * len(cols) > 24
    for k, (title, matrix, lo, hi, cmap) in enumerate(panels):
        i = scales.index((lo, hi, cmap))
        axis = "coloraxis" if i == 0 else f"coloraxis{i + 1}"
        fig.add_trace(go.Heatmap(
            z=np.asarray(matrix, dtype=np.float64), x=xlabels, y=ylabels, coloraxis=axis,
            hovertemplate=f"{title}<br>{row_axis} %{{y}}<br>{col_axis} %{{x}}<br>value %{{z:.4f}}<extra></extra>"),
            row=1, col=k + 1)
        fig.update_xaxes(domain=domains[k], type="category", title=col_axis, automargin=True,
                         tickangle=-45 if slant else 0, row=1, col=k + 1)
        if k in bar_x:
            fig.update_layout({axis: dict(cmin=lo, cmax=hi, colorscale=colorscale(cmap),
                                          colorbar=dict(x=bar_x[k], xanchor="left", thickness=12, len=0.9,
                                                        title=dict(text=bars[i], side="right")))})
    fig.update_yaxes(autorange="reversed", type="category", automargin=True)
    fig.update_yaxes(title=row_axis, row=1, col=1)
    for k in range(2, n + 1):  # the shared word axis is labelled once, on the first panel
        fig.update_yaxes(ticks="", showticklabels=False, row=1, col=k)
    fig.update_annotations(font=dict(size=14), xanchor="left")
    for k, ann in enumerate(fig.layout.annotations):  # each panel's title at its panel's left edge
        ann.update(x=fig.layout[f"xaxis{k + 1 if k else ''}"].domain[0])
    return _layout(fig, "", height or max(340, 140 + 26 * len(rows)))  # room for the slanted region labels


def effect_bars(labels: Sequence[str], values: np.ndarray, *, title: str, axis: str,
                low: np.ndarray | None = None, high: np.ndarray | None = None,
                highlight: int | None = None, xrange: Sequence[float] | None = None,
                digits: int = 4) -> go.Figure:
    """Horizontal bars of per-item effects (positive: the item's attention helps the match).

    NaN values (padding) get no bar. ``xrange=(lo, hi)`` fixes the effect axis (pass the same range to
    several charts to compare them, see :func:`shared_range`); ``digits``: decimals on hover.
    """
    v = np.asarray(values, dtype=np.float64)  # [N]
    colors = [EFFECT_COLORS["negative"] if x < 0 else EFFECT_COLORS["positive"] for x in v]
    if highlight is not None and 0 <= highlight < len(colors):
        colors[highlight] = "#f39c12"
    err = None
    if low is not None and high is not None:
        err = dict(type="data", symmetric=False, array=np.asarray(high) - v, arrayminus=v - np.asarray(low))
    fig = go.Figure(go.Bar(x=v, y=unique_labels(labels), orientation="h", marker_color=colors,
                           error_x=err, hovertemplate=f"{axis} %{{y}}<br>effect %{{x:.{digits}f}}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category", title=axis, automargin=True)
    fig.update_xaxes(title="effect on the score", zeroline=True, zerolinecolor=NEUTRAL, range=xrange)
    return _layout(fig, title, max(240, 60 + 22 * len(labels)))


def effect_histogram(groups: dict[str, np.ndarray], *, title: str, nbins: int = 40) -> go.Figure:
    """Overlaid histograms of effects, one trace per group (e.g. matching / non-matching pairs)."""
    fig = go.Figure()
    for name, values in groups.items():
        fig.add_trace(go.Histogram(x=np.asarray(values, dtype=np.float64), name=name, opacity=0.6,
                                   nbinsx=nbins, histnorm="probability density"))
    fig.update_layout(barmode="overlay", legend=dict(orientation="h", y=1.02, x=1, xanchor="right"))
    fig.update_xaxes(title="effect  S(α) − E[S(ᾱ)]")
    fig.update_yaxes(title="density")
    return _layout(fig, title, 340)


def grouped_bars(categories: Sequence[str], series: dict[str, Sequence[float]], *, title: str,
                 axis: str, reference: tuple[str, float] | None = None) -> go.Figure:
    """Vertical grouped bars: one group per category, one bar per series (e.g. per checkpoint).

    ``reference=(name, value)`` draws a dashed horizontal line (e.g. chance level).
    """
    fig = go.Figure([go.Bar(x=list(categories), y=list(vals), name=name, text=[f"{v:.1f}" for v in vals],
                            textposition="outside") for name, vals in series.items()])
    if reference is not None:  # named in the legend: a label on the line would sit under the bars
        fig.add_hline(y=reference[1], line_dash="dash", line_color=NEUTRAL)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"{reference[0]} {reference[1]:.1f}",
                                 line=dict(dash="dash", color=NEUTRAL), hoverinfo="skip"))
    # Legend above the plot area and 15 % head-room, so the value labels above the bars are never cut.
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=1.12, x=1, xanchor="right"))
    top = max([float(v) for vals in series.values() for v in vals if v == v] or [1.0])
    fig.update_yaxes(title=axis, range=[0, top * 1.15])
    return _layout(fig, title, 340)


def shared_range(*arrays, pad: float = 0.06) -> tuple[float, float]:
    """One axis range ``(lo, hi)`` holding every finite value of ``arrays`` and 0, padded by ``pad`` of its
    span: give it to several charts so that equal lengths mean equal values (e.g. checkpoint A and B)."""
    vals = [np.asarray(a, dtype=np.float64).ravel() for a in arrays if a is not None]
    v = np.concatenate(vals + [np.zeros(1)])
    v = v[np.isfinite(v)]
    lo, hi = float(v.min()), float(v.max())
    span = (hi - lo) or 1.0
    return lo - pad * span, hi + pad * span


def _spread(ys: list[float], gap: float) -> list[float]:
    """Label positions (log10 of the rank) at least ``gap`` apart: in rank order, each label stays at its
    point or moves down just enough to clear the one above it, so the best ranks' labels sit exactly at
    their points and the order of the ranks is kept."""
    order = sorted(range(len(ys)), key=lambda j: ys[j])
    placed = [0.0] * len(ys)
    last = -math.inf
    for j in order:
        last = placed[j] = max(ys[j], last + gap)
    return placed


def _rank_ticks(top: float, min_gap: float = 0.0) -> list[int]:
    """1, 2, 3, 5, 10, 20, 50, … up to ``top``, leaving out a tick closer than ``min_gap`` (log10 units)
    to the one above it, so the tick labels never touch."""
    ticks, base = [], 1
    while base <= top:
        for t in ((1, 2, 3, 5) if base == 1 else (1, 2, 5)):
            if t * base <= top and (not ticks or math.log10(t * base) - math.log10(ticks[-1]) >= min_gap):
                ticks.append(t * base)
        base *= 10
    return ticks


def rank_moves(labels: Sequence[str], before: Sequence[int], after: Sequence[int], *, title: str,
               before_label: str = "factual", after_label: str = "counterfactual",
               true: Sequence[bool] | None = None, height: int | None = None) -> go.Figure:
    """A slope chart: each item's 1-based rank under factual (left) and counterfactual (right) attention.

    The rank axis is logarithmic (1 at the top), so the top of the list is spread out and a fall from
    rank 3 to 300 still fits. Every item is labelled on the left; on the right only the items whose rank
    changed (an unchanged item's line is flat, its left label names it). Labels never overlap: a label
    that would collide moves down and a thin line joins it to its point. Line colours (rose / fell /
    unchanged under the counterfactual) are in the legend; hover gives both ranks; ``true`` marks the
    true item(s) with a thick line and a bold label. ``before_label`` / ``after_label`` name the two
    columns (e.g. the number of draws).
    """
    labels = [str(lab) for lab in labels]
    a = np.asarray(before, dtype=np.float64).reshape(-1)  # [N] 1-based ranks
    b = np.asarray(after, dtype=np.float64).reshape(-1)   # [N]
    is_true = [bool(t) for t in true] if true is not None else [False] * len(labels)
    n = len(labels)
    height = height or int(max(420, 120 + 20 * n))
    plot_px = height - 110                                 # top margin + legend, bottom margin
    top = max(float(np.max(a)) if n else 1.0, float(np.max(b)) if n else 1.0, 1.0)
    lo = math.log10(0.7)                                   # head-room above rank 1
    hi = math.log10(top * 1.25)
    right = [j for j in range(n) if a[j] != b[j]]
    for _ in range(3):  # labels pushed past the bottom widen the axis, which changes the gap: settle it
        gap = 16.0 / (plot_px / (hi - lo))                 # 16 px between label centres, in log10 units
        left_y = _spread([math.log10(v) for v in a], gap)
        right_y = _spread([math.log10(b[j]) for j in right], gap)
        hi = max([hi] + [y + gap for y in left_y + right_y])
    fig = go.Figure()
    kinds = ["rose" if b[j] < a[j] else ("fell" if b[j] > a[j] else "unchanged") for j in range(n)]
    names = {"rose": "rose under the counterfactual", "fell": "fell under the counterfactual",
             "unchanged": "unchanged"}
    for j in range(n):
        kind = kinds[j]
        fig.add_trace(go.Scatter(
            x=[0, 1], y=[a[j], b[j]], mode="lines+markers", legendgroup=kind, showlegend=False,
            line=dict(color=MOVE_COLORS[kind], width=4 if is_true[j] else 2), marker=dict(size=9 if is_true[j] else 6),
            hovertemplate=(f"{labels[j]}{' (true)' if is_true[j] else ''}<br>rank {int(a[j])} → {int(b[j])}"
                           "<extra></extra>")))
    # The legend: one entry per line colour present (drawn apart, so a thick true line never styles it).
    for kind in ("rose", "fell", "unchanged"):
        if kind in kinds:
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines+markers", name=names[kind], legendgroup=kind,
                                     line=dict(color=MOVE_COLORS[kind], width=2), hoverinfo="skip"))
    if any(is_true):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="true item (thick line, ✓)",
                                 line=dict(color=NEUTRAL, width=4), hoverinfo="skip"))

    def _text(j: int) -> str:
        return f"<b>{labels[j]} ✓</b>" if is_true[j] else labels[j]

    sides = ((list(range(n)), left_y, 0.0, -0.05, "middle left", a), (right, right_y, 1.0, 1.05, "middle right", b))
    for items, ys, x_point, x_text, where, ranks in sides:
        if not items:
            continue
        fig.add_trace(go.Scatter(x=[x_text] * len(items), y=[10 ** y for y in ys], mode="text",
                                 text=[_text(j) for j in items], textposition=where, showlegend=False,
                                 hoverinfo="skip", textfont=dict(size=12)))
        cx: list = []
        cy: list = []
        for j, y in zip(items, ys):
            if abs(y - math.log10(ranks[j])) > 1e-9:
                cx += [x_point, x_text, None]
                cy += [ranks[j], 10 ** y, None]
        if cx:
            fig.add_trace(go.Scatter(x=cx, y=cy, mode="lines", line=dict(color=NEUTRAL, width=1),
                                     showlegend=False, hoverinfo="skip"))
    fig.update_xaxes(range=[-0.75, 1.75], tickvals=[0, 1], ticktext=[before_label, after_label],
                     showgrid=False, zeroline=False)
    fig.update_yaxes(type="log", range=[hi, lo], tickvals=_rank_ticks(top, gap), title="rank (1 = best, log scale)",
                     zeroline=False)
    _layout(fig, title, height)
    fig.update_layout(legend=dict(orientation="h", y=1.0, yanchor="bottom", x=0, xanchor="left"),
                      margin=dict(l=10, r=10, t=70, b=40))
    return fig


def _image_source(rgb: np.ndarray) -> str:
    """An RGB array as a PNG data URI (compact in the figure's JSON, unlike a pixel array)."""
    import base64

    from components.images import png_bytes
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode("ascii")


def overlay_panels(images: Sequence[np.ndarray], titles: Sequence[str], *, vmin: float, vmax: float,
                   cmap: str = "inferno", bar_title: str = "", hover: Sequence[Sequence[tuple]] | None = None,
                   height: int = 300, then: dict | None = None) -> go.Figure:
    """Image overlays side by side with ONE colour bar drawn as a chart axis (round ticks, readable labels).

    ``images``: RGB ``[H, W, 3]`` arrays already coloured on the scale ``[vmin, vmax]`` with ``cmap``
    (``causmatch.analysis.heatmaps``); the bar shows that scale. ``hover``: per image, ``(x, y, text)``
    points (e.g. each box's centre and its value) shown when the pointer is over them. ``then``: more panels
    on another scale in the same figure, right of the first ones' bar, with their own bar — a dict with the
    keys ``images``, ``titles``, ``vmin``, ``vmax`` and optionally ``cmap``, ``bar_title``, ``hover`` (one
    figure draws much faster in the browser than two).
    """
    from plotly.subplots import make_subplots

    from causmatch.analysis.heatmaps import ticks
    groups = [dict(images=images, titles=titles, vmin=vmin, vmax=vmax, cmap=cmap, bar_title=bar_title,
                   hover=hover)] + ([{"cmap": "inferno", "bar_title": "", "hover": None, **then}] if then else [])
    n = sum(len(g["images"]) for g in groups)
    fig = make_subplots(rows=1, cols=n, subplot_titles=[t for g in groups for t in g["titles"]],
                        horizontal_spacing=0.02)
    # Several groups: 0.02 of the width between panels, 0.16 for a bar after its group (the last one's in the margin).
    ends = [j == len(g["images"]) - 1 for g in groups for j in range(len(g["images"]))]
    domains, bar_x = _panel_spacing(ends, 0.02, 0.16, False)
    k = 0
    for i, g in enumerate(groups):
        axis = "coloraxis" if i == 0 else f"coloraxis{i + 1}"
        for j, rgb in enumerate(g["images"]):
            h, w = np.asarray(rgb).shape[:2]
            fig.add_trace(go.Image(source=_image_source(rgb), hoverinfo="skip"), row=1, col=k + 1)
            points = list(g["hover"][j]) if g["hover"] is not None else []
            if points:
                xs, ys, texts = zip(*points)
                fig.add_trace(go.Scatter(x=xs, y=ys, text=texts, mode="markers", marker=dict(size=14, opacity=0),
                                         hovertemplate="%{text}<extra></extra>", showlegend=False),
                              row=1, col=k + 1)
            fig.update_xaxes(visible=False, range=[0, w], row=1, col=k + 1,
                             **(dict(domain=domains[k]) if then else {}))
            fig.update_yaxes(visible=False, range=[h, 0], scaleanchor=f"x{k + 1 if k else ''}", row=1, col=k + 1)
            k += 1
        values, labels = ticks(g["vmin"], g["vmax"], n=5)
        # The colour bar: an invisible marker trace carrying the group's colour axis.
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
                                 marker=dict(coloraxis=axis, color=[g["vmin"], g["vmax"]])), row=1, col=k)
        bar = dict(title=dict(text=g["bar_title"], side="right"), tickvals=values, ticktext=labels, thickness=14,
                   len=0.9, tickfont=dict(size=12), outlinewidth=0)
        if then:  # right after the group's last panel (the last group's: at the figure's right edge)
            bar.update(x=bar_x[k - 1], xanchor="left")
        fig.update_layout({axis: dict(cmin=g["vmin"], cmax=g["vmax"], colorscale=colorscale(g["cmap"]),
                                      colorbar=bar)})
    fig.update_annotations(font=dict(size=13))
    fig.update_layout(height=height, font=_FONT, margin=dict(l=4, r=4, t=28, b=4),
                      paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)")
    return fig


def mark_rows(fig: go.Figure, rows: Sequence[int], *, note: str | None = "unknown word",
              panels: int = 1) -> go.Figure:
    """Grey out rows of a matrix figure (category axis, one row per position) with a dotted frame,
    e.g. the words a model's vocabulary does not know; the row labels should say why. ``panels``: how many
    side-by-side panels (:func:`attention_panels`) to mark."""
    for k in range(panels):
        x, y = ("x", "y") if k == 0 else (f"x{k + 1}", f"y{k + 1}")
        for j in rows:
            fig.add_shape(type="rect", xref=f"{x} domain", x0=0, x1=1, yref=y, y0=j - 0.5, y1=j + 0.5,
                          fillcolor="rgba(128,128,128,0.55)", line=dict(color=NEUTRAL, width=1.5, dash="dot"),
                          layer="above")
    if rows and note:  # side-by-side panels: say it in the caption (under the plot it meets the tick labels)
        fig.add_annotation(text=f"grey rows: {note}", xref="paper", yref="paper", x=1, y=-0.02, xanchor="right",
                           yanchor="top", showarrow=False, font=dict(size=12))
    return fig


def score_curves(curves: dict[str, tuple[np.ndarray, np.ndarray, str]], *, title: str, axis: str,
                 reference: float | None = None, yrange: tuple[float, float] | None = None,
                 height: int = 340) -> go.Figure:
    """Score curves on one pair of axes: ``{name: (fraction [S], scores [S], hover note)}``; the first
    is drawn solid, the others (baselines) dashed; ``reference`` (the pair's score with every region) is a
    dotted line named in the legend; ``yrange``: one score axis for several charts."""
    fig = go.Figure()
    for k, (name, (x, y, note)) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=np.asarray(x, np.float64), y=np.asarray(y, np.float64), name=name,
                                 mode="lines+markers", line=dict(dash="solid" if k == 0 else "dash"),
                                 hovertemplate=f"{name}<br>{axis} %{{x:.0%}}<br>score %{{y:.4f}}<br>{note}"
                                               "<extra></extra>"))
    if reference is not None:
        fig.add_trace(go.Scatter(x=[0, 1], y=[reference, reference], mode="lines", name=f"every region: S(α) "
                                 f"{reference:.4f}", line=dict(dash="dot", color=NEUTRAL), hoverinfo="skip"))
    fig.update_xaxes(title=axis, range=[-0.02, 1.02], tickformat=".0%", dtick=0.25)
    fig.update_yaxes(title="pair score", range=list(yrange) if yrange is not None else None)
    fig.update_layout(legend=dict(orientation="h", y=-0.28, x=0))
    return _layout(fig, title, height)
