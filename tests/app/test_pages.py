"""Overview, Explore a pair and Retrieval under AppTest: widgets set by key, assertions on the data shown."""
from __future__ import annotations

import pytest

from tests.app.apptest_helpers import metric, no_failure


def test_overview_shows_recall_for_both_checkpoints(make_app, assets):
    at = make_app()
    no_failure(at)
    assert [t.value for t in at.title] == ["Overview"]
    assert metric(at, "Images") == "12" and metric(at, "Captions") == "60"
    df = at.dataframe[0].value
    assert list(df["attention"]) == ["factual", "factual"]  # counterfactual matrices are opt-in
    at.segmented_control(key="w_cf").set_value("sidebar").run()
    no_failure(at)
    df = at.dataframe[0].value
    assert list(df["attention"]) == ["factual", "random", "factual", "random"]
    assert df["checkpoint"].str.startswith("A:").sum() == 2
    assert ((df["t2i_r10"] >= df["t2i_r5"]) & (df["t2i_r5"] >= df["t2i_r1"])).all()
    at.segmented_control(key="w_cf").set_value("all").run()
    no_failure(at)
    df = at.dataframe[0].value
    assert set(df["attention"]) == {"factual", "random", "uniform", "reversed", "shuffle"}
    assert len(df) == 10


def test_overview_grounding_and_effects(make_app):
    at = make_app()
    at.segmented_control(key="w_cf").set_value("sidebar").run()
    no_failure(at)
    import math
    import re
    captions = [c.value for c in at.caption]
    effects = [re.fullmatch(r"Mean effect: matching ([-+]\d+\.\d{4}) · all non-matching ([-+]\d+\.\d{4})", c)
               for c in captions]
    effects = [tuple(float(x) for x in m.groups()) for m in effects if m]
    assert len(effects) == 2 and all(math.isfinite(x) for pair in effects for x in pair), captions  # one per model
    chance = [re.fullmatch(r"Chance \(a valid region picked at random\): (\d+\.\d)%\.", c) for c in captions]
    chance = [float(m.group(1)) for m in chance if m]
    assert len(chance) == 1 and 0 < chance[0] < 100, captions


def test_explore_pair_word_and_intervention(make_app):
    at = make_app("explore")
    no_failure(at)
    at.number_input(key="w_image").set_value(3).run()
    no_failure(at)
    assert at.selectbox(key="w_caption").value == 15  # image 3's first caption
    assert any("“a yellow square next to a red bar”" in c.value for c in at.caption)
    before = metric(at, "Counterfactual S(ᾱ)")
    at.selectbox(key="w_iv").set_value("uniform").run()
    no_failure(at)
    assert any("intervention: uniform" in c.value for c in at.caption)
    assert metric(at, "Counterfactual S(ᾱ)") != before
    at.selectbox(key="w_word").set_value(2).run()
    no_failure(at)
    assert at.query_params["word"] in ("2", ["2"])
    effect = float(metric(at, "Effect"))
    score, cf = float(metric(at, "Score S(α)")), float(metric(at, "Counterfactual S(ᾱ)"))
    assert effect == pytest.approx(score - cf, abs=2e-4)
    assert not [d for d in at.dataframe if "counterfactual" in d.value.columns]  # drawn only when opened
    at.session_state["ex_kinds_open"] = True
    at.run()
    no_failure(at)
    kinds = next(d for d in at.dataframe if "counterfactual" in d.value.columns).value.set_index("counterfactual")
    assert list(kinds.index) == ["random", "uniform", "reversed", "shuffle"]
    assert kinds.loc["uniform", "effect"] == pytest.approx(effect, abs=2e-4)  # same pair, same kind


def test_explore_free_text_flags_unknown_words(make_app):
    at = make_app("explore")
    at.text_input(key="w_text").set_value("a red zebra next to a blue square").run()
    no_failure(at)
    assert any("zebra" in w.value for w in at.warning)


def test_explore_targeted_intervention_needs_targets(make_app):
    at = make_app("explore")
    at.selectbox(key="w_iv").set_value("mask-regions").run()
    assert any("Pick at least one target" in c.value for c in at.sidebar.caption)
    at.multiselect(key="w_targets_list").set_value([0, 1]).run()
    no_failure(at)
    from causmatch.interventions import parse_intervention  # the page names the intervention it ran, targets too
    ran = f"intervention: {parse_intervention('mask-regions=0,1').describe()}"
    assert any(c.value.endswith(ran) for c in at.caption), [c.value for c in at.caption]
    assert at.query_params["targets"] in ("0,1", ["0,1"])


def test_retrieval_caption_and_image_queries(make_app):
    at = make_app("retrieval", caption=7)
    no_failure(at)
    assert any("true image 1" in m.value for m in at.markdown)
    rank = int(metric(at, "True item's rank, factual"))
    assert 1 <= rank <= 12
    table = at.dataframe[0].value
    assert len(table) == 5 and list(table["position"]) == [1, 2, 3, 4, 5]
    at.segmented_control(key="w_dir").set_value("i2t").run()
    no_failure(at)
    at.number_input(key="w_image").set_value(2).run()
    no_failure(at)
    table = at.dataframe[0].value
    assert "caption" in table.columns and len(table) == 5
