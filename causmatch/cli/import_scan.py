"""``causmatch import-scan``: a SCAN ``model_best.pth.tar`` + vocabulary JSON → our checkpoint directory."""
from __future__ import annotations

import argparse

HELP = "import a SCAN checkpoint (model_best.pth.tar + vocab JSON) as a CausMatch checkpoint"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="causmatch import-scan", description=HELP)
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="SCAN's model_best.pth.tar")
    p.add_argument("--vocab", required=True, metavar="JSON", help="SCAN's vocabulary, e.g. f30k_precomp_vocab.json")
    p.add_argument("--out", required=True, metavar="CKPT", help="checkpoint directory to write")
    p.add_argument("--allow-pickle", action="store_true",
                   help="consent to unpickling the file (restricted to the types a SCAN checkpoint holds)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier import-scan output in CKPT (any other existing CKPT is refused)")
    args = p.parse_args(argv)
    from causmatch.checkpoint import check_checkpoint_out
    from causmatch.convert.scan_checkpoint import import_scan

    check_checkpoint_out(args.out, command="import-scan", consent=args.overwrite)
    matcher = import_scan(args.checkpoint, args.vocab, args.out, allow_pickle=args.allow_pickle)
    c = matcher.config
    print(f"wrote {args.out}: {c.attention.direction}, {c.attention.norm}, agg={c.attention.agg}, "
          f"embed {c.embed_size}, {len(matcher.vocab)} words")
    return 0
