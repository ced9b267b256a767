"""Regions found from the pixels, and their features.

The detector never sees the generator's objects: it classifies each pixel of a median-filtered
image as one of the palette colours or background (chroma and brightness), cleans each colour
mask with a morphological opening and takes its connected components. Region 0 is the whole
image. Features are computed from the pixels inside each box (see ``FEATURE_BLOCKS``).
"""
from __future__ import annotations

import cv2
import numpy as np

from causmatch.data.scenes.spec import COLOURS, IMAGE_SIZE

MAX_REGIONS = 12               # R: the whole image + up to 11 detections
MIN_AREA = 30                  # smaller components are edge fringes or noise
CHROMA_MIN = 45                # max(R,G,B) - min(R,G,B) above this: a coloured object
WHITE_MIN = 195                # min(R,G,B) above this (and low chroma): a white object
_NAMES = list(COLOURS)
N_CLASSES = len(_NAMES) + 1    # palette colours + background (last)
_CHROMATIC = [i for i, n in enumerate(_NAMES) if n != "white"]
_WHITE = _NAMES.index("white")

# (name, size) of each feature block, in order; F = their sum.
FEATURE_BLOCKS = (
    ("lab_mean_std", 6),       # CIELAB mean and std of the region's pixels (L/100, a/128, b/128)
    ("hue_hist", 12),          # hue histogram (30° bins) weighted by chroma, sums to 1
    ("colour_classes", N_CLASSES),  # fraction of the box's pixels per palette colour / background
    ("hu_moments", 7),         # log-scaled Hu moments of the region mask
    ("shape_scalars", 5),      # solidity, extent, circularity, aspect ratio w/h, hole fraction
    ("vertices", 8),           # one-hot polygon vertex count: 3,4,5,6,7-8,9-10,11-12,13+
    ("mask_8x8", 64),          # the region mask inside its box, resized to 8x8
    ("geometry", 9),           # x1,y1,x2,y2,w,h,centroid x,y (/256), sqrt(area)/256
    ("whole_image", 1),        # 1 for region 0 (the whole image), else 0
)
FEATURE_DIM = sum(n for _, n in FEATURE_BLOCKS)


def _palette_lab() -> np.ndarray:
    rgb = np.array([COLOURS[n] for n in _NAMES], dtype=np.uint8)[None]  # [1, P, 3]
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)[0].astype(np.float32)   # [P, 3]


def _build_lut() -> np.ndarray:
    """Class of every RGB colour quantised to 5 bits per channel: a [32, 32, 32] uint8 table."""
    q = (np.arange(32) * 8 + 4).astype(np.uint8)
    rgb = np.stack(np.meshgrid(q, q, q, indexing="ij"), axis=-1).reshape(1, -1, 3)  # [1, 32768, 3]
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)[0].astype(np.float32)               # [32768, 3]
    pal = _palette_lab()[_CHROMATIC]                                                # [P-1, 3]
    nearest = np.array(_CHROMATIC)[np.argmin(((lab[:, None] - pal[None]) ** 2).sum(-1), axis=1)]
    chroma = rgb[0].max(1).astype(int) - rgb[0].min(1)
    cls = np.where(chroma >= CHROMA_MIN, nearest,
                   np.where(rgb[0].min(1) >= WHITE_MIN, _WHITE, N_CLASSES - 1))
    return cls.reshape(32, 32, 32).astype(np.uint8)


_LUT = _build_lut()
_KERNEL = np.ones((3, 3), np.uint8)


def classify(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median-filter ``img`` (uint8 [H,W,3] RGB) and label each pixel's colour class. -> (smooth, cls [H,W])."""
    smooth = cv2.medianBlur(img, 5)
    q = smooth >> 3                                   # [H, W, 3] 5-bit channels
    return smooth, _LUT[q[..., 0], q[..., 1], q[..., 2]]  # [H, W] class ids


def detect(img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Find object regions. Returns ``boxes float32 [n,4]`` (x1,y1,x2,y2, exclusive ends; region 0 the
    whole image), ``comp int16 [H,W]`` (region id of each pixel, -1 none), the smoothed image and ``cls``."""
    smooth, cls = classify(img)
    found = []  # (area, x, y, w, h, class, component-label image, label)
    for c in range(N_CLASSES - 1):
        mask = cv2.morphologyEx((cls == c).astype(np.uint8), cv2.MORPH_OPEN, _KERNEL)
        if not mask.any():
            continue
        n, lab, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        for j in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[j])
            if area >= MIN_AREA:
                found.append((area, x, y, w, h, c, lab, j))
    found.sort(key=lambda f: (-f[0], f[2], f[1]))      # largest first; position breaks ties
    found = found[: MAX_REGIONS - 1]
    s = IMAGE_SIZE
    boxes = [(0.0, 0.0, float(s), float(s))]
    comp = np.full(cls.shape, -1, dtype=np.int16)
    for r, (_, x, y, w, h, _, lab, j) in enumerate(found, start=1):
        comp[lab == j] = r
        boxes.append((float(x), float(y), float(x + w), float(y + h)))
    return np.array(boxes, dtype=np.float32), comp, smooth, cls


def _hue_hist(hsv: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    bins = (hsv[:, 0].astype(np.int32) * 12 // 180).clip(0, 11)  # OpenCV hue is 0..179
    hist = np.bincount(bins, weights=chroma, minlength=12)[:12]
    return hist / max(hist.sum(), 1e-6)


def _vertex_onehot(n: int) -> np.ndarray:
    edges = [3, 4, 5, 6, 8, 10, 12]                     # upper bounds of the bins
    out = np.zeros(8, np.float32)
    out[next((i for i, e in enumerate(edges) if n <= e), 7)] = 1.0
    return out


def _shape_block(mask: np.ndarray, w: int, h: int) -> np.ndarray:
    """Hu moments (7), shape scalars (5) and vertex one-hot (8) of a box-sized uint8 mask."""
    contours, hier = cv2.findContours(mask, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    outer = max(contours, key=cv2.contourArea)
    area = float(mask.sum())
    filled = max(cv2.contourArea(outer), 1.0)
    perim = max(cv2.arcLength(outer, True), 1.0)
    hull = max(cv2.contourArea(cv2.convexHull(outer)), 1.0)
    hu = cv2.HuMoments(cv2.moments(mask, binaryImage=True))[:, 0]
    hu = -np.sign(hu) * np.log10(np.abs(hu) + 1e-30) / 30.0   # comparable scales, sign kept
    scalars = [filled / hull, area / (w * h), 4 * np.pi * filled / perim ** 2, w / h,
               max(0.0, 1.0 - area / filled)]
    approx = cv2.approxPolyDP(outer, 0.035 * perim, True)
    return np.concatenate([hu, [min(max(float(v), 0.0), 4.0) for v in scalars], _vertex_onehot(len(approx))])


def _colour_block(smooth_lab: np.ndarray, smooth_hsv: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """Lab mean/std (6) and hue histogram (12) of pixel lists ``[n, 3]``."""
    if len(smooth_lab) == 0:
        return np.zeros(18, np.float32)
    lab = smooth_lab.astype(np.float32) * [100 / 255, 1 / 128, 1 / 128] - [0, 1, 1]  # OpenCV 8-bit Lab
    lab[:, 0] /= 100.0
    return np.concatenate([lab.mean(0), lab.std(0), _hue_hist(smooth_hsv, chroma)])


def region_features(boxes: np.ndarray, comp: np.ndarray, smooth: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Features ``float32 [R, F]`` (zero rows beyond ``len(boxes)``) from the pixels in each box."""
    s = float(IMAGE_SIZE)
    lab = cv2.cvtColor(smooth, cv2.COLOR_RGB2LAB)             # [H, W, 3]
    hsv = cv2.cvtColor(smooth, cv2.COLOR_RGB2HSV)             # [H, W, 3]
    r_, g_, b_ = cv2.split(smooth)                            # per-channel max/min: far faster than numpy's
    chroma = cv2.subtract(cv2.max(cv2.max(r_, g_), b_), cv2.min(cv2.min(r_, g_), b_)).astype(np.float32)  # [H, W]
    feats = np.zeros((MAX_REGIONS, FEATURE_DIM), np.float32)
    for r, (x1, y1, x2, y2) in enumerate(boxes.astype(int)):
        if r == 0:
            mask = (cls != N_CLASSES - 1).astype(np.uint8)     # whole image: all coloured pixels
        else:
            mask = (comp[y1:y2, x1:x2] == r).astype(np.uint8)  # [h, w]
        sl = (slice(y1, y2), slice(x1, x2))
        sel = mask.astype(bool)
        w, h = x2 - x1, y2 - y1
        colour = _colour_block(lab[sl][sel], hsv[sl][sel], chroma[sl][sel])
        classes = np.bincount(cls[sl].ravel(), minlength=N_CLASSES) / float(w * h)
        shape = _shape_block(mask, w, h) if r > 0 else np.zeros(20, np.float32)
        small = cv2.resize(mask.astype(np.float32), (8, 8), interpolation=cv2.INTER_AREA).ravel()
        ys, xs = np.nonzero(mask)
        cx = (xs.mean() + x1) / s if len(xs) else 0.5
        cy = (ys.mean() + y1) / s if len(ys) else 0.5
        geom = [x1 / s, y1 / s, x2 / s, y2 / s, w / s, h / s, cx, cy, np.sqrt(sel.sum()) / s]
        feats[r] = np.concatenate([colour, classes, shape, small, geom, [float(r == 0)]])
    return feats
