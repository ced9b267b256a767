"""Every page of the app on SGRAF checkpoints (SAF as checkpoint A, SGR or SCAN as B), under AppTest.

The checkpoints are random-weight SGRAF matchers saved with the public checkpoint API on the app's test split
(6 region slots, odd images with a padded one): the pages must open without an error or a traceback, show
the same kinds of numbers as on SCAN, say plainly where a view does not apply (no word relevance), and show
SAF's filtration weights where the pair is explained.
"""
from __future__ import annotations

import pytest

from tests.app.appdata import F, R
from tests.app.apptest_helpers import metric, no_failure, shown

PAGES = ("overview", "explore", "retrieval", "failures", "failing_pair", "compare")


def _sgraf_checkpoint(path, captions, similarity, seed):
    import torch

    from causmatch.checkpoint import save_matcher
    from causmatch.data import Vocabulary
    from causmatch.models import Matcher, MatcherConfig, TextConfig
    torch.manual_seed(seed)
    config = MatcherConfig(img_dim=F, embed_size=32, text=TextConfig(word_dim=16), similarity=similarity,
                           sim_dim=16, sgr_step=2, num_region=R)
    save_matcher(Matcher(config, Vocabulary.from_captions(captions)), path)
    return path


@pytest.fixture(scope="module")
def sgraf_ckpts(assets):
    from causmatch.data import load_split
    caps = load_split(assets.data, "test").captions
    root = assets.data.parent
    return {"saf": _sgraf_checkpoint(root / "ckpt_saf", caps, "saf", 3),
            "sgr": _sgraf_checkpoint(root / "ckpt_sgr", caps, "sgr", 4)}


@pytest.fixture
def sgraf_app(make_app, sgraf_ckpts, assets):
    def make(page=None, a="saf", b="scan", **query):
        ckpts = {**sgraf_ckpts, "scan": assets.ckpt}
        return make_app(page, ckpt=str(ckpts[a]), ckpt2=str(ckpts[b]), **query)
    return make


# SAF beside SCAN in the fast tier; SGR beside SAF (no SCAN checkpoint at all) in the full suite.
@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize("a,b", [("saf", "scan"), pytest.param("sgr", "saf", marks=pytest.mark.slow)])
def test_every_page_opens_on_sgraf(sgraf_app, page, a, b):
    at = sgraf_app(page if page != "overview" else None, a=a, b=b)
    no_failure(at)


def test_explore_shows_filtration_and_effects(sgraf_app):
    at = sgraf_app("explore")
    no_failure(at)
    score = float(metric(at, "Score S(α)"))
    assert 0 < score < 1  # SGRAF's score is a sigmoid
    effect, cf = float(metric(at, "Effect")), float(metric(at, "Counterfactual S(ᾱ)"))
    assert effect == pytest.approx(score - cf, abs=2e-4)
    text = " ".join(shown(m.value) for m in (*at.markdown, *at.caption))
    assert "filtration" in text.lower()  # SAF's weights are shown, with what they mean


def test_explore_filtration_intervention(sgraf_app):
    at = sgraf_app("explore", iv="filtration:uniform")
    no_failure(at)
    assert at.selectbox(key="w_iv").value == "filtration:uniform" and not at.warning  # a valid link value
    assert any("uniform filtration weights" in shown(c.value) for c in at.caption)
    assert metric(at, "Counterfactual S(ᾱ)") != metric(at, "Score S(α)")
    at.selectbox(key="w_iv").set_value("filtration:mask-words").run()
    no_failure(at)
    at.multiselect(key="w_targets_list").set_value([1]).run()
    no_failure(at)
    assert any("words 1 removed from the filtration" in shown(c.value) for c in at.caption)


def test_sgr_has_no_filtration_and_says_so(sgraf_app):
    at = sgraf_app("explore", a="sgr", b="scan", iv="filtration:uniform")
    assert not at.exception
    # A filtration intervention on SGR is refused in one line (the error panel), never a traceback.
    errs = [shown(e.value) for e in at.error]
    assert errs and all("\n" not in e for e in errs) and any("filtration" in e for e in errs)
