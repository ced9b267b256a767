"""SGRAF heads (model.similarity = saf | sgr) against an independent reference written from the formulas.

The reference below follows SGRAF's evaluation procedure pair by pair and word by word in float64, with
Python loops over regions, words and nodes (tiny dimensions, so every number can be checked by hand), and
reads only the module's weights: it shares no code with :mod:`causmatch.models.sgraf` or the attention maths.
Padded regions are left out of every softmax and mean (their batch-norm slot keeps its position); a word whose
attention row is empty (padding, or an intervention emptied it) is not a node.
"""
import json
import math

import pytest
import torch

from causmatch.checkpoint import load_matcher, save_matcher
from causmatch.errors import ConfigError, DataError
from causmatch.interventions import parse_intervention
from causmatch.models import Matcher, MatcherConfig, TextConfig, sharded_similarity
from causmatch.models import sgraf as G
from causmatch.models.impl import choose_impl, why_not
from tests.models.tiny_matcher import CAPTIONS, make_images, make_vocab, map_atol

TOL = 1e-5
HEADS = ("saf", "sgr")
IVS = ("random", "uniform", "mask-words=0,2", "keep-regions=1", "swap-words=0,1")


def make_sgraf(similarity, *, seed=0, num_region=6, sgr_step=2) -> Matcher:
    torch.manual_seed(seed)
    cfg = MatcherConfig(img_dim=8, embed_size=10, text=TextConfig(word_dim=12), similarity=similarity, sim_dim=6,
                        sgr_step=sgr_step, num_region=num_region)
    m = Matcher(cfg, make_vocab())
    _random_batch_norms(m, seed)
    return m.eval()


def _random_batch_norms(m: Matcher, seed: int) -> None:
    """Running statistics and affine weights away from the identity, so the reference must apply them right."""
    g = torch.Generator().manual_seed(seed + 100)
    for mod in m.sim_enc.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            n = mod.num_features
            mod.running_mean.copy_(torch.randn(n, generator=g) * 0.3)
            mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            mod.bias.data.copy_(torch.randn(n, generator=g) * 0.2)


def encoded(m: Matcher, n_img=4, regions=6):
    feats, mask = make_images(n=n_img, regions=regions)
    with torch.no_grad():
        return m.encode_images(feats, mask), m.encode_captions(CAPTIONS)


# ---------------------------------------------------------------- the reference (float64, loops)

def _vec(t):
    return [float(x) for x in t]


def _lin(layer, x):
    """``W x + b`` of a Linear layer on a list."""
    W, b = layer.weight.detach().double().tolist(), layer.bias.detach().double().tolist()
    return [sum(wi * xi for wi, xi in zip(row, x)) + bj for row, bj in zip(W, b)]


def _bn(bn, x, ch):
    """An eval-mode batch norm on the scalar ``x`` of channel ``ch``."""
    mean, var = float(bn.running_mean[ch]), float(bn.running_var[ch])
    return (x - mean) / math.sqrt(var + bn.eps) * float(bn.weight.detach()[ch]) + float(bn.bias.detach()[ch])


def _l2(x):
    n = math.sqrt(sum(v * v for v in x))
    return [v / (n + 1e-8) for v in x]


def _softmax(xs):
    top = max(xs)
    e = [math.exp(v - top) for v in xs]
    return [v / sum(e) for v in e]


def _sigmoid(x):
    return 1 / (1 + math.exp(-x))


def ref_visual_global(sa, regions, valid):
    """VisualSA: slot r's local embedding is tanh(BN_r(L v_r)), the global tanh(BN(L mean)); softmax over valid r."""
    D = len(regions[0])
    slots = [regions[r] if r < len(regions) else [0.0] * D for r in range(sa.num_region)]
    ok = [r < len(regions) and valid[r] for r in range(sa.num_region)]
    mean = [sum(slots[r][d] for r in range(len(slots)) if ok[r]) / sum(ok) for d in range(D)]
    lin_l, bn_l = sa.embedding_local[0], sa.embedding_local[1]
    lin_g, bn_g = sa.embedding_global[0], sa.embedding_global[1]
    g = [math.tanh(_bn(bn_g, v, d)) for d, v in enumerate(_lin(lin_g, mean))]
    logits = []
    for r in range(len(slots)):
        loc = [math.tanh(_bn(bn_l, v, r)) for v in _lin(lin_l, slots[r])]
        logits.append(_lin(sa.embedding_common[0], [a * b for a, b in zip(loc, g)])[0])
    keep = [r for r in range(len(slots)) if ok[r]]
    w = _softmax([logits[r] for r in keep])
    return _l2([sum(wk * slots[r][d] for wk, r in zip(w, keep)) for d in range(D)])


def ref_text_global(sa, words):
    """TextSA on a caption's valid words."""
    D = len(words[0])
    mean = [sum(w[d] for w in words) / len(words) for d in range(D)]
    g = [math.tanh(v) for v in _lin(sa.embedding_global[0], mean)]
    logits = [_lin(sa.embedding_common[0], [math.tanh(a) * b for a, b in zip(_lin(sa.embedding_local[0], w), g)])[0]
              for w in words]
    wts = _softmax(logits)
    return _l2([sum(a * w[d] for a, w in zip(wts, words)) for d in range(D)])


def ref_attention(words, regions, lam):
    """SCAN's t2i map of one pair: leaky ReLU(0.1), l2-normalised over the words, softmax over regions (λ)."""
    s = [[sum(a * b for a, b in zip(w, v)) for v in regions] for w in words]
    s = [[x if x > 0 else 0.1 * x for x in row] for row in s]
    for r in range(len(regions)):
        n = math.sqrt(sum(s[w][r] ** 2 for w in range(len(words))))
        for w in range(len(words)):
            s[w][r] /= n + 1e-8
    return [_softmax([lam * x for x in row]) for row in s]


def ref_score(enc, alpha_rows, words, regions, img_glo, cap_glo):
    """One pair from its (possibly intervened) map rows → (score, SAF weights or None). Empty rows are no nodes."""
    D = len(words[0])
    nodes = [_l2(_lin(enc.sim_tranglo_w, [(a - b) ** 2 for a, b in zip(img_glo, cap_glo)]))]
    for w, row in enumerate(alpha_rows):
        if all(a == 0 for a in row):
            continue
        ctx = _l2([sum(a * v[d] for a, v in zip(row, regions)) for d in range(D)])
        nodes.append(_l2(_lin(enc.sim_tranloc_w, [(c - e) ** 2 for c, e in zip(ctx, words[w])])))
    weights = None
    if enc.module_name == "SGR":
        for step in enc.SGR_module:
            q = [_lin(step.graph_query_w, n) for n in nodes]
            k = [_lin(step.graph_key_w, n) for n in nodes]
            new = []
            for p in range(len(nodes)):
                edge = _softmax([sum(a * b for a, b in zip(q[p], k[j])) for j in range(len(nodes))])
                agg = [sum(e * nodes[j][d] for j, e in enumerate(edge)) for d in range(len(nodes[0]))]
                new.append([max(0.0, v) for v in _lin(step.sim_graph_w, agg)])
            nodes = new
        vec = nodes[0]
    else:
        f = enc.SAF_module
        gate = [_sigmoid(_bn(f.bn, _lin(f.attn_sim_w, n)[0], 0)) for n in nodes]
        weights = [g / (sum(gate) + 1e-8) for g in gate]
        vec = _l2([sum(wt * n[d] for wt, n in zip(weights, nodes)) for d in range(len(nodes[0]))])
    return _sigmoid(_lin(enc.sim_eval_w, vec)[0]), weights


def reference(m: Matcher, img, txt, iv=None, ids=None):
    """Scores ``[I, C]`` (and SAF weights per pair) by the loops above; ``iv`` applied to the reference's maps."""
    enc, lam = m.sim_enc, m.config.attention.lambda_softmax
    I, C = len(img), len(txt)
    R, W = img.regions.shape[1], txt.words.shape[1]
    regions = [[_vec(v) for v in img.regions[i].double()] for i in range(I)]
    rvalid = [img.mask[i].tolist() for i in range(I)]
    words = [[_vec(e) for e, ok in zip(txt.words[c].double(), txt.mask[c]) if ok] for c in range(C)]
    img_glo = [ref_visual_global(enc.v_global_w, regions[i], rvalid[i]) for i in range(I)]
    cap_glo = [ref_text_global(enc.t_global_w, words[c]) for c in range(C)]
    alpha = torch.zeros(I, C, W, R, dtype=torch.float64)
    for i in range(I):
        keep = [r for r in range(R) if rvalid[i][r]]
        for c in range(C):
            rows = ref_attention(words[c], [regions[i][r] for r in keep], lam)
            for w, row in enumerate(rows):
                for r, a in zip(keep, row):
                    alpha[i, c, w, r] = a
    if iv is not None:
        ids = ids or (torch.arange(I), torch.arange(C))
        alpha = parse_intervention(iv, seed=3).apply(alpha, img.mask[:, None, None, :], query="words",
                                                     pair_ids=(ids[0].view(I, 1), ids[1].view(1, C)))
    score = torch.zeros(I, C, dtype=torch.float64)
    filt = {}
    for i in range(I):
        for c in range(C):
            rows = [alpha[i, c, w].tolist() for w in range(len(words[c]))]
            score[i, c], filt[i, c] = ref_score(enc, rows, words[c], regions[i], img_glo[i], cap_glo[c])
    return score, alpha, filt


# ---------------------------------------------------------------- equal to the reference

@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("iv", [None, *IVS])
def test_scores_equal_the_reference(head, iv):
    """Variable caption lengths and padded regions (make_images pads 0..2 regions per image)."""
    m = make_sgraf(head)
    img, txt = encoded(m)
    assert not bool(img.mask.all()) and not bool(txt.mask.all())  # both kinds of padding are exercised
    ref, ref_alpha, ref_filt = reference(m, img, txt, iv)
    with torch.no_grad():
        got = m.similarity(img, txt, None if iv is None else parse_intervention(iv, seed=3), return_maps=True)
    torch.testing.assert_close(got.score.double(), ref, atol=TOL, rtol=0)
    torch.testing.assert_close(got.t2i.double(), ref_alpha, atol=TOL, rtol=0)
    assert got.word_relevance is None and got.i2t is None  # SGRAF has no per-word cosine relevance
    if head == "saf":
        for (i, c), weights in ref_filt.items():
            got_w = got.filtration[i, c]
            alive = [0, *[1 + w for w in range(txt.mask.shape[1]) if txt.mask[c, w] and got.t2i[i, c, w].any()]]
            torch.testing.assert_close(got_w[alive].double(), torch.tensor(weights, dtype=torch.float64),
                                       atol=TOL, rtol=0)
            assert float(got_w.sum()) == pytest.approx(1, abs=1e-5)  # l1-normalised over the nodes
    else:
        assert got.filtration is None


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("iv", [None, "random", "mask-words=1"])
def test_pair_scores_equal_the_all_pairs_diagonal(head, iv):
    m = make_sgraf(head)
    img, txt = encoded(m)
    ivo = None if iv is None else parse_intervention(iv, seed=3)
    ids = (torch.tensor([10, 11, 12, 13]), torch.tensor([20, 21, 22, 23]))
    with torch.no_grad():
        full = m.similarity(img, txt[[0, 1, 2, 3]], ivo, pair_ids=ids, return_maps=True)
        pairs = m.pair_scores(img, txt[[0, 1, 2, 3]], ivo, pair_ids=ids, return_maps=True)
    n = torch.arange(4)
    torch.testing.assert_close(pairs.score, full.score[n, n], atol=TOL, rtol=0)
    # the aligned and all-pairs sims sum D terms in different orders (a few ulps; tiny_matcher.map_atol)
    torch.testing.assert_close(pairs.t2i, full.t2i[n, n], atol=map_atol(m.config.attention.lambda_softmax), rtol=0)


@pytest.mark.parametrize("head", HEADS)
def test_an_emptied_row_removes_the_word_node(head):
    """Masking every word leaves the global node alone: the score is sigmoid(eval(vector of s_0 only))."""
    m = make_sgraf(head)
    img, txt = encoded(m)
    W = txt.mask.shape[1]
    with torch.no_grad():
        got = m.similarity(img, txt, parse_intervention("mask-words=" + ",".join(map(str, range(W))))).score
    ref, _, _ = reference(m, img, txt, "mask-words=" + ",".join(map(str, range(W))))
    torch.testing.assert_close(got.double(), ref, atol=TOL, rtol=0)
    enc = m.sim_enc
    with torch.no_grad():
        glo = (img.glo[:, None] - txt.glo[None]).pow(2)
        s0 = G.l2norm(enc.sim_tranglo_w(glo))  # [I, C, S]
        if head == "sgr":  # a one-node graph: each step is relu(W_g s) (its softmax over one node is 1)
            for step in enc.SGR_module:
                s0 = torch.relu(step.sim_graph_w(s0))
        else:  # one node: filtration weight sigmoid(.)/(sigmoid(.) + eps), then l2norm
            s0 = G.l2norm(s0)
        expect = torch.sigmoid(enc.sim_eval_w(s0)).squeeze(-1)
    torch.testing.assert_close(got, expect, atol=TOL, rtol=0)


# ---------------------------------------------------------------- shards, batches, memory budget

@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("iv", [None, "random", "shuffle"])
def test_sharded_similarity_does_not_depend_on_shards(head, iv, monkeypatch):
    m = make_sgraf(head)
    img, txt = encoded(m)
    ivo = None if iv is None else parse_intervention(iv, seed=5)
    ids = dict(image_ids=torch.tensor([7, 3, 9, 1]), caption_ids=torch.arange(100, 105))
    whole = sharded_similarity(m, img, txt, ivo, shard_images=64, shard_captions=64, **ids)
    with torch.no_grad():
        direct = m.similarity(img, txt, ivo, pair_ids=(ids["image_ids"], ids["caption_ids"])).score.numpy()
    assert abs(whole - direct).max() < 1e-6
    for si, sc in ((1, 1), (3, 2), (2, 5)):
        part = sharded_similarity(m, img, txt, ivo, shard_images=si, shard_captions=sc, **ids)
        assert abs(part - whole).max() < 1e-6, (si, sc)
    # A tiny memory budget cuts the blocks to single pairs: the same matrix.
    monkeypatch.setattr(G, "BLOCK_BUDGET_BYTES", 1)
    assert abs(sharded_similarity(m, img, txt, ivo, **ids) - whole).max() < 1e-6
    # Embeddings without globals (as a cache rebuilds them) get them computed once: the same matrix.
    bare_img = type(img)(img.regions, img.mask, img.gram)
    bare_txt = type(txt)(txt.words, txt.mask, txt.gram, txt.tokens)
    assert abs(sharded_similarity(m, bare_img, bare_txt, ivo, **ids) - whole).max() < 1e-6


@pytest.mark.parametrize("head", HEADS)
def test_encoding_in_batches_gives_the_same_globals(head):
    """Eval mode: the self-attention's batch norms use running statistics, so batching changes nothing."""
    m = make_sgraf(head)
    img, txt = encoded(m)
    feats, mask = make_images()
    with torch.no_grad():
        one = torch.cat([m.encode_images(feats[i:i + 1], mask[i:i + 1]).glo for i in range(4)])
        caps = torch.cat([m.encode_captions([c]).glo for c in CAPTIONS])
    torch.testing.assert_close(one, img.glo, atol=1e-6, rtol=0)
    torch.testing.assert_close(caps, txt.glo, atol=1e-6, rtol=0)


def test_block_shape_follows_the_budget():
    per_pair = G.bytes_per_pair(20, 36, 1024, 256)
    assert per_pair == 4 * 20 * (2 * 1024 + 6 * 256 + 2 * 36) + 8 * 1024
    si, sc = G.block_shape(1000, 5000, words=20, regions=36, embed_size=1024, sim_dim=256,
                           budget_bytes=G.BLOCK_BUDGET_BYTES, max_images=128, max_captions=128)
    assert si * sc * per_pair <= G.BLOCK_BUDGET_BYTES and (si, sc) == (128, 6)
    assert G.block_budget("cpu") == 64 * 2**20 and G.block_budget("cuda") == G.BLOCK_BUDGET_BYTES == 256 * 2**20
    assert G.block_shape(3, 4, words=5, regions=6, embed_size=8, sim_dim=4, budget_bytes=1, max_images=9,
                         max_captions=9) == (1, 1)
    assert G.block_shape(3, 4, words=5, regions=6, embed_size=8, sim_dim=4, budget_bytes=10**9, max_images=9,
                         max_captions=9) == (3, 4)


# ---------------------------------------------------------------- the implementation rule, regions, config

def test_only_the_sgraf_implementation_scores_a_sgraf_head():
    m = make_sgraf("sgr")
    img, txt = encoded(m)
    ctx = dict(grad=False, autocast=False, return_maps=False, interventions=[None])
    assert choose_impl(m.config, None, **ctx) == "sgraf"
    for impl in ("reference", "eager", "fast", "compiled"):
        with pytest.raises(ConfigError) as err:
            m.similarity(img, txt, impl=impl)
        assert "\n" not in str(err.value) and "sgraf implementation only" in str(err.value)
    scan = MatcherConfig(img_dim=8)
    assert "reference, eager, fast and compiled" in why_not("sgraf", scan, **ctx)
    assert choose_impl(scan, None, **ctx) == "fast"  # SCAN's rule unchanged


def test_more_regions_than_slots_is_refused_and_fewer_are_padded():
    m = make_sgraf("saf", num_region=5)
    feats, mask = make_images(regions=6)
    with pytest.raises(DataError) as err, torch.no_grad():
        m.encode_images(feats, mask)
    assert "\n" not in str(err.value) and "model.num_region" in str(err.value) and "6 region slots" in str(err.value)
    m = make_sgraf("saf", num_region=9)  # 6 regions in 9 slots: slots 6..8 are padding
    img, txt = encoded(m)
    ref, _, _ = reference(m, img, txt)
    with torch.no_grad():
        torch.testing.assert_close(m.similarity(img, txt).score.double(), ref, atol=TOL, rtol=0)


def test_config_round_trip_and_old_configs():
    cfg = MatcherConfig(img_dim=8, similarity="sgr", sim_dim=32, sgr_step=2, num_region=10)
    d = json.loads(json.dumps(cfg.to_dict()))
    assert MatcherConfig.from_dict(d) == cfg and d["similarity"] == "sgr" and d["sim_dim"] == 32
    old = {k: v for k, v in MatcherConfig(img_dim=8).to_dict().items()
           if k not in ("similarity", "sim_dim", "sgr_step", "num_region")}
    assert MatcherConfig.from_dict(old).similarity == "scan"


@pytest.mark.parametrize("changes,match", [
    ({"similarity": "sgraf"}, "similarity='sgraf' is not valid — choose one of: scan, saf, sgr"),
    ({"sim_dim": 0}, "sim_dim=0 is not valid"),
    ({"sgr_step": 1.5}, "bad value 1.5 for sgr_step: expected int"),
    ({"sgr_step": -2}, "sgr_step=-2 is not valid"),
    ({"num_region": True}, "bad value True for num_region: expected int"),
    ({"num_region": 0}, "num_region=0 is not valid"),
    ({"similarity": "saf", "attention": {"direction": "both"}}, "set attention.direction=t2i"),
])
def test_bad_settings_are_refused_in_one_line(changes, match):
    with pytest.raises(ConfigError) as err:
        MatcherConfig.from_dict({"img_dim": 8, **changes})
    assert match in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("head", HEADS)
def test_checkpoint_round_trip(head, tmp_path):
    m = make_sgraf(head)
    img, txt = encoded(m)
    save_matcher(m, tmp_path / "ck")
    back = load_matcher(tmp_path / "ck").eval()
    assert back.config == m.config and back.config.similarity == head
    img2, txt2 = encoded(back)
    with torch.no_grad():
        torch.testing.assert_close(back.similarity(img2, txt2).score, m.similarity(img, txt).score, atol=0, rtol=0)


# ---------------------------------------------------------------- training

@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from tests.training.tiny_data import make_tiny_dataset
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"), n_train=32, n_dev=8, n_test=8)


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("lambda_eff", [0.0, 1.0])
def test_train_runs_causmatch_and_its_baseline(head, lambda_eff, tiny_data, tmp_path):
    """`train --set model.similarity=...`: CausMatch-on-SGRAF and its baseline through the one code path."""
    from causmatch.training.config import resolve_config
    from causmatch.training.trainer import train
    from tests.training.tiny_data import TINY_OVERRIDES

    cfg = resolve_config(overrides=[*TINY_OVERRIDES, "epochs=1", "captions_per_epoch=32", f"lambda_eff={lambda_eff}",
                                    f"model.similarity={head}", "model.sim_dim=8", "model.num_region=4"])
    summary = train(tiny_data, tmp_path / "run", cfg, progress=False, log=lambda msg: None)
    h = summary["history"][0]
    assert math.isfinite(h["loss"]) and h["loss"] > 0
    assert math.isnan(h["mean_effect_pos"]) == (lambda_eff == 0)
    best = load_matcher(tmp_path / "run")
    assert best.config.similarity == head and best.config.sim_dim == 8 and hasattr(best, "sim_enc")


@pytest.mark.parametrize("head", HEADS)
def test_two_steps_train_every_head_weight(head):
    """Two optimiser steps of the CausMatch loss (effect on): every head weight gets a finite gradient and moves;
    the training-mode batch norms update their running statistics."""
    from causmatch.losses import CausMatchLoss

    m = make_sgraf(head).train()
    feats, mask = make_images(n=5)
    loss_fn = CausMatchLoss(lambda_eff=1.0, intervention=parse_intervention("random", seed=0), margin=0.2)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    before = {n: p.detach().clone() for n, p in m.sim_enc.named_parameters()}
    stats = {n: b.clone() for n, b in m.sim_enc.named_buffers() if "running" in n}
    ids = (torch.arange(5), torch.arange(5))
    for _ in range(2):
        out = loss_fn(m, m.encode_images(feats, mask), m.encode_captions(CAPTIONS), pair_ids=ids)
        opt.zero_grad()
        out["loss"].backward()
        for n, p in m.sim_enc.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), n
        opt.step()
        assert math.isfinite(out["loss"].item()) and math.isfinite(out["mean_effect_pos"].item())
    assert all(not torch.equal(p, before[n]) for n, p in m.sim_enc.named_parameters())
    assert all(not torch.equal(b, stats[n]) for n, b in m.sim_enc.named_buffers() if n in stats)
