"""Sections that rerun alone (components.sections): pages draw them and keep working; the change that
touches something outside its section asks for the whole page (state.changed); the Failing pair shows the
pair at once while the walk's whole-split list is computed in the background.

AppTest reruns the whole script for every interaction, so what a section rerun alone leaves on the page is
checked in the browser (tests/e2e/test_sections_browser.py); here: the pages, the link and the callbacks."""
from __future__ import annotations

import threading

import pytest

from causmatch.analysis import jobs
from tests.app.apptest_helpers import no_failure, shown
from tests.app.test_background import WAIT, _idle


def test_explore_sections_draw_and_the_word_pick_reaches_the_link(make_app):
    at = make_app("explore", image=3, caption=15, word=2)
    no_failure(at)
    headers = [h.value for h in at.subheader]
    # the per-word effects and the word's overlays: one section, so a word pick redraws both
    assert headers[:2] == ["Which words carry the match", "“square” over the image"], headers  # word 2
    at.selectbox(key="w_word").set_value(1).run()
    no_failure(at)
    assert at.query_params["word"] == "1"
    at.number_input(key="w_image").set_value(4).run()
    no_failure(at)
    assert at.query_params["image"] == "4" and "word" not in at.query_params  # the word was the old pair's


@pytest.mark.parametrize("query", [dict(image=99999), dict(iv="mask-regions", targets="1", tkind="mask-regions")])
def test_a_change_that_touches_the_page_outside_its_section_reruns_the_whole_page(make_app, query):
    at = make_app("explore", **query)
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="w_word").set_value(1).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["word"] == "1"
    if "image" in query:  # the link's warning went with the change
        assert not [w for w in at.warning if "99999" in w.value]


def test_retrieval_section_follows_direction_and_query(make_app):
    at = make_app("retrieval", caption=15, k=5)
    no_failure(at)
    at.segmented_control(key="w_dir").set_value("i2t").run()
    no_failure(at)
    assert at.query_params["dir"] == "i2t"
    at.number_input(key="w_image").set_value(2).run()
    no_failure(at)
    assert at.query_params["image"] == "2"


def test_failing_pair_shows_the_pair_while_its_walk_waits_for_the_list(make_app, monkeypatch):
    monkeypatch.setenv("CAUSMATCH_WAIT_S", "0")  # the page does not wait for its jobs
    at = make_app("retrieval", caption=15, samples=2, seed=7)  # the factual scores a query's rank reads, built
    no_failure(at)
    gate = threading.Event()
    jobs.worker().submit("hold-sections", lambda progress: gate.wait(WAIT))  # the list's matrices queue behind
    try:
        at.switch_page("app_pages/failing_pair.py").run()
        no_failure(at)
        assert [t.value for t in at.title] == ["Failing pair"]
        assert any(m.label == "Margin" for m in at.metric)  # the pair is drawn at once
        assert at.button(key="fp_next").disabled and at.button(key="fp_prev").disabled
        walk = [shown(c.value) for c in at.caption]
        assert any("still being computed" in c for c in walk), walk
        assert at.get("progress"), "the walk's jobs say where they are"
    finally:
        gate.set()
    _idle()
    at.run()
    no_failure(at)
    assert not at.get("progress")
    assert any("in the Failure cases list" in shown(c.value) and "unavailable" not in shown(c.value)
               for c in at.caption)
