"""Training batches: a torch ``Dataset`` over the captions of a split.

Each item reads only its image's row from the feature memmap, so a 30 GB feature file
costs no memory up front. The memmap is reopened (not pickled) in DataLoader workers.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from causmatch.data.folder import SplitData, check_row, open_features


class CaptionPairs(Dataset):
    """Item ``c`` -> ``(features [R,F] float32, region_mask [R] bool, caption, image index, caption index)``."""

    def __init__(self, split: SplitData):
        self.split = split
        self._features_path = split.folder / f"{split.split}_ims.npy"
        self._features: np.ndarray | None = split.features  # [I, R, F] memmap

    def __len__(self) -> int:
        return self.split.n_captions

    def __getstate__(self) -> dict:
        # Pickling a memmap copies the whole array; workers reopen the file instead.
        state = self.__dict__.copy()
        state["_features"] = None
        state["split"] = None
        return state | {"_split_fields": {k: v for k, v in vars(self.split).items() if k != "features"}}

    def __setstate__(self, state: dict) -> None:
        fields = state.pop("_split_fields")
        self.__dict__.update(state)
        self._features = open_features(self._features_path)
        n_img, n_reg = len(fields["region_mask"]), np.shape(fields["region_mask"])[1]
        if self._features.shape[:2] != (n_img, n_reg):
            from causmatch.errors import DataError
            raise DataError(f"{self._features_path} changed while training (now {tuple(self._features.shape)}, "
                            f"was [{n_img}, {n_reg}, ...]) — do not rewrite a dataset in use; restart")
        self.split = SplitData(features=self._features, **fields)

    def __getitem__(self, c: int):
        c = int(c)
        if not 0 <= c < len(self):
            raise IndexError(f"caption index {c} out of range 0..{len(self) - 1}")
        i = self.split.image_of(c)
        row = np.array(self._features[i], dtype=np.float32)  # [R, F], one row read
        check_row(self._features_path, i, row)
        feats = torch.from_numpy(row)
        mask = torch.from_numpy(np.array(self.split.region_mask[i], dtype=bool))  # [R]
        return feats, mask, self.split.captions[c], i, c


def collate_pairs(items: list[tuple]) -> dict:
    """Stack items into ``features [B,R,F]``, ``region_mask [B,R]``, ``captions``, ``image_index [B]``,
    ``caption_index [B]`` (long)."""
    feats, masks, caps, imgs, cidx = zip(*items)
    return {
        "features": torch.stack(feats),          # [B, R, F]
        "region_mask": torch.stack(masks),       # [B, R]
        "captions": list(caps),
        "image_index": torch.tensor(imgs, dtype=torch.long),    # [B]
        "caption_index": torch.tensor(cidx, dtype=torch.long),  # [B]
    }
