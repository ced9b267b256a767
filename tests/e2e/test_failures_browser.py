"""Failure cases in headless Chromium at 1280 px: the table fits, and the slice and sort travel in the link."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.browser import screenshot, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

SCROLL = """() => [...document.querySelectorAll('[data-testid="stDataFrame"]')].map(d => {
    const s = d.querySelector('.dvn-scroller'); return s ? s.scrollWidth - s.clientWidth : 0; })"""


@pytest.fixture
def narrow(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(120_000)
    yield pg
    context.close()


def _query(page) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


@pytest.mark.parametrize("direction", ["t2i", "i2t"])
def test_the_tables_fit_1280_px_and_the_link_keeps_slice_and_sort(narrow, app_server, direction):
    narrow.goto(app_server + f"/failures?dir={direction}&rank_lo=1&slice=regions:5&sort=margin&order=asc")
    wait_ready(narrow)
    narrow.locator('[data-testid="stDataFrame"]').first.wait_for()
    assert narrow.locator('[data-testid="stException"]').count() == 0
    assert max(narrow.evaluate(SCROLL)) <= 1, narrow.evaluate(SCROLL)  # no table scrolls sideways
    query = _query(narrow)
    kept = (query["slice"], query["sort"], query["order"], query.get("dir", "t2i"))
    assert kept == ("regions:5", "margin", "asc", direction)
    expect = "30 of 60 query captions" if direction == "t2i" else "6 of 12 query images"
    assert re.search(rf"\b{expect} in the slice valid regions: 5 regions", narrow.inner_text("body")), expect
    screenshot(narrow, f"failures_slice_{direction}")
