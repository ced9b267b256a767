"""Sections that rerun alone, in headless Chromium: a word, pair, query or direction pick reruns only its
section (the run the server starts names its fragment), and the link follows; while a replaced link value
is said on top, or while the kind is a targeted one (the sidebar's targets follow the pair), a pick reruns
the whole page."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.e2e.browser import Runs, wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _query(page) -> dict:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def _pick(page, label: str, option: str) -> None:
    """Open the select box ``label`` and click ``option``; a list closed by a late run is opened again."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has_text=label).locator('[role="combobox"], input').first
    choice = page.locator('[role="option"]').filter(has_text=re.compile(option)).first
    for _ in range(3):
        box.click()
        try:
            choice.wait_for(state="visible", timeout=10_000)
            break
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
            wait_ready(page, timeout=300_000)
    choice.click()


def _settled(page, runs, quiet_ms: int = 2_000, limit_ms: int = 60_000) -> None:
    """Wait until the page has started no run for ``quiet_ms`` (the first visit's late runs are over), so that
    the runs counted after it are the action's own."""
    waited = 0
    while waited < limit_ms:
        seen = len(runs.seen)
        page.wait_for_timeout(quiet_ms)
        waited += quiet_ms
        if len(runs.seen) == seen:
            break
    wait_ready(page, timeout=300_000)


def _acted(page, images: int, act) -> None:
    act()
    page.wait_for_timeout(500)  # the rerun's first message
    wait_ready(page, images=images, timeout=300_000)


def test_explore_word_and_pair_picks_rerun_their_sections(page, app_server):
    runs = Runs(page)
    page.goto(app_server + "/explore?image=3&caption=15&word=2")
    wait_ready(page, images=1, timeout=300_000)  # the first visit fills the caches (slow on a loaded box)
    _settled(page, runs)
    word = runs.after(lambda: _acted(page, 1, lambda: _pick(page, "Word", r"^1 · ")))
    assert word and all(word), word  # fragment runs only: the sidebar and the other sections stay
    assert _query(page)["word"] == "1"
    assert page.locator('[data-testid="stException"]').count() == 0
    image = runs.after(lambda: _acted(page, 1, lambda: page.locator('[data-testid="stNumberInput"]').filter(
        has_text="Image (0").locator('[data-testid="stNumberInputStepUp"]').click()))
    assert image and all(image), image
    query = _query(page)
    assert query["image"] == "4" and "word" not in query  # the word belonged to the old pair
    assert "image 4 with its regions" in page.inner_text("body")
    assert query["caption"] != "15"  # the caption fitted to image 4 inside the section reached the link
    assert page.locator('[data-testid="stException"]').count() == 0


def test_explore_tab_switch_reruns_its_section_and_reaches_the_link(page, app_server):
    runs = Runs(page)
    page.goto(app_server + "/explore?image=3&caption=15")
    wait_ready(page, images=1, timeout=300_000)
    _settled(page, runs)
    tab = runs.after(lambda: _acted(page, 0, lambda: page.get_by_role("tab", name="Curves").click()))
    assert tab and all(tab), tab  # the pair's section only: the sidebar stays
    assert _query(page)["tab"] == "Curves"
    assert page.get_by_role("heading", name="Deletion and insertion").is_visible()
    page.goto(page.url)  # the link reopens the same view
    wait_ready(page, timeout=300_000)
    assert page.get_by_role("heading", name="Deletion and insertion").is_visible()
    assert page.locator('[data-testid="stException"]').count() == 0


def test_a_replaced_link_value_reruns_the_whole_page_and_goes(page, app_server):
    runs = Runs(page)
    page.goto(app_server + "/explore?image=99999&word=2")
    wait_ready(page, images=1, timeout=300_000)
    _settled(page, runs)
    assert page.locator('[data-testid="stAlertContentWarning"]').filter(has_text="99999").count() >= 1
    word = runs.after(lambda: _acted(page, 1, lambda: _pick(page, "Word", r"^1 · ")))
    assert word and not all(word), word  # a whole-page run: the warning on top is redrawn (gone)
    assert page.locator('[data-testid="stAlertContentWarning"]').filter(has_text="99999").count() == 0


def test_a_pair_pick_under_a_targeted_kind_reruns_the_whole_page(page, app_server):
    runs = Runs(page)
    page.goto(app_server + "/explore?image=3&caption=15&iv=mask-regions&targets=1&tkind=mask-regions")
    wait_ready(page, images=1, timeout=300_000)
    _settled(page, runs)
    image = runs.after(lambda: _acted(page, 1, lambda: page.locator('[data-testid="stNumberInput"]').filter(
        has_text="Image (0").locator('[data-testid="stNumberInputStepUp"]').click()))
    assert image and not all(image), image  # the sidebar's targets are the new pair's
    assert _query(page)["image"] == "4"
    assert page.locator('[data-testid="stException"]').count() == 0


def test_retrieval_and_failing_pair_picks_rerun_their_sections(page, app_server):
    runs = Runs(page)
    page.goto(app_server + "/retrieval?caption=15&k=5")
    wait_ready(page, images=10, timeout=300_000)
    _settled(page, runs)
    direction = runs.after(lambda: _acted(page, 0, lambda: page.locator(
        '[data-testid="stButtonGroup"] button').filter(has_text="image → captions").first.click()))
    assert direction and all(direction), direction
    assert _query(page).get("dir") == "i2t"
    page.goto(app_server + "/failing-pair?caption=15")
    wait_ready(page, timeout=300_000)
    _settled(page, runs)
    word = runs.after(lambda: _acted(page, 0, lambda: _pick(page, "Word (the same word", r"^1 · ")))
    assert word and all(word), word
    assert _query(page)["pword"] == "1"
    assert page.locator('[data-testid="stException"]').count() == 0


@pytest.mark.parametrize("start, label, field, target", [
    ("/failing-pair?caption=15", "Word (the same word", "pword", "Failure cases"),
    ("/explore?image=3&caption=15&word=2", "Word", "word", "Retrieval"),
])
def test_a_section_pick_survives_a_page_switch(page, app_server, start, label, field, target):
    """A pick that reran only its section, then another page from the sidebar: Streamlit drops the last page's
    widget state before the next page runs, so the pick must already be the view's value — the next page
    draws (no traceback: the sidebar read a field that was gone) and the link still carries the pick."""
    runs = Runs(page)
    page.goto(app_server + start)
    wait_ready(page, timeout=300_000)
    _settled(page, runs)
    word = runs.after(lambda: _acted(page, 0, lambda: _pick(page, label, r"^1 · ")))
    assert word and all(word), word  # the section alone
    _acted(page, 0, lambda: page.locator('[data-testid="stSidebarNav"] a').filter(has_text=target).first.click())
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.get_by_role("heading", name=target).first.is_visible()
    assert _query(page)[field] == "1"
