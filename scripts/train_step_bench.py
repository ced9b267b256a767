"""Time one training step (forward + backward + Adam) at the demo settings, SCAN vs CausMatch.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/train_step_bench.py --threads 1      # CPU
    python3 scripts/train_step_bench.py --device cuda                               # a CUDA GPU

Demo settings (configs/scenes.json): embed 256, GRU word_dim 128, t2i, clipped_l2norm, LSE;
12 regions of 121 features, captions of 10 words from a small vocabulary; random inputs.
Reports the mean of the timed steps after warm-up, and peak memory (CUDA allocator, or the
process's max RSS on CPU).
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from causmatch.data import Vocabulary
from causmatch.interventions import parse_intervention
from causmatch.losses import CausMatchLoss
from causmatch.models import Matcher, MatcherConfig
from causmatch.runtime import configure

WORDS = ("a the red green blue yellow small large big circle square star triangle cross left right "
         "of above below next to is there").split()


def bench(batch: int, lambda_eff: float, device: str, steps: int, warmup: int, amp: bool) -> float:
    rng = np.random.default_rng(0)
    caps = [" ".join(rng.choice(WORDS, size=10)) for _ in range(batch)]
    torch.manual_seed(0)
    m = Matcher(MatcherConfig(img_dim=121, embed_size=256, text={"word_dim": 128}),
                vocab=Vocabulary.from_captions(caps)).to(device)
    loss = CausMatchLoss(lambda_eff, parse_intervention("random"), 0.2)
    opt = torch.optim.Adam(m.parameters(), 2e-4)
    feats = torch.randn(batch, 12, 121, device=device)                    # [B, R, F]
    mask = torch.ones(batch, 12, dtype=torch.bool, device=device)         # [B, R]
    ids = (torch.arange(batch, device=device), torch.arange(batch, device=device))
    for i in range(warmup + steps):
        if i == warmup:
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp and device == "cuda"):
            out = loss(m, m.encode_images(feats, mask), m.encode_captions(caps), ids)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--batches", default="64,128")
    p.add_argument("--steps", type=int, default=None)
    args = p.parse_args()
    configure()  # the process settings, as the CLI applies them
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (20 if args.device == "cuda" else 5)
    print(f"device {torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'}, "
          f"threads {torch.get_num_threads()}, torch {torch.__version__}")
    print("| batch | model | amp | ms / step |")
    print("|---:|---|---|---:|")
    for batch in [int(b) for b in args.batches.split(",")]:
        for name, lam in (("SCAN (λ_eff=0)", 0.0), ("CausMatch (λ_eff=1)", 1.0)):
            for amp in ((False, True) if args.device == "cuda" else (False,)):
                t = bench(batch, lam, args.device, steps, 3 if args.device == "cuda" else 2, amp)
                print(f"| {batch} | {name} | {'bf16' if amp else 'off'} | {1000 * t:.1f} |")
    if args.device == "cuda":
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB")
    else:
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
