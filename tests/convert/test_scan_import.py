import argparse
import json
import os

import numpy as np
import pytest
import torch

from causmatch.checkpoint import load_matcher, read_checkpoint_config
from causmatch.cli import main as cli_main
from causmatch.convert.scan_checkpoint import import_scan
from causmatch.errors import CheckpointError

from .scan_reference import ScanImageEncoder, ScanTextEncoder, scan_scores

WORDS = ["a", "dog", "cat", "runs", "on", "the", "grass", "red", "ball", "sits", "man"]
CAPTIONS = ["a dog runs on the grass", "a red ball", "the cat sits on a man", "dog"]
SPECIALS = ["<pad>", "<start>", "<end>", "<unk>"]


class NotAScanThing:
    pass


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def scan_opt(**kw):
    opt = dict(cross_attn="t2i", raw_feature_norm="clipped_l2norm", agg_func="LogSumExp", lambda_lse=6.0,
               lambda_softmax=9.0, embed_size=8, word_dim=6, num_layers=1, bi_gru=True, img_dim=10,
               no_imgnorm=False, precomp_enc_type="basic", data_name="f30k_precomp", margin=0.2,
               max_violation=True, vocab_size=len(SPECIALS) + len(WORDS), no_txtnorm=False)
    opt.update(kw)
    return argparse.Namespace(**opt)


def write_scan(tmp_path, opt, *, legacy=False, seed=0, extra_img=None, payload=None):
    torch.manual_seed(seed)
    img = ScanImageEncoder(opt.img_dim, opt.embed_size, opt.no_imgnorm)
    txt = ScanTextEncoder(opt.vocab_size, opt.word_dim, opt.embed_size, opt.num_layers, opt.bi_gru, opt.no_txtnorm)
    img_state = img.state_dict()
    img_state.update(extra_img or {})
    ckpt = {"epoch": 12, "model": [img_state, txt.state_dict()], "best_rsum": np.float64(431.5),
            "opt": opt, "Eiters": 4000}
    ckpt.update(payload or {})
    path = tmp_path / "model_best.pth.tar"
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    words = SPECIALS + WORDS
    vocab = tmp_path / "f30k_precomp_vocab.json"
    vocab.write_text(json.dumps({"word2idx": {w: i for i, w in enumerate(words)},
                                 "idx2word": {str(i): w for i, w in enumerate(words)}, "idx": len(words)}))
    return path, vocab, img, txt


def reference(img, txt, feats, opt):
    words = SPECIALS + WORDS
    toks = [["<start>", *c.split(), "<end>"] for c in CAPTIONS]
    lengths = torch.tensor([len(t) for t in toks])
    ids = torch.zeros(len(toks), int(lengths.max()), dtype=torch.long)
    for c, t in enumerate(toks):
        ids[c, : len(t)] = torch.tensor([words.index(w) for w in t])
    with torch.no_grad():
        return scan_scores(img(feats), txt(ids, lengths), lengths, opt)


@pytest.mark.parametrize("options,legacy", [
    (dict(), False),
    (dict(cross_attn="i2t"), True),
    (dict(agg_func="Mean", raw_feature_norm="l2norm", bi_gru=False, num_layers=2), False),
    (dict(cross_attn="i2t", agg_func="Mean", raw_feature_norm="softmax", lambda_softmax=4.0), False),
    (dict(lambda_lse=10.0, raw_feature_norm="no_norm", no_imgnorm=True), False),
    (dict(agg_func="Max", raw_feature_norm="clipped", no_txtnorm=True), False),
    (dict(cross_attn="i2t", agg_func="Sum", raw_feature_norm="clipped_l1norm", no_txtnorm=True, no_imgnorm=True),
     False),
    (dict(agg_func="Sum", raw_feature_norm="l1norm", lambda_softmax=20.0, bi_gru=False), True),
])
def test_imported_scores_equal_scan_formulas(tmp_path, options, legacy):
    opt = scan_opt(**options)
    path, vocab, img, txt = write_scan(tmp_path, opt, legacy=legacy)
    import_scan(path, vocab, tmp_path / "ours", allow_pickle=True)
    matcher = load_matcher(tmp_path / "ours").eval()
    feats = torch.randn(3, 5, opt.img_dim)
    with torch.no_grad():
        ours = matcher.similarity(matcher.encode_images(feats), matcher.encode_captions(CAPTIONS)).score
    torch.testing.assert_close(ours, reference(img, txt, feats, opt), atol=1e-5, rtol=0)
    cfg = read_checkpoint_config(tmp_path / "ours")
    assert cfg["extra"]["imported_from"]["format"] == "SCAN"
    assert matcher.tokens("a dog") == ["<start>", "a", "dog", "<end>"]


def test_weight_norm_image_encoder_is_folded(tmp_path):
    opt = scan_opt(precomp_enc_type="weight_norm")
    torch.manual_seed(1)
    v, g = torch.randn(8, 10), torch.tensor(2.5)
    path, vocab, img, txt = write_scan(tmp_path, opt)
    ckpt = torch.load(path, weights_only=False)
    state = ckpt["model"][0]
    del state["fc.weight"]
    state.update({"fc.weight_g": g, "fc.weight_v": v})
    torch.save(ckpt, path)
    matcher = import_scan(path, vocab, tmp_path / "ours", allow_pickle=True)
    torch.testing.assert_close(matcher.img_enc.fc.weight.detach(), v * g / v.norm())


def _refused(tmp_path, path, vocab, *, allow=True) -> str:
    with pytest.raises(CheckpointError) as err:
        import_scan(path, vocab, tmp_path / "ours", allow_pickle=allow)
    msg = str(err.value)
    assert "\n" not in msg and not (tmp_path / "ours").exists()
    return msg


def test_refuses_without_consent(tmp_path):
    path, vocab, _, _ = write_scan(tmp_path, scan_opt())
    assert "--allow-pickle" in _refused(tmp_path, path, vocab, allow=False)


def test_refuses_code_and_unknown_types(tmp_path):
    marker = tmp_path / "pwned"
    path, vocab, _, _ = write_scan(tmp_path, scan_opt(), payload={"hook": RunsCode(marker)})
    msg = _refused(tmp_path, path, vocab)
    assert "system'" in msg and "refusing" in msg and not marker.exists()
    path, vocab, _, _ = write_scan(tmp_path, scan_opt(), payload={"x": NotAScanThing()})
    assert "test_scan_import.NotAScanThing'" in _refused(tmp_path, path, vocab)


def test_bad_checkpoints_are_one_line_errors(tmp_path):
    path, vocab, _, _ = write_scan(tmp_path, scan_opt(), extra_img={"fc2.weight": torch.zeros(2)})
    assert "unexpected key 'fc2.weight' in the SCAN image encoder" in _refused(tmp_path, path, vocab)
    path, vocab, _, _ = write_scan(tmp_path, scan_opt())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated or not a torch checkpoint" in _refused(tmp_path, path, vocab)
    path, vocab, _, _ = write_scan(tmp_path, scan_opt(vocab_size=len(SPECIALS) + len(WORDS) + 1))
    assert "has 15 words but the checkpoint's word embedding has 16 rows" in _refused(tmp_path, path, vocab)
    path, vocab, _, _ = write_scan(tmp_path, scan_opt(agg_func="Median"))
    assert "agg_func='Median'" in _refused(tmp_path, path, vocab)
    path, vocab, _, _ = write_scan(tmp_path, scan_opt(raw_feature_norm="l3norm"))
    assert "raw_feature_norm='l3norm'" in _refused(tmp_path, path, vocab)
    path, vocab, _, _ = write_scan(tmp_path, scan_opt(cross_attn="both"))
    assert "cross_attn='both'" in _refused(tmp_path, path, vocab)
    path, vocab, _, _ = write_scan(tmp_path, scan_opt(precomp_enc_type="backbone"))
    assert "precomp_enc_type='backbone'" in _refused(tmp_path, path, vocab)
    path, vocab, _, _ = write_scan(tmp_path, scan_opt(lambda_lse=float("nan")))
    assert "lambda_lse=nan" in _refused(tmp_path, path, vocab)
    path, vocab, _, _ = write_scan(tmp_path, scan_opt(no_txtnorm="yes"))
    assert "no_txtnorm='yes'" in _refused(tmp_path, path, vocab)
    path, vocab, _, _ = write_scan(tmp_path, scan_opt(num_layers=2))
    ckpt = torch.load(path, weights_only=False)
    ckpt["opt"].num_layers = 1  # options no longer match the weights
    torch.save(ckpt, path)
    assert "unexpected key 'rnn.bias_hh_l1'" in _refused(tmp_path, path, vocab)
    path, vocab, _, _ = write_scan(tmp_path, scan_opt(embed_size=8))
    ckpt = torch.load(path, weights_only=False)
    ckpt["opt"].img_dim = 12
    torch.save(ckpt, path)
    assert "'fc.weight' has shape (8, 10), the options imply (8, 12)" in _refused(tmp_path, path, vocab)


def test_cli_import_scan(tmp_path, capsys):
    path, vocab, _, _ = write_scan(tmp_path, scan_opt())
    out = tmp_path / "ckpt"
    assert cli_main(["import-scan", "--checkpoint", str(path), "--vocab", str(vocab), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--allow-pickle" in err and err.count("\n") == 1
    assert cli_main(["import-scan", "--checkpoint", str(path), "--vocab", str(vocab), "--out", str(out),
                     "--allow-pickle"]) == 0
    assert load_matcher(out).config.attention.agg == "lse"
