"""The failing pair (causmatch.analysis.pair_view) on constructed score matrices and word maps."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from causmatch.analysis import pair_view as pv
from causmatch.analysis.failures import build_failure_table
from causmatch.analysis.ranking import compare_rankings
from causmatch.errors import DataError

K = 2  # captions per image


def _ranking(sims: np.ndarray, direction: str, query: int, cf=None):
    """The RankResult of one query of an [I, C] matrix (as the session builds it)."""
    cf = sims if cf is None else cf
    if direction == "t2i":
        return compare_rankings(query, "t2i", sims[:, query], cf[:, query], [query // K])
    return compare_rankings(query, "i2t", sims[query], cf[query], list(range(query * K, query * K + K)))


@pytest.mark.parametrize("direction", ["t2i", "i2t"])
def test_failing_pair_agrees_with_the_failure_table(direction):
    rng = np.random.default_rng(3)
    sims = rng.normal(size=(6, 6 * K)).astype(np.float32)
    sims[2, 5] = sims[1, 5]  # a tie in one column (caption 5's true image is 2: the tie goes to image 1)
    cf = rng.normal(size=sims.shape).astype(np.float32)
    table = build_failure_table(sims, cf, K, direction)
    for row in table.itertuples():
        fp = pv.failing_pair(_ranking(sims, direction, row.query, cf))
        assert (fp.true_item, fp.wrong_item, fp.rank, fp.cf_rank) == (row.true_item, row.best_wrong, row.rank,
                                                                       row.rank_cf)
        assert fp.margin == pytest.approx(row.margin) and fp.failed == (row.rank > 0)
        assert fp.score_true - fp.cf_score_true == pytest.approx(row.effect_true, abs=1e-6)
        assert fp.score_wrong - fp.cf_score_wrong == pytest.approx(row.effect_wrong, abs=1e-6)
        assert fp.gallery == (6 if direction == "t2i" else 6 * K)


def test_t2i_pairs_ranks_and_tie_rule():
    sims = np.array([[0.2, 0.1, 0.5, 0.0],     # image 0 (captions 0, 1)
                     [0.9, 0.3, 0.5, 0.0],     # image 1 (captions 2, 3)
                     [0.9, 0.3, 0.1, 0.0]])    # image 2
    fp = pv.failing_pair(_ranking(sims, "t2i", 0))
    assert fp.true_item == 0 and fp.wrong_item == 1  # 1 and 2 score 0.9: the lower index is the best wrong
    assert (fp.rank, fp.wrong_rank) == (2, 0) and fp.failed and not fp.tie
    assert fp.true_pair == (0, 0) and fp.wrong_pair == (1, 0)
    assert fp.margin == pytest.approx(-0.7)
    ok = pv.failing_pair(_ranking(sims, "t2i", 2))  # caption 2 (image 1): 0.5 vs image 0's 0.5 — a tie
    assert ok.tie and ok.wrong_item == 0 and ok.rank == 1  # the tie rule puts image 0 first: a "failure"
    last = pv.failing_pair(_ranking(sims, "t2i", 3))  # all zero: a three-way tie
    assert last.tie and last.rank == 1 and last.wrong_item == 0


def test_near_equal_scores_are_a_tie_but_distinct_ones_are_not():
    base = np.float32(0.734512)
    sims = np.array([[base, 0.0], [np.nextafter(base, np.float32(1)), 0.0]], dtype=np.float32)
    assert pv.failing_pair(compare_rankings(0, "t2i", sims[:, 0], sims[:, 0], [0])).tie
    sims[1, 0] = base + np.float32(1e-4)
    assert not pv.failing_pair(compare_rankings(0, "t2i", sims[:, 0], sims[:, 0], [0])).tie


def test_i2t_true_caption_is_the_best_ranked_own_caption():
    sims = np.array([[0.1, 0.4, 0.6, 0.2],
                     [0.0, 0.0, 0.3, 0.9]])
    fp = pv.failing_pair(_ranking(sims, "i2t", 0))
    assert fp.true_item == 1 and fp.wrong_item == 2 and fp.rank == 1
    assert fp.true_pair == (0, 1) and fp.wrong_pair == (0, 2)
    fine = pv.failing_pair(_ranking(sims, "i2t", 1))
    assert fine.true_item == 3 and fine.wrong_item == 0 and not fine.failed  # wrong 0 and 1 tie at 0.0: 0 first
    assert fine.margin > 0


def test_fit_hook_is_asked_about_the_wrong_pair():
    sims = np.array([[0.2, 0.1, 0.5, 0.0], [0.9, 0.3, 0.5, 0.0]])
    asked = []

    def fits(image, caption):
        asked.append((image, caption))
        return image == 1

    assert pv.failing_pair(_ranking(sims, "t2i", 0)).also_matches is None
    assert pv.failing_pair(_ranking(sims, "t2i", 0), fits=fits).also_matches is True
    assert pv.failing_pair(_ranking(sims, "i2t", 0), fits=fits).also_matches is False
    assert asked == [(1, 0), (0, 2)]


def test_no_wrong_item_and_non_finite_scores_are_refused():
    with pytest.raises(DataError, match="no wrong item"):
        pv.failing_pair(compare_rankings(0, "t2i", np.array([0.3]), np.array([0.1]), [0]))
    with pytest.raises(DataError, match="not finite"):
        pv.failing_pair(compare_rankings(0, "t2i", np.array([np.nan, 0.2]), np.array([0.1, 0.1]), [0]))
    with pytest.raises(DataError, match="not finite"):
        pv.failing_pair(compare_rankings(0, "t2i", np.array([0.5, 0.2]), np.array([0.1, np.inf]), [0]))


def test_counterparts_pair_the_kth_occurrence():
    assert pv.counterparts(["a", "red", "a", "box"], ["a", "red", "a", "box"]).tolist() == [0, 1, 2, 3]
    assert pv.counterparts(["a", "red", "a", "box"], ["a", "blue", "box", "a", "red"]).tolist() == [0, 4, 3, 2]
    assert pv.counterparts(["a", "a", "star"], ["a", "ring"]).tolist() == [0, -1, -1]
    assert pv.counterparts([], ["a"]).tolist() == []


def test_relevance_gap():
    gap = pv.relevance_gap([0.9, 0.5, 0.1], [0.2, 0.5], [1, -1, 0])
    assert gap[0] == pytest.approx(0.4) and np.isnan(gap[1]) and gap[2] == pytest.approx(0.1)
    with pytest.raises(DataError, match="non-finite"):
        pv.relevance_gap([0.9, np.nan], [0.2, 0.3], [0, 1])
    with pytest.raises(DataError, match="counterparts"):
        pv.relevance_gap([0.9, 0.1], [0.2, 0.3], [0, 2])
    with pytest.raises(DataError, match="counterparts"):
        pv.relevance_gap([0.9, 0.1], [0.2, 0.3], [0])


def test_attention_distance_is_total_variation_over_valid_regions():
    a = np.array([[1.0, 0.0, 0.0, 5.0], [0.5, 0.5, 0.0, 0.0]])   # region 3 is padding
    b = np.array([[0.0, 2.0, 0.0, 0.0], [1.0, 1.0, 0.0, 9.0]])
    tv = pv.attention_distance(a, b, [0, 1], region_mask=[1, 1, 1, 0])
    assert tv[0] == pytest.approx(1.0) and tv[1] == pytest.approx(0.0)
    assert np.isnan(pv.attention_distance(a, b, [-1, 0], [1, 1, 1, 0])[0])
    with pytest.raises(DataError, match="one image"):
        pv.attention_distance(a, b[:, :3], [0, 1])
    with pytest.raises(DataError, match="region mask"):
        pv.attention_distance(a, b, [0, 1], region_mask=[1, 1])


def test_most_informative_word_rules():
    assert pv.most_informative_word([0.1, 0.7, 0.3]) == 1
    assert pv.most_informative_word([0.7, 0.1, 0.7]) == 0            # a tie: the lowest index
    assert pv.most_informative_word([0.9, 0.1, 0.3], [False, True, True]) == 2  # unusable never chosen
    assert pv.most_informative_word([np.nan, 0.0, np.nan]) == 1      # NaN (no counterpart) after any value
    assert pv.most_informative_word([np.nan, np.nan], [False, True]) == 1   # nothing comparable: first usable
    assert pv.most_informative_word([0.2, 0.9], [False, False]) == 1  # no usable word: the rule is dropped
    with pytest.raises(DataError):
        pv.most_informative_word([])
    with pytest.raises(DataError):
        pv.most_informative_word([0.1, np.inf])
    with pytest.raises(DataError):
        pv.most_informative_word([0.1, 0.2], [True])


def test_usable_words():
    got = pv.usable_words(["<start>", "a", "zorb", "red", "<pad>", "", "<end>", "<unk>"], unknown_words=["zorb"])
    assert got.tolist() == [False, True, False, True, False, False, False, False]


def _ex(image, tokens, rel=None, t2i=None, unknown=(), mask=None):
    r = 3 if t2i is None else np.asarray(t2i).shape[1]
    return SimpleNamespace(image=image, tokens=list(tokens), word_relevance=None if rel is None else np.array(rel),
                           t2i=None if t2i is None else np.asarray(t2i, float), i2t=None, unknown_words=list(unknown),
                           region_mask=np.ones(r, bool) if mask is None else np.asarray(mask, bool))


def test_choose_word_by_relevance_for_a_caption_query():
    true = _ex(0, ["a", "red", "zorb", "box"], rel=[0.5, 0.9, 0.0, 0.4], unknown=["zorb"])
    wrong = _ex(7, ["a", "red", "zorb", "box"], rel=[0.5, 0.2, 0.9, 0.35])
    choice = pv.choose_word(true, wrong)
    assert choice.measure == "relevance" and choice.index == 1 and not choice.note  # zorb (gap 0.9) is unknown
    assert choice.wrong_index(3) == 3 and choice.wrong_index(9) == -1


def test_choose_word_for_an_image_query_compares_the_same_word():
    true = _ex(4, ["a", "red", "ring", "and", "a", "star"], rel=[0.1, 0.6, 0.5, 0.1, 0.1, 0.8])
    wrong = _ex(4, ["a", "star", "and", "a", "red", "box"], rel=[0.1, 0.75, 0.1, 0.1, 0.2, 0.9])
    choice = pv.choose_word(true, wrong)
    assert choice.counterpart.tolist() == [0, 4, -1, 2, 3, 1]
    assert choice.index == 1 and choice.wrong_index(1) == 4     # "red": 0.6 vs 0.2; "ring" has no counterpart
    apart = pv.choose_word(_ex(4, ["big", "ring"], rel=[0.1, 0.2]), _ex(4, ["small", "star"], rel=[0.3, 0.4]))
    assert apart.index == 0 and "share no word" in apart.note


def test_choose_word_without_relevance():
    t2i_a = [[0.9, 0.1, 0.0], [0.3, 0.3, 0.4]]
    t2i_b = [[0.9, 0.1, 0.0], [0.0, 0.0, 1.0]]
    same = pv.choose_word(_ex(2, ["red", "box"], t2i=t2i_a), _ex(2, ["red", "box"], t2i=t2i_b))
    assert same.measure == "attention" and same.index == 1 and same.values[0] == pytest.approx(0.0)
    other = pv.choose_word(_ex(2, ["<unk>", "box"], t2i=t2i_a), _ex(3, ["<unk>", "box"], t2i=t2i_b))
    assert other.measure == "none" and other.index == 1 and "no per-word relevance" in other.note


def test_neighbours():
    assert pv.neighbours([5, 2, 9], 2) == (5, 9, 1)
    assert pv.neighbours([5, 2, 9], 5) == (None, 2, 0)
    assert pv.neighbours([5, 2, 9], 9) == (2, None, 2)
    assert pv.neighbours([5, 2, 9], 4) == (None, 5, None)
    assert pv.neighbours([], 4) == (None, None, None)


def test_common_words_and_their_place_in_the_choice():
    caps = [["a", "red", "box"], ["a", "blue", "ring", "a"], ["the", "red", "star"], ["a", "box"]]
    assert pv.common_words(caps, share=0.5) == {"a"}      # "a": 3 of 4 captions; "red", "box": 2 of 4 (not more)
    assert pv.common_words(caps, share=0.25) == {"a", "red", "box"}
    many = [["a", "red", "box"]] * 3 + [["the", "ring"]] * 3 + [["a", "star"]] * 3 + [["a", "cross"]]  # 10
    assert pv.common_words(many) == {"a"}   # default: more than half — "a" 7/10; "the", "red", "star" 3/10
    assert pv.common_words([]) == frozenset()
    true = _ex(0, ["a", "red", "box"], rel=[0.9, 0.5, 0.45])
    wrong = _ex(5, ["a", "red", "box"], rel=[0.1, 0.4, 0.4])
    assert pv.choose_word(true, wrong).index == 0                      # without the split's counts: "a" (0.8)
    choice = pv.choose_word(true, wrong, common={"a"})
    assert choice.index == 1 and not choice.note                       # "red" (0.1) beats "box" (0.05)
    only = pv.choose_word(_ex(0, ["a", "zorb"], rel=[0.9, 0.1], unknown=["zorb"]),
                          _ex(5, ["a", "zorb"], rel=[0.1, 0.9]), common={"a"})
    assert only.index == 0 and "many captions" in only.note            # nothing else can be compared
    none = pv.choose_word(_ex(2, ["a", "box"], t2i=[[1, 0], [0, 1]]), _ex(3, ["a", "box"], t2i=[[1, 0], [0, 1]]),
                          common={"a"})
    assert none.measure == "none" and none.index == 1                  # no measure: the first rare word


def test_a_wrong_item_with_the_same_words_also_matches():
    caps = ["a red box", "a blue ring", "A  red box", "a green star"]   # image 1's caption 2 repeats caption 0
    sims = np.array([[0.2, 0.1, 0.5, 0.0], [0.9, 0.3, 0.5, 0.0]])
    t2i = pv.failing_pair(_ranking(sims, "t2i", 0), captions=caps, caps_per_image=K)
    assert t2i.also_matches is True and "identical to the query" in t2i.match_reason
    other = pv.failing_pair(_ranking(sims, "t2i", 1), captions=caps, caps_per_image=K)
    assert other.also_matches is None and other.match_reason == ""
    i2t = pv.failing_pair(_ranking(sims, "i2t", 0), captions=caps, caps_per_image=K)
    assert i2t.wrong_item == 2 and i2t.also_matches is True and "own captions" in i2t.match_reason
    ruled = pv.failing_pair(_ranking(sims, "t2i", 1), fits=lambda i, c: False, captions=caps, caps_per_image=K)
    assert ruled.also_matches is False


def test_targets_are_not_carried_to_another_item():
    assert "regions of the true pair's image" in pv.targets_apart("t2i", "mask-regions")
    assert "words of the true pair's caption" in pv.targets_apart("i2t", "keep-words")
    assert pv.targets_apart("t2i", "mask-words") is None      # the same caption in both pairs
    assert pv.targets_apart("i2t", "mask-regions") is None    # the same image in both pairs
    assert pv.targets_apart("t2i", "random") is None
