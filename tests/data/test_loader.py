import pickle

import numpy as np
import torch
from torch.utils.data import DataLoader

from causmatch.data import CaptionPairs, collate_pairs, load_split, write_split


def _folder(tmp_path, dtype=np.float16):
    feats = np.arange(3 * 4 * 2, dtype=np.float32).reshape(3, 4, 2).astype(dtype)  # [I=3, R=4, F=2]
    caps = [f"caption {c}" for c in range(6)]
    write_split(tmp_path, "train", features=feats, captions=caps, caps_per_image=2,
                regions=np.array([4, 2, 3], dtype=np.int32))
    return feats


def test_items_read_one_row_as_float32(tmp_path):
    feats = _folder(tmp_path)
    ds = CaptionPairs(load_split(tmp_path, "train"))
    assert len(ds) == 6
    f, mask, cap, i, c = ds[3]
    assert f.dtype == torch.float32 and f.shape == (4, 2)
    assert torch.equal(f, torch.from_numpy(feats[1].astype(np.float32)))
    assert mask.tolist() == [True, True, False, False]
    assert (cap, i, c) == ("caption 3", 1, 3)


def test_collate_and_dataloader(tmp_path):
    _folder(tmp_path)
    ds = CaptionPairs(load_split(tmp_path, "train"))
    batch = next(iter(DataLoader(ds, batch_size=4, shuffle=False, collate_fn=collate_pairs)))
    assert batch["features"].shape == (4, 4, 2) and batch["region_mask"].shape == (4, 4)
    assert batch["captions"] == [f"caption {c}" for c in range(4)]
    assert batch["image_index"].tolist() == [0, 0, 1, 1] and batch["image_index"].dtype == torch.long
    assert batch["caption_index"].tolist() == [0, 1, 2, 3]


def test_pickled_dataset_reopens_the_memmap(tmp_path):
    _folder(tmp_path)
    ds = CaptionPairs(load_split(tmp_path, "train"))
    blob = pickle.dumps(ds)
    assert len(blob) < 4000  # the features are not copied into the pickle
    clone = pickle.loads(blob)
    assert isinstance(clone.split.features, np.memmap)
    assert all(torch.equal(a, b) for a, b in zip(clone[5][:2], ds[5][:2]))


def test_a_worker_refuses_features_replaced_with_another_shape(tmp_path):
    import pytest

    from causmatch.errors import DataError

    _folder(tmp_path)
    blob = pickle.dumps(CaptionPairs(load_split(tmp_path, "train")))
    np.save(tmp_path / "train_ims.npy", np.zeros((3, 5, 2), np.float32))  # rewritten under a running job
    with pytest.raises(DataError, match="changed while training"):
        pickle.loads(blob)
