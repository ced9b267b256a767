"""``causmatch vocab``: SCAN's vocab.py (NLTK tokens, threshold, first-seen order) from caption files."""
import json

from causmatch.cli import main as cli_main
from causmatch.data import Vocabulary


def _run(capsys, *argv):
    code = cli_main(["vocab", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_builds_scan_layout_from_several_files(tmp_path, capsys):
    (tmp_path / "train_caps.txt").write_text("A man in a T-shirt.\nA man doesn't eat ice-cream.\n")
    (tmp_path / "dev_caps.txt").write_text("A man in a t-shirt eats.\n")
    out = tmp_path / "vocab" / "f30k_precomp_vocab.json"
    code, stdout, _ = _run(capsys, "--captions", tmp_path / "train_caps.txt", tmp_path / "dev_caps.txt",
                           "--out", out, "--threshold", 2)
    assert code == 0 and "3 captions" in stdout
    data = json.loads(out.read_text())
    assert set(data) == {"word2idx", "idx2word", "idx"} and data["idx"] == len(data["word2idx"])
    words = [data["idx2word"][str(i)] for i in range(data["idx"])]
    assert words == ["<pad>", "<start>", "<end>", "<unk>", "a", "man", "in", "t-shirt", "."]  # seen >= 2, in order
    assert Vocabulary.load(out).encode(["t-shirt", "ice-cream"]) == [7, 3]


def test_refuses_without_losing_anything(tmp_path, capsys):
    (tmp_path / "caps.txt").write_text("a dog\n" + "word " * 10_000 + "\n")
    out = tmp_path / "v.json"
    code, _, err = _run(capsys, "--captions", tmp_path / "caps.txt", "--out", out)
    assert code == 2 and err.count("\n") == 1 and "caps.txt line 2 has 10000 words" in err and not out.exists()
    (tmp_path / "caps.txt").write_text("a dog\n")
    assert _run(capsys, "--captions", tmp_path / "caps.txt", "--out", out, "--threshold", 1)[0] == 0
    before = out.read_bytes()
    code, _, err = _run(capsys, "--captions", tmp_path / "caps.txt", "--out", out)
    assert code == 2 and "--overwrite" in err and out.read_bytes() == before
    notes = tmp_path / "notes.json"
    notes.write_text('{"mine": 1}')
    code, _, err = _run(capsys, "--captions", tmp_path / "caps.txt", "--out", notes, "--overwrite")
    assert code == 2 and "not a vocabulary file" in err and notes.read_text() == '{"mine": 1}'
    for bad, needle in [(["--tokenizer", "spacy"], "tokenizer='spacy'"), (["--threshold", "0"], "--threshold 0")]:
        code, _, err = _run(capsys, "--captions", tmp_path / "caps.txt", "--out", tmp_path / "w.json", *bad)
        assert code == 2 and needle in err and err.count("\n") == 1
    code, _, err = _run(capsys, "--captions", tmp_path / "caps.txt", "--out", tmp_path / "w.json")  # threshold 4
    assert code == 2 and "no word is seen 4 times or more" in err and not (tmp_path / "w.json").exists()
    code, _, err = _run(capsys, "--captions", tmp_path / "caps.txt", "--out", tmp_path, "--overwrite")
    assert code == 2 and "not a vocabulary file" in err and (tmp_path / "caps.txt").exists()
    assert _run(capsys, "--captions", tmp_path / "caps.txt", "--out", out, "--overwrite", "--threshold", 1,
                "--tokenizer", "regex")[0] == 0
