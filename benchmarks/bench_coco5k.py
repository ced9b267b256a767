"""A COCO-5K-shaped gallery in the analysis engine: cache load, failure table, explain, re-rank, peak memory.

Writes a fake COCO-5K-shaped split — 5,000 images × 36 regions (features of ``--feat`` values each, small to
keep the disk low) and 5 captions of 8-14 words per image (25,000) — and a randomly initialised matcher with
embed size 1,024 (bi-GRU, t2i, SCAN's defaults), then fills the analysis cache the way the app finds it:

* ``--fill random`` (default; what a busy CPU allows): the gallery entry holds random unit vectors of the
  encoded shapes (``[5000, 36, 1024]`` regions, ``[25000, W, 1024]`` words, the captions' real tokens;
  ``--gallery encode``: the split really encoded by the model, ~10 CPU-minutes), the whole-split matrices
  are random float32 matrices (true pairs raised, so ranks vary), both written through the session's own API
  (``put_gallery``, ``put_similarity``), and the failure table's per-query arrays are derived from them by the
  session (``failure_facts``, what ``causmatch cache`` runs last);
* ``--fill command``: ``python -m causmatch cache`` itself (a GPU: ``--device cuda``; on a CPU only a
  subset is feasible, see ``--cache-images``).

``--cache-images N`` also times ``causmatch cache`` on the first N images (and their captions) on ``--device``,
to extrapolate the command's cost at full size. Then a fresh subprocess — standing in for the app's process,
opening the session as the app does (``compute="auto"``) — times: opening the session, the failure table from
the cache (both directions; and, for comparison, from the two matrices), explaining one pair, re-ranking one
caption and one image query, the one-line refusal of an entry that is not built, and its peak RSS.

``--browser`` then starts the app itself (``streamlit run`` with ``--checkpoint``/``--data`` and the cache
through ``CAUSMATCH_CACHE``), opens each page in headless Chromium twice (cold, then warm) and records the
seconds until the app is idle, any error line shown, and the app process's peak RSS (``VmHWM``).

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_coco5k.py [--images 5000] [--fill random|command]
          [--cache-images 250] [--device cpu|cuda] [--work DIR] [--keep] [--json FILE] [--browser]

Peak RSS counts the cache pages the process touched (large entries are memory-mapped: file-backed pages the
kernel may drop) as well as its own allocations. Timings depend on the box's load: print ``uptime`` with them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORDS = ("a man woman dog cat child girl boy people group two young old red blue green white black brown "
         "wearing shirt hat sitting standing running walking playing riding holding eating looking in on at "
         "with of the street park beach water grass field building table ball bike car train bus plate "
         "pizza kitchen room bed window next to near front top small large").split()
KINDS = ("random", "uniform", "reversed", "shuffle")
MISSING_KIND = "mask-regions=0"  # never filled: the app's one-line refusal is timed on it


def write_split(folder: Path, n_images: int, feat: int, regions: int = 36, k: int = 5, seed: int = 0) -> None:
    """Random ReLU-like features written block by block, captions of 8-14 words (COCO's ~10.5 on average)."""
    from causmatch.data import write_split as write

    rng = np.random.default_rng(seed)
    feats = np.abs(rng.normal(size=(n_images, regions, feat))).astype(np.float32)
    caps = [" ".join(rng.choice(WORDS, size=n)) for n in rng.integers(8, 15, size=n_images * k)]
    write(folder, "test", features=feats, captions=caps, caps_per_image=k)


def save_random_matcher(ckpt: Path, folder: Path, feat: int, embed: int) -> None:
    import torch

    from causmatch.checkpoint import save_matcher
    from causmatch.data import Vocabulary, load_split
    from causmatch.models import Matcher, MatcherConfig

    torch.manual_seed(0)
    caps = load_split(folder, "test").captions
    save_matcher(Matcher(MatcherConfig(img_dim=feat, embed_size=embed), Vocabulary.from_captions(caps)), ckpt)


def _session(ckpt: Path, folder: Path, cache: Path, compute: str, n_images: int | None = None):
    from causmatch.analysis import AnalysisSession
    from causmatch.checkpoint import load_matcher
    from causmatch.data import load_split

    split = load_split(folder, "test")
    return AnalysisSession(load_matcher(ckpt), split, checkpoint_path=ckpt, cache_dir=cache, compute=compute)


def random_gallery(s, seed: int = 0):
    """Random unit vectors with the shapes, masks and grams of ``s``'s encoded split (tokens: the real ones)."""
    import torch

    from causmatch.models import ImageEmb, TextEmb

    g = torch.Generator().manual_seed(seed)
    mask = torch.from_numpy(np.asarray(s.split.region_mask, dtype=bool))  # [I, R]
    d = s.matcher.config.embed_size
    regions = torch.nn.functional.normalize(torch.randn(*mask.shape, d, generator=g), dim=-1) * mask[..., None]
    tokens = [s.matcher.tokens(c) for c in s.split.captions]
    w = max(len(t) for t in tokens)
    wmask = torch.tensor([[j < len(t) for j in range(w)] for t in tokens])  # [C, W]
    words = torch.empty(len(tokens), w, d)
    for lo in range(0, len(tokens), 2048):  # block by block: the temporaries stay small
        hi = min(lo + 2048, len(tokens))
        words[lo:hi] = torch.nn.functional.normalize(torch.randn(hi - lo, w, d, generator=g), dim=-1)
    words *= wmask[..., None]
    img = ImageEmb(regions, mask, regions @ regions.transpose(1, 2))
    txt = TextEmb(words, wmask, torch.cat([words[lo:lo + 2048] @ words[lo:lo + 2048].transpose(1, 2)
                                           for lo in range(0, len(words), 2048)]), tokens)
    return img, txt


def fill_random(ckpt: Path, folder: Path, cache: Path, gallery: str, samples: int, seed: int = 0) -> dict:
    """The gallery (random or encoded), random matrices and their derived arrays, through the session's API
    (entries already there are kept: a second run with other ``samples`` adds only their matrices)."""
    from causmatch.analysis.session import sims_tag
    from causmatch.interventions import resolve_intervention

    s = _session(ckpt, folder, cache, "always")
    t = {}
    t0 = time.perf_counter()
    if gallery == "encode":
        s.gallery()
    elif not s.cache.has(*s._entry("gallery")):
        s.put_gallery(*random_gallery(s, seed))
    t[f"gallery_{gallery}_s"] = time.perf_counter() - t0
    n_i, n_c, k = s.split.n_images, s.split.n_captions, s.split.caps_per_image
    rng = np.random.default_rng(seed)
    base = (0.05 * rng.standard_normal((n_i, n_c), dtype=np.float32))
    base[np.arange(n_c) // k, np.arange(n_c)] += 0.12  # true pairs raised: most ranks small, some failures
    t0 = time.perf_counter()
    if not s.cache.has(*s._entry(sims_tag(resolve_intervention(None), 1, 0))):
        s.put_similarity(None, base)
    for kind in KINDS:
        noise = 0.03 * rng.standard_normal((n_i, n_c), dtype=np.float32)  # drawn even when kept: same matrices
        if not s.cache.has(*s._entry(sims_tag(resolve_intervention(kind, 0), samples, 0))):
            s.put_similarity(kind, base + noise, samples=samples)
    t["write_matrices_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for direction in ("t2i", "i2t"):
        for kind in (None, *KINDS):
            s.failure_facts(direction, kind, samples=samples)
    t["derive_failure_arrays_s"] = time.perf_counter() - t0
    return t


def run_command(ckpt: Path, folder: Path, cache: Path, device: str, shard: int) -> dict:
    cmd = [sys.executable, "-m", "causmatch", "cache", "--checkpoint", str(ckpt), "--data", str(folder),
           "--cache", str(cache), "--device", device, "--shard", str(shard), "--quiet"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if proc.returncode != 0:
        raise SystemExit(f"causmatch cache failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    return {"command": " ".join(cmd[1:]), "wall_s": time.perf_counter() - t0, "output": proc.stdout}


def subset(folder: Path, out: Path, n_images: int) -> None:
    from causmatch.data import load_split
    from causmatch.data import write_split as write

    s = load_split(folder, "test")
    k = s.caps_per_image
    write(out, "test", features=np.asarray(s.features[:n_images]), captions=s.captions[:n_images * k],
          caps_per_image=k, regions=np.asarray(s.region_mask[:n_images]))


def _hwm_kib() -> int:
    """This process's peak resident set (``VmHWM``, kiB)."""
    return int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                    if line.startswith("VmHWM:")))


def measure(ckpt: Path, folder: Path, cache: Path, samples: int) -> dict:
    """Runs in a fresh process (``--measure``): what the app's process pays, with its peak RSS (``VmHWM``:
    the high-water mark of this program's memory — ``ru_maxrss`` would also count the parent's resident set
    at the fork, which here holds the whole filled cache)."""
    from causmatch.analysis import build_failure_table
    from causmatch.analysis.precompute import CacheMissing

    t = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        t[name] = time.perf_counter() - t0
        rss = [line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
               if line.startswith("VmRSS:")]
        if rss:
            t[name[:-2] + "_rss_mib"] = int(rss[0]) / 1024  # after this step (mapped pages included)
        return out

    s = timed("open_session_s", lambda: _session(ckpt, folder, cache, "auto"))
    df = timed("failure_table_t2i_s", lambda: s.failure_table("t2i", "random", samples=samples))
    timed("failure_table_i2t_s", lambda: s.failure_table("i2t", "random", samples=samples))
    timed("failure_table_t2i_again_s", lambda: s.failure_table("t2i", "random", samples=samples))
    worst = df.sort_values("rank", ascending=False).iloc[0]
    c, i = int(worst["query"]), int(worst["best_wrong"])
    timed("explain_pair_s", lambda: s.explain(i, c, intervention="random", samples=8))
    timed("explain_pair_again_s", lambda: s.explain(i, c + 1, intervention="random", samples=8))
    timed("rank_caption_query_s", lambda: s.rank_caption_query(c, "random", samples=samples))
    timed("rank_caption_query_again_s", lambda: s.rank_caption_query(c + 1, "random", samples=samples))
    timed("rank_image_query_s", lambda: s.rank_image_query(i, "random", samples=samples))
    rss_app_kib = _hwm_kib()
    try:
        timed("missing_entry_refused_s", lambda: s.similarity(MISSING_KIND))
        t["missing_message"] = "(no refusal: the entry was computed)"
    except CacheMissing as err:
        t["missing_message"] = str(err)
    sims = timed("load_two_matrices_s",
                 lambda: (np.array(s.similarity()), np.array(s.similarity("random", samples=samples))))
    timed("failure_table_from_matrices_s",
          lambda: build_failure_table(sims[0], sims[1], s.split.caps_per_image, "t2i", captions=s.split.captions))
    t["peak_rss_app_views_mib"] = rss_app_kib / 1024
    t["peak_rss_with_matrices_mib"] = _hwm_kib() / 1024
    t["rows_t2i"] = len(df)
    return t


BROWSER_PAGES = [("failures", "/failures"), ("explore", "/explore?image={i}&caption={c}&iv=random"),
                 ("retrieval", "/retrieval?caption={c}&k=5"), ("failing-pair", "/failing-pair?caption={c}"),
                 ("overview", "/")]


def browse(ckpt: Path, folder: Path, cache: Path, c: int = 7) -> dict:
    """Each page opened twice in Chromium against a fresh ``streamlit run``: seconds to idle, errors, peak RSS."""
    import signal

    from playwright.sync_api import sync_playwright

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout's TERM still stops the app below

    from tests.e2e.browser import CHROMIUM, start_app, stop_app, wait_ready

    proc, url = start_app(["--checkpoint", str(ckpt), "--data", str(folder), "--split", "test"],
                          env_extra={"CAUSMATCH_CACHE": str(cache)})
    out: dict = {"pages": {}}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(600_000)
            for name, path in BROWSER_PAGES:
                times = []
                for _ in range(2):
                    t0 = time.perf_counter()
                    page.goto(url + path.format(i=c // 5, c=c))
                    wait_ready(page, timeout=600_000)
                    times.append(time.perf_counter() - t0)
                errors = [e.inner_text().strip() for e in page.locator('[data-testid="stAlertContentError"]').all()]
                out["pages"][name] = {"first_s": times[0], "again_s": times[1], "errors": errors,
                                      "traceback": page.locator('[data-testid="stException"]').count() > 0}
            browser.close()
        status = Path(f"/proc/{proc.pid}/status").read_text()
        out.update({k: int(line.split()[1]) / 1024 for line in status.splitlines()
                    for k in ("VmHWM", "VmRSS") if line.startswith(k + ":")})
    finally:
        stop_app(proc)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--feat", type=int, default=64, help="region feature size (small: disk); D is --embed")
    p.add_argument("--embed", type=int, default=1024)
    p.add_argument("--fill", choices=("random", "command"), default="random")
    p.add_argument("--gallery", choices=("random", "encode"), default="random", help="with --fill random")
    p.add_argument("--cache-images", type=int, default=0, help="also time `causmatch cache` on this many images")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--shard", type=int, default=128)
    p.add_argument("--work", default=None, help="work folder (default: a temp folder, removed unless --keep)")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--json", default=None)
    p.add_argument("--browser", action="store_true", help="also open every page in Chromium (the app's peak RSS)")
    p.add_argument("--samples", type=int, default=None,
                   help="draws of the random matrices the views read (default: the app's default samples)")
    p.add_argument("--measure", nargs=3, metavar=("CKPT", "DATA", "CACHE"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.samples is None:
        from causmatch.analysis.links import FIELDS
        a.samples = FIELDS["samples"].default
    if a.measure:
        print(json.dumps(measure(*map(Path, a.measure), a.samples)))
        return 0
    from causmatch.runtime import configure

    configure()
    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="bench-coco5k-"))
    work.mkdir(parents=True, exist_ok=True)
    folder, ckpt, cache = work / "coco5k", work / "ckpt", work / "cache"
    res: dict = {"images": a.images, "captions": 5 * a.images, "regions": 36, "feat": a.feat, "embed": a.embed,
                 "fill": a.fill, "samples": a.samples, "device": a.device, "python": platform.python_version(),
                 "omp_threads": os.environ.get("OMP_NUM_THREADS"), "load_before": os.getloadavg()}
    try:
        t0 = time.perf_counter()
        if not (folder / "test_ims.npy").exists():
            write_split(folder, a.images, a.feat)
        if not (ckpt / "config.json").exists():
            save_random_matcher(ckpt, folder, a.feat, a.embed)
        res["write_split_s"] = time.perf_counter() - t0
        if a.cache_images:
            sub = work / f"subset{a.cache_images}"
            if not (sub / "test_ims.npy").exists():
                subset(folder, sub, a.cache_images)
            r = run_command(ckpt, sub, work / f"cache-subset{a.cache_images}", a.device, a.shard)
            res["cache_command_subset"] = {"images": a.cache_images, "captions": 5 * a.cache_images, **r}
        if a.fill == "random":
            res["fill"] = {"how": f"{a.gallery} gallery, random matrices (put_gallery, put_similarity)",
                           **fill_random(ckpt, folder, cache, a.gallery, a.samples)}
        else:
            res["fill"] = {"how": "causmatch cache", **run_command(ckpt, folder, cache, a.device, a.shard)}
        res["cache_bytes"] = sum(f.stat().st_size for f in cache.glob("*.npz"))
        proc = subprocess.run([sys.executable, __file__, "--measure", str(ckpt), str(folder), str(cache),
                               "--samples", str(a.samples)],
                              capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        if proc.returncode != 0:
            raise SystemExit(f"measuring failed: {proc.stderr.strip()[-1500:]}")
        res["app_process"] = json.loads(proc.stdout.strip().splitlines()[-1])
        if a.browser:
            res["browser"] = browse(ckpt, folder, cache)
        res["load_after"] = os.getloadavg()
    finally:
        if not a.keep and not a.work:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(res, indent=2))
    if a.json:
        from causmatch.outputs import atomic_write_text

        atomic_write_text(Path(a.json), json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
