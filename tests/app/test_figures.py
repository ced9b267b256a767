"""Chart builders: theme-neutral layout, the rank-move chart's log axis, legend and labels, shared ranges."""
from __future__ import annotations

import math

import numpy as np
import pytest

from components import figures


def _builders():
    m = np.arange(6.0).reshape(2, 3)
    return [
        figures.attention_matrix(m, ["a", "b"], ["r0", "r1", "r2"], title="t"),
        figures.effect_bars(["a", "b"], np.array([0.1, -0.2]), title="t", axis="word"),
        figures.effect_histogram({"matching": np.array([0.1, 0.2])}, title="t"),
        figures.grouped_bars(["x"], {"A": [50.0]}, title="t", axis="%", reference=("chance", 10.0)),
        figures.rank_moves(["img 1", "img 2"], [1, 2], [2, 1], title="t"),
    ]


@pytest.mark.parametrize("fig", _builders())
def test_every_builder_leaves_the_background_to_the_theme(fig):
    # Transparent panels: the app's light or dark background shows through (no white panel in dark mode).
    assert fig.layout.paper_bgcolor == "rgba(0,0,0,0)" and fig.layout.plot_bgcolor == "rgba(0,0,0,0)"
    assert "#555" not in fig.to_json()  # no fixed dark-grey line that disappears on a dark page


def test_show_draws_with_the_streamlit_theme():
    from streamlit.testing.v1 import AppTest

    def page():
        import numpy as np

        from components import figures
        figures.show(figures.effect_bars(["a"], np.array([0.5]), title="t", axis="word"), key="k")

    at = AppTest.from_function(page).run()
    assert not at.exception
    chart = at.get("plotly_chart")[0]
    assert chart.proto.theme == figures.THEME == "streamlit"


def _labels(fig, x_text):
    """{label: y} of the text trace at ``x_text`` (left -0.05, right 1.05)."""
    for tr in fig.data:
        if tr.mode == "text" and tr.x[0] == x_text:
            return dict(zip([t.replace("<b>", "").replace("</b>", "") for t in tr.text], tr.y))
    return {}


def test_rank_moves_log_axis_legend_and_labels():
    labels = [f"img {i}" for i in range(10)]
    before = list(range(1, 11))
    after = [2, 1, 3, 9, 14, 4, 5, 300, 7, 6]
    fig = figures.rank_moves(labels, before, after, title="t", before_label="rank under α",
                             after_label="rank under ᾱ (mean of 8 draws)", true=[i == 2 for i in range(10)])
    y = fig.layout.yaxis
    assert y.type == "log" and y.range[0] > y.range[1]  # log scale, rank 1 at the top
    assert y.range[1] < 0 and 10 ** y.range[0] >= 300      # 1 and the rank 300 both inside
    assert list(fig.layout.xaxis.ticktext) == ["rank under α", "rank under ᾱ (mean of 8 draws)"]
    legend = [tr.name for tr in fig.data if tr.showlegend is not False and tr.name]
    assert legend == ["rose under the counterfactual", "fell under the counterfactual", "unchanged",
                      "true item (thick line, ✓)"]
    left, right = _labels(fig, -0.05), _labels(fig, 1.05)
    assert len(left) == 10 and "img 2 ✓" in left            # every item named on the left, the true one marked
    assert set(right) == {f"img {i}" for i in (0, 1, 3, 4, 5, 6, 7, 8, 9)}  # only moved items on the right
    for side in (left, right):
        ys = sorted(math.log10(v) for v in side.values())
        gap = min(b - a for a, b in zip(ys, ys[1:]))
        px_per_decade = (fig.layout.height - 110) / (y.range[0] - y.range[1])
        assert gap * px_per_decade >= 15.9                    # labels at least 16 px apart: no overlap
    # The best ranks keep their labels exactly at their points (top-5 readable).
    assert left["img 0"] == 1 and left["img 1"] == 2
    assert right["img 1"] == 1 and right["img 0"] == 2


def test_rank_moves_colours_follow_the_move():
    fig = figures.rank_moves(["up", "down", "same"], [5, 1, 3], [1, 5, 3], title="t")
    lines = [tr for tr in fig.data if tr.mode == "lines+markers" and tr.showlegend is False]
    assert [tr.line.color for tr in lines] == [figures.MOVE_COLORS[k] for k in ("rose", "fell", "unchanged")]
    assert not _labels(fig, 1.05).keys() & {"same"}


def test_rank_moves_keeps_its_old_call():
    fig = figures.rank_moves(["a"], [1], [1], title="t")
    assert list(fig.layout.xaxis.ticktext) == ["factual", "counterfactual"]


def test_shared_range_holds_every_value_and_zero():
    lo, hi = figures.shared_range(np.array([0.1, 0.3]), np.array([np.nan, -0.05]), None)
    assert lo < -0.05 and hi > 0.3
    lo, hi = figures.shared_range(np.array([0.2, 0.4]))
    assert lo < 0 < 0.4 < hi  # zero always inside: a bar's length is its value
    fig = figures.effect_bars(["a"], np.array([0.1]), title="t", axis="w", xrange=(lo, hi), digits=4)
    assert tuple(fig.layout.xaxis.range) == (lo, hi) and ".4f" in fig.data[0].hovertemplate


def test_grouped_bars_name_the_reference_in_the_legend():
    fig = figures.grouped_bars(["colour"], {"A": [90.0]}, title="t", axis="%", reference=("chance", 20.8))
    assert "chance 20.8" in [tr.name for tr in fig.data] and not fig.layout.annotations


def test_rank_ticks_never_touch():
    assert figures._rank_ticks(300) == [1, 2, 3, 5, 10, 20, 50, 100, 200]
    assert figures._rank_ticks(300, min_gap=0.25) == [1, 2, 5, 10, 20, 50, 100, 200]
