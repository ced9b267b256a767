"""Rendering a scene to pixels: textured background, objects in drawing order, blur and noise.

Returns the RGB image and a label map (``-1`` background, ``k`` where object ``k`` is visible after
occlusion) — the ground truth that the grounding and the detector recall are checked against.
"""
from __future__ import annotations

import cv2
import numpy as np

from causmatch.data.scenes.spec import COLOURS, IMAGE_SIZE, SceneObject


def _regular(n: int, r: float, phase: float = 0.0) -> np.ndarray:
    t = phase + np.arange(n) * 2 * np.pi / n
    return np.stack([r * np.sin(t), -r * np.cos(t)], axis=1)  # [n, 2], first vertex up


def _star(r: float) -> np.ndarray:
    outer, inner = _regular(5, r), _regular(5, 0.45 * r, np.pi / 5)
    return np.stack([outer, inner], axis=1).reshape(10, 2)  # alternate outer/inner points


def _cross(r: float) -> np.ndarray:
    a, b = 0.33 * r, 0.95 * r
    return np.array([[-a, -b], [a, -b], [a, -a], [b, -a], [b, a], [a, a], [a, b], [-a, b],
                     [-a, a], [-b, a], [-b, -a], [-a, -a]])


_OUTLINES = {
    "square": lambda r: _regular(4, r, np.pi / 4),
    "triangle": lambda r: _regular(3, r) + [0.0, 0.2 * r],  # centre the triangle's bulk
    "star": _star,
    "hexagon": lambda r: _regular(6, r, np.pi / 6),
    "cross": _cross,
    "diamond": lambda r: _regular(4, r) * [0.62, 1.0],       # taller than wide: not a rotated square
}


def _draw(canvas: np.ndarray, obj: SceneObject, value, line_type: int) -> int | None:
    """Fill ``obj`` into ``canvas`` (an image or the label map); a ring returns its radius (1/16 px)."""
    centre = (int(round(obj.x * 16)), int(round(obj.y * 16)))  # 4 fractional bits: sub-pixel placement
    if obj.shape in ("circle", "ring"):
        radius = int(round(obj.radius * 0.9 * 16))
        cv2.circle(canvas, centre, radius, value, -1, line_type, shift=4)
        return radius if obj.shape == "ring" else None  # the caller cuts the ring's hole
    pts = _OUTLINES[obj.shape](obj.radius)
    a = np.deg2rad(obj.angle)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    pts = pts @ rot.T + [obj.x, obj.y]  # [n, 2] pixel coordinates
    cv2.fillPoly(canvas, [np.round(pts * 16).astype(np.int32)], value, line_type, shift=4)
    return None


_AXIS = np.arange(IMAGE_SIZE, dtype=np.float32)


def background(rng: np.random.Generator) -> np.ndarray:
    """Desaturated texture: low-frequency blotches, faint stripes and grain. uint8 [H, W, 3] RGB."""
    s = IMAGE_SIZE
    base = rng.uniform(60, 130)
    tint = rng.uniform(-6, 6, size=3)  # keep chroma low: colour means 'object' to the detector
    blotch = cv2.resize(rng.normal(0, 14, size=(6, 6)).astype(np.float32), (s, s),
                        interpolation=cv2.INTER_CUBIC)                       # [H, W]
    theta, period = rng.uniform(0, np.pi), rng.uniform(10, 30)
    k = np.float32(2 * np.pi / period)
    phase = _AXIS[None, :] * np.float32(np.cos(theta) * k) + _AXIS[:, None] * np.float32(np.sin(theta) * k)
    grey = blotch + np.float32(base) + np.float32(rng.uniform(3, 9)) * np.sin(phase)   # [H, W]
    img = grey[..., None] + tint[None, None, :].astype(np.float32)            # [H, W, 3]
    return np.clip(img, 0, 255).astype(np.uint8)


def render(objects: list[SceneObject], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draw the scene. Returns ``(image uint8 [H,W,3] RGB, labels int16 [H,W])``."""
    img = background(rng)
    labels = np.full((IMAGE_SIZE, IMAGE_SIZE), -1, dtype=np.int16)
    for k, obj in enumerate(objects):
        colour = np.clip(np.array(COLOURS[obj.colour], dtype=np.float32) * obj.shade, 0, 255)
        colour = tuple(float(c) for c in colour)
        if obj.shape == "ring":  # the hole must show what lay beneath: keep a copy
            before_img, before_lab = img.copy(), labels.copy()
        hole = _draw(img, obj, colour, cv2.LINE_AA)
        _draw(labels, obj, int(k), cv2.LINE_8)
        if hole is not None:  # ring: cut the hole back to what lay beneath
            hole_mask = np.zeros(labels.shape, np.uint8)
            cv2.circle(hole_mask, (int(round(obj.x * 16)), int(round(obj.y * 16))), int(hole * 0.5), 1, -1,
                       cv2.LINE_8, shift=4)
            img[hole_mask > 0] = before_img[hole_mask > 0]
            labels[hole_mask > 0] = before_lab[hole_mask > 0]
    img = cv2.GaussianBlur(img, (0, 0), 0.7)
    noise = rng.standard_normal(size=img.shape, dtype=np.float32) * np.float32(2.0)  # [H, W, 3] grain
    img = np.clip(img.astype(np.float32) + noise, 0, 255).astype(np.uint8)
    return img, labels
