"""Image panels: RGB arrays on screen and as PNG downloads (encoded with OpenCV)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import streamlit as st


def png_bytes(rgb: np.ndarray) -> bytes:
    """Encode an RGB ``[H, W, 3]`` uint8 image (or ``[H, W]`` grey) as PNG bytes."""
    img = np.ascontiguousarray(rgb)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)  # OpenCV writes BGR
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("OpenCV could not encode the image as PNG")
    return buf.tobytes()


@st.cache_data(max_entries=256, show_spinner=False)
def read_rgb(path: str, mtime: float) -> np.ndarray | None:
    """Read an image file as RGB ``[H, W, 3]`` uint8 (``mtime`` keys the cache); None if unreadable."""
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_rgb(path: Path | str) -> np.ndarray | None:
    """Cached read of an image file; None when the file is missing or unreadable."""
    p = Path(path)
    if not p.is_file():
        return None
    return read_rgb(str(p), p.stat().st_mtime)


def image_panel(rgb: np.ndarray, caption: str, *, download: str | None = None, key: str | None = None) -> None:
    """Show an image with a caption and, when ``download`` names a file, a PNG download button."""
    st.image(rgb, caption=caption, width="stretch")
    if download:
        st.download_button("PNG", png_bytes(rgb), file_name=download, mime="image/png",
                           key=key or f"dl_{download}", icon=":material/download:")


def framed(rgb: np.ndarray, colour=(30, 160, 60), width: int = 6) -> np.ndarray:
    """The image inside a coloured frame (marks the true item in a grid of results)."""
    return cv2.copyMakeBorder(np.ascontiguousarray(rgb), width, width, width, width, cv2.BORDER_CONSTANT,
                              value=tuple(int(c) for c in colour))
