"""``causmatch vocab``: a SCAN-compatible vocabulary JSON from caption files (one caption a line)."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "build a SCAN-compatible vocabulary JSON from caption files (NLTK tokens by default, as SCAN)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="causmatch vocab", description=HELP)
    p.add_argument("--captions", required=True, nargs="+", metavar="FILE",
                   help="caption files, one caption a line (SCAN: train_caps.txt dev_caps.txt)")
    p.add_argument("--out", required=True, metavar="JSON", help="vocabulary file to write")
    p.add_argument("--threshold", type=int, default=4,
                   help="keep words seen at least this many times (default 4, as SCAN's vocab.py)")
    p.add_argument("--tokenizer", default="nltk",
                   help="nltk (SCAN's word_tokenize, default) or regex; use the tokenizer of the model it is for")
    p.add_argument("--order", choices=("first_seen", "frequency"), default="first_seen",
                   help="word order after the four specials: first_seen (SCAN's vocab.py on Python 3, default) "
                        "or frequency")
    p.add_argument("--overwrite", action="store_true", help="replace an existing vocabulary file at --out")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from causmatch.data.vocab import Vocabulary, check_tokenizer, read_caption_lines
    from causmatch.errors import ConfigError, DataError

    check_tokenizer(args.tokenizer)
    if args.threshold < 1:
        raise ConfigError(f"--threshold {args.threshold} is not valid — give 1 or more")
    out = Path(args.out)
    if out.exists() or out.is_symlink():
        if not args.overwrite:
            raise DataError(f"{out} already exists — pass --overwrite to replace it, or choose another --out")
        try:
            Vocabulary.load(out)
        except DataError:
            raise DataError(f"{out} exists and is not a vocabulary file — it is not replaced; choose another "
                            "--out") from None
    captions, where = [], []
    for path in args.captions:
        lines = read_caption_lines(path)
        captions += lines
        where += [f"{path} line {n}" for n in range(1, len(lines) + 1)]
    vocab = Vocabulary.from_captions(captions, min_count=args.threshold, tokenizer=args.tokenizer,
                                     order=args.order, label=where.__getitem__)
    if len(vocab) == 4:
        raise DataError(f"no word is seen {args.threshold} times or more in the {len(captions)} captions of "
                        f"{', '.join(args.captions)} — check the files or lower --threshold; nothing was written")
    vocab.save(out)
    print(f"wrote {out}: {len(vocab) - 4} words (+ <pad> <start> <end> <unk>) seen >= {args.threshold} times "
          f"in {len(captions)} captions, {args.tokenizer} tokens")
    return 0

