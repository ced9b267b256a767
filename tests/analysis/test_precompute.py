"""Ahead-of-time caches: the compute policy, the failure table from cached per-query arrays, build_cache."""
import numpy as np
import pandas as pd
import pytest

from causmatch.analysis import AnalysisSession, build_failure_table
from causmatch.analysis import precompute as P
from causmatch.analysis.cache import ArrayCache
from causmatch.checkpoint import save_matcher
from causmatch.errors import ConfigError, DataError
from tests.analysis.analysis_helpers import tiny_matcher, write_tiny

KINDS = ["random", "uniform", "reversed", "shuffle"]


@pytest.fixture
def ckpt(tmp_path):
    path = tmp_path / "ckpt"
    save_matcher(tiny_matcher(), path)
    return path


def _session(ckpt, split, cache, compute="auto", seed=0):
    from causmatch.checkpoint import load_matcher
    return AnalysisSession(load_matcher(ckpt), split, checkpoint_path=ckpt, cache_dir=cache, compute=compute)


def test_build_cache_writes_what_a_later_session_reads(ckpt, tiny_split, tmp_path):
    cache = tmp_path / "cache"
    rows = P.build_cache(_session(ckpt, tiny_split, cache, "always"), KINDS, samples=2, seed=3)
    assert {r["status"] for r in rows} == {"built"}
    assert len(rows) == 1 + 5 + 2 * 5  # gallery, 5 matrices, 5 facts per direction
    fresh = _session(ckpt, tiny_split, None, "always")  # no cache: computes everything itself
    reader = _session(ckpt, tiny_split, cache, "never")  # cache only: a miss would raise
    for kind in [None, *KINDS]:
        np.testing.assert_array_equal(reader.similarity(kind, samples=2, seed=3),
                                      fresh.similarity(kind, samples=2, seed=3))
    for direction in ("t2i", "i2t"):
        for kind in KINDS:
            got = reader.failure_table(direction, kind, samples=2, seed=3)
            want = build_failure_table(fresh.similarity(), fresh.similarity(kind, samples=2, seed=3),
                                       tiny_split.caps_per_image, direction,
                                       pointing=got["pointing"].to_numpy() if direction == "t2i" else None,
                                       captions=tiny_split.captions)
            pd.testing.assert_frame_equal(got, want)
    again = P.build_cache(_session(ckpt, tiny_split, cache, "always"), KINDS, samples=2, seed=3)
    assert {r["status"] for r in again} == {"cached"}


def test_failure_table_from_cached_facts_needs_no_matrix(ckpt, tiny_split, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    P.build_cache(_session(ckpt, tiny_split, cache, "always"), ["random"])
    reader = _session(ckpt, tiny_split, cache, "never")

    def no_matrix(*a, **k):
        raise AssertionError("the failure table loaded a whole matrix")

    monkeypatch.setattr(reader, "similarity", no_matrix)
    for direction in ("t2i", "i2t"):
        df = reader.failure_table(direction, "random")
        assert len(df) == (tiny_split.n_captions if direction == "t2i" else tiny_split.n_images)


def test_failure_table_equals_the_matrix_version_with_other_and_fits(tiny_split, tmp_path):
    a = AnalysisSession(tiny_matcher(seed=0), tiny_split, cache_dir=tmp_path / "a")
    b = AnalysisSession(tiny_matcher(seed=1), tiny_split, cache_dir=tmp_path / "b")
    fits = np.random.default_rng(0).random((tiny_split.n_images, tiny_split.n_captions)) < 0.3
    for direction in ("t2i", "i2t"):
        got = a.failure_table(direction, "shuffle", b, fits=fits)
        want = build_failure_table(a.similarity(), a.similarity("shuffle"), tiny_split.caps_per_image, direction,
                                   other_sims=b.similarity(), captions=tiny_split.captions, fits=fits,
                                   pointing=got["pointing"].to_numpy() if direction == "t2i" else None)
        pd.testing.assert_frame_equal(got, want)
    # read back from disk by a new session: the same table
    a2 = AnalysisSession(tiny_matcher(seed=0), tiny_split, cache_dir=tmp_path / "a", compute="never")
    b2 = AnalysisSession(tiny_matcher(seed=1), tiny_split, cache_dir=tmp_path / "b", compute="never")
    pd.testing.assert_frame_equal(a2.failure_table("i2t", "shuffle", b2, fits=fits),
                                  a.failure_table("i2t", "shuffle", b, fits=fits))
    with pytest.raises(DataError, match="fit matrix"):
        a.failure_table("t2i", "shuffle", fits=fits[:, :-1])


def test_large_split_is_not_scored_in_auto_mode(ckpt, tiny_split, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setattr(P, "LARGE_SPLIT_PAIRS", tiny_split.n_images * tiny_split.n_captions - 1)
    s = _session(ckpt, tiny_split, cache, "auto")
    with pytest.raises(P.CacheMissing) as err:
        s.failure_table("t2i", "random", seed=5)
    msg = str(err.value)
    assert "\n" not in msg and "causmatch cache" in msg and "--interventions none" in msg
    assert f"--checkpoint {ckpt}" in msg and f"--cache {cache}" in msg and "--seed 5" in msg
    assert isinstance(err.value, DataError)
    P.build_cache(_session(ckpt, tiny_split, cache, "always"), ["random"], seed=5)  # what the message says
    assert len(_session(ckpt, tiny_split, cache, "auto").failure_table("t2i", "random", seed=5))
    with pytest.raises(P.CacheMissing, match="'uniform'"):
        _session(ckpt, tiny_split, cache, "auto").similarity("uniform")
    monkeypatch.setattr(P, "LARGE_SPLIT_PAIRS", 10**12)
    assert _session(ckpt, tiny_split, cache, "auto").similarity("uniform").shape == (6, 12)


def test_never_mode_and_bad_modes(tiny_split, tmp_path):
    s = AnalysisSession(tiny_matcher(), tiny_split, cache_dir=tmp_path / "c", compute="never")
    with pytest.raises(P.CacheMissing, match="read from the cache only — save the checkpoint"):
        s.similarity()
    with pytest.raises(ConfigError, match="compute must be one of"):
        AnalysisSession(tiny_matcher(), tiny_split, compute="sometimes")


def test_stale_cache_is_rebuilt_not_read(ckpt, tmp_path):
    data = tmp_path / "data"
    split = write_tiny(data, seed=0)
    cache = tmp_path / "cache"
    P.build_cache(_session(ckpt, split, cache, "always"), ["random"])
    split2 = write_tiny(data, seed=1)  # other captions and features: another fingerprint
    with pytest.raises(P.CacheMissing):
        _session(ckpt, split2, cache, "never").failure_table("t2i", "random")


def test_rows_of_the_matrix_equal_the_whole(tiny_session):
    from causmatch.interventions import resolve_intervention
    iv = resolve_intervention("random", 0)
    whole = tiny_session._compute_sims(iv, 3, 0, None)
    parts = [tiny_session._compute_sims(iv, 3, 0, None, rows=r) for r in ((0, 2), (2, 5), (5, 6))]
    np.testing.assert_allclose(np.concatenate(parts), whole, rtol=0, atol=1e-6)


def test_put_similarity_refuses_wrong_shape_and_non_finite(tiny_session):
    n_i, n_c = tiny_session.split.n_images, tiny_session.split.n_captions
    with pytest.raises(DataError, match="does not fit split"):
        tiny_session.put_similarity(None, np.zeros((n_i, n_c + 1), np.float32))
    bad = np.zeros((n_i, n_c), np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(DataError, match="NaN"):
        tiny_session.put_similarity(None, bad)
    tiny_session.put_similarity("uniform", np.ones((n_i, n_c), np.float32))
    assert tiny_session.similarity("uniform").sum() == n_i * n_c


@pytest.mark.parametrize("text, want", [
    ("none,random", ["none", "random"]),
    ("random, mask-regions=0,3,uniform", ["random", "mask-regions=0,3", "uniform"]),
    ("Random,random", ["random"]),
])
def test_parse_interventions(text, want):
    assert P.parse_interventions(text) == want


@pytest.mark.parametrize("text, message", [
    ("random,,uniform", "empty entry"), ("", "empty entry"), ("random,bogus", "unknown intervention"),
    ("3,random", "unknown intervention"),
])
def test_parse_interventions_refuses(text, message):
    with pytest.raises(ConfigError, match=message):
        P.parse_interventions(text)


def test_out_of_range_target_is_refused_before_any_work(ckpt, tiny_split, tmp_path):
    s = _session(ckpt, tiny_split, tmp_path / "cache", "always")
    with pytest.raises(ConfigError, match="mask-regions"):
        P.build_cache(s, ["mask-regions=99"])
    assert [e for e in ArrayCache(tmp_path / "cache").entries() if not e.endswith("-limits")] == []  # no work done


def test_array_cache_has_and_read_only(tmp_path):
    c = ArrayCache(tmp_path / "c")
    c.save("x", "k1", {"a": np.arange(3)})
    assert c.has("x", "k1") and not c.has("x", "k2") and not c.has("y", "k1")
    ro = ArrayCache(tmp_path / "c", read_only=True)
    assert ro.save("z", "k", {"a": np.arange(2)}) is None and not (tmp_path / "c" / "z.npz").exists()
    (tmp_path / "c" / "x.npz").write_bytes(b"PK\x03\x04 torn")
    assert not c.has("x", "k1")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        ArrayCache(tmp_path / "file")


def test_mapped_load_equals_the_read_and_never_writes_the_file(tmp_path):
    c = ArrayCache(tmp_path / "c")
    big = np.random.default_rng(0).random((700, 400)).astype(np.float32)  # > 1 MiB: mapped
    small = np.arange(5)
    c.save("x", "k", {"big": big, "small": small, "fortran": np.asfortranarray(big[:, :390].astype(np.float64)),
                      "text": np.array('["a", "b"]')})
    got = c.load("x", "k", mmap=True)
    assert isinstance(got["big"], np.memmap) and not isinstance(got["small"], np.memmap)
    for name, want in c.load("x", "k").items():
        np.testing.assert_array_equal(got[name], want)
    before = (tmp_path / "c" / "x.npz").read_bytes()
    got["big"][0, 0] = -1.0  # copy-on-write: private to this process
    del got
    assert (tmp_path / "c" / "x.npz").read_bytes() == before
    assert c.load("x", "other", mmap=True) is None
    path = tmp_path / "c" / "x.npz"
    path.write_bytes(before[: len(before) // 2])
    assert c.load("x", "k", mmap=True) is None


def test_large_split_session_maps_its_entries(ckpt, tiny_split, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    P.build_cache(_session(ckpt, tiny_split, cache, "always"), ["random"])
    monkeypatch.setattr(P, "LARGE_SPLIT_PAIRS", 1)
    monkeypatch.setattr("causmatch.analysis.cache._MAP_MIN_BYTES", 1)
    reader = _session(ckpt, tiny_split, cache, "auto")
    small = _session(ckpt, tiny_split, None, "always")
    assert isinstance(reader.similarity("random"), np.memmap)
    np.testing.assert_array_equal(reader.similarity("random"), small.similarity("random"))
    a, b = reader.rank_caption_query(3, "random", samples=1), small.rank_caption_query(3, "random", samples=1)
    assert (a.rank, a.cf_rank) == (b.rank, b.cf_rank)
    pd.testing.assert_frame_equal(reader.failure_table("t2i", "random"), small.failure_table("t2i", "random"))


def test_large_split_gallery_and_check_computable(ckpt, tiny_split, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setattr(P, "LARGE_SPLIT_PAIRS", 1)
    s = _session(ckpt, tiny_split, cache, "auto")
    with pytest.raises(P.CacheMissing, match=r"^the encoded gallery of split 'test' .* causmatch cache .*"
                                             r"--interventions none --cache"):
        s.rank_caption_query(0, "random", samples=1)
    with pytest.raises(P.CacheMissing, match="'shuffle' similarity matrix .*--interventions none,shuffle"):
        s.check_computable("shuffle", seed=2)
    assert s.explain(0, 1, intervention="random", samples=2).caption == 1  # one pair needs no whole-split work
    P.build_cache(_session(ckpt, tiny_split, cache, "always"), ["shuffle"], seed=2)
    s2 = _session(ckpt, tiny_split, cache, "auto")
    s2.check_computable("shuffle", seed=2)  # built: nothing to say
    s2.check_computable(None)
    assert s2.rank_caption_query(0, "shuffle", samples=1, seed=2).rank >= 0
    small = _session(ckpt, tiny_split, None, "auto")
    monkeypatch.setattr(P, "LARGE_SPLIT_PAIRS", 10**9)
    small.check_computable("reversed")  # small split: it may compute


def test_put_gallery_is_read_back_and_refuses_a_wrong_size(ckpt, tiny_split, tmp_path):
    cache = tmp_path / "cache"
    built = _session(ckpt, tiny_split, None, "always").gallery()
    s = _session(ckpt, tiny_split, cache, "always")
    with pytest.raises(DataError, match="does not fit split"):
        s.put_gallery(built[0][[0, 1]], built[1])
    s.put_gallery(*built)
    img, txt = _session(ckpt, tiny_split, cache, "never").gallery()  # "never": a miss would raise
    assert np.array_equal(img.regions.numpy(), built[0].regions.numpy()) and txt.tokens == built[1].tokens


@pytest.mark.parametrize("tokens", [[["a", "b"], [], ["c"]], [["a\x1fb", "c"], ["d\x1e"], []]])
def test_gallery_tokens_round_trip(tokens):
    import torch

    from causmatch.analysis.session import _gallery_from_arrays, _gallery_to_arrays
    from causmatch.models import ImageEmb, TextEmb
    img = ImageEmb(torch.zeros(1, 2, 3), torch.ones(1, 2, dtype=torch.bool), torch.zeros(1, 2, 2))
    txt = TextEmb(torch.zeros(3, 2, 3), torch.zeros(3, 2, dtype=torch.bool), torch.zeros(3, 2, 2), tokens)
    assert _gallery_from_arrays(_gallery_to_arrays(img, txt))[1].tokens == tokens


def test_split_limits_are_cached_for_a_large_split(ckpt, tiny_split, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setattr(P, "LARGE_SPLIT_PAIRS", 1)
    want = _session(ckpt, tiny_split, cache, "always").split_limits()

    def no_tokenising(*a, **k):
        raise AssertionError("split limits were computed again")

    monkeypatch.setattr("causmatch.evaluation.split_limits", no_tokenising)
    assert _session(ckpt, tiny_split, cache, "never").split_limits() == want
