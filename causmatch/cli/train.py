"""``causmatch train``: train CausMatch or the SCAN baseline on a dataset folder."""
from __future__ import annotations

import argparse
import json
import sys

HELP = "train a matcher (CausMatch or the SCAN baseline); resumable; torchrun for several processes"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="causmatch train", description=HELP)
    p.add_argument("--data", required=True, help="dataset folder with train and dev splits")
    p.add_argument("--out", required=True, help="checkpoint directory (best by dev rSum; OUT/last for --resume)")
    p.add_argument("--model", choices=("causmatch", "scan"), default=None,
                   help="preset: scan sets lambda_eff=0, causmatch keeps a positive lambda_eff (default 1.0)")
    p.add_argument("--config", default=None, help="JSON training config (e.g. configs/scenes.json)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one setting, dotted keys for sections (repeatable): "
                        "--set lambda_eff=0 --set model.attention.lambda_softmax=4")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last/train_state.pt")
    p.add_argument("--overwrite", action="store_true",
                   help="start again over an earlier train output in OUT (any other existing OUT is refused)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from causmatch.training.config import resolve_config

    cfg = resolve_config(args.config, args.overrides, model=args.model)
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=2))
        return 0
    from causmatch.training.trainer import train

    summary = train(args.data, args.out, cfg, device=args.device, resume=args.resume,
                    progress=not args.no_progress, overwrite=args.overwrite)
    if summary["world_size"] == 1 or _is_rank0():
        print(f"best dev rSum {summary['best_rsum']:.2f} at epoch {summary['best_epoch']} -> {args.out}",
              file=sys.stdout)
    return 0


def _is_rank0() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"
