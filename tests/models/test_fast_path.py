"""The no-grad inference path (``attention.fast_scores``) equals the general path and is used only where valid."""
import itertools

import pytest
import torch

from causmatch.models import attention as A
from causmatch.models.config import AGGS, NORMS
from tests.models.tiny_matcher import CAPTIONS, make_images, make_matcher

DIRECTIONS = ("t2i", "i2t", "both")


def encoded(m, n_img=4):
    feats, mask = make_images(n=n_img)
    with torch.no_grad():
        return m.encode_images(feats, mask), m.encode_captions(CAPTIONS)


def general_path(m, img, txt):
    """The autograd-friendly path: return_maps=True never takes the fast path."""
    return m.similarity(img, txt, return_maps=True).score


@pytest.mark.parametrize("direction,norm,agg,img_norm", list(itertools.product(
    DIRECTIONS, A.FAST_NORMS, AGGS, (True, False))))
def test_fast_scores_equal_general_path(direction, norm, agg, img_norm):
    m = make_matcher(direction=direction, norm=norm, agg=agg)
    m = type(m).from_config(m.config.replace(img_norm=img_norm), m.vocab)
    img, txt = encoded(m)
    assert not txt.mask.all() and not img.mask.all()  # padding on both sides
    a = m.config.attention
    with torch.no_grad():
        fast = A.fast_scores(txt.words, txt.mask, img.regions, img.mask, txt.gram, img.gram, direction=direction,
                             norm=norm, lambda_softmax=a.lambda_softmax, agg=agg, lambda_lse=a.lambda_lse,
                             region_norms=m._region_norms(img))
        assert m._can_use_fast_path(img, txt)
        torch.testing.assert_close(fast, general_path(m, img, txt), atol=1e-5, rtol=0)
        torch.testing.assert_close(m.similarity(img, txt).score, fast, atol=0, rtol=0)  # similarity uses it


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_caption_blocks_do_not_change_scores(direction):
    m = make_matcher(direction=direction)
    img, txt = encoded(m)
    a = m.config.attention
    kw = dict(direction=direction, norm=a.norm, lambda_softmax=a.lambda_softmax, agg=a.agg, lambda_lse=a.lambda_lse)
    with torch.no_grad():
        whole = A.fast_scores(txt.words, txt.mask, img.regions, img.mask, txt.gram, img.gram, **kw)
        for block in (1, 37, 200):  # one caption, a few, all but a partial last block
            part = A.fast_scores(txt.words, txt.mask, img.regions, img.mask, txt.gram, img.gram,
                                 block_floats=block, **kw)
            torch.testing.assert_close(part, whole, atol=1e-6, rtol=0)


def test_large_lambda_is_exact_on_unit_gallery():
    """λ at the fast path's limit: the unnormalised exp stays finite and equal to the general path."""
    m = make_matcher(lambda_softmax=A.MAX_FAST_LAMBDA)
    img, txt = encoded(m)
    with torch.no_grad():
        fast = m.similarity(img, txt).score
        assert torch.isfinite(fast).all()
        torch.testing.assert_close(fast, general_path(m, img, txt), atol=1e-5, rtol=0)


@pytest.mark.parametrize("attn", [dict(norm=n) for n in NORMS if n not in A.FAST_NORMS]
                         + [dict(lambda_softmax=A.MAX_FAST_LAMBDA + 1)],
                         ids=[n for n in NORMS if n not in A.FAST_NORMS] + ["big_lambda"])
def test_unbounded_logits_fall_back(attn):
    m = make_matcher(**attn)
    img, txt = encoded(m)
    assert not m._can_use_fast_path(img, txt)


def test_path_rule_lives_in_one_place():
    """fast_path_ok decides for the matcher (and the fused path); non-unit words always take the general path."""
    assert set(A.FAST_NORMS) < set(NORMS)
    for norm in NORMS:
        assert A.fast_path_ok(norm, 9.0) == (norm in A.FAST_NORMS)
        assert not A.fast_path_ok(norm, 9.0, unit_words=False)
    m = make_matcher()
    m = type(m).from_config(m.config.replace(txt_norm=False), m.vocab)
    img, txt = encoded(m)
    with torch.no_grad():
        assert not m._can_use_fast_path(img, txt)


def test_training_keeps_autograd_path():
    m = make_matcher()
    feats, mask = make_images(n=3)
    img, txt = m.encode_images(feats, mask), m.encode_captions(CAPTIONS[:3])
    assert not m._can_use_fast_path(img, txt)  # parameters require grad: the general path runs
    score = m.similarity(img, txt).score
    assert score.requires_grad
    score.sum().backward()
    assert all(p.grad is not None for p in m.img_enc.parameters())
    with torch.no_grad():
        assert m._can_use_fast_path(img, txt)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert not m._can_use_fast_path(img, txt)  # the general path keeps float32 relevance


# ---------------------------------------------------------------- counterfactual matrices

from causmatch.interventions import COUNTERFACTUAL_KINDS, MaskRegions, parse_intervention  # noqa: E402
from causmatch.models import sharded_similarity  # noqa: E402
from causmatch.models import fast_counterfactual as FC  # noqa: E402


@pytest.mark.parametrize("kind,direction,norm,agg", list(itertools.product(
    COUNTERFACTUAL_KINDS, DIRECTIONS, A.FAST_NORMS, AGGS)))
def test_counterfactual_fast_path_equals_general_path(kind, direction, norm, agg):
    m = make_matcher(direction=direction, norm=norm, agg=agg)
    img, txt = encoded(m)
    assert not txt.mask.all() and not img.mask.all()  # padded words and regions on both sides
    iv = parse_intervention(kind, seed=3)
    ids = (torch.tensor([5, 0, 9, 2]), torch.tensor([11, 3, 7, 1, 4]))  # global ids, not positions
    with torch.no_grad():
        general = m.similarity(img, txt, iv, pair_ids=ids, return_maps=True).score
        fast = m.similarity(img, txt, iv, pair_ids=ids).score
    torch.testing.assert_close(fast, general, atol=1e-5, rtol=0)


@pytest.mark.parametrize("img_norm", [True, False])
def test_counterfactual_fast_path_is_used_and_shares_learned_maps(img_norm, monkeypatch):
    m = make_matcher(direction="both")
    m = type(m).from_config(m.config.replace(img_norm=img_norm), m.vocab)
    img, txt = encoded(m)
    ivs = [parse_intervention(k, seed=1) for k in COUNTERFACTUAL_KINDS] + [None]
    with torch.no_grad():
        general = m.similarity_many(img, txt, ivs, return_maps=True)
        calls = []
        monkeypatch.setattr(FC, "_learned_maps", lambda *a, _f=FC._learned_maps: calls.append(1) or _f(*a))
        fast = [m.similarity(img, txt, iv).score for iv in ivs[:-1]]
        many = m.similarity_many(img, txt, ivs[:-1])
    assert len(calls) == 2 + 2 * 2  # reversed, shuffle alone (2 directions each) + once per direction
    for f, mm, g in zip(fast, many, general):
        torch.testing.assert_close(f, g.score, atol=1e-5, rtol=0)
        torch.testing.assert_close(mm.score, f, atol=0, rtol=0)
    assert not torch.allclose(fast[0], general[-1].score, atol=1e-3)  # counterfactual differs from learned


def test_empty_rows_drop_out():
    """An image with no valid region scores 0 under every kind, as on the general path."""
    m = make_matcher(direction="both")
    img, txt = encoded(m)
    img.mask[1] = False
    img.regions[1] = 0
    img.gram[1] = 0
    for kind in COUNTERFACTUAL_KINDS:
        iv = parse_intervention(kind)
        with torch.no_grad():
            fast = m.similarity(img, txt, iv).score
            general = m.similarity(img, txt, iv, return_maps=True).score
        assert torch.isfinite(fast).all()
        torch.testing.assert_close(fast, general, atol=1e-5, rtol=0)
        assert (fast[1] == 0).all()


@pytest.mark.parametrize("kind", COUNTERFACTUAL_KINDS)
def test_counterfactual_matrix_independent_of_shard_size(kind):
    m = make_matcher(direction="both")
    img, txt = encoded(m, n_img=7)
    iv = parse_intervention(kind, seed=2)
    whole = sharded_similarity(m, img, txt, iv, shard_images=7, shard_captions=5)
    for si, sc in ((1, 1), (3, 2), (4, 3)):
        torch.testing.assert_close(torch.from_numpy(sharded_similarity(m, img, txt, iv, shard_images=si,
                                                                       shard_captions=sc)),
                                   torch.from_numpy(whole), atol=1e-6, rtol=0)


def test_other_interventions_and_grad_keep_general_path(monkeypatch):
    m = make_matcher()
    img, txt = encoded(m)
    monkeypatch.setattr(FC, "fast_cf_scores", lambda *a, **k: pytest.fail("fast path taken"))
    monkeypatch.setattr("causmatch.models.matcher.fast_cf_scores", FC.fast_cf_scores)
    with torch.no_grad():
        m.similarity(img, txt, MaskRegions(indices=(0,)))  # targeted: general path
    feats, mask = make_images(n=3)
    img_g = m.encode_images(feats, mask)  # requires grad: general path
    score = m.similarity(img_g, txt, parse_intervention("random")).score
    assert score.requires_grad
