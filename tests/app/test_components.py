"""Rendering helpers: PNG and CSV exports, the error panel's message, figures' labels and scales."""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from causmatch.errors import CheckpointError  # noqa: E402
from components import figures  # noqa: E402
from components.errors import error_message  # noqa: E402
from components.images import framed, png_bytes  # noqa: E402
from components.pair import _rows_as_shares  # noqa: E402
from components.tables import csv_bytes  # noqa: E402


def test_png_round_trip_keeps_rgb_order():
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[..., 0] = 200  # pure red
    back = cv2.imdecode(np.frombuffer(png_bytes(rgb), np.uint8), cv2.IMREAD_COLOR)  # BGR
    assert back.shape == (4, 5, 3) and (back[..., 2] == 200).all() and (back[..., :2] == 0).all()
    assert framed(rgb, width=2).shape == (8, 9, 3)


def test_csv_export_has_header_and_rows():
    text = csv_bytes(pd.DataFrame({"query": [1, 2], "rank": [3, 4]})).decode()
    assert text.splitlines() == ["query,rank", "1,3", "2,4"]


def test_error_message_is_one_line():
    assert error_message(CheckpointError("bad\nfolder — retrain")) == "CheckpointError: bad folder — retrain"
    msg = error_message(ValueError("x\ny"))
    assert msg.startswith("Unexpected error (ValueError: x y)") and "\n" not in msg


def test_rows_as_shares_leaves_zero_rows():
    m = _rows_as_shares(np.array([[1.0, 3.0], [0.0, 0.0]]))
    assert np.allclose(m, [[0.25, 0.75], [0.0, 0.0]])


def test_attention_matrix_keeps_repeated_words_and_shared_scale():
    fig = figures.attention_matrix(np.eye(3), ["a", "red", "a"], ["r0", "r1", "r2"], title="t", zmin=0, zmax=2)
    heat = fig.data[0]
    assert list(heat.y) == ["0 a", "1 red", "2 a"] and heat.zmin == 0 and heat.zmax == 2
    assert figures.unique_labels(["r0", "r1"]) == ["r0", "r1"]
    scale = figures.colorscale("inferno", steps=3)
    assert scale[0][0] == 0.0 and scale[-1][0] == 1.0 and len(scale) == 3
