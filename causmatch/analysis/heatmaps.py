"""Attention heatmaps as plain RGB ``uint8`` arrays (numpy + OpenCV, no UI code).

Public API::

    load_image(path) -> np.ndarray [H,W,3] RGB uint8
    word_heatmap(weights [R], boxes [R,4], size (H,W), mode="sum"|"max", region_mask=None) -> [H,W] float32
    shared_scale(*heats, symmetric=False) -> (vmin, vmax)
    colorize(heat [H,W], vmin, vmax, cmap="inferno") -> [H,W,3] RGB uint8
    signed_difference(heat_a, heat_b, limit=None, cmap="coolwarm") -> ([H,W,3] RGB uint8, limit)
    overlay(image_rgb [H,W,3], heat_rgb [h,w,3], alpha=0.5) -> [H,W,3] RGB uint8
    draw_boxes(image [H,W,3], boxes [R,4], labels=None, highlight=None) -> [H,W,3] RGB uint8
    colorbar(vmin, vmax, cmap="inferno", height=256, width=70) -> [height,width,3] RGB uint8
    boxes_outside(boxes [R,4], size (H,W), region_mask=None) -> int   # boxes clipped to the image
    whole_image_regions(boxes [R,4], size (H,W), region_mask=None, cover=0.9) -> [R] bool
    coverage(boxes [R,4], size (H,W), region_mask=None) -> [H,W] bool   # pixels some box covers
    share_scale(*maps [W,R], columns=None) -> (0.0, top)                 # one absolute scale for a caption
    ticks(vmin, vmax, n=5) -> (values, labels)                           # colour-bar ticks, no "-0.000"
    with_colorbar(rgb [H,W,3], vmin, vmax, cmap="inferno", title="") -> RGB uint8   # a PNG that carries its scale
    figure_name(*parts, ext="png") -> str                                # a safe, descriptive file name
    text_tag(text) -> str                                                # a short hash naming a typed caption
    COLORMAPS: tuple of accepted colour-map names

Inputs are checked: NaN/inf weights, heat values, scales or box coordinates, a box array that is not
``[R,4]``, mismatched lengths, out-of-range highlights and images larger than ``MAX_PIXELS`` raise a
one-line DataError (never an OpenCV error). Boxes reaching outside the image are clipped to it (the
dataset stated this repair); :func:`boxes_outside` counts them so a caller can warn.

Accumulation over boxes (``word_heatmap``): region boxes overlap, so a pixel may lie in several.
``mode="sum"`` adds the weights of every box that covers the pixel — the picture then shows where
the attention *mass* lands, and an object covered by several detections glows more, as it does in
the score. ``mode="max"`` keeps the largest weight of the boxes covering the pixel — a big box that
overlaps many small ones cannot inflate a region, which reads better for "which box is attended".
Factual and counterfactual maps must be coloured with one scale: pass the same ``vmin``/``vmax``
(see :func:`shared_scale`) to :func:`colorize`.

The whole-image region: detectors and the scenes generator give every image a box that covers (almost)
all of it. Painted like the others it colours the whole background (``max``) or lifts every pixel
(``sum``), so a caller shows it apart: :func:`whole_image_regions` finds such boxes from their
coordinates (a valid box covering at least ``cover`` of the image's area), never by position.
An *absolute* scale (:func:`share_scale`: 0 up to the largest share over every word of the caption) keeps
a flat row flat: a function word whose shares range 0.175–0.263 gets two close colours, not the ends
of the colour map, as it would on its own min–max.
"""
from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

import cv2
import numpy as np

from causmatch.errors import DataError

_OPENCV_MAPS = {
    "inferno": cv2.COLORMAP_INFERNO, "viridis": cv2.COLORMAP_VIRIDIS, "magma": cv2.COLORMAP_MAGMA,
    "plasma": cv2.COLORMAP_PLASMA, "cividis": cv2.COLORMAP_CIVIDIS, "turbo": cv2.COLORMAP_TURBO,
    "jet": cv2.COLORMAP_JET, "hot": cv2.COLORMAP_HOT,
}
# Diverging maps (OpenCV has none): end colours -> white -> end colour, linear in RGB.
_DIVERGING = {
    "coolwarm": ((59, 76, 192), (221, 221, 221), (180, 4, 38)),
    "bwr": ((0, 0, 255), (255, 255, 255), (255, 0, 0)),
}
COLORMAPS = tuple(_OPENCV_MAPS) + tuple(_DIVERGING)
MAX_PIXELS = 100_000_000  # H·W of one heatmap or image drawn (a 10,000 × 10,000 photo)


def _finite(values, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if not np.isfinite(arr).all():
        first = tuple(int(x) for x in np.argwhere(~np.isfinite(arr))[0])
        raise DataError(f"{what} hold NaN or infinite values (first at {first if len(first) != 1 else first[0]}) "
                        "— the model or the data produced non-finite numbers; nothing is drawn")
    return arr


def _size(size) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in size)
    except (TypeError, ValueError):
        raise DataError(f"image size must be (height, width), got {size!r}") from None
    if h < 1 or w < 1 or h * w > MAX_PIXELS:
        raise DataError(f"image size {h} x {w} is not drawable — sizes must be positive and at most "
                        f"{MAX_PIXELS:,} pixels")
    return h, w


def _mask(region_mask, n: int) -> np.ndarray:
    if region_mask is None:
        return np.ones(n, bool)
    keep = np.asarray(region_mask, bool).reshape(-1)
    if len(keep) != n:
        raise DataError(f"region mask of {len(keep)} entries for {n} boxes — pass one per region")
    return keep
_LUT_CACHE: dict[str, np.ndarray] = {}


def _lut(cmap: str) -> np.ndarray:
    """256×3 RGB uint8 lookup table for a colour-map name."""
    if cmap in _LUT_CACHE:
        return _LUT_CACHE[cmap]
    if cmap in _OPENCV_MAPS:
        ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
        bgr = cv2.applyColorMap(ramp, _OPENCV_MAPS[cmap]).reshape(256, 3)
        lut = bgr[:, ::-1].copy()  # OpenCV returns BGR
    elif cmap in _DIVERGING:
        lo, mid, hi = (np.asarray(c, dtype=np.float64) for c in _DIVERGING[cmap])
        i = np.arange(256, dtype=np.float64)[:, None]  # [256,1]; index 128 is exactly the centre,
        lower = lo + (mid - lo) * np.clip(i / 128, 0, 1)  # where colorize puts a value of 0
        upper = mid + (hi - mid) * np.clip((i - 128) / 127, 0, 1)
        lut = np.where(i <= 128, lower, upper).round().astype(np.uint8)
    else:
        raise DataError(f"unknown colour map '{cmap}' — choose one of: {', '.join(COLORMAPS)}")
    _LUT_CACHE[cmap] = lut
    return lut


def load_image(path) -> np.ndarray:
    """Read an image file as RGB uint8 ``[H,W,3]`` (OpenCV reads BGR; converted here)."""
    path = Path(path)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR) if path.is_file() else None
    if bgr is None:
        raise DataError(f"cannot read image {path} — check that the file exists and is a PNG/JPEG")
    _size(bgr.shape[:2])
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _pixel_boxes(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Boxes [R,4] x1,y1,x2,y2 (float pixels) -> int [R,4] clipped to the image, end-exclusive."""
    h, w = size
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise DataError(f"boxes must be [R, 4] (x1, y1, x2, y2 pixels), got shape {tuple(b.shape)}")
    b = _finite(b, "box coordinates")
    x1 = np.clip(np.floor(b[:, 0]), 0, w).astype(np.int64)
    y1 = np.clip(np.floor(b[:, 1]), 0, h).astype(np.int64)
    x2 = np.clip(np.ceil(b[:, 2]), 0, w).astype(np.int64)
    y2 = np.clip(np.ceil(b[:, 3]), 0, h).astype(np.int64)
    return np.stack([x1, y1, x2, y2], axis=1)


def boxes_outside(boxes, size, region_mask=None) -> int:
    """How many (valid) boxes ``[R,4]`` reach outside an image of ``size`` (H, W) and are clipped to it."""
    h, w = _size(size)
    b = _finite(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), "box coordinates")
    out = (b[:, 0] < 0) | (b[:, 1] < 0) | (b[:, 2] > w) | (b[:, 3] > h)
    return int((out & _mask(region_mask, len(b))).sum())


def word_heatmap(weights, boxes, size, mode: str = "sum", region_mask=None) -> np.ndarray:
    """Accumulate per-region weights over their boxes into a ``[H,W]`` float32 map.

    weights: [R] (one word's attention over regions, or any per-region value); boxes: [R,4]
    x1,y1,x2,y2 in pixels; size: (H, W); region_mask: [R] bool, padded regions are skipped.
    ``mode="sum"`` adds overlapping boxes, ``mode="max"`` keeps the largest (module docstring).
    """
    if mode not in ("sum", "max"):
        raise DataError(f"unknown heatmap mode '{mode}' — use 'sum' or 'max'")
    h, w = _size(size)
    wts = np.asarray(weights, dtype=np.float64).reshape(-1)  # [R]
    pix = _pixel_boxes(boxes, (h, w))  # [R,4]
    if len(wts) != len(pix):
        raise DataError(f"{len(wts)} weights for {len(pix)} boxes — pass one weight per region")
    keep = _mask(region_mask, len(wts))
    _finite(wts[keep], "attention weights")
    if mode == "sum":
        # 2-D difference array: O(R + H·W) instead of painting every box.
        diff = np.zeros((h + 1, w + 1), dtype=np.float64)
        for (x1, y1, x2, y2), v, k in zip(pix, wts, keep):
            if k and x2 > x1 and y2 > y1:
                diff[y1, x1] += v
                diff[y1, x2] -= v
                diff[y2, x1] -= v
                diff[y2, x2] += v
        return diff.cumsum(0).cumsum(1)[:h, :w].astype(np.float32)
    heat = np.full((h, w), -np.inf)
    for (x1, y1, x2, y2), v, k in zip(pix, wts, keep):
        if k and x2 > x1 and y2 > y1:
            np.maximum(heat[y1:y2, x1:x2], v, out=heat[y1:y2, x1:x2])
    heat[np.isinf(heat)] = 0.0  # pixels no box covers
    return heat.astype(np.float32)


def shared_scale(*heats, symmetric: bool = False) -> tuple[float, float]:
    """One (vmin, vmax) for several maps, so factual and counterfactual colours compare.

    ``symmetric=True`` gives (-L, L) with L the largest absolute value (for signed maps).
    """
    vals = [_finite(h, "heatmap values") for h in heats if np.asarray(h).size]
    if not vals:
        return (0.0, 1.0)
    if symmetric:
        lim = max(float(np.abs(v).max()) for v in vals) or 1.0
        return (-lim, lim)
    lo = min(float(v.min()) for v in vals)
    hi = max(float(v.max()) for v in vals)
    return (lo, hi if hi > lo else lo + 1.0)


def colorize(heat, vmin: float, vmax: float, cmap: str = "inferno") -> np.ndarray:
    """Map ``heat [H,W]`` to RGB uint8 ``[H,W,3]``; values outside [vmin, vmax] are clipped."""
    lut = _lut(cmap)
    h = _finite(heat, "heatmap values")
    _finite([vmin, vmax], "colour scale bounds")
    span = float(vmax) - float(vmin)
    t = (h - vmin) / span if span > 0 else np.zeros_like(h)
    idx = np.clip(np.rint(t * 255), 0, 255).astype(np.uint8)  # [H,W]
    return lut[idx]


def signed_difference(heat_a, heat_b, limit: float | None = None, cmap: str = "coolwarm"):
    """Colour ``heat_a - heat_b`` on a diverging map centred on 0 (white = no change).

    Returns ``(rgb [H,W,3] uint8, limit)``: the scale is [-limit, limit]; by default limit is
    the largest absolute difference, so pass your own to compare several difference maps.
    """
    diff = _finite(heat_a, "heatmap values") - _finite(heat_b, "heatmap values")
    if limit is None:
        limit = float(np.abs(diff).max()) if diff.size else 0.0
        limit = limit if limit > 0 else 1.0
    return colorize(diff, -limit, limit, cmap), float(limit)


def overlay(image_rgb, heat_rgb, alpha: float = 0.5, where=None) -> np.ndarray:
    """Blend a coloured heatmap over an image: ``(1-alpha)·image + alpha·heat`` (resized to fit).

    ``where`` (``[H, W]`` bool, optional): blend only those pixels (e.g. :func:`coverage`, so that pixels
    no box covers keep the image instead of the colour of 0); the others are the image unchanged.
    """
    img = np.ascontiguousarray(image_rgb, dtype=np.uint8)
    heat = np.ascontiguousarray(heat_rgb, dtype=np.uint8)
    if img.ndim != 3 or heat.ndim != 3 or img.shape[2] != 3 or heat.shape[2] != 3 or not heat.size:
        raise DataError(f"overlay needs two RGB images [H, W, 3], got {tuple(img.shape)} and {tuple(heat.shape)}")
    if not (np.isfinite(alpha) and 0.0 <= float(alpha) <= 1.0):
        raise DataError(f"overlay alpha must lie in [0, 1], got {alpha!r}")
    if heat.shape[:2] != img.shape[:2]:
        heat = cv2.resize(heat, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_NEAREST)
    out = cv2.addWeighted(img, 1.0 - float(alpha), heat, float(alpha), 0.0)
    if where is None:
        return out
    keep = np.asarray(where, bool)
    if keep.shape != img.shape[:2]:
        raise DataError(f"overlay mask of shape {tuple(keep.shape)} for an image of {img.shape[0]} x {img.shape[1]} "
                        "pixels — pass one value per pixel")
    return np.where(keep[..., None], out, img)


def _label(img: np.ndarray, text: str, x: int, y: int, color, scale: float) -> None:
    """Text on a filled box of the line's colour, black or white for contrast (readable on any image)."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), base = cv2.getTextSize(text, font, scale, 1)
    y_top = max(0, y - th - base - 2)
    x = min(max(0, x), max(0, img.shape[1] - tw - 2))
    cv2.rectangle(img, (x, y_top), (x + tw + 2, y_top + th + base + 2), color, -1)
    ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
    cv2.putText(img, text, (x + 1, y_top + th + 1), font, scale, ink, 1, cv2.LINE_AA)


def draw_boxes(image, boxes, labels=None, highlight=None, color=(0, 200, 255),
               highlight_color=(255, 40, 40), region_mask=None) -> np.ndarray:
    """Draw region boxes ``[R,4]`` (with optional text labels) on a copy of an RGB image.

    highlight: a region index or a list of indices drawn thicker in ``highlight_color``
    (drawn last, so they sit on top). Padded regions (``region_mask`` False) are skipped.
    """
    img = np.array(image, dtype=np.uint8, copy=True)
    if img.ndim != 3 or img.shape[2] != 3:
        raise DataError(f"image must be RGB [H, W, 3], got shape {tuple(img.shape)}")
    h, w = _size(img.shape[:2])
    pix = _pixel_boxes(boxes, (h, w))
    hi = set() if highlight is None else {int(v) for v in np.atleast_1d(highlight).tolist()}
    if any(not 0 <= r < len(pix) for r in hi):
        raise DataError(f"highlighted region(s) {sorted(r for r in hi if not 0 <= r < len(pix))} out of range — "
                        f"this image has regions 0..{len(pix) - 1}")
    if labels is not None and len(labels) != len(pix):
        raise DataError(f"{len(labels)} labels for {len(pix)} boxes — pass one label per region")
    keep = _mask(region_mask, len(pix))
    scale = max(0.35, min(h, w) / 700.0)
    order = [r for r in range(len(pix)) if r not in hi] + sorted(hi)
    for r in order:
        if not keep[r]:
            continue
        x1, y1, x2, y2 = (int(v) for v in pix[r])
        col = tuple(int(c) for c in (highlight_color if r in hi else color))
        cv2.rectangle(img, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), col, 3 if r in hi else 1)
        if labels is not None:
            _label(img, str(labels[r]), x1, y1 + (0 if y1 > 12 else 14), col, scale)
    return img


def colorbar(vmin: float, vmax: float, cmap: str = "inferno", height: int = 256, width: int = 70) -> np.ndarray:
    """A vertical colour bar (top = vmax) with min / mid / max tick labels, RGB uint8."""
    _finite([vmin, vmax], "colour scale bounds")
    if not (16 <= int(height) <= 4096 and 16 <= int(width) <= 4096):
        raise DataError(f"colour bar size {height} x {width} must lie in 16..4096 pixels each")
    bar_w = max(8, width // 3)
    ramp = np.linspace(vmax, vmin, height)[:, None].repeat(bar_w, axis=1)  # [H,bar_w]
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    img[:, :bar_w] = colorize(ramp, vmin, vmax, cmap)
    # The bar is shown a few times smaller than it is drawn: labels need a large font and few characters.
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.45
    values, labels = ticks(vmin, vmax, n=3)
    for value, label in zip(values, labels):
        frac = (vmax - value) / (vmax - vmin) if vmax > vmin else 0.0
        y = int(round(frac * (height - 1)))
        cv2.line(img, (bar_w, y), (bar_w + 4, y), (0, 0, 0), 1)
        y_text = min(max(y + 5, 12), height - 3)
        cv2.putText(img, label, (bar_w + 6, y_text), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def whole_image_regions(boxes, size, region_mask=None, cover: float = 0.9) -> np.ndarray:
    """``[R]`` bool: the valid regions whose box (clipped to the image) covers at least ``cover`` of its area.

    Decided from the coordinates, for any dataset: the scenes generator's first region is the whole
    image, a detector's may be anywhere in the list, and a dataset may have none.
    """
    h, w = _size(size)
    if not (np.isfinite(cover) and 0.0 < float(cover) <= 1.0):
        raise DataError(f"whole-image cover must lie in (0, 1], got {cover!r}")
    pix = _pixel_boxes(np.asarray(boxes, dtype=np.float64).reshape(-1, 4), (h, w))  # [R,4]
    area = np.clip(pix[:, 2] - pix[:, 0], 0, None) * np.clip(pix[:, 3] - pix[:, 1], 0, None)  # [R]
    return (area >= float(cover) * h * w) & _mask(region_mask, len(pix))


def coverage(boxes, size, region_mask=None) -> np.ndarray:
    """``[H,W]`` bool: the pixels at least one (valid) box covers."""
    n = np.asarray(boxes).reshape(-1, 4).shape[0]
    return word_heatmap(np.ones(n), boxes, size, mode="max", region_mask=region_mask) > 0


def share_scale(*maps, columns=None) -> tuple[float, float]:
    """One absolute scale ``(0, top)`` for word × region maps ``[W,R]`` of one caption (factual and
    counterfactual together): ``top`` is the largest value over every word and the given ``columns``
    (default: all), 1.0 when all are 0. Overlays and matrices coloured with it keep a flat row flat."""
    top = 0.0
    for m in maps:
        a = _finite(m, "attention shares")
        a = a.reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)
        if columns is not None:
            a = a[:, list(columns)]
        if a.size:
            top = max(top, float(a.max()))
    return (0.0, top if top > 0 else 1.0)


def _nice_step(span: float, n: int) -> float:
    """The round step (1, 2, 2.5 or 5 × 10^k) nearest, on a log scale, to ``span / (n - 1)``."""
    raw = span / max(1, n - 1)
    power = 10.0 ** np.floor(np.log10(raw))
    steps = [m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0)]
    return float(min(steps, key=lambda st: abs(np.log(st / raw))))


def ticks(vmin: float, vmax: float, n: int = 5) -> tuple[list[float], list[str]]:
    """About ``n`` round tick values inside [vmin, vmax] and their labels: one number of decimals for all,
    enough to tell them apart, and 0 written ``0`` (never "-0.000")."""
    lo, hi = (float(v) for v in _finite([vmin, vmax], "colour scale bounds"))
    if not hi > lo:
        return [lo], [_fmt(lo, 3)]
    step = _nice_step(hi - lo, max(2, int(n)))
    first = np.ceil(lo / step - 1e-9) * step
    values = [float(v) for v in np.arange(first, hi + step * 1e-6, step)]
    values = [0.0 if abs(v) < step * 1e-6 else v for v in values]
    digits = max(0, int(-np.floor(np.log10(step) + 1e-9)))
    if abs(step * 10 ** digits - round(step * 10 ** digits)) > 1e-6:  # 2.5, 0.25 …: one more decimal
        digits += 1
    if not values:
        values = [lo, hi]
    return values, [_fmt(v, digits) for v in values]


def _fmt(value: float, digits: int) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 1e5 or digits > 4:
        return f"{value:.3g}"
    text = f"{value:.{digits}f}"
    return "0" if float(text) == 0 else text


def _ascii(text: str) -> str:
    """``text`` as ASCII for OpenCV's fonts (Greek letters spelled out, other characters dropped)."""
    spelled = str(text).replace("ᾱ", "a-bar").replace("α", "a").replace("−", "-").replace("–", "-")
    return unicodedata.normalize("NFKD", spelled).encode("ascii", "ignore").decode("ascii")


def with_colorbar(rgb, vmin: float, vmax: float, cmap: str = "inferno", title: str = "") -> np.ndarray:
    """The image with its colour bar (ticks and labels drawn) on the right and ``title`` above: a PNG that
    carries its own scale. Small images are enlarged (nearest pixel) so the labels stay legible."""
    img = np.ascontiguousarray(rgb, dtype=np.uint8)
    if img.ndim != 3 or img.shape[2] != 3:
        raise DataError(f"image must be RGB [H, W, 3], got shape {tuple(img.shape)}")
    _size(img.shape[:2])
    factor = max(1, int(np.ceil(320 / img.shape[0])))
    factor = max(1, min(factor, int(np.sqrt(MAX_PIXELS / 4 / (img.shape[0] * img.shape[1])))))  # a thin strip
    if factor > 1:
        img = cv2.resize(img, None, fx=factor, fy=factor, interpolation=cv2.INTER_NEAREST)
    h, w = img.shape[:2]
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.5, h / 640)
    thick = 1 if scale < 0.9 else 2
    values, labels = ticks(vmin, vmax, n=5)
    label_w = max(cv2.getTextSize(lab, font, scale, thick)[0][0] for lab in labels)
    (_, text_h), base = cv2.getTextSize("0", font, scale, thick)
    pad, bar_w = int(10 * scale) + 4, int(22 * scale) + 6
    top = text_h + base + 2 * pad if title else pad
    canvas = np.full((h + top + pad, w + 3 * pad + bar_w + label_w + 8, 3), 255, np.uint8)
    canvas[top:top + h, :w] = img
    x0 = w + pad
    ramp = np.linspace(float(vmax), float(vmin), h)[:, None].repeat(bar_w, axis=1)  # [h, bar_w]
    canvas[top:top + h, x0:x0 + bar_w] = colorize(ramp, vmin, vmax, cmap)
    cv2.rectangle(canvas, (x0 - 1, top - 1), (x0 + bar_w, top + h), (0, 0, 0), 1)  # a frame around, not on, the bar
    for value, label in zip(values, labels):
        frac = (float(vmax) - value) / (float(vmax) - float(vmin)) if vmax > vmin else 0.0
        y = top + int(round(frac * (h - 1)))
        cv2.line(canvas, (x0 + bar_w, y), (x0 + bar_w + 6, y), (0, 0, 0), thick)
        cv2.putText(canvas, label, (x0 + bar_w + 10, min(max(y + text_h // 2, top + text_h), top + h)),
                    font, scale, (0, 0, 0), thick, cv2.LINE_AA)
    if title:
        text = _ascii(title)
        while text and cv2.getTextSize(text, font, scale, thick)[0][0] > canvas.shape[1] - 2 * pad:
            text = text[:-4] + "..." if len(text) > 4 else ""
        cv2.putText(canvas, text, (pad, pad + text_h), font, scale, (0, 0, 0), thick, cv2.LINE_AA)
    return canvas


_UNSAFE = re.compile(r"[^A-Za-z0-9.+=-]+")


def text_tag(text: str) -> str:
    """``text-<8 hex>``: names a typed caption in a file name (the same text, the same tag)."""
    return "text-" + hashlib.sha1(str(text).strip().encode("utf-8")).hexdigest()[:8]


def figure_name(*parts, ext: str = "png") -> str:
    """A descriptive, safe file name from ``parts`` (checkpoint, image, caption, word, intervention, seed …):
    each part reduced to ASCII letters, digits and ``.+=-`` (at most 40 characters), empty parts left
    out, joined with ``_``; no path separators, no leading dot, at most 180 characters before ``.ext``."""
    words = []
    for part in parts:
        if part is None:
            continue
        piece = _UNSAFE.sub("-", _ascii(str(part))).strip("-.")[:40].strip("-.")
        if piece:
            words.append(piece)
    stem = "_".join(words)[:180].strip("-._") or "figure"
    ext = _UNSAFE.sub("", str(ext)).strip(".") or "png"
    return f"{stem}.{ext}"
