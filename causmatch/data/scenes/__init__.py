"""The generated "scenes" benchmark: a controlled image–caption data set with known answers.

``build_scenes`` writes a dataset folder (docs/architecture.md) plus PNG images, grounding, the
generator's objects (``{split}_scenes.jsonl``) and a ``meta.json`` that records every setting.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import numbers
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from causmatch.data.folder import available_splits, read_meta, write_meta, write_split
from causmatch.data.scenes.captions import CAPS_PER_IMAGE
from causmatch.data.scenes.regions import FEATURE_BLOCKS, FEATURE_DIM, MAX_REGIONS
from causmatch.data.scenes.spec import (
    BIAS_SHAPE,
    COLOURS,
    DISTRACTOR,
    DISTRACTOR_BASE_RATE,
    GENERATOR_VERSION,
    IMAGE_SIZE,
    SHAPES,
    SIZES,
    SPLIT_IDS,
)
from causmatch.errors import DataError
from causmatch.outputs import (
    check_output_dir,
    crash_point,
    describe_folder,
    link_tree,
    os_error,
    publish_dir,
    recover_dir,
    stage_dir,
)

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
        "bias": {"strength": bias, "shape": BIAS_SHAPE,
                 "distractor": f"{DISTRACTOR[2]} {DISTRACTOR[1]} {DISTRACTOR[0]}",
                 "base_rate": DISTRACTOR_BASE_RATE,
                 "rule": "train/dev: P(distractor | star) = q + (1-q)P placed beside the star, "
                         "P(distractor | no star) = q(1-P); test: q independent of stars; never mentioned"},
        "splits": {},
    }


_SPLIT_FILE_RE = re.compile(r"^(train|dev|test)_(ims\.npy|caps\.txt|boxes\.npy|regions\.npy|images\.txt|"
                            r"grounding\.jsonl|scenes\.jsonl)$")
_PNG_RE = re.compile(r"^\d{6}\.png$")


def _recognise(folder: Path, names: list[str]) -> str | None:
    """None if ``folder`` holds only what ``causmatch scenes`` writes; else what is there (for errors)."""
    try:
        meta = read_meta(folder)
    except DataError:
        meta = {}
    if meta.get("name") != "scenes":
        if meta.get("name"):
            return f"another dataset ({meta.get('name')!r} in its meta.json)"
        if not (".build.lock" in names and "meta.json" not in names):
            return describe_folder(folder)
        # else: an in-place build by an earlier version, interrupted before its meta.json: ours if all else is
    other = [n for n in names if n not in ("meta.json", "images", ".build.lock") and not _SPLIT_FILE_RE.match(n)]
    images = folder / "images"
    if "images" in names:
        if not images.is_dir():
            other.append("images")
        else:
            for sub in os.listdir(images):
                if sub not in SPLIT_IDS or not (images / sub).is_dir():
                    other.append(f"images/{sub}")
                elif any(not _PNG_RE.match(f) for f in os.listdir(images / sub)):
                    other.append(f"images/{sub}/...")
    if other:
        return (f"a scenes dataset plus {len(other)} other entr{'y' if len(other) == 1 else 'ies'} "
                f"(e.g. {other[0]})")
    return None


@contextlib.contextmanager
def _build_lock(folder: Path):
    """One builder per folder at a time (several app sessions, or the CLI beside the app).

    The lock file lives in the temporary folder, named by a hash of the folder's path: the folder itself
    is replaced whole when published, and nothing is added beside the user's files.
    """
    key = hashlib.sha1(str(folder).encode("utf-8")).hexdigest()[:20]
    lock_path = Path(tempfile.gettempdir()) / f"causmatch-{os.getuid() if hasattr(os, 'getuid') else 0}-{key}.lock"
    try:
        lock = open(lock_path, "a")
    except OSError as err:
        raise os_error(err, lock_path, "create the build lock") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def build_scenes(out: str | os.PathLike, *, seed: int = DEFAULT_SEED, bias: float = DEFAULT_BIAS,
                 sizes: dict[str, int] | None = None, splits=("train", "dev", "test"), workers: int = 2,
                 progress: bool = True, overwrite: bool = False) -> Path:
    """Generate ``splits`` into ``out``; returns ``out``.

    ``out`` may be missing, an empty folder, or an earlier scenes output. In an earlier output, splits
    already built with the same settings and sizes are kept as they are (nothing is rebuilt when all of
    them are), other splits with the same settings are kept, and new splits are added; rebuilding a split
    with other sizes or settings needs ``overwrite``. Anything else in ``out`` is refused. The new version
    is built in a temporary sibling folder and moved into place whole.
    """
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    bad = [s for s in splits if s not in SPLIT_IDS]
    if bad:
        raise DataError(f"unknown scenes split(s) {', '.join(bad)} — choose from train, dev, test")
    if not 0.0 <= bias <= 1.0:
        raise DataError(f"--bias must lie in [0, 1], got {bias}")
    if any(sizes[s] < 1 for s in splits):
        raise DataError("every split needs at least one image — raise --train/--dev/--test")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise DataError(f"--seed must be a whole number >= 0, got {seed!r}")
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral) or workers < 1:
        raise DataError(f"--workers must be a whole number >= 1, got {workers!r}")
    out = Path(out).expanduser().resolve()
    with _build_lock(out):
        return _build(out, seed, bias, sizes, splits, workers, progress, overwrite=overwrite)


def _built(folder: Path, meta: dict) -> set[str]:
    return set(available_splits(folder)) & set(meta.get("splits", {}))


def _build(out: Path, seed: int, bias: float, sizes: dict, splits, workers: int, progress: bool, *,
           overwrite: bool) -> Path:
    from causmatch.data.scenes.generate import make_pool  # heavy (cv2): import only when building

    state = check_output_dir(out, command="scenes", recognise=_recognise, consent=True)
    meta = _base_meta(seed, bias)
    old = read_meta(out) if state == "previous" else {}
    have = _built(out, old) if state == "previous" else set()
    same = old.get("generator") == meta["generator"]
    same_size = {s for s in have if same and old["splits"][s].get("images") == sizes[s]}
    todo = [s for s in splits if overwrite or s not in same_size]
    changed = [s for s in todo if s in have] if not overwrite else []
    if have and not same and not overwrite:
        g = old.get("generator", {})
        raise DataError(f"--out {out} holds a scenes dataset built with other settings (seed {g.get('seed')}, "
                        f"bias {g.get('bias')}) — pass --overwrite to rebuild it, or choose another --out "
                        "(nothing was written)")
    if changed:
        raise DataError(f"--out {out} already holds the scenes split {changed[0]} with "
                        f"{old['splits'][changed[0]].get('images')} images — pass --overwrite to rebuild it "
                        "with the new size, or choose another --out (nothing was written)")
    if not todo:
        if progress:
            print(f"scenes: {', '.join(splits)} already built in {out} with these settings", file=sys.stderr)
        return out
    keep = [s for s in sorted(have) if s not in todo] if same else []
    meta["splits"] = {s: old["splits"][s] for s in keep}
    try:
        with stage_dir(out) as stage:
            for split in keep:  # unchanged splits: carried into the new version by hard links
                for path in out.glob(f"{split}_*"):
                    link_tree(path, stage / path.name)
                if (out / "images" / split).is_dir():
                    link_tree(out / "images" / split, stage / "images" / split)
            pool = make_pool(workers)
            try:
                for split in todo:
                    _build_split(stage, meta, seed, split, sizes[split], bias, pool, progress)
                    crash_point("scenes.split")
            finally:
                if pool is not None:
                    pool.close()
                    pool.join()
            publish_dir(stage, out, label="scenes")
    except OSError as err:
        raise os_error(err, out, "write the dataset folder") from None
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
    """Return the scenes folder, first building any of ``splits`` that is missing (default settings).

    Splits already there are kept; a folder built by another generator version is rebuilt with the
    default settings (it is our own generated data). A folder holding anything else is refused.
    """
    folder = Path(folder).expanduser().resolve() if folder is not None else default_scenes_dir()
    with _build_lock(folder):
        recover_dir(folder)
        meta = read_meta(folder) if folder.is_dir() else {}
        have = _built(folder, meta)
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
                   2 if n >= 200 else 1, progress,  # starting workers costs more than a few images
                   overwrite=not same)
    return folder
