"""Speed of the analysis engine on a Flickr30K-sized gallery, against the targets in docs/benchmarks.md.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_analysis.py [--images 1000] [--regions 36] [--dim 1024]

Setup: a random matcher (GRU text encoder, joint size D) and a dataset folder of I images × 5
captions with R regions. The encoded gallery is random unit vectors and the factual and
counterfactual similarity matrices are random numbers, written into the session's disk cache
through its own cache keys — encoding 5,000 captions and scoring 5M pairs twice would take minutes
on 2 cores and is not what is measured here (see the evaluation benchmarks for that). What is timed:

* explain: one pair under each of the four counterfactual kinds (random with 8 draws): scores,
  maps, effect with interval (``explain(..., per_word=False, per_region=False)``), and separately
  the full explanation (per-word and per-region effects too) under "random";
* rank: re-rank one caption query over the I images under random attention, 8 draws;
* failure table: the whole split, t2i and i2t, from the cached matrices;
* warm cache load: a new session reading the gallery and both matrices from disk.

Prints one line per measurement (median of ``--repeat`` runs, after one warm-up) and their targets.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from causmatch.runtime import configure

configure()  # the process settings, as the CLI applies them — before torch loads (OpenMP reads them then)

import torch  # noqa: E402

from causmatch.analysis import AnalysisSession  # noqa: E402
from causmatch.analysis.session import _gallery_to_arrays, sims_tag  # noqa: E402
from causmatch.data import Vocabulary, load_split, write_split  # noqa: E402
from causmatch.interventions import COUNTERFACTUAL_KINDS, parse_intervention  # noqa: E402
from causmatch.models import ImageEmb, Matcher, MatcherConfig, TextConfig, TextEmb  # noqa: E402

WORDS = ("a red blue green yellow small big circle square triangle star left right of above below "
         "next to the and with near").split()


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def build(folder: Path, n_img: int, regions: int, dim: int, k: int = 5, feat: int = 64):
    rng = np.random.default_rng(0)
    caps = [" ".join(rng.choice(WORDS, size=int(rng.integers(6, 13)))) for _ in range(n_img * k)]
    write_split(folder, "test", features=rng.normal(size=(n_img, regions, feat)).astype(np.float32),
                captions=caps, caps_per_image=k)
    split = load_split(folder, "test")
    torch.manual_seed(0)
    cfg = MatcherConfig(img_dim=feat, embed_size=dim, text=TextConfig(word_dim=300))
    return Matcher(cfg, Vocabulary.from_captions(caps)).eval(), split


def seed_cache(session: AnalysisSession, dim: int, intervention: str) -> None:
    """Random unit-vector gallery and random matrices, stored under the session's real cache keys."""
    split, g = session.split, torch.Generator().manual_seed(1)
    n_img, n_cap, R = split.n_images, split.n_captions, split.features.shape[1]
    toks = [session.matcher.tokens(c) for c in split.captions]
    W = max(len(t) for t in toks)
    v = _unit(torch.randn(n_img, R, dim, generator=g))  # [I,R,D]
    w = _unit(torch.randn(n_cap, W, dim, generator=g))  # [C,W,D]
    wmask = torch.arange(W)[None, :] < torch.tensor([len(t) for t in toks])[:, None]  # [C,W]
    w = w * wmask[..., None]
    img = ImageEmb(v, torch.ones(n_img, R, dtype=torch.bool), v @ v.transpose(1, 2))
    txt = TextEmb(w, wmask, w @ w.transpose(1, 2), toks)
    session.cache.save(*session._entry("gallery"), _gallery_to_arrays(img, txt))
    rng = np.random.default_rng(2)
    for spec, samples in ((None, 1), (intervention, 1)):
        tag = sims_tag(parse_intervention(spec), samples, 0)
        session.cache.save(*session._entry(tag), {"sims": rng.normal(size=(n_img, n_cap)).astype(np.float32)})


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--regions", type=int, default=36)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        matcher, split = build(Path(tmp) / "data", args.images, args.regions, args.dim)
        cache = Path(tmp) / "cache"
        session = AnalysisSession(matcher, split, cache_dir=cache)
        seed_cache(session, args.dim, "random")
        rows = []
        rows.append(("  cold explain (pair encoded on the fly), random 8",
                     timed(lambda: session.explain(3, 17, intervention="random", samples=8, per_word=False,
                                                   per_region=False), args.repeat), None))
        session.gallery()  # an app session holds the encoded gallery: explain slices it

        def explain_all_kinds():
            for kind in COUNTERFACTUAL_KINDS:
                session.explain(3, 17, intervention=kind, samples=8, per_word=False, per_region=False)

        rows.append(("explain one pair, 4 kinds (random 8 draws)", timed(explain_all_kinds, args.repeat), 0.100))
        rows.append(("  full explain incl. per-word/region effects, random 8",
                     timed(lambda: session.explain(3, 17, intervention="random", samples=8), args.repeat), None))
        session.similarity()  # factual matrix into memory, as an app session has it
        rows.append(("re-rank one caption query (random, 8 draws)",
                     timed(lambda: session.rank_caption_query(17, "random", samples=8), args.repeat), 0.300))
        session.similarity("random")

        def table():
            session.failure_table("t2i", "random")
            session.failure_table("i2t", "random")

        rows.append(("failure table t2i + i2t, from cache", timed(table, args.repeat), 1.0))

        def warm_load():
            fresh = AnalysisSession(matcher, split, cache_dir=cache)
            fresh.gallery()
            fresh.similarity()
            fresh.similarity("random")

        rows.append(("warm cache load (gallery + 2 matrices)", timed(warm_load, args.repeat), 2.0))
    print(f"gallery {args.images} images x {args.images * 5} captions, {args.regions} regions, D={args.dim}, "
          f"torch threads {torch.get_num_threads()}")
    for name, sec, target in rows:
        verdict = "" if target is None else ("  OK" if sec <= target else "  OVER")
        tgt = "" if target is None else f" (target <= {target * 1000:.0f} ms)"
        print(f"{name:<58} {sec * 1000:8.1f} ms{tgt}{verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
