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
