"""The Failure cases table: named columns, sorting and slices kept in the link (AppTest)."""
from __future__ import annotations

import pytest

from tests.app.apptest_helpers import no_failure


def test_sort_is_read_from_the_link_and_written_back(make_app):
    at = make_app("failures", sort="margin", order="desc", rank_lo=1)
    no_failure(at)
    margins = at.dataframe[0].value["margin"].to_numpy()
    assert len(margins) > 1 and (margins[:-1] >= margins[1:]).all()
    assert at.query_params["sort"] == "margin" and at.query_params["order"] == "desc"
    at.selectbox(key="w_sort").set_value("effect_true").run()
    at.segmented_control(key="w_order").set_value("").run()
    no_failure(at)
    effects = at.dataframe[0].value["effect_true"].to_numpy()
    assert (effects[:-1] <= effects[1:]).all()  # the column's own order: lowest effect first
    assert at.query_params["sort"] == "effect_true" and "order" not in at.query_params


def test_an_unknown_sort_column_is_replaced_with_a_warning(make_app):
    at = make_app("failures", sort="bogus", rank_lo=1)
    no_failure(at)
    assert any("sort=bogus" in w.value for w in at.warning), [w.value for w in at.warning]
    ranks = at.dataframe[0].value["rank"].to_numpy()
    assert (ranks[:-1] >= ranks[1:]).all()  # the default: worst rank first


def _config(el) -> dict:
    """The column settings the table was drawn with: column -> {label, help, ...}."""
    import json
    return {k: v for k, v in json.loads(el.proto.columns).items() if k != "_index"}


def test_columns_are_named_with_help_and_counterfactual_draws(make_app):
    at = make_app("failures", rank_lo=1, samples=3)  # the sidebar's draws, as on every page
    no_failure(at)
    config = _config(at.dataframe[0])
    labels = {name: c.get("label") for name, c in config.items()}
    helps = {name: c.get("help") for name, c in config.items()}
    assert labels["rank"] == "Rank" and helps["rank"].startswith("Rank (true image): ")
    assert labels["best_wrong"] == "Best wrong" and helps["best_wrong"].startswith("Best wrong image: ")
    assert helps["margin"].startswith("Margin S(true) − S(best wrong): ")
    assert helps["rank_cf"].startswith("Rank under ᾱ (3 draws): ")
    assert helps["effect_true"].startswith("Effect on true pair (3 draws): ")
    assert helps["effect_wrong"].startswith("Effect on best wrong pair (3 draws): ")
    assert all(helps.values())
    assert "query_text" in config and "query" not in config  # the caption says its index
    at.segmented_control(key="w_dir").set_value("i2t").run()
    no_failure(at)
    config = _config(at.dataframe[0])
    assert {"query", "query_image", "wrong_text"} <= set(config)
    assert config["wrong_text"]["label"] == "Best wrong caption"
    df = at.dataframe[0].value
    assert df["query_image"].iloc[0].startswith("data:image/jpeg;base64,")
    assert df["wrong_text"].iloc[0].startswith(f"#{df['best_wrong'].iloc[0]} · ")


def test_the_table_fits_the_page_at_1280_px(make_app):
    """The columns' widths add up to at most the main column's width at 1280 px (measured: 818 px)."""
    for direction in ("t2i", "i2t"):
        at = make_app("failures", rank_lo=1, dir=direction)
        widths = [c["width"] for c in _config(at.dataframe[0]).values()]
        assert all(isinstance(w, int) for w in widths), widths
        assert sum(widths) + 34 <= 818, (direction, sum(widths))


def test_a_slice_cuts_the_rows_and_is_kept_in_the_link(make_app):
    at = make_app("failures", rank_lo=1)
    everything = at.dataframe[0].value
    at.selectbox(key="w_slice").set_value("word:red").run()
    no_failure(at)
    cut = at.dataframe[0].value
    assert 0 < len(cut) < len(everything)
    assert all(" red " in f" {text.split(' · ', 1)[1]} " for text in cut["query_text"])
    assert at.query_params["slice"] == "word:red"
    again = make_app("failures", rank_lo=1, slice="word:red")
    no_failure(again)
    assert list(again.dataframe[0].value["query"]) == list(cut["query"])
    regions = make_app("failures", rank_lo=1, slice="regions:5", dir="i2t")
    no_failure(regions)
    assert sorted(regions.dataframe[0].value["query"]) == [1, 3, 5, 7, 9, 11]  # odd images: 5 valid regions


def test_a_slice_the_split_cannot_cut_by_is_replaced_with_a_warning(make_app):
    at = make_app("failures", rank_lo=1, slice="relation:above")
    no_failure(at)
    assert any("slice=relation:above" in w.value for w in at.warning), [w.value for w in at.warning]
    assert len(at.dataframe[0].value) == 60 and "slice" not in at.query_params


def test_a_caption_slice_in_image_queries_says_it_does_not_cut(make_app):
    at = make_app("failures", rank_lo=1, slice="word:red", dir="i2t")
    no_failure(at)
    assert len(at.dataframe[0].value) == 12
    assert any("describes captions" in i.value for i in at.info)


def test_the_slices_section_shows_each_family(make_app):
    at = make_app("failures")
    no_failure(at)
    assert any(s.value == "Slices" for s in at.subheader)
    assert [t.label for t in at.tabs] == ["Caption length", "Valid regions", "Word"]
    tables = {}
    for label in ("Caption length", "Valid regions", "Word"):  # one family at a time: the open tab's
        at.session_state["failures_slices_tab"] = label  # app_pages/failures.py: SLICES_TAB
        at.run()
        no_failure(at)
        drawn = [el.value for el in at.dataframe if "family" in el.value.columns]
        assert len(drawn) == 1, label
        tables[label] = drawn[0]
    families = [set(t["family"]) - {"all"} for t in tables.values()]
    assert families == [{"length"}, {"regions"}, {"word"}]
    regions = tables["Valid regions"]
    assert list(regions["label"]) == ["whole split", "whole split", "5 regions", "6 regions", "5 regions", "6 regions"]
    assert set(regions["checkpoint"]) == {"A: ckpt_a", "B: ckpt_b"}
    assert regions["i2t_r1"].notna().all() and tables["Word"]["i2t_r1"].iloc[2:].isna().all()
    assert any("scenes generator" in c.value for c in at.caption)


def test_overview_recall_cut_by_a_slice(make_app):
    at = make_app("overview", slice="regions:5")
    no_failure(at)
    whole, five = at.dataframe[0].value, at.dataframe[1].value
    assert list(five["checkpoint"]) == list(whole["checkpoint"]) and at.query_params["slice"] == "regions:5"
    at.selectbox(key="w_slice").set_value("regions:6").run()
    no_failure(at)
    six = at.dataframe[1].value
    for m in ("t2i_r1", "t2i_r5", "i2t_r1", "i2t_r5"):  # the two halves (6 images each) average to the whole
        assert ((five[m] + six[m]) / 2).round(2).tolist() == pytest.approx(whole[m].tolist(), abs=0.011), m
    at.selectbox(key="w_slice").set_value("word:red").run()
    no_failure(at)
    words = at.dataframe[1].value
    assert words["i2t_r1"].isna().all() and words["t2i_r1"].notna().all()


@pytest.mark.parametrize("raw", ["word:", "length:9-3", "bogus", "word:" + "x" * 300, "regions:abc", "word:<b>a</b>"])
def test_a_malformed_slice_in_the_link_is_refused_with_one_warning(make_app, raw):
    at = make_app("failures", rank_lo=1, slice=raw)
    no_failure(at)
    found = [w.value for w in at.warning if "slice=" in w.value]
    assert len(found) == 1 and "no slice is shown instead" in found[0] and len(found[0]) < 160, found
    assert len(at.dataframe[0].value) == 60


def test_a_dataset_without_images_or_grounding_still_has_its_table_and_slices(make_app, assets):
    at = make_app("failures", data=str(assets.bare), dir="i2t", rank_lo=1)
    no_failure(at)
    config = _config(at.dataframe[0])
    assert "query_image" not in config and "wrong_text" in config and "pointing" not in config
    slice_tables = [el.value for el in at.dataframe if "family" in el.value.columns]
    assert slice_tables and all("pointing" not in t.columns or t["pointing"].isna().all() for t in slice_tables)
