"""The Failing pair page under AppTest: the failure row's numbers, walking the list, back, the word, links."""
from __future__ import annotations

import pytest

from tests.app.apptest_helpers import metric, no_failure, shown

PAGE = "failing_pair"


def _word(at):
    return at.selectbox(key="w_pword")


def _failure_rows(make_app, **query):
    """The Failure cases list as the table shows it (its filters and sort)."""
    at = make_app("failures", **query)
    no_failure(at)
    return at.dataframe[0].value


@pytest.mark.parametrize("direction", ["t2i", "i2t"])
def test_opens_a_failure_row_with_its_numbers(make_app, direction):
    rows = _failure_rows(make_app, dir=direction)
    row = rows.iloc[0]
    field = "caption" if direction == "t2i" else "image"
    at = make_app(PAGE, dir=direction, **{field: int(row["query"])})
    no_failure(at)
    item = "image" if direction == "t2i" else "caption"
    numbers = at.dataframe[0].value  # the numbers of both pairs
    true, wrong = int(row["true_item"]), int(row["best_wrong"])
    assert numbers["pair"].tolist() == [f"true {item} {true}", f"best wrong {item} {wrong}"]
    assert metric(at, "Margin") == f"{row['margin']:+.4f}"
    assert metric(at, f"True {item}'s rank") == str(int(row["rank"]))
    assert numbers["S(α)"].tolist() == [f"{row['score_true']:.4f}", f"{row['score_wrong']:.4f}"]
    assert numbers["rank (α)"].tolist()[0] == int(row["rank"])
    assert any("Fails" in m.value for m in at.markdown)
    assert any(e.label == "How to read this" for e in at.expander)
    assert "failure 1 of" in at.caption[0].value


def test_next_previous_walk_the_list_and_reset_the_word(make_app):
    rows = _failure_rows(make_app, sort="margin")
    first, second = int(rows.iloc[0]["query"]), int(rows.iloc[1]["query"])
    at = make_app(PAGE, sort="margin", caption=first)
    no_failure(at)
    assert at.button(key="fp_prev").disabled and not at.button(key="fp_next").disabled
    _word(at).set_value(0).run()
    assert at.query_params["pword"] == "0"
    at.button(key="fp_next").click().run()
    no_failure(at)
    assert at.session_state["w_caption"] == second and "failure 2 of" in at.caption[0].value
    assert _word(at).value == -1  # a word picked for another caption never carries over
    assert "pword" not in at.query_params
    at.button(key="fp_prev").click().run()
    assert at.session_state["w_caption"] == first
    assert at.query_params["sort"] == "margin"  # the list's sort stays in the link


def test_back_to_the_table_keeps_its_filters(make_app):
    rows = _failure_rows(make_app, sort="margin", sign="positive")
    at = make_app(PAGE, sort="margin", sign="positive", caption=int(rows.iloc[0]["query"]))
    no_failure(at)
    at.button(key="fp_back").click().run()
    no_failure(at)
    assert at.title[0].value == "Failure cases"
    assert at.selectbox(key="w_sign").value == "positive" and at.selectbox(key="w_sort").value == "margin"
    assert at.dataframe[0].value["query"].tolist() == rows["query"].tolist()


def test_most_informative_word_and_picking_another(make_app):
    at = make_app(PAGE, caption=0)
    no_failure(at)
    box = _word(at)
    assert box.value == -1
    label = box.format_func(-1)
    assert label.startswith("most informative: ")
    best = int(label.split(": ")[1].split(" · ")[0])
    table = at.dataframe[1].value  # the "why this word" table
    assert table.loc[table["chosen"] == "most informative", "word"].tolist() == [f"{best} · {label.split(' · ')[1]}"]
    usable = table[~table["chosen"].str.startswith(("never", "only if"))]
    assert float(usable["|difference|"].max()) == pytest.approx(float(table["|difference|"].iloc[best]))
    other = 0 if best else 1
    box.set_value(other).run()
    no_failure(at)
    assert at.query_params["pword"] == str(other)
    token = _word(at).format_func(other).split(" · ")[1]
    caption = next(m.value for m in at.markdown if m.value.startswith("**Caption:**"))
    assert caption.count("<mark") == 1 and f">{token}</mark>" in caption


def test_i2t_compares_the_same_word_of_two_captions(make_app):
    at = make_app(PAGE, dir="i2t", image=3)
    no_failure(at)
    numbers = at.dataframe[0].value  # the numbers of both pairs
    assert numbers["pair"].str.startswith(("true caption ", "best wrong caption ")).all()
    marked = [m.value for m in at.markdown if m.value.startswith(("**True caption", "**Best wrong caption"))]
    assert len(marked) == 2 and marked[0].count("<mark") == 1  # each caption, the word it compares marked
    for j in range(len(_word(at).options) - 1):
        _word(at).set_value(j).run()
        no_failure(at)


def test_bad_link_values_warn_not_fail(make_app):
    at = make_app(PAGE, caption=2, pword=99)
    assert not at.exception
    assert any("pword=99" in shown(w.value) for w in at.warning)
    assert _word(at).value == -1
    at = make_app(PAGE, caption=99999)
    assert not at.exception
    assert any("caption=99999" in shown(w.value) for w in at.warning)
    at = make_app(PAGE, pword="abc", dir="sideways")
    assert not at.exception
    assert sum("link's" in shown(w.value) for w in at.warning) == 2


def test_a_link_word_stays_with_its_failure_only(make_app):
    at = make_app(PAGE, caption=4, pword=1)
    no_failure(at)
    assert _word(at).value == 1
    at.switch_page("app_pages/retrieval.py").run()
    at.number_input(key="w_caption").set_value(7).run()
    at.switch_page(f"app_pages/{PAGE}.py").run()
    no_failure(at)
    assert _word(at).value == -1


def test_a_word_stays_with_its_dataset(make_app, assets):
    at = make_app(PAGE, caption=4, pword=1)
    assert _word(at).value == 1
    at.text_input(key="w_data").set_value(str(assets.bare)).run()  # the same caption number, another dataset
    no_failure(at)
    assert _word(at).value == -1


def test_retrieval_opens_the_failing_pair_of_its_query(make_app):
    at = make_app("retrieval", caption=6)
    no_failure(at)
    at.button(key="rt_failing_pair").click().run()
    no_failure(at)
    assert at.title[0].value == "Failing pair"
    assert any("caption 6 “" in shown(m.value) for m in at.markdown)


def test_without_images_the_numbers_still_show(make_app, assets):
    at = make_app(PAGE, data=str(assets.bare), caption=1)
    no_failure(at)
    assert any("No overlays" in i.value for i in at.info)
    assert metric(at, "Margin")


@pytest.mark.parametrize("query", [dict(iv="mask-regions", targets="1", tkind="mask-regions", caption=0),
                                   dict(iv="keep-words", targets="1", tkind="keep-words", dir="i2t", image=3)])
def test_targets_of_the_true_pair_are_not_applied_to_the_wrong_one(make_app, query):
    at = make_app(PAGE, **query)
    no_failure(at)
    numbers = at.dataframe[0].value
    assert numbers["S(ᾱ)"].iloc[0] != "—" and numbers["S(ᾱ)"].iloc[1] == "—"
    assert numbers["effect"].iloc[1] == "—" and metric(at, "Margin under ᾱ") == "—"
    assert any(c.value.startswith("No counterfactual for the best wrong pair") for c in at.caption)


def test_a_targeted_kind_without_targets_shows_no_counterfactual(make_app):
    at = make_app(PAGE, iv="mask-regions", caption=0)
    no_failure(at)
    numbers = at.dataframe[0].value
    assert (numbers["S(ᾱ)"] == "—").all() and (numbers["95% interval"] == "—").all()


def test_caption_words_are_shown_as_written(make_app, assets, tmp_path):
    """Dataset text is never Markdown or HTML: a word like ``_y_`` or ``$`` is shown as it is written."""
    import numpy as np

    from causmatch.data import load_split, write_split
    split = load_split(assets.data, "test")
    captions = [f"a red _square_ next to {i} $ <b>" for i in range(split.n_captions)]
    write_split(tmp_path, "test", features=np.asarray(split.features), captions=captions,
                caps_per_image=split.caps_per_image, regions=np.asarray(split.region_mask))
    at = make_app(PAGE, data=str(tmp_path), caption=3, pword=2)
    no_failure(at)
    caption = next(m.value for m in at.markdown if m.value.startswith("**Caption:**"))
    assert r">\_square\_</mark>" in caption and "&lt;" in caption and r"\$" in caption and "<b>" not in caption
