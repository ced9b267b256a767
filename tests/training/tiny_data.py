"""A tiny learnable dataset folder for training/evaluation tests.

Each image has 4 regions; two are objects whose features encode a colour and a shape
(one-hot + noise), two are clutter. Captions name one object ("a red circle ..."), so a
matcher can learn it in a few epochs; grounding says which region each word refers to.
"""
from __future__ import annotations

import numpy as np

from causmatch.data import tokenize, write_meta, write_split

COLOURS = ("red", "green", "blue", "yellow")
SHAPES = ("circle", "square", "star", "cross")
SIZES = ("small", "large")
R, F, K = 4, 12, 2


def _image(rng):
    feats = rng.normal(0.0, 0.1, size=(R, F)).astype(np.float32)
    objects = []
    for r in range(2):  # regions 0..1 hold objects, 2..3 clutter
        c, s, z = rng.integers(4), rng.integers(4), rng.integers(2)
        feats[r, c] += 1.0
        feats[r, 4 + s] += 1.0
        feats[r, 8 + z] += 1.0
        objects.append((c, s, z))
    order = rng.permutation(R)  # objects at random positions
    return feats[order], [(obj, int(np.where(order == r)[0][0])) for r, obj in enumerate(objects)]


def _caption(obj, region, templates, c_index, i):
    (c, s, z) = obj
    words = {"colour": COLOURS[c], "shape": SHAPES[s], "size": SIZES[z]}
    text = templates.format(**words)
    tokens = tokenize(text)
    ground = [{"index": tokens.index(w), "word": w, "type": t, "object": 0, "regions": [region]}
              for t, w in words.items() if w in tokens]
    return text, {"caption": c_index, "image": i, "tokens": tokens, "words": ground}


def make_split(folder, split: str, n_images: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    templates = ("a {size} {colour} {shape} .", "there is a {colour} {shape} here")
    feats, caps, grounding = [], [], []
    for i in range(n_images):
        f, objects = _image(rng)
        feats.append(f)
        for k in range(K):
            obj, region = objects[k % 2]
            text, g = _caption(obj, region, templates[k], len(caps), i)
            caps.append(text)
            grounding.append(g)
    write_split(folder, split, features=np.stack(feats), captions=caps, caps_per_image=K, grounding=grounding)


def make_tiny_dataset(folder, n_train: int = 64, n_dev: int = 16, n_test: int = 16):
    for split, n, seed in (("train", n_train, 0), ("dev", n_dev, 1), ("test", n_test, 2)):
        make_split(folder, split, n, seed)
    write_meta(folder, {"name": "tiny", "caps_per_image": K})
    return folder


TINY_OVERRIDES = ["epochs=2", "batch_size=16", "model.embed_size=16", "model.text.word_dim=8",
                  "val_every=1", "lr=0.002"]
