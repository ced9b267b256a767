"""``causmatch import-sgraf``: an SGRAF (SAF or SGR) ``model_best.pth.tar`` + vocabulary JSON → our checkpoint."""
from __future__ import annotations

import argparse

HELP = "import an SGRAF checkpoint (SAF or SGR; model_best.pth.tar + vocab JSON) as a CausMatch checkpoint"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="causmatch import-sgraf", description=HELP)
    p.add_argument("--checkpoint", required=True, metavar="FILE", help="SGRAF's model_best.pth.tar")
    p.add_argument("--vocab", required=True, metavar="JSON", help="SGRAF's vocabulary, e.g. f30k_precomp_vocab.json")
    p.add_argument("--out", required=True, metavar="CKPT", help="checkpoint directory to write")
    p.add_argument("--allow-pickle", action="store_true",
                   help="consent to unpickling the file (restricted to the types an SGRAF checkpoint holds)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier import-sgraf output in CKPT (any other existing CKPT is refused)")
    args = p.parse_args(argv)
    from causmatch.checkpoint import check_checkpoint_out
    from causmatch.convert.sgraf_checkpoint import import_sgraf

    check_checkpoint_out(args.out, command="import-sgraf", consent=args.overwrite)
    matcher = import_sgraf(args.checkpoint, args.vocab, args.out, allow_pickle=args.allow_pickle)
    c = matcher.config
    print(f"wrote {args.out}: {c.similarity.upper()}, sim_dim {c.sim_dim}"
          + (f", {c.sgr_step} reasoning steps" if c.similarity == "sgr" else "")
          + f", embed {c.embed_size}, {c.num_region} regions, {len(matcher.vocab)} words")
    return 0
