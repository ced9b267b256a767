"""AnalysisSession on a tiny dataset: explain, ranks, recall, failure table, cache behaviour."""
import json

import numpy as np
import pytest
import torch

from causmatch.analysis import AnalysisSession, export_csv, filter_failures
from causmatch.errors import CheckpointError, ConfigError, DataError
from causmatch.evaluation import encode_split, ranks_t2i, recall_metrics, similarity_matrix
from causmatch.interventions import Random
from tests.analysis.analysis_helpers import tiny_matcher


def test_explain_dataset_pair_and_json(tiny_session):
    s = tiny_session
    ex = s.explain(1, 2, intervention="random", samples=4, seed=3)
    assert ex.tokens == s.matcher.tokens(s.split.captions[2])
    W, R = len(ex.tokens), s.split.features.shape[1]
    assert ex.t2i.shape == (W, R) and ex.cf_t2i.shape == (W, R) and ex.cf_t2i_mean.shape == (W, R)
    assert ex.word_effects.shape == (W,) and ex.region_effects.shape == (R,)
    assert ex.boxes.shape == (R, 4) and ex.region_mask.dtype == bool
    assert ex.samples == 4 and ex.effect_low <= ex.effect <= ex.effect_high
    # padded regions get no attention and no effect
    pad = ~ex.region_mask
    assert np.all(ex.t2i[:, pad] == 0) and np.all(np.isnan(ex.region_effects[pad]))
    # the true pair's grounding entry comes along
    assert ex.grounding is not None and ex.grounding["words"][0]["index"] == 0
    d = json.loads(json.dumps(ex.to_dict()))
    assert d["tokens"] == ex.tokens and len(d["t2i"]) == W


def test_explain_free_text_reports_unknown_words_and_rejects_empty(tiny_session):
    ex = tiny_session.explain(0, text="red zebra circle", intervention="uniform")
    assert ex.unknown_words == ["zebra"] and ex.caption is None and ex.samples == 1
    with pytest.raises(DataError, match="empty"):
        tiny_session.explain(0, text="  ")
    with pytest.raises(DataError, match="vocabulary"):
        tiny_session.explain(0, text="zebra giraffe")
    with pytest.raises(DataError, match="out of range"):
        tiny_session.explain(99, 0)
    with pytest.raises(ConfigError):
        tiny_session.explain(0, 0, intervention="bogus")


def test_explain_same_pair_same_result_whether_dataset_or_free_text(tiny_session):
    a = tiny_session.explain(1, 2, intervention="uniform")
    b = tiny_session.explain(1, text=tiny_session.split.captions[2], intervention="uniform")
    assert a.score == pytest.approx(b.score, abs=1e-6) and a.effect == pytest.approx(b.effect, abs=1e-6)


def test_similarity_matches_evaluation_and_recall_is_shared(tiny_session):
    s = tiny_session
    img, txt = encode_split(s.matcher, s.split)
    ref = similarity_matrix(s.matcher, img, txt, Random(seed=0))
    got = s.similarity("random", samples=1, seed=0)
    assert np.allclose(got, ref, atol=1e-6)
    assert s.recall("random") == recall_metrics(got, s.split.caps_per_image)


def test_results_do_not_depend_on_shard_or_batch_size(tiny_split, tmp_path):
    m = tiny_matcher()
    a = AnalysisSession(m, tiny_split, shard_images=1, shard_captions=1, batch_size=1)
    b = AnalysisSession(m, tiny_split, shard_images=64, shard_captions=64, batch_size=64)
    assert np.allclose(a.similarity("random", samples=3), b.similarity("random", samples=3), atol=1e-6)
    assert np.allclose(a.similarity(), b.similarity(), atol=1e-6)
    ra, rb = a.rank_caption_query(3, "shuffle", samples=2), b.rank_caption_query(3, "shuffle", samples=2)
    assert np.allclose(ra.cf_scores, rb.cf_scores, atol=1e-6) and ra.cf_rank == rb.cf_rank


def test_rank_query_agrees_with_the_full_matrix(tiny_session):
    s = tiny_session
    sims = s.similarity()
    cf = s.similarity("random", samples=2, seed=1)
    r = s.rank_caption_query(5, "random", samples=2, seed=1, k=3)
    assert np.allclose(r.cf_scores, cf[:, 5], atol=1e-6) and np.allclose(r.scores, sims[:, 5])
    assert r.rank == ranks_t2i(sims, 2)[5] and r.cf_rank == ranks_t2i(cf, 2)[5]
    assert [t["item"] for t in r.top] == list(np.argsort(-sims[:, 5], kind="stable")[:3])
    for t in r.cf_top:
        assert t["moved"] == t["rank"] - t["cf_rank"]
    q = s.rank_image_query(2, "uniform", k=4)
    assert q.true_items == [4, 5] and len(q.top) == 4 and q.direction == "i2t"


def test_failure_table_agrees_with_recall(tiny_session, tmp_path):
    s = tiny_session
    rec = s.recall()
    for direction, n in (("t2i", s.split.n_captions), ("i2t", s.split.n_images)):
        df = s.failure_table(direction, "random")
        assert len(df) == n
        for kk in (1, 5, 10):
            assert 100.0 * float((df["rank"] < kk).mean()) == pytest.approx(rec[f"{direction}_r{kk}"])
        assert (df.loc[df["margin"] > 0, "rank"] == 0).all() and (df.loc[df["margin"] < 0, "rank"] > 0).all()
    df = s.failure_table("t2i", "random")
    assert df["pointing"].notna().all()                            # every caption has a grounded word
    fails = filter_failures(df, failures_only=True)
    assert (fails["rank"] > 0).all() and len(fails) == int((df["rank"] > 0).sum())
    out = export_csv(fails, tmp_path / "f.csv")
    assert out.read_text().splitlines()[0].startswith("direction,query")


def test_failure_table_with_a_second_checkpoint(tiny_split):
    a = AnalysisSession(tiny_matcher(seed=0), tiny_split)
    b = AnalysisSession(tiny_matcher(seed=1), tiny_split)
    df = a.failure_table("t2i", "uniform", other=b)
    assert (df["rank_other"].to_numpy() == ranks_t2i(b.similarity(), 2)).all()
    dis = filter_failures(df, disagreement=True)
    assert ((dis["rank"] == 0) != (dis["rank_other"] == 0)).all()
    with pytest.raises(ConfigError):
        filter_failures(a.failure_table("t2i", "uniform"), disagreement=True)


def test_cached_equals_fresh_and_stale_cache_is_rebuilt(tiny_split, tmp_path):
    m = tiny_matcher()
    first = AnalysisSession(m, tiny_split, cache_dir=tmp_path / "c")
    sims = first.similarity("random", samples=2)
    assert len(first.cache.entries()) == 2                         # gallery + one matrix
    again = AnalysisSession(m, tiny_split, cache_dir=tmp_path / "c")
    again._compute_sims = None                                     # must not be called: served from disk
    assert np.array_equal(again.similarity("random", samples=2), sims)
    img, _ = again.gallery()
    fresh_img, _ = encode_split(m, tiny_split)
    assert torch.equal(img.regions, fresh_img.regions)
    # change the weights: the model fingerprint changes, the old entries are not used
    with torch.no_grad():
        m.img_enc.fc.bias.add_(0.5)
    changed = AnalysisSession(m, tiny_split, cache_dir=tmp_path / "c")
    new = changed.similarity("random", samples=2)
    assert not np.allclose(new, sims)
    assert np.allclose(new, AnalysisSession(m, tiny_split).similarity("random", samples=2), atol=1e-6)


def test_corrupt_cache_entry_is_rebuilt(tiny_split, tmp_path):
    m = tiny_matcher()
    s = AnalysisSession(m, tiny_split, cache_dir=tmp_path / "c")
    sims = s.similarity()
    for p in (tmp_path / "c").glob("*.npz"):
        p.write_bytes(p.read_bytes()[:100])                        # torn files
    again = AnalysisSession(m, tiny_split, cache_dir=tmp_path / "c")
    assert np.allclose(again.similarity(), sims)


def test_progress_callback_and_feature_size_mismatch(tiny_split, tmp_path):
    calls = []
    s = AnalysisSession(tiny_matcher(), tiny_split, shard_captions=4)
    s.similarity(progress=lambda d, t, msg: calls.append((d, t)))
    assert calls[-1][0] == calls[-1][1] and len(calls) >= 3
    with pytest.raises(CheckpointError, match="region features"):
        AnalysisSession(tiny_matcher(img_dim=5), tiny_split)


def test_explain_from_the_encoded_gallery_equals_encoding_the_pair(tiny_split):
    m = tiny_matcher()
    cold = AnalysisSession(m, tiny_split).explain(2, 5, intervention="random", samples=3)
    warm_session = AnalysisSession(m, tiny_split)
    warm_session.gallery()
    warm = warm_session.explain(2, 5, intervention="random", samples=3)
    assert warm.score == pytest.approx(cold.score, abs=1e-6)
    assert np.allclose(warm.cf_scores, cold.cf_scores, atol=1e-6)
    assert np.allclose(warm.t2i, cold.t2i, atol=1e-6) and warm.tokens == cold.tokens
    assert np.allclose(warm.word_effects, cold.word_effects, atol=1e-6)


def test_targets_are_checked_against_the_pair_and_the_split_before_any_work(tiny_session, monkeypatch):
    s = tiny_session
    valid = np.asarray(s.split.region_mask, bool)
    i = int(np.argmin(valid.sum(1)))  # an image with padding
    n_reg = int(np.flatnonzero(valid[i])[-1]) + 1
    c = s.split.captions_of(i)[0]
    lim = s.pair_limits(i, c)
    assert lim == {"n_words": len(s.matcher.tokens(s.split.captions[c])), "n_regions": n_reg}
    assert s.split_limits() == {"n_words": max(len(s.matcher.tokens(t)) for t in s.split.captions),
                                "n_regions": valid.shape[1]}
    monkeypatch.setattr(s.matcher, "pair_scores_many", lambda *a, **k: pytest.fail("scored before the checks"))
    with pytest.raises(ConfigError, match=f"region {n_reg} out of range for image {i} and caption {c}"):
        s.explain(i, c, intervention=f"mask-regions={n_reg}")
    with pytest.raises(ConfigError, match=f"word {lim['n_words']} out of range"):
        s.explain(i, c, intervention=f"swap-words=0,{lim['n_words']}")
    with pytest.raises(ConfigError, match="out of range for image"):
        s.effects(i, c, kinds=("uniform", f"keep-regions={n_reg + 5}"))
    with pytest.raises(ConfigError, match="samples must be a whole number in 1..256"):
        s.explain(i, c, samples=257)
    assert s.check_intervention(f"mask-regions={n_reg - 1}", i, c).indices == (n_reg - 1,)


def test_a_padded_region_inside_the_range_is_refused(tmp_path):
    from causmatch.data import load_split, write_split

    feats = np.random.default_rng(0).normal(size=(2, 4, 6)).astype(np.float32)
    write_split(tmp_path, "test", features=feats, captions=["red circle"] * 2 + ["blue square"] * 2, caps_per_image=2,
                regions=np.array([[1, 0, 1, 1], [1, 1, 1, 1]], bool))
    s = AnalysisSession(tiny_matcher(), load_split(tmp_path, "test"))
    with pytest.raises(ConfigError, match="region 1 is padding for image 0 and caption 0 — valid regions: 0, 2, 3"):
        s.explain(0, 0, intervention="mask-regions=1")


def test_non_finite_scores_are_refused_by_every_session_entry(tiny_session, tmp_path):
    nan = tiny_matcher()
    with torch.no_grad():
        for p in nan.parameters():
            p.fill_(float("nan"))
    s = AnalysisSession(nan, tiny_session.split)
    calls = [lambda: s.similarity(), lambda: s.recall(), lambda: s.explain(0, 1), lambda: s.effects(0, 1),
             lambda: s.rank_caption_query(1), lambda: s.rank_image_query(0), lambda: s.failure_table()]
    for call in calls:
        with pytest.raises(DataError, match="non-finite|NaN") as err:
            call()
        assert "\n" not in str(err.value)
    # a cached matrix holding NaN (written by an older version, or by hand) is refused too
    good = AnalysisSession(tiny_matcher(), tiny_session.split, cache_dir=tmp_path)
    name, key = good._entry(__import__("causmatch.analysis.session", fromlist=["x"]).sims_tag(
        __import__("causmatch.interventions", fromlist=["x"]).Identity(), 1, 0))
    good.cache.save(name, key, {"sims": np.full((good.split.n_images, good.split.n_captions), np.nan, np.float32)})
    with pytest.raises(DataError, match="non-finite"):
        good.similarity()


def test_ranking_puts_non_finite_scores_last_and_counts_them():
    from causmatch.analysis.ranking import best_rank, compare_rankings, rank_positions

    s = np.array([0.2, np.nan, 0.9, -np.inf, 0.2, np.inf])
    assert rank_positions(s).tolist() == [1, 3, 0, 4, 2, 5]
    assert best_rank(s, [1])[0] == 3 and best_rank(s, [5])[0] == 5 and best_rank(s, [4, 1]) == (2, 4)
    rk = compare_rankings(0, "t2i", s, np.zeros(6), [1], k=3)
    assert rk.rank == 3 and rk.n_nonfinite == 3 and [t["item"] for t in rk.top] == [2, 0, 4]
    with pytest.raises(DataError, match="out of range"):
        compare_rankings(0, "t2i", s, np.zeros(6), [6])


def test_effects_takes_one_kind_as_a_plain_string(tiny_session):
    """``kinds="random"`` is one kind (not the letters r, a, n, …) and gives the same estimate as a 1-tuple."""
    one = tiny_session.effects(0, 0, kinds="uniform", samples=2)
    assert list(one) == ["uniform"]
    assert one["uniform"].effect == tiny_session.effects(0, 0, kinds=("uniform",), samples=2)["uniform"].effect


@pytest.mark.parametrize("direction", ["t2i", "i2t"])
def test_failure_table_without_intervention_repeats_the_factual_columns(tiny_session, direction):
    table = tiny_session.failure_table(direction, "none")
    assert len(table) and (table["rank_cf"] == table["rank"]).all()
    uniform = tiny_session.failure_table(direction, "uniform")
    assert (uniform["rank"].to_numpy() == table["rank"].to_numpy()).all()
