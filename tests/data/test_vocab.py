import json

import pytest

from causmatch.data import Vocabulary, tokenize
from causmatch.errors import DataError


def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("A Red circle, left of the man's STAR.") == [
        "a", "red", "circle", ",", "left", "of", "the", "man", "'s", "star", "."]
    assert tokenize("  two\tspaces\n") == ["two", "spaces"]
    assert tokenize("") == []


def test_from_captions_specials_min_count_and_order():
    vocab = Vocabulary.from_captions(["a red star", "a blue star", "a star"], min_count=2)
    assert [vocab.idx2word[i] for i in range(4)] == ["<pad>", "<start>", "<end>", "<unk>"]
    # "a" and "star" occur 3 times; "red"/"blue" only once and are dropped by min_count=2
    assert [vocab.idx2word[i] for i in range(4, len(vocab))] == ["a", "star"]
    assert vocab.encode(["a", "red", "star"]) == [4, 3, 5]
    assert vocab.unknown(["a", "red", "star", "blue"]) == ["red", "blue"]


def test_save_load_round_trip(tmp_path):
    vocab = Vocabulary.from_captions(["the big green hexagon", "a tiny pink ring ."])
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(tmp_path / "vocab.json")
    assert loaded == vocab and loaded.idx2word == vocab.idx2word
    data = json.loads((tmp_path / "vocab.json").read_text())
    assert set(data) >= {"word2idx", "idx2word"}
    assert Vocabulary.from_dict(vocab.to_dict()) == vocab


def test_loads_scan_vocab_json(tmp_path):
    # SCAN's vocab/*.json layout: word2idx, idx2word with string keys, and idx (the size).
    words = ["<pad>", "<start>", "<end>", "<unk>", "dog", "frisbee"]
    scan = {"word2idx": {w: i for i, w in enumerate(words)},
            "idx2word": {str(i): w for i, w in enumerate(words)}, "idx": len(words)}
    (tmp_path / "f30k_precomp_vocab.json").write_text(json.dumps(scan))
    vocab = Vocabulary.load(tmp_path / "f30k_precomp_vocab.json")
    assert len(vocab) == 6 and vocab.encode(tokenize("Dog, frisbee!")) == [4, 3, 5, 3]


@pytest.mark.parametrize("content, needle", [
    ("{not json", "not valid UTF-8 JSON"),
    (json.dumps({"idx2word": {}}), "no 'word2idx'"),
    (json.dumps({"word2idx": {"<pad>": 0, "<start>": 1, "<end>": 2, "dog": 3}}), "must be '<unk>'"),
    (json.dumps({"word2idx": {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3, "x": 7}}), "without gaps"),
    (json.dumps({"word2idx": {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3, "x": "a"}}), "not an integer"),
    (json.dumps({"word2idx": {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3, "x": 4.5}}), "not an integer"),
    (json.dumps({"word2idx": {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3, "x": None}}), "not an integer"),
    (json.dumps({"word2idx": {"<pad>": 0, "<start>": 1, "<end>": 2, "<unk>": 3, "x": 3}}), "without gaps"),
])
def test_bad_vocab_files_give_one_line_errors(tmp_path, content, needle):
    (tmp_path / "v.json").write_text(content)
    with pytest.raises(DataError, match=needle) as err:
        Vocabulary.load(tmp_path / "v.json")
    assert "\n" not in str(err.value)


def test_missing_vocab_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        Vocabulary.load(tmp_path / "nope.json")
    with pytest.raises(DataError, match="is a folder"):
        Vocabulary.load(tmp_path)


# ---------------------------------------------------------------- tokenizers, the caption cap, SCAN's vocab.py

from causmatch.data.vocab import MAX_CAPTION_CHARS, MAX_CAPTION_TOKENS, TOKENIZERS, read_caption_lines  # noqa: E402
from causmatch.errors import ConfigError  # noqa: E402


@pytest.mark.parametrize("caption, regex, nltk", [
    ("A man in a T-shirt.", ["a", "man", "in", "a", "t", "-", "shirt", "."], ["a", "man", "in", "a", "t-shirt", "."]),
    ("It doesn't", ["it", "doesn", "'t"], ["it", "does", "n't"]),
    ("on St. Mark's 3.5", ["on", "st", ".", "mark", "'s", "3", ".", "5"], ["on", "st.", "mark", "'s", "3.5"]),
    ('says "hi"...', ["says", '"', "hi", '"', ".", ".", "."], ["says", "``", "hi", "''", "..."]),
    ("a dog. a cat.", ["a", "dog", ".", "a", "cat", "."], ["a", "dog", ".", "a", "cat", "."]),
])
def test_the_two_tokenizers(caption, regex, nltk):
    assert tokenize(caption) == tokenize(caption, "regex") == regex  # regex stays the default
    assert tokenize(caption, "nltk") == nltk


def test_nltk_lowercases_ascii_only_as_scan():
    """SCAN lower-cases the UTF-8 bytes (Python 2 str.lower), so non-ASCII capitals stay as they are."""
    assert tokenize("CAFÉ Éclair", "nltk") == ["cafÉ", "Éclair"]
    assert tokenize("CAFÉ Éclair", "regex") == ["café", "éclair"]


def test_unknown_tokenizer_is_a_one_line_config_error():
    assert TOKENIZERS == ("regex", "nltk")
    with pytest.raises(ConfigError, match="tokenizer='spacy' is not valid") as err:
        tokenize("a dog", "spacy")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("tokenizer", TOKENIZERS)
def test_caption_cap_names_the_cap_and_the_length(tokenizer):
    assert MAX_CAPTION_TOKENS >= 100  # real captions never reach it
    ok = " ".join(["dog"] * MAX_CAPTION_TOKENS)
    assert len(tokenize(ok, tokenizer)) == MAX_CAPTION_TOKENS
    for text, n, unit in [("word " * 10_000, 10_000, "words"),  # refused before tokenizing
                          (ok + ".", MAX_CAPTION_TOKENS + 1, "tokens"),  # the period is one token too many
                          ("-".join(["a"] * 200) + " " + ",".join(["b"] * 200), None, "tokens")]:
        with pytest.raises(DataError) as err:
            tokenize(text, tokenizer, what="caption 7")
        msg = str(err.value)
        assert "\n" not in msg and msg.startswith("caption 7 has ") and f"cap of {MAX_CAPTION_TOKENS} tokens" in msg
        assert unit in msg and (n is None or f" {n} {unit}" in msg)
    with pytest.raises(DataError) as err:  # a few megabyte-long "words": refused by characters, untokenized
        tokenize("a" * 1_000_000 + " dog", tokenizer)
    assert str(err.value).startswith("the caption has 1000004 characters") and "\n" not in str(err.value)
    assert f"{MAX_CAPTION_CHARS} characters ({MAX_CAPTION_TOKENS} tokens)" in str(err.value)
    assert tokenize("a" * (MAX_CAPTION_CHARS - 4) + " dog", tokenizer)[-1] == "dog"


def test_from_captions_uses_the_tokenizer_order_and_labels():
    caps = ["A t-shirt.", "ice-cream, a t-shirt", "a dog"]
    v = Vocabulary.from_captions(caps, tokenizer="nltk", order="first_seen")
    assert [v.idx2word[i] for i in range(4, len(v))] == ["a", "t-shirt", ".", "ice-cream", ",", "dog"]
    v = Vocabulary.from_captions(caps, tokenizer="nltk")  # frequency: a(3), t-shirt(2), then alphabetical
    assert [v.idx2word[i] for i in range(4, 6)] == ["a", "t-shirt"]
    assert "shirt" in Vocabulary.from_captions(caps)  # regex default splits the hyphen
    with pytest.raises(DataError, match=r"^train.txt line 2 has 300 words"):
        Vocabulary.from_captions(["a dog", "x " * 300], label=lambda c: f"train.txt line {c + 1}")
    with pytest.raises(ConfigError, match="order='alphabetical'"):
        Vocabulary.from_captions(caps, order="alphabetical")


def test_read_caption_lines_as_scan(tmp_path):
    (tmp_path / "c.txt").write_bytes(b"  A dog.  \r\nA cat\n\nlast")
    assert read_caption_lines(tmp_path / "c.txt") == ["A dog.", "A cat", "", "last"]
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(DataError, match="line 2 is not UTF-8"):
        read_caption_lines(tmp_path / "bad.txt")
    with pytest.raises(DataError, match="not found"):
        read_caption_lines(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="is a folder"):
        read_caption_lines(tmp_path)
