"""Box files published beside SCAN precomp folders -> our ``{split}_boxes.npy``.

Some SCAN-family repositories ship ``{split}_ims_bbx.npy`` [I, R, 4] (x1, y1, x2, y2) and
``{split}_ims_size.npy`` [I, 2] (image width, height) next to ``{split}_ims.npy``. The boxes
are in pixels in some releases and divided by the image size in others; we store pixels,
so normalised boxes (every coordinate within [0, 1]) are scaled back by the sizes.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from causmatch.data.folder import atomic_write
from causmatch.errors import DataError

_SLACK = 1.5  # pixels: detectors round box corners to the pixel grid, sometimes one past the edge


def pixel_boxes(bbx: np.ndarray, size: np.ndarray, where: str) -> np.ndarray:
    """Boxes [I,R,4] in pixels from ``bbx`` [I,R,4] (pixels or normalised) and ``size`` [I,2] (w, h)."""
    bbx = np.asarray(bbx, dtype=np.float32)
    wh = np.asarray(size, dtype=np.float32)[:, None, :]  # [I,1,2]
    if not np.isfinite(bbx).all():
        i = int(np.argmin(np.isfinite(bbx).all(axis=(1, 2))))
        raise DataError(f"{where}: image {i} has NaN or infinite box coordinates — the box file is corrupt")
    if not (np.isfinite(wh).all() and (wh > 0).all()):
        i = int(np.argmin((np.isfinite(wh) & (wh > 0)).all(axis=(1, 2))))
        raise DataError(f"{where}: image {i} has size {np.asarray(size)[i].tolist()} — the size file must hold a "
                        "positive (width, height) per image")
    if np.any(bbx < -_SLACK):
        i = int(np.argmax((bbx < -_SLACK).any(axis=(1, 2))))
        raise DataError(f"{where}: image {i} has a box with a negative coordinate — the file is not "
                        "x1,y1,x2,y2 boxes in pixels or in [0, 1]")
    if np.all((bbx >= -1e-3) & (bbx <= 1 + 1e-3)):
        bbx = bbx * np.concatenate([wh, wh], axis=2)  # normalised -> pixels
    if np.any(bbx[..., 2:] < bbx[..., :2]):
        raise DataError(f"{where}: some boxes have x2 < x1 or y2 < y1 — the file is not x1,y1,x2,y2 boxes")
    over = (bbx[..., 2:] > wh + _SLACK).any(axis=2)  # [I,R]
    if over.any():
        i = int(np.argmax(over.any(axis=1)))
        raise DataError(f"{where}: image {i} has a box beyond its size {size[i].tolist()} — the size file "
                        "must hold (width, height) per image, in the same order as the boxes")
    return bbx


def _load(path: Path, mmap_mode=None) -> np.ndarray:
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"{path} is not a readable .npy array ({err.__class__.__name__}) — re-download it") from None


def _image_lines(folder: Path, split: str, n: int, root: Path, pattern: str) -> list[str]:
    ids_path = folder / f"{split}_ids.txt"
    if not ids_path.is_file():
        raise DataError(f"{ids_path} not found — image paths come from the ids; leave out --images-root "
                        "or add the ids file")
    ids = ids_path.read_text(encoding="utf-8").split()
    k = len(ids) // n if n and len(ids) % n == 0 else 0
    if k > 1 and all(len(set(ids[i * k:(i + 1) * k])) == 1 for i in range(n)):
        ids = ids[::k]  # one id per caption, K consecutive per image: keep one per image
    if len(ids) != n:
        raise DataError(f"{ids_path} has {len(ids)} ids for {n} images — one id per image")
    paths = [root / pattern.format(id=i) for i in ids]
    if not paths[0].is_file():
        raise DataError(f"image file {paths[0]} not found — check --images-root and --image-pattern")
    return [os.path.relpath(p, folder).replace(os.sep, "/") for p in paths]


def convert_split_boxes(folder: Path, split: str, *, images_root: Path | None = None,
                        image_pattern: str = "{id}.jpg") -> dict:
    """Write ``{split}_boxes.npy`` (and ``{split}_images.txt`` with ``images_root``) for one split."""
    ims = _load(folder / f"{split}_ims.npy", mmap_mode="r")  # header only
    if ims.ndim not in (2, 3) or ims.shape[0] == 0:
        raise DataError(f"{split}_ims.npy has shape {tuple(ims.shape)} — expected features [images, regions, F] "
                        "with at least one image")
    n, r = (ims.shape[0], 1) if ims.ndim == 2 else ims.shape[:2]
    bbx = _load(folder / f"{split}_ims_bbx.npy")
    size_path = folder / f"{split}_ims_size.npy"
    if not size_path.is_file():
        raise DataError(f"{size_path} not found — the image sizes are needed to place the boxes")
    size = _load(size_path)
    for name, arr in ((f"{split}_ims_bbx.npy", bbx), (f"{split}_ims_size.npy", size)):
        if arr.dtype.kind not in "fiu":
            raise DataError(f"{name} holds {arr.dtype} values — expected numbers")
    if bbx.shape != (n, r, 4):
        raise DataError(f"{split}_ims_bbx.npy has shape {tuple(bbx.shape)}, expected ({n}, {r}, 4) to match "
                        f"{split}_ims.npy — the box file belongs to other features")
    if size.shape != (n, 2):
        raise DataError(f"{split}_ims_size.npy has shape {tuple(size.shape)}, expected ({n}, 2) — "
                        "one (width, height) per image")
    boxes = pixel_boxes(bbx, size, f"{split}_ims_bbx.npy")
    atomic_write(folder / f"{split}_boxes.npy", lambda fh: np.save(fh, boxes, allow_pickle=False))
    summary = {"images": int(n), "regions": int(r), "images_txt": False}
    if images_root is not None:
        lines = _image_lines(folder, split, n, Path(images_root).expanduser().resolve(), image_pattern)
        text = "".join(f"{ln}\n" for ln in lines)
        atomic_write(folder / f"{split}_images.txt", lambda fh: fh.write(text.encode("utf-8")))
        summary["images_txt"] = True
    return summary


def convert_precomp_boxes(folder: str | os.PathLike, *, images_root: str | os.PathLike | None = None,
                          image_pattern: str = "{id}.jpg") -> dict:
    """Convert every ``{split}_ims_bbx.npy`` of a precomp folder; returns ``{split: summary}``."""
    folder = Path(folder).expanduser().resolve()
    found = sorted(p.name[: -len("_ims_bbx.npy")] for p in folder.glob("*_ims_bbx.npy"))
    if not found:
        raise DataError(f"no {{split}}_ims_bbx.npy files in {folder} — point --precomp-boxes at the "
                        "precomp folder that holds them")
    for split in found:
        if not (folder / f"{split}_ims.npy").is_file():
            raise DataError(f"{folder / (split + '_ims_bbx.npy')} has no {split}_ims.npy beside it — "
                            "the boxes must sit in the precomp folder of their features")
    root = Path(images_root) if images_root is not None else None
    return {s: convert_split_boxes(folder, s, images_root=root, image_pattern=image_pattern) for s in found}
