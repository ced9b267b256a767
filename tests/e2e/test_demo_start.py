"""The app started as the README starts it (no arguments), in headless Chromium.

``streamlit run app/streamlit_app.py`` with no arguments opens both demo checkpoints on the default scenes
folder; here ``CAUSMATCH_DATA`` points that folder at a copy of the committed sample split
(``assets/sample/scenes``, 8 images), so every page of the bundled demo is checked in seconds: its heading
shows, no exception or error panel does, every image loaded. The same checks on the full demo data, with the
README's screenshots: ``python -m scripts.demo_screenshots``.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.browser import CHROMIUM, DEMO_VIEWS, REPO, check_demo_view, start_app, stop_app

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory, scenes_sample_dir):
    if not (REPO / "checkpoints" / "causmatch-scenes").is_dir():
        pytest.fail("the bundled demo checkpoints are missing from checkpoints/")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: run `bash .ci/setup --test`")
    root = tmp_path_factory.mktemp("demo")
    env = {"CAUSMATCH_DATA": str(scenes_sample_dir(root / "scenes")), "CAUSMATCH_CACHE": str(root / "cache")}
    proc, url = start_app([], env_extra=env, log=root / "log.txt")
    yield url
    stop_app(proc)


@pytest.mark.parametrize("view", DEMO_VIEWS, ids=[v[0] for v in DEMO_VIEWS])
def test_demo_page(page, demo_server, view):
    check_demo_view(page, demo_server, view, shot=f"demo_sample_{view[0]}")
