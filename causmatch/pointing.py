"""The word → region map of a pair and the pointing game on it (numpy or torch, no model).

Public API::

    word_region_map(t2i [..., W, R] | None, i2t [..., R, W] | None) -> [..., W, R]
    pointed_regions(maps [..., W, R], region_mask [..., R]) -> [..., W] int64

A t2i model gives each word's attention over the regions directly; an i2t-only model gives the region →
word map, used transposed (how much each region attends to the word). The *pointing game*: a word points
at its most-attended *valid* region (padding never wins; the lower index on a tie); it hits when that region
is one of the word's true regions. Evaluation's grounding accuracy and the analysis grounding table both use
these two functions.
"""
from __future__ import annotations

import numpy as np


def word_region_map(t2i, i2t):
    """Word → region attention ``[..., W, R]``: ``t2i``, else ``i2t`` with its last two axes swapped (a view)."""
    if t2i is not None:
        return t2i
    if i2t is None:
        return None
    return i2t.swapaxes(-1, -2)


def pointed_regions(maps, region_mask) -> np.ndarray:
    """The most-attended valid region of each word: maps ``[..., W, R]``, region_mask ``[..., R]`` ->
    ``[..., W]`` int64. A word whose map holds no finite value over valid regions points at none (-1).
    Callers refuse NaN maps first (a NaN would win, as in ``np.argmax``)."""
    maps, mask = np.asarray(maps, dtype=np.float64), np.asarray(region_mask, dtype=bool)
    valid = np.where(mask[..., None, :], maps, -np.inf)                      # [..., W, R]
    best = np.argmax(valid, axis=-1)                                        # [..., W]
    return np.where(np.isfinite(valid).any(axis=-1), best, -1)
