"""Writers for small files in the real BUTD / Karpathy formats, shared by the converter tests."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np


def b64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.float32).tobytes()).decode("ascii")


def butd_line(image_id: int, boxes: np.ndarray, feats: np.ndarray, w: int = 500, h: int = 375) -> str:
    return "\t".join([str(image_id), str(w), str(h), str(len(boxes)), b64(boxes), b64(feats)]) + "\n"


def make_rows(ids, dim=8, boxes_per_image=None, seed=0) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """image id -> (boxes [n,4] pixels, features [n,dim]); n from boxes_per_image (default 3)."""
    rng = np.random.default_rng(seed)
    rows = {}
    for k, image_id in enumerate(ids):
        n = boxes_per_image[k] if boxes_per_image else 3
        xy = rng.uniform(0, 200, size=(n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(10, 100, size=(n, 2))], axis=1).astype(np.float32)
        rows[image_id] = (boxes, rng.normal(size=(n, dim)).astype(np.float32))
    return rows


def write_tsv(path: Path, rows: dict, order=None) -> Path:
    with open(path, "w", encoding="ascii", newline="") as fh:
        for image_id in order or rows:
            fh.write(butd_line(image_id, *rows[image_id]))
    return path


def write_karpathy(path: Path, splits: dict[str, list[int]], dataset="flickr30k", n_caps=5) -> Path:
    images = []
    for split, ids in splits.items():
        for image_id in ids:
            entry = {"split": split, "filename": f"{image_id}.jpg",
                     "sentences": [{"raw": f"image {image_id}  caption\n{j}", "tokens": []}
                                   for j in range(n_caps)]}
            if dataset == "coco":
                entry.update(cocoid=image_id, filepath="val2014",
                             filename=f"COCO_val2014_{image_id:012d}.jpg")
            images.append(entry)
    path.write_text(json.dumps({"dataset": dataset, "images": images}), encoding="utf-8")
    return path
