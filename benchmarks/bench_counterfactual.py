"""Whole-split counterfactual matrices against the factual one: CF-time / factual-time per kind, same run.

Two shapes (``--shape scenes|f30k|both``), random unit vectors, SCAN's t2i attention (``clipped_l2norm``, λ = 9,
LSE λ = 6, as the demo checkpoints), 128 × 128 shards (``causmatch evaluate``'s default):

* ``scenes`` — the demo's test split: 1,000 images × 5,000 captions, R = 12 with each image's valid-region count
  and each caption's token count read from ``assets/data/scenes`` (``test_regions.npy``, ``test_caps.txt``;
  random counts in the same ranges if absent), D = 256 (the demo checkpoints' embedding);
* ``f30k`` — the Flickr30K test split: 1,000 × 5,000, R = 36, captions of 6–18 words, D = 1,024.

Each repeat times, interleaved, the factual matrix and the four counterfactual kinds (random, uniform, reversed,
shuffle), each through ``sharded_similarity`` with one implementation family (``--impl fast``: the no-grad paths
``attention.fast_scores`` and ``fast_counterfactual``). The ratio of a kind is its time over the factual time of
the same repeat; the table shows the median over repeats (ratios are robust to the load of a shared box, absolute
times are not) and the fastest time. Each kind is also checked against the general (eager) path on the first
shard. The last line is ``JSON {...}`` (``--json FILE`` also writes it).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_counterfactual.py --shape scenes --repeat 3
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_counterfactual.py --shape f30k --repeat 1
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_counterfactual.py --shape both --images 200 --captions 1000
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from causmatch.runtime import configure

if __name__ == "__main__":  # first: OpenMP reads its wait policy when torch loads (later is too late)
    configure()

import torch  # noqa: E402

from causmatch.data import Vocabulary  # noqa: E402
from causmatch.interventions import COUNTERFACTUAL_KINDS, parse_intervention  # noqa: E402
from causmatch.models import AttentionConfig, ImageEmb, Matcher, MatcherConfig, TextConfig, TextEmb, sharded_similarity  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCENES = ROOT / "assets" / "data" / "scenes"
SHAPES = {  # images, captions, regions, (min, max) words, dim
    "scenes": dict(images=1000, captions=5000, regions=12, words=(2, 19), dim=256),
    "f30k": dict(images=1000, captions=5000, regions=36, words=(6, 18), dim=1024),
}


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def scenes_counts(n_img: int, n_cap: int, regions: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(valid regions per image, tokens per caption) of the demo's test split, cycled to the sizes; None if absent."""
    try:
        import numpy as np

        from causmatch.data.vocab import tokenize

        counts = torch.from_numpy(np.load(SCENES / "test_regions.npy").astype("int64")).clamp(1, regions)
        lengths = torch.tensor([max(1, len(tokenize(line))) for line in
                                (SCENES / "test_caps.txt").read_text(encoding="utf-8").splitlines()])
    except (OSError, ValueError):
        return None
    if len(counts) == 0 or len(lengths) == 0:
        return None
    return counts[torch.arange(n_img) % len(counts)], lengths[torch.arange(n_cap) % len(lengths)]


def inputs(n_img: int, n_cap: int, regions: int, words: tuple[int, int], dim: int, counts=None, device="cpu"):
    """Random unit vectors with padding: (ImageEmb, TextEmb). ``counts``: (regions per image, words per caption)."""
    g = torch.Generator().manual_seed(0)
    if counts is None:
        counts = (torch.full((n_img,), regions), torch.randint(words[0], words[1] + 1, (n_cap,), generator=g))
    n_reg, lengths = counts
    W = int(lengths.max())
    rmask = torch.arange(regions).unsqueeze(0) < n_reg.unsqueeze(1)  # [I, R]
    wmask = torch.arange(W).unsqueeze(0) < lengths.unsqueeze(1)  # [C, W]
    v = unit(torch.randn(n_img, regions, dim, generator=g)) * rmask.unsqueeze(-1)  # [I, R, D], 0 at padding
    e = unit(torch.randn(n_cap, W, dim, generator=g)) * wmask.unsqueeze(-1)  # [C, W, D]
    img = ImageEmb(v, rmask, v @ v.transpose(1, 2))
    txt = TextEmb(e, wmask, e @ e.transpose(1, 2), [["w"] * int(n) for n in lengths])
    return img.to(device), txt.to(device)


def matcher(dim: int, device: str) -> Matcher:
    torch.manual_seed(0)
    cfg = MatcherConfig(img_dim=8, embed_size=dim, text=TextConfig(word_dim=8),
                        attention=AttentionConfig(direction="t2i", norm="clipped_l2norm", lambda_softmax=9.0,
                                                  agg="lse", lambda_lse=6.0))
    return Matcher.from_config(cfg, Vocabulary.from_captions(["w"])).eval().to(device)


def first_shard_diff(m, img, txt, iv, si: int, sc: int, fast) -> float:
    """max |fast − general (eager) path| on the first shard."""
    i1, c1 = min(si, len(img)), min(sc, len(txt))
    with torch.no_grad():
        ref = m.similarity(img[slice(0, i1)], txt[slice(0, c1)].trimmed(), iv,
                           pair_ids=(torch.arange(i1), torch.arange(c1)), impl="eager").score
    return float((torch.as_tensor(fast[:i1, :c1]) - ref.cpu()).abs().max())


def run_shape(name: str, args) -> dict:
    spec = dict(SHAPES[name])
    n_img = args.images or spec["images"]
    n_cap = args.captions or spec["captions"]
    counts = scenes_counts(n_img, n_cap, spec["regions"]) if name == "scenes" else None
    img, txt = inputs(n_img, n_cap, spec["regions"], spec["words"], spec["dim"], counts, args.device)
    m = matcher(spec["dim"], args.device)
    kinds = args.kinds.split(",")
    ivs = {"factual": None, **{k: parse_intervention(k, seed=0) for k in kinds}}
    shards = dict(shard_images=args.shard_images, shard_captions=args.shard_captions, impl=args.impl)
    times: dict[str, list[float]] = {k: [] for k in ivs}
    diffs = {}
    print(f"[{name}] {n_img} images × {n_cap} captions, R {spec['regions']} ({int(img.mask.sum())} valid), "
          f"W ≤ {txt.words.shape[1]} ({int(txt.mask.sum())} words), D {spec['dim']}, "
          f"{args.shard_images} × {args.shard_captions} shards, impl {args.impl}, load {os.getloadavg()[0]:.1f}",
          flush=True)
    for rep in range(args.repeat):
        for k, iv in ivs.items():
            if args.device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = sharded_similarity(m, img, txt, iv, **shards)  # (returns on the host: synchronised)
            times[k].append(time.perf_counter() - t0)
            if rep == 0 and iv is not None and args.check:
                diffs[k] = first_shard_diff(m, img, txt, iv, args.shard_images, args.shard_captions, out)
        line = "  ".join(f"{k} {t[-1]:.2f} s" for k, t in times.items())
        print(f"  repeat {rep + 1}: {line}  (load {os.getloadavg()[0]:.1f})", flush=True)
    ratios = {k: [t / f for t, f in zip(times[k], times["factual"])] for k in kinds}
    rows = {k: dict(best_s=round(min(times[k]), 3), ratio=round(statistics.median(ratios[k]), 3),
                    ratios=[round(r, 3) for r in ratios[k]], max_abs_diff_first_shard=diffs.get(k)) for k in kinds}
    print(f"  {'kind':9s} {'fastest':>9s} {'CF / factual':>13s}   max |fast − eager|, first shard")
    print(f"  {'factual':9s} {min(times['factual']):8.2f}s {'1.00':>13s}")
    for k, r in rows.items():
        d = r["max_abs_diff_first_shard"]
        print(f"  {k:9s} {r['best_s']:8.2f}s {r['ratio']:12.2f}×   {'—' if d is None else f'{d:.1e}'}")
    return dict(shape=dict(images=n_img, captions=n_cap, regions=spec["regions"], max_words=int(txt.words.shape[1]),
                           dim=spec["dim"], scenes_counts=counts is not None),
                factual_best_s=round(min(times["factual"]), 3), kinds=rows)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", choices=["scenes", "f30k", "both"], default="scenes")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--images", type=int, default=None, help="fewer images than the shape's (a quick run)")
    p.add_argument("--captions", type=int, default=None, help="fewer captions than the shape's")
    p.add_argument("--shard-images", type=int, default=128)
    p.add_argument("--shard-captions", type=int, default=128)
    p.add_argument("--kinds", default=",".join(COUNTERFACTUAL_KINDS))
    p.add_argument("--impl", default="fast", choices=["fast", "eager"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--no-check", dest="check", action="store_false", help="skip the first-shard check")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    configure()  # the process settings, as the CLI applies them
    results = {name: run_shape(name, args) for name in (["scenes", "f30k"] if args.shape == "both" else [args.shape])}
    out = dict(args={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               threads=torch.get_num_threads(), omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
               load_average_end=os.getloadavg(), results=results)
    line = json.dumps(out)
    print("JSON " + line)
    if args.json is not None:
        from causmatch.outputs import atomic_write_text

        atomic_write_text(args.json, line + "\n")
    return out


if __name__ == "__main__":
    main()
