"""The attention maths of causmatch.models.attention on hand-worked cases, and finite gradients at padding.

Every implementation against the textbook context-vector form: test_implementations.py."""
import pytest
import torch

from causmatch.interventions import MaskWords, Reversed
from causmatch.models import attention as A
from causmatch.models.config import AGGS, NORMS
from tests.models.tiny_matcher import CAPTIONS, make_images, make_matcher


def test_every_scan_option_is_a_config_choice():
    assert set(NORMS) == {"clipped_l2norm", "l2norm", "softmax", "no_norm", "clipped", "l1norm", "clipped_l1norm"}
    assert set(AGGS) == {"lse", "mean", "max", "sum"}


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
