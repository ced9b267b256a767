"""Links in headless Chromium: every page's address opens that page (``/overview`` too), and a view built in the
browser — a widget changed, the link copied — opens identically in a new browser session."""
from __future__ import annotations

import re
import runpy
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.browser import screenshot, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

PAGES = runpy.run_path(str(Path(__file__).resolve().parents[2] / "app" / "streamlit_app.py"),
                       run_name="__mp_main__")["PAGES"]


def _settled(page) -> None:
    wait_ready(page)
    assert page.locator('[data-testid="stException"]').count() == 0, "a traceback reached the page"
    assert page.get_by_text("Page not found").count() == 0, page.url


def _query(page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query, keep_blank_values=True)


@pytest.mark.parametrize("slug", [*PAGES, ""])
def test_every_page_answers_at_its_own_address(page, app_server, slug):
    page.goto(f"{app_server}/{slug}?k=7")
    title = PAGES[slug or "overview"][1]
    page.get_by_role("heading", name=title).first.wait_for()
    _settled(page)
    path = urlparse(page.url).path
    assert path == ("/" if slug in ("", "overview") else f"/{slug}"), page.url  # /overview is the Overview at "/"
    assert _query(page)["k"] == ["7"]  # the link's view came along


def test_a_view_built_in_the_browser_reopens_from_its_link(page, browser, app_server):
    page.goto(app_server + "/failures?dir=i2t&iv=uniform&seed=3&samples=16&rank_lo=1&sign=positive&order=asc")
    page.get_by_role("heading", name="Failure cases").first.wait_for()
    _settled(page)
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text="Sort by")
    box.locator('[role="combobox"], input').first.click()
    page.locator('[role="option"]').filter(has_text=re.compile(r"[Mm]argin")).first.click()
    _settled(page)
    link = page.url
    query = _query(page)
    assert query["sort"] == ["margin"] and query["dir"] == ["i2t"] and query["order"] == ["asc"], query
    assert not any(v[0].startswith("/") for k, v in query.items() if k in ("data", "ckpt", "ckpt2")), query
    table = page.locator('[data-testid="stDataFrame"]').first.inner_text()
    screenshot(page, "link_built")

    other = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        fresh = other.new_page()
        fresh.set_default_timeout(120_000)
        fresh.goto(link)
        fresh.get_by_role("heading", name="Failure cases").first.wait_for()
        _settled(fresh)
        assert _query(fresh) == query
        assert fresh.locator('[data-testid="stDataFrame"]').first.inner_text() == table
        assert fresh.locator('[data-testid="stAlertContentWarning"]').count() == 0  # nothing was replaced
    finally:
        other.close()
