"""How close ``import-sgraf`` scores are to SGRAF's formulas at SGRAF's published sizes (random weights).

For SAF and SGR: an official-format ``model_best.pth.tar`` (img_dim 2048, word_dim 300, embed_size 1024,
sim_dim 256, sgr_step 3, 36 regions, bi-GRU; the model list and ``opt`` namespace as SGRAF's train.py saves them)
is written from the independent reference ``tests/convert/sgraf_reference.py``, imported with the command
line, and ``IMAGES × CAPTIONS`` pairs are scored through ``causmatch.evaluation.similarity_matrix`` (what
``evaluate`` ranks) and through the reference's per-caption loop on NLTK's own tokens. Prints the largest
absolute difference (the tests hold it under 1e-5 at tiny sizes)::

    python scripts/check_sgraf_import.py --images 20
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CAPTIONS = [
    "A man in a T-shirt eats ice-cream.",
    "A black-and-white dog doesn't run on St. Mark's street.",
    "The boy is 3.5 feet tall...",
    'A sign says "stop" and \'go\'.',
    "A dog runs on the grass. The cat sits on a mat.",
    "Two kids can't see the dog's ball , it's red.",
    "A woman wearing a black-and-white t-shirt isn't smiling...",
    "dog",
]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    import nltk

    from causmatch.checkpoint import load_matcher
    from causmatch.cli import main as cli_main
    from causmatch.data import load_split, write_split
    from causmatch.evaluation import encode_split, similarity_matrix
    from tests.convert.scan_reference import punkt_tab_folder, scan_vocab_words
    from tests.convert.test_sgraf_import import Official, sgraf_opt, write_sgraf

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        nltk.data.path.insert(0, str(punkt_tab_folder(tmp / "nltk")))
        words = scan_vocab_words(CAPTIONS[:-2], threshold=1)  # the last two captions hold <unk> words
        feats = np.random.default_rng(args.seed).standard_normal((args.images, 36, 2048)).astype(np.float32)
        write_split(tmp / "data", "test", features=feats, captions=CAPTIONS * args.images, caps_per_image=len(CAPTIONS))
        split = load_split(tmp / "data", "test")
        for module in ("SAF", "SGR"):
            opt = sgraf_opt(len(words), module_name=module, img_dim=2048, word_dim=300, embed_size=1024,
                            sim_dim=256, sgr_step=3)
            folder = tmp / module
            folder.mkdir()
            path, vocab, _ = write_sgraf(folder, opt, words, num_region=36, seed=args.seed)
            ref = Official(opt, 36, args.seed)  # the same seed: the same weights
            out = folder / "ours"
            if cli_main(["import-sgraf", "--checkpoint", str(path), "--vocab", str(vocab), "--out", str(out),
                         "--allow-pickle"]) != 0:
                return 1
            matcher = load_matcher(out).eval()
            with torch.no_grad():
                ours = similarity_matrix(matcher, *encode_split(matcher, split))  # [I, C]
                want = ref.scores(torch.from_numpy(feats), split.captions, words)[0].numpy()
            diff = float(np.abs(ours - want).max())
            print(f"{module}: {ours.shape[0]} images x {ours.shape[1]} captions, max |ours - SGRAF formulas| = "
                  f"{diff:.2e} (scores {want.min():.4f}..{want.max():.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
