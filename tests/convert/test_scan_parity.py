"""SCAN parity on every option and on SCAN's own tokens.

Each of SCAN's option combinations (``cross_attn`` × seven ``raw_feature_norm`` × four ``agg_func`` ×
``no_txtnorm`` × ``no_imgnorm`` × ``bi_gru``: 448) is imported and scored on captions where NLTK's
``word_tokenize`` and a plain regular expression disagree (hyphens, contractions, abbreviations, decimals,
ellipses, double and single quotes, two sentences), and compared to ``scan_reference`` — SCAN's formulas with
tokens made by NLTK itself — to 1e-5. The CLI's ``evaluate`` and ``explain --text`` are checked end to end.
"""
import argparse
import itertools
import json

import numpy as np
import pytest
import torch

from causmatch.checkpoint import load_matcher, read_checkpoint_config
from causmatch.cli import main as cli_main
from causmatch.convert.scan_checkpoint import scan_to_matcher
from causmatch.data import Vocabulary, load_split, write_split
from causmatch.data.vocab import tokenize
from causmatch.evaluation import encode_split, recall_metrics, similarity_matrix

from .scan_reference import (
    ScanImageEncoder,
    ScanTextEncoder,
    punkt_tab_folder,
    scan_scores,
    scan_tokens,
    scan_vocab_words,
)

# Every difference between NLTK's word_tokenize and the regex tokenizer that Flickr30K/COCO captions show.
TRICKY = [
    "A man in a T-shirt eats ice-cream.",
    "A black-and-white dog doesn't run on St. Mark's street.",
    "The boy is 3.5 feet tall...",
    'A sign says "stop" and \'go\'.',
    "A dog runs on the grass. The cat sits on a mat.",
    "Two kids can't see the dog's ball , it's red.",
    "A woman wearing a black-and-white t-shirt isn't smiling...",
    "A dog runs.",
]
NORMS = ("softmax", "l2norm", "clipped_l2norm", "l1norm", "clipped_l1norm", "clipped", "no_norm")
AGGS = ("LogSumExp", "Mean", "Max", "Sum")


@pytest.fixture(scope="module", autouse=True)
def nltk_punkt(tmp_path_factory):
    """NLTK's own punkt_tab loader, reading the English model from a temporary data folder."""
    import nltk

    root = str(punkt_tab_folder(tmp_path_factory.mktemp("nltk_data")))
    nltk.data.path.insert(0, root)
    yield
    nltk.data.path.remove(root)


@pytest.fixture(scope="module")
def vocab_words():
    # Built from all captions but the last two: their words "isn't", "smiling", "woman", "wearing" are <unk>.
    words = scan_vocab_words(TRICKY[:-2], threshold=1)
    assert "<unk>" in words and "t-shirt" in words and "n't" in words and "3.5" in words and "``" in words
    return words


def scan_opt(**kw):
    opt = dict(cross_attn="t2i", raw_feature_norm="clipped_l2norm", agg_func="LogSumExp", lambda_lse=6.0,
               lambda_softmax=9.0, embed_size=8, word_dim=6, num_layers=1, bi_gru=True, img_dim=10,
               no_imgnorm=False, no_txtnorm=False, precomp_enc_type="basic", data_name="f30k_precomp")
    opt.update(kw)
    return argparse.Namespace(**opt)


def reference_models(opt, n_words, seed=0):
    torch.manual_seed(seed)
    img = ScanImageEncoder(opt.img_dim, opt.embed_size, opt.no_imgnorm)
    txt = ScanTextEncoder(n_words, opt.word_dim, opt.embed_size, opt.num_layers, opt.bi_gru, opt.no_txtnorm)
    return img, txt


def reference_scores(img, txt, feats, captions, words, opt):
    """SCAN's data.py ids (<start> tokens <end>, <unk> for unknown words) and its formulas."""
    index = {w: i for i, w in enumerate(words)}
    toks = [["<start>", *scan_tokens(c), "<end>"] for c in captions]
    lengths = torch.tensor([len(t) for t in toks])
    ids = torch.zeros(len(toks), int(lengths.max()), dtype=torch.long)
    for c, t in enumerate(toks):
        ids[c, : len(t)] = torch.tensor([index.get(w, index["<unk>"]) for w in t])
    with torch.no_grad():
        return scan_scores(img(feats), txt(ids, lengths), lengths, opt)


def test_nltk_tokens_are_scans_and_differ_from_the_regex():
    for caption in TRICKY:
        assert tokenize(caption, "nltk") == scan_tokens(caption), caption
    differ = [c for c in TRICKY if tokenize(c, "nltk") != tokenize(c, "regex")]
    assert len(differ) >= 6  # the captions really exercise the differences
    assert scan_tokens(TRICKY[4]).count(".") == 2  # two sentences: Punkt splits "grass." off its period
    assert tokenize(TRICKY[1], "nltk") == ["a", "black-and-white", "dog", "does", "n't", "run", "on", "st.",
                                           "mark", "'s", "street", "."]
    assert tokenize(TRICKY[3], "nltk") == ["a", "sign", "says", "``", "stop", "''", "and", "'", "go", "'", "."]


def test_sentence_splitting_matters_and_is_exact():
    """Where Punkt splits sentences, tokenizing the whole line at once (``preserve_line``) would differ."""
    import nltk

    for caption in ["A dog runs. A cat sits.", "Mr. Smith walks his dog. It is 3 p.m. now.",
                    "People at a cafe... one waves. U.S. flags fly.", "a man.woman on st. john's day."]:
        low = caption.lower()
        assert tokenize(caption, "nltk") == scan_tokens(caption) == nltk.word_tokenize(low)
    low = "a dog runs. a cat sits."
    assert nltk.word_tokenize(low, preserve_line=True) != nltk.word_tokenize(low)  # "runs." kept whole


# Every combination runs in the full suite; the fast tier (-m "not slow") keeps SCAN's default encoders
# (normalised text and images, bi-GRU) with every direction × norm × pooling.
@pytest.mark.parametrize("direction,norm,agg,no_txtnorm,no_imgnorm,bi_gru", [
    pytest.param(*combo, marks=() if combo[3:] == (False, False, True) else pytest.mark.slow)
    for combo in itertools.product(("t2i", "i2t"), NORMS, AGGS, (False, True), (False, True), (True, False))])
def test_every_option_combination_scores_as_scan(vocab_words, direction, norm, agg, no_txtnorm, no_imgnorm,
                                                 bi_gru):
    opt = scan_opt(cross_attn=direction, raw_feature_norm=norm, agg_func=agg, no_txtnorm=no_txtnorm,
                   no_imgnorm=no_imgnorm, bi_gru=bi_gru)
    img_ref, txt_ref = reference_models(opt, len(vocab_words))
    vocab = Vocabulary.from_dict({"word2idx": {w: i for i, w in enumerate(vocab_words)}})
    matcher = scan_to_matcher(vars(opt), img_ref.state_dict(), txt_ref.state_dict(), vocab)
    feats = torch.randn(3, 5, opt.img_dim, generator=torch.Generator().manual_seed(1))
    want = reference_scores(img_ref, txt_ref, feats, TRICKY, vocab_words, opt)
    with torch.no_grad():
        img, txt = matcher.encode_images(feats), matcher.encode_captions(TRICKY)
        fast = matcher.similarity(img, txt).score  # the no-grad path where the options allow it
        general = matcher.similarity(img, txt, return_maps=True).score
        n = list(range(3))
        pairs = matcher.pair_scores(img[n], txt[n]).score
    torch.testing.assert_close(fast, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(general, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(pairs, want.diagonal(), atol=1e-5, rtol=0)
    assert txt.tokens == [["<start>", *scan_tokens(c), "<end>"] for c in TRICKY]


def test_imported_checkpoint_records_nltk_and_scores_through_evaluate_and_explain(tmp_path, vocab_words,
                                                                                   capsys):
    opt = scan_opt(raw_feature_norm="clipped", agg_func="Max", no_txtnorm=True, bi_gru=True)
    img_ref, txt_ref = reference_models(opt, len(vocab_words), seed=3)
    ckpt = tmp_path / "model_best.pth.tar"
    torch.save({"epoch": 3, "model": [img_ref.state_dict(), txt_ref.state_dict()], "opt": opt,
                "best_rsum": 1.0, "Eiters": 10}, ckpt)
    (tmp_path / "vocab.json").write_text(json.dumps({"word2idx": {w: i for i, w in enumerate(vocab_words)},
                                                     "idx2word": dict(enumerate(vocab_words)),
                                                     "idx": len(vocab_words)}))
    out = tmp_path / "ours"
    assert cli_main(["import-scan", "--checkpoint", str(ckpt), "--vocab", str(tmp_path / "vocab.json"),
                     "--out", str(out), "--allow-pickle"]) == 0
    matcher_cfg = read_checkpoint_config(out)["matcher"]
    assert matcher_cfg["text"]["tokenizer"] == "nltk" and matcher_cfg["txt_norm"] is False
    assert matcher_cfg["attention"]["norm"] == "clipped" and matcher_cfg["attention"]["agg"] == "max"

    feats = np.random.default_rng(0).standard_normal((4, 5, opt.img_dim)).astype(np.float32)
    data = tmp_path / "data"
    write_split(data, "test", features=feats, captions=TRICKY, caps_per_image=2)
    want = reference_scores(img_ref, txt_ref, torch.from_numpy(feats), TRICKY, vocab_words, opt).numpy()

    matcher = load_matcher(out).eval()
    split = load_split(data, "test")
    got = similarity_matrix(matcher, *encode_split(matcher, split))  # what evaluate ranks
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    capsys.readouterr()
    assert cli_main(["evaluate", "--checkpoint", str(out), "--data", str(data), "--split", "test",
                     "--json", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]
    for key, value in recall_metrics(want, 2).items():
        assert metrics[key] == pytest.approx(value), key

    text = "A woman wearing a black-and-white T-shirt doesn't eat ice-cream..."
    capsys.readouterr()
    assert cli_main(["explain", "--checkpoint", str(out), "--data", str(data), "--split", "test",
                     "--image", "2", "--text", text, "--intervention", "none", "--samples", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tokens"] == ["<start>", *scan_tokens(text), "<end>"]
    assert "black-and-white" in report["tokens"] and "n't" in report["tokens"]
    assert set(report["unknown_words"]) == {w for w in scan_tokens(text) if w not in vocab_words}
    ref = reference_scores(img_ref, txt_ref, torch.from_numpy(feats), [text], vocab_words, opt)
    assert report["score"] == pytest.approx(float(ref[2, 0]), abs=1e-5)
