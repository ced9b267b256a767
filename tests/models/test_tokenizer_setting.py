"""``model.text.tokenizer``: set from the training config, used for the vocabulary and every encoding, saved
in the checkpoint and restored with it."""
import types

import numpy as np
import pytest
import torch

from causmatch.checkpoint import load_matcher, save_matcher
from causmatch.errors import ConfigError
from causmatch.training.config import resolve_config
from causmatch.training.trainer import build_matcher

CAPS = ["A man in a T-shirt eats ice-cream.", "The dog doesn't run on St. Mark's street.",
        'A sign says "stop"...', "Two men in t-shirts."]


def _split():
    return types.SimpleNamespace(captions=CAPS, features=np.zeros((4, 3, 8), dtype=np.float32))


@pytest.mark.parametrize("tokenizer", ["nltk", "regex"])
def test_training_config_sets_the_tokenizer_of_vocabulary_and_encoder(tokenizer, tmp_path):
    cfg = resolve_config(None, [f"model.text.tokenizer={tokenizer}", "model.embed_size=8", "model.text.word_dim=6"],
                         model="causmatch")
    m = build_matcher(cfg, _split())
    assert m.config.text.tokenizer == tokenizer
    if tokenizer == "nltk":
        assert {"t-shirt", "ice-cream", "does", "n't", "st.", "``", "''", "..."} <= set(m.vocab.word2idx)
        assert "shirt" not in m.vocab
    else:
        assert {"t", "shirt", "doesn", "'t"} <= set(m.vocab.word2idx) and "t-shirt" not in m.vocab
    assert m.unknown_words(CAPS[0]) == []  # the vocabulary and the encoder split alike
    save_matcher(m, tmp_path / "ckpt")
    back = load_matcher(tmp_path / "ckpt").eval()
    assert back.config.text.tokenizer == tokenizer
    with torch.no_grad():
        assert back.encode_captions(CAPS).tokens == [back.tokens(c) for c in CAPS] == [m.tokens(c) for c in CAPS]


def test_bad_tokenizer_in_the_training_config_is_one_line():
    with pytest.raises(ConfigError) as err:
        resolve_config(None, ["model.text.tokenizer=spacy"], model="causmatch")
    assert "text.tokenizer='spacy' is not valid" in str(err.value) and "\n" not in str(err.value)


def test_txt_norm_off_from_the_training_config():
    cfg = resolve_config(None, ["model.txt_norm=false", "model.embed_size=8", "model.text.word_dim=6"],
                         model="scan")
    m = build_matcher(cfg, _split())
    assert m.config.txt_norm is False
    with torch.no_grad():
        words = m.encode_captions(CAPS[:2]).words
    assert not torch.allclose(words.norm(dim=-1)[:, :3], torch.ones(2, 3))
