"""Worker for test_distributed: similarity matrix of a seeded tiny matcher, alone or under torchrun."""
import sys
from pathlib import Path

import numpy as np
import torch

from causmatch.data import Vocabulary
from causmatch.evaluation import similarity_matrix
from causmatch.models import Matcher, MatcherConfig
from causmatch.training import distributed as D


def main(out: str) -> None:
    info = D.init_distributed("cpu")
    torch.manual_seed(0)
    caps = [f"a {c} {s} near the {o}" for c in ("red", "blue") for s in ("cube", "ball") for o in ("tree", "car",
            "dog", "cat", "box", "pen", "cup")][:26]
    vocab = Vocabulary.from_captions(caps)
    matcher = Matcher(MatcherConfig(img_dim=6, embed_size=8, text={"word_dim": 4}), vocab=vocab).eval()
    feats = torch.randn(13, 5, 6)                                   # [I, R, F]
    mask = torch.ones(13, 5, dtype=torch.bool)
    mask[3, 4:] = False
    with torch.no_grad():
        img, txt = matcher.encode_images(feats, mask), matcher.encode_captions(caps)
    # Small shards so that the 2 ranks get an uneven number of image shards (13 images / 3 = 5 shards).
    sims = similarity_matrix(matcher, img, txt, shard_images=3, shard_captions=7)
    if info.is_main:
        np.save(out, sims)
    elif info.enabled:
        reference = torch.from_numpy(sims)
        D.barrier(info)  # rank 0 has written the file
        same = np.array_equal(np.load(out), reference.numpy())
        Path(out + ".rank1").write_text("same" if same else "different")
    if info.is_main and info.enabled:
        D.barrier(info)
    D.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
