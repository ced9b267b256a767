"""Matcher: all-pairs vs aligned pairs, maps, sharded similarity, devices and dtypes."""
import numpy as np
import pytest
import torch

from causmatch.interventions import MaskWords, Random, Shuffle
from causmatch.models import sharded_similarity
from tests.models.tiny_matcher import CAPTIONS, make_images, make_matcher, map_atol


@pytest.fixture(params=["t2i", "i2t", "both"])
def setup(request):
    m = make_matcher(direction=request.param)
    feats, mask = make_images(n=5)
    with torch.no_grad():
        return m, m.encode_images(feats, mask), m.encode_captions(CAPTIONS)


def test_maps_returned_only_on_request(setup):
    m, img, txt = setup
    d = m.config.attention.direction
    plain = m.similarity(img, txt)
    assert plain.t2i is None and plain.i2t is None and plain.word_relevance is None
    full = m.similarity(img, txt, return_maps=True)
    torch.testing.assert_close(full.score, plain.score)
    W, R = txt.words.shape[1], img.regions.shape[1]
    if d in ("t2i", "both"):
        assert full.t2i.shape == (5, 5, W, R) and full.word_relevance.shape == (5, 5, W)
    if d in ("i2t", "both"):
        assert full.i2t.shape == (5, 5, R, W) and full.region_relevance.shape == (5, 5, R)


@pytest.mark.parametrize("intervention", [None, Random(seed=2), Shuffle(), MaskWords((1,))], ids=str)
def test_pair_scores_equal_the_diagonal(setup, intervention):
    m, img, txt = setup
    ids = (torch.arange(10, 15), torch.arange(20, 25))
    allp = m.similarity(img, txt, intervention, pair_ids=ids, return_maps=True)
    pairs = m.pair_scores(img, txt, intervention, pair_ids=ids, return_maps=True)
    torch.testing.assert_close(pairs.score, allp.score.diagonal(), atol=1e-6, rtol=0)
    n = torch.arange(5)
    tol = map_atol(m.config.attention.lambda_softmax)  # the two paths' sims differ in their last bits
    for name in ("t2i", "i2t", "word_relevance", "region_relevance"):
        if getattr(allp, name) is not None:
            torch.testing.assert_close(getattr(pairs, name), getattr(allp, name)[n, n], atol=tol, rtol=0)


@pytest.mark.parametrize("intervention", [None, Random(seed=1)], ids=str)
def test_sharded_similarity_equals_one_block(setup, intervention):
    m, img, txt = setup
    full = m.similarity(img, txt, intervention).score.numpy()
    for si, sc in [(1, 1), (2, 3), (128, 128)]:
        out = sharded_similarity(m, img, txt, intervention, shard_images=si, shard_captions=sc)
        assert out.dtype == np.float32 and out.shape == (5, 5)
        np.testing.assert_allclose(out, full, atol=1e-6)


def test_numpy_memmap_features_and_tokens(tmp_path):
    m = make_matcher()
    feats, mask = make_images(n=3)
    np.save(tmp_path / "f.npy", feats.numpy().astype(np.float16))
    mm = np.load(tmp_path / "f.npy", mmap_mode="r")
    img = m.encode_images(mm, mask.numpy())
    assert img.regions.dtype == torch.float32 and img.gram.shape == (3, 6, 6)
    assert m.tokens("Blue cube.") == ["blue", "cube", "."]
    assert m.unknown_words("a zebra") == ["zebra"]


def test_bfloat16_autocast_close_to_float32(setup):
    m, img, txt = setup
    ref = m.similarity(img, txt).score
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = m.similarity(img, txt).score
    assert torch.isfinite(low).all()
    assert (low.float() - ref).abs().max() < 0.05


def test_many_interventions_share_one_pass_and_equal_single_calls(setup):
    m, img, txt = setup
    ivs = [None, Random(seed=2), MaskWords((0,)), Shuffle()]
    many = m.similarity_many(img, txt, ivs, return_maps=True)
    aligned = m.pair_scores_many(img, txt, ivs)
    for iv, got, pair in zip(ivs, many, aligned):
        single = m.similarity(img, txt, iv, return_maps=True)
        torch.testing.assert_close(got.score, single.score)
        torch.testing.assert_close(pair.score, single.score.diagonal(), atol=1e-6, rtol=0)
        for name in ("t2i", "i2t"):
            if getattr(single, name) is not None:
                torch.testing.assert_close(getattr(got, name), getattr(single, name))
