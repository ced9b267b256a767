"""Is the first eager scoring call of a process right? (open question, docs/benchmarks.md)

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/check_first_call.py --processes 16

Starts fresh Python processes; each scores one 128 × 128 shard of the similarity benchmark's random inputs
(R = 36, W ≤ 12, D = 1024) three times with ``attention.fast_scores`` and with the compiled path
(``--what fused``), or replays the eager t2i steps one intermediate at a time (``--what steps``, naming the
first that differs), and reports where the first call differs from the third by more than 1e-6.
``--no-warm`` turns off ``causmatch.runtime.warm_up_vml`` (applied by ``configure()``) in the children, to show
the problem it works around.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r'''
import json, sys
import causmatch.runtime
causmatch.runtime.configure()  # as the CLI: before torch is imported
import torch
import torch.nn.functional as F
sys.path.insert(0, {bench!r})
from bench_similarity import random_inputs
from causmatch.models import attention as A
I, C, R, W, D = 128, 128, 36, 12, 1024
regions, words, wmask, _ = random_inputs(I, C, R, W, D, "cpu", seed={seed})
rg, wg = regions @ regions.transpose(1, 2), words @ words.transpose(1, 2)
rm = torch.ones(I, R, dtype=torch.bool)
kw = dict(direction="t2i", norm="clipped_l2norm", lambda_softmax=9.0, agg="lse", lambda_lse=6.0)

def steps():  # the eager t2i path of attention.fast_scores, one intermediate at a time
    out = {{}}
    w = words * wmask.unsqueeze(-1)
    s = (regions.reshape(I * R, D) @ w.transpose(0, 1).reshape(-1, D).t()).view(I, R, W, C); out["sims"] = s.clone()
    alpha = F.leaky_relu(s, 0.1); work = torch.empty_like(alpha); out["clipped"] = alpha.clone()
    n = A._dot_along(alpha, alpha, 2, keepdim=True); out["squared column norms"] = n.clone()
    n.sqrt_(); out["column norms"] = n.clone()
    n.add_(A.EPS).reciprocal_().mul_(9.0); out["scale"] = n.clone()
    alpha.mul_(n); out["scaled"] = alpha.clone()
    alpha.exp_(); out["exp"] = alpha.clone()
    a = alpha.view(I, R, W * C)
    out["quad"] = A._dot_along(torch.bmm(rg, a, out=work.view(I, R, W * C)), a, 1).clone()
    out["num"] = A._dot_along(alpha, s, 1).clone()
    return out

with torch.no_grad():
    if {first_what!r} == "steps":
        first, _, third = steps(), steps(), steps()
        diff = {{k: float((first[k] - third[k]).abs().max()) for k in first}}
        example = None
        for k in first:  # the first intermediate that differs: one wrong value beside the right one
            e = (first[k] - third[k]).abs()
            if e.max() > 0:
                idx = tuple(int(v) for v in (e == e.max()).nonzero()[0])
                example = {{"step": k, "at": idx, "first": float(first[k][idx]), "third": float(third[k][idx]),
                           "rows": [int(v) for v in (e.flatten(1).amax(1) > 0).nonzero()[[0, -1], 0]]}}
                break
        print(json.dumps({{"steps": diff, "example": example}}))
    else:
        fn = (A.fast_scores if {first_what!r} == "eager"
              else __import__("causmatch.models.fused", fromlist=["x"]).fused_scores)
        outs = [fn(words, wmask, regions, rm, wg, rg, **kw) for _ in range(3)]
        bad = ((outs[0] - outs[2]).abs() > 1e-6).nonzero()
        print(json.dumps({{"max": float((outs[0] - outs[2]).abs().max()), "pairs": len(bad),
                          "rows": [int(bad[:, 0].min()), int(bad[:, 0].max())] if len(bad) else None}}))
'''


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=16)
    p.add_argument("--what", choices=("eager", "fused", "steps"), default="eager")
    p.add_argument("--no-warm", action="store_true",
                   help="skip causmatch.runtime.warm_up_vml in the children (CAUSMATCH_WARM_VML=0): shows the problem")
    args = p.parse_args(argv)
    bench = str(Path(__file__).resolve().parent)
    failures = 0
    for seed in range(args.processes):
        code = CHILD.format(bench=bench, seed=seed, first_what=args.what)
        env = dict(os.environ, **({"CAUSMATCH_WARM_VML": "0"} if args.no_warm else {}))
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
        line = json.loads(res.stdout.strip().splitlines()[-1])
        wrong = any(v > 1e-6 for v in line["steps"].values()) if "steps" in line else line["pairs"] > 0
        failures += wrong
        print(f"process {seed:2d}: {'DIFFERS' if wrong else 'same   '} {json.dumps(line)}", flush=True)
    print(f"{failures} of {args.processes} processes: first call differs from the third")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
