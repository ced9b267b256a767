"""Five captions per scene from varied templates, with the word -> object alignment they imply.

Captions are built as token lists (so each attribute word's position is known), then joined into
text; ``tokenize(text)`` gives back exactly these tokens, which the generator checks.
"""
from __future__ import annotations

import numpy as np

from causmatch.data.scenes.spec import SceneObject
from causmatch.data.vocab import tokenize

CAPS_PER_IMAGE = 5
SIZE_WORDS = {"small": ("small", "small", "tiny", "little"), "large": ("large", "large", "big")}
COLOUR_WORDS = {"purple": ("purple", "purple", "violet")}
SHAPE_WORDS = {"circle": ("circle", "circle", "disk"), "diamond": ("diamond", "diamond", "rhombus"),
               "square": ("square", "square", "box")}
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight")

Token = tuple[str, str | None, int | None]  # (word, type or None, object index or None)


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def _phrase(rng: np.random.Generator, objects: list[SceneObject], k: int, article: bool = True) -> list[Token]:
    """Noun phrase for object ``k``: mostly colour + shape, sometimes size, rarely the shape alone."""
    o = objects[k]
    size = (_pick(rng, SIZE_WORDS[o.size]), "size", k)
    colour = (_pick(rng, COLOUR_WORDS.get(o.colour, (o.colour,))), "colour", k)
    shape = (_pick(rng, SHAPE_WORDS.get(o.shape, (o.shape,))), "shape", k)
    u = rng.random()
    words = [colour, shape] if u < 0.5 else [size, colour, shape] if u < 0.85 else \
        [size, shape] if u < 0.95 else [shape]
    if not article:
        return words
    det = "the" if rng.random() < 0.15 else ("an" if words[0][0][0] in "aeiou" else "a")
    return [(det, None, None)] + words


NEAR_MARGIN = 25.0   # px: "next to" needs centres closer than the two radii plus this
NEAR_SHARE = 0.35    # how often a near pair is described as near rather than by its direction
# The words of each relation; a caption's relation phrase is one of these.
RELATION_WORDS = {
    "near": (("next", "to"), ("beside",), ("near",)),
    **{side: ((side, "of"), ("to", "the", side, "of"), ("on", "the", side, "of")) for side in ("left", "right")},
    "above": (("above",),),
    "below": (("below",), ("under",), ("beneath",)),
}
DIRECTIONS = ("left", "right", "above", "below")  # exactly one of these holds for any two centres
# Every word the templates put around the noun phrases (besides relation words and NUMBERS).
TEMPLATE_WORDS = frozenset({"a", "an", "the", "there", "is", "in", "picture", "on", "textured", "background",
                            "image", "with", "and", "shapes", "objects", "including", "of", "among", "them",
                            ",", "."})


def relation_holds(kind: str, dx, dy, ra, rb):
    """Whether relation ``kind`` describes ``a`` relative to ``b``, with ``dx, dy = b - a`` (centres, image y
    downwards) and radii ``ra, rb``; numpy arrays broadcast. The one rule both the captions and
    :mod:`causmatch.data.scenes.fit` use."""
    dx, dy = np.asarray(dx), np.asarray(dy)
    horizontal = np.abs(dx) >= np.abs(dy)
    if kind == "near":
        return np.hypot(dx, dy) < np.asarray(ra) + np.asarray(rb) + NEAR_MARGIN
    if kind == "left":
        return horizontal & (dx > 0)
    if kind == "right":
        return horizontal & ~(dx > 0)
    if kind == "above":
        return ~horizontal & (dy > 0)
    if kind == "below":
        return ~horizontal & ~(dy > 0)
    raise ValueError(f"unknown relation {kind!r}")  # a programming error: kinds come from RELATION_WORDS


def relation(a: SceneObject, b: SceneObject, rng: np.random.Generator) -> list[str]:
    """Words saying where ``a`` is relative to ``b`` (image y grows downwards)."""
    dx, dy = b.x - a.x, b.y - a.y
    if relation_holds("near", dx, dy, a.radius, b.radius) and rng.random() < NEAR_SHARE:
        return list(_pick(rng, RELATION_WORDS["near"]))
    kind = next(k for k in DIRECTIONS if relation_holds(k, dx, dy, a.radius, b.radius))
    options = RELATION_WORDS[kind]
    return list(options[0]) if len(options) == 1 else list(_pick(rng, options))


def _w(*words: str) -> list[Token]:
    return [(w, None, None) for w in words]


def _single(rng, objects, ks) -> list[Token]:
    p = _phrase(rng, objects, ks[0])
    t = int(rng.integers(4))
    return [p, _w("there", "is") + p + _w("in", "the", "picture"), p + _w("on", "a", "textured", "background"),
            _w("an", "image", "with") + p][t]


def _pair(rng, objects, ks) -> list[Token]:
    a, b = _phrase(rng, objects, ks[0]), _phrase(rng, objects, ks[1])
    rel = _w(*relation(objects[ks[0]], objects[ks[1]], rng))
    t = int(rng.integers(4))
    return [a + rel + b, a + _w("is") + rel + b, _w("there", "is") + a + rel + b, a + _w("and") + b][t]


def _triple(rng, objects, ks) -> list[Token]:
    c = _phrase(rng, objects, ks[2])
    return _pair(rng, objects, ks[:2]) + _w("and") + c


def _count(rng, objects, ks) -> list[Token]:
    n = _w(NUMBERS[len(objects)])
    a = _phrase(rng, objects, ks[0])
    if rng.random() < 0.5:
        return n + _w(_pick(rng, ("shapes", "objects")), ",", "including") + a
    return _w("a", "picture", "of") + n + _w("objects", "with") + a + _w("among", "them")


def _choose_mentioned(rng: np.random.Generator, objects: list[SceneObject]) -> list[int]:
    """Objects the captions may mention: never the distractor, and often not every object."""
    regular = [k for k, o in enumerate(objects) if not o.distractor]
    if len(regular) >= 3 and rng.random() < 0.8:
        n_hidden = int(rng.integers(1, len(regular) - 1))
        hidden = set(rng.choice(regular, size=n_hidden, replace=False).tolist())
        regular = [k for k in regular if k not in hidden]
    return regular


def make_captions(rng: np.random.Generator, objects: list[SceneObject]) -> tuple[list[str], list[list[Token]]]:
    """``CAPS_PER_IMAGE`` captions and their token lists (each token: word, type, object)."""
    mention = _choose_mentioned(rng, objects)
    texts, token_lists = [], []
    for _ in range(CAPS_PER_IMAGE):
        kinds = ["single", "count"] + (["pair", "pair", "pair"] if len(mention) >= 2 else []) + \
                (["triple"] if len(mention) >= 3 else [])
        kind = kinds[int(rng.integers(len(kinds)))]
        n = {"single": 1, "count": 1, "pair": 2, "triple": 3}[kind]
        ks = [int(k) for k in rng.choice(mention, size=n, replace=False)]
        tokens = {"single": _single, "count": _count, "pair": _pair, "triple": _triple}[kind](rng, objects, ks)
        if rng.random() < 0.3:
            tokens = tokens + _w(".")
        text = " ".join(w for w, _, _ in tokens).replace(" ,", ",").replace(" .", ".")
        if rng.random() < 0.5:
            text = text[0].upper() + text[1:]
        if tokenize(text) != [w for w, _, _ in tokens]:  # the grounding indexes rely on this
            raise AssertionError(f"caption tokens drifted: {text!r}")
        texts.append(text)
        token_lists.append(tokens)
    return texts, token_lists
