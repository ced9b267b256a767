"""The Failing pair page in headless Chromium: drawn without a traceback, walked, back to the table."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.browser import screenshot, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _ready(page) -> None:
    wait_ready(page)
    page.locator(".js-plotly-plot").first.wait_for()  # the overlays' figure
    assert page.locator('[data-testid="stException"]').count() == 0, "a traceback reached the page"
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0, "an error panel shows"


def test_failing_pair_page(page, app_server):
    page.goto(app_server + "/failing-pair?caption=0&sort=margin")
    _ready(page)
    assert page.get_by_role("heading", name="Failing pair").is_visible()
    text = page.inner_text("body")
    assert "true image 0 · best wrong image" in text and "Why “" in text, text[-600:]
    box = page.locator(".st-key-w_pword")
    assert "most informative:" in (box.inner_text() + " ".join(i.input_value() for i in box.locator("input").all()))
    out = screenshot(page, "failing_pair", height=1800)
    assert out.stat().st_size > 10_000
    page.locator(".st-key-fp_next button").click()
    page.wait_for_url(lambda url: parse_qs(urlparse(url).query).get("caption") != ["0"], timeout=120_000)
    _ready(page)
    page.locator(".st-key-fp_back button").click()
    page.wait_for_url(re.compile(r"/failures"), timeout=120_000)
    wait_ready(page)
    assert page.get_by_role("heading", name="Failure cases").is_visible()
    assert parse_qs(urlparse(page.url).query).get("sort") == ["margin"]  # the table's sort travelled both ways


def test_failing_pair_image_query_in_dark_width(page, app_server):
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.goto(app_server + "/failing-pair?dir=i2t&image=3")
    _ready(page)
    text = page.inner_text("body")
    assert "True caption" in text and "Best wrong caption" in text
    screenshot(page, "failing_pair_i2t", height=1800)
