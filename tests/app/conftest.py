"""AppTest fixtures: one small dataset and two checkpoints per test session, caches cleared per test."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.app.appdata import build_assets

APP = Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"
TIMEOUT = 60  # the first run loads a model and computes a small similarity matrix


@pytest.fixture(scope="session")
def assets(tmp_path_factory):
    return build_assets(tmp_path_factory.mktemp("app"))


@pytest.fixture(autouse=True)
def _fresh_caches(assets, monkeypatch, tmp_path_factory):
    monkeypatch.setenv("CAUSMATCH_CACHE", str(assets.cache))
    # Whole-split matrices come from the background worker: a page waits for them up to the run's timeout
    # (as a browser's page fills in when they land); every test gets a fresh worker (no job of another test).
    monkeypatch.setenv("CAUSMATCH_WAIT_S", str(TIMEOUT))
    from causmatch.analysis import jobs
    monkeypatch.setattr(jobs, "_WORKER", None)
    # The app opens folders only inside its roots: the test session's temporary folder holds the
    # test data and every test's tmp_path (as `streamlit run app/streamlit_app.py -- --root DIR`).
    monkeypatch.setattr(sys, "argv", [sys.argv[0], "--root", str(tmp_path_factory.getbasetemp())])
    st.cache_data.clear()
    st.cache_resource.clear()
    yield


@pytest.fixture
def make_app(assets):
    """``make_app(page=None, **query)``: an AppTest on the test data, run once (and on ``page``)."""
    def make(page: str | None = None, **query) -> AppTest:
        at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
        at.query_params.update(data=str(assets.data), ckpt=str(assets.ckpt), ckpt2=str(assets.ckpt2))
        at.query_params.update({k: str(v) for k, v in query.items()})
        at.run()
        if page:
            at.switch_page(f"app_pages/{page}.py").run()
        return at
    return make


os.environ.setdefault("HF_HUB_OFFLINE", "1")
