"""The compiled scoring path (``causmatch.models.fused``) equals the eager inference path.

Each option combination compiles once (about 10 s on two cores), so the tests pick combinations that
together cover every branch: both directions and ``both``, the three norms, the four poolings, padded words and
regions, and non-unit regions (``img_norm=False``).
"""
import numpy as np
import pytest
import torch

from causmatch.errors import ConfigError
from causmatch.models import attention as A
from causmatch.models import sharded_similarity
from causmatch.models.fused import fused_scores
from tests.models.tiny_matcher import CAPTIONS, make_images, make_matcher

pytestmark = pytest.mark.slow


def encoded(m, n_img=5):
    feats, mask = make_images(n=n_img)
    with torch.no_grad():
        return m.encode_images(feats, mask), m.encode_captions(CAPTIONS)


@pytest.mark.parametrize("direction,norm,agg,img_norm", [
    ("t2i", "clipped_l2norm", "lse", True),   # SCAN's default, the benchmark's setting
    ("i2t", "softmax", "mean", False),
    ("both", "l2norm", "lse", False),
    ("both", "clipped_l2norm", "max", True),  # SCAN's Max and Sum pool through the shared aggregate
    ("t2i", "l2norm", "sum", False),
])
def test_fused_equals_fast_scores(direction, norm, agg, img_norm):
    m = make_matcher(direction=direction, norm=norm, agg=agg)
    m = type(m).from_config(m.config.replace(img_norm=img_norm), m.vocab).eval()
    img, txt = encoded(m)
    assert not txt.mask.all() and not img.mask.all()  # padding on both sides
    a = m.config.attention
    kw = dict(direction=direction, norm=norm, lambda_softmax=a.lambda_softmax, agg=agg, lambda_lse=a.lambda_lse,
              region_norms=m._region_norms(img))
    with torch.no_grad():
        eager = A.fast_scores(txt.words, txt.mask, img.regions, img.mask, txt.gram, img.gram, **kw)
        fused = fused_scores(txt.words, txt.mask, img.regions, img.mask, txt.gram, img.gram, **kw)
    torch.testing.assert_close(fused, eager, atol=1e-5, rtol=0)
    torch.testing.assert_close(m.similarity(img, txt, fused=True).score, fused, atol=0, rtol=0)


def test_fused_sharded_matrix_equals_eager_with_ragged_shards():
    m = make_matcher().eval()  # t2i clipped_l2norm lse: reuses the first test's compilation
    img, txt = encoded(m, n_img=7)
    eager = sharded_similarity(m, img, txt, shard_images=3, shard_captions=2)
    fused = sharded_similarity(m, img, txt, shard_images=3, shard_captions=2, fused=True)  # 3+3+1 × 2+2+1
    np.testing.assert_allclose(fused, eager, atol=1e-5, rtol=0)


def test_fused_rejects_unbounded_logits_in_one_line():
    m = make_matcher(norm="no_norm")
    img, txt = encoded(m)
    with pytest.raises(ConfigError) as err:
        fused_scores(txt.words, txt.mask, img.regions, img.mask, txt.gram, img.gram, direction="t2i",
                     norm="no_norm", lambda_softmax=9.0, agg="lse", lambda_lse=6.0)
    assert "\n" not in str(err.value) and "without --fused" in str(err.value)
