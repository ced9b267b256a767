"""Check the fast and compiled implementations on a device against the reference, every direction, norm, pooling.

    python benchmarks/check_fused_device.py --device cuda      # on a GPU machine (Triton kernels)

Prints one line per setting with the largest absolute difference of ``fast`` (attention.fast_scores) and
``compiled`` (causmatch.models.fused) from the reference (causmatch.models.reference, context vectors built)
over a padded 64 × 320 gallery with non-unit regions, and exits 1 if any exceeds 1e-5.
(tests/models/test_implementations.py checks every implementation on the CPU in CI.)
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from causmatch.runtime import configure

if __name__ == "__main__":  # first: OpenMP reads its wait policy when torch loads (later is too late)
    configure()

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_similarity import random_inputs  # noqa: E402

from causmatch.models import attention as A  # noqa: E402
from causmatch.models import reference  # noqa: E402
from causmatch.models.fused import fused_scores  # noqa: E402

TOL = 1e-5


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = p.parse_args(argv)
    configure()  # the process settings, as the CLI applies them
    dev = args.device
    I, C, R, W, D = 64, 320, 36, 12, 256
    regions, words, wmask, _ = random_inputs(I, C, R, W, D, dev, seed=3)
    rmask = torch.arange(R, device=dev).unsqueeze(0) < torch.randint(20, R + 1, (I, 1), device=dev)  # padded regions
    regions = regions * 1.5 * rmask.unsqueeze(-1)  # non-unit, zero at padding
    rg, wg = regions @ regions.transpose(1, 2), words @ words.transpose(1, 2)
    norms = rg.diagonal(dim1=-2, dim2=-1).clamp_min(1e-16).sqrt()
    worst = 0.0
    for direction, norm, agg in itertools.product(("t2i", "i2t", "both"), A.FAST_NORMS, ("lse", "mean", "max", "sum")):
        opts = dict(direction=direction, norm=norm, lambda_softmax=9.0, agg=agg, lambda_lse=6.0)
        with torch.no_grad():
            ref = reference.similarity(words, wmask, regions, rmask, **opts)["score"]
            fast = A.fast_scores(words, wmask, regions, rmask, wg, rg, region_norms=norms, **opts)
            compiled = fused_scores(words, wmask, regions, rmask, wg, rg, region_norms=norms, **opts)
        d_fast, d_comp = float((fast - ref).abs().max()), float((compiled - ref).abs().max())
        worst = max(worst, d_fast, d_comp)
        print(f"{dev} {direction:4s} {norm:14s} {agg:4s} max|fast - reference| = {d_fast:.2e}  "
              f"max|compiled - reference| = {d_comp:.2e}", flush=True)
    print(f"worst {worst:.2e} ({'ok' if worst <= TOL else 'FAILED'})")
    return 0 if worst <= TOL else 1


if __name__ == "__main__":
    raise SystemExit(main())
