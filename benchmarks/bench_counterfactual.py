"""Whole-split counterfactual similarity matrices: the no-grad path vs the general (autograd) path.

Demo-sized random inputs: I images × R regions, C captions of 6..W words, D dimensions, random unit
vectors, the demo checkpoints' attention (t2i, clipped_l2norm, λ = 9, LSE λ = 6), 128 × 512 shards
(the analysis session's). For each kind the fast path scores the whole split; the general path (the one
``return_maps=True`` takes, one call per shard) is timed on the first ``--general-shards`` shards and
extrapolated linearly, and the two are compared on those shards.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_counterfactual.py
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_counterfactual.py --images 256 --captions 1280
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from causmatch.data import Vocabulary
from causmatch.interventions import COUNTERFACTUAL_KINDS, parse_intervention
from causmatch.models import AttentionConfig, ImageEmb, Matcher, MatcherConfig, TextConfig, TextEmb, sharded_similarity
from causmatch.runtime import configure


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def inputs(n_img: int, n_cap: int, regions: int, words: int, dim: int):
    g = torch.Generator().manual_seed(0)
    v = unit(torch.randn(n_img, regions, dim, generator=g))  # [I, R, D]
    e = unit(torch.randn(n_cap, words, dim, generator=g))  # [C, W, D]
    lengths = torch.randint(6, words + 1, (n_cap,), generator=g)
    wmask = torch.arange(words).unsqueeze(0) < lengths.unsqueeze(1)  # [C, W]
    e = e * wmask.unsqueeze(-1)
    img = ImageEmb(v, torch.ones(n_img, regions, dtype=torch.bool), v @ v.transpose(1, 2))
    txt = TextEmb(e, wmask, e @ e.transpose(1, 2), [["w"] * int(n) for n in lengths])
    return img, txt


def general_similarity(m, img, txt, iv, shard_images, shard_captions, n_shards):
    """The general path on the first ``n_shards`` shards: (seconds, [(i0, i1, c0, c1, scores)])."""
    out, t0 = [], time.perf_counter()
    blocks = [(i0, c0) for i0 in range(0, len(img), shard_images) for c0 in range(0, len(txt), shard_captions)]
    with torch.no_grad():
        for i0, c0 in blocks[:n_shards]:
            i1, c1 = min(i0 + shard_images, len(img)), min(c0 + shard_captions, len(txt))
            ids = (torch.arange(i0, i1), torch.arange(c0, c1))
            sc = m.similarity(img[slice(i0, i1)], txt[slice(c0, c1)].trimmed(), iv, pair_ids=ids,
                              return_maps=True).score
            out.append((i0, i1, c0, c1, sc))
    return time.perf_counter() - t0, out, len(blocks)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--captions", type=int, default=5000)
    p.add_argument("--regions", type=int, default=12)
    p.add_argument("--words", type=int, default=15)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--shard-images", type=int, default=128)
    p.add_argument("--shard-captions", type=int, default=512)
    p.add_argument("--general-shards", type=int, default=4)
    p.add_argument("--kinds", default=",".join(COUNTERFACTUAL_KINDS))
    args = p.parse_args()
    configure()  # the process settings, as the CLI applies them
    torch.manual_seed(0)
    cfg = MatcherConfig(img_dim=8, embed_size=args.dim, text=TextConfig(word_dim=8),
                        attention=AttentionConfig(direction="t2i", norm="clipped_l2norm", lambda_softmax=9.0,
                                                  agg="lse", lambda_lse=6.0))
    m = Matcher.from_config(cfg, Vocabulary.from_captions(["w"])).eval()
    img, txt = inputs(args.images, args.captions, args.regions, args.words, args.dim)
    results = {}
    for kind in args.kinds.split(","):
        iv = parse_intervention(kind, seed=0)
        t0 = time.perf_counter()
        fast = sharded_similarity(m, img, txt, iv, shard_images=args.shard_images, shard_captions=args.shard_captions)
        t_fast = time.perf_counter() - t0
        t_gen, parts, n_blocks = general_similarity(m, img, txt, iv, args.shard_images, args.shard_captions,
                                                    args.general_shards)
        diff = max(float((torch.from_numpy(fast[i0:i1, c0:c1]) - sc).abs().max()) for i0, i1, c0, c1, sc in parts)
        t_gen_all = t_gen * n_blocks / len(parts)
        results[kind] = dict(fast_s=round(t_fast, 2), general_s_extrapolated=round(t_gen_all, 1),
                             general_shards_timed=len(parts), shards=n_blocks,
                             speedup=round(t_gen_all / t_fast, 1), max_abs_diff=diff)
        print(f"{kind:9s} fast {t_fast:7.2f} s   general ≈ {t_gen_all:7.1f} s ({len(parts)}/{n_blocks} shards "
              f"timed)   speed-up {t_gen_all / t_fast:5.1f} ×   max |diff| {diff:.1e}", flush=True)
    print("JSON " + json.dumps(dict(args=vars(args), results=results)))


if __name__ == "__main__":
    main()
