"""AnalysisSession on a tiny dataset: explain, ranks, recall, failure table, cache behaviour."""
import json

import numpy as np
import pytest
import torch

from causmatch.analysis import AnalysisSession, filter_failures, export_csv
from causmatch.errors import CheckpointError, ConfigError, DataError
from causmatch.evaluation import encode_split, ranks_t2i, recall_metrics, similarity_matrix
from causmatch.interventions import Random

from analysis_helpers import tiny_matcher, write_tiny


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
    k = s.split.caps_per_image
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
