"""One definition of a counterfactual rank: the same query, kind, draws and seed give the same rank from the
whole-split matrix (failure table, R@K) and from a single query (Retrieval, Failing pair, Compare)."""
import numpy as np
import pytest

from causmatch.analysis import AnalysisSession
from causmatch.evaluation import ranks_i2t, ranks_t2i
from causmatch.interventions import COUNTERFACTUAL_KINDS
from tests.analysis.analysis_helpers import tiny_matcher, write_tiny


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return write_tiny(tmp_path_factory.mktemp("cfrank") / "data", n_images=12, k=3, regions=6, seed=4)


def _query_ranks(session, kind, samples, seed):
    t2i = [session.rank_caption_query(c, kind, samples=samples, seed=seed, k=1).cf_rank
           for c in range(session.split.n_captions)]
    i2t = [session.rank_image_query(i, kind, samples=samples, seed=seed, k=1).cf_rank
           for i in range(session.split.n_images)]
    return np.array(t2i), np.array(i2t)


@pytest.mark.parametrize("attend", ["t2i", "i2t"])
@pytest.mark.parametrize("kind", COUNTERFACTUAL_KINDS)
def test_matrix_and_single_queries_rank_alike(split, tmp_path, attend, kind):
    matcher = tiny_matcher(direction=attend, img_dim=6)
    for n, (samples, seed) in enumerate(((1, 0), (3, 7), (5, 2))):
        # small shards: the matrix is built in blocks unlike a single query's batch
        alone = AnalysisSession(matcher, split, shard_images=5, shard_captions=7)
        single_t2i, single_i2t = _query_ranks(alone, kind, samples, seed)  # no matrix built: per query
        assert alone.cached_similarity(kind, samples=samples, seed=seed) is None
        sims = alone.similarity(kind, samples=samples, seed=seed)
        k = split.caps_per_image
        matrix_t2i, matrix_i2t = ranks_t2i(sims, k), ranks_i2t(sims, k)
        assert (single_t2i == matrix_t2i).all(), (kind, samples, seed)
        assert (single_i2t == matrix_i2t).all(), (kind, samples, seed)
        # with the matrix built, single queries read it: equal scores, not only equal ranks
        res = alone.rank_caption_query(4, kind, samples=samples, seed=seed, k=3)
        assert np.array_equal(res.cf_scores, sims[:, 4].astype(np.float64))
        res = alone.rank_image_query(2, kind, samples=samples, seed=seed, k=3)
        assert np.array_equal(res.cf_scores, sims[2, :].astype(np.float64)) and res.cf_rank == matrix_i2t[2]
        for direction, expect in (("t2i", matrix_t2i), ("i2t", matrix_i2t))[n % 2:][:1]:
            table = alone.failure_table(direction, kind, samples=samples, seed=seed).sort_values("query")
            assert (table["rank_cf"].to_numpy() == expect).all()


def test_draws_are_part_of_the_definition(split):
    """Another number of draws or another seed is another rank definition's input: its own matrix."""
    s = AnalysisSession(tiny_matcher(), split)
    one = s.similarity("random", samples=1, seed=0)
    assert s.cached_similarity("random", samples=3, seed=0) is None
    three = s.similarity("random", samples=3, seed=0)
    assert not np.array_equal(one, three)
    assert s.cached_similarity("random", samples=3, seed=0) is three
    assert s.cached_similarity("uniform", samples=5, seed=3) is None
    assert s.similarity("uniform", samples=5, seed=3) is s.cached_similarity("uniform", samples=1, seed=0)


def test_cached_similarity_reads_the_disk_cache(split, tmp_path):
    matcher = tiny_matcher()
    first = AnalysisSession(matcher, split, cache_dir=tmp_path / "cache")
    built = first.similarity("random", samples=2, seed=1)
    again = AnalysisSession(matcher, split, cache_dir=tmp_path / "cache")
    assert np.array_equal(again.cached_similarity("random", samples=2, seed=1), built)
    assert again.cached_similarity("shuffle", samples=2, seed=1) is None


@pytest.mark.parametrize("attend", ["t2i", "i2t"])
def test_factual_ranks_of_a_query_do_not_build_the_matrix(split, attend):
    """A single query's factual scores come from the whole-split matrix when it is built, else from the query
    alone — the same ranks, and the query never builds (or waits for) the whole split's matrix."""
    alone = AnalysisSession(tiny_matcher(direction=attend, img_dim=6), split, shard_images=5, shard_captions=7)
    t2i = [alone.rank_caption_query(c, "uniform", k=1) for c in range(split.n_captions)]
    i2t = [alone.rank_image_query(i, "uniform", k=1) for i in range(split.n_images)]
    assert alone.cached_similarity() is None  # nothing whole-split was built by the queries
    sims = alone.similarity()
    k = split.caps_per_image
    assert [r.rank for r in t2i] == list(ranks_t2i(sims, k))
    assert [r.rank for r in i2t] == list(ranks_i2t(sims, k))
    np.testing.assert_allclose(t2i[4].scores, sims[:, 4], rtol=0, atol=1e-6)
    built = alone.rank_caption_query(4, "uniform", k=1)  # the matrix built: read from it, equal scores
    assert np.array_equal(built.scores, sims[:, 4].astype(np.float64))
    built = alone.rank_image_query(2, "uniform", k=1)
    assert np.array_equal(built.scores, sims[2, :].astype(np.float64))


def test_a_query_with_both_matrices_built_reads_no_gallery(split, monkeypatch):
    """With the factual and the counterfactual matrix built, re-ranking a query reads one column (or row) of
    each and never the encoded gallery (at COCO-5K scale a 2 GB memory map: the first re-rank took 5 s)."""
    s = AnalysisSession(tiny_matcher(), split)
    sims, cf = s.similarity(), s.similarity("random", samples=3, seed=1)

    def no_gallery(*args, **kwargs):
        raise AssertionError("the gallery was read")

    monkeypatch.setattr(s, "gallery", no_gallery)
    res = s.rank_caption_query(5, "random", samples=3, seed=1, k=2)
    assert np.array_equal(res.scores, sims[:, 5].astype(np.float64))
    assert np.array_equal(res.cf_scores, cf[:, 5].astype(np.float64))
    res = s.rank_image_query(3, "random", samples=3, seed=1, k=2)
    assert np.array_equal(res.cf_scores, cf[3, :].astype(np.float64))
    with pytest.raises(AssertionError, match="gallery was read"):
        s.rank_caption_query(5, "uniform", k=2)  # a kind whose matrix is missing: scored alone, from the gallery
