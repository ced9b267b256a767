"""URL state and command-line arguments of the app (pure functions, no Streamlit run)."""
from __future__ import annotations

import state
from causmatch.analysis import links


def test_parse_args_after_double_dash_and_ignores_others():
    args = state.parse_args(["--checkpoint", "c1", "--checkpoint2", "c2", "--data", "d", "--split", "dev", "-q"])
    assert args == state.AppArgs("c1", "c2", "d", "dev")
    assert state.parse_args(["-q", "tests/app"]) == state.AppArgs()


def test_default_view_takes_command_line_values():
    view = state.default_view(state.AppArgs("c1", "", "d", "dev"))
    assert (view["ckpt"], view["ckpt2"], view["data"], view["split"]) == ("c1", "", "d", "dev")
    assert view["iv"] == "random" and view["samples"] == 8


def test_url_params_round_trip_and_bad_values_fall_back():
    view = state.default_view(state.AppArgs("c1", "c2", "d", "test"))
    view.update(image=3, caption=17, iv="uniform", word=2)
    params = links.link_params(view)
    assert params["image"] == "3" and params["iv"] == "uniform" and "samples" not in params
    restored = state.default_view(state.AppArgs())
    for name, raw in params.items():
        restored[name] = links.coerce(name, raw)
    assert {k: restored[k] for k in params} == {k: view[k] for k in params}
    assert links.coerce("image", "not-a-number") == 0
    again, warnings = links.read_link(params, state.default_view(state.AppArgs()))
    assert again == view and warnings == []
