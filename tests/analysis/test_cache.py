"""The array cache: round trip, stale keys, torn files and interrupted writes are never read."""
import os

import numpy as np
import pytest

from causmatch.analysis.cache import ArrayCache, cache_key


def test_round_trip_and_stale_key(tmp_path):
    cache = ArrayCache(tmp_path / "c")
    key = cache_key("ckpt-fp", "data-fp", {"kind": "random", "seed": 0})
    arrays = {"sims": np.arange(6, dtype=np.float32).reshape(2, 3), "tokens": np.array('["a"]')}
    cache.save("sims", key, arrays)
    got = cache.load("sims", key)
    assert np.array_equal(got["sims"], arrays["sims"]) and str(got["tokens"]) == '["a"]'
    assert cache.load("sims", cache_key("other-ckpt", "data-fp", {"kind": "random", "seed": 0})) is None
    assert cache.entries() == ["sims"]
    assert cache_key("a", {"x": 1, "y": 2}) == cache_key("a", {"y": 2, "x": 1})


def test_disabled_cache_misses():
    cache = ArrayCache(None)
    assert cache.save("x", "k", {"a": np.zeros(2)}) is None and cache.load("x", "k") is None


def test_truncated_or_corrupt_file_is_a_miss(tmp_path):
    cache = ArrayCache(tmp_path)
    data = np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32)
    path = cache.save("m", "k", {"a": data})
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])                        # torn file
    assert cache.load("m", "k") is None
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF                                 # one flipped byte in the payload
    path.write_bytes(bytes(flipped))
    assert cache.load("m", "k") is None                            # zip CRC-32 catches it
    cache.save("m", "k", {"a": data})                              # rebuilt
    assert np.array_equal(cache.load("m", "k")["a"], data)


def test_interrupted_write_never_replaces_the_entry(tmp_path, monkeypatch):
    cache = ArrayCache(tmp_path)
    old = {"a": np.ones(3, np.float32)}
    cache.save("m", "k1", old)

    def crash(fh, **arrays):                                      # dies after writing half a file
        fh.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.save("m", "k2", {"a": np.zeros(3, np.float32)})
    monkeypatch.undo()
    assert not list(tmp_path.glob(".*.tmp"))                       # temp removed
    assert cache.load("m", "k2") is None                           # the new entry does not exist
    assert np.array_equal(cache.load("m", "k1")["a"], old["a"])    # the old one is intact


def test_leftover_temp_from_a_killed_process_is_ignored_and_cleaned(tmp_path):
    cache = ArrayCache(tmp_path)
    tmp = tmp_path / ".m.abc123.tmp"
    tmp.write_bytes(b"garbage")
    os.utime(tmp, (0, 0))                                          # old: its writer is long gone
    assert cache.load("m", "k") is None
    cache.save("m", "k", {"a": np.zeros(1)})
    assert not tmp.exists() and cache.load("m", "k") is not None
