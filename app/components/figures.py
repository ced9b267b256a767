"""Plotly figures built from arrays the analysis computed (no maths beyond layout).

Plotly heatmaps do not report clicks in Streamlit, so every figure here is for reading
(hover shows the values); selections are made with widgets next to them.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

_FONT = dict(size=13)


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
    fig.update_layout(title=dict(text=title, x=0, font=dict(size=15)), height=height, font=_FONT,
                      margin=dict(l=10, r=10, t=40, b=10))
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
    fig.update_xaxes(type="category", title=col_axis, automargin=True, tickangle=-45 if len(cols) > 12 else 0)
    return _layout(fig, title, height or max(260, 60 + 24 * len(rows)))


def effect_bars(labels: Sequence[str], values: np.ndarray, *, title: str, axis: str,
                low: np.ndarray | None = None, high: np.ndarray | None = None,
                highlight: int | None = None) -> go.Figure:
    """Horizontal bars of per-item effects (positive: the item's attention helps the match)."""
    v = np.asarray(values, dtype=np.float64)  # [N]
    colors = ["#c0392b" if x < 0 else "#2471a3" for x in v]
    if highlight is not None and 0 <= highlight < len(colors):
        colors[highlight] = "#f39c12"
    err = None
    if low is not None and high is not None:
        err = dict(type="data", symmetric=False, array=np.asarray(high) - v, arrayminus=v - np.asarray(low))
    fig = go.Figure(go.Bar(x=v, y=unique_labels(labels), orientation="h", marker_color=colors,
                           error_x=err, hovertemplate=f"{axis} %{{y}}<br>effect %{{x:.4f}}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", type="category", title=axis, automargin=True)
    fig.update_xaxes(title="effect on the score", zeroline=True, zerolinecolor="#555")
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
    if reference is not None:
        fig.add_hline(y=reference[1], line_dash="dash", line_color="#555",
                      annotation_text=f"{reference[0]} {reference[1]:.1f}", annotation_position="top left")
    # Legend above the plot area and 15 % head-room, so the value labels above the bars are never cut.
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=1.12, x=1, xanchor="right"))
    top = max([float(v) for vals in series.values() for v in vals if v == v] or [1.0])
    fig.update_yaxes(title=axis, range=[0, top * 1.15])
    return _layout(fig, title, 340)


def rank_moves(labels: Sequence[str], before: Sequence[int], after: Sequence[int], *, title: str) -> go.Figure:
    """A slope chart: each item's rank under factual (left) and counterfactual (right) attention."""
    fig = go.Figure()
    for name, a, b in zip(labels, before, after):
        color = "#2471a3" if b < a else ("#c0392b" if b > a else "#7f8c8d")
        fig.add_trace(go.Scatter(x=["factual", "counterfactual"], y=[a, b], mode="lines+markers+text",
                                 text=[str(name), ""], textposition="middle left", line=dict(color=color),
                                 showlegend=False, hovertemplate=f"{name}<br>rank %{{y}}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="rank (1 = best)")
    return _layout(fig, title, max(300, 40 + 26 * len(labels)))
