"""Import direction: the app uses only public causmatch names; causmatch never imports streamlit or app."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
APP_LOCAL = {"state", "loaders", "results", "components", "app_pages"}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, imported names) of every import statement in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            out.append((node.module or "", [a.name for a in node.names]))
    return out


def test_app_imports_only_public_causmatch_api():
    files = sorted((REPO / "app").rglob("*.py"))
    assert len(files) >= 10
    for path in files:
        for module, names in _imports(path):
            top = module.split(".")[0]
            if top != "causmatch":
                assert top not in ("app", "tests"), f"{path}: imports {module}"
                continue
            parts = module.split(".")
            assert not any(p.startswith("_") for p in parts), f"{path}: private module {module}"
            mod = importlib.import_module(module)
            for name in names:
                assert not name.startswith("_"), f"{path}: private name {module}.{name}"
                assert hasattr(mod, name) or importlib.util.find_spec(f"{module}.{name}"), \
                    f"{path}: {module} has no {name}"


def test_causmatch_never_imports_streamlit_or_app():
    for path in sorted((REPO / "causmatch").rglob("*.py")):
        for module, _ in _imports(path):
            top = module.split(".")[0]
            assert top not in ("streamlit", "app", "plotly", *APP_LOCAL), f"{path}: imports {module}"


def test_entry_script_does_nothing_when_imported_by_a_spawned_worker():
    """multiprocessing "spawn" workers re-import the main script as __mp_main__ (the demo data
    builder uses them): the app must not run there, or the workers would build the data again."""
    import runpy
    from unittest import mock
    with mock.patch("streamlit.navigation") as navigation, mock.patch("streamlit.set_page_config") as config:
        ns = runpy.run_path(str(REPO / "app" / "streamlit_app.py"), run_name="__mp_main__")
    assert callable(ns["main"]) and set(ns["PAGES"]) == {"overview", "explore", "retrieval", "failures",
                                                          "failing-pair", "compare"}
    assert not navigation.called and not config.called
