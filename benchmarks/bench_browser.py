"""The app in a real browser: seconds from an action to Streamlit idle, for each interaction, warm caches.

    python benchmarks/bench_browser.py [--repeats 5] [--data DIR --checkpoint CKPT --checkpoint2 CKPT]
                                       [--only explore] [--json out.json]

``streamlit run`` is started on a free port (the demo app by default: the demo data and the two demo
checkpoints) and headless Chromium drives it as a user would: it opens each page, plays every
interaction of :data:`INTERACTIONS` once to fill the caches, then ``--repeats`` more times. One
interaction's time runs from just before the click or key press to the moment the app is idle again:
the script (or fragment) run it started has finished (``[data-testid="stApp"]
[data-test-script-state="notRunning"]``, seen by a MutationObserver in the page), no skeleton is
left, and no further run starts within a quiet period (the link written back, a widget synced). Times
are taken in the page's clock (``performance.now()``), so the browser's own drawing after the last run
is not counted, and neither is Playwright's round trip after it.

Printed: a Markdown table (median, min, max per interaction; the load average before and after),
then one JSON line (``{"bench": "browser", ...}``) with every time. Target: median warm interaction
≤ 1 s. Timings on a busy box are noisy: rerun on a quiet one to judge the target.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CAUSMATCH_CHROMIUM", "/usr/bin/chromium")
IDLE = '[data-testid="stApp"][data-test-script-state="notRunning"]'

# Records every change of the app's script state with its page time (a poll every 5 ms: Streamlit may
# replace the app's element, which a MutationObserver would lose); ``__runs`` counts the runs started.
OBSERVER = """() => {
  if (window.__poll) return;
  const read = () => { const app = document.querySelector('[data-testid="stApp"]');
                       return app ? app.getAttribute('data-test-script-state') : null; };
  window.__runs = 0; window.__last = performance.now(); window.__state = read();
  window.__poll = setInterval(() => {
    const s = read();
    if (s === window.__state) return;
    window.__state = s; window.__last = performance.now();
    if (s === 'running') window.__runs += 1;
  }, 5);
}"""
SETTLED = """quiet => window.__state === 'notRunning' && !document.querySelector('[data-testid="stSkeleton"]')
                  && performance.now() - window.__last >= quiet"""


class _Choose:
    """Choose an option of the select box labelled ``label`` other than the selected one: the ``n``-th (0-based)
    of the others, or the first of the others that matches the regex ``match`` — so that every call changes the
    value (an option already selected starts no run: the interaction would never end). Opening the list
    (:meth:`prepare`, untimed: a first click may only focus the box once it scrolled into view) is the browser's;
    the timed action is the option's click."""

    def __init__(self, label: str, n: int = 0, match: str | None = None):
        self.label, self.n, self.match = label, n, match
        self.repeat = 0

    def prepare(self, page, repeat: int = 0) -> None:
        box = page.locator('[data-testid="stSelectbox"]').filter(has_text=self.label).locator(
            '[role="combobox"], input').first
        self.repeat = repeat
        for _ in range(3):
            box.click(timeout=30_000)
            try:
                self._choice(page).wait_for(state="visible", timeout=5_000)
                return
            except Exception:  # noqa: BLE001 — Playwright's timeout: close whatever opened, click again
                page.keyboard.press("Escape")
        raise RuntimeError(f"the select box {self.label!r} did not open")

    def _choice(self, page):
        others = page.locator('[role="option"]:not([aria-selected="true"])')
        if self.match is not None:
            return others.filter(has_text=re.compile(self.match)).first
        return others.nth(self.n)

    def __call__(self, page, repeat: int) -> None:
        self._choice(page).click()


def _step(page, label: str, up: bool) -> None:
    """Press the + (or −) button of the number input labelled ``label``."""
    box = page.locator('[data-testid="stNumberInput"]').filter(has_text=label).first
    box.locator(f'[data-testid="stNumberInputStep{"Up" if up else "Down"}"]').click()


def _tab(title: str):
    return lambda page, repeat: page.get_by_role("tab", name=title).click()


def _segment(page, option: str) -> None:
    page.locator('[data-testid="stButtonGroup"] button').filter(has_text=option).first.click()


def _direction(page, repeat: int) -> None:
    """Retrieval's direction: the one not shown now (the link says which), so that the click changes it."""
    shown = "i2t" if "dir=i2t" in page.url else "t2i"
    _segment(page, "caption → images" if shown == "i2t" else "image → captions")


def _nav(page, title: str) -> None:
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text=title).first.click()


def _table_row(page, row: int = 0) -> None:
    """Click the selection cell of a row of the page's first data frame (a canvas: by position)."""
    grid = page.locator('[data-testid="stDataFrame"]').first
    grid.scroll_into_view_if_needed()
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 18, box["y"] + 35 * (row + 1) + 17)


# (page path to open first, name, action(page, repeat)). Actions alternate between two values so that
# every warm repeat hits what the cold pass computed. The path is opened once per block of interactions
# on it; "switch" rows change the page and end on the next block's page.
INTERACTIONS = [
    ("/explore?image=7&caption=35&iv=random", "Explore: word pick",
     _Choose("Word", 1)),
    (None, "Explore: image pick (+/−)", lambda p, r: _step(p, "Image (0", up=r % 2 == 0)),
    (None, "Explore: caption pick", _Choose("Caption", 0)),
    (None, "Explore: intervention change (sidebar)", _Choose("Counterfactual attention", match=r"^(uniform|random)$")),
    (None, "Explore: tab Words → Matrices", _tab("Matrices")),
    (None, "Explore: image pick on Matrices (+/−)", lambda p, r: _step(p, "Image (0", up=r % 2 == 0)),
    (None, "Explore: tab Matrices → Regions", _tab("Regions")),
    (None, "Explore: region pick", _Choose("Region", 1)),
    (None, "Explore: tab Regions → Curves", _tab("Curves")),
    (None, "Explore: tab Curves → Words", _tab("Words")),
    (None, "page switch: Explore → Retrieval", lambda p, r: _nav(p, "Retrieval")),
    ("/retrieval?caption=35&k=5", "Retrieval: query (+/−)", lambda p, r: _step(p, "Caption query", up=r % 2 == 0)),
    (None, "Retrieval: direction", _direction),
    ("/failing-pair?caption=35", "Failing pair: word pick",
     _Choose("Word (the same word", 1)),
    (None, "page switch: Failing pair → Failure cases", lambda p, r: _nav(p, "Failure cases")),
    ("/failures", "Failure cases: row select → Failing pair", lambda p, r: _table_row(p, r % 2)),
    ("/explore?image=7&caption=35&iv=random", "page switch: Explore → Overview", lambda p, r: _nav(p, "Overview")),
]


def _settle(page, quiet_ms: int, timeout_ms: float) -> None:
    page.wait_for_function(SETTLED, arg=quiet_ms, timeout=timeout_ms, polling=50)


def _open(page, url: str, quiet_ms: int, timeout_ms: float) -> None:
    page.goto(url)
    page.wait_for_selector(IDLE, state="attached", timeout=timeout_ms)
    page.evaluate(OBSERVER)
    _settle(page, max(quiet_ms, 1500), timeout_ms)  # the first run of a new session may start late


def _timed(page, action, repeat: int, quiet_ms: int, timeout_ms: float) -> float:
    """Seconds from just before ``action`` to the end of the last run it started (page clock)."""
    page.evaluate(OBSERVER)  # a page switch by URL loads a new document: observe it again
    if hasattr(action, "prepare"):
        action.prepare(page, repeat)
    runs, t0 = page.evaluate("() => [window.__runs, performance.now()]")
    action(page, repeat)
    # A run starts within moments of the action or never (an action that changed nothing): said, not waited for.
    page.wait_for_function("n => window.__runs > n", arg=runs, timeout=min(timeout_ms, 30_000), polling=20)
    _settle(page, quiet_ms, timeout_ms)
    return (page.evaluate("() => window.__last") - t0) / 1000.0


def play(url: str, repeats: int, only: str, quiet_ms: int, timeout_ms: float) -> dict[str, tuple[list[float], str]]:
    """{interaction: ([warm seconds, ...], what it reran)}: one cold pass, then ``repeats`` warm ones."""
    from playwright.sync_api import sync_playwright
    chosen = [row for row in INTERACTIONS if only.lower() in row[1].lower()] if only else INTERACTIONS
    times: dict[str, list[float]] = {name: [] for _, name, _ in chosen}
    scopes: dict[str, set[str]] = {name: set() for _, name, _ in chosen}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(timeout_ms)
        from tests.e2e.browser import Runs  # the repository root is on sys.path (main)
        runs = Runs(page)
        for repeat in range(repeats + 1):
            here, stale = None, False
            for path, name, action in INTERACTIONS:
                if path is not None:
                    here = path
                if (path, name, action) not in chosen:
                    continue
                elsewhere = page.url.split("?")[0] != (url + here).split("?")[0]
                if path is not None or stale or elsewhere or "row select" in name:
                    _open(page, url + here, quiet_ms, timeout_ms)
                    stale = False
                since = len(runs.seen)
                try:
                    seconds = _timed(page, action, repeat, quiet_ms, timeout_ms)
                except Exception as exc:  # noqa: BLE001 — one interaction that never settles: said, skipped
                    print(f"{name}: no idle app within the timeout ({type(exc).__name__}), skipped", file=sys.stderr)
                    stale = True  # the next interaction reopens its page
                    continue
                page.wait_for_timeout(50)  # the websocket's last frames reach the listener
                scopes[name].add(runs.scope(since))
                if page.locator('[data-testid="stException"]').count():
                    raise SystemExit(f"{name}: a traceback reached the page")
                if repeat:  # the first pass fills the caches
                    times[name].append(seconds)
                print(f"{'warm' if repeat else 'cold'} {repeat}: {name}: {seconds:.3f} s", file=sys.stderr)
        browser.close()
    return {name: (times[name], "/".join(sorted(scopes[name]))) for name in times}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="", help="dataset folder (default: the demo scenes)")
    parser.add_argument("--checkpoint", default="", help="default: the demo checkpoints")
    parser.add_argument("--checkpoint2", default="")
    parser.add_argument("--repeats", type=int, default=5, help="warm repeats of each interaction")
    parser.add_argument("--only", default="", help="only the interactions whose name contains this")
    parser.add_argument("--quiet-ms", type=int, default=400,
                        help="no new run for this long after the last one ends = idle")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for one interaction")
    parser.add_argument("--url", default="", help="drive an app already running there instead of starting one")
    parser.add_argument("--json", default="", help="also write the JSON line to this file")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"error: no Chromium at {CHROMIUM} — set CAUSMATCH_CHROMIUM to its path")
    sys.path.insert(0, str(REPO))
    from tests.e2e.browser import start_app, stop_app
    load_before = os.getloadavg()
    cli = [arg for flag, value in (("--data", args.data), ("--checkpoint", args.checkpoint),
                                   ("--checkpoint2", args.checkpoint2)) if value for arg in (flag, value)]
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = (None, args.url.rstrip("/")) if args.url else start_app(cli, log=Path(tmp) / "streamlit.log")
        try:
            times = play(url, args.repeats, args.only, args.quiet_ms, args.timeout * 1000)
        finally:
            if proc is not None:
                stop_app(proc)
    load_after = os.getloadavg()
    print(f"\nload average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; {os.cpu_count()} CPUs; "
          f"{args.repeats} warm repeats\n")
    print("| interaction (warm) | reruns | median (s) | min (s) | max (s) |\n|---|---|---|---|---|")
    for name, (vals, scope) in times.items():
        print(f"| {name} | {scope} | {statistics.median(vals):.3f} | {min(vals):.3f} | {max(vals):.3f} |")
    every = [x for vals, _ in times.values() for x in vals]
    overall = statistics.median(every) if every else float("nan")
    print(f"\nmedian of all warm interactions: {overall:.3f} s (target ≤ 1 s): {'OK' if overall <= 1.0 else 'MISSED'}")
    line = json.dumps({"bench": "browser", "repeats": args.repeats, "load_before": load_before,
                       "load_after": load_after, "median_all_s": round(overall, 4),
                       "times_s": {k: [round(x, 4) for x in v] for k, (v, _) in times.items()},
                       "reruns": {k: scope for k, (_, scope) in times.items()}})
    print(line)
    if args.json:
        from causmatch.outputs import atomic_write_text
        atomic_write_text(Path(args.json), line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
