"""Recall metrics against a naive argsort implementation (with ties), fold evaluation."""
import numpy as np
import pytest

from causmatch.errors import ConfigError, DataError
from causmatch.evaluation import fold_metrics, ranks_i2t, ranks_t2i, recall_metrics


def naive_ranks(sims, k):
    """SCAN's loop, with a stable sort so that ties put the lower index first."""
    n_img, n_cap = sims.shape
    i2t = np.zeros(n_img, dtype=np.int64)
    for i in range(n_img):
        order = np.argsort(-sims[i], kind="stable")
        i2t[i] = min(int(np.where(order == c)[0][0]) for c in range(k * i, k * i + k))
    t2i = np.zeros(n_cap, dtype=np.int64)
    for c in range(n_cap):
        order = np.argsort(-sims[:, c], kind="stable")
        t2i[c] = int(np.where(order == c // k)[0][0])
    return i2t, t2i


def naive_metrics(sims, k):
    i2t, t2i = naive_ranks(sims, k)
    r = lambda ranks, n: 100.0 * len(np.where(ranks < n)[0]) / len(ranks)  # noqa: E731
    out = {}
    for name, ranks in (("i2t", i2t), ("t2i", t2i)):
        for n in (1, 5, 10):
            out[f"{name}_r{n}"] = r(ranks, n)
        out[f"{name}_medr"] = np.floor(np.median(ranks)) + 1
        out[f"{name}_meanr"] = ranks.mean() + 1
    out["rsum"] = sum(out[f"{d}_r{n}"] for d in ("i2t", "t2i") for n in (1, 5, 10))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ranks_match_naive_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    k = 5
    sims = rng.integers(0, 4, size=(37, 37 * k)).astype(np.float32)  # few distinct values: ties everywhere
    i2t, t2i = naive_ranks(sims, k)
    np.testing.assert_array_equal(ranks_i2t(sims, k), i2t)
    np.testing.assert_array_equal(ranks_t2i(sims, k), t2i)
    got, want = recall_metrics(sims, k), naive_metrics(sims, k)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, abs=1e-9), key


def test_ranks_match_naive_continuous_and_chunked(monkeypatch):
    import causmatch.evaluation as ev
    monkeypatch.setattr(ev, "_ROW_CHUNK", 7)  # several chunks, one ragged
    rng = np.random.default_rng(3)
    sims = rng.standard_normal((30, 90)).astype(np.float32)
    i2t, t2i = naive_ranks(sims, 3)
    np.testing.assert_array_equal(ranks_i2t(sims, 3), i2t)
    np.testing.assert_array_equal(ranks_t2i(sims, 3), t2i)


def test_hand_worked_example_and_tie_rule():
    # 2 images x 2 captions each. All scores equal: lower index wins every tie.
    sims = np.zeros((2, 4), dtype=np.float32)
    np.testing.assert_array_equal(ranks_i2t(sims, 2), [0, 2])  # image 1's captions 2,3 come after 0,1
    np.testing.assert_array_equal(ranks_t2i(sims, 2), [0, 0, 1, 1])
    perfect = np.array([[1, 1, 0, 0], [0, 0, 1, 1]], dtype=np.float32)
    m = recall_metrics(perfect, 2)
    assert m["rsum"] == 600.0 and m["i2t_medr"] == 1.0 and m["t2i_meanr"] == 1.0
    # image 0's best caption is second: rank 1 -> R@1 misses, R@5 hits
    sims = np.array([[0.5, 0.9, 1.0, 0.0], [0.0, 0.0, 1.0, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(ranks_i2t(sims, 2), [1, 0])
    assert recall_metrics(sims, 2)["i2t_r1"] == 50.0


def test_bad_shape_is_a_data_error():
    with pytest.raises(DataError, match="captions per image"):
        recall_metrics(np.zeros((3, 10)), 5)


def test_fold_metrics_are_block_averages():
    rng = np.random.default_rng(4)
    k = 2
    sims = rng.standard_normal((10, 20)).astype(np.float32)
    out = fold_metrics(sims, k, folds=5)
    assert out["fold_size"] == 2 and len(out["folds"]) == 5
    block = sims[2:4, 4:8]
    assert out["folds"][1] == recall_metrics(block, k)
    assert out["mean"]["rsum"] == pytest.approx(np.mean([f["rsum"] for f in out["folds"]]))
    assert out["full"] == recall_metrics(sims, k)
    with pytest.raises(ConfigError, match="divisible"):
        fold_metrics(sims[:9, :18], k)


# ---------------------------------------------------------------- with a (random, untrained) matcher
import torch  # noqa: E402

import causmatch.evaluation as ev  # noqa: E402
from causmatch.data import Vocabulary, load_split  # noqa: E402
from causmatch.interventions import parse_intervention  # noqa: E402
from causmatch.models import Matcher, MatcherConfig  # noqa: E402
from tests.training.tiny_data import make_tiny_dataset  # noqa: E402


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    folder = make_tiny_dataset(tmp_path_factory.mktemp("ev"), n_train=4, n_dev=2, n_test=15)
    return load_split(folder, "test")


def _matcher(split, **text):
    torch.manual_seed(0)
    vocab = Vocabulary.from_captions(split.captions)
    cfg = MatcherConfig(img_dim=split.features.shape[-1], embed_size=16, text={"word_dim": 8, **text})
    return Matcher(cfg, vocab=vocab).eval()


def test_similarity_matrix_equals_one_block_and_ignores_shard_sizes(split):
    m = _matcher(split)
    img, txt = ev.encode_split(m, split, batch_size=4)  # caption batches of different lengths get padded
    assert img.regions.shape[:2] == (15, 4) and len(txt) == 30
    with torch.no_grad():
        direct_img = m.encode_images(torch.from_numpy(np.array(split.features)), torch.from_numpy(split.region_mask))
        direct = m.similarity(direct_img, m.encode_captions(split.captions)).score.numpy()
    sims = ev.similarity_matrix(m, img, txt, shard_images=4, shard_captions=7)
    np.testing.assert_allclose(sims, direct, atol=1e-5)
    rnd = parse_intervention("random", seed=3)
    a = ev.similarity_matrix(m, img, txt, rnd, shard_images=4, shard_captions=7)
    b = ev.similarity_matrix(m, img, txt, rnd, shard_images=15, shard_captions=30)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert not np.allclose(a, sims)


def test_rank_rows_cover_all_images_in_whole_shards():
    for n, shard, world in ((13, 3, 2), (10, 4, 3), (5, 8, 2), (1000, 128, 4)):
        spans = [ev._rank_rows(n, shard, world, r) for r in range(world)]
        assert spans[0][0] == 0 and spans[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        assert all(lo % shard == 0 for lo, _ in spans)


def _manual_grounding(m, split):
    hits = total = 0
    for c, entry in enumerate(split.grounding):
        i = split.image_of(c)
        with torch.no_grad():
            im = m.encode_images(torch.from_numpy(np.array(split.features[i:i + 1])),
                                 torch.from_numpy(split.region_mask[i:i + 1]))
            tx = m.encode_captions([split.captions[c]])
            amap = m.pair_scores(im, tx, return_maps=True).t2i[0]  # [W, R]
        shift = 1 if tx.tokens[0][0] == "<start>" else 0
        for w in entry["words"]:
            total += 1
            hits += int(int(amap[w["index"] + shift].argmax()) in w["regions"])
    return 100.0 * hits / total, total


@pytest.mark.parametrize("start_end", [False, True])
def test_grounding_accuracy_matches_a_per_pair_loop(split, start_end):
    m = _matcher(split, start_end=start_end)
    g = ev.grounding_accuracy(m, split, batch_size=7)
    want, total = _manual_grounding(m, split)
    assert g["overall"] == pytest.approx(want) and g["n_words"] == total and g["skipped"] == 0
    assert set(g["by_type"]) == {"colour", "shape", "size"} and g["chance"] == pytest.approx(25.0)


def test_grounding_by_type_hand_worked(split, monkeypatch):
    m = _matcher(split)

    truth = {}
    for c, entry in enumerate(split.grounding):
        for w in entry["words"]:
            truth[(c, w["index"])] = (w["type"], w["regions"][0])

    calls = [0]  # captions seen so far: the batches come in caption order

    def fake(matcher, img, txt):  # true region for colour words, a wrong one otherwise
        n, W, R = len(txt), txt.words.shape[1], img.regions.shape[1]
        lo = calls[0]
        calls[0] += n
        maps = torch.zeros(n, W, R)
        for (c, j), (kind, r) in truth.items():
            if lo <= c < lo + n:
                maps[c - lo, j, r if kind == "colour" else (r + 1) % R] = 1.0
        return maps

    monkeypatch.setattr(ev, "_word_region_maps", fake)
    g = ev.grounding_accuracy(m, split, batch_size=8)
    assert g["by_type"]["colour"] == 100.0 and g["by_type"]["shape"] == 0.0 and g["by_type"]["size"] == 0.0
    assert g["overall"] == pytest.approx(100.0 * g["counts"]["colour"] / g["n_words"])


def test_evaluate_dict_fold5_intervention_and_limit(split):
    m = _matcher(split)
    res = ev.evaluate(m, split, fold5=True, intervention=parse_intervention("uniform"))
    assert res["n_images"] == 15 and res["fold5"]["label"] == "5-fold 3" and len(res["fold5"]["folds"]) == 5
    assert set(res["metrics"]) == set(ev.RECALL_KEYS) and res["intervention"] != "none"
    img, txt = ev.encode_split(m, split)
    factual = ev.similarity_matrix(m, img, txt)
    assert res["factual_metrics"] == ev.recall_metrics(factual, 2)
    uni = ev.similarity_matrix(m, img, txt, parse_intervention("uniform"))
    match = np.kron(np.eye(15), np.ones((1, 2))).astype(bool)
    assert res["effect"]["matching"] == pytest.approx(float((factual - uni)[match].mean()), abs=1e-6)
    assert res["grounding"]["n_words"] > 0
    small = ev.evaluate(m, split, limit_images=5, grounding=False)
    assert small["n_images"] == 5 and small["n_captions"] == 10 and "grounding" not in small
    assert small["label"] == "all 5 images"


def test_non_finite_scores_are_refused_naming_the_pair():
    sims = np.zeros((3, 6))
    sims[2, 4] = np.nan
    sims[1, 5] = np.inf
    for fn in (recall_metrics, ranks_i2t, ranks_t2i):
        with pytest.raises(DataError, match=r"2 non-finite score\(s\) of 18 \(first: inf for image 1, caption 5\)"):
            fn(sims, 2)
    with pytest.raises(DataError, match="image 7, caption 40"):
        ev.check_finite_scores(np.array([[0.0, np.nan]]), image_ids=[7], caption_ids=[39, 40])
    with pytest.raises(DataError, match="empty"):
        recall_metrics(np.zeros((0, 0)), 2)


def test_a_nan_model_never_yields_recall(split):
    m = _matcher(split)
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(float("nan"))
    with pytest.raises(DataError, match="non-finite score"):
        ev.evaluate(m, split, grounding=False)


def test_evaluate_checks_before_any_work(split, monkeypatch):
    m = _matcher(split)
    monkeypatch.setattr(ev, "encode_split", lambda *a, **k: pytest.fail("encoded before the checks"))
    lim = ev.split_limits(m, split)
    with pytest.raises(ConfigError, match=f"region {lim['n_regions']} out of range for split 'test'"):
        ev.evaluate(m, split, intervention=parse_intervention(f"mask-regions={lim['n_regions']}"))
    with pytest.raises(ConfigError, match="word 99 out of range"):
        ev.evaluate(m, split, intervention=parse_intervention("keep-words=0,99"))
    with pytest.raises(ConfigError, match="shard_images must be"):
        ev.evaluate(m, split, shard_images=0)
    with pytest.raises(ConfigError, match="limit_images"):
        ev.evaluate(m, split, limit_images=0)
    import causmatch.runtime as rt
    monkeypatch.setattr(rt, "available_memory", lambda: 4096)
    with pytest.raises(ConfigError, match="needs about .* of memory but only 0 MiB is available — use --limit-images"):
        ev.evaluate(m, split)


def test_memory_estimate_grows_with_the_shapes():
    small = ev.estimate_bytes(10, 50, 36, 12, 1024, shard_images=128, shard_captions=128)
    big = ev.estimate_bytes(5000, 25000, 36, 12, 1024, shard_images=128, shard_captions=128, matrices=2)
    assert 0 < small < big and big > 5000 * 25000 * 12  # two float32 matrices + the float64 working copy


def test_grounding_accuracy_refuses_non_finite_maps(split, monkeypatch):
    m = _matcher(split)
    real = ev._word_region_maps

    def broken(matcher, img, txt):
        maps = real(matcher, img, txt)
        maps[1, 0, 0] = float("nan")
        return maps
    monkeypatch.setattr(ev, "_word_region_maps", broken)
    with pytest.raises(DataError, match="attention map of image 0, caption 1 holds NaN"):
        ev.grounding_accuracy(m, split)


# ---------------------------------------------------------------- one home each: ranks, pointing, eval mode

def test_the_one_tie_rule_agrees_between_counting_and_sorting():
    from causmatch.analysis import ranking
    from causmatch.ranks import best_rank, rank_positions, stable_ranks

    assert ranking.best_rank is best_rank and ranking.rank_positions is rank_positions  # one home
    rng = np.random.default_rng(0)
    for trial in range(200):
        m = int(rng.integers(1, 12))
        s = rng.integers(0, 4, m).astype(np.float64)  # many ties
        if trial % 3 == 0:  # non-finite values rank last, in index order
            s[rng.integers(0, m, 2)] = rng.choice([np.nan, np.inf, -np.inf], 2)
        pos = rank_positions(s)
        assert sorted(pos.tolist()) == list(range(m))
        assert stable_ranks(s[None], np.arange(m)[None])[0].tolist() == pos.tolist()
        targets = rng.integers(0, m, int(rng.integers(1, 4)))
        rank, item = best_rank(s, targets)
        assert rank == pos[targets].min() and pos[item] == rank and item in targets
        finite = np.isfinite(s)
        if finite.all():  # the stable descending sort itself
            assert pos.tolist() == np.argsort(np.argsort(-s, kind="stable"), kind="stable").tolist()
        else:
            assert (pos[~finite] >= finite.sum()).all()


def test_recall_ranks_use_the_tie_rule_on_exact_ties():
    sims = np.zeros((2, 4), np.float32)  # every score tied: lower index first
    assert ev.ranks_i2t(sims, 2).tolist() == [0, 2] and ev.ranks_t2i(sims, 2).tolist() == [0, 0, 1, 1]


def test_pointing_never_picks_padding_and_the_map_is_t2i_else_transposed_i2t():
    import torch

    from causmatch.analysis.grounding import word_grounding
    from causmatch.pointing import pointed_regions, word_region_map

    maps = np.array([[[0.1, 0.2, 0.9], [0.5, 0.5, 0.0]], [[0.0, 0.0, 0.0], [np.nan] * 3]])  # [2, W=2, R=3]
    mask = np.array([[True, True, False], [True, True, True]])
    assert pointed_regions(maps, mask).tolist() == [[1, 0], [0, -1]]  # padding never wins; first tie; no finite: -1
    assert pointed_regions(np.full((1, 3), np.nan), [False, False, False]).tolist() == [-1]
    assert word_grounding([0.1, 0.2, 0.9], [1], [True, True, False])[0] is True  # the same pointing
    t2i, i2t = torch.rand(2, 3, 4, 5), torch.rand(2, 3, 5, 4)
    assert word_region_map(t2i, i2t) is t2i and word_region_map(None, None) is None
    assert torch.equal(word_region_map(None, i2t), i2t.transpose(-1, -2))
    assert np.array_equal(word_region_map(None, i2t.numpy()), i2t.numpy().swapaxes(-1, -2))


def test_eval_mode_restores_the_mode_even_when_the_block_raises():
    import torch

    m = torch.nn.Dropout()
    for start in (True, False):
        m.train(start)
        with pytest.raises(RuntimeError), ev.eval_mode(m):
            assert not m.training
            raise RuntimeError("boom")
        assert m.training is start


# ---------------------------------------------------------------- fit-aware recall (captions true of several images)
def naive_fit_ranks(sims, fits):
    """Per query, the best position (stable descending sort) of any item it fits."""
    i2t = [min(int(np.where(np.argsort(-sims[i], kind="stable") == c)[0][0]) for c in np.nonzero(fits[i])[0])
           for i in range(sims.shape[0])]
    t2i = [min(int(np.where(np.argsort(-sims[:, c], kind="stable") == i)[0][0]) for i in np.nonzero(fits[:, c])[0])
           for c in range(sims.shape[1])]
    return np.array(i2t), np.array(t2i)


def _fits(rng, n_img, k, p=0.15):
    f = rng.random((n_img, n_img * k)) < p
    f[np.arange(n_img * k) // k, np.arange(n_img * k)] = True  # every caption fits its own image
    return f


@pytest.mark.parametrize("seed", [0, 1])
def test_fit_aware_ranks_match_naive_with_ties_and_chunks(seed, monkeypatch):
    monkeypatch.setattr(ev, "_ROW_CHUNK", 7)
    rng = np.random.default_rng(seed)
    sims = rng.integers(0, 4, size=(23, 46)).astype(np.float32)  # ties everywhere
    fits = _fits(rng, 23, 2)
    i2t, t2i = naive_fit_ranks(sims, fits)
    np.testing.assert_array_equal(ev.ranks_fit_i2t(sims, fits, 2), i2t)
    np.testing.assert_array_equal(ev.ranks_fit_t2i(sims, fits, 2), t2i)
    assert (i2t <= ranks_i2t(sims, 2)).all() and (t2i <= ranks_t2i(sims, 2)).all()
    m = ev.fit_aware_metrics(sims, fits, 2)
    assert set(m) == set(ev.RECALL_KEYS) and m["t2i_r5"] == pytest.approx(100 * np.mean(t2i < 5))
    assert m["i2t_meanr"] == pytest.approx(i2t.mean() + 1)


def test_fit_aware_with_only_own_fits_is_recall_and_a_hand_example():
    rng = np.random.default_rng(5)
    sims = rng.standard_normal((6, 18)).astype(np.float32)
    own = np.zeros((6, 18), bool)
    own[np.arange(18) // 3, np.arange(18)] = True
    assert ev.fit_aware_metrics(sims, own, 3) == recall_metrics(sims, 3)
    # caption 0 ranks image 1 first; it also fits image 1, so fit-aware counts it correct at 1
    sims = np.array([[0.2, 0.0, 0.1, 0.0], [0.9, 0.0, 0.5, 0.0]], dtype=np.float32)
    fits = np.array([[True, True, False, False], [True, False, True, True]])
    assert ranks_t2i(sims, 2)[0] == 1 and ev.ranks_fit_t2i(sims, fits, 2)[0] == 0
    assert ev.ranks_fit_t2i(sims, fits, 2).tolist() == [0, 0, 0, 1]  # caption 3: a tie, the lower index first
    # image 1 ranks caption 0 (of image 0) first: it fits image 1, so it counts
    assert ev.ranks_fit_i2t(sims, fits, 2).tolist() == [0, 0] and ranks_i2t(sims, 2).tolist() == [0, 1]
    # image 0's best caption becomes caption 2, which does not fit it: a real failure either way
    sims[0, 2] = 0.3
    assert ranks_i2t(sims, 2)[0] == 1 and ev.ranks_fit_i2t(sims, fits, 2)[0] == 1


def test_fit_aware_refuses_a_misaligned_fit_matrix():
    sims = np.zeros((3, 6), np.float32)
    good = np.zeros((3, 6), bool)
    good[np.arange(6) // 2, np.arange(6)] = True
    with pytest.raises(DataError, match="does not match"):
        ev.fit_aware_metrics(sims, good[:, :4], 2)
    with pytest.raises(DataError, match="does not match"):
        ev.fit_aware_metrics(sims, good.astype(np.int8), 2)
    with pytest.raises(DataError, match="caption 3 is not true of its own image 1"):
        ev.fit_aware_metrics(sims, np.roll(good, 1, axis=0) | good & (np.arange(6) != 3), 2)
    with pytest.raises(DataError, match="non-finite"):
        ev.fit_aware_metrics(np.full((3, 6), np.nan), good, 2)


def test_fit_aware_folds_are_block_averages():
    rng = np.random.default_rng(6)
    sims = rng.standard_normal((10, 20)).astype(np.float32)
    fits = _fits(rng, 10, 2, p=0.3)
    out = ev.fit_aware_fold_metrics(sims, fits, 2)
    assert out["fold_size"] == 2 and out["folds"][3] == ev.fit_aware_metrics(sims[6:8, 12:16], fits[6:8, 12:16], 2)
    assert out["mean"]["rsum"] == pytest.approx(np.mean([f["rsum"] for f in out["folds"]]))
    with pytest.raises(ConfigError, match="divisible"):
        ev.fit_aware_fold_metrics(sims[:9, :18], fits[:9, :18], 2)


def test_evaluate_reports_fit_aware_recall_on_scenes_splits_only(scenes_sample, split):
    from causmatch.data.scenes.fit import split_fits

    scenes = load_split(scenes_sample, "test")
    m = _matcher(scenes)
    res = ev.evaluate(m, scenes, grounding=False)
    fits = split_fits(scenes)
    img, txt = ev.encode_split(m, scenes)
    sims = ev.similarity_matrix(m, img, txt)
    fa = res["fit_aware"]
    assert {k: fa[k] for k in ev.RECALL_KEYS} == ev.fit_aware_metrics(sims, fits, 5)
    assert fa["fits_per_caption"]["max"] == int(fits.sum(0).max()) and "histogram" in fa["fits_per_caption"]
    small = ev.evaluate(m, scenes, grounding=False, limit_images=5, fold5=True)
    assert small["fit_aware"]["fits_per_caption"]["mean"] == pytest.approx(fits[:5, :25].sum(0).mean())
    assert len(small["fit_aware"]["fold5"]["folds"]) == 5 and small["fit_aware"]["fold5"]["label"] == "5-fold 1"
    assert "fit_aware" not in ev.evaluate(_matcher(split), split, grounding=False)  # no scene descriptions


def test_evaluate_cli_prints_fit_aware_rows_or_why_not(scenes_sample, tmp_path, capsys):
    import json
    from pathlib import Path

    from causmatch.cli import main

    ckpt = Path(__file__).resolve().parents[1] / "checkpoints" / "causmatch-scenes"
    args = ["evaluate", "--checkpoint", str(ckpt), "--data", str(scenes_sample),
            "--no-grounding", "--json", str(tmp_path / "r.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "fit-aware " in out and "captions fit " in out
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["fit_aware"]["rsum"] >= res["metrics"]["rsum"]
    (scenes_sample / "test_scenes.jsonl").unlink()
    assert main(args) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "fit-aware" in ln]
    assert len(lines) == 1 and "not computed" in lines[0] and "test_scenes.jsonl" in lines[0]
    assert "fit_aware" not in json.loads((tmp_path / "r.json").read_text())
