"""The "How to read this" texts: every topic known, an unknown one refused, the maths as in the library."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from causmatch.analysis.effects import draw_count
from components import help


def test_every_topic_has_a_title_and_text():
    for name in ("scores", "effect", "interval", "word_effects", "region_effects", "pointing", "ranks", "margin"):
        title, text = help.TOPICS[name]
        assert title and len(text) > 80 and "\n" not in text
    assert help.markdown("effect", "scores", "effect").count("Effect = S(α) − mean S(ᾱ)") == 1


@pytest.mark.parametrize("topics", [("effects",), ("scores", "nope"), ()])
def test_unknown_or_no_topic_is_a_programming_error(topics):
    with pytest.raises(ValueError, match="not known"):
        help.markdown(*topics)


def test_texts_say_the_library_maths():
    text = help.markdown(*help.TOPICS)
    for phrase in ("S(α) − mean S(ᾱ)", "Student's t", "seed … seed+K−1", "1-based", "most-attended valid region",
                   "best-scoring wrong item", "shares of the row"):
        assert phrase in text, phrase


def _page():
    import streamlit as st

    from components import help as h
    h.how_to_read("scores", "effect")
    with st.columns(2)[1]:
        h.how_to_read("margin", container=st)


def test_how_to_read_draws_one_expander_per_call():
    at = AppTest.from_function(_page).run()
    assert not at.exception
    labels = [e.label for e in at.expander]
    assert labels == [help.LABEL, help.LABEL]
    assert "Effect = S(α)" in at.expander[0].markdown[0].value and "Margin" in at.expander[1].markdown[0].value


def test_draws_and_the_counterfactual_rank_name():
    assert draw_count("random", 8) == 8 and draw_count("uniform", 8) == 1 and draw_count(None, 8) == 1
    assert help.cf_rank_label(8) == "rank under ᾱ (mean of 8 draws)" and help.cf_rank_label(1) == "rank under ᾱ"


def test_cf_rank_label_names_the_seed_of_every_random_number():
    assert help.cf_rank_label(8, "random", 3) == "rank under ᾱ (random, mean of 8 draws, seed 3)"
    assert help.cf_rank_label(1, "random", 3) == "rank under ᾱ (random, 1 draw, seed 3)"  # one draw: still seeded
    assert help.cf_rank_label(1, "uniform", 3) == "rank under ᾱ (uniform, 1 draw)"  # deterministic: no seed
    assert help.cf_rank_label(1, "nonsense-kind", 3) == "rank under ᾱ (nonsense-kind, 1 draw)"
