"""The exact Gram form equals the textbook context-vector form (SCAN) for every option, to 1e-5."""
import itertools

import pytest
import torch

from causmatch.interventions import (KeepRegions, MaskWords, OnlyQueries, Random, Reversed, Shuffle,
                                     SwapWords, Uniform)
from causmatch.models import attention as A
from causmatch.models.config import AGGS, NORMS
from tests.models.tiny_matcher import CAPTIONS, make_images, make_matcher

DIRECTIONS = ("t2i", "i2t", "both")


def test_every_scan_option_is_a_config_choice():
    assert set(NORMS) == {"clipped_l2norm", "l2norm", "softmax", "no_norm", "clipped", "l1norm", "clipped_l1norm"}
    assert set(AGGS) == {"lse", "mean", "max", "sum"}


def direct_matrix(matcher, img, txt, intervention=None):
    """Score every pair one at a time with explicit context vectors (SCAN's evaluation)."""
    a = matcher.config.attention
    opts = dict(norm=a.norm, lambda_softmax=a.lambda_softmax, agg=a.agg, lambda_lse=a.lambda_lse)
    out = torch.zeros(len(img), len(txt))
    for i, c in itertools.product(range(len(img)), range(len(txt))):
        ids = (torch.tensor(i), torch.tensor(c))
        words, wm, regions, rm = txt.words[c], txt.mask[c], img.regions[i], img.mask[i]

        def hook(query, key_mask):
            if intervention is None:
                return None
            return lambda al: intervention.apply(al, key_mask.view(1, -1), query=query, pair_ids=ids)

        parts = []
        if a.direction in ("t2i", "both"):
            parts.append(A.direct_pair_score(words, wm, regions, rm, intervene=hook("words", rm), **opts))
        if a.direction in ("i2t", "both"):
            parts.append(A.direct_pair_score(regions, rm, words, wm, intervene=hook("regions", wm), **opts))
        out[i, c] = sum(parts) / len(parts)
    return out


def encoded(matcher, n_img=4):
    feats, mask = make_images(n=n_img)
    with torch.no_grad():
        return matcher.encode_images(feats, mask), matcher.encode_captions(CAPTIONS)


@pytest.mark.parametrize("direction,norm,agg", list(itertools.product(DIRECTIONS, NORMS, AGGS)))
def test_gram_form_equals_context_vectors(direction, norm, agg):
    m = make_matcher(direction=direction, norm=norm, agg=agg)
    img, txt = encoded(m)
    assert not txt.mask.all() and not img.mask.all()  # padding on both sides is exercised
    with torch.no_grad():
        ours = m.similarity(img, txt).score
        ref = direct_matrix(m, img, txt)
    assert ours.shape == (4, len(CAPTIONS))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


INTERVENTIONS = [Random(seed=3), Uniform(), Reversed(), Shuffle(seed=5), KeepRegions((0, 2)), MaskWords((1,)),
                 SwapWords(0, 2), OnlyQueries(Random(seed=1), (0, 3))]


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("intervention", INTERVENTIONS, ids=lambda iv: iv.name)
def test_gram_form_equals_context_vectors_under_interventions(direction, intervention):
    m = make_matcher(direction=direction, norm="clipped_l2norm", agg="lse")
    img, txt = encoded(m)
    with torch.no_grad():
        ours = m.similarity(img, txt, intervention).score
        ref = direct_matrix(m, img, txt, intervention)
        learned = m.similarity(img, txt).score
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
    assert not torch.allclose(ours, learned)  # the intervention really changed the scores


@pytest.mark.parametrize("direction,norm,agg", [("t2i", "clipped_l2norm", "lse"), ("i2t", "l2norm", "mean"),
                                                ("both", "clipped", "max"), ("t2i", "l1norm", "sum"),
                                                ("both", "softmax", "lse")])
@pytest.mark.parametrize("img_norm", [True, False])
def test_unnormalised_words_match_reference(direction, norm, agg, img_norm):
    """txt_norm=False (SCAN's no_txtnorm): words are not unit vectors; t2i needs their norms in the relevance."""
    m = make_matcher(direction=direction, norm=norm, agg=agg)
    m = type(m).from_config(m.config.replace(txt_norm=False, img_norm=img_norm), m.vocab)
    img, txt = encoded(m)
    n = txt.words.norm(dim=-1)[txt.mask]
    assert (n - 1).abs().max() > 0.05  # really not unit vectors
    with torch.no_grad():
        assert not m._can_use_fast_path(img, txt)  # the general path serves it
        torch.testing.assert_close(m.similarity(img, txt).score, direct_matrix(m, img, txt), atol=1e-5, rtol=0)
        pairs = m.pair_scores(img[[0, 1, 2, 3]], txt[[0, 1, 2, 3]]).score
        torch.testing.assert_close(pairs, m.similarity(img, txt).score.diagonal()[:4], atol=1e-5, rtol=0)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_unnormalised_regions_match_reference(direction):
    """img_norm=False: regions are not unit vectors; i2t needs their norms in the relevance."""
    m = make_matcher(direction=direction)
    m = type(m).from_config(m.config.replace(img_norm=False), m.vocab)
    img, txt = encoded(m)
    with torch.no_grad():
        torch.testing.assert_close(m.similarity(img, txt).score, direct_matrix(m, img, txt), atol=1e-5, rtol=0)


def test_cosine_sims_layout():
    words, regions = torch.randn(3, 5, 7), torch.randn(2, 4, 7)
    s = A.cosine_sims(words, regions)
    assert s.shape == (2, 3, 5, 4)
    torch.testing.assert_close(s, torch.einsum("cwd,ird->icwr", words, regions))


def test_attention_rows_are_distributions_over_valid_keys():
    s = torch.randn(2, 3, 4, 5)
    qm = torch.tensor([True, True, True, False]).expand(2, 3, 4)
    km = torch.tensor([True, True, False, True, True]).view(1, 1, 1, 5)
    alpha = A.attention_maps(s, qm, km, "clipped_l2norm", 9.0)
    torch.testing.assert_close(alpha[..., :3, :].sum(-1), torch.ones(2, 3, 3))
    assert (alpha[..., 3, :] == 0).all() and (alpha[..., 2] == 0).all()


def test_aggregate_hand_worked():
    rel = torch.tensor([[0.5, 0.1, 0.9], [0.2, 0.3, 0.4]])
    mask = torch.tensor([[True, True, False], [False, False, False]])
    lse = A.aggregate(rel, mask, "lse", 2.0)
    torch.testing.assert_close(lse[0], torch.log(torch.exp(torch.tensor(1.0)) + torch.exp(torch.tensor(0.2))) / 2)
    assert lse[1] == 0  # no valid query: score 0, not NaN
    torch.testing.assert_close(A.aggregate(rel, mask, "mean", 2.0), torch.tensor([0.3, 0.0]))
    torch.testing.assert_close(A.aggregate(rel, mask, "max", 2.0), torch.tensor([0.5, 0.0]))  # 0.9 is masked
    torch.testing.assert_close(A.aggregate(rel, mask, "sum", 2.0), torch.tensor([0.6, 0.0]))
    neg = torch.tensor([[-0.5, -0.1, 3.0]])
    assert A.aggregate(neg, mask[:1], "max", 2.0).item() == pytest.approx(-0.1)  # max of negatives, not 0


def test_normalisations_hand_worked():
    """SCAN's raw_feature_norm on a [Q=3, K=2] map, the third query padding (it must not count)."""
    s = torch.tensor([[0.6, -0.2], [0.8, 0.4], [5.0, 5.0]])
    qm = torch.tensor([True, True, False])
    leaky = torch.tensor([[0.6, -0.02], [0.8, 0.4]])
    want = {
        "no_norm": s[:2],
        "clipped": leaky,
        "l2norm": s[:2] / s[:2].norm(dim=0),
        "clipped_l2norm": leaky / leaky.norm(dim=0),
        "l1norm": s[:2] / s[:2].abs().sum(0),
        "clipped_l1norm": leaky / leaky.abs().sum(0),
        "softmax": torch.softmax(s[:2], dim=0),
    }
    assert set(want) == set(NORMS)
    for norm, expect in want.items():
        got = A.normalize_sims(s, norm, qm)
        torch.testing.assert_close(got[:2], expect, atol=1e-6, rtol=0, msg=norm)
        assert (got[2] == 0).all(), norm


@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("intervention", [None, MaskWords(tuple(range(12))), Reversed()], ids=str)
def test_gradients_finite_with_padding_and_empty_rows(norm, intervention):
    """Padded words/regions (zero vectors) and pairs whose every query is masked keep gradients finite."""
    m = make_matcher(direction="both", norm=norm)
    feats, mask = make_images()
    img, txt = m.encode_images(feats, mask), m.encode_captions(CAPTIONS)
    score = m.similarity(img, txt, intervention).score
    if isinstance(intervention, MaskWords):
        assert (score == 0).all()
    score.sum().backward()
    grads = [p.grad for p in m.parameters() if p.grad is not None]
    assert grads
    assert all(torch.isfinite(g).all() for g in grads)
