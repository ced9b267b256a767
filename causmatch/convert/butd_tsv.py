"""Streaming reader for bottom-up-attention (BUTD) feature TSV files.

Each line is one image: ``image_id, image_w, image_h, num_boxes, boxes, features``,
tab-separated, the last two base64-encoded float32 arrays (``[num_boxes, 4]`` boxes
x1,y1,x2,y2 in pixels and ``[num_boxes, F]`` region features). The files are tens of
GB, so rows are yielded one at a time and nothing else is kept: memory stays bounded
by one line (about 0.4 MB for 36 boxes × 2048 floats).
"""
from __future__ import annotations

import base64
import binascii
import csv
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from causmatch.errors import DataError

FIELDS = ("image_id", "image_w", "image_h", "num_boxes", "boxes", "features")

# One line holds a whole base64 feature array, far beyond csv's 128 KB default field limit.
csv.field_size_limit(sys.maxsize)


@dataclass(frozen=True)
class ButdRow:
    """One decoded TSV line. ``boxes`` [R, 4] and ``features`` [R, F] are None when not decoded."""

    path: Path
    line: int
    image_id: int
    width: int
    height: int
    num_boxes: int
    boxes: np.ndarray | None
    features: np.ndarray | None


def _where(path: Path, line: int) -> str:
    return f"{path.name} line {line}"


def _int_field(value: str, name: str, path: Path, line: int) -> int:
    try:
        return int(float(value)) if name != "image_id" else int(value)
    except ValueError:
        raise DataError(
            f"{_where(path, line)}: field '{name}' is '{value[:40]}', not a number — "
            "is this a BUTD TSV file (image_id, image_w, image_h, num_boxes, boxes, features)?"
        ) from None


def decode_array(text: str, count: int, name: str, path: Path, line: int) -> np.ndarray:
    """Decode a base64 float32 field that must hold exactly ``count`` values -> [count]."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DataError(
            f"{_where(path, line)}: field '{name}' is not valid base64 (the line is truncated or "
            "corrupt) — re-download or re-extract the TSV file"
        ) from None
    if len(raw) != count * 4:
        raise DataError(
            f"{_where(path, line)}: field '{name}' decodes to {len(raw)} bytes, expected "
            f"{count * 4} ({count} float32 values) — the line is truncated or the array is not float32"
        )
    return np.frombuffer(raw, dtype=np.float32)


def feature_dim(text: str, num_boxes: int, path: Path, line: int) -> int:
    """The feature size F implied by a base64 features field of ``num_boxes`` rows."""
    n_bytes = len(text) // 4 * 3 - text[-2:].count("=")
    if num_boxes <= 0 or n_bytes % (4 * num_boxes):
        raise DataError(
            f"{_where(path, line)}: field 'features' holds {n_bytes} bytes, not a whole number of "
            f"float32 rows for {num_boxes} boxes — the line is truncated or corrupt"
        )
    return n_bytes // (4 * num_boxes)


def _parse(fields: list[str], path: Path, line: int, decode: bool, dim: int | None) -> ButdRow:
    if len(fields) != len(FIELDS):
        hint = ("the line is truncated (an interrupted copy?)" if len(fields) < len(FIELDS)
                else "expected exactly image_id, image_w, image_h, num_boxes, boxes, features")
        raise DataError(f"{_where(path, line)}: {len(fields)} tab-separated fields, expected "
                        f"{len(FIELDS)} — {hint}")
    image_id, width, height, n = (_int_field(v, k, path, line) for k, v in zip(FIELDS[:4], fields))
    if n <= 0:
        raise DataError(f"{_where(path, line)}: num_boxes is {n} — every image needs at least one region")
    boxes = feats = None
    if decode:
        dim = dim or feature_dim(fields[5], n, path, line)
        boxes = decode_array(fields[4], n * 4, "boxes", path, line).reshape(n, 4)  # [R,4]
        feats = decode_array(fields[5], n * dim, "features", path, line).reshape(n, dim)  # [R,F]
    return ButdRow(path, line, image_id, width, height, n, boxes, feats)


def iter_tsv(paths: Sequence[str | Path], *, decode: bool = True,
             dim: int | None = None) -> Iterator[ButdRow]:
    """Yield the rows of several BUTD TSV files in order, one at a time.

    ``decode=False`` skips the base64 arrays (a fast scan for ids and box counts).
    ``dim`` fixes F; otherwise each row's F is inferred from its own field length.
    Raises ``DataError`` naming the file and line for any malformed line.
    """
    for path in map(Path, paths):
        if not path.is_file():
            raise DataError(f"TSV file {path} not found — check the --tsv paths")
        with open(path, newline="", encoding="ascii", errors="replace") as fh:
            reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
            for fields in reader:
                if not fields or fields == [""]:
                    continue
                if fields[0] == "image_id":  # a header line written by csv.DictWriter.writeheader
                    continue
                yield _parse(fields, path, reader.line_num, decode, dim)
