"""causmatch.analysis.places: roots, places relative to a root, refusals that do not reveal existence."""
from __future__ import annotations

import os

import pytest

import state  # noqa: E402
from causmatch.analysis.places import Roots, check_split
from causmatch.errors import CheckpointError, DataError


@pytest.fixture
def tree(tmp_path):
    """srv/{data,ckpt}, other/srv (a second root with the same name), outside/{data}, srv/out -> outside."""
    for d in ("srv/data", "srv/ckpt", "other/srv/x", "outside/data"):
        (tmp_path / d).mkdir(parents=True)
    os.symlink(tmp_path / "outside", tmp_path / "srv" / "out")
    return tmp_path


def test_labels_are_folder_names_made_unique(tree):
    roots = Roots([tree / "srv", tree / "other" / "srv", tree / "srv"])  # the repeated root counts once
    assert [r.label for r in roots.roots] == ["srv", "srv-2"]
    assert roots.labels() == "srv/, srv-2/"
    assert roots.resolve("srv-2/x", "data") == (tree / "other" / "srv" / "x").resolve()


def test_relative_and_absolute_places_inside_a_root(tree):
    roots = Roots([tree / "srv"])
    assert roots.resolve("srv/data", "data") == (tree / "srv" / "data").resolve()
    assert roots.resolve(str(tree / "srv" / "ckpt"), "checkpoint") == (tree / "srv" / "ckpt").resolve()
    assert roots.resolve("srv", "data") == (tree / "srv").resolve()
    assert roots.resolve("srv/./data/../ckpt", "checkpoint") == (tree / "srv" / "ckpt").resolve()
    assert roots.resolve("srv/missing", "data") == (tree / "srv" / "missing").resolve()  # the loader says it is missing
    assert roots.link(tree / "srv" / "data") == "srv/data" and roots.link(tree / "srv") == "srv"
    assert roots.link(tree / "outside") is None


def test_a_path_inside_a_root_without_its_label(tree):
    roots = Roots([tree / "other" / "srv", tree / "srv"])  # labels srv (other/srv) and srv-2 (srv)
    assert roots.resolve("data", "data") == (tree / "srv" / "data").resolve()  # the first root where it exists
    assert roots.resolve("x", "data") == (tree / "other" / "srv" / "x").resolve()
    assert roots.resolve("srv/x", "data") == (tree / "other" / "srv" / "x").resolve()  # the label wins
    # missing: the loader says so
    assert roots.resolve("nothing", "data") == (tree / "other" / "srv" / "nothing").resolve()
    assert roots.link(tree / "srv" / "data") == "srv-2/data"
    assert roots.resolve(".", "data") == (tree / "other" / "srv").resolve()
    assert roots.resolve("../srv", "data") == (tree / "other" / "srv").resolve()  # .. back into the same root


@pytest.mark.parametrize("value", [
    "../outside/data", "srv/../outside/data", "srv/data/../../outside/data", "srv/out", "srv/out/data",
    "out", "out/data", "srv/missing/../../outside", "missing/../../outside", "..", "../other", "/", "/etc", "~",
    "", "   ", "srv/\x00", "data/../../outside",
])
@pytest.mark.parametrize("kind,cls", [("data", DataError), ("checkpoint", CheckpointError)])
def test_outside_the_roots_is_not_allowed(tree, value, kind, cls):
    roots = Roots([tree / "srv"])
    with pytest.raises(cls, match="not allowed"):
        roots.resolve(value, kind)
    assert not roots.allowed(value, kind)


def test_refusal_does_not_reveal_whether_the_path_exists(tree):
    roots = Roots([tree / "srv"])
    messages = []
    for value in (tree / "outside" / "data", tree / "outside" / "nothing-here"):
        with pytest.raises(DataError) as err:
            roots.resolve(str(value), "data")
        messages.append(str(err.value).replace(str(value), "VALUE"))
    assert messages[0] == messages[1]
    assert str(tree / "srv") not in messages[0]  # the server path of a root is never shown, only its label


def test_redact_replaces_root_paths_by_labels(tree):
    roots = Roots([tree / "srv"])
    real = (tree / "srv").resolve()
    assert roots.redact(f"dataset folder {real}/data does not exist") == "dataset folder srv/data does not exist"


@pytest.mark.parametrize("split", ["../../..", "test/../../x", "train", "", "TEST", "test "])
def test_split_must_be_one_of_the_folder_splits(split):
    with pytest.raises(DataError, match="not allowed"):
        check_split(split, ["test", "dev"])
    assert check_split("dev", ["test", "dev"]) == "dev"
    with pytest.raises(DataError, match="no splits"):
        check_split("test", [])


def test_app_roots_default_and_command_line(tree):
    args = state.parse_args(["--data", str(tree / "srv" / "data"), "--checkpoint", str(tree / "srv" / "ckpt")])
    roots = state.app_roots(args)
    labels = [r.label for r in roots.roots]
    assert labels[:2] == ["checkpoints", "assets"] and "data" in labels and "ckpt" in labels
    args = state.parse_args(["--root", str(tree / "srv"), "--root", str(tree / "other" / "srv")])
    assert args.roots == (str(tree / "srv"), str(tree / "other" / "srv"))
    roots = state.app_roots(args)  # --root replaces the default roots
    assert [r.label for r in roots.roots] == ["srv", "srv-2"]
    view = state.default_view(state.parse_args(["--root", str(tree / "srv"), "--data", str(tree / "srv" / "data")]))
    assert view["data"] == "srv/data"  # links carry places relative to a root, never server paths
