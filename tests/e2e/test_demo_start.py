"""The app on the bundled demo, as the README starts it (no arguments), in headless Chromium.

    time .venv/bin/python -m pytest -q tests/e2e/test_demo_screenshots.py

Starts ``streamlit run app/streamlit_app.py`` with no arguments: both demo checkpoints and the scenes
test split (built by ``ensure_scenes`` when missing, as on a fresh clone). Visits every page, checks that
no exception or error panel shows and that the images rendered, and saves
``artifacts/screenshots/demo_*.png`` (the README's ``docs/images/app_*.png`` are these, resized).
``CAUSMATCH_DATA`` / ``CAUSMATCH_CACHE`` point the data and the analysis cache elsewhere (an empty
folder times a cold start without touching ``assets/``).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.browser import CHROMIUM, REPO, screenshot, start_app, stop_app, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

# (name, path, heading, images that must load, screenshot height). Overview comes first: it computes
# every counterfactual matrix of both checkpoints (the cold-start cost); the other pages reuse them.
VIEWS = [("overview", "/", "Overview", 0, 2000),
         ("explore", "/explore?image=7&caption=35&word=2&iv=random", "Explore a pair", 5, 2300),
         ("retrieval", "/retrieval?caption=35&k=5", "Retrieval", 10, 1500),
         ("failures", "/failures", "Failure cases", 0, 1100),
         ("compare", "/compare", "Compare checkpoints", 4, 1600)]


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    if not (REPO / "checkpoints" / "causmatch-scenes").is_dir():
        pytest.fail("the bundled demo checkpoints are missing from checkpoints/")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: run `bash .ci/setup --test`")
    proc, url = start_app([], log=tmp_path_factory.mktemp("demo") / "log.txt")
    yield url
    stop_app(proc)


@pytest.mark.parametrize("name,path,heading,images,height", VIEWS, ids=[v[0] for v in VIEWS])
def test_demo_page(page, demo_server, name, path, heading, images, height):
    page.set_default_timeout(300_000)
    page.goto(demo_server + path)
    wait_ready(page, images=images, timeout=300_000)
    assert page.get_by_role("heading", name=heading).first.is_visible()
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
    shown = page.locator('[data-testid="stImage"] img')
    assert shown.count() >= images
    assert all(shown.nth(i).evaluate("i => i.complete && i.naturalWidth > 0") for i in range(shown.count()))
    if name == "failures":  # the failure table is there and has rows
        assert page.locator('[data-testid="stDataFrame"]').count() >= 1
    shot = screenshot(page, f"demo_{name}", height=height)
    assert shot.stat().st_size > 10_000
