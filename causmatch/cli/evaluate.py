"""``causmatch evaluate``: retrieval metrics (and grounding accuracy) of a checkpoint on a split."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from causmatch.cli import add_model_data_args

HELP = ("R@1/5/10 both ways, rSum, medr/meanr, grounding accuracy, fit-aware R@K on scenes splits; --fold5, "
        "--intervention, --json")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="causmatch evaluate", description=HELP)
    add_model_data_args(p, "split name (default test; COCO: testall)")
    p.add_argument("--fold5", action="store_true",
                   help="COCO protocol: average over 5 folds of I/5 images (5-fold 1K on testall) and the full set")
    p.add_argument("--intervention", default=None, metavar="KIND",
                   help="score with counterfactual attention: random, uniform, reversed, shuffle, "
                        "mask-regions=0,3, ...")
    p.add_argument("--seed", type=int, default=0, help="seed of a stochastic intervention")
    p.add_argument("--json", dest="json_out", default=None, metavar="FILE", help="also write the results as JSON")
    p.add_argument("--limit-images", type=int, default=None, metavar="N",
                   help="evaluate only the first N images and their captions")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--shard", type=int, default=128,
                   help="images and captions per similarity shard, 1..4096 (memory bound; default 128)")
    p.add_argument("--no-grounding", action="store_true", help="skip grounding accuracy")
    p.add_argument("--impl", default=None, metavar="NAME",
                   help="the scoring implementation: reference, eager, fast or compiled (default: fast where it "
                        "applies, else eager; sgraf for a SGRAF head, the only one that scores it); compiled: kernels "
                        "built by torch.compile (about 10-20 s to compile once; faster on whole splits; needs a C++ "
                        "compiler and Python headers on CPU, Triton on CUDA)")
    p.add_argument("--fused", dest="impl", action="store_const", const="compiled", help="the same as --impl compiled")
    return p


def format_table(result: dict, fit_note: str | None = None) -> str:
    """A readable plain-text table of an :func:`causmatch.evaluation.evaluate` result; ``fit_note``: why a
    result without ``fit_aware`` has none (one line)."""
    head = (f"{'':<22}{'i2t R@1':>8}{'R@5':>7}{'R@10':>7}{'medr':>6}{'meanr':>8} |"
            f"{'t2i R@1':>8}{'R@5':>7}{'R@10':>7}{'medr':>6}{'meanr':>8} |{'rSum':>8}")
    rows = [(result["label"], result["metrics"])]
    if result.get("fold5"):
        rows.insert(0, (f"{result['fold5']['label']} (mean)", result["fold5"]["mean"]))
    if result.get("factual_metrics"):
        rows.append(("factual (no intervention)", result["factual_metrics"]))
    lines = [f"split {result['split']}: {result['n_images']} images, {result['n_captions']} captions; "
             f"intervention: {result['intervention']}", head, "-" * len(head)]
    fa = result.get("fit_aware")
    if fa:  # fit-aware rows: a query also counts as correct when an item it fits ranks there
        if fa.get("fold5"):
            rows.insert(1, ("fit-aware (fold mean)", fa["fold5"]["mean"]))
        rows.insert(len(rows) - (1 if result.get("factual_metrics") else 0), ("fit-aware", fa))
    for label, m in rows:
        lines.append(f"{label[:21]:<22}{m['i2t_r1']:>8.2f}{m['i2t_r5']:>7.2f}{m['i2t_r10']:>7.2f}"
                     f"{m['i2t_medr']:>6.0f}{m['i2t_meanr']:>8.2f} |{m['t2i_r1']:>8.2f}{m['t2i_r5']:>7.2f}"
                     f"{m['t2i_r10']:>7.2f}{m['t2i_medr']:>6.0f}{m['t2i_meanr']:>8.2f} |{m['rsum']:>8.2f}")
    if result.get("effect"):
        e = result["effect"]
        lines.append(f"mean effect (factual - counterfactual score): matching {e['matching']:.4f}, "
                     f"non-matching {e['non_matching']:.4f}")
    if fa:
        f = fa["fits_per_caption"]
        lines.append(f"fit-aware: a query also counts as correct when an item it fits (a caption true of the image) "
                     f"ranks there; captions fit {f['min']}-{f['max']} images (median {f['median']:g}, mean "
                     f"{f['mean']:.2f}; {100 * f['only_own']:.1f}% only their own)")
    elif fit_note:
        lines.append(f"fit-aware recall: not computed — {fit_note}")
    g = result.get("grounding")
    if g:
        by_type = ", ".join(f"{t} {v:.2f}" for t, v in g["by_type"].items())
        lines.append(f"grounding accuracy: {g['overall']:.2f}% of {g['n_words']} words ({by_type}); "
                     f"chance {g['chance']:.2f}%")
    lines.extend(_shortcut_lines(result))
    return "\n".join(lines)


def _shortcut_lines(result: dict) -> list[str]:
    """Distractor attention and the effect AUC (or why they are missing), one line each."""
    lines, missing = [], result.get("unavailable", {})
    d = result.get("distractor_attention")
    if d:
        lines.append(f"distractor attention: {d['share']:.2f}% of grounded words' attention mass lies on the bias "
                     f"distractor ({d['n_words']} words in {d['n_images']} images that show it); chance "
                     f"{d['chance']:.2f}%")
    elif "distractor_attention" in missing:
        lines.append(f"distractor attention: not computed — {missing['distractor_attention']}")
    a = result.get("effect_auc")
    if a:
        parts = ", ".join(f"{name.replace('_', ' ')} {a[name]['auc']:.3f} [{a[name]['lo']:.3f}, {a[name]['hi']:.3f}]"
                          for name in ("effect_top", "effect_margin", "score_margin"))
        lines.append(f"does the effect flag a wrong top-1 image? ROC AUC (t2i, {a['n_correct']} of {a['n_queries']} "
                     f"right; {100 * a['level']:.0f}% bootstrap interval): {parts}")
    elif "effect_auc" in missing:
        lines.append(f"effect AUC: not computed — {missing['effect_auc']}")
    return lines


EVALUATE_JSON_KEYS = ("metrics", "split", "n_images", "n_captions", "intervention")


def is_evaluate_json(path) -> bool:
    """Whether ``path`` holds a result ``causmatch evaluate --json`` wrote (so it may be replaced)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and all(k in data for k in EVALUATE_JSON_KEYS)


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from causmatch.checkpoint import load_matcher
    from causmatch.data import load_split
    from causmatch.errors import ConfigError
    from causmatch.evaluation import MAX_SHARD, evaluate
    from causmatch.interventions import parse_intervention

    if args.limit_images is not None and args.limit_images < 1:
        raise ConfigError(f"--limit-images must be >= 1, got {args.limit_images}")
    if not 1 <= args.shard <= MAX_SHARD:
        raise ConfigError(f"--shard must be in 1..{MAX_SHARD}, got {args.shard}")
    from causmatch.models.impl import IMPLS

    if args.impl is not None and args.impl not in IMPLS:
        raise ConfigError(f"--impl must be one of {', '.join(IMPLS)}, got {args.impl!r}")
    intervention = parse_intervention(args.intervention, seed=args.seed) if args.intervention else None
    if args.json_out:  # refused now, not after the whole evaluation
        from causmatch.outputs import check_output_file

        check_output_file(args.json_out, option="--json", recognise=is_evaluate_json,
                          what="a previous `causmatch evaluate --json` result")
    if args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda but no CUDA GPU is visible; use --device cpu")
    from causmatch.training import distributed as D

    # Under torchrun every rank scores a slice of the image shards; rank 0 reports.
    info = D.init_distributed(args.device)
    try:
        matcher = load_matcher(args.checkpoint, map_location=str(D.device_for(args.device, info)))
        split = load_split(args.data, args.split)
        result = evaluate(matcher, split, fold5=args.fold5, intervention=intervention,
                          limit_images=args.limit_images, grounding=not args.no_grounding,
                          shard_images=args.shard, shard_captions=args.shard, impl=args.impl)
    finally:
        D.shutdown()
    if not info.is_main:
        return 0
    result["checkpoint"] = str(args.checkpoint)
    from causmatch.data.scenes.fit import fit_unavailable

    print(format_table(result, None if "fit_aware" in result else fit_unavailable(split)))
    if args.json_out:
        from causmatch.outputs import atomic_write_text, os_error

        try:
            atomic_write_text(Path(args.json_out), json.dumps(result, indent=2) + "\n")
        except OSError as err:
            raise os_error(err, args.json_out) from None
    return 0
