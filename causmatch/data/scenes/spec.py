"""What a scene holds: the vocabulary of shapes, colours and sizes, and how objects are sampled.

Each image is drawn from its own generator seeded by ``(seed, split, index)``, so the output does
not depend on the number of worker processes. The ``bias`` setting plants a spurious correlation
in train/dev (a small white ring, never mentioned, beside every star) that the test split breaks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GENERATOR_VERSION = "scenes-1"
IMAGE_SIZE = 256
SPLIT_IDS = {"train": 0, "dev": 1, "test": 2}

SHAPES = ("circle", "square", "triangle", "star", "hexagon", "cross", "diamond", "ring")
# Saturated, nameable colours (RGB); the background is kept desaturated so they stand out.
COLOURS = {
    "red": (220, 30, 30), "orange": (245, 130, 20), "yellow": (240, 220, 30), "green": (40, 170, 50),
    "blue": (35, 80, 225), "purple": (135, 50, 190), "pink": (250, 120, 190), "white": (245, 245, 245),
}
SIZES = {"small": (11.0, 15.0), "large": (24.0, 31.0)}  # circumradius range in pixels

BIAS_SHAPE = "star"                                   # the shape the bias is about
DISTRACTOR = ("ring", "white", "small")               # the unmentioned object planted beside it
DISTRACTOR_BASE_RATE = 0.25                            # P(distractor) when the bias is off (and in test)


@dataclass(frozen=True)
class SceneObject:
    """One rendered object; ``x, y`` centre and ``radius`` in pixels, ``angle`` in degrees."""

    shape: str
    colour: str
    size: str
    x: float
    y: float
    radius: float
    angle: float
    shade: float          # brightness factor, so that colour statistics vary a little
    distractor: bool = False


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The image's own random generator: independent of worker count and of other images."""
    return np.random.default_rng([int(seed), SPLIT_IDS[split], int(index)])


def distractor_probability(has_star: bool, split: str, bias: float) -> float:
    """P(distractor in image). Train/dev: ``q + (1-q)P`` with a star, ``q(1-P)`` without; test: ``q``."""
    q = DISTRACTOR_BASE_RATE
    if split == "test":
        return q
    return q + (1.0 - q) * bias if has_star else q * (1.0 - bias)


def _fits(x: float, y: float, r: float, colour: str, placed: list[SceneObject]) -> bool:
    for o in placed:
        d = float(np.hypot(x - o.x, y - o.y))
        # Same-colour objects never touch (they would merge into one blob); others may overlap a
        # little, so that there is some occlusion but each object stays mostly visible.
        limit = r + o.radius + 4 if colour == o.colour else 0.72 * (r + o.radius)
        if d < limit:
            return False
    return True


def _place(rng: np.random.Generator, shape: str, colour: str, size: str, placed: list[SceneObject],
           near: SceneObject | None = None, distractor: bool = False) -> SceneObject | None:
    lo, hi = SIZES[size]
    r = float(rng.uniform(lo, hi))
    for _ in range(40):
        if near is None:
            x, y = rng.uniform(r + 4, IMAGE_SIZE - r - 4, size=2)
        else:  # beside ``near``: just outside it, in a random direction
            theta = rng.uniform(0, 2 * np.pi)
            d = near.radius + r + rng.uniform(3, 12)
            x, y = near.x + d * np.cos(theta), near.y + d * np.sin(theta)
            if not (r + 2 <= x <= IMAGE_SIZE - r - 2 and r + 2 <= y <= IMAGE_SIZE - r - 2):
                continue
        if _fits(float(x), float(y), r, colour, placed):
            return SceneObject(shape, colour, size, float(x), float(y), r, float(rng.uniform(-20, 20)),
                               float(rng.uniform(0.88, 1.04)), distractor)
    return None


def sample_scene(rng: np.random.Generator, split: str, bias: float) -> list[SceneObject]:
    """2–6 regular objects plus, depending on the bias, the distractor; in drawing order."""
    n = int(rng.integers(2, 7))
    placed: list[SceneObject] = []
    for _ in range(n):
        while True:
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
            size = "small" if rng.random() < 0.5 else "large"
            if (shape, colour, size) != DISTRACTOR:  # that combination is reserved for the distractor
                break
        obj = _place(rng, shape, colour, size, placed)
        if obj is not None:
            placed.append(obj)
    stars = [o for o in placed if o.shape == BIAS_SHAPE]
    if rng.random() < distractor_probability(bool(stars), split, bias):
        near = stars[0] if stars and split != "test" else None
        obj = _place(rng, *DISTRACTOR, placed, near=near, distractor=True)
        if obj is None and near is not None:
            obj = _place(rng, *DISTRACTOR, placed, distractor=True)
        if obj is not None:
            placed.append(obj)
    # Draw in a random order so that any object may be the occluder.
    return [placed[i] for i in rng.permutation(len(placed))]
