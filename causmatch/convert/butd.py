"""BUTD TSV files + a Karpathy split file -> a CausMatch dataset folder.

Streaming and restartable: every file is written into ``OUT/.convert-butd.partial/``
(features and boxes through preallocated ``.npy`` memmaps, one row at a time, so memory
holds one TSV line plus the captions). Once every image of every requested split has been
written and checked, the partial folder becomes the complete new version (splits of an earlier
conversion that are not rewritten are carried over by hard links, and ``meta.json``), is moved
beside ``OUT`` and replaces it whole (:func:`causmatch.outputs.publish_dir`). An interrupted or
killed run leaves the previous ``OUT`` complete; running the same command again starts clean
(it deletes the partial folder). An existing ``OUT`` must be empty or an earlier convert-butd
output, which is replaced only with ``overwrite``.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from causmatch.convert.butd_tsv import iter_tsv
from causmatch.convert.karpathy import KarpathySplits, load_karpathy
from causmatch.data import read_meta, write_meta
from causmatch.errors import DataError
from causmatch.outputs import (
    check_output_dir,
    crash_point,
    describe_folder,
    is_leftover,
    link_tree,
    os_error,
    publish_dir,
    stage_path,
)

PARTIAL = ".convert-butd.partial"
ALL_SPLITS = ("train", "dev", "test", "testall")
_SUFFIXES = ("ims.npy", "boxes.npy", "regions.npy", "caps.txt", "ids.txt", "images.txt", "grounding.jsonl")


def _selected(karpathy: KarpathySplits, splits: Sequence[str]) -> list[str]:
    """Karpathy splits to write. COCO's 5K test is written as ``test`` and linked as ``testall``."""
    unknown = [s for s in splits if s not in ALL_SPLITS]
    if unknown:
        raise DataError(f"unknown split '{unknown[0]}' — choose from {', '.join(ALL_SPLITS)}")
    wanted = {"test" if s == "testall" else s for s in splits}
    missing = [s for s in wanted if s not in karpathy.splits]
    if missing:
        raise DataError(f"the Karpathy file has no '{missing[0]}' images (it has "
                        f"{', '.join(karpathy.splits)}) — choose --splits among those")
    return [s for s in ("train", "dev", "test") if s in wanted]


def _locate(row, ids: dict[int, tuple[str, int]], karpathy_name: str) -> tuple[str, int]:
    try:
        return ids[row.image_id]
    except KeyError:
        raise DataError(f"{row.path.name} line {row.line}: image_id {row.image_id} is not in "
                        f"{karpathy_name} — use the split file of the same dataset") from None


def scan_max_boxes(tsv: Sequence[Path], ids: dict[int, tuple[str, int]], chosen: set[str],
                   karpathy_name: str) -> int:
    """First pass without decoding the arrays: the largest box count of a selected image."""
    most = 0
    for row in tqdm(iter_tsv(tsv, decode=False), desc="scan box counts", unit="img",
                    file=sys.stderr, disable=None):
        if _locate(row, ids, karpathy_name)[0] in chosen:
            most = max(most, row.num_boxes)
    return most


class _SplitWriter:
    """Preallocated memmaps for one split; rows arrive in any order."""

    def __init__(self, tmp: Path, split: str, n: int, r: int, f: int, dtype):
        self.split, self.r, self.f = split, r, f
        self.feats = np.lib.format.open_memmap(tmp / f"{split}_ims.npy", "w+", dtype, (n, r, f))  # [I,R,F]
        self.boxes = np.lib.format.open_memmap(tmp / f"{split}_boxes.npy", "w+", np.float32, (n, r, 4))
        self.counts = np.zeros(n, dtype=np.int32)  # 0 = not seen yet
        self.clipped = 0  # boxes reaching outside their image, clipped to it

    def put(self, row, i: int) -> None:
        if self.counts[i]:
            raise DataError(f"{row.path.name} line {row.line}: image_id {row.image_id} appears twice in "
                            "the TSV files — pass each TSV file once")
        if row.features.shape[1] != self.f:
            raise DataError(f"{row.path.name} line {row.line}: {row.features.shape[1]} features per box, "
                            f"but earlier rows have {self.f} — the TSV files mix feature extractors")
        if row.num_boxes > self.r:
            raise DataError(f"{row.path.name} line {row.line}: {row.num_boxes} boxes, more than "
                            f"--max-boxes {self.r} — raise --max-boxes or leave it out to scan first")
        n = row.num_boxes
        self.feats[i, :n] = row.features  # [n,F]; the padding rows stay zero (masked by regions)
        self.boxes[i, :n] = _checked_boxes(row, self)
        self.counts[i] = n

    def close(self) -> None:
        self.feats.flush()
        self.boxes.flush()
        del self.feats, self.boxes


def _checked_boxes(row, writer: "_SplitWriter") -> np.ndarray:
    """A row's boxes [n,4], validated: finite features and boxes, x2 >= x1 and y2 >= y1, a positive image
    size; boxes reaching outside the image are clipped to it and counted (``clipped_boxes``)."""
    where = f"{row.path.name} line {row.line} (image_id {row.image_id})"
    if not np.isfinite(row.features).all():
        raise DataError(f"{where}: the features hold NaN or infinite values — re-extract this image")
    b = np.asarray(row.boxes, dtype=np.float32)
    if not np.isfinite(b).all():
        raise DataError(f"{where}: the boxes hold NaN or infinite values — re-extract this image")
    if (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
        raise DataError(f"{where}: a box has x2 < x1 or y2 < y1 — boxes must be x1, y1, x2, y2 in pixels")
    if row.width <= 0 or row.height <= 0:
        raise DataError(f"{where}: image size {row.width} x {row.height} is not positive — the line is corrupt")
    lim = np.array([row.width, row.height, row.width, row.height], dtype=np.float32)
    clipped = np.clip(b, 0, lim)
    writer.clipped += int((clipped != b).any(axis=1).sum())
    return clipped


def _missing_error(split: str, images, missing: np.ndarray) -> None:
    raise DataError(f"{len(missing)} of the {len(images)} '{split}' images are not in the TSV files "
                    f"(first: image_id {images[missing[0]].image_id}) — pass every TSV file with --tsv")


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")


def _finish_split(tmp: Path, out: Path, w: _SplitWriter, images, images_root: Path | None,
                  k: int) -> dict:
    missing = np.flatnonzero(w.counts == 0)
    if len(missing):
        _missing_error(w.split, images, missing)
    w.close()
    _write_lines(tmp / f"{w.split}_caps.txt", [c for img in images for c in img.captions])
    _write_lines(tmp / f"{w.split}_ids.txt", [str(img.image_id) for img in images])
    if w.counts.min() < w.r:  # boxes vary: say how many of each image's rows are real
        np.save(tmp / f"{w.split}_regions.npy", w.counts)
    if images_root is not None:
        _write_lines(tmp / f"{w.split}_images.txt",
                     [os.path.relpath(images_root / img.relpath, out).replace(os.sep, "/") for img in images])
    return {"images": len(images), "captions": len(images) * k, "regions": w.r, "feature_dim": w.f,
            "min_boxes": int(w.counts.min()), "max_boxes": int(w.counts.max()), "clipped_boxes": w.clipped}


def _assemble(tmp: Path, out: Path, splits: list[str], link_testall: bool, keep_old: bool) -> None:
    """Complete the new version in ``tmp``: COCO's ``testall`` twins, and the earlier output's other splits."""
    if link_testall:
        for path in sorted(tmp.glob("test_*")):
            link_tree(path, tmp / path.name.replace("test_", "testall_", 1))  # same 5K images: share the bytes
    if keep_old:  # splits this run does not write stay as they were (hard links, no copy)
        written = set(splits) | ({"testall"} if link_testall else set())
        for path in sorted(out.iterdir()):
            split, _, suffix = path.name.partition("_")
            if split in ALL_SPLITS and split not in written and suffix in _SUFFIXES:
                link_tree(path, tmp / path.name)


def _ours(name: str) -> bool:
    """A name convert-butd writes into a dataset folder (or its partial folder)."""
    split, _, suffix = name.partition("_")
    return name == "meta.json" or is_leftover(name) or (split in ALL_SPLITS and suffix in _SUFFIXES)


def _recognise(folder: Path, names: list[str]) -> str | None:
    """None if ``folder`` holds only what convert-butd writes (its meta.json says so); else what is there."""
    try:
        meta = read_meta(folder)
    except DataError:
        meta = {}
    source = meta.get("source")
    ours = isinstance(source, dict) and source.get("converter") == "causmatch convert-butd"
    other = [n for n in names if not _ours(n)]
    if ours and not other:
        return None
    if ours:
        return (f"a convert-butd dataset plus {len(other)} other entr{'y' if len(other) == 1 else 'ies'} "
                f"(e.g. {other[0]})")
    if meta.get("name"):
        return f"another dataset ({meta.get('name')!r} in its meta.json)"
    return describe_folder(folder)


def convert_butd(tsv: Sequence[str | Path], karpathy: str | Path, out: str | Path, *,
                 images_root: str | Path | None = None, splits: Sequence[str] = ("train", "dev", "test"),
                 fp16: bool = False, caps_per_image: int = 5, max_boxes: int | None = None,
                 overwrite: bool = False) -> dict:
    """Convert BUTD TSV files to a dataset folder; returns ``{split: summary}``.

    Each split gets ``{split}_ims.npy`` [I,R,F] (R = the largest box count, padded with zeros),
    ``_boxes.npy`` [I,R,4] (pixels), ``_regions.npy`` (box counts, when they vary), ``_caps.txt``
    (``caps_per_image`` Karpathy ``raw`` sentences per image), ``_ids.txt`` and, with
    ``images_root``, ``_images.txt`` (paths relative to ``out``). COCO's 5K test split is written
    as ``test`` and hard-linked as ``testall``. ``max_boxes`` skips the box-count scan pass.

    Inputs are checked before anything is read or written: ``caps_per_image`` and ``max_boxes`` are
    whole numbers >= 1 (``max_boxes`` at most ``MAX_REGIONS``), at least one TSV file. Each TSV row
    must hold finite features and boxes with x2 >= x1, y2 >= y1; boxes reaching outside their image
    are clipped to it and counted in the summary (``clipped_boxes``).

    ``out`` may be missing, empty, or an earlier convert-butd output (then only with ``overwrite``; its
    splits that this run does not write are kept). Anything else is refused before any work.
    """
    _check_inputs(tsv, caps_per_image, max_boxes)
    tsv = [Path(p) for p in tsv]
    out = Path(out).expanduser().resolve()
    state = check_output_dir(out, command="convert-butd", recognise=_recognise, consent=overwrite,
                             ignore=(PARTIAL,))
    root = Path(images_root).expanduser().resolve() if images_root is not None else None
    ksplits = load_karpathy(karpathy, caps_per_image)
    chosen = _selected(ksplits, splits)
    ids = ksplits.index()
    r = max_boxes or scan_max_boxes(tsv, ids, set(chosen), Path(karpathy).name)
    if r <= 0:
        raise DataError("no TSV row belongs to the requested splits — check --tsv and --splits")
    tmp = out / PARTIAL
    if tmp.is_dir() and not all(_ours(p.name) for p in tmp.iterdir()):
        raise DataError(f"{tmp} holds files convert-butd does not write — move them away and run again "
                        "(nothing was written)")
    try:
        shutil.rmtree(tmp, ignore_errors=True)  # our own folder, left by an interrupted run: start clean
        tmp.mkdir(parents=True)
    except OSError as err:
        raise os_error(err, out, "write the dataset folder") from None
    writers: dict[str, _SplitWriter] = {}
    total = sum(len(ksplits.splits[s]) for s in chosen)
    bar = tqdm(total=total, desc="convert", unit="img", file=sys.stderr, disable=None)
    for row in iter_tsv(tsv):
        split, i = _locate(row, ids, Path(karpathy).name)
        if split not in chosen:
            continue
        if split not in writers:
            writers[split] = _SplitWriter(tmp, split, len(ksplits.splits[split]), r, row.features.shape[1],
                                          np.float16 if fp16 else np.float32)
        writers[split].put(row, i)
        bar.update(1)
    bar.close()
    for split in chosen:
        if split not in writers:
            _missing_error(split, ksplits.splits[split], np.arange(len(ksplits.splits[split])))
    summary = {s: _finish_split(tmp, out, writers[s], ksplits.splits[s], root, caps_per_image)
               for s in chosen}
    is_coco = ksplits.dataset.lower().startswith("coco")
    if is_coco and "test" in chosen:
        summary["testall"] = summary["test"]
    try:
        _assemble(tmp, out, chosen, is_coco and "test" in chosen, keep_old=state == "previous")
        _write_meta(tmp, read_meta(out) if state == "previous" else {}, ksplits, tsv, summary,
                    caps_per_image, fp16, root)
        crash_point("convert-butd.assembled")
        stage = stage_path(out)
        os.replace(tmp, stage)  # out of OUT, beside it: then OUT is replaced whole
        publish_dir(stage, out, label="convert-butd")
    except OSError as err:
        raise os_error(err, out, "write the dataset folder") from None
    return summary


def _check_inputs(tsv, caps_per_image, max_boxes) -> None:
    """One-line DataError for options no conversion can honour (the CLI gets the same checks)."""
    from causmatch.data.folder import MAX_REGIONS

    if isinstance(caps_per_image, bool) or not isinstance(caps_per_image, (int, np.integer)) or caps_per_image < 1:
        raise DataError(f"--caps-per-image must be a whole number >= 1, got {caps_per_image!r} — "
                        "Karpathy files have 5 sentences per image")
    if max_boxes is not None and (isinstance(max_boxes, bool) or not isinstance(max_boxes, (int, np.integer))
                                  or not 1 <= max_boxes <= MAX_REGIONS):
        raise DataError(f"--max-boxes must be a whole number in 1..{MAX_REGIONS}, got {max_boxes!r}")
    if isinstance(tsv, (str, os.PathLike)) or not len(tsv):
        raise DataError("give one or more BUTD TSV files (--tsv FILE ...)")


def _write_meta(folder: Path, meta: dict, ksplits: KarpathySplits, tsv: list[Path], summary: dict, k: int,
                fp16: bool, root: Path | None) -> None:
    """``meta.json`` of the new version in ``folder``; ``meta``: the earlier output's (its other splits)."""
    meta = dict(meta)
    kept = [s for s in meta.get("splits", {}) if s not in summary]
    old_k = meta.get("caps_per_image")
    if kept and old_k is not None and old_k != k:  # splits with different K side by side: say each one's
        by_split = meta.setdefault("caps_per_image_by_split", {})
        for s in kept:
            by_split.setdefault(s, old_k)
    if "caps_per_image_by_split" in meta:
        meta["caps_per_image_by_split"].update({s: k for s in summary})
    meta.update({"name": meta.get("name", ksplits.dataset), "caps_per_image": k,
                 "feature_extractor": "bottom-up-attention Faster R-CNN (BUTD TSV)"})
    source = meta.setdefault("source", {})
    source.update({"converter": "causmatch convert-butd", "tsv": [p.name for p in tsv],
                   "karpathy_dataset": ksplits.dataset, "dtype": "float16" if fp16 else "float32",
                   "images_root": str(root) if root else None})
    meta.setdefault("splits", {}).update(json.loads(json.dumps(summary)))
    write_meta(folder, meta)
