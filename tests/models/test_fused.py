"""The ``compiled`` implementation (``causmatch.models.fused``): ragged shards, refusals in one line.

Its parity with the reference is in test_implementations.py (the settings of its ``COMPILED``: each compiles
once, about 10 s on two cores).
"""
import itertools

import numpy as np
import pytest
import torch

from causmatch.errors import ConfigError
from causmatch.models import attention as A
from causmatch.models import fused as F
from causmatch.models import sharded_similarity
from causmatch.models.fused import fused_scores
from tests.models.tiny_matcher import CAPTIONS, make_images, make_matcher


def encoded(m, n_img=5):
    feats, mask = make_images(n=n_img)
    with torch.no_grad():
        return m.encode_images(feats, mask), m.encode_captions(CAPTIONS)


@pytest.mark.slow  # compiles
def test_fused_sharded_matrix_equals_eager_with_ragged_shards():
    m = make_matcher().eval()  # t2i clipped_l2norm lse (test_implementations compiles it too)
    img, txt = encoded(m, n_img=7)
    eager = sharded_similarity(m, img, txt, shard_images=3, shard_captions=2)
    fused = sharded_similarity(m, img, txt, shard_images=3, shard_captions=2, impl="compiled")  # 3+3+1 × 2+2+1
    np.testing.assert_allclose(fused, eager, atol=1e-5, rtol=0)


def test_fused_rejects_unbounded_logits_in_one_line():
    m = make_matcher(norm="no_norm")
    img, txt = encoded(m)
    with pytest.raises(ConfigError) as err:
        fused_scores(txt.words, txt.mask, img.regions, img.mask, txt.gram, img.gram, direction="t2i",
                     norm="no_norm", lambda_softmax=9.0, agg="lse", lambda_lse=6.0)
    assert "\n" not in str(err.value) and "got no_norm and 9 (use impl eager)" in str(err.value)


@pytest.mark.parametrize("error", ["cpp", "inductor"])
def test_a_missing_compiler_is_one_line(monkeypatch, error):
    """The compiler's own exception types (not their names) become a one-line ConfigError; others pass through."""
    from torch._inductor.exc import CppCompileError, InductorError

    cpp = CppCompileError(["g++", "k.cpp"], "fatal error: Python.h: No such file or directory")
    exc = cpp if error == "cpp" else InductorError(cpp, None)

    def broken(*a, **k):
        raise exc

    monkeypatch.setattr(F, "_compiled", lambda: broken)
    m = make_matcher()
    img, txt = encoded(m)
    with pytest.raises(ConfigError) as err, torch.no_grad():
        m.similarity(img, txt, impl="compiled")
    assert "\n" not in str(err.value) and "compiled scoring could not compile" in str(err.value)
    monkeypatch.setattr(F, "_compiled", lambda: lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError), torch.no_grad():
        m.similarity(img, txt, impl="compiled")


@pytest.mark.slow  # traces ten graphs (about 30 s on two cores)
def test_more_settings_than_dynamo_keeps_by_default_all_compile(monkeypatch):
    """Ten attention settings in one process: each is its own graph of the one compiled function, past Dynamo's
    default limit of 8; with RECOMPILE_LIMIT none falls back to running uncompiled (that would be a hard error here).
    Traced with Dynamo's ``eager`` backend: the limit is Dynamo's, whatever backend builds the kernels."""
    from torch._dynamo import config as dynamo_config

    assert F.RECOMPILE_LIMIT > 10 > dynamo_config.recompile_limit
    traced = torch.compile(F._scores, dynamic=True, backend="eager")
    monkeypatch.setattr(F, "_compiled", lambda: traced)
    m = make_matcher()
    img, txt = encoded(m, n_img=4)
    settings = list(itertools.product(("t2i", "i2t", "both"), A.FAST_NORMS, ("lse", "mean")))[:10]
    with dynamo_config.patch(fail_on_recompile_limit_hit=True), torch.no_grad():
        for direction, norm, agg in settings:
            got = fused_scores(txt.words, txt.mask, img.regions, img.mask, txt.gram, img.gram, direction=direction,
                               norm=norm, lambda_softmax=9.0, agg=agg, lambda_lse=6.0)
            want = A.fast_scores(txt.words, txt.mask, img.regions, img.mask, txt.gram, img.gram, direction=direction,
                                 norm=norm, lambda_softmax=9.0, agg=agg, lambda_lse=6.0)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
