"""The caption length cap: a pasted document is refused with one line before anything is allocated for it,
wherever text is encoded — training's vocabulary, evaluation, ``explain --text``, the app's free-text query."""
import numpy as np
import pytest
import torch

from causmatch.checkpoint import save_matcher
from causmatch.cli import main as cli_main
from causmatch.data import load_split, write_split
from causmatch.data.vocab import MAX_CAPTION_TOKENS
from causmatch.errors import DataError
from causmatch.evaluation import encode_split
from tests.models.tiny_matcher import CAPTIONS, make_images, make_matcher

HUGE = "a red ball " * 3_400  # 10,200 words


def _no_encoding(matcher, monkeypatch):
    """Fail loudly if the text encoder's tensors are ever built."""
    def boom(*a, **k):
        raise AssertionError("the caption was encoded")
    monkeypatch.setattr(matcher.txt_enc.embed, "forward", boom)


@pytest.mark.parametrize("tokenizer", ["regex", "nltk"])
def test_encoder_refuses_before_allocating(tokenizer, monkeypatch):
    m = make_matcher()
    m = type(m).from_config(m.config.replace(text=m.config.text.__class__(word_dim=12, tokenizer=tokenizer)),
                            m.vocab)
    _no_encoding(m, monkeypatch)
    for caps, where in [([HUGE], "the caption has 10200 words"),
                        (["a red ball", HUGE], "caption 1 ('a red ball a red ball a red ba…') has 10200 words")]:
        with pytest.raises(DataError) as err:
            m.encode_captions(caps)
        assert str(err.value).startswith(where) and f"cap of {MAX_CAPTION_TOKENS} tokens" in str(err.value)
        assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="has 10200 words"):
        m.tokens(HUGE)
    with pytest.raises(DataError, match="has 10200 words"):
        m.unknown_words(HUGE)


def test_a_caption_at_the_cap_still_encodes():
    m = make_matcher()
    with torch.no_grad():
        txt = m.encode_captions([" ".join(["ball"] * MAX_CAPTION_TOKENS)])
    assert txt.words.shape[1] == MAX_CAPTION_TOKENS


@pytest.fixture
def checkpoint_and_data(tmp_path):
    m = make_matcher()
    save_matcher(m, tmp_path / "ckpt")
    feats, mask = make_images(n=5)
    write_split(tmp_path / "data", "test", features=feats.numpy(), captions=CAPTIONS, caps_per_image=1)
    return tmp_path / "ckpt", tmp_path / "data"


def test_cli_explain_text_and_the_session_refuse_in_one_line(checkpoint_and_data, capsys):
    ckpt, data = checkpoint_and_data
    code = cli_main(["explain", "--checkpoint", str(ckpt), "--data", str(data), "--split", "test", "--image", "0",
                     "--text", HUGE])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "10200 words" in err and f"cap of {MAX_CAPTION_TOKENS} tokens" in err
    from causmatch.analysis import AnalysisSession

    session = AnalysisSession.open(ckpt, data, "test")
    with pytest.raises(DataError, match="10200 words"):
        session.explain(0, text=HUGE, intervention="none", samples=1)  # the app's free-text query
    with pytest.raises(DataError, match="10200 words"):
        session.rank_text_query(HUGE, 0, "none", samples=1, seed=0, k=3)


def test_evaluation_and_training_vocabulary_refuse_a_long_caption_in_the_data(checkpoint_and_data, tmp_path):
    from causmatch.checkpoint import load_matcher
    from causmatch.data import Vocabulary

    ckpt, _ = checkpoint_and_data
    feats, _ = make_images(n=2)
    write_split(tmp_path / "long", "test", features=feats.numpy(), captions=["a red ball", HUGE], caps_per_image=1)
    split = load_split(tmp_path / "long", "test")
    with pytest.raises(DataError, match="caption 1 .* has 10200 words"):
        encode_split(load_matcher(ckpt), split)
    with pytest.raises(DataError, match="caption 1 has 10200 words"):
        Vocabulary.from_captions(split.captions)  # what training builds its vocabulary with
    assert np.asarray(split.features).shape[0] == 2
