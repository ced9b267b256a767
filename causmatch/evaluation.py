"""Retrieval evaluation: similarity matrix, SCAN-protocol recall, grounding accuracy.

Protocol (SCAN / VSE++): caption ``c`` belongs to image ``c // K``.
*image → text*: an image's rank is the best (lowest) rank among its ``K`` captions in
the list of all captions sorted by score; *text → image*: a caption's rank is the rank of
its image among all images. Ranks are 0-based internally; ``medr``/``meanr`` are reported
1-based like SCAN. Ties are broken deterministically: the lower index comes first (the
order a stable descending sort gives, :mod:`causmatch.ranks`), so results never depend on the hardware.
*Fit-aware* recall (scenes splits, :func:`fit_aware_metrics`): a query's rank is the best rank of any item
it fits (a caption true of the image, :mod:`causmatch.data.scenes.fit`), under the same tie rule.

Non-finite scores are refused, never ranked: a similarity matrix holding NaN/inf (a broken checkpoint,
overflowing weights) raises a one-line :class:`DataError` naming the first (image, caption) pair and the
count, in :func:`similarity_matrix`, in every function that ranks (:func:`recall_metrics`,
:func:`ranks_i2t`, :func:`ranks_t2i`, :func:`fold_metrics`) and in :func:`effect_summary` — so no
R@K is ever computed from them. :func:`evaluate` refuses, before any work, an empty split, shard sizes
outside ``1..MAX_SHARD``, an intervention whose targets exceed the split's longest caption or largest
image, and a run whose estimated memory exceeds what the machine has available.
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections import defaultdict

import numpy as np
import torch

from causmatch.data import SplitData
from causmatch.errors import ConfigError, DataError
from causmatch.models.matcher import ImageEmb, Matcher, TextEmb, sharded_similarity
from causmatch.pointing import pointed_regions, word_region_map
from causmatch.ranks import stable_ranks

RECALL_KEYS = ("i2t_r1", "i2t_r5", "i2t_r10", "t2i_r1", "t2i_r5", "t2i_r10", "rsum",
               "i2t_medr", "i2t_meanr", "t2i_medr", "t2i_meanr")
_ROW_CHUNK = 256  # rows compared at once: bounds the [chunk, K, C] boolean temporaries
MAX_SHARD = 4096  # images or captions per similarity shard (a shard's maps are shard² · W · R floats)


def check_finite_scores(sims, what: str = "similarity matrix", *, image_ids=None, caption_ids=None) -> np.ndarray:
    """``sims [I, C]`` (or ``[M]``) unchanged if every score is finite; else a one-line DataError naming
    the first non-finite (image, caption) pair (``image_ids``/``caption_ids`` map rows/columns to the
    split's indices; default: positions) and how many scores are non-finite."""
    arr = np.asarray(sims)
    if arr.dtype.kind not in "fc" or np.isfinite(arr).all():
        return sims
    bad = ~np.isfinite(arr)
    pos = np.argwhere(bad)[0]
    first = arr[tuple(pos)]
    i = _id(image_ids, pos[-2] if arr.ndim >= 2 else pos[0])
    c = _id(caption_ids, pos[-1])
    raise DataError(f"the {what} has {int(bad.sum())} non-finite score(s) of {arr.size} (first: {first} for "
                    f"image {i}, caption {c}) — the model produces NaN/inf, so no rank or recall is reported; "
                    "check the checkpoint (retrain or reconvert it)")


def _id(ids, k) -> int:
    """The split index at position ``k`` of ``ids`` (positions when None; a single id is broadcast)."""
    if ids is None:
        return int(k)
    a = np.asarray(ids).reshape(-1)
    return int(a[k] if a.size > 1 else a[0])


def _check_sims(sims: np.ndarray, caps_per_image: int) -> np.ndarray:
    sims = np.asarray(sims)
    if sims.ndim != 2 or caps_per_image < 1 or sims.shape[1] != sims.shape[0] * caps_per_image:
        raise DataError(f"similarity matrix of shape {sims.shape} does not fit {caps_per_image} "
                        "captions per image — it must be [I, K*I]")
    if sims.shape[0] == 0:
        raise DataError("the similarity matrix is empty (no images) — evaluate a split with at least one image")
    return check_finite_scores(sims)


def ranks_i2t(sims: np.ndarray, caps_per_image: int) -> np.ndarray:
    """Image → text ranks. sims [I, C] -> [I] int64, best rank among the image's captions."""
    sims = _check_sims(sims, caps_per_image)
    n_img, k = sims.shape[0], caps_per_image
    out = np.empty(n_img, dtype=np.int64)
    for lo in range(0, n_img, _ROW_CHUNK):
        hi = min(lo + _ROW_CHUNK, n_img)
        gt = np.arange(lo, hi)[:, None] * k + np.arange(k)[None, :]          # [i, K] caption ids
        out[lo:hi] = stable_ranks(sims[lo:hi], gt).min(axis=1)
    return out


def ranks_t2i(sims: np.ndarray, caps_per_image: int) -> np.ndarray:
    """Text → image ranks. sims [I, C] -> [C] int64, rank of the caption's own image."""
    sims = _check_sims(sims, caps_per_image)
    n_cap = sims.shape[1]
    out = np.empty(n_cap, dtype=np.int64)
    for lo in range(0, n_cap, _ROW_CHUNK):
        hi = min(lo + _ROW_CHUNK, n_cap)
        chunk = np.ascontiguousarray(sims[:, lo:hi].T)                       # [c, I]
        gt = (np.arange(lo, hi) // caps_per_image)[:, None]                  # [c, 1]
        out[lo:hi] = stable_ranks(chunk, gt)[:, 0]
    return out


def _summary(ranks: np.ndarray, prefix: str) -> dict:
    return {f"{prefix}_r1": 100.0 * float(np.mean(ranks < 1)),
            f"{prefix}_r5": 100.0 * float(np.mean(ranks < 5)),
            f"{prefix}_r10": 100.0 * float(np.mean(ranks < 10)),
            f"{prefix}_medr": float(np.floor(np.median(ranks)) + 1),
            f"{prefix}_meanr": float(ranks.mean() + 1)}


def recall_metrics(sims: np.ndarray, caps_per_image: int) -> dict:
    """R@1/5/10 both ways (percent), rSum, medr and meanr (1-based) from sims [I, K*I]."""
    out = {**_summary(ranks_i2t(sims, caps_per_image), "i2t"),
           **_summary(ranks_t2i(sims, caps_per_image), "t2i")}
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10))
    return {key: out[key] for key in RECALL_KEYS}


def _fold_size(n_img: int, folds: int) -> int:
    if n_img % folds:
        raise ConfigError(f"--fold5 needs a number of images divisible by {folds}, got {n_img}; "
                          "evaluate without --fold5 or use a split like COCO's testall (5,000 images)")
    return n_img // folds


def fold_metrics(sims: np.ndarray, caps_per_image: int, folds: int = 5) -> dict:
    """COCO-style fold evaluation: ``folds`` blocks of images with their captions, averaged.

    Returns ``{"folds": [metrics per fold], "mean": averaged metrics, "full": all images}``.
    """
    sims = _check_sims(sims, caps_per_image)
    size = _fold_size(sims.shape[0], folds)
    per_fold = []
    for f in range(folds):
        block = sims[f * size:(f + 1) * size, f * size * caps_per_image:(f + 1) * size * caps_per_image]
        per_fold.append(recall_metrics(block, caps_per_image))
    mean = {key: float(np.mean([m[key] for m in per_fold])) for key in RECALL_KEYS}
    return {"fold_size": size, "folds": per_fold, "mean": mean, "full": recall_metrics(sims, caps_per_image)}


# ---------------------------------------------------------------------------- fit-aware recall
# ``fits [I, C]`` bool (causmatch.data.scenes.fit): caption c is true of image i. A query is correct at K
# when any item it fits ranks in the top K — the best-ranked fitting item's rank, under the same tie rule.

def _check_fits(sims: np.ndarray, fits, caps_per_image: int) -> tuple[np.ndarray, np.ndarray]:
    sims = _check_sims(sims, caps_per_image)
    fits = np.asarray(fits)
    if fits.shape != sims.shape or fits.dtype != bool:
        raise DataError(f"fit matrix of shape {fits.shape} ({fits.dtype}) does not match the similarity matrix "
                        f"{sims.shape} — both must be [images, captions] of the same split (a bool fit matrix)")
    n_cap = sims.shape[1]
    own = fits[np.arange(n_cap) // caps_per_image, np.arange(n_cap)]
    if not own.all():
        c = int(np.argmin(own))
        raise DataError(f"the fit matrix says caption {c} is not true of its own image {c // caps_per_image} — "
                        "it belongs to another split or order of images; recompute it for this split")
    return sims, fits


def _best_fitting_rank(scores: np.ndarray, fit: np.ndarray) -> np.ndarray:
    """Rank of the best-ranked fitting item per row: scores/fit [N, M] -> [N]."""
    best = np.where(fit, scores, -np.inf).argmax(axis=1)  # first max: the lowest index, as the tie rule
    return stable_ranks(scores, best[:, None])[:, 0]


def _fit_ranks(sims: np.ndarray, fits, caps_per_image: int, queries_are_captions: bool) -> np.ndarray:
    """Fit-aware ranks of every query (captions: columns of [I, C]; images: rows), in chunks of rows."""
    sims, fits = _check_fits(sims, fits, caps_per_image)
    if queries_are_captions:
        sims, fits = sims.T, fits.T  # [C, I]: one caption query per row
    n = sims.shape[0]
    out = np.empty(n, dtype=np.int64)
    for lo in range(0, n, _ROW_CHUNK):
        hi = min(lo + _ROW_CHUNK, n)
        out[lo:hi] = _best_fitting_rank(np.ascontiguousarray(sims[lo:hi]), fits[lo:hi])
    return out


def ranks_fit_t2i(sims: np.ndarray, fits, caps_per_image: int) -> np.ndarray:
    """Text → image fit-aware ranks [C]: the rank of the best-ranked image the caption fits."""
    return _fit_ranks(sims, fits, caps_per_image, queries_are_captions=True)


def ranks_fit_i2t(sims: np.ndarray, fits, caps_per_image: int) -> np.ndarray:
    """Image → text fit-aware ranks [I]: the rank of the best-ranked caption that fits the image."""
    return _fit_ranks(sims, fits, caps_per_image, queries_are_captions=False)


def fit_aware_metrics(sims: np.ndarray, fits, caps_per_image: int) -> dict:
    """:func:`recall_metrics`' keys, counting a query correct when any item it fits ranks there."""
    out = {**_summary(ranks_fit_i2t(sims, fits, caps_per_image), "i2t"),
           **_summary(ranks_fit_t2i(sims, fits, caps_per_image), "t2i")}
    out["rsum"] = sum(out[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10))
    return {key: out[key] for key in RECALL_KEYS}


def fit_aware_fold_metrics(sims: np.ndarray, fits, caps_per_image: int, folds: int = 5) -> dict:
    """:func:`fold_metrics` for fit-aware recall: within a fold only its images and captions compete."""
    sims, fits = _check_fits(sims, fits, caps_per_image)
    size = _fold_size(sims.shape[0], folds)
    k = caps_per_image
    per_fold = [fit_aware_metrics(sims[f * size:(f + 1) * size, f * size * k:(f + 1) * size * k],
                                  fits[f * size:(f + 1) * size, f * size * k:(f + 1) * size * k], k)
                for f in range(folds)]
    mean = {key: float(np.mean([m[key] for m in per_fold])) for key in RECALL_KEYS}
    return {"fold_size": size, "folds": per_fold, "mean": mean}


# ---------------------------------------------------------------------------- encoding and scoring

def subset_split(split: SplitData, n_images: int | None) -> SplitData:
    """The first ``n_images`` images of ``split`` and their captions (``split`` itself when None/too big)."""
    if n_images is None or n_images >= split.n_images:
        return split
    k, n = split.caps_per_image, int(n_images)
    cut = lambda seq: None if seq is None else seq[:n]  # noqa: E731
    return dataclasses.replace(
        split, features=split.features[:n], captions=split.captions[:n * k], region_mask=split.region_mask[:n],
        boxes=cut(split.boxes), image_paths=cut(split.image_paths), ids=cut(split.ids),
        grounding=None if split.grounding is None else split.grounding[:n * k])


def _pad_cat(tensors: list[torch.Tensor], dims: tuple[int, ...]) -> torch.Tensor:
    """Concatenate on axis 0 after zero-padding the axes ``dims`` to their maximum size."""
    target = [max(t.shape[d] for t in tensors) for d in dims]
    padded = []
    for t in tensors:
        pad = [0] * (2 * t.dim())
        for d, size in zip(dims, target):
            pad[2 * (t.dim() - 1 - d) + 1] = size - t.shape[d]  # F.pad lists the last axis first
        padded.append(torch.nn.functional.pad(t, pad))
    return torch.cat(padded)


def cat_text(parts: list[TextEmb]) -> TextEmb:
    """Join caption batches of different lengths W (padding words/mask/gram with zeros/False)."""
    return TextEmb(words=_pad_cat([p.words for p in parts], (1,)),           # [C, W, D]
                   mask=_pad_cat([p.mask for p in parts], (1,)),             # [C, W]
                   gram=_pad_cat([p.gram for p in parts], (1, 2)),           # [C, W, W]
                   tokens=[t for p in parts for t in p.tokens])


def cat_images(parts: list[ImageEmb]) -> ImageEmb:
    return ImageEmb(regions=torch.cat([p.regions for p in parts]),           # [I, R, D]
                    mask=torch.cat([p.mask for p in parts]),                 # [I, R]
                    gram=torch.cat([p.gram for p in parts]))                 # [I, R, R]


@torch.no_grad()
@contextlib.contextmanager
def eval_mode(model: torch.nn.Module):
    """``model.eval()`` for the block, then the mode it had (training or not), even when the block raises."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def encode_split(matcher: Matcher, split: SplitData, batch_size: int = 128) -> tuple[ImageEmb, TextEmb]:
    """Encode every image ([I, R, D]) and caption ([C, W, D]) of ``split``, in eval mode, on CPU.

    Features are read from the memmap one batch at a time; the embeddings are kept (they are
    ``D/F`` of the raw feature size).
    """
    with eval_mode(matcher):
        images, texts = [], []
        for lo in range(0, split.n_images, batch_size):
            # np.array copies: the memmap is read-only and torch wants writable memory
            feats = torch.from_numpy(np.array(split.features[lo:lo + batch_size], dtype=np.float32))  # [b, R, F]
            mask = torch.from_numpy(np.array(split.region_mask[lo:lo + batch_size], dtype=bool))     # [b, R]
            images.append(matcher.encode_images(feats.to(matcher.device), mask.to(matcher.device)).to("cpu"))
        for lo in range(0, split.n_captions, batch_size):
            texts.append(matcher.encode_captions(split.captions[lo:lo + batch_size]).to("cpu"))
    return cat_images(images), cat_text(texts)


def _rank_rows(n_images: int, shard_images: int, world: int, rank: int) -> tuple[int, int]:
    """Rows of the image shards this rank scores: a contiguous run of whole shards."""
    n_shards = -(-n_images // shard_images)
    lo_shard = rank * n_shards // world
    hi_shard = (rank + 1) * n_shards // world
    return min(lo_shard * shard_images, n_images), min(hi_shard * shard_images, n_images)


def _distributed() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def similarity_matrix(matcher: Matcher, img: ImageEmb, txt: TextEmb, intervention=None, *,
                      shard_images: int = 128, shard_captions: int = 128, progress: bool = False,
                      impl: str | None = None) -> np.ndarray:
    """Scores of all image × caption pairs, ``[I, C]`` float32, computed shard by shard.

    ``impl``: the implementation (:mod:`causmatch.models.impl`; None: its default rule).

    Memory is bounded by one ``shard_images × shard_captions`` block of attention maps. When
    ``torch.distributed`` is initialised, every rank scores a contiguous run of image shards and
    the rows are all-gathered, so each rank returns the full matrix. Stochastic interventions are
    keyed by global image/caption indices: the result does not depend on shards or ranks.
    """
    check_shards(shard_images, shard_captions)
    rank, world = _distributed()
    with eval_mode(matcher):
        lo, hi = _rank_rows(len(img), max(1, shard_images), world, rank)
        part = sharded_similarity(matcher, img[slice(lo, hi)], txt, intervention, shard_images=shard_images,
                                  shard_captions=shard_captions, progress=progress and rank == 0, impl=impl,
                                  image_ids=torch.arange(lo, hi), caption_ids=torch.arange(len(txt)))  # [i, C]
    check_finite_scores(part, "similarity matrix", image_ids=np.arange(lo, hi))
    if world == 1:
        return part
    return _all_gather_rows(part, len(img), shard_images, world)


def _all_gather_rows(part: np.ndarray, n_images: int, shard_images: int, world: int) -> np.ndarray:
    """Gather each rank's rows (padded to equal size, as all_gather needs) into ``[I, C]``."""
    dist = torch.distributed
    spans = [_rank_rows(n_images, max(1, shard_images), world, r) for r in range(world)]
    longest = max(b - a for a, b in spans)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    mine = torch.zeros(longest, part.shape[1], dtype=torch.float32, device=device)   # [rows, C]
    mine[:part.shape[0]] = torch.from_numpy(part).to(device)
    gathered = [torch.empty_like(mine) for _ in range(world)]
    dist.all_gather(gathered, mine)
    return np.concatenate([g[:b - a].cpu().numpy() for g, (a, b) in zip(gathered, spans)])


# ---------------------------------------------------------------------------- grounding and effects

def _word_region_maps(matcher: Matcher, img: ImageEmb, txt: TextEmb) -> torch.Tensor:
    """Word → region attention of aligned pairs ``[N, W, R]``: the t2i map, or for i2t-only models
    the region → word map transposed (which region attends most to the word)."""
    scores = matcher.pair_scores(img, txt, return_maps=True)
    return word_region_map(scores.t2i, scores.i2t)


@torch.no_grad()
def _aligned_maps(matcher: Matcher, split: SplitData, img: ImageEmb | None, txt: TextEmb | None,
                  batch_size: int, what: str):
    """The factual word → region maps of the split's matching pairs, a batch of captions at a time:
    yields ``(caps, images, maps [n, W, R] float32 numpy, region_mask [n, R] bool numpy)``. NaN/inf in a
    map is refused (one line naming the pair), as nothing ``what`` reports may come from it."""
    with eval_mode(matcher):
        for lo in range(0, split.n_captions, batch_size):
            caps = list(range(lo, min(lo + batch_size, split.n_captions)))
            images = [split.image_of(c) for c in caps]
            maps = _word_region_maps(matcher, img[images].to(matcher.device), txt[caps].to(matcher.device))
            finite = torch.isfinite(maps).flatten(1).all(1).cpu()                        # [n]
            if not bool(finite.all()):
                n = int(torch.argmin(finite.int()))
                raise DataError(f"the attention map of image {images[n]}, caption {caps[n]} holds NaN or infinite "
                                f"values — no {what} is reported; check the checkpoint")
            yield caps, images, maps.float().cpu().numpy(), img.mask[images].cpu().numpy()


def _matched_words(split: SplitData, txt: TextEmb, c: int) -> tuple[list[tuple[int, dict]], int]:
    """Caption ``c``'s grounded words as ``(token position in the matcher's tokens, word entry)``, matched by
    position (``<start>`` shifts them by one), and how many were skipped (the matcher's token differs)."""
    tokens = txt.tokens[c]
    offset = 1 if tokens and tokens[0] == "<start>" else 0
    words, skipped = [], 0
    for w in split.grounding[c]["words"]:
        j = w["index"] + offset
        if j >= len(tokens) or tokens[j] != w["word"]:
            skipped += 1
        else:
            words.append((j, w))
    return words, skipped


@torch.no_grad()
def grounding_accuracy(matcher: Matcher, split: SplitData, img: ImageEmb | None = None,
                       txt: TextEmb | None = None, *, batch_size: int = 256) -> dict | None:
    """Share of grounded words whose most-attended valid region (TRUE pair's map; the pointing game of
    :mod:`causmatch.pointing`) is one of their regions.

    Returns ``{"overall", "by_type": {type: pct}, "n_words", "counts": {type: n}, "chance", "skipped"}``
    (percentages), or None when the split has no grounding file. ``chance`` is the expected accuracy
    of a region picked uniformly among the image's valid regions. Tokens are matched by position
    (``<start>`` shifts them by one); a word whose token differs from the matcher's is ``skipped``.
    """
    if split.grounding is None:
        return None
    if img is None or txt is None:
        img, txt = encode_split(matcher, split)
    hits, counts, chance = defaultdict(int), defaultdict(int), []
    skipped = 0
    for caps, images, maps, mask in _aligned_maps(matcher, split, img, txt, batch_size, "grounding accuracy"):
        best = pointed_regions(maps, mask)  # [n, W]
        for n, c in enumerate(caps):
            valid = int(split.region_mask[images[n]].sum())
            words, missed = _matched_words(split, txt, c)
            skipped += missed
            for j, w in words:
                counts[w["type"]] += 1
                hits[w["type"]] += int(int(best[n, j]) in w["regions"])
                chance.append(len(set(w["regions"])) / max(valid, 1))
    total = sum(counts.values())
    pct = lambda a, b: 100.0 * a / b if b else float("nan")  # noqa: E731
    return {"overall": pct(sum(hits.values()), total),
            "by_type": {t: pct(hits[t], counts[t]) for t in sorted(counts)},
            "n_words": total, "counts": dict(sorted(counts.items())),
            "chance": 100.0 * float(np.mean(chance)) if chance else float("nan"), "skipped": skipped}


# The regions of the scenes' bias distractor (the unmentioned small white ring): detected regions whose box has
# IoU >= 0.5 with the distractor's visible box — the generator's detector-recall criterion. For the mentioned
# objects the same rule reproduces the grounding file's pixel-based regions (a test checks it on the sample).
DISTRACTOR_IOU = 0.5


def _scenes_file(split: SplitData):
    from pathlib import Path

    return Path(split.folder) / f"{split.split}_scenes.jsonl" if split.folder else None


def distractor_unavailable(split: SplitData) -> str | None:
    """None when :func:`distractor_attention` can be computed on ``split``; else why not, in one line."""
    scenes = _scenes_file(split)
    if scenes is None or not scenes.is_file():
        return (f"this split has no {split.split}_scenes.jsonl (scene descriptions), so where a bias distractor "
                "lies is unknown; only the generated scenes data records it")
    if split.grounding is None:
        return f"this split has no {split.split}_grounding.jsonl, so its grounded words are unknown"
    if split.boxes is None:
        return (f"this split has no {split.split}_boxes.npy (region boxes), so no region can be matched to the "
                "distractor")
    return None


def _box_iou(box, boxes: np.ndarray) -> np.ndarray:
    """IoU of one x1,y1,x2,y2 box with each of ``boxes [n, 4]`` (0 where the union is empty)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(box[2], b[:, 2]) - np.maximum(box[0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], b[:, 3]) - np.maximum(box[1], b[:, 1]), 0, None)
    inter = iw * ih
    union = (box[2] - box[0]) * (box[3] - box[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def distractor_regions(split: SplitData) -> np.ndarray:
    """``[I, R]`` bool: the regions of each image that show its bias distractor (:data:`DISTRACTOR_IOU`; region
    0, the whole image, never; padding never). An image without a (visible) distractor has none. DataError
    when the scene file does not describe this split's images."""
    import json

    why = distractor_unavailable(split)
    if why:
        raise DataError(f"no distractor regions: {why}")
    path = _scenes_file(split)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path} ({err}) — regenerate the split with `causmatch scenes`") from None
    if len(lines) < split.n_images:
        raise DataError(f"{path} describes {len(lines)} images but the split has {split.n_images} — the scene file "
                        "does not belong to this split; regenerate it with `causmatch scenes`")
    mask = np.asarray(split.region_mask, dtype=bool)
    out = np.zeros(mask.shape, dtype=bool)
    for i, line in enumerate(lines[:split.n_images]):
        try:
            entry = json.loads(line)
            assert entry["image"] == i
            boxes = [o["box"] for o in entry["objects"] if o["distractor"]]
            boxes = [np.asarray(b, dtype=np.float64) for b in boxes if b is not None]
            assert all(b.shape == (4,) and np.isfinite(b).all() for b in boxes)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise DataError(f"{path} line {i + 1} is not the scene of image {i} (objects with a distractor flag and a "
                            "box) — regenerate the split with `causmatch scenes`") from None
        for box in boxes:
            out[i] |= regions_of_box(box, split.boxes[i], mask[i])
    return out


def regions_of_box(box, boxes, region_mask) -> np.ndarray:
    """``[R]`` bool: the valid detected regions (``boxes [R, 4]``, ``region_mask [R]``; region 0, the whole
    image, never) whose box has IoU >= :data:`DISTRACTOR_IOU` with an object's visible ``box``."""
    hit = (_box_iou(np.asarray(box, dtype=np.float64), boxes) >= DISTRACTOR_IOU) & np.asarray(region_mask, bool)
    hit[0] = False
    return hit


def distractor_share(maps, region_mask, distractor, words) -> dict:
    """The share of attention mass on distractor regions, for hand-checkable inputs.

    ``maps [N, W, R]`` (non-negative word → region attention of N pairs), ``region_mask [N, R]`` (valid
    regions), ``distractor [N, R]`` (distractor regions of each pair's image), ``words``: per pair the word
    positions to count. Only pairs whose image has a valid distractor region count. Per word: mass on
    valid distractor regions / mass on valid regions; ``chance``: distractor regions / valid regions (a
    word attending uniformly). Returns percentages averaged over words: ``{"share", "chance", "n_words",
    "n_pairs"}`` (``n_pairs``: pairs with a counted word; NaN shares when no word counts). A negative or
    non-finite map value is refused (one line): a share of mass needs a non-negative map.
    """
    maps = np.asarray(maps, dtype=np.float64)
    valid = np.asarray(region_mask, dtype=bool)
    dis = np.asarray(distractor, dtype=bool)
    if maps.ndim != 3 or valid.shape != (maps.shape[0], maps.shape[2]) or dis.shape != valid.shape \
            or len(words) != maps.shape[0]:
        raise DataError(f"maps {maps.shape}, region mask {valid.shape}, distractor {dis.shape} and {len(words)} "
                        "word lists do not fit [N, W, R] / [N, R] / N")
    dis = dis & valid
    shares, chances, pairs = [], [], 0
    for n, positions in enumerate(words):
        if not dis[n].any() or not len(positions):
            continue
        rows = maps[n, list(positions)][:, valid[n]]                             # [w, valid R]
        if not np.isfinite(rows).all() or (rows < 0).any():
            raise DataError(f"the attention map of pair {n} holds negative or non-finite values — a share of "
                            "attention mass needs a non-negative map; check the checkpoint")
        mass = rows.sum(axis=1)                                                  # [w]
        keep = mass > 0
        on = maps[n, list(positions)][:, dis[n]].sum(axis=1)                     # [w]
        shares.extend((on[keep] / mass[keep]).tolist())
        chances.extend([dis[n].sum() / valid[n].sum()] * int(keep.sum()))
        pairs += int(keep.any())
    mean = lambda v: 100.0 * float(np.mean(v)) if v else float("nan")  # noqa: E731
    return {"share": mean(shares), "chance": mean(chances), "n_words": len(shares), "n_pairs": pairs}


@torch.no_grad()
def distractor_attention(matcher: Matcher, split: SplitData, img: ImageEmb | None = None,
                         txt: TextEmb | None = None, *, batch_size: int = 256) -> dict | None:
    """The share of grounded words' factual attention mass (matching pairs; the word → region map of
    :func:`grounding_accuracy`) that lies on the bias distractor's regions (:func:`distractor_regions`), over
    the pairs whose image shows the distractor: the spurious shortcut, measured directly.

    Returns :func:`distractor_share`'s dict (percentages; ``chance`` is the uniform-attention share) plus
    ``n_images`` (images counted), ``n_distractor_images`` (images with a distractor region) and ``skipped``
    words, or None where :func:`distractor_unavailable` says why.
    """
    if distractor_unavailable(split):
        return None
    dis = distractor_regions(split)                                              # [I, R]
    if img is None or txt is None:
        img, txt = encode_split(matcher, split)
    totals = {"on": 0.0, "chance": 0.0, "n_words": 0, "n_pairs": 0, "images": set()}
    skipped = 0
    for caps, images, maps, mask in _aligned_maps(matcher, split, img, txt, batch_size, "distractor attention"):
        words = []
        for c in caps:
            matched, missed = _matched_words(split, txt, c)
            skipped += missed
            words.append([j for j, _ in matched])
        part = distractor_share(maps, mask, dis[images][:, :maps.shape[2]], words)
        if part["n_words"]:
            totals["on"] += part["share"] * part["n_words"]
            totals["chance"] += part["chance"] * part["n_words"]
            totals["n_words"] += part["n_words"]
            totals["n_pairs"] += part["n_pairs"]
            totals["images"].update(i for i, w in zip(images, words) if w and dis[i].any())
    n = totals["n_words"]
    return {"share": totals["on"] / n if n else float("nan"), "chance": totals["chance"] / n if n else float("nan"),
            "n_words": n, "n_pairs": totals["n_pairs"], "n_images": len(totals["images"]),
            "n_distractor_images": int(dis.any(axis=1).sum()),
            "skipped": skipped}


def effect_summary(factual: np.ndarray, counterfactual: np.ndarray, caps_per_image: int) -> dict:
    """Mean effect ``S(α) − S(ᾱ)`` over matching pairs (caption of the image) and all other pairs."""
    check_finite_scores(factual, "factual similarity matrix")
    check_finite_scores(counterfactual, "counterfactual similarity matrix")
    effect = factual.astype(np.float64) - counterfactual                       # [I, C]
    match = (np.arange(effect.shape[1])[None, :] // caps_per_image) == np.arange(effect.shape[0])[:, None]
    return {"matching": float(effect[match].mean()),
            "non_matching": float(effect[~match].mean()) if (~match).any() else float("nan")}


def check_shards(shard_images: int, shard_captions: int) -> None:
    """Shard sizes are whole numbers in ``1..MAX_SHARD`` (one-line ConfigError otherwise)."""
    for name, v in (("shard_images", shard_images), ("shard_captions", shard_captions)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= int(v) <= MAX_SHARD:
            raise ConfigError(f"{name} must be a whole number in 1..{MAX_SHARD}, got {v!r}")


def split_limits(matcher: Matcher, split: SplitData) -> dict:
    """``{"n_words", "n_regions"}``: the longest caption's tokens (the matcher's W axis) and the largest
    image's region count (up to its last valid region) — the range of a whole-split intervention's targets."""
    mask = np.asarray(split.region_mask, dtype=bool)  # [I, R]
    last = (mask.shape[1] - np.argmax(mask[:, ::-1], axis=1)) * mask.any(axis=1) if mask.size else np.zeros(1)
    n_words = max((len(matcher.tokens(c)) for c in split.captions), default=0)
    return {"n_words": int(n_words), "n_regions": int(np.max(last, initial=0))}


def estimate_bytes(n_images: int, n_captions: int, n_regions: int, n_words: int, embed: int, *,
                   shard_images: int, shard_captions: int, matrices: int = 1, working_copy: bool = True) -> int:
    """Peak bytes of scoring a split, from its shapes: the encoded gallery (embeddings and grams),
    ``matrices`` float32 ``[I, C]`` score matrices (plus a float64 working copy when ``working_copy``) and
    one shard's maps (about eight float32 ``[i, c, W, R]`` tensors)."""
    gallery = 4 * (n_images * n_regions * (embed + n_regions) + n_captions * n_words * (embed + n_words))
    sims = (4 * matrices + (8 if matrices and working_copy else 0)) * n_images * n_captions
    shard = 8 * 4 * min(shard_images, n_images) * min(shard_captions, n_captions) * n_words * n_regions
    return int(gallery + sims + shard)


def _label(n_images: int) -> str:
    return f"all {n_images} images" if n_images % 1000 else f"full {n_images // 1000}K"


def evaluate(matcher: Matcher, split: SplitData, *, fold5: bool = False, intervention=None,
             limit_images: int | None = None, grounding: bool = True, batch_size: int = 128,
             shard_images: int = 128, shard_captions: int = 128, progress: bool = False,
             impl: str | None = None) -> dict:
    """Retrieval metrics of ``matcher`` on ``split`` (optionally under a counterfactual).

    Returns a JSON-ready dict: ``metrics`` (all images; under ``intervention`` if given) with its
    ``label``; ``fold5`` (``{"label", "mean", "folds"}``) when asked; with an intervention also
    ``factual_metrics`` and ``effect`` (mean factual − counterfactual score, matching vs not);
    ``grounding`` (factual attention) where the split has alignments and ``grounding`` is True;
    ``distractor_attention`` (:func:`distractor_attention`) on scenes splits when ``grounding`` is True;
    ``effect_auc`` (:func:`causmatch.effect_auc.effect_auc`) with an intervention; ``unavailable``: for each
    of these two that could not be computed, why (one line);
    ``fit_aware`` on scenes splits (:mod:`causmatch.data.scenes.fit`): :func:`fit_aware_metrics` of the same
    scores as ``metrics`` plus :func:`~causmatch.data.scenes.fit.fit_distribution` (and ``fold5`` when asked).
    ``impl`` (:mod:`causmatch.models.impl`) scores the matrices; ``"compiled"`` scores learned maps only, so
    under an intervention the counterfactual matrix takes the default rule.
    """
    from causmatch.runtime import check_memory

    if limit_images is not None and (isinstance(limit_images, bool) or int(limit_images) < 1):
        raise ConfigError(f"limit_images must be >= 1, got {limit_images}")
    check_shards(shard_images, shard_captions)
    split = subset_split(split, limit_images)
    if split.n_images == 0 or split.n_captions == 0:
        raise DataError(f"split '{split.split}' has {split.n_images} images and {split.n_captions} captions — "
                        "nothing to evaluate; use a split with at least one image and its captions")
    from causmatch.data.scenes.fit import fit_distribution, split_fits

    fits = split_fits(split)  # scenes splits only (None elsewhere); refused before any work when misaligned
    lim = split_limits(matcher, split)
    if intervention is not None:
        from causmatch.interventions import validate_intervention

        validate_intervention(intervention, **lim, scope=f" for split '{split.split}'")
    check_memory(estimate_bytes(split.n_images, split.n_captions, split.features.shape[1], lim["n_words"],
                                matcher.config.embed_size, shard_images=shard_images, shard_captions=shard_captions,
                                matrices=1 if intervention is None else 2, working_copy=False),
                 f"evaluating {split.n_images} images × {split.n_captions} captions",
                 "use --limit-images N or smaller --shard, or a machine with more memory")
    img, txt = encode_split(matcher, split, batch_size)
    shards = dict(shard_images=shard_images, shard_captions=shard_captions, progress=progress)
    cf_impl = None if impl == "compiled" and intervention is not None else impl
    sims = similarity_matrix(matcher, img, txt, intervention, impl=cf_impl, **shards)
    k = split.caps_per_image
    result = {"split": split.split, "n_images": split.n_images, "n_captions": split.n_captions,
              "caps_per_image": k, "intervention": "none" if intervention is None else intervention.describe(),
              "label": _label(split.n_images), "metrics": recall_metrics(sims, k)}
    if fold5:
        folds = fold_metrics(sims, k)
        size = folds["fold_size"]
        name = f"5-fold {size // 1000}K" if size % 1000 == 0 else f"5-fold {size}"
        result["fold5"] = {"label": name, "mean": folds["mean"], "folds": folds["folds"]}
    if intervention is not None:
        factual = similarity_matrix(matcher, img, txt, None, impl=impl, **shards)
        result["factual_metrics"] = recall_metrics(factual, k)
        result["effect"] = effect_summary(factual, sims, k)
    if grounding and split.grounding is not None:
        result["grounding"] = grounding_accuracy(matcher, split, img, txt)
    if grounding:  # the bias distractor's share of the attention: scenes splits only, else the reason
        why = distractor_unavailable(split)
        shortcut = None if why else distractor_attention(matcher, split, img, txt)
        if shortcut is not None and shortcut["n_words"] == 0:
            why = "no grounded word of this split lies in an image that shows the bias distractor"
        if why:
            result.setdefault("unavailable", {})["distractor_attention"] = why
        else:
            result["distractor_attention"] = shortcut
    if intervention is not None:  # does the effect of the top pair flag a wrong top-1 image?
        from causmatch.effect_auc import effect_auc

        try:
            result["effect_auc"] = effect_auc(factual, sims, k)
        except DataError as err:  # one class only (or < 2 images): the retrieval results still stand
            result.setdefault("unavailable", {})["effect_auc"] = str(err)
    if fits is not None:  # the same scores as "metrics"
        result["fit_aware"] = {**fit_aware_metrics(sims, fits, k), **fit_distribution(fits)}
        if fold5:
            folds = fit_aware_fold_metrics(sims, fits, k)
            result["fit_aware"]["fold5"] = {"label": result["fold5"]["label"], "mean": folds["mean"],
                                            "folds": folds["folds"]}
    return result
