"""What the app opens and how it treats targets: places inside the roots, links relative to a root,
targets that belong to a kind and to a pair (AppTest)."""
from __future__ import annotations

from tests.app.apptest_helpers import errors, metric, no_failure, shown


def _targets(at):
    return at.multiselect(key="w_targets_list")


def test_links_name_places_relative_to_a_root(make_app, assets):
    at = make_app()
    no_failure(at)
    for name, path in (("data", assets.data), ("ckpt", assets.ckpt), ("ckpt2", assets.ckpt2)):
        value = at.query_params[name]
        value = value[0] if isinstance(value, list) else value
        assert not value.startswith("/") and value.endswith("/" + path.name), value
        assert at.text_input(key=f"w_{name}").value == value  # the sidebar shows the same place
    captions = " ".join(shown(c.value) for c in at.caption)
    data_link = at.query_params["data"]
    data_link = data_link[0] if isinstance(data_link, list) else data_link
    assert str(assets.data) not in captions and f"Dataset {data_link} · " in captions


def test_a_relative_link_opens_the_same_view(make_app, assets):
    first = make_app("explore", image=3)
    no_failure(first)
    link = {k: (v[0] if isinstance(v, list) else v) for k, v in first.query_params.items()}
    again = make_app("explore", **link)  # absolute paths from the fixture replaced by the link's places
    no_failure(again)
    assert again.number_input(key="w_image").value == 3


def test_changing_the_kind_clears_the_targets(make_app):
    at = make_app("explore")
    at.selectbox(key="w_iv").set_value("mask-regions").run()
    _targets(at).set_value([0, 1]).run()
    no_failure(at)
    assert at.query_params["tkind"] in ("mask-regions", ["mask-regions"])
    at.selectbox(key="w_iv").set_value("mask-words").run()
    no_failure(at)
    assert _targets(at).value == []  # region 0 never becomes word 0
    assert "targets" not in at.query_params and "tkind" not in at.query_params
    assert any("Targets cleared" in c.value for c in at.sidebar.caption)
    assert any("Pick at least one target" in c.value for c in at.sidebar.caption)
    at.selectbox(key="w_iv").set_value("random").run()
    no_failure(at)
    assert not at.multiselect  # untargeted kinds have no picker


def test_pickers_offer_only_valid_targets(make_app):
    at = make_app("explore", image=1)  # odd images have a padded last region
    at.selectbox(key="w_iv").set_value("mask-regions").run()
    assert _targets(at).options == ["region 0", "region 1", "region 2", "region 3", "region 4"]
    at.selectbox(key="w_iv").set_value("swap-words").run()
    words = _targets(at).options
    assert len(words) == 8 and words[1] == "1 · green"  # image 1, caption 5: "a green circle next to …"
    _targets(at).set_value([1, 2]).run()
    no_failure(at)
    assert any("swap the attention of words 1 and 2" in c.value or "swap-words=1,2" in c.value for c in at.caption)


def test_targets_that_stop_fitting_the_pair_are_refused_not_trimmed(make_app):
    at = make_app("explore")
    at.selectbox(key="w_iv").set_value("mask-words").run()
    _targets(at).set_value([1, 7]).run()
    no_failure(at)
    at.text_input(key="w_text").set_value("a red bar").run()  # 3 words: target 7 no longer exists
    assert not at.exception
    assert any("out of range" in e and "7" in e for e in errors(at)), errors(at)
    assert any("intervention: learned attention" in c.value or "intervention: none" in c.value
               for c in at.caption)  # the refused targets are not used, and not trimmed to [1]
    assert metric(at, "Effect") == "—" and metric(at, "Counterfactual S(ᾱ)") == "—"  # no effect of 0 shown


def test_swap_words_is_picked_one_word_at_a_time(make_app):
    at = make_app("explore")
    at.selectbox(key="w_iv").set_value("swap-words").run()
    _targets(at).set_value([3]).run()  # the first word: not yet an intervention, not an error
    no_failure(at)
    assert _targets(at).value == [3]
    assert any("Pick two words" in c.value for c in at.sidebar.caption)
    _targets(at).set_value([3, 6]).run()
    no_failure(at)
    assert at.query_params["targets"] in ("3,6", ["3,6"])
    assert any("swap-words=3,6" in c.value or "words 3 and 6" in c.value for c in at.caption)
