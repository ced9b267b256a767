"""Building the "scenes" dataset: one image at a time (in worker processes), then the split files.

Per image: sample objects, render, detect regions from the pixels, compute features, write the
PNG, write captions, ground each attribute word in the regions that cover its object, and score
the detector (an object is found when a region box has IoU >= 0.5 with its visible pixels' box).
"""
from __future__ import annotations

import json
import multiprocessing
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from causmatch.data.scenes.captions import CAPS_PER_IMAGE, make_captions
from causmatch.data.scenes.regions import FEATURE_DIM, MAX_REGIONS, detect, region_features
from causmatch.data.scenes.render import render
from causmatch.data.scenes.spec import BIAS_SHAPE, sample_scene, scene_rng
from causmatch.outputs import atomic_write_text

# Fixed parameters, so the same pixels give the same bytes. Huffman-only suits grainy images: it is
# both faster and smaller here than LZ77 matching (measured: 9 ms / 90 KB vs 12 ms / 108 KB).
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_HUFFMAN_ONLY]
GROUND_MIN_PURITY = 0.5      # at least half of the region's pixels belong to the object...
GROUND_MIN_COVER = 0.15      # ...and the region holds at least this share of the object's visible pixels
RECALL_IOU = 0.5


def box_iou(a, b) -> float:
    """IoU of two x1,y1,x2,y2 boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def object_boxes(labels: np.ndarray, n_objects: int) -> list[tuple | None]:
    """Box of each object's visible pixels (``None`` when fully hidden)."""
    out = []
    for k in range(n_objects):
        ys, xs = np.nonzero(labels == k)
        out.append((float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
                   if len(xs) else None)
    return out


def covering_regions(labels: np.ndarray, comp: np.ndarray, n_regions: int, k: int) -> list[int]:
    """Detected regions (ids >= 1) that are mostly object ``k`` and hold a fair share of it."""
    vis = labels == k
    n_vis = int(vis.sum())
    if n_vis == 0:
        return []
    hits = np.bincount(comp[vis].astype(np.int64) + 1, minlength=n_regions + 1)[1:]  # [n_regions]
    sizes = np.bincount(comp.ravel().astype(np.int64) + 1, minlength=n_regions + 1)[1:]
    return [r for r in range(1, n_regions)
            if hits[r] >= GROUND_MIN_PURITY * sizes[r] and hits[r] >= GROUND_MIN_COVER * n_vis]


def _write_png(path: Path, img: np.ndarray) -> None:
    # Written in place (no temp + rename: it cost as much as encoding): the whole dataset is built in a
    # staging folder and published only when complete (causmatch.outputs.publish_dir).
    ok, buf = cv2.imencode(".png", img[..., ::-1], PNG_PARAMS)  # RGB -> BGR for OpenCV
    path.write_bytes(buf.tobytes())


def build_image(job: tuple) -> dict:
    """Everything about image ``index`` of ``split``; ``job = (out, seed, split, index, bias)``."""
    out, seed, split, index, bias = job
    rng = scene_rng(seed, split, index)
    objects = sample_scene(rng, split, bias)
    img, labels = render(objects, rng)                       # [H,W,3] uint8, [H,W] int16
    boxes, comp, smooth, cls = detect(img)                   # [n,4], [H,W]
    feats = region_features(boxes, comp, smooth, cls)        # [R, F]
    rel = f"images/{split}/{index:06d}.png"
    _write_png(Path(out) / rel, img)
    captions, token_lists = make_captions(rng, objects)
    regions_of = {}
    grounding = []
    for j, tokens in enumerate(token_lists):
        words = []
        for t, (word, kind, k) in enumerate(tokens):
            if kind is not None:
                if k not in regions_of:
                    regions_of[k] = covering_regions(labels, comp, len(boxes), k)
                words.append({"index": t, "word": word, "type": kind, "object": k, "regions": regions_of[k]})
        grounding.append({"caption": index * CAPS_PER_IMAGE + j, "image": index,
                          "tokens": [w for w, _, _ in tokens], "words": words})
    truth = object_boxes(labels, len(objects))
    found = [b is not None and any(box_iou(b, d) >= RECALL_IOU for d in boxes[1:]) for b in truth]
    padded = np.zeros((MAX_REGIONS, 4), np.float32)
    padded[: len(boxes)] = boxes
    return {"features": feats, "boxes": padded, "n_regions": len(boxes), "path": rel, "captions": captions,
            "grounding": grounding, "found": [f for f, b in zip(found, truth) if b is not None],
            "scene": {"image": index, "objects": [asdict(o) | {"box": b} for o, b in zip(objects, truth)]}}


def _split_stats(results: list[dict]) -> dict:
    """Counts that docs/scenes.md and the tests read back (including the bias co-occurrence)."""
    objs = [r["scene"]["objects"] for r in results]
    star = np.array([any(o["shape"] == BIAS_SHAPE and not o["distractor"] for o in s) for s in objs])
    dis = np.array([any(o["distractor"] for o in s) for s in objs])
    mentioned = [{w["object"] for g in r["grounding"] for w in g["words"]} for r in results]
    unmentioned = [len(s) > len(m) for s, m in zip(objs, mentioned)]
    n_words = [len(g["tokens"]) for r in results for g in r["grounding"]]
    found = [f for r in results for f in r["found"]]
    return {
        "images": len(results), "captions": len(results) * CAPS_PER_IMAGE,
        "objects_per_image": float(np.mean([len(s) for s in objs])),
        "regions_per_image": float(np.mean([r["n_regions"] for r in results])),
        "words_per_caption": float(np.mean(n_words)),
        "images_with_unmentioned_objects": float(np.mean(unmentioned)),
        "detector_recall": float(np.mean(found)) if found else 0.0,
        "p_distractor_given_star": float(dis[star].mean()) if star.any() else 0.0,
        "p_distractor_given_no_star": float(dis[~star].mean()) if (~star).any() else 0.0,
        "images_with_star": int(star.sum()), "images_with_distractor": int(dis.sum()),
    }


def _worker_init() -> None:
    cv2.setNumThreads(1)  # the pool already uses every core; OpenCV threads would only contend


def make_pool(workers: int):
    """A process pool for :func:`run_split` (``None`` for ``workers <= 1``: build in this process)."""
    if workers <= 1:
        return None
    return multiprocessing.get_context("spawn").Pool(workers, initializer=_worker_init)


def run_split(out: Path, seed: int, split: str, n: int, bias: float, pool, progress: bool) -> tuple:
    """Build ``n`` images of ``split`` into ``out``. Returns ``(results in index order, stats)``."""
    (out / "images" / split).mkdir(parents=True, exist_ok=True)
    jobs = [(str(out), seed, split, i, bias) for i in range(n)]
    bar = tqdm(total=n, desc=f"scenes {split}", unit="img", disable=not progress)
    results = []
    it = map(build_image, jobs) if pool is None else pool.imap(build_image, jobs, chunksize=16)
    for res in it:  # imap keeps index order
        results.append(res)
        bar.update()
    bar.close()
    return results, _split_stats(results)


def write_scene_file(path: Path, results: list[dict]) -> None:
    """``{split}_scenes.jsonl``: the generator's objects per image (known answers for analysis)."""
    text = "".join(json.dumps(r["scene"], separators=(",", ":")) + "\n" for r in results)
    atomic_write_text(path, text)


__all__ = ["build_image", "make_pool", "run_split", "write_scene_file", "box_iou", "covering_regions", "FEATURE_DIM"]
