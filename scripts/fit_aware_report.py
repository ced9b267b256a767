"""docs/results.md's "Captions that fit several images": R@K beside fit-aware R@K for the demo checkpoints.

    .venv/bin/python scripts/fit_aware_report.py                        # scenes test split, both checkpoints
    .venv/bin/python scripts/fit_aware_report.py --data DIR --cache-dir DIR --bootstrap 2000

A query is correct at K under fit-aware recall when any item it fits (a caption true of the image,
``causmatch.data.scenes.fit``) ranks in the top K. Prints, per model and direction, R@K, fit-aware R@K,
the share of the R@1 gap to 100 that is ambiguity ((fit-aware R@1 - R@1) / (100 - R@1)), and the
CausMatch - SCAN difference of each metric with a paired bootstrap over images (a caption is resampled
with its image, so the 5 captions of an image stay together), and why the top-ranked item of each real
failure (no item the query fits at rank 1) is not true of the query (``why_not_fit``). Similarity matrices come from
``AnalysisSession`` (cached in ``--cache-dir``, the app's cache by default).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"CausMatch": ROOT / "checkpoints" / "causmatch-scenes", "SCAN": ROOT / "checkpoints" / "scan-scenes"}


def model_ranks(checkpoint, data, split: str, cache_dir) -> dict:
    """{direction: (plain ranks, fit-aware ranks)} of one checkpoint (0-based; i2t [I], t2i [C])."""
    from causmatch.analysis import AnalysisSession
    from causmatch.data.scenes.fit import fit_unavailable
    from causmatch.errors import DataError
    from causmatch.evaluation import ranks_fit_i2t, ranks_fit_t2i, ranks_i2t, ranks_t2i

    session = AnalysisSession.open(checkpoint, data, split, cache_dir=cache_dir)
    fits = session.fits()
    if fits is None:
        raise DataError(f"no fit-aware recall for {data}: {fit_unavailable(session.split)}")
    sims, k = session.similarity(), session.split.caps_per_image
    return {"i2t": (ranks_i2t(sims, k), ranks_fit_i2t(sims, fits, k)),
            "t2i": (ranks_t2i(sims, k), ranks_fit_t2i(sims, fits, k)),
            "why": real_failures(session, sims, fits)}


def real_failures(session, sims, fits) -> dict:
    """{direction: Counter of MISFIT reasons}: why the top-ranked item of each real failure (no fitting item at
    rank 1) is not true of the query's image / caption."""
    from collections import Counter

    from causmatch.data.scenes.fit import parse_caption, read_scenes, why_not_fit
    from causmatch.evaluation import ranks_fit_i2t, ranks_fit_t2i

    split = session.split
    scenes = read_scenes(Path(split.folder) / f"{split.split}_scenes.jsonl", split.n_images)
    specs = [parse_caption(g) for g in split.grounding]
    k = split.caps_per_image
    top_caption, top_image = sims.argmax(axis=1), sims.argmax(axis=0)  # first max: the tie rule's rank 1
    i2t = [(i, int(top_caption[i])) for i in np.nonzero(ranks_fit_i2t(sims, fits, k) > 0)[0]]
    t2i = [(int(top_image[c]), c) for c in np.nonzero(ranks_fit_t2i(sims, fits, k) > 0)[0]]
    return {d: Counter(why_not_fit(scenes[i], specs[c]) for i, c in pairs) for d, pairs in (("i2t", i2t), ("t2i", t2i))}


def report(ranks: dict, bootstrap: int, seed: int = 0) -> str:
    """Markdown: R@K beside fit-aware R@K per model, ambiguity shares, and the paired differences."""
    lines = ["| model | direction | R@1 | fit-aware R@1 | R@5 | fit-aware R@5 | R@10 | fit-aware R@10 | "
             "ambiguity share of the R@1 gap |", "|---|---|" + "---:|" * 7]
    for model, r in ranks.items():
        for d in ("i2t", "t2i"):
            plain, fit = r[d]
            cells = [f"{100 * np.mean(x < k):.2f}" for k in (1, 5, 10) for x in (plain, fit)]
            r1, f1 = np.mean(plain < 1), np.mean(fit < 1)
            share = f"{100 * (f1 - r1) / (1 - r1):.1f} %" if r1 < 1 else "-"
            lines.append(f"| {model} | {d} | " + " | ".join(cells) + f" | {share} |")
    from causmatch.data.scenes.fit import MISFIT

    lines += ["", "| model | direction | real failures | " + " | ".join(MISFIT.values()) + " |",
              "|---|---|---:|" + "---:|" * len(MISFIT)]
    for model, r in ranks.items():
        for d in ("i2t", "t2i"):
            why = r["why"][d]
            lines.append(f"| {model} | {d} | {sum(why.values())} | " + " | ".join(str(why[m]) for m in MISFIT) + " |")
    names = list(ranks)
    if len(names) != 2:
        return "\n".join(lines)
    a, b = (ranks[n] for n in names)
    n_img = len(a["i2t"][0])
    k = len(a["t2i"][0]) // n_img
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_img, size=(bootstrap, n_img))  # images, with their captions
    lines += ["", f"| {names[0]} − {names[1]} | R@1 | fit-aware R@1 | R@5 | fit-aware R@5 | R@10 | fit-aware R@10 |",
              "|---|" + "---:|" * 6]
    for d in ("i2t", "t2i"):
        cells = []
        for top in (1, 5, 10):
            for which in (0, 1):
                hit = [(r[d][which] < top).astype(float).reshape(n_img, -1 if d == "t2i" else 1) for r in (a, b)]
                diff = hit[0] - hit[1]                           # [I, 1 or K]
                boot = 100 * diff[draws].mean(axis=(1, 2))       # [bootstrap]
                lo, hi = np.percentile(boot, [2.5, 97.5])
                cells.append(f"{100 * diff.mean():+.2f} [{lo:+.2f}, {hi:+.2f}]")
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    lines.append(f"\n[95 % interval of {bootstrap} paired bootstrap draws of the {n_img} images "
                 f"({k} captions each), seed {seed}]")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "assets" / "data" / "scenes"))
    p.add_argument("--split", default="test")
    p.add_argument("--cache-dir", default=str(ROOT / "assets" / "cache"),
                   help="where similarity matrices are cached (the app's cache by default)")
    p.add_argument("--bootstrap", type=int, default=2000, help="paired bootstrap draws (default 2000)")
    args = p.parse_args(argv)
    from causmatch.errors import ConfigError

    if args.bootstrap < 1:
        raise ConfigError(f"--bootstrap must be >= 1, got {args.bootstrap}")
    ranks = {name: model_ranks(ckpt, args.data, args.split, args.cache_dir) for name, ckpt in MODELS.items()}
    print(report(ranks, args.bootstrap))
    return 0


if __name__ == "__main__":
    from causmatch.errors import CausMatchError

    try:
        raise SystemExit(main())
    except CausMatchError as err:
        raise SystemExit(f"error: {err}") from None
