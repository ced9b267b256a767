"""Grounding and faithfulness: pointing game, energy in the true regions, deletion/insertion curves.

Public API::

    word_grounding(attn [W,R], regions: list[int], region_mask [R]) -> (hit: bool, energy: float)
    pair_grounding(attn [W,R], entry: dict, region_mask [R], offset=0) -> dict
    grounding_table(session, progress=None) -> pandas.DataFrame   # one row per grounded word of the split
    split_pointing(session, progress=None) -> dict(pointing [C], energy [C])
    grounding_summary(df) -> pandas.DataFrame                     # pointing / energy by word type + overall
    Curve(kind, fraction [S], scores [S], ranks [S], removed [S], area)   # .mean_score: area / fraction range
    region_curve(session, image, caption, kind="deletion"|"insertion", order=None) -> Curve
    attention_order(attn [W,R], region_mask [R]) -> list[int]     # valid regions, most attention mass first
    random_order(region_mask [R], seed) -> list[int]              # valid regions in a seeded random order
    pair_curves(session, image, caption, baselines={name: order}) -> {kind: {"attention" | name: Curve}}

*Pointing game* (:mod:`causmatch.pointing`, shared with evaluation's grounding accuracy): a word hits when
its most-attended valid region is one of its true regions.
*Energy*: the share of the word's attention mass that falls on its true regions. ``attn`` is the
word → region map (t2i); for i2t-only models the transposed region → word map is used (how much
each region attends to the word). ``entry`` is one line of ``{split}_grounding.jsonl``; its word
indices refer to ``tokenize(caption)``, shifted by ``offset`` when the model adds ``<start>``.

*Deletion* removes regions in decreasing importance (the word→region attention mass summed over the
words, or the i2t region relevance for i2t-only models) and records the pair score and the true
image's rank among the gallery after each step (at least one region always remains); *insertion*
starts from the most important region alone and adds the others. ``area`` is the trapezoid area
under the score curve over the fraction of regions removed/inserted: a faithful attention gives
a low deletion area and a high insertion area. The fractions run over (0 … (n−1)/n) for deletion and
(1/n … 1) for insertion, so areas of images with different region counts compare as ``mean_score``: the
area divided by the range of fractions (the curve's mean score, in score units). Baselines on the same
pair: ``order=attention_order(counterfactual map)`` (the order a counterfactual attention would give) or
``order=random_order(mask, seed)``. Regions are removed by narrowing the region mask,
so their features are untouched.

Non-finite attention or scores (a broken model) raise a one-line DataError naming the pair instead of
counting as misses; a caller-given deletion ``order`` must list distinct valid regions of the image
(ConfigError otherwise).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from causmatch.analysis.effects import remove_regions
from causmatch.errors import DataError
from causmatch.pointing import pointed_regions, word_region_map
from causmatch.ranks import best_rank


def word_grounding(attn_row, regions, region_mask) -> tuple[bool, float]:
    """(pointing hit, energy in the true regions) for one word's attention ``[R]``."""
    a = np.where(np.asarray(region_mask, bool), np.asarray(attn_row, np.float64), -np.inf)  # [R]
    true = [r for r in regions if 0 <= r < len(a)]
    if not true or not np.isfinite(a).any():
        return False, float("nan")
    hit = int(pointed_regions(np.asarray(attn_row)[None], region_mask)[0]) in true
    mass = np.where(np.isfinite(a), np.abs(a), 0.0)
    total = mass.sum()
    return bool(hit), float(mass[true].sum() / total) if total > 0 else float("nan")


def pair_grounding(attn, entry: dict, region_mask, offset: int = 0) -> dict:
    """Per-word pointing/energy of one pair: ``{"words": [...], "pointing": f, "energy": f}``."""
    attn = np.asarray(attn)
    words = []
    for w in entry.get("words", []):
        j = int(w["index"]) + offset
        if not w.get("regions") or not 0 <= j < attn.shape[0]:
            continue
        hit, energy = word_grounding(attn[j], w["regions"], region_mask)
        words.append({"index": j, "word": w.get("word", ""), "type": w.get("type", ""),
                      "regions": list(w["regions"]), "hit": hit, "energy": energy})
    hits = [w["hit"] for w in words]
    energies = [w["energy"] for w in words if np.isfinite(w["energy"])]
    return {"words": words, "pointing": float(np.mean(hits)) if hits else float("nan"),
            "energy": float(np.mean(energies)) if energies else float("nan")}


def _word_maps(matcher, img, txt, ids) -> np.ndarray:
    """Word → region maps ``[N, W, R]`` of aligned pairs (t2i, or i2t transposed)."""
    with torch.no_grad():
        sc = matcher.pair_scores(img, txt, None, pair_ids=ids, return_maps=True)
    maps = word_region_map(sc.t2i, sc.i2t)
    out = maps.float().cpu().numpy()  # [N, W, R]
    _check_pairs_finite(out.reshape(len(out), -1), "attention map", ids)
    return out


def _check_pairs_finite(rows: np.ndarray, what: str, ids) -> None:
    """``rows [N, ...]`` of aligned pairs ``ids = (images [N], captions [N])``: DataError naming the first
    pair with a NaN/inf value."""
    bad = ~np.isfinite(rows.reshape(len(rows), -1)).all(axis=1)
    if bad.any():
        n = int(np.argmax(bad))
        i, c = (int(np.asarray(x).reshape(-1)[n if np.size(x) > 1 else 0]) for x in ids)
        raise DataError(f"the {what} of image {i}, caption {c} holds NaN or infinite values "
                        f"({int(bad.sum())} pair(s) affected) — the model is broken; check the checkpoint")


def _offset(session, caption: str) -> int:
    toks = session.matcher.tokens(caption)
    return 1 if toks and toks[0] == "<start>" else 0


def grounding_table(session, progress=None, batch: int = 256) -> pd.DataFrame:
    """Every grounded word of the split's (true) pairs: caption, image, index, word, type, hit, energy."""
    split = session.split
    if split.grounding is None:
        raise DataError(f"{split.folder} has no {split.split}_grounding.jsonl — grounding metrics need "
                        "word→region alignments")
    from causmatch.evaluation import check_shards

    check_shards(batch, batch)
    img_all, txt_all = session.gallery(progress)
    rows, n = [], split.n_captions
    for c0 in range(0, n, batch):
        caps = list(range(c0, min(c0 + batch, n)))
        imgs = [split.image_of(c) for c in caps]
        maps = _word_maps(session.matcher, img_all[imgs], txt_all[caps],
                          (torch.tensor(imgs), torch.tensor(caps)))  # [N, W, R]
        for n_i, c in enumerate(caps):
            g = pair_grounding(maps[n_i], split.grounding[c], split.region_mask[imgs[n_i]],
                               _offset(session, split.captions[c]))
            rows += [{"caption": c, "image": imgs[n_i], **{k: w[k] for k in ("index", "word", "type", "hit", "energy")}}
                     for w in g["words"]]
        if progress:
            progress(min(c0 + batch, n), n, "grounding")
    cols = ["caption", "image", "index", "word", "type", "hit", "energy"]
    return pd.DataFrame(rows, columns=cols)


def split_pointing(session, progress=None) -> dict:
    """Per caption ``[C]``: pointing-game hit rate and mean energy of its grounded words (NaN if none)."""
    df = grounding_table(session, progress)
    n = session.split.n_captions
    pointing, energy = np.full(n, np.nan), np.full(n, np.nan)
    if len(df):
        by = df.groupby("caption")
        pointing[by["hit"].mean().index.to_numpy()] = by["hit"].mean().to_numpy(float)
        energy[by["energy"].mean().index.to_numpy()] = by["energy"].mean().to_numpy(float)
    return {"pointing": pointing, "energy": energy}


def grounding_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Pointing accuracy and mean energy by word type, plus an ``all`` row (from ``grounding_table``)."""
    parts = [df.assign(type="all"), df]
    both = pd.concat(parts, ignore_index=True)
    out = both.groupby("type").agg(words=("hit", "size"), pointing=("hit", "mean"), energy=("energy", "mean"))
    return out.reset_index()


@dataclass
class Curve:
    """A deletion or insertion curve of one pair; S steps, ranks 0-based."""

    kind: str
    fraction: np.ndarray   # [S] fraction of valid regions removed (deletion) / inserted (insertion)
    scores: np.ndarray     # [S] pair score after the step
    ranks: np.ndarray      # [S] true image's rank for the caption query after the step
    removed: list[int]     # region order used (most important first)
    area: float            # trapezoid area under scores over fraction

    @property
    def mean_score(self) -> float:
        """The normalised area: ``area`` over the range of fractions (the curve's mean score); the single
        score when the curve has one step."""
        width = float(self.fraction[-1] - self.fraction[0]) if len(self.fraction) > 1 else 0.0
        return self.area / width if width > 0 else float(self.scores[0])

    def to_dict(self) -> dict:
        return {"kind": self.kind, "fraction": self.fraction.tolist(), "scores": self.scores.tolist(),
                "ranks": self.ranks.tolist(), "order": list(self.removed), "area": self.area,
                "mean_score": self.mean_score}


def attention_order(attn, region_mask) -> list[int]:
    """The valid regions by decreasing attention mass ``attn [W,R]`` summed over the words (ties: lower
    index first) — the order deletion/insertion use, here for any map (e.g. a counterfactual one)."""
    a = np.asarray(attn, dtype=np.float64)
    a = a.reshape(-1, a.shape[-1])  # [W,R]
    if not np.isfinite(a).all():
        raise DataError("the attention map holds NaN or infinite values — no region order can be taken from it")
    valid = np.flatnonzero(np.asarray(region_mask, bool).reshape(-1))
    if a.shape[1] != len(np.asarray(region_mask).reshape(-1)):
        raise DataError(f"attention over {a.shape[1]} regions for a mask of {np.size(region_mask)} — "
                        "pass one mask value per region")
    mass = a.sum(0)[valid]  # [R valid]
    return [int(r) for r in valid[np.argsort(-mass, kind="stable")]]


def random_order(region_mask, seed: int = 0) -> list[int]:
    """The valid regions in a random order drawn from ``seed`` (the same seed, the same order)."""
    valid = np.flatnonzero(np.asarray(region_mask, bool).reshape(-1))
    return [int(r) for r in np.random.default_rng(int(seed)).permutation(valid)]


def _importance(matcher, img, txt, ids) -> np.ndarray:
    """Region importance ``[R]``: t2i attention mass over the words, or i2t region relevance."""
    with torch.no_grad():
        sc = matcher.pair_scores(img, txt, None, pair_ids=ids, return_maps=True)
    imp = sc.t2i[0].sum(0) if sc.t2i is not None else sc.region_relevance[0]
    out = imp.float().cpu().numpy()  # [R]
    _check_pairs_finite(out[None], "region importance", ids)
    return out


def _check_order(order, valid: np.ndarray, image: int) -> list[int]:
    """A region order: distinct valid regions of the image, at least one (ConfigError otherwise)."""
    from causmatch.errors import ConfigError
    from causmatch.interventions import check_targets

    out = list(check_targets("region order", order))
    bad = sorted(set(out) - {int(r) for r in valid})
    if bad:
        raise ConfigError(f"region order lists {', '.join(map(str, bad))}, not valid regions of image {image} — "
                          f"valid regions: {', '.join(str(int(r)) for r in valid)}")
    return out


def region_curve(session, image: int, caption: int, kind: str = "deletion", order=None) -> Curve:
    """Deletion or insertion curve of dataset pair (image, caption) (module docstring)."""
    if kind not in ("deletion", "insertion"):
        raise DataError(f"unknown curve '{kind}' — use 'deletion' or 'insertion'")
    i, c = session.check_image(image), session.check_caption(caption)
    img_all, txt_all = session.gallery()
    img, txt = img_all[[i]], txt_all[[c]].trimmed()
    ids = (torch.tensor([i]), torch.tensor([c]))
    valid = np.flatnonzero(img.mask[0].numpy())
    if order is None:
        imp = _importance(session.matcher, img, txt, ids)
        order = valid[np.argsort(-imp[valid], kind="stable")]
    order = _check_order(order, valid, i)
    n = len(order)
    from causmatch.runtime import check_memory

    r, d, w = img.mask.shape[1], img.regions.shape[-1], txt.mask.shape[1]
    check_memory(4 * n * (r * (d + r) + w * (d + w) + 8 * w * r), f"a {kind} curve over {n} regions",
                 "use a dataset with fewer regions per image, or a machine with more memory")
    steps = range(0, n) if kind == "deletion" else range(1, n + 1)
    masks = []
    for k in steps:
        keep = np.zeros(img.mask.shape[1], bool)
        keep[order[k:] if kind == "deletion" else order[:k]] = True
        masks.append(keep)
    reps = img[[0] * len(masks)]
    reps = remove_regions(reps, np.stack(masks))  # [S] copies, each with its own region subset
    with torch.no_grad():
        sc = session.matcher.pair_scores(reps, txt[[0] * len(masks)], None,
                                         pair_ids=(torch.full((len(masks),), i), torch.full((len(masks),), c)))
    scores = sc.score.float().cpu().numpy().astype(np.float64)  # [S]
    _check_pairs_finite(scores[:, None], "deletion/insertion score", ids)
    column = session.similarity()[:, c].astype(np.float64)  # [I] the other images keep their scores
    ranks = []
    for s in scores:
        col = column.copy()
        col[i] = s
        ranks.append(best_rank(col, [i])[0])
    frac = np.array([k / n for k in steps], dtype=np.float64)
    area = float(np.trapezoid(scores, frac)) if len(frac) > 1 else 0.0
    return Curve(kind, frac, scores, np.array(ranks), order, area)


def pair_curves(session, image: int, caption: int, baselines=None) -> dict[str, dict[str, Curve]]:
    """Deletion and insertion curves of one dataset pair: in the order of the model's attention
    (``"attention"``) and in each baseline order ``{name: order}`` (e.g. :func:`attention_order` of a
    counterfactual map, :func:`random_order`), on the same pair: ``{kind: {name: Curve}}``."""
    out = {}
    for kind in ("deletion", "insertion"):
        out[kind] = {"attention": region_curve(session, image, caption, kind)}
        for name, order in (baselines or {}).items():
            out[kind][name] = region_curve(session, image, caption, kind, order=list(order))
    return out
