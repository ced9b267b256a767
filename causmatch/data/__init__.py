"""Data: tokenizer and vocabulary, dataset folders, training batches, and the generated "scenes" demo."""
from causmatch.data.folder import (SplitData, available_splits, load_split, read_meta, write_meta,
                                   write_split)
from causmatch.data.loader import CaptionPairs, collate_pairs
from causmatch.data.vocab import Vocabulary, tokenize

__all__ = [
    "tokenize", "Vocabulary", "SplitData", "load_split", "write_split", "read_meta", "write_meta",
    "available_splits", "CaptionPairs", "collate_pairs",
]
from causmatch.data.scenes import default_scenes_dir, ensure_scenes  # noqa: E402

__all__ += ["default_scenes_dir", "ensure_scenes"]
