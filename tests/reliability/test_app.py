"""Reliability rows for the served app (AppTest): one hostile URL per row.

Each row opens the app on one page with URL parameters a hostile or careless user could send —
places outside the roots (absolute, ``..``, a symbolic link out, missing), split traversal, targets
of another kind or out of range, a checkpoint with NaN weights, bad boxes, a split with no images —
and asserts the page shows an error panel (or, for boxes past the image and link values replaced by a
default, a warning) with the expected words, no exception element, no "Unexpected error", and no "nan"
beside a number.
"""
from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.app.appdata import build_assets
from tests.app.apptest_helpers import shown

REPO = Path(__file__).resolve().parents[2]

APP = REPO / "app" / "streamlit_app.py"
TIMEOUT = 60


def _nan_checkpoint(src: Path, dst: Path) -> None:
    """A copy of a checkpoint whose first weight tensor is all NaN (its metadata kept)."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    shutil.copytree(src, dst)
    with safe_open(str(src / "model.safetensors"), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    first = sorted(k for k, v in tensors.items() if v.is_floating_point())[0]
    tensors[first] = tensors[first].clone().fill_(float("nan"))
    save_file(tensors, str(dst / "model.safetensors"), metadata=meta)


def _variant(src: Path, dst: Path, name: str, edit) -> None:
    """A copy of a dataset folder with one file replaced by ``edit(array)``."""
    shutil.copytree(src, dst)
    path = dst / name
    arr = np.load(path)
    np.save(path, edit(arr.copy()))


def _zero_images(dst: Path, like: Path) -> None:
    from causmatch.data import read_meta
    dst.mkdir()
    feats = np.load(like / "test_ims.npy")
    np.save(dst / "test_ims.npy", np.zeros((0, *feats.shape[1:]), feats.dtype))
    (dst / "test_caps.txt").write_text("")
    shutil.copy(like / "meta.json", dst / "meta.json")
    assert read_meta(dst)


def _set(arr, value, where=(0, 0)):
    arr[where] = value
    return arr


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """srv/ (the only root): the test data and checkpoints plus broken variants; outside/: copies of
    the data and a checkpoint the app must not open, and symbolic links to them from inside srv/."""
    base = tmp_path_factory.mktemp("reliability_app")
    root, outside = base / "srv", base / "outside"
    assets = build_assets(root)
    outside.mkdir()
    shutil.copytree(assets.data, outside / "data")
    shutil.copytree(assets.ckpt, outside / "ckpt_a")
    os.symlink(outside / "data", root / "link_data")
    os.symlink(outside / "ckpt_a", root / "link_ckpt")
    _nan_checkpoint(assets.ckpt, root / "nan_ckpt")
    _variant(assets.data, root / "nan_features", "test_ims.npy", lambda a: _set(a, np.nan, (0, 0, 0)))
    _variant(assets.data, root / "nan_boxes", "test_boxes.npy", lambda a: _set(a, [np.nan, 0, 10, 10]))
    _variant(assets.data, root / "wide_boxes", "test_boxes.npy", lambda a: _set(a, [-40, -40, 400, 90]))
    _zero_images(root / "zero_images", assets.data)
    return {"root": root, "outside": outside, "assets": assets}


@pytest.fixture(autouse=True)
def _app_process(world, monkeypatch):
    """The app as `streamlit run app/streamlit_app.py -- --root SRV`, with fresh caches."""
    monkeypatch.setenv("CAUSMATCH_CACHE", str(world["assets"].cache))
    monkeypatch.setattr(sys, "argv", [sys.argv[0], "--root", str(world["root"])])
    st.cache_data.clear()
    st.cache_resource.clear()
    yield


GOOD = {"data": "srv/data", "ckpt": "srv/ckpt_a"}
NOT_ALLOWED = r"is not allowed: this app opens only folders inside its roots \(srv/\)"

# (id, page, URL parameters over GOOD ({out} = the outside folder), error class, words expected).
# error class None: the words are expected in a warning instead of an error panel.
ROWS = [
    ("data-absolute-outside", "overview", {"data": "{out}/data"}, "DataError", NOT_ALLOWED),
    ("data-absolute-missing", "overview", {"data": "{out}/no-such-folder"}, "DataError", NOT_ALLOWED),
    ("data-dotdot", "overview", {"data": "srv/../outside/data"}, "DataError", NOT_ALLOWED),
    ("data-dotdot-deep", "overview", {"data": "srv/data/../../outside/data"}, "DataError", NOT_ALLOWED),
    ("data-dotdot-through-missing", "overview", {"data": "srv/missing/../../outside/data"}, "DataError",
     NOT_ALLOWED),
    ("data-symlink-escape", "overview", {"data": "srv/link_data"}, "DataError", NOT_ALLOWED),
    ("data-dotdot-without-label", "overview", {"data": "../outside/data"}, "DataError", NOT_ALLOWED),
    ("data-symlink-without-label", "overview", {"data": "link_data"}, "DataError", NOT_ALLOWED),
    ("data-inside-root-without-label", "overview", {"data": "no-such-folder"}, "DataError", r"does not exist"),
    ("data-etc", "overview", {"data": "/etc"}, "DataError", NOT_ALLOWED),
    ("data-home", "overview", {"data": "~"}, "DataError", NOT_ALLOWED),
    ("data-filesystem-root", "overview", {"data": "/"}, "DataError", NOT_ALLOWED),
    ("data-nul-byte", "overview", {"data": "srv/data\x00"}, "DataError", NOT_ALLOWED),
    ("data-missing-inside-root", "overview", {"data": "srv/no-such-folder"}, "DataError", r"does not exist"),
    ("data-file-inside-root", "overview", {"data": "srv/data/test_caps.txt"}, "DataError", r"is not a folder"),
    ("ckpt-absolute-outside", "overview", {"ckpt": "{out}/ckpt_a"}, "CheckpointError", NOT_ALLOWED),
    ("ckpt-absolute-missing", "overview", {"ckpt": "/no/such/checkpoint"}, "CheckpointError", NOT_ALLOWED),
    ("ckpt-dotdot", "explore", {"ckpt": "srv/../outside/ckpt_a"}, "CheckpointError", NOT_ALLOWED),
    ("ckpt-symlink-escape", "explore", {"ckpt": "srv/link_ckpt"}, "CheckpointError", NOT_ALLOWED),
    ("ckpt-proc", "overview", {"ckpt": "/proc/self/cwd"}, "CheckpointError", NOT_ALLOWED),
    ("ckpt2-outside", "compare", {"ckpt2": "{out}/ckpt_a"}, "CheckpointError", NOT_ALLOWED),
    ("split-traversal", "overview", {"split": "../../.."}, "DataError", r"split '\.\./\.\./\.\.' is not allowed"),
    ("split-traversal-nested", "overview", {"split": "test/../../../outside/data/test"}, "DataError",
     r"is not allowed: the dataset folder 'srv/data' has the split\(s\) test"),
    ("split-absent", "retrieval", {"split": "train"}, "DataError", r"split 'train' is not allowed"),
    ("split-empty", "overview", {"split": ""}, "DataError", r"split '' is not allowed"),
    ("targets-of-another-kind", "overview", {"iv": "mask-words", "targets": "0,1", "tkind": "mask-regions"},
     "ConfigError", r"were picked for mask-regions, not for mask-words — they were cleared, not reinterpreted"),
    ("targets-on-untargeted-kind", "overview", {"iv": "uniform", "targets": "2"}, "ConfigError",
     r"belong to no targeted kind, not for uniform — they were cleared"),
    ("word-target-out-of-range", "explore", {"iv": "mask-words", "targets": "500"}, "ConfigError",
     r"word 500 out of range"),
    ("region-target-out-of-range", "explore", {"iv": "mask-regions", "targets": "999"}, "ConfigError",
     r"region 999 out of range"),
    ("region-target-is-padding", "explore", {"image": "1", "iv": "keep-regions", "targets": "5"}, "ConfigError",
     r"region 5 out of range|padding"),
    ("swap-three-words", "explore", {"iv": "swap-words", "targets": "0,1,2"}, "ConfigError", r"two word"),
    ("swap-same-word-twice", "explore", {"iv": "swap-words", "targets": "1,1"}, "ConfigError",
     r"two different words"),
    ("targets-not-numbers", "explore", {"iv": "mask-words", "targets": "a,b"}, "ConfigError", r"whole numbers"),
    ("targets-negative", "explore", {"iv": "keep-words", "targets": "-1"}, "ConfigError", r"whole numbers"),
    ("nan-checkpoint", "overview", {"ckpt": "srv/nan_ckpt"}, "CheckpointError", r"(?i)nan|not finite|non-finite"),
    ("nan-checkpoint-explore", "explore", {"ckpt2": "srv/nan_ckpt"}, "CheckpointError",
     r"(?i)nan|not finite|non-finite"),
    ("nan-features", "overview", {"data": "srv/nan_features"}, "DataError", r"(?i)nan|not finite|non-finite"),
    ("nan-boxes", "explore", {"data": "srv/nan_boxes"}, "DataError", r"(?i)nan|infinite|not finite"),
    ("boxes-past-the-image", "explore", {"data": "srv/wide_boxes"}, None,
     r"r0\) reach past the image \(160×160 pixels\): they are drawn clipped to it"),
    ("zero-image-split", "overview", {"data": "srv/zero_images"}, "DataError", r"(?i)\b0 images|no images|zero"),
    ("caption-of-10000-words", "explore", {"text": "red " * 10000}, "DataError", r"(?i)\bcap\b|too long|tokens"),
    ("too-many-targets", "explore", {"iv": "mask-regions", "targets": ",".join(["0"] * 5000)}, "ConfigError",
     r"at most \d+ are allowed"),
    # A link's value that does not fit its widget is replaced by the default, with a warning saying so.
    ("image-out-of-range", "explore", {"image": "99999"}, None, r"image=99999 does not fit this view — image 0"),
    ("image-not-a-number", "overview", {"image": "1e9"}, None, r"image='1e9' is not a whole number"),
    ("unknown-kind", "overview", {"iv": "bogus"}, None, r"iv=bogus does not fit this view — iv random"),
    ("samples-huge", "overview", {"samples": "10000000"}, None, r"samples=10000000 does not fit this view"),
    ("top-k-huge", "retrieval", {"k": "100000"}, None, r"k=100000 does not fit this view — k 5"),
    ("direction-unknown", "failures", {"dir": "sideways"}, None, r"dir=sideways does not fit this view"),
]


def _run(world, page: str, params: dict) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    query = {**GOOD, **{k: v.format(out=world["outside"]) for k, v in params.items()}}
    at.query_params.update(query)
    at.run()
    if page != "overview":
        at.switch_page(f"app_pages/{page}.py").run()
    return at


@pytest.mark.parametrize("case", ROWS, ids=[r[0] for r in ROWS])
def test_hostile_url(world, case):
    _, page, params, cls, words = case
    at = _run(world, page, params)
    assert not at.exception, [e.value for e in at.exception]
    panels = [shown(e.value) for e in at.main.error]
    everything = panels + [shown(e.value) for e in at.sidebar.error]
    assert not any("Unexpected error" in p for p in everything), everything
    if cls is None:
        assert not panels, panels
        found = [shown(w.value) for w in at.warning]
    else:
        found = [p for p in panels if p.startswith(f"{cls}:")]
    assert any(re.search(words, p) for p in found), (found, panels)
    for m in at.metric:  # never "nan" beside a number
        assert "nan" not in str(m.value).lower(), (m.label, m.value)
    if words == NOT_ALLOWED:
        joined = " ".join(everything)
        assert str(world["root"]) not in joined and str(world["root"].resolve()) not in joined


@pytest.mark.parametrize("name,kind", [("data", "DataError"), ("ckpt", "CheckpointError")])
def test_refusal_is_the_same_for_existing_and_missing_places(world, name, kind):
    """The panel for a place outside the roots never tells whether it exists."""
    target = "data" if name == "data" else "ckpt_a"
    texts = []
    for value in (f"{world['outside']}/{target}", f"{world['outside']}/{target}-missing"):
        at = _run(world, "overview", {name: value})
        texts.append([shown(e.value).replace(value, "VALUE") for e in at.error])
    assert texts[0] == texts[1] and texts[0] and texts[0][0].startswith(f"{kind}:")


def test_good_view_has_no_panel(world):
    at = _run(world, "explore", {})
    assert not at.exception and not at.error


@pytest.mark.parametrize("value", ["[click me](http://example.invalid/x)", ":red[alarm] $x^2$ **bold** `code`"])
def test_link_text_is_shown_as_typed_never_as_markdown(world, value):
    """Text from a link reaches the page only with its Markdown escaped: no disguised link, colour or formula."""
    at = _run(world, "overview", {"data": value})
    texts = [e.value for e in at.error] + [w.value for w in at.warning]
    assert texts, "the place should be refused"
    for text in texts:
        assert not re.search(r"(?<!\\)[\[\]`*$]", text), text  # every active character escaped
        assert value[:12] in shown(text)  # and the reader sees the text as typed
