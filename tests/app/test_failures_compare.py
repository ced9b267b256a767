"""Failure cases, Compare, and the error panel under AppTest."""
from __future__ import annotations

import pandas as pd

from tests.app.apptest_helpers import errors, metric, no_failure, shown


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
    at.selectbox(key="w_sort").set_value("margin").run()
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
    assert [shown(s.value) for s in at.subheader][:2] == ["A: ckpt_a", "B: ckpt_b"]
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
    import numpy as np

    from causmatch.data import write_split
    from tests.app.appdata import F
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


def test_selection_carries_across_pages(make_app):
    """A widget with the same key on another page starts from the view, not from its own default."""
    at = make_app("retrieval")
    at.segmented_control(key="w_dir").set_value("i2t").run()
    at.number_input(key="w_image").set_value(4).run()
    at.switch_page("app_pages/failures.py").run()
    no_failure(at)
    assert set(at.dataframe[0].value["direction"]) == {"i2t"}
    at.switch_page("app_pages/explore.py").run()
    no_failure(at)
    assert at.number_input(key="w_image").value == 4
