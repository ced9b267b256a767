"""Every page under AppTest: widgets set by key, assertions on the data shown."""
from __future__ import annotations

import pandas as pd
import pytest

from conftest import errors, no_failure


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_overview_shows_recall_for_both_checkpoints(make_app, assets):
    at = make_app()
    no_failure(at)
    assert [t.value for t in at.title] == ["Overview"]
    assert metric(at, "Images") == "12" and metric(at, "Captions") == "60"
    df = at.dataframe[0].value
    assert list(df["attention"]) == ["factual", "random", "factual", "random"]
    assert df["checkpoint"].str.startswith("A:").sum() == 2
    assert ((df["t2i_r10"] >= df["t2i_r5"]) & (df["t2i_r5"] >= df["t2i_r1"])).all()
    at.toggle(key="ov_all").set_value(True).run()
    no_failure(at)
    df = at.dataframe[0].value
    assert set(df["attention"]) == {"factual", "random", "uniform", "reversed", "shuffle"}
    assert len(df) == 10


def test_overview_grounding_and_effects(make_app):
    at = make_app()
    text = " ".join(c.value for c in at.caption)
    assert "Mean effect: matching" in text and "Chance" in text


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
    assert any("mask" in c.value.lower() for c in at.caption)
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


def test_failures_filters_and_sorting(make_app):
    at = make_app("failures")
    no_failure(at)
    df = at.dataframe[0].value
    assert (df["rank"] >= 2).all()
    at.number_input(key="w_rank_lo").set_value(1).run()
    full = at.dataframe[0].value
    assert len(full) == 60
    at.selectbox(key="w_sign").set_value("positive").run()
    pos = at.dataframe[0].value
    assert (pos["effect_true"] > 0).all() and len(pos) <= len(full)
    at.selectbox(key="fail_sort").set_value("margin").run()
    margins = at.dataframe[0].value["margin"].to_numpy()
    assert (margins[:-1] <= margins[1:]).all()
    at.checkbox(key="w_disagree").check().run()
    no_failure(at)
    assert at.dataframe[0].value["disagree"].all()


def test_failures_i2t_direction(make_app):
    at = make_app("failures", dir="i2t", rank_lo=1)
    no_failure(at)
    df = at.dataframe[0].value
    assert len(df) == 12 and set(df["direction"]) == {"i2t"}


def test_compare_shows_both_checkpoints(make_app):
    at = make_app("compare", image=4)
    no_failure(at)
    scores = [m.value for m in at.metric if m.label == "Score S(α)"]
    assert len(scores) == 2 and scores[0] != scores[1]
    assert [s.value for s in at.subheader][:2] == ["A: ckpt_a", "B: ckpt_b"]
    ranks = at.dataframe[0].value
    assert isinstance(ranks, pd.DataFrame) and len(ranks) == 4


def test_bad_folder_and_bad_checkpoint_show_error_panel(make_app, tmp_path):
    at = make_app(data=str(tmp_path / "missing"))
    assert not at.exception
    assert any(e.startswith("DataError:") for e in errors(at))
    at = make_app("explore", ckpt=str(tmp_path))
    assert not at.exception
    assert any(e.startswith("CheckpointError:") for e in errors(at))


def test_mismatched_checkpoint_and_data(make_app, assets, tmp_path):
    from appdata import F, build_checkpoint
    import numpy as np
    from causmatch.data import write_split
    write_split(tmp_path, "test", features=np.ones((2, 3, F + 4), np.float32), captions=["a red bar"] * 10,
                caps_per_image=5)
    at = make_app(data=str(tmp_path))
    assert not at.exception
    assert any("CheckpointError" in e and "features" in e for e in errors(at))


def test_dataset_without_images_still_works(make_app, assets):
    at = make_app("explore", data=str(assets.bare))
    no_failure(at)
    assert any("No overlays" in i.value for i in at.info)
    assert metric(at, "Score S(α)")
