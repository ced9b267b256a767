"""``causmatch scenes``: generate the "scenes" demo benchmark into a dataset folder."""
from __future__ import annotations

import argparse
import time

from causmatch.errors import DataError

HELP = "generate the 'scenes' demo dataset (rendered images, captions, regions, grounding)"


def _parser():
    from causmatch.data.scenes import DEFAULT_BIAS, DEFAULT_SEED, DEFAULT_SIZES

    p = argparse.ArgumentParser(prog="causmatch scenes", description=HELP)
    p.add_argument("--out", required=True, help="output dataset folder (created if missing; an existing one "
                   "must be empty or an earlier scenes output)")
    p.add_argument("--overwrite", action="store_true",
                   help="rebuild splits of an earlier scenes output in OUT with new settings or sizes")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default %(default)s)")
    p.add_argument("--bias", type=float, default=DEFAULT_BIAS,
                   help="strength P of the spurious star/white-ring correlation in train and dev "
                        "(0..1, default %(default)s); the test split never has it")
    for split in ("train", "dev", "test"):
        p.add_argument(f"--{split}", type=int, default=DEFAULT_SIZES[split],
                       help=f"{split} images (default %(default)s)")
    p.add_argument("--splits", default="train,dev,test", help="comma-separated splits to build")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p


def main(argv: list[str]) -> int:
    from causmatch.data.scenes import build_scenes

    args = _parser().parse_args(argv)
    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    if not splits:
        raise DataError("--splits is empty — give e.g. --splits train,dev,test")
    start = time.perf_counter()
    before = _meta_stamp(args.out)
    out = build_scenes(args.out, seed=args.seed, bias=args.bias, splits=splits, workers=args.workers,
                       sizes={"train": args.train, "dev": args.dev, "test": args.test}, progress=not args.quiet,
                       overwrite=args.overwrite)
    if before is not None and _meta_stamp(out) == before:
        print(f"{', '.join(splits)} already built in {out} with these settings: nothing written "
              "(--overwrite rebuilds)")
        return 0
    print(f"wrote {', '.join(splits)} to {out} in {time.perf_counter() - start:.1f} s")
    return 0


def _meta_stamp(folder) -> tuple | None:
    """Identity of ``folder/meta.json`` (a rebuild publishes a new folder, so a new file)."""
    import os

    try:
        st = os.stat(os.path.join(os.path.expanduser(str(folder)), "meta.json"))
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns
