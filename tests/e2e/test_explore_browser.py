"""Explore in headless Chromium: a downloaded overlay carries its colour bar and a name that says what it
shows; the overlays' colour bars are chart axes; the whole-image toggle travels in the link."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import cv2
import numpy as np
import pytest

from tests.e2e.browser import screenshot, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _download(page, button: str):
    """Click a download button and return the download. On a loaded box a click that lands while the page is
    still settling can be lost: wait for the app to be idle and click once more (the file is checked the same)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in range(2):
        try:
            with page.expect_download(timeout=90_000) as info:
                page.get_by_role("button", name=button).click()
            return info.value
        except PlaywrightTimeout:
            if attempt:
                raise
            wait_ready(page, images=1)


def test_overlay_png_has_its_colour_bar_and_a_descriptive_name(page, app_server, tmp_path):
    page.goto(app_server + "/explore?image=3&caption=15&word=2&iv=uniform&seed=4")
    wait_ready(page, images=1)
    assert page.locator('[data-testid="stException"]').count() == 0
    # The overlays are plotly charts whose colour bars are axes with tick labels (text, not pixels).
    bars = page.locator(".colorbar")
    assert bars.count() >= 2
    ticks = [t.strip() for t in page.eval_on_selector_all(".colorbar text", "els => els.map(e => e.textContent)")]
    assert "0" in ticks and not any(re.fullmatch(r"[−-]0(\.0*)?", t) for t in ticks), ticks
    download = _download(page, "PNG factual")
    name = download.suggested_filename
    assert re.fullmatch(r"A-ckpt-a_img3_cap15_uniform_seed4_w2-[a-z]+_factual\.png", name), name
    path = tmp_path / name
    download.save_as(path)
    png = cv2.imread(str(path))
    assert png is not None and png.shape[1] > png.shape[0]  # the 160-pixel square image plus its bar
    assert (np.abs(png.astype(int) - png[..., :1]).sum(axis=2) > 60).any()  # the bar's colours, not only grey
    page.get_by_text("Paint the whole-image region", exact=True).first.click()
    wait_ready(page, images=1)
    assert parse_qs(urlparse(page.url).query).get("whole") == ["1"]
    assert "painted too" in page.inner_text("body")
    screenshot(page, "explore_overlays", height=2600)
