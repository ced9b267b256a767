"""Tiny matchers and datasets for the analysis tests (imported by the test modules)."""
import numpy as np
import torch

from causmatch.data import Vocabulary, load_split, write_split
from causmatch.models import AttentionConfig, ImageEmb, Matcher, MatcherConfig, TextConfig, TextEmb

WORDS = ["red", "blue", "green", "circle", "square", "small", "big", "a", "left", "of"]


def unit(x):
    x = torch.as_tensor(x, dtype=torch.float32)
    return x / x.norm(dim=-1, keepdim=True)


def make_pair(words, regions, region_mask=None):
    """One-pair ImageEmb/TextEmb from hand-chosen vectors (normalised here)."""
    w = unit(words)[None]                       # [1, W, D]
    v = unit(regions)[None]                     # [1, R, D]
    rm = torch.ones(v.shape[:2], dtype=torch.bool) if region_mask is None else torch.tensor([region_mask])
    v = v * rm[..., None]
    img = ImageEmb(v, rm, v @ v.transpose(1, 2))
    txt = TextEmb(w, torch.ones(w.shape[:2], dtype=torch.bool), w @ w.transpose(1, 2),
                  [[f"w{j}" for j in range(w.shape[1])]])
    return img, txt


def tiny_matcher(img_dim=6, direction="t2i", agg="lse", seed=0, vocab=None):
    torch.manual_seed(seed)
    vocab = vocab or Vocabulary.from_captions([" ".join(WORDS)])
    cfg = MatcherConfig(img_dim=img_dim, embed_size=8, text=TextConfig(word_dim=4),
                        attention=AttentionConfig(direction=direction, agg=agg))
    return Matcher(cfg, vocab).eval()


def caption(rng):
    n = int(rng.integers(2, 6))
    return " ".join(rng.choice(WORDS, size=n))


def write_tiny(folder, n_images=6, k=2, regions=4, feat=6, seed=0, grounding=True, boxes=True):
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n_images, regions, feat)).astype(np.float32)
    caps = [caption(rng) for _ in range(n_images * k)]
    valid = rng.integers(2, regions + 1, size=n_images)
    valid[0] = regions
    ground = None
    if grounding:
        from causmatch.data import tokenize
        ground = []
        for c, text in enumerate(caps):
            toks = tokenize(text)
            ground.append({"caption": c, "image": c // k, "tokens": toks,
                           "words": [{"index": 0, "word": toks[0], "type": "colour", "object": 0,
                                      "regions": [0]}]})
    bx = None
    if boxes:
        bx = np.tile(np.array([[0, 0, 8, 8], [8, 0, 16, 8], [0, 8, 8, 16], [8, 8, 16, 16]], np.float32),
                     (n_images, regions // 4 + 1, 1))[:, :regions]
    write_split(folder, "test", features=feats, captions=caps, caps_per_image=k, regions=valid,
                boxes=bx, grounding=ground)
    return load_split(folder, "test")


