"""The Failure cases table: named columns, sorting and slices kept in the link (AppTest)."""
from __future__ import annotations

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
