"""Heatmaps land on the right boxes, share scales, and come back as RGB uint8."""
import cv2
import numpy as np
import pytest

from causmatch.analysis import heatmaps as hm
from causmatch.errors import DataError

BOXES = np.array([[0, 0, 4, 4], [2, 2, 8, 6]], dtype=np.float32)  # overlap on x 2..3, y 2..3


def test_sum_mode_adds_overlapping_boxes():
    heat = hm.word_heatmap([0.25, 0.5], BOXES, (8, 10), mode="sum")
    assert heat.shape == (8, 10) and heat.dtype == np.float32
    assert heat[0, 0] == pytest.approx(0.25)        # only box 0
    assert heat[3, 3] == pytest.approx(0.75)        # both boxes
    assert heat[5, 7] == pytest.approx(0.5)         # only box 1 (x2=8 is exclusive: x=7 inside)
    assert heat[5, 8] == 0 and heat[6, 5] == 0      # outside both
    assert heat[:4, :4].sum() == pytest.approx(0.25 * 16 + 0.5 * 4)


def test_max_mode_keeps_largest_and_mask_skips_regions():
    heat = hm.word_heatmap([0.25, 0.5], BOXES, (8, 10), mode="max")
    assert heat[3, 3] == pytest.approx(0.5) and heat[0, 0] == pytest.approx(0.25) and heat[7, 9] == 0
    masked = hm.word_heatmap([0.25, 0.5], BOXES, (8, 10), mode="sum", region_mask=[True, False])
    assert masked[5, 7] == 0 and masked[3, 3] == pytest.approx(0.25)


def test_boxes_outside_image_are_clipped_and_bad_inputs_raise():
    heat = hm.word_heatmap([1.0], [[-5, -5, 2.5, 100]], (4, 4))
    assert heat[:, :3].min() == 1.0 and heat[:, 3].max() == 0.0   # ceil(2.5)=3 exclusive
    with pytest.raises(DataError, match="mode"):
        hm.word_heatmap([1.0], [[0, 0, 1, 1]], (2, 2), mode="mean")
    with pytest.raises(DataError, match="weights"):
        hm.word_heatmap([1.0, 2.0], [[0, 0, 1, 1]], (2, 2))


def test_colorize_uses_the_shared_scale_and_returns_rgb():
    a = np.array([[0.0, 1.0]])
    b = np.array([[0.5, 2.0]])
    vmin, vmax = hm.shared_scale(a, b)
    assert (vmin, vmax) == (0.0, 2.0)
    ca, cb = hm.colorize(a, vmin, vmax), hm.colorize(b, vmin, vmax)
    assert ca.dtype == np.uint8 and ca.shape == (1, 2, 3)
    assert np.array_equal(ca[0, 1], hm.colorize(np.array([[1.0]]), 0, 2)[0, 0])  # same value, same colour
    # the top of the scale is OpenCV's inferno top colour converted BGR -> RGB
    top_bgr = cv2.applyColorMap(np.array([[255]], np.uint8), cv2.COLORMAP_INFERNO)[0, 0]
    assert np.array_equal(cb[0, 1], top_bgr[::-1])
    with pytest.raises(DataError, match="colour map"):
        hm.colorize(a, 0, 1, cmap="nope")


def test_signed_difference_is_white_at_zero_and_red_blue_for_sign():
    rgb, lim = hm.signed_difference(np.array([[1.0, 0.0, 0.5]]), np.array([[0.0, 1.0, 0.5]]), cmap="bwr")
    assert lim == 1.0
    assert tuple(rgb[0, 0]) == (255, 0, 0) and tuple(rgb[0, 1]) == (0, 0, 255)
    assert tuple(rgb[0, 2]) == (255, 255, 255)
    assert hm.shared_scale(np.array([-3.0, 1.0]), symmetric=True) == (-3.0, 3.0)


def test_overlay_draw_boxes_colorbar(tmp_path):
    img = np.zeros((20, 30, 3), np.uint8)
    heat = np.full((10, 15, 3), 200, np.uint8)                     # resized to the image
    out = hm.overlay(img, heat, alpha=0.5)
    assert out.shape == img.shape and out.dtype == np.uint8 and out[0, 0, 0] == 100
    drawn = hm.draw_boxes(img, [[2, 2, 10, 10], [12, 2, 28, 18]], labels=["a", "b"], highlight=1)
    assert img.max() == 0                                          # input untouched
    assert tuple(drawn[18 - 1, 20]) == (255, 40, 40)               # bottom edge of the highlighted box
    assert drawn[6, 2].any()                                       # left edge of box 0
    bar = hm.colorbar(0.0, 1.0, height=100, width=60)
    assert bar.shape == (100, 60, 3) and bar.dtype == np.uint8
    assert bar[0, 0].tolist() != bar[99, 0].tolist()


def test_load_image_converts_bgr_to_rgb(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 0] = 255                                              # blue in BGR
    path = tmp_path / "x.png"
    cv2.imwrite(str(path), bgr)
    rgb = hm.load_image(path)
    assert rgb.shape == (4, 5, 3) and tuple(rgb[0, 0]) == (0, 0, 255)
    with pytest.raises(DataError, match="cannot read image"):
        hm.load_image(tmp_path / "missing.png")
