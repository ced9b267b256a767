"""App speed: warm re-render time of each interaction, and the first page from a fresh start.

    python benchmarks/bench_app.py [--data DIR] [--checkpoint CKPT] [--checkpoint2 CKPT] [--repeats 3]
    python benchmarks/bench_app.py --first-page [--checkpoint CKPT] [--checkpoint2 CKPT]

Warm interactions (AppTest, in-process): every interaction of the list below is played once to
fill the caches, then ``--repeats`` more times; the table gives the median and the worst time of
the warm runs (target: at most 1 s each).

First page (``--first-page``): a fresh data folder and a fresh analysis cache (temporary folders
via CAUSMATCH_DATA / CAUSMATCH_CACHE), ``streamlit run`` started, and headless Chromium opens the
app; reported: seconds until the Overview's title shows, and until its script has finished (target:
the first page in at most 60 s). Defaults: the demo data and the two demo checkpoints.
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


def first_page(args) -> None:
    sys.path.insert(0, str(REPO))  # a script run by path sees only benchmarks/; the harness is tests.e2e.browser
    from playwright.sync_api import sync_playwright

    from tests.e2e.browser import start_app, stop_app  # the e2e harness: free port, health poll
    with tempfile.TemporaryDirectory() as tmp:
        env = {"CAUSMATCH_DATA": str(Path(tmp) / "scenes"), "CAUSMATCH_CACHE": str(Path(tmp) / "cache")}
        cli = ["--checkpoint", args.checkpoint] + (["--checkpoint2", args.checkpoint2] if args.checkpoint2 else [])
        t0 = time.perf_counter()
        proc, url = start_app(cli, env_extra=env, log=Path(tmp) / "log.txt")
        t_health = time.perf_counter() - t0
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium")
                page = browser.new_page()
                page.set_default_timeout(900_000)
                page.goto(url)
                page.get_by_role("heading", name="Overview").wait_for()
                t_title = time.perf_counter() - t0
                page.wait_for_selector('[data-testid="stDataFrame"]')
                page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
                t_done = time.perf_counter() - t0
                browser.close()
        finally:
            stop_app(proc)
    print(f"server healthy: {t_health:.1f} s · Overview title shown: {t_title:.1f} s · "
          f"Overview complete (factual R@K of every checkpoint, grounding): {t_done:.1f} s (target ≤ 60 s)")


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
    parser.add_argument("--first-page", action="store_true", help="time the first page from a fresh start")
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
