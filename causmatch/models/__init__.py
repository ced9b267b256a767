"""Models: configs, encoders, the cross-attention maths and the :class:`Matcher`."""
from causmatch.models.config import AttentionConfig, MatcherConfig, TextConfig
from causmatch.models.encoders import GRUTextEncoder, HFTextEncoder, ImageEncoder, l2norm
from causmatch.models.matcher import ImageEmb, Matcher, Scores, TextEmb, sharded_similarity

__all__ = [
    "AttentionConfig", "MatcherConfig", "TextConfig", "GRUTextEncoder", "HFTextEncoder", "ImageEncoder",
    "l2norm", "ImageEmb", "TextEmb", "Scores", "Matcher", "sharded_similarity",
]
