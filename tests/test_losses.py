"""Hinge triplet loss (hand-worked) and the CausMatch loss (one code path; λ_eff = 0 skips the counterfactual)."""
import math

import pytest
import torch

from causmatch.data import Vocabulary
from causmatch.interventions import Random, Uniform
from causmatch.losses import CausMatchLoss, hinge_triplet
from causmatch.models import AttentionConfig, Matcher, MatcherConfig, TextConfig

CAPS = ["a red ball", "a blue cube left of a ball", "green cone", "two small yellow spheres"]


def tiny_batch(seed=0):
    torch.manual_seed(seed)
    cfg = MatcherConfig(img_dim=6, embed_size=8, text=TextConfig(word_dim=5), attention=AttentionConfig())
    m = Matcher.from_config(cfg, Vocabulary.from_captions(CAPS))
    img = m.encode_images(torch.randn(4, 5, 6))
    return m, img, m.encode_captions(CAPS)


def test_hinge_hand_worked():
    s = torch.tensor([[0.9, 0.8, 0.1],
                      [0.2, 0.5, 0.6],
                      [0.3, 0.0, 0.7]])
    # image rows: hardest wrong caption: row0 0.8 -> 0.2+0.8-0.9=0.1; row1 0.6 -> 0.3; row2 0.3 -> 0 (clamped)
    # caption cols: hardest wrong image: col0 0.3 -> 0; col1 0.8 -> 0.5; col2 0.6 -> 0.1
    assert hinge_triplet(s, 0.2).item() == pytest.approx(0.1 + 0.3 + 0.0 + 0.0 + 0.5 + 0.1)
    # sum over all negatives: rows 0.1+0 | 0+0.3 | 0+0 ; cols 0+0 | 0.5+0 | 0+0.1
    assert hinge_triplet(s, 0.2, hardest=False).item() == pytest.approx(0.1 + 0.3 + 0.5 + 0.1)
    # a second positive (captions 1 and 2 of the same image) is not a negative
    pos = torch.tensor([[True, False, False], [False, True, True], [False, True, True]])
    assert hinge_triplet(s, 0.2, positives=pos).item() == pytest.approx(0.1 + 0.0 + 0.0 + 0.0 + 0.5 + 0.0)


def test_zero_when_positives_win_by_margin():
    s = torch.eye(4) + 0.1
    assert hinge_triplet(s, 0.2).item() == 0.0


def test_lambda_zero_is_scan_and_skips_counterfactual(monkeypatch):
    m, img, txt = tiny_batch()
    calls = []
    original = m.similarity

    def counting(*args, **kw):
        calls.append(args[2] if len(args) > 2 else kw.get("intervention"))
        return original(*args, **kw)

    monkeypatch.setattr(m, "similarity", counting)
    out = CausMatchLoss(lambda_eff=0.0)(m, img, txt)
    assert calls == [None]
    assert out["loss"].item() == pytest.approx(hinge_triplet(original(img, txt).score).item())
    assert math.isnan(out["mean_effect_pos"].item())


def test_causmatch_loss_value_and_gradients():
    m, img, txt = tiny_batch()
    ids = (torch.arange(4), torch.arange(4))
    out = CausMatchLoss(lambda_eff=0.5, intervention=Uniform())(m, img, txt, ids)
    S, S_cf = m.similarity(img, txt).score, m.similarity(img, txt, Uniform()).score
    E = S - S_cf
    assert out["loss"].item() == pytest.approx((hinge_triplet(S) + 0.5 * hinge_triplet(E)).item(), abs=1e-6)
    assert out["mean_effect_pos"].item() == pytest.approx(E.diagonal().mean().item(), abs=1e-6)
    off = E[~torch.eye(4, dtype=torch.bool)].mean().item()
    assert out["mean_effect_neg"].item() == pytest.approx(off, abs=1e-6)
    out["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    assert m.img_enc.fc.weight.grad.abs().sum() > 0


def test_random_counterfactual_is_reproducible_and_duplicates_are_positives():
    m, img, txt = tiny_batch()
    ids = (torch.tensor([0, 0, 1, 2]), torch.arange(4))  # captions 0 and 1 share image 0
    loss = CausMatchLoss(lambda_eff=1.0, intervention=Random(seed=3))
    a, b = loss(m, img, txt, ids), loss(m, img, txt, ids)
    assert a["loss"].item() == b["loss"].item()
    S = m.similarity(img, txt).score
    pos = ids[0].view(-1, 1) == ids[0].view(1, -1)
    assert a["rank"].item() == pytest.approx(hinge_triplet(S, positives=pos).item(), abs=1e-6)
