"""Tables with CSV export."""
from __future__ import annotations

import pandas as pd
import streamlit as st


def csv_bytes(df: pd.DataFrame) -> bytes:
    """The table as UTF-8 CSV without the index."""
    return df.to_csv(index=False).encode("utf-8")


def csv_button(df: pd.DataFrame, file_name: str, key: str, label: str = "CSV") -> None:
    """A download button exporting ``df`` as CSV."""
    st.download_button(label, csv_bytes(df), file_name=file_name, mime="text/csv", key=key,
                       icon=":material/download:")


def table(df: pd.DataFrame, file_name: str, key: str, **kwargs) -> object:
    """``st.dataframe`` plus a CSV export button; returns what ``st.dataframe`` returns."""
    shown = st.dataframe(df, hide_index=True, key=key, **kwargs)
    csv_button(df, file_name, key=f"{key}_csv")
    return shown


# How a column of each kind (causmatch.analysis.failures.Column.kind) is drawn: width and number format.
# "pct": a number already in percent; "name": a short text (a label).
KIND_WIDTH = {"id": 56, "rank": 56, "score": 76, "share": 66, "pct": 56, "flag": 48, "image": 56,
              "text": "medium", "name": 110}
KIND_FORMAT = {"id": "%d", "rank": "%d", "score": "%+.4f", "share": "percent", "pct": "%.1f"}


SELECT_WIDTH = 34  # the selection column of a selectable table


def header_width(label: str, kind: str) -> int:
    """A column's width in pixels: its kind's, or its header's (about 6.3 px a character plus margins)."""
    return max(int(KIND_WIDTH.get(kind, 56)), round(6.3 * len(label)) + 20)


def column_config(named: dict[str, tuple[str, str, str]], fit: int | None = None) -> dict:
    """``st.dataframe`` column settings from ``{column: (label, help, kind)}``: readable names with help
    text, compact widths, 4 signed decimals for scores, percentages for shares, images for thumbnails.
    ``fit``: the table's width in pixels — the text columns share what the others leave (at least 150
    each), so the table fits without scrolling sideways."""
    fixed = sum(header_width(label, kind) for label, _, kind in named.values() if kind not in ("text", "name"))
    texts = sum(1 for _, _, kind in named.values() if kind == "text")
    text_width = max(150, (fit - fixed) // texts) if fit and texts else None
    out = {}
    for name, (label, text, kind) in named.items():
        width = KIND_WIDTH.get(kind, "small")
        if isinstance(width, int):
            width = header_width(label, kind)
        elif kind == "text" and text_width:
            width = text_width
        if kind == "image":
            out[name] = st.column_config.ImageColumn(label, help=text, width=width)
        elif kind in ("text", "name"):  # a name: a short text in a fixed width
            out[name] = st.column_config.TextColumn(label, help=text, width=width)
        elif kind == "flag":
            out[name] = st.column_config.CheckboxColumn(label, help=text, width=width)
        else:
            out[name] = st.column_config.NumberColumn(label, help=text, width=width, format=KIND_FORMAT.get(kind))
    return out


@st.cache_data(max_entries=4096, show_spinner=False)
def _thumbnail(path: str, mtime: float, size: int) -> str | None:
    import base64

    import cv2
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    h, w = bgr.shape[:2]
    scale = size / max(h, w)
    small = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii") if ok else None


def thumbnail(path, size: int = 64) -> str | None:
    """A small JPEG of the image at ``path`` as a data URL (for an ``ImageColumn``); None when it cannot be
    read. Cached per file and size."""
    from pathlib import Path
    p = Path(path)
    if not p.is_file():
        return None
    return _thumbnail(str(p), p.stat().st_mtime, int(size))
