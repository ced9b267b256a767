"""Screenshots of the bundled demo for the README (opt-in: CAUSMATCH_DEMO_SHOTS=1).

    CAUSMATCH_DEMO_SHOTS=1 .venv/bin/python -m pytest -q tests/e2e/test_demo_screenshots.py

Starts the app with no arguments (the demo data and both demo checkpoints), visits Explore,
Retrieval and Failure cases and saves ``artifacts/screenshots/demo_*.png``; the README's images
in ``docs/images/app_*.png`` are these, resized below 300 KB.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import CHROMIUM, REPO, screenshot, start_app, stop_app, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.e2e,
              pytest.mark.skipif(os.environ.get("CAUSMATCH_DEMO_SHOTS") != "1",
                                 reason="opt-in: set CAUSMATCH_DEMO_SHOTS=1")]

VIEWS = [("explore", "/explore?image=7&caption=35&word=2&iv=random", 5, 2300),
         ("retrieval", "/retrieval?caption=35&k=5", 10, 1500),
         ("failures", "/failures", 0, 1100)]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    if not (REPO / "checkpoints" / "causmatch-scenes").is_dir() or not Path(CHROMIUM).exists():
        pytest.skip("needs the demo checkpoints and Chromium")
    proc, url = start_app([], log=tmp_path_factory.mktemp("demo") / "log.txt")
    yield url
    stop_app(proc)


@pytest.mark.parametrize("name,path,images,height", VIEWS)
def test_demo_screenshot(page, demo_server, name, path, images, height):
    page.set_default_timeout(600_000)
    page.goto(demo_server + path)
    wait_ready(page, images=images, timeout=600_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    screenshot(page, f"demo_{name}", height=height)
