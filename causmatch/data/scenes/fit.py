"""Which captions are true of which images ("fit"), from the scenes generator's scene descriptions.

A caption *fits* an image when every object it names exists there with the named shape, colour and
size (a word the caption leaves out — "a big star" names no colour — matches anything), the named
objects are distinct objects, each stated relation holds between them (computed from the object centres
with the generator's own rule, :func:`causmatch.data.scenes.captions.relation_holds`), and a stated count
equals the number of objects in the image. Every object of the scene counts, the unmentioned distractor
included (it is a real small white ring: "a ring" is true of an image that holds it; the generator's
counts include it too). So a caption always fits the image it was written for, and often others.

A caption's structure comes from the split's grounding (which words name which object: its colour,
shape and size words), the words between its noun phrases (the relation, or "and") and its number word.
Captions whose words do not parse into that structure are refused with a DataError, never guessed.

Public API::

    parse_caption(entry) -> CaptionSpec                  # one grounding entry (tokens + grounded words)
    read_scenes(path, n_images) -> list[list[dict]]      # the objects of the first n images
    fit_matrix(scenes, specs) -> np.ndarray [I, C] bool  # fits[i, c]: caption c is true of image i
    split_fits(split) -> np.ndarray [I, C] bool | None   # a loaded split (None: no scene descriptions)
    fit_unavailable(split) -> str | None                 # why split_fits is None, in one line
    fit_distribution(fits) -> dict                       # images per caption, captions per image
    why_not_fit(objects, spec) -> str | None             # the first MISFIT reason, None when the caption fits
    best_wrong_fits(fits, direction, query, best_wrong) -> np.ndarray [N] bool
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from causmatch.data.scenes.captions import (
    COLOUR_WORDS,
    NUMBERS,
    RELATION_WORDS,
    SHAPE_WORDS,
    SIZE_WORDS,
    TEMPLATE_WORDS,
    relation_holds,
)
from causmatch.data.scenes.spec import COLOURS, SHAPES, SIZES
from causmatch.data.vocab import tokenize
from causmatch.errors import ConfigError, DataError

ATTRIBUTES = ("shape", "colour", "size")
VALUES = {"shape": SHAPES, "colour": tuple(COLOURS), "size": tuple(SIZES)}
# word -> canonical value, per attribute type (the generator's synonyms)
_CANON = {
    "shape": {w: s for s in SHAPES for w in (s, *SHAPE_WORDS.get(s, ()))},
    "colour": {w: c for c in COLOURS for w in (c, *COLOUR_WORDS.get(c, ()))},
    "size": {w: z for z in SIZES for w in (z, *SIZE_WORDS.get(z, ()))},
}
_RELATION_OF = {words: kind for kind, options in RELATION_WORDS.items() for words in options}
RELATIONS = tuple(RELATION_WORDS)
_ARTICLES = ("a", "an", "the")
_NUMBER_OF = {w: n for n, w in enumerate(NUMBERS)}
_CHUNK_CELLS = 1 << 22  # booleans per chunk of the (captions x images x object tuples) test


@dataclass(frozen=True)
class CaptionSpec:
    """What a caption says. ``mentions``: per named object, ``{attribute: value}`` for the attributes it
    names; ``relations[j]``: the relation of mention ``j`` to mention ``j + 1`` (None: joined by "and");
    ``count``: the stated number of objects (None: none stated)."""

    mentions: tuple[dict, ...]
    relations: tuple[str | None, ...]
    count: int | None = None

    def __post_init__(self):
        if not self.mentions:
            raise DataError("a caption spec needs at least one named object")
        if len(self.relations) != len(self.mentions) - 1:
            raise DataError(f"a caption spec with {len(self.mentions)} objects needs {len(self.mentions) - 1} "
                            f"relation(s), got {len(self.relations)}")
        for m in self.mentions:
            if not m or any(a not in VALUES or v not in VALUES[a] for a, v in m.items()):
                raise DataError(f"named object {m!r} is not a set of shape/colour/size values of the scenes "
                                "vocabulary")
        if any(r is not None and r not in RELATIONS for r in self.relations):
            raise DataError(f"relations {self.relations!r} include one that is not {', '.join(RELATIONS)} or None")
        if self.count is not None and (isinstance(self.count, bool) or not isinstance(self.count, int)
                                       or self.count < 0):
            raise DataError(f"count {self.count!r} is not a whole number >= 0")


def _refuse(where: str, what: str) -> DataError:
    return DataError(f"{where}: {what} — the fit rule reads only the scenes generator's caption templates; "
                     "regenerate the split with `causmatch scenes`")


def _strip(gap: list[str]) -> list[str]:
    """The words between two noun phrases, without the second phrase's article and a leading "is"."""
    if gap and gap[-1] in _ARTICLES:
        gap = gap[:-1]
    if gap and gap[0] == "is":
        gap = gap[1:]
    return gap


def parse_caption(entry: dict, where: str = "caption") -> CaptionSpec:
    """The :class:`CaptionSpec` of one grounding entry (``tokens`` and ``words``: index, word, type, object).

    Each named object's attribute words must be one contiguous run; the words between two runs must be a
    relation phrase or "and" (after the second phrase's article and an optional "is"); the other words
    must be template words, with at most one number word (the count). Anything else: DataError.
    """
    try:
        tokens = [str(t) for t in entry["tokens"]]
        words = [(int(w["index"]), str(w["word"]), str(w["type"]), int(w["object"])) for w in entry["words"]]
    except (KeyError, TypeError, ValueError):
        raise _refuse(where, "its grounding entry lacks tokens or words (index, word, type, object)") from None
    attrs: dict[int, tuple[str, str, int]] = {}
    for idx, word, kind, obj in words:
        if not 0 <= idx < len(tokens) or tokens[idx] != word or idx in attrs:
            raise _refuse(where, f"grounded word {word!r} does not match token {idx} of its caption")
        if word not in _CANON.get(kind, {}):
            raise _refuse(where, f"{word!r} is not a {kind} word of the scenes vocabulary")
        attrs[idx] = (kind, _CANON[kind][word], obj)
    if not attrs:
        raise _refuse(where, "it names no object (no grounded colour, shape or size word)")
    runs: list[tuple[int, int, int]] = []  # (object, first token, last token)
    for idx in sorted(attrs):
        obj = attrs[idx][2]
        if runs and runs[-1][0] == obj and runs[-1][2] == idx - 1:
            runs[-1] = (obj, runs[-1][1], idx)
        else:
            runs.append((obj, idx, idx))
    objects = [r[0] for r in runs]
    if len(set(objects)) != len(objects):
        raise _refuse(where, "an object's words are split by other words")
    mentions = []
    for _, lo, hi in runs:
        m: dict[str, str] = {}
        for idx in range(lo, hi + 1):
            kind, value, _ = attrs[idx]
            if kind in m:
                raise _refuse(where, f"one object is given two {kind} words")
            m[kind] = value
        mentions.append(m)
    relations: list[str | None] = []
    for (_, _, end), (_, start, _) in zip(runs, runs[1:]):
        gap = _strip(tokens[end + 1:start])
        if gap == ["and"]:
            relations.append(None)
        elif tuple(gap) in _RELATION_OF:
            relations.append(_RELATION_OF[tuple(gap)])
        else:
            raise _refuse(where, f"the words {' '.join(tokens[end + 1:start])!r} between two objects are neither "
                                 "a relation nor 'and'")
    outside = tokens[:runs[0][1]] + tokens[runs[-1][2] + 1:]
    numbers = [w for w in outside if w in _NUMBER_OF]
    unknown = [w for w in outside if w not in _NUMBER_OF and w not in TEMPLATE_WORDS]
    if unknown:
        raise _refuse(where, f"the word {unknown[0]!r} is not part of a scenes caption template")
    if len(numbers) > 1:
        raise _refuse(where, f"it states {len(numbers)} counts ({', '.join(numbers)})")
    return CaptionSpec(tuple(mentions), tuple(relations), _NUMBER_OF[numbers[0]] if numbers else None)


# ------------------------------------------------------------------------------------- scene files

def read_scenes(path, n_images: int) -> list[list[dict]]:
    """The objects (shape, colour, size, x, y, radius, ...) of the first ``n_images`` images of a
    ``{split}_scenes.jsonl`` file; DataError when the file is short, out of order or malformed."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read {path} ({err}) — regenerate the split with `causmatch scenes`") from None
    if len(lines) < n_images:
        raise DataError(f"{path} describes {len(lines)} images but the split has {n_images} — the scene file "
                        "does not belong to this split; regenerate it with `causmatch scenes`")
    out = []
    for i, line in enumerate(lines[:n_images]):
        try:
            entry = json.loads(line)
            objects = entry["objects"]
            ok = entry["image"] == i and isinstance(objects, list) and all(
                o[a] in VALUES[a] for o in objects for a in ATTRIBUTES) and all(
                np.isfinite(float(o[k])) for o in objects for k in ("x", "y", "radius"))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise DataError(f"{path} line {i + 1} is not the scene of image {i} (objects with a known shape, colour, "
                            "size and finite x, y, radius) — regenerate the split with `causmatch scenes`")
        out.append(objects)
    return out


# ------------------------------------------------------------------------------------- the fit rule

def _scene_arrays(scenes: list[list[dict]]) -> dict[str, np.ndarray]:
    """Padded per-object arrays [I, O] (attribute codes -1 and ``valid`` False past each image's objects)."""
    n_img = len(scenes)
    n_obj = max([len(s) for s in scenes] + [1])
    a = {k: np.full((n_img, n_obj), -1, np.int64) for k in ATTRIBUTES}
    a.update({k: np.zeros((n_img, n_obj), np.float64) for k in ("x", "y", "radius")})
    a["valid"] = np.zeros((n_img, n_obj), bool)
    for i, objects in enumerate(scenes):
        for o, obj in enumerate(objects):
            try:
                for k in ATTRIBUTES:
                    a[k][i, o] = VALUES[k].index(obj[k])
                for k in ("x", "y", "radius"):
                    a[k][i, o] = float(obj[k])
                ok = bool(np.isfinite([a[k][i, o] for k in ("x", "y", "radius")]).all())
            except (KeyError, TypeError, ValueError):
                ok = False
            if not ok:
                raise DataError(f"object {o} of image {i} is not a scenes object (a known shape, colour and size, "
                                "finite x, y and radius)")
            a["valid"][i, o] = True
    a["n_objects"] = a["valid"].sum(axis=1)
    return a


def _relation_masks(a: dict) -> np.ndarray:
    """[len(RELATIONS) + 1, I, O, O]: relation r holds for (object p, object q) of image i; last: always."""
    x, y, r = a["x"], a["y"], a["radius"]
    dx = x[:, None, :] - x[:, :, None]  # [I, p, q] = x_q - x_p
    dy = y[:, None, :] - y[:, :, None]
    both = a["valid"][:, :, None] & a["valid"][:, None, :]
    masks = [relation_holds(kind, dx, dy, r[:, :, None], r[:, None, :]) & both for kind in RELATIONS]
    return np.stack(masks + [both])


def fit_matrix(scenes: list[list[dict]], specs: list[CaptionSpec]) -> np.ndarray:
    """``fits [I, C]`` bool: caption ``c`` (``specs[c]``) is true of image ``i`` (``scenes[i]``, its objects).

    Vectorised over images and captions: for captions naming n objects, every n-tuple of distinct objects
    of every image is tested at once (in chunks of captions that bound the memory).
    """
    a = _scene_arrays(scenes)
    n_img, n_obj = a["valid"].shape
    fits = np.zeros((n_img, len(specs)), bool)
    if not specs or not n_img:
        return fits
    keys = sorted({tuple(m.get(k) for k in ATTRIBUTES) for s in specs for m in s.mentions},
                  key=lambda t: tuple("" if v is None else v for v in t))
    key_index = {k: j for j, k in enumerate(keys)}
    table = np.empty((len(keys), n_img, n_obj), bool)  # [U, I, O]: object o of image i matches named object u
    for j, key in enumerate(keys):
        m = a["valid"].copy()
        for attr, value in zip(ATTRIBUTES, key):
            if value is not None:
                m &= a[attr] == VALUES[attr].index(value)
        table[j] = m
    rel = _relation_masks(a)                          # [K + 1, I, O, O]
    count = np.array([-1 if s.count is None else s.count for s in specs])  # [C]
    # Captions that name the same objects with the same relations are one test (the count is applied after);
    # tests are grouped by (number of objects, relations), whose distinct-and-related mask is built once.
    groups: dict[tuple, dict[tuple, list[int]]] = {}
    for c, spec in enumerate(specs):
        named = tuple(key_index[tuple(m.get(k) for k in ATTRIBUTES)] for m in spec.mentions)
        groups.setdefault((len(named), spec.relations), {}).setdefault(named, []).append(c)
    ar = np.arange(n_obj)
    for (n, relations), tests in groups.items():
        block = np.ones((n_img,) + (n_obj,) * n, bool)  # [I, O^n]: distinct objects, relations that hold
        for p in range(n):
            for q in range(p + 1, n):
                shape_p, shape_q = [1] * (n + 1), [1] * (n + 1)
                shape_p[1 + p], shape_q[1 + q] = n_obj, n_obj
                block &= ar.reshape(shape_p) != ar.reshape(shape_q)
        for j, r in enumerate(relations):
            if r is not None:
                shape = [n_img] + [1] * n
                shape[1 + j], shape[2 + j] = n_obj, n_obj
                block &= rel[RELATIONS.index(r)].reshape(shape)
        named = np.array(list(tests), dtype=np.int64).reshape(len(tests), n)  # [G, n]
        cols = list(tests.values())
        step = max(1, _CHUNK_CELLS // max(1, n_img * n_obj ** n))
        for lo in range(0, len(named), step):
            hi = min(lo + step, len(named))
            shape = [hi - lo, n_img] + [1] * n
            shape[2] = n_obj
            joint = block[None] & table[named[lo:hi, 0]].reshape(shape)          # [G, I, O^n]
            for j in range(1, n):
                shape = [hi - lo, n_img] + [1] * n
                shape[2 + j] = n_obj
                joint &= table[named[lo:hi, j]].reshape(shape)
            found = joint.reshape(hi - lo, n_img, -1).any(axis=2)              # [G, I]
            for g in range(hi - lo):
                fits[:, cols[lo + g]] = found[g][:, None]
    stated = count >= 0
    fits[:, stated] &= a["n_objects"][:, None] == count[None, stated]
    return fits


MISFIT = {  # why a caption is not true of an image, in the order they are checked
    "missing": "names an object the image lacks",
    "distinct": "needs more matching objects than the image has",
    "relation": "states a relation that does not hold",
    "count": "states the wrong number of objects",
}


def why_not_fit(objects: list[dict], spec: CaptionSpec) -> str | None:
    """The first :data:`MISFIT` key that makes ``spec`` untrue of the scene ``objects``; None when it fits."""
    none = (None,) * len(spec.relations)
    checks = [("missing", [CaptionSpec((m,), ()) for m in spec.mentions]),
              ("distinct", [CaptionSpec(spec.mentions, none)]),
              ("relation", [CaptionSpec(spec.mentions, spec.relations)]),
              ("count", [spec])]
    for reason, specs in checks:
        if not fit_matrix([objects], specs).all():
            return reason
    return None


# ------------------------------------------------------------------------------------- a loaded split

def _scenes_path(split) -> Path:
    return Path(split.folder) / f"{split.split}_scenes.jsonl"


def fit_unavailable(split) -> str | None:
    """None when :func:`split_fits` can compute the fit matrix of ``split``; else why not, in one line."""
    if not _scenes_path(split).is_file():
        return (f"this split has no {split.split}_scenes.jsonl (scene descriptions), so which captions fit which "
                "images is unknown; only the generated scenes data has them")
    if split.grounding is None:
        return (f"this split has no {split.split}_grounding.jsonl, so its captions' named objects are unknown; "
                "regenerate it with `causmatch scenes`")
    return None


def split_fits(split) -> np.ndarray | None:
    """``fits [I, C]`` (read-only bool) of a loaded split — a subset split (``--limit-images``) included —
    or None where :func:`fit_unavailable` says why. DataError when the scene file, the grounding and the
    captions disagree: a caption's tokens that are not its text, a caption that is not true of its own
    image (the scene file belongs to other captions) — no fit matrix is computed from misaligned files."""
    if fit_unavailable(split) is not None:
        return None
    k = split.caps_per_image
    if len(split.grounding) != split.n_captions or split.n_captions != split.n_images * k:
        raise DataError(f"split '{split.split}' has {len(split.grounding)} grounding entries for "
                        f"{split.n_captions} captions of {split.n_images} images — regenerate it")
    scenes = read_scenes(_scenes_path(split), split.n_images)
    specs = []
    for c, (entry, text) in enumerate(zip(split.grounding, split.captions)):
        where = f"{split.split}_grounding.jsonl caption {c}"
        if entry.get("caption") != c or entry.get("image", c // k) != c // k or entry.get("tokens") != tokenize(text):
            raise DataError(f"{where} is not the grounding of caption {c} of image {c // k} ({text!r}) — the "
                            "grounding and captions disagree; regenerate the split with `causmatch scenes`")
        specs.append(parse_caption(entry, where))
    fits = fit_matrix(scenes, specs)
    own = fits[np.arange(split.n_captions) // k, np.arange(split.n_captions)]
    if not own.all():
        c = int(np.argmin(own))
        raise DataError(f"caption {c} ({split.captions[c]!r}) is not true of its own image {c // k} by "
                        f"{_scenes_path(split).name} — the scene file and the captions disagree; regenerate the "
                        "split with `causmatch scenes`")
    fits.flags.writeable = False
    return fits


# ------------------------------------------------------------------------------------- summaries

def _check_fits(fits) -> np.ndarray:
    fits = np.asarray(fits)
    if fits.ndim != 2 or fits.dtype != bool or 0 in fits.shape:
        raise DataError(f"a fit matrix must be a non-empty [images, captions] bool array, got {fits.dtype} "
                        f"{fits.shape}")
    return fits


def _spread(counts: np.ndarray) -> dict:
    values, n = np.unique(counts, return_counts=True)
    return {"min": int(counts.min()), "median": float(np.median(counts)), "mean": float(counts.mean()),
            "max": int(counts.max()), "histogram": [[int(v), int(c)] for v, c in zip(values, n)]}


def fit_distribution(fits) -> dict:
    """How ambiguous the captions are: ``fits_per_caption`` (images each caption fits) and
    ``fitting_captions_per_image`` (captions that fit each image), each ``{min, median, mean, max,
    histogram: [[value, how many], ...]}``; ``fits_per_caption`` also has ``only_own``, the share of
    captions that fit one image only (their own)."""
    fits = _check_fits(fits)
    per_caption = fits.sum(axis=0)
    per_image = fits.sum(axis=1)
    out = {"fits_per_caption": _spread(per_caption), "fitting_captions_per_image": _spread(per_image)}
    out["fits_per_caption"]["only_own"] = float(np.mean(per_caption == 1))
    return out


def best_wrong_fits(fits, direction, query, best_wrong) -> np.ndarray:
    """Per failure-table row: does the best wrong item also fit the query? ``[N]`` bool.

    ``direction`` "t2i" (``query`` captions, ``best_wrong`` images: ``fits[best_wrong, query]``) or "i2t"
    (``query`` images, ``best_wrong`` captions: ``fits[query, best_wrong]``); one string or one per row.
    """
    fits = _check_fits(fits)
    query = np.asarray(query)
    wrong = np.asarray(best_wrong)
    direction = np.asarray(direction, dtype=object)
    if query.shape != wrong.shape or query.ndim != 1 or direction.ndim > 1 or (
            direction.ndim == 1 and direction.shape != query.shape):
        raise DataError(f"query {query.shape}, best_wrong {wrong.shape} and direction {direction.shape} must be "
                        "one value per row")
    if query.size and (query.dtype.kind not in "iu" or wrong.dtype.kind not in "iu"):
        raise DataError("query and best_wrong must be item indices (whole numbers)")
    bad = [d for d in np.unique(direction.astype(str)) if d not in ("t2i", "i2t")]
    if bad:
        raise ConfigError(f"direction '{bad[0]}' is not valid — use 't2i' (caption queries) or 'i2t'")
    t2i = np.broadcast_to(direction == "t2i", query.shape)
    image = np.where(t2i, wrong, query).astype(np.int64)
    caption = np.where(t2i, query, wrong).astype(np.int64)
    n_img, n_cap = fits.shape
    out_of_range = (image < 0) | (image >= n_img) | (caption < 0) | (caption >= n_cap)
    if out_of_range.any():
        r = int(np.argmax(out_of_range))
        raise DataError(f"row {r} names image {image[r]} / caption {caption[r]}, outside the fit matrix's "
                        f"{n_img} images × {n_cap} captions — the table and the fit matrix come from different "
                        "splits")
    return fits[image, caption].astype(bool)
