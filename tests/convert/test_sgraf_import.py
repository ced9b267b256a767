"""``import-sgraf``: official-format SGRAF checkpoints (SAF and SGR) → our checkpoints, scored as SGRAF scores.

Each checkpoint is built here as SGRAF's ``train.py`` saves it: ``torch.save({"model": [img_enc, txt_enc,
sim_enc state dicts], "opt": argparse.Namespace, "epoch", "best_rsum", "Eiters"})`` from the independent
formulas reference :mod:`tests.convert.sgraf_reference` (the official module names, random weights, trained-looking
batch-norm statistics). Imported scores equal the reference's to 1e-5 on captions tokenized by NLTK itself
(SGRAF's ``data.py`` tokenizes as SCAN's), and every damaged or foreign file is one line that loses nothing.
"""
import argparse
import json
import os

import numpy as np
import pytest
import torch

from causmatch.checkpoint import checkpoint_origin, load_matcher, read_checkpoint_config
from causmatch.cli import main as cli_main
from causmatch.convert.scan_checkpoint import import_scan
from causmatch.convert.sgraf_checkpoint import import_sgraf, sgraf_to_matcher
from causmatch.data import Vocabulary, load_split, write_split
from causmatch.errors import CheckpointError
from causmatch.evaluation import encode_split, similarity_matrix

from .scan_reference import punkt_tab_folder, scan_tokens, scan_vocab_words
from .sgraf_reference import SgrafImageEncoder, SgrafSimilarity, SgrafTextEncoder

CAPTIONS = [
    "A man in a T-shirt eats ice-cream.",
    "A black-and-white dog doesn't run on St. Mark's street.",
    "The boy is 3.5 feet tall...",
    'A sign says "stop" and \'go\'.',
    "A dog runs on the grass. The cat sits on a mat.",
    "dog",
]
UNSEEN = "A woman wearing a black-and-white t-shirt isn't smiling..."  # 'woman', 'wearing', ... are <unk>


@pytest.fixture(scope="module", autouse=True)
def nltk_punkt(tmp_path_factory):
    import nltk

    root = str(punkt_tab_folder(tmp_path_factory.mktemp("nltk_data")))
    nltk.data.path.insert(0, root)
    yield
    nltk.data.path.remove(root)


@pytest.fixture(scope="module")
def words():
    return scan_vocab_words(CAPTIONS, threshold=1)


class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def sgraf_opt(n_words, **kw):
    """SGRAF's opts.py fields (tiny sizes)."""
    opt = dict(data_name="f30k_precomp", batch_size=128, num_epochs=40, lr_update=30, learning_rate=2e-4,
               grad_clip=2.0, margin=0.2, max_violation=True, img_dim=10, word_dim=6, embed_size=8, sim_dim=5,
               num_layers=1, bi_gru=True, no_imgnorm=False, no_txtnorm=False, module_name="SAF", sgr_step=3,
               vocab_size=n_words, vocab_path="/data/vocab", model_name="/runs/f30k_SAF/checkpoint")
    opt.update(kw)
    return argparse.Namespace(**opt)


class Official:
    """The three reference modules of one SGRAF model, in eval mode (what SGRAF's evaluation runs)."""

    def __init__(self, opt, num_region=5, seed=0):
        torch.manual_seed(seed)
        self.opt = opt
        self.img = SgrafImageEncoder(opt.img_dim, opt.embed_size, opt.no_imgnorm).eval()
        self.txt = SgrafTextEncoder(opt.vocab_size, opt.word_dim, opt.embed_size, opt.num_layers, opt.bi_gru,
                                    opt.no_txtnorm).eval()
        self.sim = SgrafSimilarity(opt.embed_size, opt.sim_dim, opt.module_name, opt.sgr_step, num_region).eval()

    def state(self):
        return [self.img.state_dict(), self.txt.state_dict(), self.sim.state_dict()]

    def scores(self, feats, captions, words):
        """SGRAF's data.py ids (<start> NLTK tokens <end>, <unk> for unknown words) and its formulas."""
        index = {w: i for i, w in enumerate(words)}
        toks = [["<start>", *scan_tokens(c), "<end>"] for c in captions]
        lengths = torch.tensor([len(t) for t in toks])
        ids = torch.zeros(len(toks), int(lengths.max()), dtype=torch.long)
        for c, t in enumerate(toks):
            ids[c, : len(t)] = torch.tensor([index.get(w, index["<unk>"]) for w in t])
        with torch.no_grad():
            return self.sim(self.img(feats), self.txt(ids, lengths), lengths)


def write_sgraf(tmp_path, opt, words, *, num_region=5, seed=0, legacy=False, edit=None, payload=None):
    """An official-format SGRAF checkpoint and its vocabulary JSON; ``edit(state_list)`` damages the weights."""
    model = Official(opt, num_region, seed)
    state = model.state()
    if edit is not None:
        edit(state)
    ckpt = {"epoch": 21, "model": state, "best_rsum": np.float64(489.1), "opt": opt, "Eiters": 9000}
    ckpt.update(payload or {})
    path = tmp_path / "model_best.pth.tar"
    torch.save(ckpt, path, _use_new_zipfile_serialization=not legacy)
    vocab = tmp_path / "f30k_precomp_vocab.json"
    vocab.write_text(json.dumps({"word2idx": {w: i for i, w in enumerate(words)},
                                 "idx2word": {str(i): w for i, w in enumerate(words)}, "idx": len(words)}))
    return path, vocab, model


def ours_scores(matcher, feats, captions):
    with torch.no_grad():
        return matcher.similarity(matcher.encode_images(feats), matcher.encode_captions(captions),
                                  return_maps=True)


@pytest.mark.parametrize("options,num_region,legacy", [
    (dict(module_name="SAF"), 5, False),
    (dict(module_name="SGR"), 5, True),
    (dict(module_name="SGR", sgr_step=1, bi_gru=False, num_layers=2), 4, False),
    (dict(module_name="SAF", no_txtnorm=True, no_imgnorm=True, sim_dim=3), 5, False),
    (dict(module_name="SGR", sgr_step=2, no_txtnorm=True), 36, False),
])
def test_imported_scores_equal_sgraf_formulas(tmp_path, words, options, num_region, legacy):
    opt = sgraf_opt(len(words), **options)
    path, vocab, official = write_sgraf(tmp_path, opt, words, num_region=num_region, legacy=legacy)
    import_sgraf(path, vocab, tmp_path / "ours", allow_pickle=True)
    matcher = load_matcher(tmp_path / "ours").eval()
    feats = torch.randn(3, num_region, opt.img_dim, generator=torch.Generator().manual_seed(2))
    captions = [*CAPTIONS, UNSEEN]
    want, filtration = official.scores(feats, captions, words)
    got = ours_scores(matcher, feats, captions)
    torch.testing.assert_close(got.score, want, atol=1e-5, rtol=0)
    with torch.no_grad():  # the aligned-pair path scores the same pairs alike
        n = [0, 1, 2]
        pairs = matcher.pair_scores(matcher.encode_images(feats[n]), matcher.encode_captions(captions[:3])).score
    torch.testing.assert_close(pairs, want.diagonal(), atol=1e-5, rtol=0)
    if opt.module_name == "SAF":  # the filtration weights: node 0 the global one, then <start> .. <end>
        assert got.filtration is not None
        for c, weights in enumerate(filtration):
            torch.testing.assert_close(got.filtration[:, c, : weights.shape[1]], weights, atol=1e-5, rtol=0)
            assert float(got.filtration[:, c, weights.shape[1]:].abs().sum()) == 0.0  # no weight on padding
    else:
        assert getattr(got, "filtration", None) is None
    cfg = read_checkpoint_config(tmp_path / "ours")
    assert cfg["matcher"]["similarity"] == opt.module_name.lower()
    assert cfg["matcher"]["sim_dim"] == opt.sim_dim and cfg["matcher"]["num_region"] == num_region
    assert cfg["matcher"]["text"]["tokenizer"] == "nltk" and cfg["matcher"]["attention"]["lambda_softmax"] == 9.0
    assert cfg["extra"]["imported_from"]["format"] == "SGRAF"
    assert cfg["extra"]["imported_from"]["options"]["module_name"] == opt.module_name
    assert checkpoint_origin(tmp_path / "ours") == "import-sgraf"
    assert matcher.tokens("a dog") == ["<start>", "a", "dog", "<end>"]


def test_scores_through_evaluate_as_sgraf_scores(tmp_path, words):
    opt = sgraf_opt(len(words), module_name="SGR")
    path, vocab, official = write_sgraf(tmp_path, opt, words)
    out = tmp_path / "ours"
    assert cli_main(["import-sgraf", "--checkpoint", str(path), "--vocab", str(vocab), "--out", str(out),
                     "--allow-pickle"]) == 0
    feats = np.random.default_rng(0).standard_normal((3, 5, opt.img_dim)).astype(np.float32)
    data = tmp_path / "data"
    write_split(data, "test", features=feats, captions=CAPTIONS, caps_per_image=2)
    matcher = load_matcher(out).eval()
    got = similarity_matrix(matcher, *encode_split(matcher, load_split(data, "test")))
    want = official.scores(torch.from_numpy(feats), CAPTIONS, words)[0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_a_model_built_in_memory_equals_the_imported_one(tmp_path, words):
    opt = sgraf_opt(len(words))
    official = Official(opt)
    vocab = Vocabulary.from_dict({"word2idx": {w: i for i, w in enumerate(words)}})
    matcher = sgraf_to_matcher(vars(opt), *official.state(), vocab)
    feats = torch.randn(2, 5, opt.img_dim)
    torch.testing.assert_close(ours_scores(matcher, feats, CAPTIONS).score,
                               official.scores(feats, CAPTIONS, words)[0], atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------- refusals
def _refused(tmp_path, path, vocab, *, allow=True, importer=import_sgraf) -> str:
    with pytest.raises(CheckpointError) as err:
        importer(path, vocab, tmp_path / "ours", allow_pickle=allow)
    msg = str(err.value)
    assert "\n" not in msg and not (tmp_path / "ours").exists()
    return msg


def test_refuses_without_consent_and_refuses_code(tmp_path, words):
    path, vocab, _ = write_sgraf(tmp_path, sgraf_opt(len(words)), words)
    assert "--allow-pickle" in _refused(tmp_path, path, vocab, allow=False)
    marker = tmp_path / "pwned"
    path, vocab, _ = write_sgraf(tmp_path, sgraf_opt(len(words)), words, payload={"hook": RunsCode(marker)})
    msg = _refused(tmp_path, path, vocab)
    assert "system'" in msg and "refusing" in msg and not marker.exists()


def test_scan_and_sgraf_files_are_sent_to_their_importer(tmp_path, words):
    path, vocab, _ = write_sgraf(tmp_path, sgraf_opt(len(words)), words)
    assert "use causmatch import-sgraf" in _refused(tmp_path, path, vocab, importer=import_scan)
    ckpt = torch.load(path, weights_only=False)
    ckpt["model"] = ckpt["model"][:2]  # what SCAN's train.py saves
    torch.save(ckpt, path)
    assert "SCAN checkpoint — use causmatch import-scan" in _refused(tmp_path, path, vocab)
    ckpt["model"] = [{}]
    torch.save(ckpt, path)
    assert "is it an SGRAF checkpoint?" in _refused(tmp_path, path, vocab)
    torch.save({"model": ckpt["model"]}, path)
    assert "is it an SGRAF checkpoint?" in _refused(tmp_path, path, vocab)


def _del(part, key):
    def edit(state):
        del state[part][key]
    return edit


def _set(part, key, value):
    def edit(state):
        state[part][key] = value
    return edit


def _scale(part, key, factor):
    def edit(state):
        state[part][key] = state[part][key] * factor
    return edit


@pytest.mark.parametrize("options,edit,expected", [
    (dict(module_name="AVE"), None, "module_name='AVE' (SGRAF's are: SAF, SGR)"),
    (dict(module_name=None), None, "module_name=None"),
    (dict(sim_dim=float("nan")), None, "sim_dim=nan"),
    (dict(sgr_step=0), None, "sgr_step=0"),
    (dict(no_txtnorm="yes"), None, "no_txtnorm='yes'"),
    (dict(), _set(2, "SAF_module.extra", torch.zeros(2)),
     "unexpected key 'SAF_module.extra' in the SGRAF similarity encoder"),
    (dict(), _del(2, "sim_eval_w.bias"), "lacks 'sim_eval_w.bias' in its similarity encoder"),
    (dict(), _del(1, "cap_rnn.weight_hh_l0"), "lacks 'cap_rnn.weight_hh_l0' in its text encoder"),
    (dict(), _set(0, "fc.weight", torch.zeros(8, 11)), "'fc.weight' has shape (8, 11), the options imply (8, 10)"),
    (dict(), _set(2, "sim_eval_w.weight", torch.zeros(1, 7)),
     "'sim_eval_w.weight' has shape (1, 7), the options imply (1, 5)"),
    (dict(), _scale(2, "SAF_module.attn_sim_w.weight", float("nan")),
     "'SAF_module.attn_sim_w.weight' has non-finite values"),
    (dict(), _scale(1, "cap_rnn.weight_ih_l0", float("inf")), "'cap_rnn.weight_ih_l0' has non-finite values"),
    (dict(), _scale(2, "SAF_module.bn.running_var", -1.0), "'SAF_module.bn.running_var' has negative variances"),
    (dict(), _set(2, "sim_eval_w.bias", "0.5"), "'sim_eval_w.bias' is a str, not a tensor"),
    (dict(), _del(2, "v_global_w.embedding_local.1.running_mean"), "lacks 'v_global_w.embedding_local.1.running_mean'"),
])
def test_bad_checkpoints_are_one_line_errors(tmp_path, words, options, edit, expected):
    opt = sgraf_opt(len(words), **options)
    if options:  # damaged options: the weights of a sound model, the options replaced
        path, vocab, _ = write_sgraf(tmp_path, sgraf_opt(len(words)), words)
        ckpt = torch.load(path, weights_only=False)
        ckpt["opt"] = opt
        torch.save(ckpt, path)
    else:
        path, vocab, _ = write_sgraf(tmp_path, opt, words, edit=edit)
    assert expected in _refused(tmp_path, path, vocab)


def test_options_that_do_not_match_the_weights(tmp_path, words):
    def swapped(**kw):  # weights saved with one option set, the opt namespace says another
        path, vocab, _ = write_sgraf(tmp_path, sgraf_opt(len(words), **kw.pop("weights")), words)
        ckpt = torch.load(path, weights_only=False)
        ckpt["opt"] = sgraf_opt(len(words), **kw)
        torch.save(ckpt, path)
        return _refused(tmp_path, path, vocab)

    assert "unexpected key 'SGR_module.2.graph_key_w.bias'" in swapped(
        weights=dict(module_name="SGR", sgr_step=3), module_name="SGR", sgr_step=2)
    assert "holds SGR weights but the options say module_name='SAF'" in swapped(
        weights=dict(module_name="SGR"), module_name="SAF")
    assert "unexpected key 'cap_rnn.bias_hh_l1' in the SGRAF text encoder" in swapped(
        weights=dict(num_layers=2), num_layers=1)
    assert "'sim_tranloc_w.weight' has shape (5, 8), the options imply (4, 8)" in swapped(
        weights=dict(sim_dim=5), sim_dim=4)


def test_truncated_file_and_wrong_vocabulary(tmp_path, words):
    path, vocab, _ = write_sgraf(tmp_path, sgraf_opt(len(words)), words)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated or not a torch checkpoint" in _refused(tmp_path, path, vocab)
    path, vocab, _ = write_sgraf(tmp_path, sgraf_opt(len(words) + 1), words)
    assert f"has {len(words)} words but the checkpoint's word embedding has {len(words) + 1} rows" in \
        _refused(tmp_path, path, vocab)
    assert "not found" in _refused(tmp_path, tmp_path / "nothing.pth.tar", vocab)


# ---------------------------------------------------------------------------------------------- command line
def _cli(capsys, *args):
    capsys.readouterr()
    code = cli_main(["import-sgraf", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_import_sgraf_and_its_out_rules(tmp_path, capsys, words):
    path, vocab, _ = write_sgraf(tmp_path, sgraf_opt(len(words), module_name="SGR"), words)
    out = tmp_path / "ckpt"
    code, _, err = _cli(capsys, "--checkpoint", path, "--vocab", vocab, "--out", out)
    assert code == 2 and err.startswith("error: ") and "--allow-pickle" in err and err.count("\n") == 1
    code, stdout, _ = _cli(capsys, "--checkpoint", path, "--vocab", vocab, "--out", out, "--allow-pickle")
    assert code == 0 and "SGR" in stdout and "3 reasoning steps" in stdout
    assert load_matcher(out).config.similarity == "sgr"
    # A second import into the same folder needs --overwrite; with it the folder is replaced.
    code, _, err = _cli(capsys, "--checkpoint", path, "--vocab", vocab, "--out", out, "--allow-pickle")
    assert code == 2 and "--overwrite" in err and err.count("\n") == 1
    path, vocab, _ = write_sgraf(tmp_path, sgraf_opt(len(words), module_name="SAF"), words)
    code, _, _ = _cli(capsys, "--checkpoint", path, "--vocab", vocab, "--out", out, "--allow-pickle", "--overwrite")
    assert code == 0 and load_matcher(out).config.similarity == "saf"
    # A folder of other files, or a checkpoint another command wrote, is never replaced.
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "keep.txt").write_text("mine")
    code, _, err = _cli(capsys, "--checkpoint", path, "--vocab", vocab, "--out", notes, "--allow-pickle",
                        "--overwrite")
    assert code == 2 and err.count("\n") == 1 and (notes / "keep.txt").read_text() == "mine"
    before = (out / "config.json").read_bytes()
    code, _, err = cli_main(["import-scan", "--checkpoint", str(path), "--vocab", str(vocab), "--out", str(out),
                             "--allow-pickle", "--overwrite"]), *capsys.readouterr()
    assert code == 2 and "causmatch import-sgraf" in err and (out / "config.json").read_bytes() == before
    # A damaged file leaves an earlier import untouched.
    path.write_bytes(path.read_bytes()[:100])
    code, _, err = _cli(capsys, "--checkpoint", path, "--vocab", vocab, "--out", out, "--allow-pickle", "--overwrite")
    assert code == 2 and err.count("\n") == 1 and (out / "config.json").read_bytes() == before
