"""``AnalysisSession``: one model + one dataset split, with lazily computed, disk-cached gallery results.

Public API::

    AnalysisSession(matcher, split, *, checkpoint_path=None, cache_dir=None, device="cpu",
                    batch_size=128, shard_images=128, shard_captions=512)
    AnalysisSession.open(checkpoint_dir, data_dir, split="test", cache_dir=None, device="cpu")
    .gallery(progress=None) -> (ImageEmb, TextEmb)             # the encoded split, cached
    .similarity(intervention=None, *, samples=1, seed=0, progress=None) -> np.ndarray [I,C] float32
    .recall(intervention=None, *, samples=1, seed=0) -> dict    # evaluation.recall_metrics
    .explain(image, caption=None, *, text=None, intervention="random", samples=8, seed=0,
             per_word=True, per_region=True) -> PairExplanation
    .effects(image, caption=None, *, text=None, kinds=COUNTERFACTUAL_KINDS, samples=8, seed=0)
             -> dict[str, EffectEstimate]
    .rank_caption_query(c, intervention="random", *, samples=8, seed=0, k=10) -> RankResult
    .rank_image_query(i, intervention="random", *, samples=8, seed=0, k=10) -> RankResult
    .rank_text_query(text, image, intervention="random", *, samples=8, seed=0, k=10) -> RankResult
    .failure_table(direction="t2i", intervention="random", other=None, *, samples=1, seed=0, fits=None) -> DataFrame
    .pair_limits(image, caption=None, *, text=None) -> {"n_words": W, "n_regions": R}   # this pair's targets
    .split_limits() -> {"n_words": max W, "n_regions": max R}                          # whole-split runs
    .check_intervention(intervention, image=None, caption=None, *, text=None, seed=0) -> Intervention
    .fits() -> np.ndarray [I,C] bool | None   # caption c is true of image i (scenes splits; None elsewhere, and
                                              # causmatch.data.scenes.fit.fit_unavailable(split) says why)
    .failure_facts(direction, intervention=None, *, samples=1, seed=0) -> dict   # the table's per-query arrays, cached
    .cached_similarity(intervention=None, *, samples=1, seed=0) -> np.ndarray | None   # built already, or None
    .put_similarity(intervention, sims, *, samples=1, seed=0)   # store a matrix built elsewhere (causmatch cache)
    .check_computable(intervention=None, *, samples=1, seed=0)  # CacheMissing now, before queueing work
    .put_gallery(img, txt)                                      # store an encoded gallery built elsewhere

``compute`` ("auto" | "always" | "never"): whether a whole-split matrix missing from the cache is computed.
"auto" computes it unless the split is large (more than ``precompute.LARGE_SPLIT_PAIRS`` image-caption pairs);
then, as always under "never", :class:`causmatch.analysis.precompute.CacheMissing` (a one-line DataError) names
the ``causmatch cache ...`` command that builds it ahead of time.

Interventions are validated before any work (``check_intervention``): against the pair in
``explain``/``effects``/``rank_*``, against the split's maxima in ``similarity``/``recall``/``failure_table``
(one-line ConfigError). Non-finite scores: a score matrix or pair score holding NaN/inf is refused
with a DataError naming the first (image, caption) pair — the model, not the data, is then broken.
``samples`` is capped (``causmatch.analysis.effects.MAX_SAMPLES``), as are ``k`` and the shard sizes.

``progress`` callbacks are called as ``progress(done, total, message)``. Interventions are spec
strings (``"random"``, ``"mask-regions=0,3"``…, see ``parse_intervention``) or objects. Matrices
under a stochastic intervention average ``samples`` seeded draws (``seed … seed+samples−1``).
A counterfactual rank has one definition: the rank (``causmatch.ranks``) of the true item under the
mean of the K draws' scores, summed in float64 in draw order and stored as float32; ``rank_*_query``
reads the query's scores from the whole-split matrix of the same (intervention, K, seed) when it is
built (``cached_similarity``), so the failure table, R@K and single queries show the same rank.
Disk cache entries (``cache_dir``; None = memory only) are keyed by the checkpoint fingerprint, the
split's ``fingerprint()`` and the intervention; anything else found there is stale and rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path

import numpy as np
import torch

from causmatch.analysis import failures as F
from causmatch.analysis.cache import ArrayCache, cache_key
from causmatch.analysis.effects import check_samples, check_top, estimate_effect, sample_interventions
from causmatch.analysis.explain import PairExplanation, explain_pair
from causmatch.analysis.ranking import RankResult, compare_rankings
from causmatch.checkpoint import check_compatible
from causmatch.data import load_split, tokenize
from causmatch.errors import ConfigError, DataError
from causmatch.evaluation import check_finite_scores
from causmatch.interventions import (
    COUNTERFACTUAL_KINDS,
    check_targets_for,
    kind_of,
    resolve_intervention,
    validate_intervention,
)
from causmatch.models import ImageEmb, TextEmb, sharded_similarity


def sims_tag(iv, samples: int, seed: int) -> str:
    """Cache entry tag of a similarity matrix: what the intervention is and how it was sampled."""
    key = {"name": iv.name, "describe": iv.describe(), "samples": samples if iv.stochastic else 1,
           "seed": seed if iv.stochastic else 0}
    return "sims-" + hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]


def facts_tag(direction: str, iv, samples: int, seed: int) -> str:
    """Cache entry tag of the failure table's per-query arrays of one matrix (``failure_facts``)."""
    return f"facts{F.FACTS_FORMAT}-{direction}-{sims_tag(iv, samples, seed)}"


class AnalysisSession:
    """A matcher and a dataset split, with the gallery encoded and scored on demand (module docstring)."""

    def __init__(self, matcher, split, *, checkpoint_path=None, cache_dir=None, device="cpu",
                 batch_size: int = 128, shard_images: int = 128, shard_captions: int = 512, compute: str = "auto"):
        from causmatch.analysis.precompute import check_compute
        from causmatch.evaluation import check_shards

        self.compute = check_compute(compute)

        check_shards(shard_images, shard_captions)
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or not 1 <= batch_size <= 4096:
            raise ConfigError(f"batch_size must be a whole number in 1..4096, got {batch_size!r}")
        if split.n_images == 0 or split.n_captions == 0:
            raise DataError(f"split '{split.split}' has {split.n_images} images and {split.n_captions} captions "
                            "— open a split with at least one image and its captions")
        check_compatible(matcher, split)  # CheckpointError when the feature sizes differ
        self.matcher = matcher.to(device).eval()
        self.split = split
        self.device = torch.device(device)
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.batch_size, self.shard_images, self.shard_captions = batch_size, shard_images, shard_captions
        self.cache = ArrayCache(cache_dir)
        self._fp: tuple[str, str] | None = None
        self._gallery: tuple[ImageEmb, TextEmb] | None = None
        self._sims: dict[str, np.ndarray] = {}
        self._fits: tuple[np.ndarray | None] | None = None
        self._facts: dict[str, dict] = {}

    @classmethod
    def open(cls, checkpoint_dir, data_dir, split: str = "test", cache_dir=None, device="cpu") -> "AnalysisSession":
        """Load a checkpoint folder and a dataset split and check that they fit together."""
        from causmatch.checkpoint import load_matcher

        data = load_split(data_dir, split)
        matcher = load_matcher(checkpoint_dir, map_location=device)
        return cls(matcher, data, checkpoint_path=checkpoint_dir, cache_dir=cache_dir, device=device)

    # ------------------------------------------------------------------ fingerprints and cache
    def fingerprints(self) -> tuple[str, str]:
        """(model fingerprint, data fingerprint) — the cache keys' base."""
        if self._fp is None:
            if self.checkpoint_path is not None:
                from causmatch.checkpoint import checkpoint_fingerprint
                model_fp = checkpoint_fingerprint(self.checkpoint_path)
            else:
                from causmatch.checkpoint import model_fingerprint
                model_fp = model_fingerprint(self.matcher)
            self._fp = (model_fp, self.split.fingerprint())
        return self._fp

    def _mapped(self) -> bool:
        """Large splits map their gallery and matrices from the cache instead of reading them
        (``ArrayCache.load(mmap=True)``): gigabytes open at once, the pages a view uses are read."""
        from causmatch.analysis.precompute import LARGE_SPLIT_PAIRS

        return self.split.n_images * self.split.n_captions > LARGE_SPLIT_PAIRS

    def _entry(self, what: str) -> tuple[str, str]:
        """(file name, key) of a cache entry; the name is unique per model/data pair and split."""
        model_fp, data_fp = self.fingerprints()
        scope = hashlib.sha1(f"{model_fp}|{data_fp}".encode()).hexdigest()[:12]
        return f"{self.split.split}-{scope}-{what}", cache_key(model_fp, data_fp, what)

    # ------------------------------------------------------------------ gallery
    def gallery(self, progress=None) -> tuple[ImageEmb, TextEmb]:
        """The split's images and captions, encoded (memory, then disk cache, then the model)."""
        if self._gallery is None:
            name, key = self._entry("gallery")
            hit = self.cache.load(name, key, mmap=self._mapped()) if self.cache.root is not None else None
            if hit is not None:
                self._gallery = _gallery_from_arrays(hit)
            else:
                from causmatch.analysis.precompute import require_computable

                require_computable(self, None, 1, 0, what="the encoded gallery")  # large split: `causmatch cache`
                self._gallery = self._encode(progress)
                self.cache.save(name, key, _gallery_to_arrays(*self._gallery))
        return self._gallery

    def _encode(self, progress) -> tuple[ImageEmb, TextEmb]:
        from causmatch.evaluation import encode_split, estimate_bytes
        from causmatch.runtime import check_memory

        n_i, n_c = self.split.n_images, self.split.n_captions
        check_memory(estimate_bytes(n_i, n_c, self.split.features.shape[1], self.split_limits()["n_words"],
                                    self.matcher.config.embed_size, shard_images=0, shard_captions=0, matrices=0),
                     f"encoding {n_i} images and {n_c} captions",
                     "open a smaller split or use a machine with more memory")

        if progress:
            progress(0, 1, "encoding images and captions")
        with torch.no_grad():
            img, txt = encode_split(self.matcher, self.split, batch_size=self.batch_size)
        if progress:
            progress(1, 1, "encoded")
        return img.to("cpu"), txt.to("cpu")

    # ------------------------------------------------------------------ similarity matrices
    def similarity(self, intervention=None, *, samples: int = 1, seed: int = 0, progress=None) -> np.ndarray:
        """The ``[I, C]`` score matrix, factual (None) or under an intervention (mean of its draws)."""
        iv = self.check_intervention(intervention, seed=seed)
        check_samples(samples)
        tag = sims_tag(iv, samples, seed)
        if tag in self._sims:
            return self._sims[tag]
        name, key = self._entry(tag)
        hit = self.cache.load(name, key, mmap=self._mapped()) if self.cache.root is not None else None
        if hit is not None:
            sims = _checked(hit["sims"], f"similarity matrix ({iv.name})")
        else:
            from causmatch.analysis.precompute import require_computable

            require_computable(self, iv, samples, seed)  # a large split's matrix comes from `causmatch cache`
            sims = self._compute_sims(iv, samples, seed, progress)
            self.cache.save(name, key, {"sims": sims})
        self._sims[tag] = sims
        return sims

    def cached_similarity(self, intervention=None, *, samples: int = 1, seed: int = 0) -> np.ndarray | None:
        """The matrix :meth:`similarity` would return when it is already built (memory or disk cache), else
        None — never computes (a page asks this before queueing the work in the background)."""
        iv = self.check_intervention(intervention, seed=seed)
        check_samples(samples)
        tag = sims_tag(iv, samples, seed)
        if tag not in self._sims:
            name, key = self._entry(tag)
            hit = self.cache.load(name, key, mmap=self._mapped()) if self.cache.root is not None else None
            if hit is None:
                return None
            self._sims[tag] = _checked(hit["sims"], f"similarity matrix ({iv.name})")
        return self._sims[tag]

    def put_gallery(self, img: ImageEmb, txt: TextEmb) -> None:
        """Store an encoded gallery built elsewhere (``[I]`` images, ``[C]`` captions of this split) as
        :meth:`gallery` would (memory and disk cache)."""
        n_i, n_c = self.split.n_images, self.split.n_captions
        if len(img) != n_i or len(txt) != n_c:
            raise DataError(f"a gallery of {len(img)} images and {len(txt)} captions does not fit split "
                            f"'{self.split.split}' ({n_i} images × {n_c} captions)")
        self.cache.save(*self._entry("gallery"), _gallery_to_arrays(img, txt))
        self._gallery = (img, txt)

    def check_computable(self, intervention=None, *, samples: int = 1, seed: int = 0) -> None:
        """Nothing when ``intervention``'s whole-split matrix is built or this session may build it (its
        ``compute`` mode); else :class:`~causmatch.analysis.precompute.CacheMissing` at once, naming the
        ``causmatch cache`` command — ask before queueing whole-split work."""
        if self.cached_similarity(intervention, samples=samples, seed=seed) is None:
            from causmatch.analysis.precompute import require_computable

            require_computable(self, self.check_intervention(intervention, seed=seed), samples, seed)

    def put_similarity(self, intervention, sims, *, samples: int = 1, seed: int = 0) -> None:
        """Store ``sims`` [I, C] as :meth:`similarity` would have (memory and disk cache): the matrix of
        ``intervention`` built elsewhere, e.g. row blocks gathered across processes by ``causmatch cache``."""
        iv = self.check_intervention(intervention, seed=seed)
        check_samples(samples)
        sims = np.asarray(sims, dtype=np.float32)
        if sims.shape != (self.split.n_images, self.split.n_captions):
            raise DataError(f"a {sims.shape} matrix does not fit split '{self.split.split}' "
                            f"({self.split.n_images} images × {self.split.n_captions} captions)")
        check_finite_scores(sims, f"similarity matrix ({iv.name})")
        tag = sims_tag(iv, samples, seed)
        self.cache.save(*self._entry(tag), {"sims": sims})
        self._sims[tag] = sims

    def _compute_sims(self, iv, samples, seed, progress, rows: tuple[int, int] | None = None) -> np.ndarray:
        """The matrix of ``iv`` (mean of its draws); ``rows`` (lo, hi): only images lo..hi-1 (global ids
        key the draws, so row blocks scored apart and stacked equal the whole matrix)."""
        from causmatch.evaluation import estimate_bytes
        from causmatch.runtime import check_memory

        lim = self.split_limits()
        n_i, n_c = self.split.n_images, self.split.n_captions
        lo, hi = (0, n_i) if rows is None else (int(rows[0]), int(rows[1]))
        check_memory(estimate_bytes(n_i, n_c, self.split.features.shape[1], lim["n_words"],
                                    self.matcher.config.embed_size, shard_images=self.shard_images,
                                    shard_captions=self.shard_captions, matrices=1 + len(self._sims)),
                     f"the {n_i} × {n_c} similarity matrix", "open a smaller split or use a machine with more memory")
        img, txt = self.gallery(progress)
        img = img if rows is None else img[slice(lo, hi)]
        draws = sample_interventions(iv, samples, seed) if iv.name != "none" else [None]
        n_cap, step = len(txt), self.shard_captions
        chunks = [(c0, min(c0 + step, n_cap)) for c0 in range(0, n_cap, step)]
        total, done = len(draws) * len(chunks), 0
        out = np.zeros((len(img), n_cap), dtype=np.float64)
        for d in draws:
            for c0, c1 in chunks:  # caption chunks keep global ids: same result as one call
                out[:, c0:c1] += sharded_similarity(
                    self.matcher, img, txt[c0:c1], d, shard_images=self.shard_images,
                    shard_captions=self.shard_captions, image_ids=torch.arange(lo, hi),
                    caption_ids=torch.arange(c0, c1))
                done += 1
                if progress:
                    progress(done, total, f"similarity matrix ({iv.name})")
        return check_finite_scores((out / len(draws)).astype(np.float32), f"similarity matrix ({iv.name})",
                                   image_ids=np.arange(lo, hi))

    def recall(self, intervention=None, *, samples: int = 1, seed: int = 0) -> dict:
        """R@1/5/10, rSum, medr, meanr of the split (``causmatch.evaluation.recall_metrics``)."""
        from causmatch.evaluation import recall_metrics

        return recall_metrics(self.similarity(intervention, samples=samples, seed=seed),
                              self.split.caps_per_image)

    # ------------------------------------------------------------------ intervention targets
    def pair_limits(self, image, caption=None, *, text=None) -> dict:
        """``{"n_words", "n_regions"}`` for one pair: targets of a word kind must lie in ``0..n_words-1``
        (the caption's tokens, the W axis of its maps), of a region kind in ``0..n_regions-1`` (the
        image's regions up to its last valid one). Give a caption index or a free text."""
        i = self.check_image(image)
        if caption is not None:
            c = self.check_caption(caption)
            text = self.split.captions[c]
        elif text is None:
            raise DataError("give a caption index or a free text to know the pair's word count")
        return {"n_words": len(self.matcher.tokens(str(text))), "n_regions": self._n_regions(i)}

    def _n_regions(self, i: int) -> int:
        """Image ``i``'s region axis up to its last valid region."""
        valid = np.flatnonzero(np.asarray(self.split.region_mask[i], dtype=bool))
        return int(valid[-1]) + 1 if valid.size else 0

    def split_limits(self) -> dict:
        """``{"n_words", "n_regions"}`` for whole-split runs: the longest caption's tokens and the largest
        image's regions (a target past a shorter caption's end has no effect on that caption)."""
        if getattr(self, "_split_limits", None) is None:
            from causmatch.evaluation import split_limits

            # A large split keeps them in the cache: tokenising every caption takes seconds there.
            name, key = self._entry("limits")
            keep = self._mapped() and self.cache.root is not None
            hit = self.cache.load(name, key) if keep else None
            if hit is not None:
                self._split_limits = {k: int(v) for k, v in hit.items()}
            else:
                self._split_limits = split_limits(self.matcher, self.split)
                if keep:
                    self.cache.save(name, key, {k: np.array(v) for k, v in self._split_limits.items()})
        return dict(self._split_limits)

    def check_intervention(self, intervention, image=None, caption=None, *, text=None, seed: int = 0):
        """The Intervention of ``intervention`` (spec or object), checked against the pair (``image`` with
        ``caption`` or ``text``) or, with no image, the whole split; a one-line ConfigError otherwise."""
        iv = resolve_intervention(intervention, seed)
        check_targets_for(getattr(self.matcher.config, "similarity", "scan"), [iv])  # e.g. filtration: SAF only
        if image is None:
            return validate_intervention(iv, **self.split_limits(), scope=f" for split '{self.split.split}'")
        lim = self.pair_limits(image, caption, text=text)
        where = f" for image {int(image)}" + (f" and caption {int(caption)}" if caption is not None else "")
        validate_intervention(iv, **lim, scope=where)
        kind = kind_of(iv)
        if kind is not None and kind.axis == "regions":  # every region kind keeps its targets in .indices
            mask = np.asarray(self.split.region_mask[int(image)], dtype=bool)
            pad = list(dict.fromkeys(int(r) for r in iv.indices if not mask[r]))  # each once, as given
            if pad:
                raise ConfigError(f"{kind.name}: region {', '.join(map(str, pad))} is padding{where} — "
                                  f"valid regions: {', '.join(map(str, np.flatnonzero(mask)))}")
        return iv

    def _check_pair_memory(self, image, caption, text, samples) -> None:
        """Refuse an explanation whose maps would not fit: per-word effects score the pair once per word
        (``W × W × R`` maps, about eight float32 temporaries), per-region effects once per region (``R``
        copies of the image's ``R × (D + R)`` embeddings and gram, ``R × W × R`` maps), and every draw keeps
        its ``W × R`` maps."""
        from causmatch.runtime import check_memory

        lim = self.pair_limits(image, caption, text=text)
        w, r, d = lim["n_words"], self.split.features.shape[1], self.matcher.config.embed_size
        need = 4 * (8 * w * w * r + r * r * (d + r) + 8 * r * w * r + 4 * (samples + 1) * w * r)
        check_memory(need, f"explaining a {w}-word caption over {r} regions",
                     "use a shorter caption or fewer --samples, or a machine with more memory")

    def _check_query_intervention(self, intervention, seed, *, n_words=None, n_regions=None, scope=""):
        """A query over the whole gallery: the query's own axis is checked against the query, the
        gallery's against the split's maximum."""
        lim = self.split_limits()
        iv = resolve_intervention(intervention, seed)
        check_targets_for(getattr(self.matcher.config, "similarity", "scan"), [iv])
        return validate_intervention(iv, n_words=lim["n_words"] if n_words is None else n_words,
                                     n_regions=lim["n_regions"] if n_regions is None else n_regions, scope=scope)

    # ------------------------------------------------------------------ one pair
    def check_caption(self, caption) -> int:
        n = self.split.n_captions
        if isinstance(caption, bool) or not isinstance(caption, (int, np.integer)) or not 0 <= int(caption) < n:
            raise DataError(f"caption index {caption} is out of range — this split has captions 0..{n - 1}")
        return int(caption)

    def check_image(self, image) -> int:
        n = self.split.n_images
        if isinstance(image, bool) or not isinstance(image, (int, np.integer)) or not 0 <= int(image) < n:
            raise DataError(f"image index {image} is out of range — this split has images 0..{n - 1}")
        return int(image)

    def _pair(self, image, caption, text):
        """(ImageEmb [1], TextEmb [1], caption index or None, text, pair_ids) for one pair."""
        i = self.check_image(image)
        if (caption is None) == (text is None):
            raise DataError("give either a caption index or a free text, not both and not neither")
        if caption is not None:
            n = self.split.n_captions
            if not isinstance(caption, (int, np.integer)) or not 0 <= int(caption) < n:
                raise DataError(f"caption index {caption} is out of range — this split has captions 0..{n - 1}")
            c, text = int(caption), self.split.captions[int(caption)]
        else:
            c = None
            self._check_text(text)
        if self._gallery is not None and c is not None:  # already encoded: slice, don't re-run the encoders
            g_img, g_txt = self._gallery
            return g_img[[i]], g_txt[[c]].trimmed(), c, text, (torch.tensor([i]), torch.tensor([c]))
        with torch.no_grad():
            feats = torch.from_numpy(np.array(self.split.features[i:i + 1], dtype=np.float32))  # [1,R,F] copy
            mask = torch.from_numpy(np.array(self.split.region_mask[i:i + 1], dtype=bool))  # [1,R]
            img = self.matcher.encode_images(feats.to(self.device), mask.to(self.device)).to("cpu")
            txt = self.matcher.encode_captions([text]).to("cpu")
        # Free text gets a stable id past the dataset's captions, so its random draws are reproducible.
        cid = c if c is not None else self.split.n_captions + zlib.crc32(text.encode("utf-8")) % (1 << 24)
        ids = (torch.tensor([i]), torch.tensor([cid]))
        return img, txt, c, text, ids

    def _check_text(self, text: str) -> None:
        words = tokenize(text or "", self.matcher.config.text.tokenizer)
        if not words:
            raise DataError("the caption is empty — type at least one word")
        unknown = set(self.matcher.unknown_words(text))
        if all(w in unknown for w in words):
            raise DataError(f"none of the words of '{text.strip()}' are in the model's vocabulary — "
                            "use words from the training captions")

    def explain(self, image, caption=None, *, text=None, intervention="random", samples: int = 8,
                seed: int = 0, per_word: bool = True, per_region: bool = True) -> PairExplanation:
        """Explain image ``image`` with caption index ``caption`` or a free ``text`` (see PairExplanation)."""
        check_samples(samples)
        iv = self.check_intervention(intervention, image, caption, text=text, seed=seed)
        self._check_pair_memory(image, caption, text, samples)
        img, txt, c, text, ids = self._pair(image, caption, text)
        out = explain_pair(self.matcher, img, txt, iv, samples=samples, seed=seed, pair_ids=ids,
                           per_word=per_word, per_region=per_region)
        i = int(image)
        out.image, out.caption, out.text = i, c, text
        out.unknown_words = list(self.matcher.unknown_words(text))
        if self.split.boxes is not None:
            out.boxes = np.asarray(self.split.boxes[i], dtype=np.float32)
        if self.split.image_paths is not None:
            out.image_path = str(self.split.image_paths[i])
        if c is not None and self.split.grounding is not None and self.split.image_of(c) == i:
            from causmatch.analysis.grounding import pair_grounding
            from causmatch.pointing import word_region_map

            out.grounding = pair_grounding(word_region_map(out.t2i, out.i2t), self.split.grounding[c],
                                           out.region_mask)
        return out

    def effects(self, image, caption=None, *, text=None, kinds=COUNTERFACTUAL_KINDS, samples: int = 8,
                seed: int = 0) -> dict:
        """The pair's effect under each intervention kind: ``{kind: EffectEstimate}``.

        ``kinds``: intervention specs (one spec as a plain string is one kind, not a sequence of letters).
        """
        check_samples(samples)
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        ivs = {k: self.check_intervention(k, image, caption, text=text, seed=seed) for k in kinds}
        img, txt, _, _, ids = self._pair(image, caption, text)
        with torch.no_grad():
            factual = self.matcher.pair_scores(img, txt, None, pair_ids=ids).score
        factual = float(check_finite_scores(factual.cpu().numpy(), "pair score", image_ids=ids[0],
                                            caption_ids=ids[1])[0])
        return {k: estimate_effect(self.matcher, img, txt, iv, samples=samples,
                                   seed=seed, pair_ids=ids, factual=factual) for k, iv in ivs.items()}

    # ------------------------------------------------------------------ ranks
    def _query_scores(self, img, txt, iv, samples, seed, ids) -> np.ndarray:
        """Mean over the draws of ``similarity(img, txt)`` flattened to the gallery axis: the draws summed in
        float64 in draw order, divided by their number and stored as float32 — the matrix's arithmetic."""
        draws = sample_interventions(iv, samples, seed)
        with torch.no_grad():  # one pass: cosines and learned maps shared by the K draws
            many = self.matcher.similarity_many(img, txt, draws, pair_ids=ids)
        total = np.zeros(tuple(many[0].score.shape), dtype=np.float64)
        for s in many:  # [I, C] summed in draw order
            total += s.score.float().cpu().numpy()
        return check_finite_scores((total / len(draws)).astype(np.float32), f"query scores ({iv.name})",
                                   image_ids=ids[0], caption_ids=ids[1]).reshape(-1)

    def _query_column(self, iv, samples, seed, query, compute) -> np.ndarray:
        """One query's scores under ``iv`` (the factual ones for ``none``; the library's one definition of a
        rank's scores): its column (caption ``query``) or row (image ``query``) of the whole-split matrix of
        (intervention, samples, seed) — the mean of the draws seed … seed+K−1 — read from that matrix when
        it is built, so every view ranks from the same numbers; else ``compute()``, the same mean for this
        query alone (equal to the matrix up to float32 rounding of another batch shape). A query never
        waits for, or builds, the whole split's matrix."""
        kind, q = query
        try:
            built = self.cached_similarity(iv, samples=samples, seed=seed)
        except ConfigError:  # a target past the split-wide check cannot have a split-wide matrix
            built = None
        if built is not None:
            return np.asarray(built[:, q] if kind == "caption" else built[q, :])
        return compute()

    def rank_caption_query(self, c, intervention="random", *, samples: int = 8, seed: int = 0,
                           k: int = 10) -> RankResult:
        """Caption ``c`` as a query over every image: factual vs counterfactual ranking."""
        c = self.check_caption(c)
        check_samples(samples)
        k = check_top(k)
        n_words = len(self.matcher.tokens(self.split.captions[c]))
        iv = self._check_query_intervention(intervention, seed, n_words=n_words, scope=f" for caption {c}")
        ids = (torch.arange(self.split.n_images), torch.tensor([c]))

        def alone(v, n, s):  # the gallery is read only when a matrix is missing (a large one is mapped)
            img, txt = self.gallery()
            return self._query_scores(img, txt[[c]].trimmed(), v, n, s, ids)
        none = resolve_intervention(None)
        factual = self._query_column(none, 1, 0, ("caption", c), lambda: alone(none, 1, 0))  # [I]
        cf = self._query_column(iv, samples, seed, ("caption", c), lambda: alone(iv, samples, seed))
        return compare_rankings(c, "t2i", factual, cf, [self.split.image_of(c)], k, iv.describe())

    def rank_text_query(self, text: str, image: int, intervention="random", *, samples: int = 8, seed: int = 0,
                        k: int = 10) -> RankResult:
        """A free-text query over every image, with ``image`` as its true item (nothing cached)."""
        i = self.check_image(image)
        self._check_text(text)
        check_samples(samples)
        k = check_top(k)
        iv = self._check_query_intervention(intervention, seed, n_words=len(self.matcher.tokens(text)),
                                            scope=" for this text")
        img, _ = self.gallery()
        with torch.no_grad():
            txt = self.matcher.encode_captions([text]).to("cpu")
        cid = self.split.n_captions + zlib.crc32(text.encode("utf-8")) % (1 << 24)
        ids = (torch.arange(len(img)), torch.tensor([cid]))
        factual = self._query_scores(img, txt, resolve_intervention(None), 1, seed, ids)  # [I]
        cf = self._query_scores(img, txt, iv, samples, seed, ids)  # [I]
        return compare_rankings(-1, "t2i", factual, cf, [i], k, iv.describe())

    def rank_image_query(self, i, intervention="random", *, samples: int = 8, seed: int = 0,
                         k: int = 10) -> RankResult:
        """Image ``i`` as a query over every caption (rank = best of its true captions)."""
        i = self.check_image(i)
        check_samples(samples)
        k = check_top(k)
        iv = self._check_query_intervention(intervention, seed, n_regions=self._n_regions(i),
                                            scope=f" for image {i}")
        ids = (torch.tensor([i]), torch.arange(self.split.n_captions))

        def alone(v, n, s):
            img, txt = self.gallery()
            return self._query_scores(img[[i]], txt, v, n, s, ids)
        none = resolve_intervention(None)
        factual = self._query_column(none, 1, 0, ("image", i), lambda: alone(none, 1, 0))  # [C]
        cf = self._query_column(iv, samples, seed, ("image", i), lambda: alone(iv, samples, seed))
        return compare_rankings(i, "i2t", factual, cf, list(self.split.captions_of(i)), k, iv.describe())

    # ------------------------------------------------------------------ captions true of several images
    def fits(self) -> np.ndarray | None:
        """The split's fit matrix ``[I, C]`` (read-only bool; ``causmatch.data.scenes.fit.split_fits``), computed
        once; None for a split without scene descriptions. DataError when the scene file is misaligned."""
        if self._fits is None:
            from causmatch.data.scenes.fit import split_fits

            self._fits = (split_fits(self.split),)
        return self._fits[0]

    # ------------------------------------------------------------------ failure cases
    def failure_table(self, direction: str = "t2i", intervention="random", other: "AnalysisSession | None" = None,
                      *, samples: int = 1, seed: int = 0, progress=None, fits=None):
        """One row per query of ``direction`` (see ``failures.build_failure_table``); ``fits``: the split's fit
        matrix (:meth:`fits`) to add the column ``wrong_fits``, None to leave it out."""
        if direction not in ("t2i", "i2t"):
            raise ConfigError(f"direction '{direction}' is not valid — use 't2i' (caption queries) or 'i2t'")
        iv = self.check_intervention(intervention, seed=seed)
        check_samples(samples)
        from causmatch.analysis.precompute import CacheMissing, missing_message

        try:
            facts = self.failure_facts(direction, progress=progress)
            if iv.name == "none":  # no intervention: the intervened columns repeat the factual ones
                cf_facts = {"rank_cf": facts["rank"], "cf_true": facts["score_true"], "cf_wrong": facts["score_wrong"]}
            else:
                cf_facts = self.failure_facts(direction, iv, samples=samples, seed=seed, progress=progress)
        except CacheMissing:  # name the command that builds every entry this table needs
            raise CacheMissing(missing_message(self, f"the failure table ({direction}, '{iv.name}')", iv, samples,
                                               seed)) from None
        rank_other = None
        if other is not None:
            if other.split.n_captions != self.split.n_captions or other.split.n_images != self.split.n_images:
                raise DataError("the second checkpoint's session uses another split — open both on the same data")
            rank_other = other.failure_facts(direction, progress=progress)["rank"]
        pointing = None
        if direction == "t2i" and self.split.grounding is not None:
            from causmatch.analysis.grounding import split_pointing
            pointing = split_pointing(self, progress=progress)["pointing"]
        if fits is not None:
            fits = F._check_fit_shape(fits, np.broadcast_to(np.int8(0), (self.split.n_images, self.split.n_captions)))
        return F.table_from_facts(facts, cf_facts, direction, rank_other=rank_other, pointing=pointing,
                                  captions=self.split.captions, fits=fits)

    def failure_facts(self, direction: str = "t2i", intervention=None, *, samples: int = 1, seed: int = 0,
                      progress=None) -> dict:
        """The failure table's per-query arrays of one matrix (memory, then disk cache, then the matrix):
        factual (``intervention`` None: ``failures.factual_facts``) or counterfactual
        (``failures.counterfactual_facts`` at the factual true and best wrong pairs). Cached, the failure
        table of a large split opens without loading or scoring its ``[I, C]`` matrices."""
        if direction not in ("t2i", "i2t"):
            raise ConfigError(f"direction '{direction}' is not valid — use 't2i' (caption queries) or 'i2t'")
        iv = self.check_intervention(intervention, seed=seed)
        check_samples(samples)
        factual = iv.name == "none"
        tag = facts_tag(direction, iv, samples, seed)
        if tag in self._facts:
            return self._facts[tag]
        name, key = self._entry(tag)
        hit = self.cache.load(name, key) if self.cache.root is not None else None
        if hit is None:
            k = self.split.caps_per_image
            if factual:
                hit = F.factual_facts(self.similarity(progress=progress), k, direction)
            else:
                base = self.failure_facts(direction, progress=progress)
                hit = F.counterfactual_facts(self.similarity(iv, samples=samples, seed=seed, progress=progress),
                                             base, k, direction)
            self.cache.save(name, key, hit)
        self._facts[tag] = hit
        return hit


def _checked(sims, what: str) -> np.ndarray:
    """A matrix read from the cache, checked finite — except a memory-mapped one (large splits): it was
    checked before its atomic write, and a scan would read gigabytes; every whole-matrix consumer (ranks,
    R@K, the failure arrays) checks what it reads, and a single query counts non-finite scores."""
    return sims if isinstance(sims, np.memmap) else check_finite_scores(sims, what)


_TOK, _CAP = "\x1f", "\x1e"  # token and caption separators of the gallery's tokens (never inside a token)


def _gallery_to_arrays(img: ImageEmb, txt: TextEmb) -> dict:
    out = {"regions": img.regions.numpy(), "region_mask": img.mask.numpy(), "region_gram": img.gram.numpy(),
           "words": txt.words.numpy(), "word_mask": txt.mask.numpy(), "word_gram": txt.gram.numpy()}
    if any(_TOK in t or _CAP in t for toks in txt.tokens for t in toks):
        out["tokens"] = np.array(json.dumps(txt.tokens))
    else:  # joined: read back with str.split, several times faster than JSON for 25,000 captions
        out["tokens_joined"] = np.array(_CAP.join(_TOK.join(toks) for toks in txt.tokens))
    return out


def _gallery_from_arrays(a: dict) -> tuple[ImageEmb, TextEmb]:
    t = torch.from_numpy
    img = ImageEmb(t(a["regions"]), t(a["region_mask"]), t(a["region_gram"]))
    if "tokens_joined" in a:
        tokens = [c.split(_TOK) if c else [] for c in a["tokens_joined"].item().split(_CAP)]
    else:
        tokens = json.loads(a["tokens"].item())
    txt = TextEmb(t(a["words"]), t(a["word_mask"]), t(a["word_gram"]), tokens)
    return img, txt
