"""causmatch.analysis.links: a view read from a link (validated, warned), written back, and targets owned by a kind."""
from __future__ import annotations

import pytest

from causmatch.analysis import links
from causmatch.interventions import COUNTERFACTUAL_KINDS, format_spec, get_kind, pickable_kinds


def test_the_kind_field_offers_the_registry_kinds():
    assert links.FIELDS["iv"].choices == pickable_kinds()
    assert set(COUNTERFACTUAL_KINDS) <= set(pickable_kinds()) and "none" not in pickable_kinds()


def test_a_good_link_is_read_as_given_and_round_trips():
    query = {"image": "3", "caption": "17", "iv": "mask-words", "targets": "1,2", "k": "20", "dir": "i2t",
             "samples": "64", "seed": "7", "cf": "all", "sign": "negative", "disagree": "1", "data": "srv/d"}
    view, warnings = links.read_link(query)
    assert warnings == []
    assert (view["image"], view["caption"], view["k"], view["samples"], view["disagree"]) == (3, 17, 20, 64, 1)
    assert links.own_targets(view) is None and view["tkind"] == "mask-words"
    again, warnings = links.read_link(links.link_params(view))
    assert again == view and warnings == []


@pytest.mark.parametrize("name,raw,words", [
    ("image", "1e9", "image='1e9' is not a whole number — image 0 is shown instead"),
    ("image", "-1", "image=-1 does not fit this view — image 0 is shown instead"),
    ("iv", "bogus", "iv=bogus does not fit this view — iv random is shown instead"),
    ("iv", "none", "iv=none does not fit this view"),  # the learned attention is not a counterfactual to pick
    ("iv", "one-word", "iv=one-word does not fit this view"),  # a library-only kind has no spec
    ("samples", "0", "samples=0 does not fit this view — samples 8"),
    ("samples", "65", "samples=65 does not fit this view — samples 8"),
    ("k", "100000", "k=100000 does not fit this view — k 5"),
    ("k", "0", "k=0 does not fit this view — k 5"),
    ("dir", "sideways", "dir=sideways does not fit this view — dir t2i"),
    ("sign", "up", "sign=up does not fit this view — sign any"),
    ("cf", "everything", "cf=everything does not fit this view — cf off"),
    ("disagree", "2", "disagree=2 does not fit this view — disagree 0"),
    ("rank_lo", "0", "rank_lo=0 does not fit this view — rank_lo 2"),
    ("seed", str(2**31), f"seed={2**31} does not fit this view — seed 0"),
    ("seed", "\x00" * 3, "seed='???' is not a whole number — seed 0 is shown instead"),
])
def test_a_value_that_is_not_allowed_is_replaced_with_a_warning(name, raw, words):
    view, warnings = links.read_link({name: raw})
    assert view[name] == links.FIELDS[name].default
    assert len(warnings) == 1 and words in warnings[0], warnings
    assert "\x00" not in warnings[0]


def test_the_start_view_is_what_a_bad_value_falls_back_to():
    view, warnings = links.read_link({"k": "99", "data": "srv/other"}, {"k": 7, "data": "srv/d"})
    assert view["k"] == 7 and view["data"] == "srv/other"
    assert warnings == ["The link's k=99 does not fit this view — k 7 is shown instead."]


def test_unknown_parameters_are_ignored_and_defaults_left_out_of_links():
    view, warnings = links.read_link({"nonsense": "1", "embed_args": "x"})
    assert view == links.default_view() and warnings == []
    assert links.link_params(view) == {"data": "", "ckpt": ""}
    assert links.link_params({**view, "disagree": True})["disagree"] == "1"  # a checkbox's value as the field's type


@pytest.mark.parametrize("query,cleared,words", [
    ({"iv": "mask-words", "targets": "0,1", "tkind": "mask-regions"}, True, "were picked for mask-regions"),
    ({"iv": "uniform", "targets": "2"}, True, "belong to no targeted kind, not for uniform"),
    ({"iv": "random", "targets": "2", "tkind": "random"}, True, "were picked for random, not for random"),
    ({"iv": "keep-regions", "targets": "2"}, False, None),
    ({"iv": "swap-words", "targets": "1,4", "tkind": "swap-words"}, False, None),
    ({"iv": "mask-words", "tkind": "mask-regions"}, False, None),  # no targets: nothing to own
])
def test_targets_belong_to_their_kind(query, cleared, words):
    view, _ = links.read_link(query)
    notice = links.own_targets(view)
    if cleared:
        assert notice.startswith("ConfigError: ") and words in notice and "cleared, not reinterpreted" in notice
        assert view["targets"] == "" and view["tkind"] == ""
    else:
        assert notice is None and view["tkind"] == (query["iv"] if query.get("targets") else "")


@pytest.mark.parametrize("kind,targets,offered,words", [
    ("mask-words", "a,b", [0, 1, 2], "not whole numbers"),
    ("keep-words", "-1", [0, 1, 2], "not whole numbers"),
    ("mask-words", "7", [0, 1, 2], "words 7 not valid for this pair"),
    ("mask-regions", "0,9", [0, 1, 2], "regions 9 not valid for this pair"),
    ("swap-words", "0,1,2", [0, 1, 2], "two word"),
    ("swap-words", "1,1", [0, 1, 2], "two different words"),
    ("swap-words", "9", [0, 1, 2], "words 9 not valid"),  # still picking: what is chosen must fit
    ("mask-regions", ",".join(["0"] * 5000), [0, 1], "at most"),
])
def test_targets_that_do_not_fit_are_refused(kind, targets, offered, words):
    problem = links.targets_problem(kind, targets, offered)
    assert problem is not None and problem.startswith("ConfigError: ") and words in problem, problem


@pytest.mark.parametrize("kind,targets", [("mask-words", "0,2"), ("swap-words", "2"), ("swap-words", "0,2"),
                                          ("keep-regions", "1"), ("mask-words", "")])
def test_targets_that_fit_pass_and_the_session_check_is_asked(kind, targets):
    asked = []
    assert links.targets_problem(kind, targets, [0, 1, 2], asked.append) is None
    full = targets.count(",") + 1 >= get_kind(kind).min_targets and targets
    assert asked == ([format_spec(kind, [int(t) for t in targets.split(",")])] if full else [])


def test_the_session_check_refusal_is_the_problem():
    from causmatch.errors import ConfigError

    def check(spec):
        raise ConfigError(f"{spec}: word 2 out of range for this caption")
    assert links.targets_problem("mask-words", "2", [0, 1, 2], check) == \
        "ConfigError: mask-words=2: word 2 out of range for this caption"
