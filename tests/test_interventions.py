"""Interventions: hand-checked outputs, masks respected, both directions, batch-independent randomness."""
import pytest
import torch

from causmatch.errors import ConfigError
from causmatch.interventions import (COUNTERFACTUAL_KINDS, Identity, KeepRegions, KeepWords, MaskRegions,
                                     MaskWords, OnlyQueries, Random, Reversed, Shuffle, SwapWords, Uniform,
                                     parse_intervention)

ATTN = torch.tensor([[0.5, 0.3, 0.2, 0.0],
                     [0.1, 0.1, 0.8, 0.0],
                     [0.25, 0.25, 0.5, 0.0]])  # [Q=3, K=4], key 3 is padding
KM = torch.tensor([[True, True, True, False]])  # [1, K]

ALL = [Identity(), Random(), Uniform(), Reversed(), Shuffle(), MaskRegions((1,)), MaskWords((0,)),
       KeepRegions((2,)), KeepWords((1,)), SwapWords(0, 2), OnlyQueries(Random(), (1,))]


@pytest.mark.parametrize("iv", ALL, ids=lambda iv: iv.name)
@pytest.mark.parametrize("query", ["words", "regions"])
def test_shape_kept_and_masked_keys_zero(iv, query):
    attn = torch.rand(2, 3, 5, 4)
    km = torch.tensor([True, True, False, True]).view(1, 1, 1, 4)
    out = iv.apply(attn * km, km, query=query)
    assert out.shape == attn.shape
    assert (out[..., 2] == 0).all()
    assert (out >= 0).all()


def test_hand_worked_deterministic():
    torch.testing.assert_close(Identity().apply(ATTN, KM), ATTN)
    torch.testing.assert_close(Uniform().apply(ATTN, KM), KM.float().expand(3, 4) / 3)
    torch.testing.assert_close(Reversed().apply(ATTN, KM), torch.tensor([[0.0, 0.2, 0.3, 0.0],
                                                                         [0.7, 0.7, 0.0, 0.0],
                                                                         [0.25, 0.25, 0.0, 0.0]]))
    # t2i (rows are words): masking region 1 zeroes column 1, masking word 0 zeroes row 0
    assert (MaskRegions((1,)).apply(ATTN, KM, query="words")[:, 1] == 0).all()
    out = MaskWords((0,)).apply(ATTN, KM, query="words")
    assert (out[0] == 0).all() and torch.equal(out[1:], ATTN[1:])
    # i2t (rows are regions, columns words): masking word 0 zeroes column 0; region 2 zeroes row 2
    assert (MaskWords((0,)).apply(ATTN, KM, query="regions")[:, 0] == 0).all()
    assert (MaskRegions((2,)).apply(ATTN, KM, query="regions")[2] == 0).all()
    kept = KeepRegions((2,)).apply(ATTN, KM, query="words")
    assert torch.equal(kept[:, 2], ATTN[:, 2]) and (kept[:, :2] == 0).all()
    assert torch.equal(SwapWords(0, 2).apply(ATTN, KM, query="words"), ATTN[[2, 1, 0]])
    assert torch.equal(SwapWords(0, 2).apply(ATTN, KM, query="regions"), ATTN[:, [2, 1, 0, 3]])


def test_out_of_range_indices_have_no_effect():
    assert torch.equal(MaskWords((7,)).apply(ATTN, KM), ATTN)
    assert torch.equal(SwapWords(1, 9).apply(ATTN, KM), ATTN)


def test_random_is_uniform_0_2_and_keyed_by_ids():
    attn = torch.zeros(40, 50, 12, 36)
    km = torch.ones(1, 1, 1, 36, dtype=torch.bool)
    out = Random().apply(attn, km)
    assert 0 <= out.min() and out.max() < 2
    assert abs(out.mean().item() - 1.0) < 0.01 and abs(out.var().item() - 1 / 3) < 0.01
    assert not torch.equal(Random(seed=1).apply(attn, km), out)
    torch.testing.assert_close(Random(seed=0).apply(attn, km), out)


@pytest.mark.parametrize("iv", [Random(seed=4), Shuffle(seed=2)], ids=lambda iv: iv.name)
def test_stochastic_results_do_not_depend_on_batching(iv):
    """A pair's counterfactual depends on (seed, ids, q, k) only — not on where it sits in a batch."""
    attn = torch.rand(6, 8, 5, 7)
    km = (torch.rand(6, 1, 1, 7) > 0.3)
    img_ids, cap_ids = torch.arange(100, 106).view(6, 1), torch.arange(200, 208).view(1, 8)
    full = iv.apply(attn * km, km, pair_ids=(img_ids, cap_ids))
    part = iv.apply((attn * km)[2:5, 3:6], km[2:5], pair_ids=(img_ids[2:5], cap_ids[:, 3:6]))
    torch.testing.assert_close(part, full[2:5, 3:6])
    # aligned-pairs layout [N, Q, K] gives the same values for the same (image, caption) ids
    n = torch.tensor([1, 4])
    aligned = iv.apply((attn * km)[n, n], km[n, 0], pair_ids=(img_ids[n, 0], cap_ids[0, n]))
    torch.testing.assert_close(aligned, full[n, n])


def test_shuffle_permutes_valid_keys_of_each_row():
    attn = torch.rand(4, 6, 9)
    km = torch.tensor([True] * 6 + [False] * 3).view(1, 1, 9)
    out = Shuffle(seed=7).apply(attn * km, km)
    torch.testing.assert_close(out[..., :6].sort(-1).values, (attn * km)[..., :6].sort(-1).values)
    assert (out[..., 6:] == 0).all()
    assert not torch.equal(out, attn * km)


def test_only_queries_changes_only_those_rows():
    out = OnlyQueries(Uniform(), (1,)).apply(ATTN, KM)
    assert torch.equal(out[[0, 2]], ATTN[[0, 2]])
    torch.testing.assert_close(out[1], torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0]))


def test_properties_and_seeds():
    assert Random().stochastic and Shuffle().stochastic and not Reversed().stochastic
    assert OnlyQueries(Random(), (0,)).stochastic and not OnlyQueries(Uniform(), (0,)).stochastic
    assert Random().with_seed(5) == Random(seed=5) and Reversed().with_seed(5) == Reversed()
    assert OnlyQueries(Random(), (0,)).with_seed(2).inner == Random(seed=2)
    for iv in ALL:
        assert isinstance(iv.describe(), str) and iv.describe()
        hash(iv)  # usable as a cache key


@pytest.mark.parametrize("iv", [iv for iv in ALL if not isinstance(iv, OnlyQueries)], ids=lambda iv: iv.name)
def test_parse_round_trips_name(iv):
    assert parse_intervention(iv.name) == iv


def test_parse_specs():
    assert [parse_intervention(k).name for k in COUNTERFACTUAL_KINDS] == list(COUNTERFACTUAL_KINDS)
    assert parse_intervention("mask-regions=0,3") == MaskRegions((0, 3))
    assert parse_intervention("swap-words=1,4") == SwapWords(1, 4)
    assert parse_intervention("random", seed=9) == Random(seed=9)
    assert parse_intervention(None) == Identity() == parse_intervention("none")
    assert parse_intervention("random=0.5,1.5") == Random(0.5, 1.5)


@pytest.mark.parametrize("spec", ["bogus", "mask-regions=", "mask-regions=a", "swap-words=1", "mask-words=-1",
                                  "random=2,1", "uniform=3"])
def test_parse_rejects_bad_specs_with_one_line(spec):
    with pytest.raises(ConfigError) as err:
        parse_intervention(spec)
    assert "\n" not in str(err.value)


def _reference_counter_hash(shape, seed, query, pair_ids):
    """The counter hash written plainly on int64 (the first implementation), to pin the int32 one bit for bit."""
    from causmatch.interventions import _M32, _QUERY_SALT, _default_ids, _mix
    lead, (Q, K) = shape[:-2], shape[-2:]
    img, cap = pair_ids if pair_ids is not None else _default_ids(lead, "cpu")
    h = _mix(torch.tensor((seed ^ _QUERY_SALT[query]) & _M32))
    h = _mix(h ^ (torch.as_tensor(img).long() & _M32))
    h = _mix(h ^ (torch.as_tensor(cap).long() & _M32)).expand(lead).unsqueeze(-1).unsqueeze(-1)
    return _mix(_mix(h ^ torch.arange(Q).view(Q, 1)) ^ torch.arange(K).view(1, K))


@pytest.mark.parametrize("shape,seed,ids", [
    ((7, 5, 13, 37), 3, None),  # odd sizes: vectorised bodies and scalar tails both run
    ((9, 11, 5), 123456789, (torch.arange(9) * 7919 + 2**31, torch.arange(9) * 104729)),
    ((3, 4, 6, 9), 2**32 - 1, (torch.arange(3).view(3, 1) + 2**32 - 5, torch.arange(4).view(1, 4))),
])
@pytest.mark.parametrize("query", ["words", "regions"])
def test_int32_counter_hash_equals_int64_reference_bit_for_bit(shape, seed, ids, query):
    from causmatch.interventions import counter_hash
    ref = _reference_counter_hash(torch.Size(shape), seed, query, ids)
    got = counter_hash(torch.Size(shape), seed, query, ids, "cpu")
    assert got.dtype == torch.int64 and torch.equal(got, ref)
    assert int(ref.min()) >= 0 and int(ref.max()) < 2**32 and int(ref.max()) >= 2**31  # high bit exercised
    drawn = Random(low=0.5, high=1.5, seed=seed).apply(torch.rand(shape), torch.ones(shape, dtype=torch.bool),
                                                       query=query, pair_ids=ids)
    assert torch.equal(drawn, (0.5 + 1.0 * (ref.to(torch.float64) / 2.0**32)).to(torch.float32))


@pytest.mark.parametrize("spec, message", [
    ("swap-words=2,2", "two different words"), ("mask-regions=1,3,1", "1 more than once"),
    ("keep-words=0,,1", "empty target"), ("keep-regions", "needs its regions"), ("shuffle=2", "takes no targets"),
    ("random=0,inf", "finite bounds"), ("mask-words=1e3", "whole numbers"),
])
def test_parse_refuses_ambiguous_targets(spec, message):
    with pytest.raises(ConfigError, match=message) as err:
        parse_intervention(spec)
    assert "\n" not in str(err.value)


def test_validate_checks_targets_against_sizes_and_returns_the_intervention():
    from causmatch.interventions import validate_intervention

    iv = MaskRegions((0, 35))
    assert iv.validate(n_regions=36) is iv and iv.validate(n_words=1) is iv  # the other axis is not checked
    with pytest.raises(ConfigError, match="region 36 out of range for image 2 — valid regions: 0..35"):
        MaskRegions((1, 36)).validate(n_regions=36, scope=" for image 2")
    with pytest.raises(ConfigError, match="word 7 out of range — valid words: 0..6"):
        validate_intervention("swap-words=0,7", n_words=7)
    with pytest.raises(ConfigError, match="no words to target"):
        KeepWords((0,)).validate(n_words=0)
    for untargeted in (Identity(), Random(), Uniform(), Reversed(), Shuffle()):
        assert untargeted.validate(n_words=1, n_regions=1) is untargeted
    with pytest.raises(ConfigError, match="query 5 out of range"):
        OnlyQueries(Uniform(), (5,)).validate(n_words=3, n_regions=4)
    with pytest.raises(ConfigError, match="word 4 out of range"):
        OnlyQueries(MaskWords((4,)), (0,)).validate(n_words=3, n_regions=9)


def test_target_rules_tell_pickers_the_axis_and_count():
    from causmatch.interventions import MAX_TARGETS, target_rule

    assert target_rule("mask-regions").axis == "regions" and target_rule("keep-words").axis == "words"
    assert (target_rule("swap-words").min_count, target_rule("swap-words").max_count) == (2, 2)
    assert (target_rule("keep-regions").min_count, target_rule("keep-regions").max_count) == (1, MAX_TARGETS)
    assert all(target_rule(k) is None for k in ("none", "random", "uniform", "reversed", "shuffle", "bogus"))


@pytest.mark.parametrize("bad", [(), (1, 1), (-2,), (1.5,), ("x",), (True,), (None,)])
def test_objects_refuse_bad_indices_at_construction(bad):
    with pytest.raises(ConfigError):
        MaskWords(bad)


def test_integral_numbers_of_any_type_are_accepted():
    import numpy as np

    assert MaskRegions((np.int64(2), 3.0, "4")).indices == (2, 3, 4)
