"""The analysis engine on SGRAF checkpoints (SAF and SGR heads) — nothing SCAN-specific assumed.

A tiny SGRAF model (``model.similarity`` saf/sgr, the tiny split's 4 region slots, some of them padding) is
explained with effects (per-word and per-region included), ranked under interventions, tabulated as failures and
compared with a SCAN one. SAF's filtration weights are reported and are an intervention target of their own
(``filtration:KIND``); cross-checks tie it to independent routes: masking a word's node through the attention
(its row emptied) and through the filtration give the same score in eval mode (the gates are per node), and the
learned weights themselves equal SAF's formula recomputed here from the head's parameters.
"""
import json

import numpy as np
import pytest
import torch

from causmatch.analysis import AnalysisSession
from causmatch.checkpoint import save_matcher
from causmatch.cli import main as cli_main
from causmatch.data import Vocabulary
from causmatch.errors import ConfigError
from causmatch.interventions import OnFiltration, Uniform, parse_intervention
from causmatch.models import Matcher, MatcherConfig, TextConfig
from tests.analysis.analysis_helpers import WORDS, tiny_matcher


def sgraf_matcher(similarity="saf", seed=0):
    torch.manual_seed(seed)
    cfg = MatcherConfig(img_dim=6, embed_size=8, text=TextConfig(word_dim=4), similarity=similarity, sim_dim=5,
                        sgr_step=2, num_region=4)
    m = Matcher(cfg, Vocabulary.from_captions([" ".join(WORDS)]))
    with torch.no_grad():  # trained-looking batch-norm statistics, so eval mode is really exercised
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.uniform_(-0.2, 0.2)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
    return m.eval()


@pytest.fixture(params=["saf", "sgr"])
def session(request, tiny_split, tmp_path):
    return AnalysisSession(sgraf_matcher(request.param), tiny_split, cache_dir=tmp_path / "cache")


@pytest.fixture
def saf(tiny_split, tmp_path):
    return AnalysisSession(sgraf_matcher("saf"), tiny_split, cache_dir=tmp_path / "saf-cache")


def _words(ex):
    return len(ex.tokens)


def test_explain_with_effects(session):
    ex = session.explain(1, 2, intervention="random", samples=3, seed=4)
    W, R = _words(ex), session.split.features.shape[1]
    assert ex.similarity == session.matcher.config.similarity
    assert 0 < ex.score < 1 and np.isfinite(ex.effect) and ex.effect_low <= ex.effect <= ex.effect_high
    assert ex.t2i.shape == (W, R) and ex.i2t is None and ex.cf_t2i.shape == (W, R)
    np.testing.assert_allclose(ex.t2i[:, ex.region_mask].sum(1), 1, atol=1e-5)  # attention over valid regions
    assert not ex.t2i[:, ~ex.region_mask].any()
    assert ex.word_relevance is None and ex.region_relevance is None  # SGRAF pools no cosines
    assert np.isfinite(ex.word_effects).all() and ex.word_effects.shape == (W,)
    valid = ex.region_mask
    assert np.isfinite(ex.region_effects[valid]).all() and np.isnan(ex.region_effects[~valid]).all()
    if ex.similarity == "saf":
        assert ex.filtration.shape == (W + 1,) and ex.filtration.sum() == pytest.approx(1, abs=1e-5)
        assert ex.cf_filtration.shape == (W + 1,)
    else:
        assert ex.filtration is None and ex.cf_filtration is None
    json.dumps(ex.to_dict())  # the report is JSON as it is


def test_effects_equal_pair_scores_by_hand(session):
    """The effect and the per-word / per-region effects are score differences of the model's own pair scores."""
    ex = session.explain(0, 1, intervention="uniform", samples=1)
    img, txt = session.gallery()
    i, c = img[[0]], txt[[1]].trimmed()
    m = session.matcher
    with torch.no_grad():
        s = float(m.pair_scores(i, txt[[1]].trimmed()).score[0])
        cf = float(m.pair_scores(i, c, parse_intervention("uniform")).score[0])
        masked_word = float(m.pair_scores(i, c, parse_intervention("mask-words=1")).score[0])
    assert ex.score == pytest.approx(s, abs=1e-6) and ex.effect == pytest.approx(s - cf, abs=1e-6)
    # Per-word effect j intervenes on word j's attention only; with uniform attention on every word at once
    # the effect is the pair's effect. Masking word 1 removes its node: the per-region effects are masks too.
    assert ex.word_effects.shape == (_words(ex),)
    assert s - masked_word == pytest.approx(
        session.explain(0, 1, intervention="mask-words=1", samples=1, per_word=False).effect, abs=1e-6)


def test_learned_filtration_is_safs_formula(saf):
    """f = l1norm(sigmoid(BN(w · s_n + b))) over the nodes, recomputed from the head's parameters."""
    ex = saf.explain(2, 5, intervention="none", samples=1)
    m = saf.matcher
    img, txt = saf.gallery()
    i, c = m.with_globals(img[[2]], txt[[5]].trimmed())
    head = m.sim_enc
    with torch.no_grad():
        alpha = m.pair_scores(i, c, return_maps=True).t2i  # [1, W, R]
        context = alpha @ i.regions
        context = context / (context.norm(dim=-1, keepdim=True) + 1e-8)
        loc = head.sim_tranloc_w((context - c.words) ** 2)
        loc = loc / (loc.norm(dim=-1, keepdim=True) + 1e-8)
        glo = head.sim_tranglo_w((i.glo - c.glo) ** 2)
        glo = glo / (glo.norm(dim=-1, keepdim=True) + 1e-8)
        nodes = torch.cat([glo[:, None], loc], 1)[0]  # [W+1, S]
        bn = head.SAF_module.bn
        x = head.SAF_module.attn_sim_w(nodes).squeeze(-1)
        gate = torch.sigmoid((x - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias)
        want = (gate / (gate.sum() + 1e-8)).numpy()
    np.testing.assert_allclose(ex.filtration, want, atol=1e-6)


def test_filtration_target_leaves_the_attention_and_edits_the_weights(saf):
    ex = saf.explain(1, 3, intervention="filtration:uniform", samples=1)
    W = _words(ex)
    np.testing.assert_allclose(ex.cf_t2i, ex.t2i, atol=0)  # the maps stay learned
    np.testing.assert_allclose(ex.cf_filtration, np.full(W + 1, 1 / (W + 1)), atol=1e-6)
    assert "filtration" in ex.intervention and np.isfinite(ex.word_effects).all()
    keep_all = saf.explain(1, 3, intervention="filtration:keep-words=" + ",".join(map(str, range(W))), samples=1)
    assert keep_all.effect == pytest.approx(0, abs=1e-6)  # keeping every word (and the global node) changes nothing


def test_masking_a_word_on_the_filtration_equals_masking_its_attention_row(saf):
    """Two routes to 'word j does not count': the attention row emptied (the node drops out) and the node's
    filtration weight zeroed — equal in eval mode, where each gate depends on its own node only."""
    for image, caption in [(0, 0), (3, 7), (5, 11)]:
        W = len(saf.matcher.tokens(saf.split.captions[caption]))
        for j in range(W):
            a = saf.explain(image, caption, intervention=f"mask-words={j}", samples=1, per_word=False,
                            per_region=False)
            f = saf.explain(image, caption, intervention=f"filtration:mask-words={j}", samples=1, per_word=False,
                            per_region=False)
            assert f.cf_score == pytest.approx(a.cf_score, abs=1e-6)
            assert f.cf_filtration[j + 1] == 0
        # Every word masked: the score listens to the global match alone.
        every = ",".join(map(str, range(W)))
        a = saf.explain(image, caption, intervention=f"mask-words={every}", samples=1, per_word=False,
                        per_region=False)
        f = saf.explain(image, caption, intervention=f"filtration:mask-words={every}", samples=1, per_word=False,
                        per_region=False)
        assert f.cf_score == pytest.approx(a.cf_score, abs=1e-6) and f.cf_filtration[0] == pytest.approx(1)


def test_per_word_filtration_effects_are_one_word_at_a_time(saf):
    """Per-word effect j under filtration:mask-words=<all> is the effect of masking word j's weight alone."""
    W = len(saf.matcher.tokens(saf.split.captions[4]))
    ex = saf.explain(2, 4, intervention="filtration:mask-words=" + ",".join(map(str, range(W))), samples=1)
    for j in range(W):
        one = saf.explain(2, 4, intervention=f"filtration:mask-words={j}", samples=1, per_word=False,
                          per_region=False)
        assert ex.word_effects[j] == pytest.approx(one.effect, abs=1e-6)


def test_random_filtration_draws_are_keyed_by_pair_not_batch(saf):
    """A stochastic filtration kind draws per (seed, image, caption, node): the whole-split matrix and the
    one-pair explanation give each pair the same counterfactual score."""
    sims = saf.similarity("filtration:random", samples=2, seed=5)
    assert sims.shape == (saf.split.n_images, saf.split.n_captions) and np.isfinite(sims).all()
    for i, c in [(0, 0), (2, 9), (5, 1)]:
        ex = saf.explain(i, c, intervention="filtration:random", samples=2, seed=5, per_word=False, per_region=False)
        assert ex.cf_score == pytest.approx(float(sims[i, c]), abs=1e-5)
    other = saf.similarity("filtration:random", samples=2, seed=6)
    assert not np.allclose(sims, other)
    again = AnalysisSession(saf.matcher, saf.split, shard_images=2, shard_captions=3).similarity(
        "filtration:random", samples=2, seed=5)
    np.testing.assert_allclose(again, sims, atol=1e-6)


def test_filtration_is_refused_where_there_is_none(tiny_split):
    for matcher in (sgraf_matcher("sgr"), tiny_matcher()):
        s = AnalysisSession(matcher, tiny_split)
        for name, args in [("explain", (0, 0)), ("similarity", ()), ("rank_caption_query", (0,)),
                           ("rank_image_query", (1,)), ("failure_table", ("t2i",)), ("recall", ())]:
            with pytest.raises(ConfigError) as err:
                getattr(s, name)(*args, intervention="filtration:uniform")
            msg = str(err.value)
            assert "\n" not in msg and "filtration" in msg and "does not have" in msg
        img, txt = s.gallery()
        with pytest.raises(ConfigError, match="does not have"):  # the model itself refuses it too
            matcher.similarity(img, txt, OnFiltration(Uniform()))
    with pytest.raises(ConfigError, match="on the filtration target use one of"):
        parse_intervention("filtration:reversed")


@pytest.mark.parametrize("intervention", ["random", "mask-words=0", "filtration:uniform"])
def test_ranks_failures_and_recall_under_interventions(session, intervention):
    if intervention.startswith("filtration") and session.matcher.config.similarity != "saf":
        pytest.skip("filtration is SAF's")
    rc = session.rank_caption_query(3, intervention, samples=2, k=3)
    ri = session.rank_image_query(2, intervention, samples=2, k=3)
    rt = session.rank_text_query("a red circle", 1, intervention, samples=2, k=3)
    for r in (rc, ri, rt):
        assert 0 <= r.rank < len(r.scores) and 0 <= r.cf_rank < len(r.scores) and len(r.top) == 3
        assert np.isfinite(r.scores).all() and np.isfinite(r.cf_scores).all()
    # The caption query reads the whole-split matrix when it is built: the same ranks.
    sims = session.similarity(intervention, samples=2)
    again = session.rank_caption_query(3, intervention, samples=2, k=3)
    np.testing.assert_allclose(again.cf_scores, sims[:, 3], atol=1e-6)
    table = session.failure_table("t2i", intervention, samples=2)
    assert len(table) == session.split.n_captions and table["rank"].between(0, session.split.n_images).all()
    recall = session.recall(intervention, samples=2)
    assert {"t2i_r1", "i2t_r1", "rsum"} <= set(recall) and all(np.isfinite(v) for v in recall.values())


def test_compare_sgraf_with_scan(tiny_split, tmp_path):
    sgr = AnalysisSession(sgraf_matcher("sgr"), tiny_split)
    scan = AnalysisSession(tiny_matcher(), tiny_split)
    table = sgr.failure_table("t2i", "random", other=scan)
    assert table["rank_other"].tolist() == scan.failure_table("t2i", "uniform")["rank"].tolist()
    assert table["pointing"].notna().all()  # pointing reads the t2i maps, which SGRAF has
    back = scan.failure_table("i2t", "uniform", other=sgr)
    assert back["rank_other"].tolist() == sgr.failure_table("i2t", "uniform")["rank"].tolist()


def test_explain_cli_on_a_saf_checkpoint(tmp_path, tiny_split, capsys):
    ckpt = save_matcher(sgraf_matcher("saf"), tmp_path / "saf")
    data = str(tiny_split.folder)
    capsys.readouterr()
    assert cli_main(["explain", "--checkpoint", str(ckpt), "--data", data, "--image", "1", "--caption", "2",
                     "--intervention", "filtration:random", "--samples", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["similarity"] == "saf" and report["filtration"][0]["node"] == "<global>"
    assert [f["node"] for f in report["filtration"][1:]] == report["tokens"]
    assert sum(f["weight"] for f in report["filtration"]) == pytest.approx(1, abs=1e-5)
    assert all(w["effect"] is not None for w in report["word_effects"])
    ckpt = save_matcher(sgraf_matcher("sgr"), tmp_path / "sgr")
    assert cli_main(["explain", "--checkpoint", str(ckpt), "--data", data, "--image", "1", "--caption", "2",
                     "--intervention", "filtration:uniform"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "model.similarity=sgr" in err
