"""``causmatch cache``: build ahead of time the analysis cache the app reads for one (checkpoint, split).

The encoded gallery, the factual matrix, each intervention's matrix and the failure table's per-query
arrays (both directions), written by :func:`causmatch.analysis.precompute.build_cache` through the
analysis session's own code, names and keys. On a GPU with ``--device cuda``; across processes or GPUs with
``torchrun --nproc_per_node N -m causmatch cache ...`` (gloo on CPU, nccl on CUDA): every rank scores its
share of the image shards, rank 0 gathers the rows and writes each entry atomically.
"""
from __future__ import annotations

import argparse
import sys
import time

from causmatch.cli import add_model_data_args

HELP = "build the app's analysis cache for a checkpoint and split ahead of time (GPU, torchrun)"
DEFAULT_INTERVENTIONS = "none,random,uniform,reversed,shuffle"


def build_parser() -> argparse.ArgumentParser:
    from causmatch.analysis.links import FIELDS  # the app's view defaults: its samples and seed

    p = argparse.ArgumentParser(prog="causmatch cache", description=HELP)
    add_model_data_args(p)
    p.add_argument("--interventions", default=DEFAULT_INTERVENTIONS, metavar="LIST",
                   help="comma-separated intervention specs whose whole-split matrices to build (the factual one "
                        f"always is); e.g. random,mask-regions=0,3 (default {DEFAULT_INTERVENTIONS})")
    samples, seed = FIELDS["samples"].default, FIELDS["seed"].default
    p.add_argument("--samples", type=int, default=samples,
                   help=f"draws per pair of a stochastic intervention, 1..256 (default {samples}: the app's default)")
    p.add_argument("--seed", type=int, default=seed, help=f"first seed of the draws (default {seed}: the app's)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help="cache folder (default: env CAUSMATCH_CACHE, else <repo>/assets/cache — the app's)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--shard", type=int, default=128,
                   help="images and captions per similarity shard, 1..4096 (memory bound; default 128)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def _progress(quiet: bool):
    if quiet:
        return None
    last = {"t": 0.0, "msg": ""}

    def show(done: int, total: int, message: str) -> None:
        now = time.monotonic()
        if message != last["msg"] or done >= total or now - last["t"] > 5:
            print(f"  {message}: {done}/{total}", file=sys.stderr, flush=True)
            last.update(t=now, msg=message)
    return show


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from causmatch.analysis.effects import check_samples
    from causmatch.analysis.precompute import default_cache_dir, parse_interventions
    from causmatch.errors import ConfigError
    from causmatch.evaluation import MAX_SHARD

    # Everything the command line alone can say is checked before any file is read.
    specs = parse_interventions(args.interventions)
    check_samples(args.samples)
    if not 1 <= args.shard <= MAX_SHARD:
        raise ConfigError(f"--shard must be in 1..{MAX_SHARD}, got {args.shard}")
    if args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda but no CUDA GPU is visible; use --device cpu")
    from causmatch.analysis import AnalysisSession
    from causmatch.analysis.cache import ArrayCache
    from causmatch.analysis.precompute import build_cache
    from causmatch.checkpoint import load_matcher
    from causmatch.data import load_split
    from causmatch.training import distributed as D

    cache_dir = default_cache_dir() if args.cache is None else args.cache
    ArrayCache(cache_dir, read_only=True)  # a cache "folder" that is a file fails here, before the work
    info = D.init_distributed(args.device)
    try:
        device = str(D.device_for(args.device, info))
        split = load_split(args.data, args.split)
        matcher = load_matcher(args.checkpoint, map_location=device)
        session = AnalysisSession(matcher, split, checkpoint_path=args.checkpoint,
                                  cache_dir=cache_dir if info.is_main else None, device=device,
                                  shard_images=args.shard, shard_captions=args.shard, compute="always")
        if not info.is_main:
            session.cache = ArrayCache(cache_dir, read_only=True)
        t0 = time.perf_counter()
        rows = build_cache(session, specs, samples=args.samples, seed=args.seed,
                           progress=_progress(args.quiet or not info.is_main))
    finally:
        D.shutdown()
    if not info.is_main:
        return 0
    print(f"cache {session.cache.root}: split '{split.split}' ({split.n_images} images × {split.n_captions} "
          f"captions), checkpoint {args.checkpoint}, {info.world_size} process(es) on {args.device}")
    for r in rows:
        print(f"  {r['status']:<7}{r['seconds']:>9.1f} s  {r['what']:<34} {r['entry']}.npz")
    print(f"done in {time.perf_counter() - t0:.1f} s; the app reads these entries (it opens this checkpoint and "
          "split with the same cache folder)")
    return 0
