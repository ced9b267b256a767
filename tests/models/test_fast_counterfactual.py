"""The counterfactual fast path's pieces: draws bit-identical to the interventions' own ``apply`` in any layout,
the sorting network, and chunking that changes nothing but float rounding.

Parity of whole matrices with the reference (every kind × direction × norm × pooling, padded on both sides) is in
test_implementations.py; shard-size invariance in test_fast_path.py.
"""
import itertools

import pytest
import torch

from causmatch.counter_hash import counter_hash, counter_hash32, entry_hash32_, pair_hash32
from causmatch.interventions import COUNTERFACTUAL_KINDS, Random, parse_intervention
from causmatch.interventions.maps import _network, _network_sort_, shuffle_keys
from causmatch.models import fast_counterfactual as FC
from tests.models.tiny_matcher import CAPTIONS, make_images, make_matcher

M32 = 0xFFFFFFFF


def _bits(values) -> torch.Tensor:
    """int32 tensors holding the given unsigned 32-bit values."""
    v = torch.as_tensor(values, dtype=torch.int64) & M32
    return torch.where(v >= 2**31, v - 2**32, v).to(torch.int32)


EDGE = [0, 1, 2, 3, 2**24 - 1, 2**24, 2**24 + 1, 2**24 + 2, 2**24 + 3, 2**25 + 1, 2**25 + 2, 2**25 + 6,
        2**31 - 1, 2**31, 2**31 + 1, 2**31 + 128, 2**31 + 384, 2**32 - 129, 2**32 - 128, 2**32 - 1]


@pytest.mark.parametrize("low,high", [(0.0, 2.0), (0.0, 1.0), (0.0, 4.0), (0.0, 2.0**-20), (0.0, 2.0**40),
                                      (0.5, 1.5), (0.0, 3.0), (1.0, 2.0), (0.25, 0.5)])
def test_random_draws_are_the_float64_formula_bit_for_bit(low, high):
    """The float32 shortcut (low 0, power-of-two scale) and the float64 path both give the defining formula."""
    g = torch.Generator().manual_seed(7)
    u = torch.cat([torch.tensor(EDGE), torch.randint(0, 2**32, (200_000,), generator=g)])
    want = (low + (high - low) * (u.to(torch.float64) / 2.0**32)).to(torch.float32)
    got = Random(low=low, high=high).values(_bits(u), torch.float32)
    assert got.dtype == torch.float32 and torch.equal(got, want)
    half = Random(low=low, high=high).values(_bits(u), torch.float64)  # other dtypes: the float64 path
    assert torch.equal(half, low + (high - low) * (u.to(torch.float64) / 2.0**32))


@pytest.mark.parametrize("layout", [(0, 1, 2, 3), (0, 3, 2, 1), (3, 2, 0, 1), (2, 3, 1, 0)])
def test_entry_hash_in_any_layout_equals_the_counter_hash(layout):
    """The fast path hashes ``[X, K, ., .]`` maps: each entry's bits are those of ``counter_hash32`` on
    ``[I, C, Q, K]`` (the layout ``apply`` uses), whatever the axes' order."""
    I, C, Q, K = 3, 5, 4, 7
    img, cap = torch.tensor([9, 2, 2**32 - 3]), torch.tensor([0, 11, 4, 2**31, 5])
    ref = counter_hash32(torch.Size((I, C, Q, K)), 12345, "regions", (img.view(I, 1), cap.view(1, C)), "cpu")
    ids = [img.view(I, 1, 1, 1), cap.view(1, C, 1, 1), torch.arange(Q, dtype=torch.int32).view(1, 1, Q, 1),
           torch.arange(K, dtype=torch.int32).view(1, 1, 1, K)]
    img_p, cap_p, q_p, k_p = (t.permute(*layout) for t in ids)
    got = entry_hash32_(pair_hash32(12345, "regions", img_p, cap_p, "cpu"), q_p, k_p)
    assert torch.equal(got, ref.permute(*layout))


def _argsort_shuffle(attn, km, h):
    """The permutation as first written: stable argsort of the int64 hash along the last axis."""
    K = attn.shape[-1]
    perm = torch.where(km, h, torch.tensor(1 << 40)).argsort(dim=-1, stable=True)
    pos = torch.arange(K).expand_as(attn)
    order = torch.where(km, pos, pos + K).argsort(dim=-1, stable=True)
    return torch.zeros_like(attn).scatter(-1, order, attn.gather(-1, perm))


@pytest.mark.parametrize("K", [1, 2, 3, 12, 36, 37])
@pytest.mark.parametrize("masked", ["none", "scattered", "padding at the end"])
def test_shuffle_is_the_same_permutation_on_any_axis(K, masked):
    shape = (4, 5, 6, K)
    h = counter_hash(torch.Size(shape), 3, "words", None, "cpu")
    h[0, 0, 0] = h[0, 0, 0, 0]  # a row of equal hashes: ties go to the earlier key
    km = {"none": torch.ones(4, 1, 1, K, dtype=torch.bool),
          "scattered": torch.rand(4, 1, 1, K, generator=torch.Generator().manual_seed(K)) < 0.6,
          "padding at the end": torch.arange(K).view(1, 1, 1, K) < torch.tensor([K, 1, K // 2, 0]).view(4, 1, 1, 1),
          }[masked]
    attn = torch.rand(shape) * km
    want = _argsort_shuffle(attn, km.expand(shape), h)
    h32 = _bits(h)
    assert torch.equal(shuffle_keys(attn, km.expand(shape), h32.clone(), -1), want)
    outer = shuffle_keys(attn.movedim(-1, 1).contiguous(), km.movedim(-1, 1), h32.movedim(-1, 1).contiguous(), 1)
    assert torch.equal(outer.movedim(1, -1), want)


@pytest.mark.parametrize("n", range(1, 13))
def test_sorting_network_sorts_every_zero_one_input(n):
    """The 0–1 principle: a comparator network that sorts every 0/1 sequence sorts every sequence."""
    x = torch.tensor(list(itertools.product([0, 1], repeat=n)), dtype=torch.int64).t().contiguous()  # [n, 2^n]
    assert torch.equal(_network_sort_(x.clone(), 0), x.sort(0).values)
    for a, d, m in _network(n):
        assert 1 <= m <= d and a + d + m <= n  # the two slabs of a run never overlap


@pytest.mark.parametrize("n", [17, 36, 50, 100])
def test_sorting_network_sorts_long_rows(n):
    x = torch.randint(0, 2**40, (3, n, 4, 5), generator=torch.Generator().manual_seed(n))
    x[0, :, 0, 0] = 5  # equal keys
    assert torch.equal(_network_sort_(x.clone(), 1), x.sort(1).values)


def _encoded(m):
    feats, mask = make_images(n=7)
    with torch.no_grad():
        return m.encode_images(feats, mask), m.encode_captions(CAPTIONS)


@pytest.mark.parametrize("direction", ["t2i", "i2t", "both"])
def test_chunking_changes_only_rounding(direction, monkeypatch):
    """One gram owner per chunk (the smallest chunks) gives the one-chunk result, every kind at once, to the
    rounding of vectorised loop bodies vs scalar tails (the tolerance of the shard-size test)."""
    m = make_matcher(direction=direction)
    img, txt = _encoded(m)
    ivs = [parse_intervention(k, seed=4) for k in COUNTERFACTUAL_KINDS]
    ids = (torch.arange(len(img)) * 3 + 1, torch.arange(len(txt)) + 100)
    with torch.no_grad():
        whole = m.similarity_many(img, txt, ivs, pair_ids=ids)
        monkeypatch.setattr(FC, "CHUNK_BYTES", 1)
        assert FC.chunk_rows(7, 100, torch.device("cpu")) == 1
        chunked = m.similarity_many(img, txt, ivs, pair_ids=ids)
        eager = m.similarity_many(img, txt, ivs, pair_ids=ids, impl="eager")
    for w, c, e in zip(whole, chunked, eager):
        torch.testing.assert_close(c.score, w.score, atol=1e-6, rtol=0)
        torch.testing.assert_close(c.score, e.score, atol=1e-5, rtol=0)


def test_chunks_cover_the_shard_on_other_devices():
    assert FC.chunk_rows(1000, 10**6, torch.device("meta")) == 1000
    assert FC.chunk_rows(1000, 10**9, torch.device("cpu")) == 1
    assert FC.chunk_rows(3, 1, torch.device("cpu")) == 3


@pytest.mark.parametrize("direction", ["t2i", "i2t"])
@pytest.mark.parametrize("mask", ["padding at the end", "scattered"])
def test_keys_past_the_valid_ones_are_left_out_exactly_where_they_weigh_zero(direction, mask):
    """Trailing padding is trimmed per chunk; a scattered mask is not — both equal the eager path."""
    m = make_matcher(direction=direction)
    img, txt = _encoded(m)
    if mask == "scattered":  # a hole in the middle of image 2's regions (its region vector zeroed, as encoding does)
        img.mask[2, 1] = False
        img.regions[2, 1] = 0
        img.gram[2, 1, :] = 0
        img.gram[2, :, 1] = 0
    assert (FC.trailing_key_counts(img.mask.view(*img.mask.shape, 1, 1)) is None) == (mask == "scattered")
    ivs = [parse_intervention(k, seed=6) for k in COUNTERFACTUAL_KINDS]
    with torch.no_grad():
        fast = m.similarity_many(img, txt, ivs)
        eager = m.similarity_many(img, txt, ivs, impl="eager")
    for f, e in zip(fast, eager):
        torch.testing.assert_close(f.score, e.score, atol=1e-5, rtol=0)
