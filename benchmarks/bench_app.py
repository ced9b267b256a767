"""App speed: warm re-render time of each interaction, and the first page from a fresh start.

    python benchmarks/bench_app.py [--data DIR] [--checkpoint CKPT] [--checkpoint2 CKPT] [--repeats 3]
    python benchmarks/bench_app.py --first-page [--pages overview,explore,...] [--checkpoint CKPT] [--checkpoint2 CKPT]

Warm interactions (AppTest, in-process): every interaction of the list below is played once to
fill the caches, then ``--repeats`` more times; the table gives the median and the worst time of
the warm runs (target: at most 1 s each).

First visits (``--first-page``): for each page (``--pages``, default every page of the demo tour,
``tests.e2e.browser.DEMO_VIEWS``), a fresh data folder and a fresh analysis cache (temporary folders
via CAUSMATCH_DATA / CAUSMATCH_CACHE), ``streamlit run`` started, and headless Chromium opens that page
first, as a new user following a link to it would; reported per page: seconds until the server answers,
until the page's title shows, and until it is complete (script finished, no skeleton, its images
loaded) — the demo data build included (target: each page complete in at most 60 s). Then, in the same
browser and server, every other page of the tour in order (``then`` rows: what a user who goes on pays).
Defaults: the demo data and the two demo checkpoints. Prints a table and one JSON line.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "app" / "streamlit_app.py"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# (page, description, action(at, run) on the AppTest) — actions set widgets by key, as a user would.
# ``run`` is 0 for the cold pass, 1.. for the warm ones; the "new" rows change with it, so they
# measure an uncached computation (the analysis engine's speed) even in the warm passes.
INTERACTIONS = [
    ("overview", "open Overview", None),
    ("explore", "open Explore a pair", None),
    ("explore", "pick image 1", lambda at, r: at.number_input(key="w_image").set_value(1)),
    ("explore", "pick word 2", lambda at, r: at.selectbox(key="w_word").set_value(2)),
    ("explore", "intervention → uniform", lambda at, r: at.selectbox(key="w_iv").set_value("uniform")),
    ("explore", "intervention → random", lambda at, r: at.selectbox(key="w_iv").set_value("random")),
    ("explore", "NEW image each run (uncached)", lambda at, r: at.number_input(key="w_image").set_value(20 + r)),
    ("retrieval", "open Retrieval", None),
    ("retrieval", "caption query 7", lambda at, r: at.number_input(key="w_caption").set_value(7)),
    ("retrieval", "image query (i2t)", lambda at, r: at.segmented_control(key="w_dir").set_value("i2t")),
    ("retrieval", "NEW image query each run (uncached)",
     lambda at, r: at.number_input(key="w_image").set_value(40 + r)),
    ("failures", "open Failure cases", None),
    ("failures", "sort by margin", lambda at, r: at.selectbox(key="w_sort").set_value("margin")),
    ("failures", "effect sign positive", lambda at, r: at.selectbox(key="w_sign").set_value("positive")),
    ("compare", "open Compare checkpoints", None),
]


def _app(args):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(str(APP), default_timeout=900)
    at.query_params.update(data=args.data, ckpt=args.checkpoint, ckpt2=args.checkpoint2)
    return at


def _play(args, run: int) -> list[float]:
    """One pass over INTERACTIONS in a fresh AppTest session; returns the seconds of each."""
    at = _app(args).run()
    times, page = [], "overview"
    for target, _, action in INTERACTIONS:
        t0 = time.perf_counter()
        if target != page:
            at.switch_page(f"app_pages/{target}.py")
            page = target
        if action is not None:
            action(at, run)
        at.run()
        times.append(time.perf_counter() - t0)
        if at.exception or at.error:
            raise SystemExit(f"{target}: {[e.value for e in at.exception] or [e.value for e in at.error]}")
    return times


def warm(args) -> None:
    t0 = time.perf_counter()
    _play(args, 0)
    print(f"cold pass (fills the caches): {time.perf_counter() - t0:.1f} s")
    runs = [_play(args, r + 1) for r in range(args.repeats)]
    print("\n| interaction | warm median (s) | warm max (s) |\n|---|---|---|")
    for i, (page, what, _) in enumerate(INTERACTIONS):
        vals = [r[i] for r in runs]
        print(f"| {page}: {what} | {statistics.median(vals):.3f} | {max(vals):.3f} |")
    cached = [i for i, (_, what, _) in enumerate(INTERACTIONS) if "uncached" not in what]
    worst = max(r[i] for r in runs for i in cached)
    print(f"\nworst cached interaction: {worst:.3f} s (target ≤ 1 s): {'OK' if worst <= 1.0 else 'MISSED'}")


def _complete(page, view: tuple, t0: float, timeout_ms: float) -> tuple[float, float, float]:
    """(seconds to the title, to the page drawn, to complete) of one page of the demo tour, opened in ``page``:
    *drawn* — the page's run has finished and no skeleton is left (what is ready is on the page, a whole-split
    result still computing shows its status); *complete* — those background results landed too."""
    from tests.e2e.browser import wait_ready
    _, _, heading, images, _ = view
    page.get_by_role("heading", name=heading).first.wait_for(timeout=timeout_ms)
    t_title = time.perf_counter() - t0
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_ms)
    page.wait_for_function('() => !document.querySelector(\'[data-testid="stSkeleton"]\')', timeout=timeout_ms)
    t_drawn = time.perf_counter() - t0
    wait_ready(page, images=images, timeout=timeout_ms)
    if page.locator('[data-testid="stException"]').count():
        raise SystemExit(f"{view[0]}: a traceback reached the page")
    return t_title, t_drawn, time.perf_counter() - t0 - 0.3  # wait_ready's settling pause is not the page's


def _first_visit(args, view: tuple, then: bool) -> list[dict]:
    """Open ``view`` first from a fresh start; with ``then``, every other page of the tour after it."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.browser import DEMO_VIEWS, start_app, stop_app  # the e2e harness: free port, health poll
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {"CAUSMATCH_DATA": str(Path(tmp) / "scenes"), "CAUSMATCH_CACHE": str(Path(tmp) / "cache")}
        cli = ["--checkpoint", args.checkpoint] + (["--checkpoint2", args.checkpoint2] if args.checkpoint2 else [])
        t0 = time.perf_counter()
        proc, url = start_app(cli, env_extra=env, log=Path(tmp) / "log.txt")
        t_health = time.perf_counter() - t0
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium")
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                page.set_default_timeout(args.timeout * 1000)
                page.goto(url + view[1])
                t_title, t_drawn, t_done = _complete(page, view, t0, args.timeout * 1000)
                out.append({"page": view[0], "first": True, "health_s": round(t_health, 2),
                            "title_s": round(t_title, 2), "drawn_s": round(t_drawn, 2), "complete_s": round(t_done, 2)})
                for other in [v for v in DEMO_VIEWS if v[0] != view[0]] if then else []:
                    t1 = time.perf_counter()
                    page.goto(url + other[1])
                    t_title, t_drawn, t_done = _complete(page, other, t1, args.timeout * 1000)
                    out.append({"page": other[0], "first": False, "after": view[0], "title_s": round(t_title, 2),
                                "drawn_s": round(t_drawn, 2), "complete_s": round(t_done, 2)})
                browser.close()
        finally:
            stop_app(proc)
    return out


def first_page(args) -> None:
    sys.path.insert(0, str(REPO))  # a script run by path sees only benchmarks/; the harness is tests.e2e.browser
    import json

    from tests.e2e.browser import DEMO_VIEWS
    known = {v[0]: v for v in DEMO_VIEWS}
    wanted = [name.strip() for name in args.pages.split(",") if name.strip()] or list(known)
    unknown = [name for name in wanted if name not in known]
    if unknown:
        raise SystemExit(f"error: unknown page(s) {', '.join(unknown)} — choose from {', '.join(known)}")
    load_before = os.getloadavg()
    rows = []
    for n, name in enumerate(wanted):
        rows += _first_visit(args, known[name], then=args.then and n == 0)
        print(f"{name}: {rows[-1] if not args.then or n else rows[0]}", file=sys.stderr)
    load_after = os.getloadavg()
    print(f"\nload average (1, 5, 15 min) before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, "
          f"after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; {os.cpu_count()} CPUs\n")
    print("| page | opened | server answers (s) | title shown (s) | page drawn (s) | background results in (s) |\n"
          "|---|---|---|---|---|---|")
    for r in rows:
        opened = "first, fresh start (data build included)" if r["first"] else f"next, after {r['after']}"
        health = f"{r['health_s']:.1f}" if "health_s" in r else "—"
        times = f"{r['title_s']:.1f} | {r['drawn_s']:.1f} | {r['complete_s']:.1f}"
        print(f"| {r['page']} | {opened} | {health} | {times} |")
    firsts = [r["drawn_s"] for r in rows if r["first"]]
    print(f"\nslowest first render (page drawn): {max(firsts):.1f} s (target ≤ 60 s): "
          f"{'OK' if max(firsts) <= 60 else 'MISSED'}")
    print(json.dumps({"bench": "first_visits", "load_before": load_before, "load_after": load_after, "rows": rows}))


def random_checkpoints(data: str, root: Path) -> tuple[str, str]:
    """Two untrained checkpoints with the demo's model config (configs/scenes.json), for timing before
    the demo checkpoints exist. Speed does not depend on the weights; the output says these were used.
    """
    import json

    import torch

    from causmatch.checkpoint import save_matcher
    from causmatch.data import Vocabulary, default_scenes_dir, ensure_scenes, load_split
    from causmatch.models import Matcher, MatcherConfig
    folder = Path(data) if data else ensure_scenes(default_scenes_dir(), splits=("test",))
    split = load_split(folder, "test")
    paths = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = json.loads((REPO / "configs" / "scenes.json").read_text())["model"]
        config = MatcherConfig.from_dict({**model, "img_dim": int(split.features.shape[2])})
        path = root / f"random-{seed}"
        save_matcher(Matcher(config, Vocabulary.from_captions(split.captions)), path)
        paths.append(str(path))
    print(f"timing with two UNTRAINED checkpoints ({config.embed_size}-d, configs/scenes.json) in {root}")
    return paths[0], paths[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="", help="dataset folder (default: the demo scenes)")
    parser.add_argument("--checkpoint", default=str(REPO / "checkpoints" / "causmatch-scenes"))
    parser.add_argument("--checkpoint2", default=str(REPO / "checkpoints" / "scan-scenes"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--first-page", action="store_true", help="time each page's first visit from a fresh start")
    parser.add_argument("--pages", default="", help="--first-page: these pages only (comma-separated names)")
    parser.add_argument("--then", action="store_true",
                        help="--first-page: after the first page, visit the tour's other pages in the same session")
    parser.add_argument("--timeout", type=float, default=900.0, help="--first-page: seconds to wait for a page")
    parser.add_argument("--random-checkpoints", action="store_true",
                        help="time with two untrained default-config checkpoints (before the demo ones exist)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.random_checkpoints:
            args.checkpoint, args.checkpoint2 = random_checkpoints(args.data, Path(tmp))
        first_page(args) if args.first_page else warm(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
