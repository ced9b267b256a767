"""The ``fast`` implementation (``fast_scores``, ``fast_counterfactual``): where the rule uses it, what it shares.

Its parity with the reference, for every option it serves, is in test_implementations.py."""
import pytest
import torch

from causmatch.errors import ConfigError
from causmatch.models import attention as A
from causmatch.models.config import NORMS
from tests.models.tiny_matcher import CAPTIONS, make_images, make_matcher


def encoded(m, n_img=4):
    feats, mask = make_images(n=n_img)
    with torch.no_grad():
        return m.encode_images(feats, mask), m.encode_captions(CAPTIONS)


def general_path(m, img, txt):
    """The eager path, by name."""
    return m.similarity(img, txt, impl="eager").score


def test_large_lambda_is_exact_on_unit_gallery():
    """λ at the fast path's limit: the unnormalised exp stays finite and equal to the eager path and the reference."""
    m = make_matcher(lambda_softmax=A.MAX_FAST_LAMBDA)
    img, txt = encoded(m)
    with torch.no_grad():
        assert m.choose_impl(img, txt, [None]) == "fast"
        fast = m.similarity(img, txt).score
        assert torch.isfinite(fast).all()
        torch.testing.assert_close(fast, general_path(m, img, txt), atol=1e-5, rtol=0)
        torch.testing.assert_close(fast, m.similarity(img, txt, impl="reference").score, atol=1e-5, rtol=0)


@pytest.mark.parametrize("attn", [dict(norm=n) for n in NORMS if n not in A.FAST_NORMS]
                         + [dict(lambda_softmax=A.MAX_FAST_LAMBDA + 1)],
                         ids=[n for n in NORMS if n not in A.FAST_NORMS] + ["big_lambda"])
def test_unbounded_logits_fall_back(attn):
    m = make_matcher(**attn)
    img, txt = encoded(m)
    with torch.no_grad():
        assert m.choose_impl(img, txt, [None]) == "eager"
        for impl in ("fast", "compiled"):
            with pytest.raises(ConfigError, match=f"impl '{impl}' cannot score this call: it needs norm in"):
                m.similarity(img, txt, impl=impl)


def test_path_rule_lives_in_one_place():
    """fast_path_ok is the maths' precondition the rule reads; non-unit words always take the eager path."""
    assert set(A.FAST_NORMS) < set(NORMS)
    for norm in NORMS:
        assert A.fast_path_ok(norm, 9.0) == (norm in A.FAST_NORMS)
        assert not A.fast_path_ok(norm, 9.0, unit_words=False)
    m = make_matcher()
    m = type(m).from_config(m.config.replace(txt_norm=False), m.vocab)
    img, txt = encoded(m)
    with torch.no_grad():
        assert m.choose_impl(img, txt, [None]) == "eager"


# ---------------------------------------------------------------- counterfactual matrices

from causmatch.interventions import COUNTERFACTUAL_KINDS, MaskRegions, parse_intervention  # noqa: E402
from causmatch.models import fast_counterfactual as FC  # noqa: E402
from causmatch.models import sharded_similarity  # noqa: E402


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
            ref = m.similarity(img, txt, iv, impl="reference").score
        assert torch.isfinite(fast).all()
        torch.testing.assert_close(fast, general, atol=1e-5, rtol=0)
        torch.testing.assert_close(fast, ref, atol=1e-5, rtol=0)
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
