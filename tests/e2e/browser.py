"""Browser harness: the app in a real ``streamlit run`` process, driven by headless Chromium.

``app_server`` starts the app on a free port with a small dataset and two checkpoints built
in a temporary folder, polls ``/_stcore/health`` until it answers ``ok``, and stops it at the
end. ``wait_ready`` waits until the script has finished, no skeleton is left, and the
expected number of images has loaded. Screenshots go to ``artifacts/screenshots/``.
``DEMO_VIEWS`` and ``check_demo_view`` are the pages of the app started with no arguments (the bundled
demo): the in-suite test runs them on the committed sample split, ``scripts/demo_screenshots.py`` on the
full demo data to make the README's images.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("CAUSMATCH_CHROMIUM", "/usr/bin/chromium")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_health(url: str, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"the app did not answer {url}/_stcore/health within {timeout:.0f} s")


def start_app(args: list[str], env_extra: dict | None = None, log: Path | None = None):
    """Start ``streamlit run app/streamlit_app.py -- ARGS`` on a free port; returns (proc, url)."""
    port = _free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(REPO / "app" / "streamlit_app.py"),
           "--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port),
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", "--", *args]
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", **(env_extra or {}))
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_health(url, proc)
    except Exception:
        proc.terminate()
        raise
    return proc, url


def stop_app(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


BACKGROUND = '[class*="st-key-bg_status_"]'  # a page's "computing … [Cancel]" status (app/components/background.py)


def wait_ready(page, images: int = 0, timeout: float = 120_000) -> None:
    """Wait until the script stopped, no skeleton remains, no background status is left (the results it
    waited for are drawn), and ``images`` images have loaded."""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)
    page.wait_for_function('() => !document.querySelector(\'[data-testid="stSkeleton"]\')', timeout=timeout)
    if images:
        page.wait_for_function(
            """n => { const imgs = [...document.querySelectorAll('[data-testid="stImage"] img')];
                      return imgs.length >= n && imgs.every(i => i.complete && i.naturalWidth > 0); }""",
            arg=images, timeout=timeout)
    # A rerun may start right after the first one finishes (URL write, widget sync).
    page.wait_for_timeout(300)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)
    if page.locator(BACKGROUND).count():  # whole-split results still computing in the background: they fill in
        page.wait_for_function(f"() => !document.querySelector('{BACKGROUND}')", timeout=timeout)
        page.wait_for_timeout(300)
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)


def screenshot(page, name: str, height: int = 2000) -> Path:
    """Save the page as ``artifacts/screenshots/<name>.png`` (Streamlit scrolls an inner container,
    so the viewport is made tall enough to show the page instead of a full-page capture)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": height})
    page.wait_for_timeout(800)  # plotly re-lays out its charts to the new size
    page.screenshot(path=str(path))
    page.set_viewport_size(size)
    return path


# (name, path, heading, images that must load, screenshot height). Overview comes first: it computes
# every counterfactual matrix of both checkpoints (the cold-start cost); the other pages reuse them.
# The paths fit any scenes split of at least 8 images (the committed sample has exactly 8).
DEMO_VIEWS = [("overview", "/", "Overview", 0, 2000),
              ("explore", "/explore?image=7&caption=35&word=2&iv=random", "Explore a pair", 1, 2600),  # Words: boxes
              ("retrieval", "/retrieval?caption=35&k=5", "Retrieval", 10, 1500),
              ("failures", "/failures", "Failure cases", 0, 1100),
              ("failing-pair", "/failing-pair?caption=35", "Failing pair", 0, 1800),  # overlays are plotly images
              ("compare", "/compare", "Compare checkpoints", 0, 2400)]  # overlays are plotly images


def check_demo_view(page, url: str, view: tuple, shot: str, timeout: float = 300_000) -> Path:
    """Open one of ``DEMO_VIEWS`` at ``url``; fail unless its heading shows, no exception or error panel
    does, and every image loaded; save the screenshot ``shot`` (returns its path)."""
    name, path, heading, images, height = view
    page.set_default_timeout(timeout)
    page.goto(url + path)
    wait_ready(page, images=images, timeout=timeout)
    assert page.get_by_role("heading", name=heading).first.is_visible(), name
    assert page.locator('[data-testid="stException"]').count() == 0, f"{name}: a traceback reached the page"
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0, f"{name}: an error panel shows"
    shown = page.locator('[data-testid="stImage"] img')
    assert shown.count() >= images, (name, shown.count(), images)
    assert all(shown.nth(i).evaluate("i => i.complete && i.naturalWidth > 0") for i in range(shown.count())), name
    if name == "failures":  # the failure table is there and has rows
        assert page.locator('[data-testid="stDataFrame"]').count() >= 1, name
    out = screenshot(page, shot, height=height)
    assert out.stat().st_size > 10_000, (name, out.stat().st_size)
    return out


class Runs:
    """The script runs the server starts for ``page``, read from its websocket: each run's fragment ids
    ([] = the whole page; several ids = those sections only)."""

    def __init__(self, page):
        self.seen: list[list[str]] = []
        self._ids: set[str] = set()
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
        if not isinstance(payload, (bytes, bytearray)):
            return
        msg = ForwardMsg()
        try:
            msg.ParseFromString(bytes(payload))
        except Exception:  # noqa: BLE001 — not a ForwardMsg
            return
        run = msg.metadata.run  # every message names the run that sent it: its id and fragments
        if run.script_run_id and run.script_run_id not in self._ids:
            self._ids.add(run.script_run_id)
            self.seen.append(list(run.fragment_ids))

    def scope(self, since: int) -> str:
        """What the runs after the ``since``-th reran: "section" (fragments only), "page", or "none"."""
        runs = self.seen[since:]
        return "none" if not runs else "section" if all(runs) else "page"

    def after(self, action) -> list[list[str]]:
        """The runs ``action`` started (the page idle again after it)."""
        before = len(self.seen)
        action()
        return self.seen[before:]
