"""Print docs/results.md's tables from the demo checkpoints (and write the subset numbers the tests check).

    .venv/bin/python scripts/results_tables.py                  # markdown tables, full test split
    .venv/bin/python scripts/results_tables.py --write-subset   # only checkpoints/demo_subset_metrics.json
    # the same tables with the two models evaluated in parallel (one core each):
    .venv/bin/python scripts/results_tables.py --only CausMatch --json runs/cm.json &
    .venv/bin/python scripts/results_tables.py --only SCAN --json runs/scan.json; wait
    .venv/bin/python scripts/results_tables.py --merge runs/cm.json runs/scan.json
    # dev rSum after each epoch, from the training logs scripts/train_demo.sh writes:
    .venv/bin/python scripts/results_tables.py --dev-history runs/scan-scenes.log runs/causmatch-scenes.log

Every number comes from the public API: encode_split, similarity_matrix, recall_metrics,
effect_summary, grounding_accuracy, evaluate.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"CausMatch": "checkpoints/causmatch-scenes", "SCAN": "checkpoints/scan-scenes"}
SUBSET_FILE = ROOT / "checkpoints" / "demo_subset_metrics.json"
SUBSET_IMAGES = 200


def subset_numbers(matcher, split) -> dict:
    """What tests/test_demo_checkpoints.py recomputes: first 200 test images, random counterfactual."""
    from causmatch.evaluation import evaluate
    from causmatch.interventions import parse_intervention
    return evaluate(matcher, split, limit_images=SUBSET_IMAGES, intervention=parse_intervention("random", seed=0))


def model_numbers(matcher, split, limit=None) -> dict:
    from causmatch.evaluation import (
        effect_summary,
        encode_split,
        grounding_accuracy,
        recall_metrics,
        similarity_matrix,
        subset_split,
    )
    from causmatch.interventions import COUNTERFACTUAL_KINDS, parse_intervention
    split = subset_split(split, limit)
    img, txt = encode_split(matcher, split)
    factual = similarity_matrix(matcher, img, txt)
    out = {"factual": recall_metrics(factual, split.caps_per_image),
           "grounding": grounding_accuracy(matcher, split, img, txt), "counterfactual": {}}
    for kind in COUNTERFACTUAL_KINDS:
        sims = similarity_matrix(matcher, img, txt, parse_intervention(kind, seed=0))
        out["counterfactual"][kind] = {"metrics": recall_metrics(sims, split.caps_per_image),
                                       "effect": effect_summary(factual, sims, split.caps_per_image)}
    return out


def tables(results: dict, n_images: int) -> str:
    keys = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum")
    lines = [f"**Retrieval, scenes test ({n_images} images, 5 captions each)**", "",
             "| model | i2t R@1 | R@5 | R@10 | t2i R@1 | R@5 | R@10 | rSum |", "|---|" + "---:|" * 7]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{r['factual'][k]:.2f}" for k in keys) + " |")
    lines += ["", "**Grounding accuracy** (% of grounded words whose most-attended region is a true region)", "",
              "| model | overall | colour | shape | size | words | chance |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        g = r["grounding"]
        lines.append(f"| {name} | {g['overall']:.2f} | " + " | ".join(f"{g['by_type'].get(t, float('nan')):.2f}"
                     for t in ("colour", "shape", "size")) + f" | {g['n_words']} | {g['chance']:.2f} |")
    lines += ["", "**Mean effect** S(α) − S(ᾱ) of the learned attention (matching pairs / non-matching pairs)", "",
              "| model | " + " | ".join(next(iter(results.values()))["counterfactual"]) + " |",
              "|---|" + "---:|" * len(next(iter(results.values()))["counterfactual"])]
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{c['effect']['matching']:.4f} / {c['effect']['non_matching']:.4f}"
                                              for c in r["counterfactual"].values()) + " |")
    lines += ["", "**Retrieval under each counterfactual** (scores recomputed with ᾱ for every pair)", "",
              "| model | attention | i2t R@1 | t2i R@1 | rSum |", "|---|---|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | factual | {r['factual']['i2t_r1']:.2f} | {r['factual']['t2i_r1']:.2f} | "
                     f"{r['factual']['rsum']:.2f} |")
        for kind, c in r["counterfactual"].items():
            m = c["metrics"]
            lines.append(f"| {name} | {kind} | {m['i2t_r1']:.2f} | {m['t2i_r1']:.2f} | {m['rsum']:.2f} |")
    return "\n".join(lines)


def dev_history(logs: list[str]) -> str:
    """A table of the dev rSum (and the training-batch mean effect) after each epoch, one row per log."""
    import re
    rows = {}
    for log in logs:
        lines = [l for l in Path(log).read_text().splitlines() if l.startswith("epoch ")]
        rows[Path(log).stem] = [(re.search(r"rSum ([\d.]+)", l).group(1), re.search(r"effect \+(\S+)", l).group(1))
                                for l in lines]
    n = max(len(r) for r in rows.values())
    lines = ["dev rSum (mean training effect on matching pairs) after each epoch", "",
             "| run | " + " | ".join(str(e + 1) for e in range(n)) + " |", "|---|" + "---:|" * n]
    for name, r in rows.items():
        cells = [f"{rs} ({eff})" for rs, eff in r] + [""] * (n - len(r))  # a shorter (running) log
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="scenes folder (default: assets/data/scenes, built if missing)")
    p.add_argument("--limit-images", type=int, default=None, help="only the first N test images")
    p.add_argument("--write-subset", action="store_true", help=f"write {SUBSET_FILE.relative_to(ROOT)}")
    p.add_argument("--json", default=None, help="also dump all numbers as JSON")
    p.add_argument("--only", choices=tuple(MODELS), default=None, help="evaluate one model only")
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="print the tables from --json files of earlier runs (no evaluation)")
    p.add_argument("--dev-history", nargs="+", default=None, metavar="LOG",
                   help="print the per-epoch dev rSum of training logs (no evaluation)")
    args = p.parse_args(argv)
    if args.dev_history:
        print(dev_history(args.dev_history))
        return 0
    if args.merge:
        parts = [json.loads(Path(f).read_text()) for f in args.merge]
        print(tables({k: v for part in parts for k, v in part["results"].items()}, parts[0]["n_images"]))
        return 0
    torch.set_num_threads(1)
    from causmatch.checkpoint import load_matcher
    from causmatch.data import load_split
    from causmatch.data.scenes import ensure_scenes

    split = load_split(ensure_scenes(args.data, splits=("test",)), "test")
    matchers = {name: load_matcher(ROOT / path) for name, path in MODELS.items()
                if args.only in (None, name)}
    if args.write_subset:
        subset = {name: subset_numbers(m, split) for name, m in matchers.items()}
        SUBSET_FILE.write_text(json.dumps({"images": SUBSET_IMAGES, "checkpoints": MODELS, "results": subset},
                                          indent=2) + "\n")
        print(f"wrote {SUBSET_FILE.relative_to(ROOT)}", file=sys.stderr)
        return 0
    results = {name: model_numbers(m, split, args.limit_images) for name, m in matchers.items()}
    n = min(args.limit_images or split.n_images, split.n_images)
    print(tables(results, n))
    if args.json:
        Path(args.json).write_text(json.dumps({"n_images": n, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
