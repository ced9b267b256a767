"""Data: tokenizer and vocabulary, dataset folders, training batches, and the generated "scenes" demo.

``CaptionPairs``/``collate_pairs`` (they need torch) are imported on first use, so that the scenes
generator's worker processes start without importing torch.
"""
from causmatch.data.folder import SplitData, available_splits, load_split, read_meta, write_meta, write_split
from causmatch.data.scenes import default_scenes_dir, ensure_scenes
from causmatch.data.vocab import Vocabulary, tokenize

__all__ = [
    "tokenize", "Vocabulary", "SplitData", "load_split", "write_split", "read_meta", "write_meta",
    "available_splits", "CaptionPairs", "collate_pairs", "default_scenes_dir", "ensure_scenes",
]


def __getattr__(name: str):
    if name in ("CaptionPairs", "collate_pairs"):
        from causmatch.data import loader
        return getattr(loader, name)
    raise AttributeError(f"module 'causmatch.data' has no attribute {name!r}")
