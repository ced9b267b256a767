"""Links that travel (AppTest): a view built with the widgets, written to the link and opened in a fresh session is
the same view; a link made with the repository at one path opens with it at another; a word never carries over to
another caption; the Overview's regions per image are the real distribution."""
from __future__ import annotations

import shutil
import sys

import pytest
from streamlit.testing.v1 import AppTest

import state
from causmatch.analysis import links
from tests.app.apptest_helpers import errors, metric, no_failure, shown
from tests.app.conftest import APP, TIMEOUT


def _params(at: AppTest) -> dict[str, str]:
    return {k: (v[0] if isinstance(v, list) else v) for k, v in at.query_params.items()}


def _view(at: AppTest) -> dict:
    return {name: links.coerce(name, at.session_state[state.key(name)]) for name in links.FIELDS}


def _fresh(params: dict[str, str], page: str | None = None) -> AppTest:
    """A new browser session opened on ``params`` (nothing else: the link alone)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.query_params.update(params)
    at.run()
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    return at


def _warnings(at: AppTest) -> list[str]:
    return [shown(w.value) for w in at.warning]


def test_a_built_view_reopens_identically_from_its_link(make_app):
    at = make_app("retrieval")
    at.segmented_control(key="w_dir").set_value("i2t").run()
    at.number_input(key="w_image").set_value(4).run()
    at.slider(key="w_k").set_value(9).run()
    at.sidebar.number_input(key="w_samples").set_value(16).run()
    at.sidebar.number_input(key="w_seed").set_value(7).run()
    at.sidebar.selectbox(key="w_iv").set_value("mask-regions").run()
    at.sidebar.multiselect(key=state.TARGETS_KEY).set_value([1, 3]).run()
    no_failure(at)
    at.switch_page("app_pages/failures.py").run()
    at.number_input(key="w_rank_lo").set_value(1).run()
    at.selectbox(key="w_sign").set_value("positive").run()
    at.selectbox(key="w_sort").set_value("margin").run()
    at.segmented_control(key="w_order").set_value("desc").run()
    cut = at.selectbox(key="w_slice")
    cut.set_value(next(o for o in cut.options if o.startswith("regions") or "regions" in o)).run()
    no_failure(at)
    view, params, table = _view(at), _params(at), at.dataframe[0].value
    assert (view["dir"], view["image"], view["k"], view["samples"], view["seed"]) == ("i2t", 4, 9, 16, 7)
    assert (view["iv"], view["targets"], view["tkind"]) == ("mask-regions", "1,3", "mask-regions")
    assert (view["rank_lo"], view["sign"], view["sort"], view["order"]) == (1, "positive", "margin", "desc")
    assert view["slice"].startswith("regions:")
    for name, raw in params.items():  # only what differs from the defaults (and the places) is written
        assert name in links.ALWAYS_IN_LINK or raw != str(links.FIELDS[name].default), (name, raw)
    assert not any(params[p].startswith("/") for p in state.PLACES if p in params), params

    again = _fresh(params, "failures")
    no_failure(again)
    assert _view(again) == view and _params(again) == params
    assert not _warnings(again), _warnings(again)
    assert again.dataframe[0].value.equals(table)  # the same rows, in the same order


@pytest.mark.parametrize("page", ["overview", "explore", "retrieval", "failures", "compare"])
def test_each_page_reopens_on_its_own_view(make_app, page):
    at = make_app(page, image=5, caption=27, word=2, iv="uniform", dir="t2i", k=7)
    no_failure(at)
    params = _params(at)
    again = _fresh(params, page)
    no_failure(again)
    assert _view(again) == _view(at) and _params(again) == params
    assert [m.value for m in again.metric] == [m.value for m in at.metric]


def _checkout(base, assets) -> None:
    """A copy of the test data and checkpoints laid out as a repository's checkpoints/ and assets/."""
    shutil.copytree(assets.ckpt, base / "checkpoints" / "ckpt_a")
    shutil.copytree(assets.ckpt2, base / "checkpoints" / "ckpt_b")
    shutil.copytree(assets.data, base / "assets" / "data" / "shapes")


def _serve(monkeypatch, base) -> None:
    """As ``streamlit run app/streamlit_app.py -- --root BASE/checkpoints --root BASE/assets``."""
    monkeypatch.setattr(sys, "argv", [sys.argv[0], "--root", str(base / "checkpoints"), "--root", str(base / "assets")])


def test_a_link_made_in_one_checkout_opens_in_another(assets, tmp_path, monkeypatch):
    first, second = tmp_path / "alice" / "CausMatch", tmp_path / "bob" / "src" / "causmatch"
    _checkout(first, assets)
    _checkout(second, assets)
    _serve(monkeypatch, first)
    at = _fresh({"data": str(first / "assets" / "data" / "shapes"), "ckpt": str(first / "checkpoints" / "ckpt_a"),
                 "ckpt2": str(first / "checkpoints" / "ckpt_b")}, "explore")
    at.number_input(key="w_image").set_value(3).run()
    at.sidebar.selectbox(key="w_iv").set_value("uniform").run()
    no_failure(at)
    params = _params(at)
    assert (params["data"], params["ckpt"], params["ckpt2"]) == \
        ("assets/data/shapes", "checkpoints/ckpt_a", "checkpoints/ckpt_b")  # relative to the roots
    assert str(tmp_path) not in str(params)

    _serve(monkeypatch, second)
    again = _fresh(params, "explore")
    no_failure(again)
    assert _view(again) == _view(at) and not _warnings(again)
    assert [m.value for m in again.metric] == [m.value for m in at.metric]

    # An older link carried absolute places of the first checkout: the same places open, each said once.
    old = {**params, "data": str(first / "assets" / "data" / "shapes"), "ckpt": str(first / "checkpoints" / "ckpt_a")}
    shutil.rmtree(first)  # as on a colleague's machine, where that path does not exist
    moved = _fresh(old, "explore")
    no_failure(moved)
    assert _view(moved) == _view(at)
    said = _warnings(moved)
    assert len(said) == 2, said
    assert any("data=" in w and "assets/data/shapes, the same place relative to its root" in w for w in said), said
    assert any("ckpt=" in w and "checkpoints/ckpt_a, the same place relative to its root" in w for w in said), said
    assert [m.value for m in moved.metric] == [m.value for m in at.metric]


def test_an_absolute_place_that_names_nothing_here_is_refused(assets, tmp_path, monkeypatch):
    base = tmp_path / "repo"
    _checkout(base, assets)
    _serve(monkeypatch, base)
    at = _fresh({"data": "assets/data/shapes", "ckpt": "/home/alice/CausMatch/checkpoints/no-such-run"}, "explore")
    assert not at.exception
    assert any("not allowed" in e for e in errors(at)), errors(at)
    assert not any("same place" in w for w in _warnings(at))


def test_a_word_never_carries_over_to_another_caption(make_app):
    at = make_app("explore", image=2, caption=10, tab="Regions")
    at.selectbox(key="w_region").set_value(2).run()
    at.session_state[state.key("tab")] = "Words"  # the word picker's view; the region stays the view's
    at.run()
    at.selectbox(key="w_word").set_value(3).run()
    assert (_view(at)["word"], _view(at)["region"]) == (3, 2)
    at.selectbox(key="w_caption").set_value(11).run()  # another caption of the same image
    no_failure(at)
    assert _view(at)["word"] == 0 and at.selectbox(key="w_word").value == 0 and "word" not in _params(at)
    assert _view(at)["region"] == 2  # a region belongs to its image, which did not change
    at.selectbox(key="w_word").set_value(3).run()
    at.number_input(key="w_image").set_value(4).run()  # another image: its own captions and regions
    no_failure(at)
    assert (_view(at)["word"], _view(at)["region"]) == (0, 0)
    assert "word" not in _params(at) and "region" not in _params(at)

    # The pair changed on a page without a word picker: the link never pairs the old word with the new caption.
    at.selectbox(key="w_word").set_value(3).run()
    at.switch_page("app_pages/retrieval.py").run()
    at.number_input(key="w_caption").set_value(33).run()
    no_failure(at)
    assert _view(at)["word"] == 0 and "word" not in _params(at)


def test_a_links_word_is_its_pair_s(make_app):
    """The word a link names belongs to the link's pair: it is shown, and kept while other fields change."""
    at = make_app("explore", image=2, caption=10, word=3)
    no_failure(at)
    assert at.selectbox(key="w_word").value == 3
    at.sidebar.selectbox(key="w_iv").set_value("uniform").run()
    assert at.selectbox(key="w_word").value == 3 and _params(at)["word"] == "3"


def test_the_overview_shows_the_real_regions_per_image(make_app):
    """The test data's images have 6 or 5 valid regions (odd images pad the last one): not the padded 6."""
    at = make_app()
    no_failure(at)
    assert metric(at, "Regions per image") == "5–6"
    assert metric(at, "Words per caption") == "8"  # "a red square next to a blue circle"
    said = " ".join(c.value for c in at.caption)
    assert "Valid regions per image: min 5 · median 5.5 · max 6 (features padded to 6)" in said, said
    assert "Words per caption: all 8; 5 captions per image" in said, said
