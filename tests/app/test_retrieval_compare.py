"""Retrieval and Compare under AppTest: themed charts, the movement chart's axis and legend, shared scales."""
from __future__ import annotations

import base64
import json

import numpy as np

from components import help
from tests.app.apptest_helpers import no_failure, shown


def _charts(at) -> dict:
    """{widget key suffix: (plotly spec, theme)} of the page's plotly charts."""
    out = {}
    for el in at.get("plotly_chart"):
        spec = json.loads(el.proto.spec)
        out[el.proto.id.rsplit("-", 1)[-1] if not el.key else el.key] = (spec, el.proto.theme)
    return out


def _values(v) -> np.ndarray:
    """A plotly JSON array: a list, or a typed array ``{"dtype", "bdata"}`` (base64)."""
    if isinstance(v, dict):
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]).astype(np.float64)
    return np.asarray(v, dtype=np.float64)


def _captions(at) -> list[str]:
    return [shown(c.value) for c in at.caption]


def test_retrieval_movement_chart_log_axis_legend_and_draws(make_app):
    at = make_app("retrieval", caption=7, samples=6)
    no_failure(at)
    charts = list(_charts(at).values())
    assert charts and all(theme == "streamlit" for _, theme in charts)  # follows the light/dark theme
    spec = next(s for s, _ in charts if s["layout"].get("yaxis", {}).get("type") == "log")
    assert spec["layout"]["xaxis"]["ticktext"] == ["rank under α", "rank under ᾱ (random, mean of 6 draws, seed 0)"]
    names = {tr.get("name") for tr in spec["data"] if tr.get("showlegend") is not False and tr.get("name")}
    assert names <= {"rose under the counterfactual", "fell under the counterfactual", "unchanged",
                     "true item (thick line, ✓)"} and names
    assert any(m.label == "… rank under ᾱ (random, mean of 6 draws, seed 0)" for m in at.metric)
    assert any(e.label == help.LABEL for e in at.expander)
    assert any("framed in green" in c for c in _captions(at))  # caption query over images: the truth is framed
    table = at.dataframe[0]
    assert list(table.value.columns[:2]) == ["position", "item"]  # the library's names for the CSV


def test_retrieval_image_query_has_no_green_frame_note(make_app):
    at = make_app("retrieval", dir="i2t", image=2, iv="uniform")
    no_failure(at)
    assert not any("framed in green" in c for c in _captions(at))
    assert any("true caption" in c for c in _captions(at))
    # A deterministic counterfactual has one draw: its rank is not called a mean.
    assert any(m.label == "… rank under ᾱ (uniform, 1 draw)" for m in at.metric)


def test_compare_shares_scales_and_decimals(make_app):
    at = make_app("compare", image=4)
    no_failure(at)
    charts = _charts(at)
    assert charts and all(theme == "streamlit" for _, theme in charts.values())
    bars = [s for s, _ in charts.values() if s["data"] and s["data"][0].get("type") == "bar"]
    assert len(bars) == 2 and bars[0]["layout"]["xaxis"]["range"] == bars[1]["layout"]["xaxis"]["range"]
    lo, hi = bars[0]["layout"]["xaxis"]["range"]
    for s in bars:  # every effect of both checkpoints inside the one range
        x = _values(s["data"][0]["x"])
        assert x.size and (x[np.isfinite(x)] >= lo).all() and (x[np.isfinite(x)] <= hi).all()
    heat = [s for s, _ in charts.values() if s["data"] and s["data"][0].get("type") == "heatmap"]
    assert len(heat) == 2 and heat[0]["data"][0]["zmax"] == heat[1]["data"][0]["zmax"]
    overlays = [s for s, _ in charts.values() if s["layout"].get("coloraxis")]
    assert len(overlays) == 2
    assert overlays[0]["layout"]["coloraxis"]["cmax"] == overlays[1]["layout"]["coloraxis"]["cmax"]
    for m in at.metric:  # scores and effects with 4 decimals in both columns
        if m.label in ("Score S(α)", "Counterfactual S(ᾱ)", "Effect"):
            assert len(m.value.split(".")[1]) == 4, (m.label, m.value)
    assert any(c.startswith("Shared scales: the overlays and word × region matrices of both checkpoints")
               for c in _captions(at))
    assert any(e.label == help.LABEL for e in at.expander)
    ranks = at.dataframe[0].value
    assert list(ranks.columns) == ["checkpoint", "query", "rank under α",
                                   "rank under ᾱ (random, mean of 8 draws, seed 0)", "S(α) of the true item"]


def test_compare_opens_on_the_word_where_the_checkpoints_differ(make_app):
    at = make_app("compare", image=4)
    no_failure(at)
    picker = at.selectbox(key="w_cword")
    assert picker.value == -1
    label = picker.format_func(-1)
    word = int(label.split(" · ")[0])
    assert "differs most" in label and label.split(" · ")[1].split(" — ")[0] != "a"
    assert f"“{picker.format_func(word).split(' · ')[1]}”" in json.dumps(
        [json.loads(el.proto.spec)["layout"].get("annotations", []) for el in at.get("plotly_chart")],
        ensure_ascii=False)  # the overlays show that word
    picker.set_value(0).run()
    assert at.query_params["cword"] in ("0", ["0"])
    at.number_input(key="w_image").set_value(5).run()  # another pair: the word goes back to the telling one
    no_failure(at)
    assert at.selectbox(key="w_cword").value == -1
