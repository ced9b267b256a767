"""Karpathy split files (``dataset_flickr30k.json``, ``dataset_coco.json``).

Each entry of ``images`` has ``split`` (train / restval / val / test), ``filename``
(plus ``filepath`` such as ``val2014`` for COCO), ``sentences[*].raw`` and, for COCO,
``cocoid``. BUTD TSV rows are keyed by the COCO id, or for Flickr30K by the number in
the file name, so that is the image id we map on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from causmatch.errors import DataError

# Karpathy's names -> our split names. restval is the extra COCO training data SCAN uses.
SPLIT_MAP = {"train": "train", "restval": "train", "val": "dev", "test": "test"}


@dataclass(frozen=True)
class KarpathyImage:
    image_id: int
    relpath: str                 # path of the image file under the images root
    captions: tuple[str, ...]    # the first ``caps_per_image`` raw sentences, whitespace-normalised


@dataclass(frozen=True)
class KarpathySplits:
    dataset: str                                  # "flickr30k", "coco", ...
    splits: dict[str, list[KarpathyImage]]        # our split name -> images in file order

    def index(self) -> dict[int, tuple[str, int]]:
        """image id -> (split, row in that split)."""
        return {img.image_id: (name, row)
                for name, images in self.splits.items() for row, img in enumerate(images)}


def _image_id(entry: dict, path: Path) -> int:
    if "cocoid" in entry:
        return int(entry["cocoid"])
    stem = Path(str(entry.get("filename", ""))).stem
    if stem.isdigit():
        return int(stem)
    raise DataError(f"{path.name}: image '{entry.get('filename')}' has no cocoid and no numeric file "
                    "name, so it cannot be matched to a BUTD image_id — is this a Karpathy split file?")


def _captions(entry: dict, k: int, path: Path) -> tuple[str, ...]:
    raws = [" ".join(str(s.get("raw", "")).split()) for s in entry.get("sentences", [])]
    raws = [r for r in raws if r]
    if len(raws) < k:
        raise DataError(f"{path.name}: image '{entry.get('filename')}' has {len(raws)} captions, "
                        f"fewer than {k} — pass --caps-per-image {max(len(raws), 1)} or fix the file")
    return tuple(raws[:k])


def load_karpathy(path: str | Path, caps_per_image: int = 5) -> KarpathySplits:
    """Read a Karpathy split file into our splits (train/restval -> train, val -> dev, test -> test)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["images"]
    except FileNotFoundError:
        raise DataError(f"Karpathy split file {path} not found — check --karpathy") from None
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise DataError(f"{path} is not a Karpathy split file (JSON with an 'images' list) — "
                        "use dataset_flickr30k.json or dataset_coco.json") from None
    splits: dict[str, list[KarpathyImage]] = {}
    for entry in entries:
        name = SPLIT_MAP.get(entry.get("split"))
        if name is None:
            raise DataError(f"{path.name}: image '{entry.get('filename')}' has split "
                            f"'{entry.get('split')}'; expected one of {', '.join(SPLIT_MAP)}")
        rel = "/".join(p for p in (entry.get("filepath"), entry.get("filename")) if p)
        splits.setdefault(name, []).append(
            KarpathyImage(_image_id(entry, path), rel, _captions(entry, caps_per_image, path)))
    return KarpathySplits(str(data.get("dataset", path.stem)), splits)
