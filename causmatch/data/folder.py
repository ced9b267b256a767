"""Dataset folders: read, validate and write the format in docs/architecture.md (a superset of SCAN's ``*_precomp``).

Features are opened with ``mmap_mode="r"`` and never read whole; the NaN/inf check walks the
memmap in blocks. Every problem a user can cause is a one-line :class:`DataError`.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from causmatch.errors import DataError
from causmatch.outputs import atomic_write as _atomic_write
from causmatch.outputs import os_error, recover_dir

KNOWN_SPLITS = ("train", "dev", "test", "testall")
_HOW_TO_GET = ("run `causmatch scenes --out DIR` for the demo data, or use a SCAN *_precomp folder "
               "or `causmatch convert-butd`")
_BLOCK_BYTES = 64 << 20  # NaN/inf check reads at most this much of the memmap at a time
_FULL_SCAN_BYTES = 4 << 30  # larger feature files are sampled at open and checked row by row in the loader
_SAMPLE_ROWS = 2048
_FINITE_CACHE: dict[tuple, bool] = {}  # (path, size, mtime_ns) -> verdict, so reloads stay cheap


@dataclass(frozen=True, eq=False)
class SplitData:
    """One split of a dataset folder, validated. Caption ``c`` belongs to image ``c // K``."""

    folder: Path
    split: str
    features: np.ndarray            # [I, R, F] float32/float16 read-only memmap
    captions: list[str]             # [C], C = K * I
    caps_per_image: int             # K
    region_mask: np.ndarray         # [I, R] bool
    boxes: np.ndarray | None        # [I, R, 4] x1, y1, x2, y2 in pixels
    image_paths: list[Path] | None  # [I] absolute paths
    grounding: list[dict] | None    # [C] entries (see docs/architecture.md)
    ids: list[str] | None           # [I]
    meta: dict

    @property
    def n_images(self) -> int:
        return int(self.features.shape[0])

    @property
    def n_captions(self) -> int:
        return len(self.captions)

    def image_of(self, c: int) -> int:
        """Image index of caption ``c``."""
        return int(c) // self.caps_per_image

    def captions_of(self, i: int) -> range:
        """Caption indices of image ``i``."""
        k = self.caps_per_image
        return range(int(i) * k, (int(i) + 1) * k)

    def fingerprint(self) -> str:
        """Cheap, stable id of the split's content: file sizes + mtimes, captions hash, feature sample."""
        h = hashlib.sha1()
        for path in sorted(self.folder.glob(f"{self.split}_*")):
            st = path.stat()
            h.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns};".encode())
        h.update("\n".join(self.captions).encode("utf-8"))
        n = self.n_images
        for i in sorted({0, n // 2, n - 1}):  # first, middle, last image rows
            h.update(np.ascontiguousarray(self.features[i]).tobytes())
        return h.hexdigest()[:16]


def _path(folder: Path, split: str, suffix: str) -> Path:
    return folder / f"{split}_{suffix}"


def available_splits(folder: str | os.PathLike) -> list[str]:
    """Splits that have both ``{split}_ims.npy`` and ``{split}_caps.txt`` (known splits first)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = {p.name[: -len("_ims.npy")] for p in folder.glob("*_ims.npy")
             if _path(folder, p.name[: -len("_ims.npy")], "caps.txt").is_file()}
    return [s for s in KNOWN_SPLITS if s in found] + sorted(found - set(KNOWN_SPLITS))


def read_meta(folder: str | os.PathLike) -> dict:
    """``meta.json`` of a folder, or ``{}`` when there is none."""
    path = Path(folder) / "meta.json"
    if not path.is_file():
        return {}
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path} is not valid UTF-8 JSON ({err.__class__.__name__}) — fix or delete it") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path} must hold a JSON object — fix or delete it")
    return meta


def atomic_write(path: Path, write) -> None:
    """Call ``write(binary_file)`` on a temp file beside ``path``, fsync, rename it into place.

    The one implementation lives in :func:`causmatch.outputs.atomic_write`; an OSError becomes a one-line
    :class:`DataError` naming the file.
    """
    try:
        _atomic_write(Path(path), write)
    except OSError as err:
        raise os_error(err, path) from None


def write_meta(folder: str | os.PathLike, meta: dict) -> None:
    """Write ``meta.json`` atomically (sorted keys, so equal dicts give equal bytes)."""
    text = json.dumps(meta, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    atomic_write(Path(folder) / "meta.json", lambda fh: fh.write(text.encode("utf-8")))


def _read_lines(path: Path, what: str, allow_empty: bool = False) -> list[str]:
    """UTF-8 lines without the line ends; a final newline does not make an extra line."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 (bad byte at offset {err.start}) — re-save the {what} "
                        "file as UTF-8") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    if not allow_empty:
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                raise DataError(f"{path} line {n} is empty — every line must hold one {what}")
    return lines


def open_features(path: Path) -> np.ndarray:
    """Read-only memmap of a features file as ``[I, R, F]`` (a 2-D ``[I, F]`` file becomes R = 1)."""
    try:
        feats = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"{path} is not a readable .npy array ({err}) — re-export the features") from None
    if feats.ndim == 2:
        feats = feats.reshape(feats.shape[0], 1, feats.shape[1])  # view, still memmapped
    if feats.ndim != 3 or feats.dtype.kind != "f":
        raise DataError(f"{path} must be a float array [images, regions, features], got "
                        f"{feats.dtype} {tuple(feats.shape)} — re-export the features")
    return feats


def _nonfinite_error(path: Path, image: int) -> DataError:
    return DataError(f"{path} has NaN or infinite values (first in image {image}) — recompute the features")


def _check_finite(path: Path, feats: np.ndarray) -> None:
    """Raise if any feature is NaN/inf; verdict cached per file version.

    Files up to ``_FULL_SCAN_BYTES`` are walked completely in blocks. Larger ones (COCO's 33 GB training
    features) get ``_SAMPLE_ROWS`` evenly spaced rows here, because a full scan costs minutes of disk reads on
    every first open; the training loader checks every row it reads (``check_row``), so a bad image is still
    reported, with its index, the first time it is used.
    """
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if _FINITE_CACHE.get(key):
        return
    n = feats.shape[0]
    if feats.nbytes <= _FULL_SCAN_BYTES:
        row_bytes = max(1, feats[0].nbytes) if n else 1
        step = max(1, _BLOCK_BYTES // row_bytes)
        starts = [(s, min(n, s + step)) for s in range(0, n, step)]
    else:
        rows = np.unique(np.linspace(0, n - 1, num=min(n, _SAMPLE_ROWS)).astype(np.int64))
        starts = [(int(r), int(r) + 1) for r in rows]
    for start, stop in starts:
        block = feats[start:stop]  # [b, R, F] view
        # A float64 sum is finite iff every entry is (float16/32 values cannot overflow it here).
        if not np.isfinite(block.sum(dtype=np.float64)):
            raise _nonfinite_error(path, start + int(np.argmin(np.isfinite(block).all(axis=(1, 2)))))
    _FINITE_CACHE[key] = True


def check_row(path: Path, image: int, row: np.ndarray) -> None:
    """Raise the one-line DataError if one image's features ``[R, F]`` hold NaN/inf."""
    if not np.isfinite(row.sum(dtype=np.float64)):
        raise _nonfinite_error(path, image)


def _region_mask(path: Path, n_img: int, n_reg: int) -> np.ndarray:
    """``[I, R]`` bool mask from a regions file holding counts ``[I]`` or a mask ``[I, R]``."""
    try:
        reg = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise DataError(f"{path} is not a readable .npy array ({err}) — fix the regions file") from None
    if reg.shape == (n_img,) and reg.dtype.kind in "iu":
        if reg.min(initial=1) < 1 or reg.max(initial=0) > n_reg:
            raise DataError(f"{path} region counts must lie in 1..{n_reg} — fix the regions file")
        return np.arange(n_reg)[None, :] < reg[:, None]  # [I, R]
    if reg.shape == (n_img, n_reg) and reg.dtype.kind in "biu":
        mask = reg.astype(bool)
        if n_img and not mask.any(axis=1).all():
            raise DataError(f"{path}: image {int(np.argmin(mask.any(axis=1)))} has no valid region "
                            "— every image needs at least one")
        return mask
    raise DataError(f"{path} has shape {tuple(reg.shape)} ({reg.dtype}); expected counts [{n_img}] or a "
                    f"mask [{n_img}, {n_reg}] matching the features — fix the regions file")


SCAN_CAPS_PER_IMAGE = (5, 1)  # the conventions accepted without meta.json or per-caption ids
MAX_REGIONS = 4096            # regions per image (BUTD: 10-100; SCAN: 36)


def _caps_per_image(meta: dict, n_caps: int, n_img: int, path: Path, split: str = "",
                    ids_lines: list[str] | None = None) -> int:
    """K captions per image: from meta.json (``caps_per_image_by_split[split]``, else ``caps_per_image``),
    else from an ids file listing each image's id once per caption, else only SCAN's conventions
    (5 per image, or 1 per image row) — another multiple is ambiguous and refused, never regrouped."""
    by_split = meta.get("caps_per_image_by_split")
    k = by_split.get(split) if isinstance(by_split, dict) and split in by_split else meta.get("caps_per_image")
    if n_caps % n_img:
        said = f" (meta.json says caps_per_image={k})" if k is not None else ""
        raise DataError(f"{path} has {n_caps} captions, not a multiple of the {n_img} images{said} — each image "
                        "needs the same number K of consecutive captions")
    if k is not None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or n_caps != k * n_img:
            raise DataError(f"{path} has {n_caps} captions but meta.json says caps_per_image={k} for "
                            f"{n_img} images — fix meta.json or the captions")
        return k
    k = n_caps // n_img
    if ids_lines is not None and len(ids_lines) == n_caps and k > 1 and all(
            len(set(ids_lines[i * k:(i + 1) * k])) == 1 for i in range(n_img)):
        return k  # the ids file lists each image's id once per caption: K is explicit
    if k not in SCAN_CAPS_PER_IMAGE:
        raise DataError(f"{path} has {n_caps} captions for {n_img} images ({k} per image), which fits no known "
                        f"layout (SCAN: 5 per image, or 1) — add \"caps_per_image\": {k} to meta.json if that "
                        "is how the captions are grouped")
    return k


def _check_boxes(path: Path, boxes: np.ndarray, mask: np.ndarray) -> None:
    """Boxes must be numbers, finite, and not inverted (x2 >= x1, y2 >= y1) on valid regions; boxes
    reaching outside the image are clipped to it where they are drawn (``heatmaps.pixel_boxes``)."""
    if boxes.dtype.kind not in "fiu":
        raise DataError(f"{path} holds {boxes.dtype} values; expected float pixel coordinates — regenerate the boxes")
    b = np.asarray(boxes, dtype=np.float64)  # [I, R, 4], small: read whole
    bad = ~np.isfinite(b).all(axis=2)
    if bad.any():
        i, r = (int(x) for x in np.argwhere(bad)[0])
        raise DataError(f"{path} has NaN or infinite coordinates (image {i}, region {r}) — regenerate the boxes")
    inverted = ((b[..., 2] < b[..., 0]) | (b[..., 3] < b[..., 1])) & mask
    if inverted.any():
        i, r = (int(x) for x in np.argwhere(inverted)[0])
        raise DataError(f"{path}: box of image {i}, region {r} is inverted (x2 < x1 or y2 < y1: "
                        f"{b[i, r].tolist()}) — boxes are x1, y1, x2, y2 in pixels; regenerate the boxes")


_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _require(folder: Path, split: str) -> tuple[Path, Path]:
    if not isinstance(split, str) or not _SPLIT_NAME.fullmatch(split) or ".." in split:
        raise DataError(f"split name {str(split)[:80]!r} is not a plain name (letters, digits, '_', '-', '.'; "
                        "no folders) — use one of the folder's splits, e.g. test")
    if not folder.is_dir():
        raise DataError(f"dataset folder {folder} does not exist — {_HOW_TO_GET}")
    ims, caps = _path(folder, split, "ims.npy"), _path(folder, split, "caps.txt")
    if not ims.is_file() and not caps.is_file():
        have = available_splits(folder)
        raise DataError(f"split '{split}' not found in {folder}; available splits: "
                        f"{', '.join(have) if have else 'none'}")
    for p in (ims, caps):
        if not p.is_file():
            raise DataError(f"missing required file {p} — {_HOW_TO_GET}")
    return ims, caps


def _read_grounding(path: Path, n_caps: int, n_reg: int) -> list[dict]:
    entries = []
    for n, line in enumerate(_read_lines(path, "grounding JSON object"), start=1):
        try:
            entry = json.loads(line)
            ok = entry["caption"] == n - 1 and all(0 <= r < n_reg for w in entry["words"] for r in w["regions"])
        except (json.JSONDecodeError, KeyError, TypeError):
            ok = False
        if not ok:
            raise DataError(f"{path} line {n} is not a valid grounding entry for caption {n - 1} — "
                            "see docs/architecture.md for the format")
        entries.append(entry)
    if len(entries) != n_caps:
        raise DataError(f"{path} has {len(entries)} lines for {n_caps} captions — regenerate it")
    return entries


def _per_image_lines(path: Path, n_img: int, what: str) -> list[str] | None:
    if not path.is_file():
        return None
    lines = _read_lines(path, what)
    if n_img and len(lines) % n_img == 0 and len(lines) > n_img:
        # Some SCAN-family precomp folders list the image id once per caption (K consecutive copies).
        k = len(lines) // n_img
        if all(len(set(lines[i * k:(i + 1) * k])) == 1 for i in range(n_img)):
            lines = lines[::k]
    if len(lines) != n_img:
        raise DataError(f"{path} has {len(lines)} lines for {n_img} images — one {what} per image")
    return lines


def load_split(folder: str | os.PathLike, split: str) -> SplitData:
    """Open and validate one split of a dataset folder (DataError with one line on any problem)."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        with contextlib.suppress(OSError):
            recover_dir(folder)  # a write killed between parking the old version and publishing the new one
    ims_path, caps_path = _require(folder, split)
    meta = read_meta(folder)
    feats = open_features(ims_path)                            # [I, R, F]
    n_img, n_reg = feats.shape[:2]
    if n_img == 0:
        raise DataError(f"{ims_path} holds no images — a split needs at least one image and its captions")
    if not 1 <= n_reg <= MAX_REGIONS or feats.shape[2] == 0:
        raise DataError(f"{ims_path} has shape {tuple(feats.shape)}: each image needs 1..{MAX_REGIONS} regions "
                        "of at least one feature — re-export the features")
    _check_finite(ims_path, feats)
    captions = _read_lines(caps_path, "caption")
    if not captions:
        raise DataError(f"{caps_path} holds no captions — a split needs K captions per image")
    ids_path = _path(folder, split, "ids.txt")
    ids_lines = _read_lines(ids_path, "id") if ids_path.is_file() else None
    k = _caps_per_image(meta, len(captions), n_img, caps_path, split, ids_lines)
    mask = np.ones((n_img, n_reg), dtype=bool)
    if _path(folder, split, "regions.npy").is_file():
        mask = _region_mask(_path(folder, split, "regions.npy"), n_img, n_reg)
    boxes = None
    if _path(folder, split, "boxes.npy").is_file():
        try:
            boxes = np.load(_path(folder, split, "boxes.npy"), mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as err:
            raise DataError(f"{_path(folder, split, 'boxes.npy')} is not a readable .npy array ({err}) — "
                            "regenerate the boxes") from None
        if boxes.shape != (n_img, n_reg, 4):
            raise DataError(f"{_path(folder, split, 'boxes.npy')} has shape {tuple(boxes.shape)}, expected "
                            f"({n_img}, {n_reg}, 4) to match the features — regenerate the boxes")
        _check_boxes(_path(folder, split, "boxes.npy"), boxes, mask)
    paths = _per_image_lines(_path(folder, split, "images.txt"), n_img, "image path")
    ground = None
    if _path(folder, split, "grounding.jsonl").is_file():
        ground = _read_grounding(_path(folder, split, "grounding.jsonl"), len(captions), n_reg)
    return SplitData(folder=folder, split=split, features=feats, captions=captions, caps_per_image=k,
                     region_mask=mask, boxes=boxes,
                     image_paths=None if paths is None else [folder / p for p in paths],
                     grounding=ground, ids=_per_image_lines(_path(folder, split, "ids.txt"), n_img, "id"),
                     meta=meta)


def _save_npy(path: Path, array: np.ndarray) -> None:
    atomic_write(path, lambda fh: np.save(fh, np.ascontiguousarray(array), allow_pickle=False))


def _save_lines(path: Path, lines: list[str], what: str) -> None:
    for n, line in enumerate(lines):
        if "\n" in line or "\r" in line or not line.strip():
            raise DataError(f"{what} {n} is empty or spans several lines — give one non-empty line each")
    text = "".join(f"{ln}\n" for ln in lines)
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def write_split(folder: str | os.PathLike, split: str, *, features: np.ndarray, captions: list[str],
                caps_per_image: int, boxes: np.ndarray | None = None, regions: np.ndarray | None = None,
                image_paths: list | None = None, grounding: list[dict] | None = None,
                ids: list[str] | None = None) -> None:
    """Write one split (each file atomically). ``features`` [I,R,F]; ``regions`` counts [I] or mask [I,R]."""
    folder = Path(folder)
    features = np.asarray(features)
    if features.ndim != 3 or len(captions) != caps_per_image * features.shape[0]:
        raise DataError(f"write_split needs features [I, R, F] and K*I captions; got {features.shape} and "
                        f"{len(captions)} captions with K={caps_per_image}")
    _save_lines(_path(folder, split, "caps.txt"), list(captions), "caption")
    if boxes is not None:
        _save_npy(_path(folder, split, "boxes.npy"), np.asarray(boxes, dtype=np.float32))
    if regions is not None:
        _save_npy(_path(folder, split, "regions.npy"), np.asarray(regions))
    if image_paths is not None:
        rel = [os.path.relpath(p, folder) if os.path.isabs(p) else str(p) for p in image_paths]
        _save_lines(_path(folder, split, "images.txt"), [r.replace(os.sep, "/") for r in rel], "image path")
    if grounding is not None:
        _save_lines(_path(folder, split, "grounding.jsonl"),
                    [json.dumps(g, separators=(",", ":"), ensure_ascii=False) for g in grounding], "grounding")
    if ids is not None:
        _save_lines(_path(folder, split, "ids.txt"), [str(i) for i in ids], "id")
    _record_caps_per_image(folder, split, caps_per_image)  # so load_split never has to guess K
    _save_npy(_path(folder, split, "ims.npy"), features)  # last: the split "exists" once its features do


def _record_caps_per_image(folder: Path, split: str, k: int) -> None:
    """Note K in meta.json (``caps_per_image``, or ``caps_per_image_by_split`` when splits differ)."""
    meta = read_meta(folder)
    if meta.get("caps_per_image", k) == k and split not in meta.get("caps_per_image_by_split", {}):
        if "caps_per_image" in meta:
            return
        meta["caps_per_image"] = int(k)
    else:
        meta.setdefault("caps_per_image_by_split", {})[split] = int(k)
    write_meta(folder, meta)
