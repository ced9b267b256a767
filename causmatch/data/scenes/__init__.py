"""The generated "scenes" benchmark: a controlled image–caption data set with known answers.

``build_scenes`` writes a dataset folder (DESIGN.md format) plus PNG images, grounding, the
generator's objects (``{split}_scenes.jsonl``) and a ``meta.json`` that records every setting.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from causmatch.data.folder import available_splits, read_meta, write_meta, write_split
from causmatch.data.scenes.captions import CAPS_PER_IMAGE
from causmatch.data.scenes.regions import FEATURE_BLOCKS, FEATURE_DIM, MAX_REGIONS
from causmatch.data.scenes.spec import (BIAS_SHAPE, COLOURS, DISTRACTOR, DISTRACTOR_BASE_RATE,
                                        GENERATOR_VERSION, IMAGE_SIZE, SHAPES, SIZES, SPLIT_IDS)
from causmatch.errors import DataError

DEFAULT_SIZES = {"train": 10_000, "dev": 1_000, "test": 1_000}
DEFAULT_SEED = 0
DEFAULT_BIAS = 0.9


def default_scenes_dir() -> Path:
    """``<repo>/assets/data/scenes``; the ``CAUSMATCH_DATA`` environment variable overrides it."""
    env = os.environ.get("CAUSMATCH_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return Path(__file__).resolve().parents[3] / "assets" / "data" / "scenes"


def _settings(seed: int, bias: float) -> dict:
    return {"generator_version": GENERATOR_VERSION, "seed": seed, "bias": bias}


def _base_meta(seed: int, bias: float) -> dict:
    return {
        "name": "scenes", "caps_per_image": CAPS_PER_IMAGE, "generator": _settings(seed, bias),
        "licence": "generated data, CC0 1.0 (public domain dedication)",
        "source": "causmatch scenes (rendered by causmatch.data.scenes; no external images)",
        "image_size": IMAGE_SIZE, "regions": MAX_REGIONS,
        "feature_extractor": {
            "name": "scenes-pixels-v1", "dim": FEATURE_DIM,
            "description": "OpenCV colour segmentation + connected components; per-region colour, shape, "
                           "mask and geometry features from the pixels in the box; region 0 = whole image",
            "blocks": [{"name": n, "size": s} for n, s in FEATURE_BLOCKS]},
        "vocabulary": {"shapes": list(SHAPES), "colours": list(COLOURS), "sizes": list(SIZES)},
        "bias": {"strength": bias, "shape": BIAS_SHAPE, "distractor": f"{DISTRACTOR[2]} {DISTRACTOR[1]} {DISTRACTOR[0]}",
                 "base_rate": DISTRACTOR_BASE_RATE,
                 "rule": "train/dev: P(distractor | star) = q + (1-q)P placed beside the star, "
                         "P(distractor | no star) = q(1-P); test: q independent of stars; never mentioned"},
        "splits": {},
    }


def _drop_stale(folder: Path, old: dict) -> None:
    """Remove generated splits that were built with other settings (only in a scenes folder)."""
    for split in old.get("splits", {}):
        for path in folder.glob(f"{split}_*"):
            path.unlink()
        shutil.rmtree(folder / "images" / split, ignore_errors=True)


@contextlib.contextmanager
def _build_lock(folder: Path):
    """One builder per folder at a time (several app sessions, or the CLI beside the app)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_scenes(out: str | os.PathLike, *, seed: int = DEFAULT_SEED, bias: float = DEFAULT_BIAS,
                 sizes: dict[str, int] | None = None, splits=("train", "dev", "test"), workers: int = 2,
                 progress: bool = True) -> Path:
    """Generate ``splits`` into ``out`` (other splits already there with the same settings are kept)."""
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    bad = [s for s in splits if s not in SPLIT_IDS]
    if bad:
        raise DataError(f"unknown scenes split(s) {', '.join(bad)} — choose from train, dev, test")
    if not 0.0 <= bias <= 1.0:
        raise DataError(f"--bias must lie in [0, 1], got {bias}")
    if any(sizes[s] < 1 for s in splits):
        raise DataError("every split needs at least one image — raise --train/--dev/--test")
    out = Path(out).expanduser().resolve()
    with _build_lock(out):
        return _build(out, seed, bias, sizes, splits, workers, progress)


def _build(out: Path, seed: int, bias: float, sizes: dict, splits, workers: int, progress: bool) -> Path:
    from causmatch.data.scenes.generate import make_pool  # heavy (cv2): import only when building

    meta = _base_meta(seed, bias)
    old = read_meta(out)
    if old.get("name") == "scenes":
        if old.get("generator") == meta["generator"]:
            meta["splits"] = {k: v for k, v in old.get("splits", {}).items() if k not in splits}
        else:
            _drop_stale(out, old)
    pool = make_pool(workers)
    try:
        for split in splits:
            _build_split(out, meta, seed, split, sizes[split], bias, pool, progress)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return out


def _build_split(out: Path, meta: dict, seed: int, split: str, n: int, bias: float, pool, progress: bool) -> None:
    """Generate one split, write its files, and record its statistics in ``meta.json``."""
    from causmatch.data.scenes.generate import run_split, write_scene_file

    results, stats = run_split(out, seed, split, n, bias, pool, progress)
    write_split(out, split, features=np.stack([r["features"] for r in results]),  # [I, R, F]
                captions=[c for r in results for c in r["captions"]], caps_per_image=CAPS_PER_IMAGE,
                boxes=np.stack([r["boxes"] for r in results]),                     # [I, R, 4]
                regions=np.array([r["n_regions"] for r in results], dtype=np.int32),
                image_paths=[r["path"] for r in results],
                grounding=[g for r in results for g in r["grounding"]])
    write_scene_file(out / f"{split}_scenes.jsonl", results)
    meta["splits"][split] = stats
    write_meta(out, meta)
    if progress:
        print(f"scenes {split}: {stats['images']} images, detector recall "
              f"{stats['detector_recall']:.3f} (IoU >= 0.5)", file=sys.stderr)


def ensure_scenes(folder: str | os.PathLike | None = None, splits=("test",), progress: bool = True) -> Path:
    """Return the scenes folder, first building any of ``splits`` that is missing (default settings)."""
    folder = Path(folder).expanduser().resolve() if folder is not None else default_scenes_dir()
    with _build_lock(folder):
        meta = read_meta(folder)
        have = set(available_splits(folder)) & set(meta.get("splits", {}))
        missing = [s for s in splits if s not in have]
        if missing:
            if meta and meta.get("name") != "scenes":
                raise DataError(f"{folder} holds another dataset ({meta.get('name')}) without split(s) "
                                f"{', '.join(missing)} — pass a scenes folder or an empty one")
            gen = meta.get("generator", {})
            same = gen.get("generator_version") == GENERATOR_VERSION
            n = sum(DEFAULT_SIZES[s] for s in missing if s in DEFAULT_SIZES)
            _build(folder, gen.get("seed", DEFAULT_SEED) if same else DEFAULT_SEED,
                   gen.get("bias", DEFAULT_BIAS) if same else DEFAULT_BIAS, dict(DEFAULT_SIZES), tuple(missing),
                   2 if n >= 200 else 1, progress)  # starting workers costs more than a few images
    return folder
