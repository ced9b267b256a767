"""Fixtures for the browser tests; the helpers live in browser.py."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.app.appdata import build_assets
from tests.e2e.browser import CHROMIUM, start_app, stop_app


@pytest.fixture(scope="session")
def e2e_assets(tmp_path_factory):
    return build_assets(tmp_path_factory.mktemp("e2e"))


@pytest.fixture(scope="session")
def app_server(e2e_assets, tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: run `bash .ci/setup --test`")
    log = tmp_path_factory.mktemp("e2e_log") / "streamlit.log"
    proc, url = start_app(["--data", str(e2e_assets.data), "--checkpoint", str(e2e_assets.ckpt),
                           "--checkpoint2", str(e2e_assets.ckpt2), "--split", "test"],
                          env_extra={"CAUSMATCH_CACHE": str(e2e_assets.cache)}, log=log)
    yield url
    stop_app(proc)
    if os.environ.get("CAUSMATCH_E2E_LOG"):
        shutil.copy(log, os.environ["CAUSMATCH_E2E_LOG"])


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(120_000)
    yield pg
    context.close()
