"""Links that travel (pure functions): a written link reopens the same view on a server started with other
arguments, and an older link's absolute place from another checkout names the same place here."""
from __future__ import annotations

import os

import pytest

import state
from causmatch.analysis import links
from causmatch.analysis.places import Roots
from causmatch.errors import CheckpointError

SERVERS = [state.AppArgs(), state.AppArgs("srv/c1", "srv/c2", "srv/d", "dev"), state.AppArgs("srv/c1", "", "", "x")]
VIEWS = [
    {},  # every field at its default
    {"data": "assets/data/scenes", "ckpt": "checkpoints/a", "ckpt2": "checkpoints/b", "split": "dev"},
    {"data": "d", "ckpt": "c", "split": "test", "ckpt2": ""},  # the defaults a server's arguments may hide
    {"image": 3, "caption": 17, "word": 2, "region": 4, "iv": "mask-words", "targets": "1,2", "tkind": "mask-words",
     "samples": 64, "seed": 7, "dir": "i2t", "k": 20, "rank_lo": 1, "rank_hi": 9, "sign": "negative", "disagree": 1,
     "cf": "all"},
    {"text": "a red circle & a blue square?", "iv": "uniform", "seed": 2**31 - 1},
]


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("changes", VIEWS)
def test_a_written_link_reopens_the_same_view_on_any_server(server, changes):
    """Whatever the receiving server's command line (its split, checkpoints and dataset), a link written by
    the app gives back exactly the view it was written from, with no warning."""
    view = {**links.default_view(), **changes}
    params = links.link_params(view)
    again, warnings = links.read_link(params, state.default_view(server))
    assert again == view and warnings == []
    for name, raw in params.items():  # short: a field at its default is left out (the places excepted)
        assert name in links.ALWAYS_IN_LINK or raw != str(links.FIELDS[name].default), (name, raw)


def test_every_other_field_of_the_view_is_in_the_round_trip():
    """Fields added later (failure sorting, slices, toggles …) travel too: each non-default value of every
    field is written and read back."""
    for name, field in links.FIELDS.items():
        value = (next(c for c in field.choices if c != field.default) if field.choices else
                 (field.default + 1 if field.type is int else "checkpoints/x" if name in state.PLACES else "v"))
        if name in ("targets", "tkind"):
            continue  # targets belong to a kind: covered above
        view = {**links.default_view(), name: value}
        params = links.link_params(view)
        assert name in params, name
        assert links.read_link(params)[0] == view, name


def test_a_hand_typed_address_keeps_the_servers_places():
    """An address that names neither dataset nor checkpoint (``/retrieval?caption=7``) opens on the server's own."""
    start = state.default_view(state.AppArgs("srv/c1", "srv/c2", "srv/d", "dev"))
    view, _ = links.read_link({"caption": "7"}, start)
    assert (view["data"], view["split"], view["ckpt"], view["ckpt2"], view["caption"]) == \
        (start["data"], "dev", start["ckpt"], start["ckpt2"], 7)
    view, _ = links.read_link({"ckpt": "checkpoints/a"}, start)  # naming a checkpoint: no second one unless named
    assert (view["ckpt"], view["ckpt2"], view["split"]) == ("checkpoints/a", "", "dev")


@pytest.fixture
def checkouts(tmp_path):
    """Two checkouts of the same repository at different paths (``a/repo``, ``b/work/repo``), each with
    checkpoints/ckpt and assets/data; and ``odd``: a root whose folders repeat a root's label."""
    for base in ("a/repo", "b/work/repo"):
        for sub in ("checkpoints/ckpt", "assets/data", "assets/checkpoints/ckpt"):
            (tmp_path / base / sub).mkdir(parents=True)
    (tmp_path / "outside" / "checkpoints" / "secret").mkdir(parents=True)
    return tmp_path


def _roots(base):
    return Roots([base / "checkpoints", base / "assets"])


def test_a_place_named_relative_to_a_root_opens_in_another_checkout(checkouts):
    a, b = _roots(checkouts / "a" / "repo"), _roots(checkouts / "b" / "work" / "repo")
    for kind, inside in (("checkpoint", "checkpoints/ckpt"), ("data", "assets/data")):
        written = a.link(a.resolve(str(checkouts / "a" / "repo" / inside), kind))
        assert written == inside
        assert b.resolve(written, kind) == (checkouts / "b" / "work" / "repo" / inside).resolve()


@pytest.mark.parametrize("old,moved", [
    ("/home/alice/CausMatch/checkpoints/ckpt", "checkpoints/ckpt"),
    ("/home/alice/CausMatch/assets/data", "assets/data"),
    ("/home/alice/CausMatch/assets/data/", "assets/data"),
    ("/srv/x/checkpoints/../checkpoints/ckpt", "checkpoints/ckpt"),
])
def test_an_older_links_absolute_place_from_another_checkout_is_relocated(checkouts, old, moved):
    b = _roots(checkouts / "b" / "work" / "repo")
    with pytest.raises(CheckpointError, match="not allowed"):
        b.resolve(old, "checkpoint")  # still refused as such: only relocated, with a warning, by the app
    assert b.relocate(old) == moved


@pytest.mark.parametrize("old", [
    "/home/alice/CausMatch/checkpoints/missing",    # nothing there here
    "/home/alice/CausMatch/other/ckpt",             # no part is a root's label
    "checkpoints/ckpt",                             # not absolute: resolved as it is, never relocated
    "/x/checkpoints/../../etc",                     # out of the root again
    "/x/checkpoints/ckpt/../../../outside/checkpoints/secret",
    "",
    "/x/checkpoints/\x00",
])
def test_nothing_else_is_relocated(checkouts, old):
    assert _roots(checkouts / "b" / "work" / "repo").relocate(old) is None


def test_an_ambiguous_old_place_is_not_guessed(checkouts):
    """``/…/assets/checkpoints/ckpt`` names assets/checkpoints/ckpt and checkpoints/ckpt: two places, none opened."""
    b = _roots(checkouts / "b" / "work" / "repo")
    assert b.relocate("/old/repo/assets/checkpoints/ckpt") is None
    os.rename(checkouts / "b" / "work" / "repo" / "checkpoints" / "ckpt", checkouts / "b" / "moved")
    assert b.relocate("/old/repo/assets/checkpoints/ckpt") == "assets/checkpoints/ckpt"  # now only one exists


def test_a_symbolic_link_out_of_a_root_is_not_followed(checkouts):
    base = checkouts / "b" / "work" / "repo"
    os.symlink(checkouts / "outside" / "checkpoints", base / "checkpoints" / "out")
    assert _roots(base).relocate("/old/repo/checkpoints/out/secret") is None
