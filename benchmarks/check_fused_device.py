"""Check the compiled scoring path on a device: fused vs the eager inference path, every direction and norm.

    python benchmarks/check_fused_device.py --device cuda      # on a GPU machine (Triton kernels)

Prints one line per setting with the largest absolute difference over a padded 64 × 320 gallery and exits 1
if any exceeds 1e-5. (tests/models/test_fused.py checks the CPU kernels in CI.)
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_similarity import random_inputs  # noqa: E402

from causmatch.models import attention as A  # noqa: E402
from causmatch.models.fused import fused_scores  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = p.parse_args(argv)
    dev = args.device
    I, C, R, W, D = 64, 320, 36, 12, 256
    regions, words, wmask, _ = random_inputs(I, C, R, W, D, dev, seed=3)
    rmask = torch.arange(R, device=dev).unsqueeze(0) < torch.randint(20, R + 1, (I, 1), device=dev)  # padded regions
    regions = regions * 1.5 * rmask.unsqueeze(-1)  # non-unit, zero at padding
    rg, wg = regions @ regions.transpose(1, 2), words @ words.transpose(1, 2)
    norms = rg.diagonal(dim1=-2, dim2=-1).clamp_min(1e-16).sqrt()
    worst = 0.0
    for direction, norm, agg in itertools.product(("t2i", "i2t", "both"), A.FAST_NORMS, ("lse", "mean")):
        kw = dict(direction=direction, norm=norm, lambda_softmax=9.0, agg=agg, lambda_lse=6.0, region_norms=norms)
        with torch.no_grad():
            eager = A.fast_scores(words, wmask, regions, rmask, wg, rg, **kw)
            fused = fused_scores(words, wmask, regions, rmask, wg, rg, **kw)
        diff = float((eager - fused).abs().max())
        worst = max(worst, diff)
        print(f"{dev} {direction:4s} {norm:14s} {agg:4s} max|fused - eager| = {diff:.2e}", flush=True)
    print(f"worst {worst:.2e} ({'ok' if worst <= 1e-5 else 'FAILED'})")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
