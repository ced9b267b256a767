"""The view done the Streamlit way (AppTest and source checks): widget keys hold the view, callbacks write the
link, a link is read once, pages never assign the view, and the intervention pickers come from the registry."""
from __future__ import annotations

import ast
from pathlib import Path

from causmatch.interventions import KINDS, get_kind, pickable_kinds
from tests.app.apptest_helpers import no_failure

APP = Path(__file__).resolve().parents[2] / "app"


def _param(at, name):
    value = at.query_params.get(name)
    return value[0] if isinstance(value, list) else value


def test_the_kind_picker_offers_the_registry_kinds(make_app):
    at = make_app("explore")
    no_failure(at)
    assert at.selectbox(key="w_iv").options == list(pickable_kinds())
    for kind in ("random", "uniform", "shuffle", "mask-words"):
        at.selectbox(key="w_iv").set_value(kind).run()
        assert at.number_input(key="w_samples").disabled is (not get_kind(kind).stochastic), kind


def test_a_widget_change_writes_the_link_and_a_link_is_read_once(make_app):
    at = make_app("retrieval")
    at.slider(key="w_k").set_value(9).run()
    no_failure(at)
    assert _param(at, "k") == "9"
    at.query_params["k"] = "3"  # the address changed under a running session: the session's view wins
    at.run()
    assert at.slider(key="w_k").value == 9 and _param(at, "k") == "9"


def test_a_replaced_link_value_is_said_until_the_view_is_changed(make_app):
    at = make_app("retrieval", k=100000, dir="sideways")
    no_failure(at)
    said = [w.value for w in at.warning]
    assert any("k=100000 does not fit this view — k 5" in w for w in said), said
    assert any("dir=sideways does not fit this view — dir t2i" in w for w in said), said
    assert at.slider(key="w_k").value == 5 and "k" not in at.query_params and "dir" not in at.query_params
    at.switch_page("app_pages/failures.py").run()  # still the link's view: still said
    assert any("k=100000" in w.value for w in at.warning)
    at.segmented_control(key="w_dir").set_value("i2t").run()
    no_failure(at)
    assert not any("does not fit this view" in w.value for w in at.warning)


def test_the_retrieval_query_is_the_pair_explore_opens(make_app):
    at = make_app("retrieval", caption=7)
    no_failure(at)
    at.switch_page("app_pages/explore.py").run()
    no_failure(at)
    assert at.number_input(key="w_image").value == 1 and at.selectbox(key="w_caption").value == 7
    assert not at.warning  # following the query is not a replaced link value
    at.switch_page("app_pages/retrieval.py").run()
    at.segmented_control(key="w_dir").set_value("i2t").run()
    at.number_input(key="w_image").set_value(4).run()
    at.switch_page("app_pages/explore.py").run()
    assert at.number_input(key="w_image").value == 4 and at.selectbox(key="w_caption").value == 20


def test_a_typed_place_is_written_relative_to_its_root(make_app, assets):
    at = make_app()
    at.sidebar.text_input(key="w_ckpt").set_value(str(assets.ckpt2)).run()
    no_failure(at)
    assert at.sidebar.text_input(key="w_ckpt").value == _param(at, "ckpt")
    assert _param(at, "ckpt").endswith("/ckpt_b") and not _param(at, "ckpt").startswith("/")


def _constants(tree: ast.AST) -> list[tuple[int, str]]:
    """String constants of a module, except keyword arguments' values (plotly's ``autorange="reversed"``)."""
    keyword_values = {id(k.value) for k in ast.walk(tree) if isinstance(k, ast.keyword)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in keyword_values]


def test_the_app_names_no_kind_and_builds_no_spec():
    """Kinds, their properties and their specs come from the intervention registry, never from app/."""
    names = set(KINDS) - {"none"}
    for path in sorted(APP.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, text in _constants(tree):
            assert text not in names, f"{path}:{line}: the kind '{text}' written in the app"
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):
                parts = node.values
                for before, after in zip(parts, parts[1:]):
                    assert not (isinstance(before, ast.FormattedValue) and isinstance(after, ast.Constant)
                                and str(after.value).startswith("=")), \
                        f"{path}:{node.lineno}: a spec built by hand (use format_spec)"


def test_only_the_state_module_assigns_the_view():
    """Pages and components read session state; only app/state.py (its callbacks, its fit) writes it."""
    for path in sorted(APP.rglob("*.py")):
        if path.name == "state.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, (ast.AugAssign, ast.AnnAssign)) else []
            for target in targets:
                assert "session_state" not in ast.unparse(target), f"{path}:{node.lineno}: assigns session state"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = ast.unparse(node.func.value)
                assert not ("session_state" in owner and node.func.attr in ("update", "setdefault", "pop", "clear")), \
                    f"{path}:{node.lineno}: changes session state"
