"""The app in headless Chromium: every page, a pair, an intervention, a failure case, a shared URL."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.browser import screenshot, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, "a traceback reached the page"


def _pick(page, label: str, option: str) -> None:
    """Choose ``option`` in the select box labelled ``label``."""
    page.locator('[data-testid="stSelectbox"]').filter(has_text=label).locator('[role="combobox"], input').first.click()
    page.locator('[role="option"]').filter(has_text=re.compile(rf"^{re.escape(option)}$")).first.click()


def _checked(page, name: str) -> None:
    """No traceback on the page, then its screenshot ``name``."""
    _no_exception(page)
    screenshot(page, name)


def _metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label).first
    return box.locator('[data-testid="stMetricValue"]').inner_text()


def test_overview(page, app_server):
    page.goto(app_server)
    wait_ready(page)
    assert page.get_by_role("heading", name="Overview").is_visible()
    assert page.get_by_text("Retrieval (R@K, %)").is_visible()
    assert page.get_by_text("Grounding accuracy by word type").is_visible()
    _checked(page, "overview")


def test_explore_pair_intervention_and_shared_url(page, app_server):
    page.goto(app_server + "/explore")
    wait_ready(page, images=1)
    box = page.get_by_label(re.compile(r"^Image \(0–"))
    box.fill("3")
    box.press("Enter")
    wait_ready(page, images=1)
    assert "image 3 with its regions" in page.inner_text("body")
    _pick(page, "Counterfactual attention", "uniform")
    wait_ready(page, images=1)
    assert "intervention: uniform" in page.inner_text("body")
    _no_exception(page)
    score, effect = _metric(page, "Score S(α)"), _metric(page, "Effect")
    screenshot(page, "explore", height=2800)
    query = parse_qs(urlparse(page.url).query)
    assert query["image"] == ["3"] and query["iv"] == ["uniform"]
    page.goto(page.url)  # a new browser session from the shared link
    wait_ready(page, images=1)
    assert _metric(page, "Score S(α)") == score and _metric(page, "Effect") == effect
    assert "intervention: uniform" in page.inner_text("body")
    assert page.get_by_label(re.compile(r"^Image \(0–")).input_value() == "3"


def test_retrieval(page, app_server):
    page.goto(app_server + "/retrieval?caption=7")
    wait_ready(page, images=5)
    text = page.inner_text("body")
    assert "Factual top-k" in text and "Counterfactual top-k" in text and "true image 1" in text
    _checked(page, "retrieval")


def test_failure_case_opens_its_failing_pair(page, app_server):
    page.goto(app_server + "/failures")
    wait_ready(page)
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.wait_for()
    _no_exception(page)
    screenshot(page, "failures")
    bb = grid.bounding_box()
    page.mouse.click(bb["x"] + 12, bb["y"] + 35 + 17)  # the first row's selection cell
    page.wait_for_url(re.compile(r"/failing-pair"), timeout=120_000)  # a row opens its failing pair
    wait_ready(page)
    page.locator(".js-plotly-plot").first.wait_for()
    assert page.get_by_role("heading", name="Failing pair").is_visible()
    assert "failure 1 of" in page.inner_text("body")  # the row opened is the list's first
    _no_exception(page)


def test_compare(page, app_server):
    page.goto(app_server + "/compare")
    wait_ready(page)
    assert page.get_by_role("heading", name="Compare checkpoints").is_visible()
    assert page.locator('[data-testid="stMetric"]').filter(has_text="Score S(α)").count() == 2
    # Overlays (factual row, counterfactual row), two matrices and two per-word effect charts, all plotly.
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 6
    _checked(page, "compare")


def test_bad_checkpoint_shows_error_panel(page, app_server):
    page.goto(app_server + "/explore?ckpt=/no/such/checkpoint")
    wait_ready(page)
    alert = page.locator('[data-testid="stAlertContentError"]').first
    assert "CheckpointError" in alert.inner_text()
    _no_exception(page)
