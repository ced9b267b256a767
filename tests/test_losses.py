"""Hinge triplet loss (hand-worked) and the CausMatch loss (one code path; λ_eff = 0 skips the counterfactual)."""
import math

import pytest
import torch

from causmatch.data import Vocabulary
from causmatch.interventions import Random, Uniform
from causmatch.losses import CausMatchLoss, contrastive_xent, hinge_triplet
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


S3 = torch.tensor([[0.9, 0.8, 0.1],
                   [0.2, 0.5, 0.6],
                   [0.3, 0.0, 0.7]])


def test_hinge_sum_averaged_per_anchor_hand_worked():
    # violations (margin 0.2) as in test_hinge_hand_worked; each anchor has 2 negatives, so its mean is half
    # rows 0.1/2 | 0.3/2 | 0 ; cols 0 | 0.5/2 | 0.1/2
    assert hinge_triplet(S3, 0.2, hardest=False, average=True).item() == pytest.approx(0.5)
    # captions 1 and 2 share an image: rows 1, 2 and cols 1, 2 keep one negative each (image/caption 0)
    pos = torch.tensor([[True, False, False], [False, True, True], [False, True, True]])
    # row0 (0.1+0)/2 ; row1 0/1 ; row2 0/1 ; col0 0/2 ; col1 0.5/1 ; col2 0/1
    assert hinge_triplet(S3, 0.2, hardest=False, positives=pos, average=True).item() == pytest.approx(0.55)
    # an anchor without any negative contributes 0 rather than 0/0
    assert hinge_triplet(S3[:1, :1], 0.2, hardest=False, average=True).item() == 0.0


def test_contrastive_xent_hand_worked():
    s = torch.tensor([[1.0, 0.0], [0.5, 1.0]])
    # temperature 0.5: logits [[2, 0], [1, 2]]; rows: log(1+e^-2), log(1+e^-1); cols: log(1+e^-1), log(1+e^-2);
    # times the temperature 0.5
    want = math.log(1 + math.exp(-2)) + math.log(1 + math.exp(-1))
    assert contrastive_xent(s, 0.5).item() == pytest.approx(want, abs=1e-6)
    # equal scores, temperature 1, captions 1 and 2 of one image: row/col 0 over 3 classes (log 3),
    # rows/cols 1 and 2 leave the other positive out (2 classes, log 2)
    pos = torch.tensor([[True, False, False], [False, True, True], [False, True, True]])
    want = 2 * (math.log(3) + 2 * math.log(2))
    assert contrastive_xent(torch.zeros(3, 3), 1.0, pos).item() == pytest.approx(want, abs=1e-6)


def test_contrastive_xent_gradient_is_on_the_hinge_scale():
    s = torch.zeros(2, 2, requires_grad=True)
    contrastive_xent(s, 0.01).backward()
    # each of the 4 anchors (2 rows, 2 cols) has p = 1/2: d/ds_diag = 2 * (1/2 - 1), d/ds_off = 2 * 1/2
    assert s.grad.flatten().tolist() == pytest.approx([-1.0, 1.0, 1.0, -1.0])


def _effect(m, img, txt, kind=None):
    kind = Uniform() if kind is None else kind
    S, S_cf = m.similarity(img, txt).score, m.similarity(img, txt, kind).score
    return S, S - S_cf


@pytest.mark.parametrize("kwargs, term", [
    ({}, lambda E: hinge_triplet(E, 0.2, True)),  # defaults: the ranking term's margin and violations
    ({"effect_margin": 0.05}, lambda E: hinge_triplet(E, 0.05, True)),
    ({"effect_margin": 0.05, "effect_violation": "sum"},
     lambda E: hinge_triplet(E, 0.05, False, average=True)),
    ({"effect_loss": "xent", "effect_temperature": 0.02}, lambda E: contrastive_xent(E, 0.02)),
])
def test_effect_term_options(kwargs, term):
    m, img, txt = tiny_batch()
    out = CausMatchLoss(lambda_eff=0.5, intervention=Uniform(), **kwargs)(m, img, txt)
    S, E = _effect(m, img, txt)
    assert out["effect_rank"].item() == pytest.approx(term(E).item(), abs=1e-6)
    assert out["loss"].item() == pytest.approx((hinge_triplet(S) + 0.5 * term(E)).item(), abs=1e-6)


def test_effect_margin_changes_only_the_effect_term():
    m, img, txt = tiny_batch()
    wide = CausMatchLoss(lambda_eff=1.0, intervention=Uniform(), effect_margin=0.5)(m, img, txt)
    narrow = CausMatchLoss(lambda_eff=1.0, intervention=Uniform(), effect_margin=0.0)(m, img, txt)
    assert wide["rank"].item() == narrow["rank"].item()
    assert wide["effect_rank"].item() > narrow["effect_rank"].item()


def test_effect_warmup_switches_the_effect_term_on(monkeypatch):
    m, img, txt = tiny_batch()
    loss = CausMatchLoss(lambda_eff=1.0, intervention=Uniform(), effect_warmup_epochs=2)
    S, E = _effect(m, img, txt)
    for epoch in (0, 1):
        loss.set_epoch(epoch)
        out = loss(m, img, txt)
        assert not loss.effect_active and math.isnan(out["mean_effect_pos"].item())
        assert out["loss"].item() == pytest.approx(hinge_triplet(S).item(), abs=1e-6)
    loss.set_epoch(2)
    out = loss(m, img, txt)
    assert loss.effect_active
    assert out["loss"].item() == pytest.approx((hinge_triplet(S) + hinge_triplet(E)).item(), abs=1e-6)


def test_max_violation_warmup_sums_then_takes_the_hardest():
    """VSE++'s warm-up: summed ranking violations in epochs below N, the hardest negative from epoch N on;
    the effect term (effect_violation=None follows the configured hardest) is not touched by it."""
    m, img, txt = tiny_batch()
    S, E = _effect(m, img, txt)
    assert hinge_triplet(S, hardest=False).item() != pytest.approx(hinge_triplet(S).item())  # the test can tell
    scan = CausMatchLoss(lambda_eff=0.0, max_violation_warmup_epochs=1)
    scan.set_epoch(0)
    assert not scan.rank_hardest
    assert scan(m, img, txt)["loss"].item() == pytest.approx(hinge_triplet(S, hardest=False).item(), abs=1e-6)
    for epoch in (1, 5):
        scan.set_epoch(epoch)
        assert scan(m, img, txt)["loss"].item() == pytest.approx(hinge_triplet(S).item(), abs=1e-6)
    cm = CausMatchLoss(lambda_eff=1.0, intervention=Uniform(), max_violation_warmup_epochs=2)
    cm.set_epoch(1)
    out = cm(m, img, txt)
    assert out["rank"].item() == pytest.approx(hinge_triplet(S, hardest=False).item(), abs=1e-6)
    assert out["effect_rank"].item() == pytest.approx(hinge_triplet(E, average=True).item(), abs=1e-6)
    # default 0: today's behaviour in every epoch; hardest=False stays summed after the warm-up
    plain = CausMatchLoss(lambda_eff=0.0)
    assert plain.max_violation_warmup_epochs == 0 and plain.rank_hardest
    vse0 = CausMatchLoss(lambda_eff=0.0, hardest=False, max_violation_warmup_epochs=1)
    vse0.set_epoch(3)
    assert vse0(m, img, txt)["loss"].item() == pytest.approx(hinge_triplet(S, hardest=False).item(), abs=1e-6)


def test_bad_effect_options_raise():
    with pytest.raises(ValueError):
        CausMatchLoss(effect_violation="max")
    with pytest.raises(ValueError):
        CausMatchLoss(effect_loss="bce")
