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
])
def test_bad_vocab_files_give_one_line_errors(tmp_path, content, needle):
    (tmp_path / "v.json").write_text(content)
    with pytest.raises(DataError, match=needle) as err:
        Vocabulary.load(tmp_path / "v.json")
    assert "\n" not in str(err.value)


def test_missing_vocab_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        Vocabulary.load(tmp_path / "nope.json")
