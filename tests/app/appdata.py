"""A tiny dataset folder and two random-weight checkpoints for the app tests (AppTest and browser).

12 images of 160×160 pixels with 4 coloured shapes each plus a whole-image region (R = 6, one
padded), 5 captions per image that name the shapes, region features that encode each shape's
colour and kind (so a caption's words can attend to the right boxes), and grounding entries.
The checkpoints are untrained matchers saved with the public checkpoint API: the app's tests
check what it shows, not how good the model is.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

N_IMAGES, K, R, F = 12, 5, 6, 16
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 220), "yellow": (230, 210, 40)}
SHAPES = ("square", "circle", "bar")


@dataclass(frozen=True)
class Assets:
    data: Path
    ckpt: Path
    ckpt2: Path
    cache: Path
    bare: Path  # the same split without images, boxes or grounding


def _draw(img: np.ndarray, shape: str, colour, box) -> None:
    x1, y1, x2, y2 = box
    bgr = colour[::-1]
    if shape == "circle":
        cv2.circle(img, ((x1 + x2) // 2, (y1 + y2) // 2), (x2 - x1) // 2, bgr, -1)
    elif shape == "bar":
        cv2.rectangle(img, (x1, y1 + (y2 - y1) // 3), (x2, y2 - (y2 - y1) // 3), bgr, -1)
    else:
        cv2.rectangle(img, (x1, y1), (x2, y2), bgr, -1)


def build_dataset(folder: Path, with_images: bool = True, seed: int = 0) -> None:
    from causmatch.data import write_meta, write_split
    rng = np.random.default_rng(seed)
    colour_names = list(COLOURS)
    feats = np.zeros((N_IMAGES, R, F), np.float32)
    boxes = np.zeros((N_IMAGES, R, 4), np.float32)
    regions = np.full(N_IMAGES, R, np.int64)
    captions, grounding, paths = [], [], []
    corners = [(10, 10), (85, 10), (10, 85), (85, 85)]
    for i in range(N_IMAGES):
        img = np.full((160, 160, 3), 235, np.uint8)
        objs = []
        for r, (x, y) in enumerate(corners):
            colour, shape = colour_names[(i + r) % 4], SHAPES[(i + 2 * r) % 3]
            box = (x, y, x + 60, y + 60)
            _draw(img, shape, COLOURS[colour], box)
            boxes[i, r] = box
            feats[i, r, colour_names.index(colour)] = 1.0
            feats[i, r, 4 + SHAPES.index(shape)] = 1.0
            feats[i, r, 8:] = rng.normal(0, 0.1, F - 8)
            objs.append((colour, shape, r))
        boxes[i, 4] = (0, 0, 160, 160)
        feats[i, 4] = rng.normal(0, 0.3, F)
        regions[i] = 5 if i % 2 else 6  # odd images have a padded last region
        feats[i, 5] = rng.normal(0, 0.3, F) if regions[i] == 6 else 0.0
        boxes[i, 5] = (40, 40, 120, 120)
        if with_images:
            (folder / "images").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / "images" / f"{i:03d}.png"), img)
            paths.append(f"images/{i:03d}.png")
        for c in range(K):
            a, b = objs[c % 4], objs[(c + 1) % 4]
            text = f"a {a[0]} {a[1]} next to a {b[0]} {b[1]}"
            captions.append(text)
            words = [{"index": 1, "word": a[0], "type": "colour", "object": 0, "regions": [a[2]]},
                     {"index": 2, "word": a[1], "type": "shape", "object": 0, "regions": [a[2]]},
                     {"index": 6, "word": b[0], "type": "colour", "object": 1, "regions": [b[2]]},
                     {"index": 7, "word": b[1], "type": "shape", "object": 1, "regions": [b[2]]}]
            grounding.append({"caption": len(captions) - 1, "image": i, "tokens": text.split(), "words": words})
    extra = dict(boxes=boxes, image_paths=paths, grounding=grounding) if with_images else {}
    write_split(folder, "test", features=feats, captions=captions, caps_per_image=K, regions=regions, **extra)
    write_meta(folder, {"name": "app-test", "caps_per_image": K})


def build_checkpoint(path: Path, captions: list[str], seed: int, img_dim: int = F) -> None:
    import torch

    from causmatch.checkpoint import save_matcher
    from causmatch.data import Vocabulary
    from causmatch.models import AttentionConfig, Matcher, MatcherConfig, TextConfig
    torch.manual_seed(seed)
    config = MatcherConfig(img_dim=img_dim, embed_size=32, text=TextConfig(word_dim=16),
                           attention=AttentionConfig(direction="t2i"))
    save_matcher(Matcher(config, Vocabulary.from_captions(captions)), path)


def build_assets(root: Path) -> Assets:
    root = Path(root)
    data, bare = root / "data", root / "bare"
    build_dataset(data)
    build_dataset(bare, with_images=False)
    from causmatch.data import load_split
    caps = load_split(data, "test").captions
    build_checkpoint(root / "ckpt_a", caps, seed=1)
    build_checkpoint(root / "ckpt_b", caps, seed=2)
    return Assets(data=data, ckpt=root / "ckpt_a", ckpt2=root / "ckpt_b", cache=root / "cache", bare=bare)


def build_scenes_assets(root: Path, n_images: int = 24) -> Assets:
    """A small split of the scenes generator (``{split}_scenes.jsonl`` included: which captions fit which
    images is known) and two random-weight checkpoints for it; ``bare`` is the same split without its
    scene descriptions."""
    import shutil

    from causmatch.data import load_split
    from causmatch.data.scenes import build_scenes
    root = Path(root)
    data, bare = root / "scenes", root / "scenes_bare"
    build_scenes(data, sizes={"test": n_images}, splits=("test",), workers=1, progress=False)
    shutil.copytree(data, bare)
    (bare / "test_scenes.jsonl").unlink()
    split = load_split(data, "test")
    build_checkpoint(root / "ckpt_a", split.captions, seed=1, img_dim=split.features.shape[2])
    build_checkpoint(root / "ckpt_b", split.captions, seed=2, img_dim=split.features.shape[2])
    return Assets(data=data, ckpt=root / "ckpt_a", ckpt2=root / "ckpt_b", cache=root / "cache", bare=bare)
