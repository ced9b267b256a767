"""Explore a pair under AppTest: the whole-image region shown apart (and its toggle), one absolute scale for
every word, colour bars as chart axes, the deletion/insertion section, unknown words greyed, and a word
that does not carry over to another pair."""
from __future__ import annotations

import json
import math
import re

import state
from causmatch.analysis import links
from tests.app.apptest_helpers import no_failure, shown


def _figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _overlays(at) -> list[dict]:
    """The overlay figures (images with a colour axis): factual | counterfactual | difference."""
    return [f for f in _figures(at) if any(t.get("type") == "image" for t in f["data"])]


def _matrices(at) -> list[dict]:
    return [f for f in _figures(at) if any(t.get("type") == "heatmap" for t in f["data"])]


def _captions(at) -> list[str]:
    return [shown(c.value) for c in at.caption]


def test_the_whole_image_region_is_shown_apart_and_can_be_painted(make_app):
    at = make_app("explore", image=1, caption=5)  # the test data's whole-image box is r4, not r0
    no_failure(at)
    assert any(c.startswith("r4: the whole image") for c in _captions(at)), _captions(at)
    whole = [c for c in _captions(at) if c.startswith("Whole-image region")]
    assert len(whole) == 1 and "r4 (whole): factual " in whole[0] and "not painted" in whole[0]
    share = float(re.search(r"factual (\d\.\d{3})", whole[0]).group(1))
    assert 0 < share < 1
    for m in _matrices(at):
        assert "r4 (whole)" in m["data"][0]["x"] and "r0" in m["data"][0]["x"]
    assert not at.toggle(key="w_whole").value and "whole" not in at.query_params
    at.toggle(key="w_whole").set_value(True).run()
    no_failure(at)
    assert any(c.startswith("Whole-image region") and "painted too" in c for c in _captions(at))
    assert at.query_params["whole"] in ("1", ["1"])


def test_overlays_and_matrices_share_one_absolute_scale_for_every_word(make_app):
    at = make_app("explore", image=3, caption=15)
    no_failure(at)
    scales = []
    for word in (0, 2, 5):
        at.selectbox(key="w_word").set_value(word).run()
        no_failure(at)
        ov = _overlays(at)
        assert len(ov) == 1  # one figure: factual | counterfactual with one bar, the difference with its own
        axis = ov[0]["layout"]["coloraxis"]
        assert axis["cmin"] == 0
        bar = axis["colorbar"]
        assert all(not re.fullmatch(r"-0(\.0*)?", t) for t in bar["ticktext"]) and len(bar["ticktext"]) >= 2
        assert all(0 <= v <= axis["cmax"] + 1e-12 for v in bar["tickvals"])
        diff = ov[0]["layout"]["coloraxis2"]
        assert diff["cmin"] == -diff["cmax"] < 0
        scales.append(axis["cmax"])
    assert len(set(scales)) == 1  # the same scale whatever the word: a flat row looks flat
    top = f"{scales[0]:.3f}"
    assert any(f"Scale: 0 to {top}" in c for c in _captions(at))
    at.session_state["w_tab"] = "Matrices"  # the three matrices: one figure, the factual and counterfactual
    at.run()                                # panels on the overlays' scale, the difference on its own
    no_failure(at)
    [side] = _matrices(at)
    assert [t.get("coloraxis") for t in side["data"]] == ["coloraxis", "coloraxis", "coloraxis2"]
    shared, diff = side["layout"]["coloraxis"], side["layout"]["coloraxis2"]
    assert shared["cmin"] == 0 and math.isclose(shared["cmax"], scales[0], rel_tol=1e-9)
    assert diff["cmin"] == -diff["cmax"] < 0
    assert at.query_params["tab"] == "Matrices"


def test_deletion_and_insertion_curves_with_baselines(make_app):
    at = make_app("explore", image=2, caption=10, tab="Curves")
    no_failure(at)
    assert "Deletion and insertion" in [s.value for s in at.subheader]
    table = next(d.value for d in at.dataframe if "normalised area" in d.value.columns)
    assert sorted(set(table["curve"])) == ["deletion", "insertion"]
    assert set(table["order"]) == {"attention order", "counterfactual order", "random order"}
    assert table["normalised area"].map(math.isfinite).all() and len(table) == 6
    curves = [f for f in _figures(at) if f["layout"].get("title", {}).get("text") in ("Deletion", "Insertion")]
    assert len(curves) == 2 and all(len(f["data"]) == 4 for f in curves)  # one pair of axes: order, 2 baselines, S(α)
    assert any("Normalised area" in c for c in _captions(at))
    at.text_input(key="w_text").set_value("a red bar").run()
    no_failure(at)
    assert any("dataset's captions" in i.value for i in at.info)


def test_unknown_words_are_marked_in_the_matrix(make_app):
    at = make_app("explore", tab="Matrices")
    at.text_input(key="w_text").set_value("a red zebra next to a blue square").run()
    no_failure(at)
    assert any("zebra" in w.value and "greyed" in w.value for w in at.warning)
    [m] = _matrices(at)
    for trace in m["data"]:  # factual | counterfactual | difference
        rows = trace["y"]
        assert rows[2].endswith("⚠ zebra (unknown)") and rows[1].endswith("red")  # "2 ⚠ …" when words repeat
    grey = [s for s in m["layout"].get("shapes", []) if s.get("type") == "rect"]
    assert [(s["yref"], s["y0"], s["y1"]) for s in grey] == [(y, 1.5, 2.5) for y in ("y", "y2", "y3")]
    assert any("Grey rows: words the model does not know" in c for c in _captions(at))
    at.session_state["w_tab"] = "Words"
    at.run()
    assert "2 · zebra (unknown)" in at.selectbox(key="w_word").options


def test_the_word_does_not_carry_over_to_another_pair(make_app):
    at = make_app("explore", image=3, caption=15, word=4)
    no_failure(at)
    assert at.selectbox(key="w_word").value == 4  # a link's word for its own caption is kept
    at.selectbox(key="w_caption").set_value(16).run()
    no_failure(at)
    assert at.selectbox(key="w_word").value == 0 and "word" not in at.query_params
    at.selectbox(key="w_word").set_value(3).run()
    at.number_input(key="w_image").set_value(4).run()
    no_failure(at)
    assert at.selectbox(key="w_word").value == 0
    at.selectbox(key="w_word").set_value(3).run()
    at.text_input(key="w_text").set_value("a red bar").run()
    no_failure(at)
    assert at.selectbox(key="w_word").value == 0


def test_one_view_at_a_time_and_the_link_names_it(make_app):
    """Explore's views are tabs; only the open one is drawn (a pick redraws what is on screen), the link names it."""
    at = make_app("explore", image=2, caption=10)
    no_failure(at)
    assert [t.label for t in at.tabs] == list(links.EXPLORE_TABS)
    assert not _matrices(at) and "tab" not in at.query_params  # Words, the default: the link leaves it out
    assert not [d for d in at.dataframe if "normalised area" in d.value.columns]
    drawn = {"Matrices": "Factual | counterfactual | difference", "Regions": "One region → the words",
             "Curves": "Deletion and insertion"}
    for tab, heading in drawn.items():
        at.session_state[state.key("tab")] = tab
        at.run()
        no_failure(at)
        headers = [s.value for s in at.subheader]
        assert heading in headers and not [h for h in drawn.values() if h != heading and h in headers], headers
        assert at.query_params["tab"] == tab
    linked = make_app("explore", image=2, caption=10, tab="Regions")
    assert "One region → the words" in [s.value for s in linked.subheader]
    bad = make_app("explore", tab="Everything")
    no_failure(bad)
    assert any("tab" in w.value and "Everything" in w.value for w in bad.warning), [w.value for w in bad.warning]
    assert "Which words carry the match" in [s.value for s in bad.subheader]
