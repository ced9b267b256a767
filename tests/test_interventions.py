"""Interventions: hand-checked outputs, masks respected, both directions, batch-independent randomness."""
import pytest
import torch

from causmatch.errors import ConfigError
from causmatch.interventions import (
    COUNTERFACTUAL_KINDS,
    KINDS,
    Identity,
    KeepRegions,
    KeepWords,
    MaskRegions,
    MaskWords,
    OneWord,
    Random,
    RegionPerRow,
    Reversed,
    Shuffle,
    SwapWords,
    Uniform,
    WordPerRow,
    format_spec,
    get_kind,
    kind_of,
    parse_intervention,
    pickable_kinds,
    target_rule,
)

ATTN = torch.tensor([[0.5, 0.3, 0.2, 0.0],
                     [0.1, 0.1, 0.8, 0.0],
                     [0.25, 0.25, 0.5, 0.0]])  # [Q=3, K=4], key 3 is padding
KM = torch.tensor([[True, True, True, False]])  # [1, K]

ALL = [Identity(), Random(), Uniform(), Reversed(), Shuffle(), MaskRegions((1,)), MaskWords((0,)),
       KeepRegions((2,)), KeepWords((1,)), SwapWords(0, 2), OneWord(Random(), 1)]


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


def test_one_word_changes_only_that_word_row_in_t2i_and_column_in_i2t():
    out = OneWord(Uniform(), 1).apply(ATTN, KM, query="words")  # rows are words
    assert torch.equal(out[[0, 2]], ATTN[[0, 2]])
    torch.testing.assert_close(out[1], torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0]))
    out = OneWord(Uniform(), 1).apply(ATTN, KM, query="regions")  # rows are regions, columns words
    assert torch.equal(out[:, [0, 2, 3]], ATTN[:, [0, 2, 3]])
    torch.testing.assert_close(out[:, 1], torch.full((3,), 1 / 3))
    assert torch.equal(OneWord(Uniform(), 9).apply(ATTN, KM), ATTN)  # past the caption's end: no effect


def test_properties_and_seeds():
    assert Random().stochastic and Shuffle().stochastic and not Reversed().stochastic
    assert OneWord(Random(), 0).stochastic and not OneWord(Uniform(), 0).stochastic
    assert Random().with_seed(5) == Random(seed=5) and Reversed().with_seed(5) == Reversed()
    assert OneWord(Random(), 0).with_seed(2) == OneWord(Random(seed=2), 0)
    described = [iv.describe() for iv in ALL]
    assert all(d.strip() and "\n" not in d for d in described), described  # one line each
    assert len(set(described)) == len(ALL), described  # each says which intervention it is
    for iv in ALL:
        if iv.stochastic:  # the seed is part of what ran
            assert iv.with_seed(7).describe() != iv.describe(), iv
        hash(iv)  # usable as a cache key


@pytest.mark.parametrize("iv", [iv for iv in ALL if kind_of(iv).spec], ids=lambda iv: iv.name)
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
    from causmatch.counter_hash import _M32, _QUERY_SALT, _default_ids, _mix
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
    from causmatch.counter_hash import counter_hash
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
    with pytest.raises(ConfigError, match="one-word: word 5 out of range — valid words: 0..2"):
        OneWord(Uniform(), 5).validate(n_words=3, n_regions=9)
    with pytest.raises(ConfigError, match="word 4 out of range"):
        OneWord(MaskWords((4,)), 0).validate(n_words=3, n_regions=9)
    with pytest.raises(ConfigError, match="region 9 out of range"):
        OneWord(MaskRegions((9,)), 0).validate(n_words=3, n_regions=9)


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


# ---------------------------------------------------------------------- the registry
SPEC_KINDS = [k for k in KINDS.values() if k.spec]


def test_every_intervention_class_is_declared_once():
    import inspect

    import causmatch.interventions as mod
    from causmatch.interventions import Intervention

    classes = {c for _, c in inspect.getmembers(mod, inspect.isclass)
               if issubclass(c, Intervention) and c.__module__.startswith(mod.__name__ + ".")
               and not c.__name__.startswith("_")
               and c is not Intervention}
    declared = [k.cls for k in KINDS.values()]
    assert sorted(declared, key=str) == sorted(classes, key=str) and len(set(declared)) == len(declared)
    assert all(name == k.name for name, k in KINDS.items())


def test_derived_lists_follow_the_registry():
    assert COUNTERFACTUAL_KINDS == ("random", "uniform", "reversed", "shuffle")
    assert pickable_kinds() == ("random", "uniform", "reversed", "shuffle", "mask-regions", "keep-regions",
                                "mask-words", "keep-words", "swap-words", "filtration:uniform", "filtration:random",
                                "filtration:shuffle", "filtration:mask-words", "filtration:keep-words")
    assert [k.name for k in KINDS.values() if k.stochastic] == ["random", "shuffle"]
    assert {k.name for k in KINDS.values() if not k.reads_learned_map} == {"random", "uniform"}
    assert [k.name for k in KINDS.values() if not k.spec] == ["one-word", "word-per-row", "region-per-row",
                                                              "filtration"]


@pytest.mark.parametrize("k", SPEC_KINDS, ids=lambda k: k.name)
def test_declared_properties_are_what_the_objects_do(k):
    """Each declared property checked against behaviour: the example parses to the kind, stochastic kinds
    change with the seed and deterministic ones do not, a kind that does not read the learned map gives
    the same output for two different maps, the target axis is the one validation checks."""
    iv, other = parse_intervention(k.example, seed=1), parse_intervention(k.example, seed=2)
    assert kind_of(iv, exact=True) is k and iv.kind is k and parse_intervention(iv.name, seed=1) == iv
    assert iv.stochastic == k.stochastic
    attn, km = torch.rand(2, 3, 6, 7), torch.ones(1, 1, 1, 7, dtype=torch.bool)
    assert torch.equal(iv.apply(attn, km), other.apply(attn, km)) != k.stochastic
    same = torch.equal(iv.apply(attn, km), iv.apply(torch.rand(2, 3, 6, 7), km))
    assert iv.reads_learned_map == k.reads_learned_map == (not same)
    if k.targeted:
        big = 100
        iv.validate(**{f"n_{a}": 1 for a in ("words", "regions") if a != k.axis}, **{f"n_{k.axis}": big})
        with pytest.raises(ConfigError, match=f"out of range|no {k.axis}"):
            iv.validate(**{f"n_{k.axis}": 1})
        assert (target_rule(k.name).axis, target_rule(k.name).min_count, target_rule(k.name).max_count) == \
            (k.axis, k.min_targets, k.max_targets)
        if k.max_targets < 3:  # a count outside min..max is refused
            with pytest.raises(ConfigError, match="needs two word indices"):
                parse_intervention(f"{k.name}=1,2,3")
    else:
        assert target_rule(k.name) is None and k.min_targets == k.max_targets == 0
        with pytest.raises(ConfigError, match="takes no targets|bounds"):
            parse_intervention(f"{k.name}=3")
    assert "\n" not in k.description and k.description


def test_untargeted_deterministic_kinds_describe_themselves_with_the_registry_line():
    for name in ("none", "uniform", "reversed"):
        assert parse_intervention(name).describe() == get_kind(name).description


def test_get_kind_and_kind_of():
    assert get_kind(" Identity ") is get_kind("none") is KINDS["none"]
    assert get_kind("mask-regions=0,3") is KINDS["mask-regions"] and get_kind("one-word").spec is False
    with pytest.raises(ConfigError, match="unknown intervention kind 'bogus'") as err:
        get_kind("bogus")
    assert "\n" not in str(err.value)

    class MyRandom(Random):  # a user's subclass: a random kind, but not the registered implementation
        pass

    mine = MyRandom(seed=3)
    assert kind_of(mine) is KINDS["random"] and kind_of(mine, exact=True) is None
    assert mine.reads_learned_map  # unknown code: the answer that is never wrong
    assert kind_of(object()) is None and kind_of(lambda a: a) is None


def test_format_spec_is_parsed_back_to_the_same_intervention():
    assert format_spec("mask-regions", [0, 3]) == "mask-regions=0,3" == MaskRegions((0, 3)).name
    assert format_spec("uniform") == "uniform" and format_spec("identity") == "none"
    assert format_spec("swap-words", (4, 1)) == "swap-words=4,1" and format_spec("keep-words", 2) == "keep-words=2"
    assert format_spec("shuffle", None) == "shuffle"
    for k in SPEC_KINDS:
        targets = list(range(k.min_targets))
        assert parse_intervention(format_spec(k.name, targets)) == parse_intervention(k.name + (
            "=" + ",".join(map(str, targets)) if targets else ""))


@pytest.mark.parametrize("kind,targets,message", [
    ("bogus", (), "unknown intervention kind"), ("one-word", (1,), "no spec"), ("uniform", (1,), "takes no targets"),
    ("mask-words", (1, 1), "more than once"), ("mask-words", (True,), "whole numbers"),
    ("swap-words", (1,), "two word indices"), ("keep-regions", (), "needs its regions"),
    ("mask-regions", (-1,), "indices >= 0"),
])
def test_format_spec_refuses_with_one_line(kind, targets, message):
    with pytest.raises(ConfigError, match=message) as err:
        format_spec(kind, targets)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("query", ["words", "regions"])
def test_per_row_kinds_equal_one_intervention_per_row(query):
    """``WordPerRow``/``RegionPerRow`` on aligned pairs ``[N, Q, K]``: row n is OneWord / MaskRegions of target n."""
    attn = torch.rand(4, 5, 6)
    km = torch.tensor([True] * 5 + [False]).view(1, 1, 6).expand(4, 1, 6)
    ids = (torch.tensor([3, 3, 8, 9]), torch.tensor([1, 2, 2, 7]))
    words, regions = (0, 4, 2, 4), (1, 0, 4, 1)
    got_w = WordPerRow(Random(seed=3), words).apply(attn, km, query=query, pair_ids=ids)
    got_r = RegionPerRow(regions).apply(attn, km, query=query, pair_ids=ids)
    for n in range(4):
        one = dict(query=query, pair_ids=(ids[0][n:n + 1], ids[1][n:n + 1]))
        assert torch.equal(got_w[n], OneWord(Random(seed=3), words[n]).apply(attn[n:n + 1], km[n:n + 1], **one)[0])
        assert torch.equal(got_r[n], MaskRegions((regions[n],)).apply(attn[n:n + 1], km[n:n + 1], **one)[0])
    assert WordPerRow(Random(), (0,)).stochastic and not RegionPerRow((0,)).stochastic
    assert WordPerRow(Random(), (1, 2)).with_seed(4) == WordPerRow(Random(seed=4), (1, 2))


@pytest.mark.parametrize("make,message", [
    (lambda: WordPerRow(Random(), ()), "one target per row"),
    (lambda: RegionPerRow((0, -1)), "row 1"),
    (lambda: RegionPerRow((1.5,)), "whole-number"),
    (lambda: WordPerRow("random", (1,)), "needs an intervention"),
    (lambda: OneWord(Random(), -1), "indices >= 0"),
    (lambda: OneWord(Random(), True), "whole-number"),
    (lambda: RegionPerRow((0, 1)).apply(torch.rand(3, 4, 5), torch.ones(1, 1, 5, dtype=torch.bool)), "N = 2"),
    (lambda: WordPerRow(Uniform(), (0, 1)).apply(torch.rand(2, 2, 4, 5), torch.ones(1, 1, 1, 5, dtype=torch.bool)),
     "aligned pairs"),
    (lambda: RegionPerRow((0, 7)).validate(n_regions=5), "region 7 out of range"),
    (lambda: WordPerRow(MaskRegions((6,)), (0,)).validate(n_words=3, n_regions=5), "region 6 out of range"),
])
def test_per_word_and_per_row_kinds_refuse_bad_input_with_one_line(make, message):
    with pytest.raises(ConfigError, match=message) as err:
        make()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("seed", [-1, -2**31, 2**32, 2**32 + 5, 2**64, 1.0, "3", True, None])
def test_a_seed_outside_the_hash_key_is_refused(seed):
    """The draws are keyed by 32 bits of the seed: a seed outside 0..2^32−1 would silently repeat another
    seed's draws (−3 is 2^32−3 to the hash), so it is refused — with the seeds a stochastic kind is given."""
    from causmatch.counter_hash import check_seed
    from causmatch.interventions import parse_intervention
    with pytest.raises(ConfigError, match="seed"):
        check_seed(seed)
    for spec in ("random", "shuffle", "filtration:random"):
        with pytest.raises(ConfigError, match="seed"):
            parse_intervention(spec, seed=seed)


def test_the_draws_seeds_stay_in_range():
    """K draws use seeds seed … seed+K−1: all of them must be keys of their own."""
    from causmatch.analysis.effects import sample_interventions
    from causmatch.counter_hash import SEED_MAX, check_seed
    from causmatch.interventions import parse_intervention
    assert check_seed(SEED_MAX) == SEED_MAX and check_seed(0) == 0
    assert check_seed(SEED_MAX - 7, 8) == SEED_MAX - 7
    with pytest.raises(ConfigError, match=r"seeds 4294967289…4294967296 outside .* choose a seed in 0..4294967288"):
        check_seed(SEED_MAX - 6, 8)
    draws = sample_interventions(parse_intervention("random"), 8, seed=SEED_MAX - 7)
    assert [d.seed for d in draws] == list(range(SEED_MAX - 7, SEED_MAX + 1))
    with pytest.raises(ConfigError, match="seeds"):
        sample_interventions(parse_intervention("shuffle"), 8, seed=SEED_MAX)
    assert sample_interventions(parse_intervention("uniform"), 8, seed=SEED_MAX) != []  # deterministic: no draws
