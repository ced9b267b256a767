"""Reference for the similarity benchmark: the SCAN evaluation procedure, written from its description.

SCAN (Lee et al., ECCV 2018) scores a test set in shards of 128 images × 128 captions; inside a shard it
takes one caption at a time, repeats it for every image of the shard, runs the attention, builds the
attended context vectors ``[n_images, W, D]`` explicitly and takes the cosine between each word and its
context, then pools the words with LogSumExp. This file follows that procedure (t2i, the options given)
as the baseline the Gram form is compared against; it is not part of the library.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

EPS = 1e-8


def _l2norm_cols(x: torch.Tensor, dim: int) -> torch.Tensor:
    return x / (x.pow(2).sum(dim, keepdim=True).sqrt() + EPS)


def attend(words: torch.Tensor, regions: torch.Tensor, norm: str, lambda_softmax: float):
    """One caption against a shard of images. words ``[n, W, D]`` (repeated caption), regions ``[n, R, D]``.

    Returns the context vectors ``[n, W, D]`` (built explicitly) and the attention ``[n, W, R]``.
    """
    attn = torch.bmm(regions, words.transpose(1, 2))  # [n, R, W]
    if norm == "clipped_l2norm":
        attn = _l2norm_cols(F.leaky_relu(attn, 0.1), 2)
    elif norm == "l2norm":
        attn = _l2norm_cols(attn, 2)
    elif norm == "softmax":
        attn = torch.softmax(attn, dim=2)
    attn = torch.softmax(lambda_softmax * attn.transpose(1, 2), dim=2)  # [n, W, R]
    context = torch.bmm(attn, regions)  # [n, W, D]
    return context, attn


def shard_t2i(regions: torch.Tensor, words: torch.Tensor, lengths: list[int], *, norm="clipped_l2norm",
              lambda_softmax=9.0, agg="lse", lambda_lse=6.0) -> torch.Tensor:
    """Scores ``[n_images, n_captions]`` of one shard, one caption at a time (SCAN's ``xattn_score_t2i``)."""
    n_img = regions.shape[0]
    cols = []
    for c, n_word in enumerate(lengths):
        cap = words[c, :n_word].unsqueeze(0).expand(n_img, n_word, words.shape[-1])  # [n, W, D]
        context, _ = attend(cap, regions, norm, lambda_softmax)
        row = F.cosine_similarity(cap, context, dim=2, eps=EPS)  # [n, W]
        if agg == "lse":
            cols.append(torch.log(torch.exp(lambda_lse * row).sum(1)) / lambda_lse)
        else:
            cols.append(row.mean(1))
    return torch.stack(cols, 1)  # [n_images, n_captions]


@torch.no_grad()
def scan_similarity(regions: torch.Tensor, words: torch.Tensor, lengths: list[int], *, shard: int = 128,
                    max_shards: int | None = None, **opts) -> tuple[np.ndarray, int]:
    """The ``[I, C]`` matrix in ``shard × shard`` blocks; ``max_shards`` stops early (for timing a subset).

    Returns the matrix (blocks not computed stay NaN) and the number of blocks computed.
    """
    I, C = regions.shape[0], words.shape[0]
    out = np.full((I, C), np.nan, dtype=np.float32)
    done = 0
    for i0 in range(0, I, shard):
        for c0 in range(0, C, shard):
            if max_shards is not None and done >= max_shards:
                return out, done
            block = shard_t2i(regions[i0:i0 + shard], words[c0:c0 + shard], lengths[c0:c0 + shard], **opts)
            out[i0:i0 + shard, c0:c0 + shard] = block.float().cpu().numpy()
            done += 1
    return out, done
