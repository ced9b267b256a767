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
