"""Every scoring implementation equals the one reference (causmatch.models.reference): a star, not a chain.

One parametrised test runs implementation × norm × direction × pooling × intervention. Where the rule of
``causmatch.models.impl`` says an implementation cannot serve a setting, the test checks that asking for it by
name is refused in one line instead. The vectors vary with (pooling, direction) in a Latin square — unit
vectors, regions not unit (``img_norm=False``), words not unit (``txt_norm=False``) — so every pooling and
every direction meets all three. ``compiled`` compiles once per setting (about 10 s): it runs on the settings
of ``COMPILED`` (every direction, norm in ``FAST_NORMS`` and pooling among them), marked slow.
"""
from __future__ import annotations

import functools
import itertools

import pytest
import torch

from causmatch.errors import ConfigError
from causmatch.interventions import KeepRegions, MaskWords, OneWord, Random, Reversed, Shuffle, SwapWords, Uniform
from causmatch.models import attention as A
from causmatch.models import reference
from causmatch.models.config import AGGS, NORMS
from causmatch.models.impl import IMPLS, choose_impl, why_not
from tests.models.tiny_matcher import CAPTIONS, make_images, make_matcher, map_atol

DIRECTIONS = ("t2i", "i2t", "both")
VECTORS = ("unit", "raw regions", "raw words")
INTERVENTIONS = [None, Random(seed=3), Uniform(), Reversed(), Shuffle(seed=5), KeepRegions((0, 2)), MaskWords((1,)),
                 SwapWords(0, 2), OneWord(Random(seed=1), 3)]
COMPILED = {("t2i", "clipped_l2norm", "lse"),  # SCAN's default, the benchmark's setting
            ("i2t", "softmax", "lse"), ("both", "l2norm", "max"), ("both", "clipped_l2norm", "mean"),
            ("t2i", "l2norm", "sum")}
IDS = (torch.tensor([5, 0, 9, 2]), torch.tensor([11, 3, 7, 1, 4]))  # global ids key the draws, not positions
SCORE_ATOL = 1e-5


def vectors(direction: str, agg: str) -> str:
    return VECTORS[(AGGS.index(agg) + DIRECTIONS.index(direction)) % len(VECTORS)]


@functools.cache
def setup(direction: str, norm: str, agg: str):
    """A tiny matcher with padded words and regions, and its encoded batch (4 images × 5 captions)."""
    m = make_matcher(direction=direction, norm=norm, agg=agg)
    v = vectors(direction, agg)
    m = type(m).from_config(m.config.replace(img_norm=v != "raw regions", txt_norm=v != "raw words"), m.vocab)
    feats, mask = make_images(n=4)
    with torch.no_grad():
        img, txt = m.encode_images(feats, mask), m.encode_captions(CAPTIONS)
    assert not txt.mask.all() and not img.mask.all()  # padding on both sides is exercised
    return m, img, txt


@functools.cache
def expected(direction: str, norm: str, agg: str, iv_index: int) -> dict:
    m, img, txt = setup(direction, norm, agg)
    a = m.config.attention
    with torch.no_grad():
        return reference.similarity(txt.words, txt.mask, img.regions, img.mask, direction=direction, norm=norm,
                                    lambda_softmax=a.lambda_softmax, agg=agg, lambda_lse=a.lambda_lse,
                                    intervention=INTERVENTIONS[iv_index], pair_ids=IDS)


def _cases():
    for impl, norm, direction, agg, n in itertools.product(IMPLS, NORMS, DIRECTIONS, AGGS, range(len(INTERVENTIONS))):
        marks = ()
        if impl == "compiled" and n == 0 and norm in A.FAST_NORMS and vectors(direction, agg) != "raw words":
            if (direction, norm, agg) not in COMPILED:
                continue  # the compile budget: COMPILED covers every branch of the compiled kernels
            marks = (pytest.mark.slow,)
        iv = INTERVENTIONS[n]
        yield pytest.param(impl, norm, direction, agg, n, marks=marks,
                           id=f"{impl}-{norm}-{direction}-{agg}-{'learned' if iv is None else iv.name}")


MAPS = ("t2i", "i2t", "word_relevance", "region_relevance")


@pytest.mark.parametrize("impl,norm,direction,agg,iv_index", list(_cases()))
def test_every_implementation_equals_the_reference(impl, norm, direction, agg, iv_index):
    m, img, txt = setup(direction, norm, agg)
    iv = INTERVENTIONS[iv_index]
    ref = expected(direction, norm, agg, iv_index)
    maps = impl in ("reference", "eager")  # the implementations that keep maps
    reason = why_not(impl, m.config, grad=False, autocast=False, return_maps=maps, interventions=[iv])
    with torch.no_grad():
        if reason is not None:
            with pytest.raises(ConfigError) as err:
                m.similarity(img, txt, iv, pair_ids=IDS, impl=impl, return_maps=maps)
            assert "\n" not in str(err.value) and f"impl {impl!r}" in str(err.value) and reason in str(err.value)
            return
        got = m.similarity(img, txt, iv, pair_ids=IDS, impl=impl, return_maps=maps)
    assert got.score.shape == (4, len(CAPTIONS)) and torch.isfinite(got.score).all()
    if m.choose_impl(img, txt, [iv], return_maps=maps) == impl:  # the default rule picks it: similarity runs it
        with torch.no_grad():
            default = m.similarity(img, txt, iv, pair_ids=IDS, return_maps=maps).score
        torch.testing.assert_close(default, got.score, atol=0, rtol=0)
    torch.testing.assert_close(got.score, ref["score"], atol=SCORE_ATOL, rtol=0)
    tol = map_atol(m.config.attention.lambda_softmax)
    for name in MAPS if maps else ():
        assert (getattr(got, name) is None) == (ref[name] is None), name
        if ref[name] is not None:
            torch.testing.assert_close(getattr(got, name), ref[name], atol=tol, rtol=0, msg=name)
    if impl == "eager":  # its aligned-pairs layout (pair_scores: image n with caption n) is checked here too
        n = torch.arange(4)
        with torch.no_grad():
            pairs = m.pair_scores(img, txt[[0, 1, 2, 3]], iv, pair_ids=(IDS[0], IDS[1][:4]), return_maps=True)
        torch.testing.assert_close(pairs.score, ref["score"][n, n], atol=SCORE_ATOL, rtol=0)
        for name in MAPS:
            if ref[name] is not None:
                torch.testing.assert_close(getattr(pairs, name), ref[name][n, n], atol=tol, rtol=0, msg=name)
    if iv is not None and impl == "reference" and agg != "max":  # (max may not see a change to one word)
        learned = expected(direction, norm, agg, 0)["score"]
        assert not torch.allclose(ref["score"], learned)  # the intervention really changed the scores


# ---------------------------------------------------------------- the rule that picks an implementation

class Kid(Random):
    """A subclass may change the draw: the fast path, which draws by kind, must not take it."""


@pytest.mark.parametrize("case,expect", [
    (dict(), "fast"),
    (dict(interventions=[Random(seed=1)]), "fast"),
    (dict(interventions=[Uniform(), Reversed(), Shuffle()]), "fast"),
    (dict(interventions=[None, Random()]), "eager"),  # learned and counterfactual in one call
    (dict(interventions=[Kid()]), "eager"),
    (dict(interventions=[MaskWords((1,))]), "eager"),
    (dict(grad=True), "eager"),
    (dict(autocast=True), "eager"),  # the eager path keeps the relevance in float32
    (dict(return_maps=True), "eager"),
    (dict(norm="no_norm"), "eager"),  # unbounded logits: the fast exp needs |s̃| <= 1
    (dict(norm="l1norm"), "eager"),
    (dict(lambda_softmax=A.MAX_FAST_LAMBDA + 1), "eager"),
    (dict(lambda_softmax=A.MAX_FAST_LAMBDA), "fast"),
    (dict(txt_norm=False), "eager"),  # the fast paths take a word's norm as 1
    (dict(img_norm=False), "fast"),
], ids=str)
def test_the_default_rule(case, expect):
    case = dict(case)
    attn = {k: case.pop(k) for k in ("norm", "lambda_softmax") if k in case}
    vec = {k: case.pop(k) for k in ("txt_norm", "img_norm") if k in case}
    m = make_matcher(**attn)
    cfg = m.config.replace(**vec) if vec else m.config
    ctx = dict(grad=False, autocast=False, return_maps=False, interventions=[None]) | case
    assert choose_impl(cfg, **ctx) == expect
    assert choose_impl(cfg, "eager", **ctx) == "eager" and choose_impl(cfg, "reference", **ctx) == "reference"
    with pytest.raises(ConfigError) as err:
        choose_impl(cfg, "fastest", **ctx)
    assert "\n" not in str(err.value) and "reference, eager, fast, compiled" in str(err.value)


def test_the_matcher_reads_grad_mode_and_autocast():
    m = make_matcher()
    feats, mask = make_images(n=3)
    img, txt = m.encode_images(feats, mask), m.encode_captions(CAPTIONS[:3])  # parameters require grad
    assert m.choose_impl(img, txt, [None]) == "eager"
    score = m.similarity(img, txt).score
    assert score.requires_grad
    score.sum().backward()
    assert all(p.grad is not None for p in m.img_enc.parameters())
    with pytest.raises(ConfigError, match="impl 'fast' cannot score this call: it computes no gradients"):
        m.similarity(img, txt, impl="fast")
    with torch.no_grad():
        assert m.choose_impl(img, txt, [None]) == "fast"
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert m.choose_impl(img, txt, [None]) == "eager"
            with pytest.raises(ConfigError, match="autocast"):
                m.similarity(img, txt, impl="compiled")


def test_reference_hand_worked():
    """One word, two regions, t2i, no_norm, λ = ln 3: α = (3/4, 1/4); the context vector and its cosine by hand."""
    word = torch.tensor([[[1.0, 0.0]]])  # [C=1, W=1, D=2]
    regions = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # [I=1, R=2, D=2]: sims 1 and 0
    out = reference.similarity(word, torch.tensor([[True]]), regions, torch.tensor([[True, True]]), direction="t2i",
                               norm="no_norm", lambda_softmax=float(torch.log(torch.tensor(3.0))), agg="mean",
                               lambda_lse=6.0)
    torch.testing.assert_close(out["t2i"], torch.tensor([[[[0.75, 0.25]]]]))
    context = torch.tensor([0.75, 0.25])
    torch.testing.assert_close(out["score"], (context[0] / context.norm()).view(1, 1))  # cos(word, context)
    padded = reference.similarity(word, torch.tensor([[True]]), torch.cat([regions, torch.full((1, 1, 2), 5.0)], 1),
                                  torch.tensor([[True, True, False]]), direction="t2i", norm="no_norm",
                                  lambda_softmax=float(torch.log(torch.tensor(3.0))), agg="mean", lambda_lse=6.0)
    torch.testing.assert_close(padded["score"], out["score"])  # a padded region changes nothing
    assert padded["t2i"][..., 2].item() == 0


def test_evaluate_cli_names_the_implementation(tmp_path):
    """``causmatch evaluate --impl`` takes the names of IMPLS (checked before anything is loaded); --fused is
    ``--impl compiled``."""
    from causmatch.cli.evaluate import build_parser, main

    base = ["--checkpoint", str(tmp_path / "nothing"), "--data", str(tmp_path / "nothing")]
    with pytest.raises(ConfigError) as err:
        main([*base, "--impl", "fastest"])
    assert str(err.value) == "--impl must be one of reference, eager, fast, compiled, sgraf, got 'fastest'"
    assert build_parser().parse_args([*base, "--fused"]).impl == "compiled"
    assert build_parser().parse_args([*base, "--impl", "eager"]).impl == "eager"
    assert build_parser().parse_args(base).impl is None


def test_evaluate_passes_the_implementation_on(scenes_sample, monkeypatch):
    """evaluate(impl=) reaches every scoring call; 'compiled' (learned maps only) leaves a counterfactual matrix
    to the default rule."""
    import causmatch.models.matcher as matcher_module
    from causmatch.data import Vocabulary, load_split
    from causmatch.evaluation import evaluate
    from causmatch.models import Matcher, MatcherConfig

    split = load_split(scenes_sample, "test")
    torch.manual_seed(0)
    cfg = MatcherConfig(img_dim=split.features.shape[-1], embed_size=16, text={"word_dim": 8})
    m = Matcher(cfg, vocab=Vocabulary.from_captions(split.captions)).eval()
    asked = []

    def spy(config, requested=None, **ctx):
        asked.append((requested, ctx["interventions"][0] is None))
        return choose_impl(config, "fast" if requested == "compiled" else requested, **ctx)  # (no compiling here)

    monkeypatch.setattr(matcher_module, "choose_impl", spy)
    evaluate(m, split, intervention=Random(seed=1), grounding=False, impl="eager")
    assert asked and set(asked) == {("eager", True), ("eager", False)}
    asked.clear()
    evaluate(m, split, intervention=Random(seed=1), grounding=False, impl="compiled")
    assert set(asked) == {("compiled", True), (None, False)}
    asked.clear()
    evaluate(m, split, grounding=False)
    assert set(asked) == {(None, True)}
