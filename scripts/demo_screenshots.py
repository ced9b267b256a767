"""The README's screenshots: the app on the bundled demo, as the README starts it, in headless Chromium.

    .venv/bin/python -m scripts.demo_screenshots [--docs]

Starts ``streamlit run app/streamlit_app.py`` with no arguments (both demo checkpoints and the scenes test
split, built by ``ensure_scenes`` when missing, as on a fresh clone), visits every page with the checks of
the in-suite test ``tests/e2e/test_demo_start.py`` (heading shown, no exception or error panel, every image
loaded) and saves ``artifacts/screenshots/demo_*.png``. ``--docs`` also writes them, 1100 pixels wide, to
``docs/images/app_*.png`` (the README's images). ``CAUSMATCH_DATA`` / ``CAUSMATCH_CACHE`` point the data and
the analysis cache elsewhere (an empty folder times a cold start without touching ``assets/``). Exits 1 with
the failed check when a page is wrong. Needs Chromium (``bash .ci/setup --test``).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.browser import CHROMIUM, DEMO_VIEWS, REPO, check_demo_view, start_app, stop_app

DOCS_WIDTH = 1100


def to_docs(shot: Path, name: str) -> Path:
    """``shot`` resized to ``DOCS_WIDTH`` pixels wide as ``docs/images/app_<name>.png``."""
    import cv2

    from causmatch.outputs import atomic_write

    img = cv2.imread(str(shot))
    h, w = img.shape[:2]
    small = cv2.resize(img, (DOCS_WIDTH, round(h * DOCS_WIDTH / w)), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", small)
    if not ok:
        raise RuntimeError(f"could not encode {shot}")
    out = REPO / "docs" / "images" / f"app_{name}.png"
    atomic_write(out, lambda f: f.write(png.tobytes()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--docs", action="store_true", help="also write docs/images/app_*.png (the README's images)")
    args = ap.parse_args(argv)
    if not (REPO / "checkpoints" / "causmatch-scenes").is_dir():
        print("error: the bundled demo checkpoints are missing from checkpoints/", file=sys.stderr)
        return 2
    if not Path(CHROMIUM).exists():
        print(f"error: no Chromium at {CHROMIUM} — run `bash .ci/setup --test`", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        proc, url = start_app([], log=Path(tmp) / "streamlit.log")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                for view in DEMO_VIEWS:
                    try:
                        shot = check_demo_view(page, url, view, shot=f"demo_{view[0]}")
                    except AssertionError as err:
                        print(f"error: page {view[0]} failed its check: {err}", file=sys.stderr)
                        return 1
                    print(f"{view[0]}: {shot.relative_to(REPO)} ({time.perf_counter() - t0:.0f} s)")
                    if args.docs:
                        print(f"  -> {to_docs(shot, view[0]).relative_to(REPO)}")
                browser.close()
        finally:
            stop_app(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
