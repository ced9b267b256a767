"""assets/: the committed sample split is exactly what its command makes, small, and opens in the app."""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import numpy as np
from streamlit.testing.v1 import AppTest

from causmatch.cli import main
from causmatch.data import load_split
from tests.app.apptest_helpers import metric, no_failure
from tests.conftest import SCENES_SAMPLE

REPO = Path(__file__).resolve().parents[1]


def _readme_command() -> list[str]:
    """The one command assets/README.md gives for the sample, as argv for ``causmatch``."""
    readme = (REPO / "assets" / "README.md").read_text()
    lines = re.findall(r"(?m)^causmatch scenes --out assets/sample/scenes .*$", readme)
    assert len(lines) == 1, lines
    return shlex.split(lines[0])[1:]


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_readme_command_remakes_the_sample_byte_for_byte(tmp_path):
    argv = _readme_command()
    out = argv.index("--out") + 1
    argv[out] = str(tmp_path / "scenes")
    assert main(argv) == 0
    made, committed = _files(tmp_path / "scenes"), _files(SCENES_SAMPLE)
    assert sorted(made) == sorted(committed)
    for name, data in made.items():
        assert data == committed[name], f"assets/sample/scenes/{name} differs from what the command makes"


def test_the_sample_is_a_small_complete_split(scenes_sample):
    size = sum(len(b) for b in _files(SCENES_SAMPLE).values())
    assert size < 1_000_000, size
    split = load_split(scenes_sample, "test")
    assert (split.n_images, split.n_captions, split.caps_per_image) == (8, 40, 5)
    assert split.boxes is not None and split.image_paths is not None and split.grounding is not None
    assert all(p.is_file() for p in split.image_paths)
    assert np.isfinite(np.asarray(split.features)).all()
    assert sum(len(g["words"]) for g in split.grounding) > 40  # words point at regions


def test_the_demo_opens_on_the_sample_with_no_arguments(scenes_sample, tmp_path, monkeypatch):
    """As ``streamlit run app/streamlit_app.py`` (no arguments) with CAUSMATCH_DATA at the sample: both demo
    checkpoints, the sample's test split, no error."""
    import streamlit as st
    monkeypatch.setenv("CAUSMATCH_DATA", str(scenes_sample))
    monkeypatch.setenv("CAUSMATCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "argv", [sys.argv[0]])
    st.cache_data.clear()
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(str(REPO / "app" / "streamlit_app.py"), default_timeout=120)
        at.run()
        no_failure(at)
        assert [t.value for t in at.title] == ["Overview"]
        assert metric(at, "Images") == "8" and metric(at, "Captions") == "40"
        df = at.dataframe[0].value
        assert len(df) == 2 and df["checkpoint"].str.startswith("A:").sum() == 1, df
        assert ((df["t2i_r10"] >= df["t2i_r5"]) & (df["t2i_r5"] >= df["t2i_r1"]) & (df["t2i_r1"] > 0)).all(), df
    finally:
        st.cache_data.clear()
        st.cache_resource.clear()
