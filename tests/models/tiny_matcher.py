"""Tiny matchers and inputs shared by the model tests (`from tests.models.tiny_matcher import ...`)."""
import torch

from causmatch.data import Vocabulary
from causmatch.models import AttentionConfig, Matcher, MatcherConfig, TextConfig

CAPTIONS = [
    "a red ball on the left",
    "blue cube",
    "a small green cylinder near a big red ball",
    "two yellow cones",
    "the purple sphere is behind the cube",
]


def make_vocab() -> Vocabulary:
    return Vocabulary.from_captions(CAPTIONS)


def make_matcher(vocab=None, *, img_dim=8, embed=16, seed=0, **attn) -> Matcher:
    torch.manual_seed(seed)
    cfg = MatcherConfig(img_dim=img_dim, embed_size=embed, text=TextConfig(word_dim=12),
                        attention=AttentionConfig(**attn))
    return Matcher.from_config(cfg, vocab or make_vocab())


def make_images(n=4, regions=6, img_dim=8, seed=1):
    """Random features with a varying number of valid regions per image."""
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, regions, img_dim, generator=g)
    counts = torch.tensor([regions - (i % 3) for i in range(n)])
    mask = torch.arange(regions).unsqueeze(0) < counts.unsqueeze(1)  # [I, R]
    return feats, mask


F32_EPS = torch.finfo(torch.float32).eps


def map_atol(lambda_softmax: float) -> float:
    """Tolerance for attention maps (and relevances) whose word–region sims came from different matrix routines.

    The all-pairs path (one GEMM), the aligned path (a batched product per pair) and the reference (per-pair
    products) sum the D terms of a sim ``s`` in different orders, so the same sim differs by a few float32
    ulps (measured up to 0.75 ulp at D = 16). The softmax over keys turns a logit error ``δz`` into at most
    ``|δα| <= 2·max|δz|·α(1 − α) <= max|δz| / 2``, and the logit is ``λ·s̃`` with ``s̃`` the sim normalised over
    the queries; allowing ``|δs̃| <= 16 eps`` (2 ulps of the sim, divided by a column norm down to 1/8) gives
    ``|δα| <= 8 λ eps`` — 8.6e-6 at SCAN's λ = 9, against differences of 1.2e-6 seen on this data.
    """
    return 8 * lambda_softmax * F32_EPS
