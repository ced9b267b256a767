"""The committed demo checkpoints re-evaluate to the numbers stored beside them.

The numbers in checkpoints/demo_subset_metrics.json were written by
``scripts/results_tables.py --write-subset`` (also the last step of scripts/train_demo.sh):
the first 200 test images of the default scenes data, factual and random-counterfactual scores.
"""
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBSET = ROOT / "checkpoints" / "demo_subset_metrics.json"
CHECKPOINTS = {"CausMatch": ROOT / "checkpoints" / "causmatch-scenes", "SCAN": ROOT / "checkpoints" / "scan-scenes"}


def _flatten(d, prefix=""):
    for key, value in d.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def test_checkpoints_are_committed_small_and_complete():
    for path in CHECKPOINTS.values():
        assert (path / "config.json").is_file() and (path / "model.safetensors").is_file(), path
        assert not (path / "last").exists() and not (path / "train_state.pt").exists()
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        assert size < 20 * 2**20, (path, size)
    cfgs = [json.loads((p / "config.json").read_text())["train"] for p in CHECKPOINTS.values()]
    assert cfgs[0]["lambda_eff"] > 0 and cfgs[1]["lambda_eff"] == 0
    assert {k: v for k, v in cfgs[0].items() if k != "lambda_eff"} == \
           {k: v for k, v in cfgs[1].items() if k != "lambda_eff"}  # same settings and seed otherwise


@pytest.mark.slow
def test_subset_numbers_reproduce():

    import torch

    # The writer used one thread; the same reduction order keeps near-tied scores (and so the
    # discrete ranks) bit-for-bit identical on one machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _check_subset()
    finally:
        torch.set_num_threads(threads)


def _check_subset():
    from causmatch.checkpoint import load_matcher
    from causmatch.data import load_split
    from causmatch.data.scenes import ensure_scenes
    from causmatch.evaluation import evaluate
    from causmatch.interventions import parse_intervention

    stored = json.loads(SUBSET.read_text())
    split = load_split(ensure_scenes(splits=("test",), progress=False), "test")
    for name, path in CHECKPOINTS.items():
        got = evaluate(load_matcher(path), split, limit_images=stored["images"],
                       intervention=parse_intervention("random", seed=0))
        want = dict(_flatten(stored["results"][name]))
        have = dict(_flatten(got))
        assert set(want) == set(have), name
        for key, value in want.items():
            if isinstance(value, float) and not math.isnan(value):
                assert have[key] == pytest.approx(value, abs=1e-4), (name, key)
            elif not isinstance(value, float):
                assert have[key] == value, (name, key)


def test_demo_checkpoints_keep_the_regex_tokenizer_and_their_scores():
    """Checkpoints written before ``model.text.tokenizer`` existed tokenize with the regex, as they were trained,
    and score exactly as a model that names that tokenizer (and l2-normalised words) explicitly."""
    import re

    import torch

    from causmatch.checkpoint import load_matcher
    from causmatch.models import Matcher

    caption = "A man's T-shirt doesn't cost 3.5 \"dollars\"... at St. Mark's."
    frozen_regex = re.findall(r"\w+|'\w+|[^\w\s]", caption.lower())  # the tokenizer these models were trained with
    for name, path in CHECKPOINTS.items():
        raw = json.loads((path / "config.json").read_text())["matcher"]
        assert raw["text"].get("tokenizer", "regex") == "regex" and raw.get("txt_norm", True) is True, name
        m = load_matcher(path).eval()
        assert m.config.text.tokenizer == "regex" and m.config.txt_norm, name
        assert m.tokens(caption) == frozen_regex, name
        explicit = Matcher(m.config.replace(text=m.config.text.__class__(**{**m.config.text.to_dict(),
                                                                            "tokenizer": "regex"}),
                                            txt_norm=True), m.vocab)
        explicit.load_state_dict(m.state_dict())
        feats = torch.rand(3, 6, m.config.img_dim, generator=torch.Generator().manual_seed(0))
        caps = [caption, "a red cube left of a blue ball", "two small green spheres"]
        with torch.no_grad():
            for model_maps in (False, True):  # the fast path and the general path
                a = m.similarity(m.encode_images(feats), m.encode_captions(caps), return_maps=model_maps).score
                b = explicit.eval().similarity(explicit.encode_images(feats), explicit.encode_captions(caps),
                                               return_maps=model_maps).score
                assert torch.equal(a, b), name


SGR_CHECKPOINTS = {"CausMatch on SGR": ROOT / "checkpoints" / "causmatch-sgr-scenes",
                   "SGR": ROOT / "checkpoints" / "sgr-scenes"}


def test_sgr_checkpoints_are_committed_small_and_a_fair_pair():
    """The SGRAF (SGR) demo pair of scripts/train_sgraf_demo.sh: small, without resume state, SGR heads, and
    trained with the same settings and seed but the effect term."""
    for path in SGR_CHECKPOINTS.values():
        assert (path / "config.json").is_file() and (path / "model.safetensors").is_file(), path
        assert not (path / "last").exists() and not (path / "train_state.pt").exists()
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        assert size < 20 * 2**20, (path, size)
    cfgs = [json.loads((p / "config.json").read_text()) for p in SGR_CHECKPOINTS.values()]
    assert all(c["matcher"]["similarity"] == "sgr" for c in cfgs)
    assert cfgs[0]["matcher"] == cfgs[1]["matcher"]
    train = [c["train"] for c in cfgs]
    assert train[0]["lambda_eff"] > 0 and train[1]["lambda_eff"] == 0
    assert train[0]["max_violation_warmup_epochs"] == train[1]["max_violation_warmup_epochs"] == 1
    same = ("seed", "epochs", "lr", "margin", "batch_size", "captions_per_epoch")
    assert {k: train[0][k] for k in same} == {k: train[1][k] for k in same}


def test_sgr_checkpoints_explain_with_maps_and_effects(tmp_path):
    """Both SGR demo checkpoints explain a pair of the committed sample with maps, a finite effect and the
    per-word effects, through the same engine as SCAN's."""
    import numpy as np

    from causmatch.analysis import AnalysisSession
    from causmatch.checkpoint import load_matcher
    from causmatch.data import load_split

    split = load_split(ROOT / "assets" / "sample" / "scenes", "test")
    for name, path in SGR_CHECKPOINTS.items():
        s = AnalysisSession(load_matcher(path), split, cache_dir=tmp_path / "cache")
        ex = s.explain(1, 5, intervention="random", samples=2)
        assert np.isfinite(ex.score) and np.isfinite(ex.cf_score) and np.isfinite(ex.effect), name
        assert ex.t2i is not None and np.isfinite(ex.t2i).all() and ex.t2i.shape[0] == len(ex.tokens), name
        assert ex.word_effects is not None and np.isfinite(ex.word_effects).all(), name
