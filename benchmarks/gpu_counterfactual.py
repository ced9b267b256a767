"""The one script to run on a lent GPU: factual and counterfactual F30K-test-shape matrices vs SCAN's procedure.

    python benchmarks/gpu_counterfactual.py --device cuda                    # 1,000 × 5,000, R 36, D 1,024
    python benchmarks/gpu_counterfactual.py --device cuda --shard 1000 --ref-shards 40

Gallery: random unit vectors, 1,000 images × 5,000 captions of 6–18 words (zero padding), R = 36, D = 1,024,
SCAN's t2i attention (``clipped_l2norm``, λ = 9, LSE λ = 6). In one process, each timed after one untimed run
(the compiled path compiles there; reported apart):

* ``factual fast`` — ``sharded_similarity`` with ``impl="fast"`` (``attention.fast_scores``);
* ``factual compiled`` — ``impl="compiled"`` (``causmatch.models.fused``: Triton kernels via ``torch.compile`` on
  CUDA; ``--no-compiled`` skips it);
* ``random``, ``uniform``, ``reversed``, ``shuffle`` — the counterfactual matrices on the ``fast`` path
  (``causmatch.models.fast_counterfactual``; on a GPU each shard is one chunk);
* ``SCAN reference`` — SCAN's evaluation procedure (``bench_similarity.scan_similarity``: one caption at a time,
  context vectors built) in its 128 × 128 blocks, timed on ``--ref-shards`` blocks and extrapolated.

Printed: milliseconds per whole matrix, each row's time over the factual fast time and SCAN's time over it, the
largest difference of every counterfactual kind from the general (eager) path on the first shard, and of the
compiled matrix from the fast one; then one ``JSON {...}`` line (``--json FILE`` also writes it). The issue's
GPU target is the fused factual matrix in ≤ 50 ms and ≥ 300 × SCAN's procedure, all kinds of counterfactual too.
On the CPU (``--device cpu``, small ``--images``/``--captions``) it runs the same code: the test suite does so.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from causmatch.runtime import configure

if __name__ == "__main__":  # first: OpenMP reads its wait policy when torch loads (later is too late)
    configure()

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_similarity import matcher_for, random_inputs, scan_similarity  # noqa: E402

from causmatch.interventions import COUNTERFACTUAL_KINDS, parse_intervention  # noqa: E402
from causmatch.models import ImageEmb, TextEmb, sharded_similarity  # noqa: E402


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: str, repeat: int) -> tuple[float, float, object]:
    """(best seconds over ``repeat`` runs after one untimed run, the first run's seconds, the result)."""
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, first, out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--captions", type=int, default=5000)
    p.add_argument("--regions", type=int, default=36)
    p.add_argument("--words", type=int, default=18)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--shard", type=int, default=1000, help="shard size of ours (SCAN keeps 128)")
    p.add_argument("--ref-shards", type=int, default=20, help="SCAN blocks timed (0: skip the reference)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--kinds", default=",".join(COUNTERFACTUAL_KINDS))
    p.add_argument("--no-compiled", dest="compiled", action="store_false")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    configure()
    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch sees no CUDA device; run on a GPU machine or use --device cpu")
    regions, words, wmask, lengths = random_inputs(args.images, args.captions, args.regions, args.words, args.dim, dev)
    img = ImageEmb(regions, torch.ones(regions.shape[:2], dtype=torch.bool, device=dev),
                   regions @ regions.transpose(1, 2))
    txt = TextEmb(words, wmask, words @ words.transpose(1, 2), [["w"] * n for n in lengths])
    m = matcher_for(args.dim, dev)
    shards = dict(shard_images=args.shard, shard_captions=args.shard)
    rows, first_runs, diffs = {}, {}, {}
    rows["factual fast"], first_runs["factual fast"], fast = timed(
        lambda: sharded_similarity(m, img, txt, None, impl="fast", **shards), dev, args.repeat)
    if args.compiled:
        rows["factual compiled"], first_runs["factual compiled"], comp = timed(
            lambda: sharded_similarity(m, img, txt, None, impl="compiled", **shards), dev, args.repeat)
        diffs["factual compiled"] = float(abs(comp - fast).max())
    n1, c1 = min(args.shard, args.images), min(args.shard, args.captions)
    for kind in args.kinds.split(","):
        iv = parse_intervention(kind, seed=0)
        rows[kind], first_runs[kind], cf = timed(lambda iv=iv: sharded_similarity(m, img, txt, iv, **shards), dev,
                                                 args.repeat)
        with torch.no_grad():
            ref = m.similarity(img[slice(0, n1)], txt[slice(0, c1)].trimmed(), iv, impl="eager",
                               pair_ids=(torch.arange(n1, device=dev), torch.arange(c1, device=dev))).score
        diffs[kind] = float((torch.from_numpy(cf[:n1, :c1]) - ref.float().cpu()).abs().max())
    scan_s = scan_done = blocks = None
    if args.ref_shards > 0:
        with torch.no_grad():
            _sync(dev)
            t0 = time.perf_counter()
            ref_out, done = scan_similarity(regions, words, lengths, shard=128, max_shards=args.ref_shards)
            _sync(dev)
        blocks = -(-args.images // 128) * -(-args.captions // 128)
        scan_s = (time.perf_counter() - t0) * blocks / max(1, done)
        scan_done = done
        mask = ~torch.from_numpy(ref_out).isnan()
        diffs["SCAN reference (its blocks)"] = float((torch.from_numpy(fast)[mask] - torch.from_numpy(ref_out)[mask])
                                                     .abs().max()) if bool(mask.any()) else None
    base = rows["factual fast"]
    print(f"{dev}: {args.images} × {args.captions}, R {args.regions}, W ≤ {args.words}, D {args.dim}, shard "
          f"{args.shard}, best of {args.repeat}" + (f", {torch.cuda.get_device_name()}" if dev == "cuda" else ""))
    print(f"{'what':18s} {'ms':>10s} {'/ factual fast':>15s} {'SCAN / this':>12s} {'first run ms':>13s}  max |diff|")
    for name, s in rows.items():
        speed = f"{scan_s / s:11.1f}×" if scan_s else f"{'—':>12s}"
        d = diffs.get(name)
        print(f"{name:18s} {s * 1e3:10.1f} {s / base:14.2f}× {speed} {first_runs[name] * 1e3:13.1f}  "
              f"{'—' if d is None else f'{d:.1e}'}")
    if scan_s is not None:
        print(f"{'SCAN reference':18s} {scan_s * 1e3:10.1f}  (extrapolated from {scan_done} of its {blocks} "
              f"128 × 128 blocks; max |fast − SCAN| on them {diffs['SCAN reference (its blocks)']:.1e})")
    out = dict(args={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               device=torch.cuda.get_device_name() if dev == "cuda" else "cpu", torch=torch.__version__,
               ms={k: round(v * 1e3, 3) for k, v in rows.items()},
               first_run_ms={k: round(v * 1e3, 1) for k, v in first_runs.items()},
               ratio_to_factual_fast={k: round(v / base, 3) for k, v in rows.items()},
               scan_ms=None if scan_s is None else round(scan_s * 1e3, 1),
               speedup_over_scan=None if scan_s is None else {k: round(scan_s / v, 1) for k, v in rows.items()},
               max_abs_diff=diffs, load_average=os.getloadavg())
    line = json.dumps(out)
    print("JSON " + line)
    if args.json is not None:
        from causmatch.outputs import atomic_write_text

        atomic_write_text(args.json, line + "\n")
    return out


if __name__ == "__main__":
    main()
