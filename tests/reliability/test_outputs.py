"""Reliability rows: outputs never destroy, OS errors are one line, no NaN checkpoint loads, kill -9 at any step.

One row per hostile case. A CLI row is ``(id, setup, argv, expect)``: ``setup(env, case)`` builds the
situation inside the fresh folder ``case`` (the user's files, an earlier output...), ``argv`` is formatted
with ``{case}``, ``{data}``, ``{scan}``, ``{vocab}``, ``{tsv}``, ``{karpathy}``. ``expect`` is either a
substring of the single ``error: ...`` line (exit status 2, no traceback) — and then every file and byte
under ``case`` must be exactly as before — or a callable ``check(case)`` for a run that must succeed
(exit 0). A library row is ``(id, call, error class, substring)``; the same before/after comparison holds.

The crash rows at the end run a command in a subprocess that exits with status 137 at each named step of
its save sequence (``CAUSMATCH_CRASH_AT``), then check that the output is the complete old or the complete
new version, and that the rerun succeeds. Training's crash rows live in tests/training/test_crash_resume.py.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from causmatch.checkpoint import load_matcher, load_train_state, save_matcher
from causmatch.cli import main as cli_main
from causmatch.errors import CausMatchError, CheckpointError, DataError
from causmatch.outputs import CRASH_ENV, CRASH_LOG_ENV, is_leftover
from tests.convert import butd_files, scan_reference
from tests.training.tiny_data import TINY_OVERRIDES, make_tiny_dataset

TRAIN_SETS = [a for s in [*TINY_OVERRIDES, "epochs=1"] for a in ("--set", s)]
PROC = "/proc/causmatch-reliability-out"


def _write_scan(folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """A SCAN model_best.pth.tar and vocabulary JSON (SCAN's own module layout)."""
    import argparse

    ref = scan_reference
    words = ["<pad>", "<start>", "<end>", "<unk>", "a", "red", "circle", "square"]
    opt = argparse.Namespace(cross_attn="t2i", raw_feature_norm="clipped_l2norm", agg_func="LogSumExp",
                             lambda_lse=6.0, lambda_softmax=9.0, embed_size=8, word_dim=6, num_layers=1,
                             bi_gru=True, img_dim=12, no_imgnorm=False, precomp_enc_type="basic",
                             data_name="f30k_precomp", margin=0.2, max_violation=True, vocab_size=len(words),
                             no_txtnorm=False)
    torch.manual_seed(seed)
    img = ref.ScanImageEncoder(opt.img_dim, opt.embed_size, opt.no_imgnorm)
    txt = ref.ScanTextEncoder(opt.vocab_size, opt.word_dim, opt.embed_size, opt.num_layers, opt.bi_gru)
    path = folder / f"model_best{seed or ''}.pth.tar"
    torch.save({"epoch": 3, "model": [img.state_dict(), txt.state_dict()], "opt": opt, "best_rsum": 1.0,
                "Eiters": 10}, path)
    vocab = folder / "vocab.json"
    vocab.write_text(json.dumps({"word2idx": {w: i for i, w in enumerate(words)},
                                 "idx2word": {str(i): w for i, w in enumerate(words)}, "idx": len(words)}))
    return path, vocab


class Env:
    """Inputs and one earlier output of every command, built once per module and copied into each case."""

    def __init__(self, root: Path):
        from causmatch.convert.butd import convert_butd
        from causmatch.convert.scan_checkpoint import import_scan
        from causmatch.data.scenes import build_scenes

        self.root = root
        self.data = make_tiny_dataset(root / "data", n_train=32, n_dev=8, n_test=8)
        self.train_out = root / "train-out"
        assert cli_main(["train", "--data", str(self.data), "--out", str(self.train_out), "--no-progress",
                         *TRAIN_SETS]) == 0
        self.scan, self.vocab = _write_scan(root)
        self.scan2, _ = _write_scan(root, seed=1)
        self.import_out = root / "import-out"
        import_scan(self.scan, self.vocab, self.import_out, allow_pickle=True)
        butd = butd_files
        rows = butd.make_rows([1, 2, 3, 4])
        self.tsv = butd.write_tsv(root / "a.tsv", rows)
        self.karpathy = butd.write_karpathy(root / "dataset_flickr30k.json", {"val": [1, 2], "test": [3, 4]})
        self.butd_out = root / "butd-out"
        convert_butd([self.tsv], self.karpathy, self.butd_out, splits=["dev", "test"])
        self.scenes_out = root / "scenes-out"
        build_scenes(self.scenes_out, seed=1, bias=0.5, sizes={"test": 3}, splits=("test",), workers=1,
                     progress=False)

    def fields(self, case: Path) -> dict:
        return {"case": case, "data": self.data, "scan": self.scan, "vocab": self.vocab, "tsv": self.tsv,
                "karpathy": self.karpathy, "proc": PROC, "scan2": self.scan2, "train_out": self.train_out}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return Env(tmp_path_factory.mktemp("outputs-env"))


def snapshot(root: Path) -> dict:
    """Every entry under ``root``: files by bytes, links by target, folders by name (leftovers excluded)."""
    shot = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if any(is_leftover(part) for part in path.relative_to(root).parts):
            continue
        if path.is_symlink():
            shot[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            shot[rel] = ("dir",)
        else:
            shot[rel] = ("file", path.read_bytes())
    return shot


# ---------------------------------------------------------------- setups
def user_files(case: Path, sub: str = "out") -> None:
    (case / sub).mkdir(parents=True)
    (case / sub / "notes.txt").write_text("my only copy of the results\n")
    (case / sub / "results.csv").write_bytes(b"a,b\n1,2\n")


def a_file(case: Path, name: str = "out") -> None:
    (case / name).write_bytes(b"user data, not a folder\n")


def copy_of(attr: str, extra: bool = False):
    def setup(env: Env, case: Path) -> None:
        shutil.copytree(getattr(env, attr), case / "out")
        if extra:
            (case / "out" / "notes.txt").write_text("mine\n")
    return setup


def symlink_to_user_folder(env: Env, case: Path) -> None:
    user_files(case, "real")
    (case / "out").symlink_to(case / "real")


def empty_folder(env: Env, case: Path) -> None:
    (case / "out").mkdir()


def nan_checkpoint(value: float):
    def setup(env: Env, case: Path) -> None:
        from safetensors.torch import load_file, save_file

        shutil.copytree(env.train_out, case / "out")
        f = case / "out" / "model.safetensors"
        weights = load_file(str(f))
        name = sorted(weights)[0]
        weights[name] = weights[name].clone()
        weights[name].view(-1)[0] = value
        save_file(weights, str(f), metadata={"format": "causmatch-checkpoint"})
    return setup


def nothing(env: Env, case: Path) -> None:
    pass


def with_box_file(env: Env, case: Path) -> None:
    folder = case / "precomp"
    shutil.copytree(env.butd_out, folder)
    boxes = np.load(folder / "test_boxes.npy")
    np.save(folder / "test_ims_bbx.npy", boxes)
    np.save(folder / "test_ims_size.npy", np.tile(np.array([[500, 375]], np.float32), (len(boxes), 1)))


# ---------------------------------------------------------------- checks for runs that must succeed
def loads(sub: str = "out"):
    def check(case: Path) -> None:
        load_matcher(case / sub)
    return check


def scenes_seed(seed: int):
    def check(case: Path) -> None:
        from causmatch.data import load_split, read_meta

        assert read_meta(case / "out")["generator"]["seed"] == seed
        assert load_split(case / "out", "test").n_images >= 1
    return check


def dataset_loads(split: str):
    def check(case: Path) -> None:
        from causmatch.data import load_split

        assert load_split(case / "out", split).n_images >= 1
    return check


CLI = [
    # train
    ("train-out-is-a-file", lambda e, c: a_file(c),
     ["train", "--data", "{data}", "--out", "{case}/out"], "is an existing file"),
    ("train-out-holds-user-files", lambda e, c: user_files(c),
     ["train", "--data", "{data}", "--out", "{case}/out"], "already holds a folder holding 2 entries"),
    ("train-overwrite-user-files", lambda e, c: user_files(c),
     ["train", "--data", "{data}", "--out", "{case}/out", "--overwrite"], "already holds"),
    ("train-resume-user-files", lambda e, c: user_files(c),
     ["train", "--data", "{data}", "--out", "{case}/out", "--resume"], "already holds"),
    ("train-previous-without-consent", copy_of("train_out"),
     ["train", "--data", "{data}", "--out", "{case}/out"], "pass --resume (to continue it) or --overwrite"),
    ("train-previous-plus-user-file", copy_of("train_out", extra=True),
     ["train", "--data", "{data}", "--out", "{case}/out", "--overwrite"], "plus other files"),
    ("train-over-import-scan-output", copy_of("import_out"),
     ["train", "--data", "{data}", "--out", "{case}/out", "--overwrite"], "written by causmatch import-scan"),
    ("train-resume-and-overwrite", copy_of("train_out"),
     ["train", "--data", "{data}", "--out", "{case}/out", "--resume", "--overwrite"], "pass only one"),
    ("train-resume-last-holds-user-file", lambda e, c: (copy_of("train_out")(e, c),
                                                       (c / "out" / "last" / "mine.txt").write_text("x")),
     ["train", "--data", "{data}", "--out", "{case}/out", "--resume"], "already holds"),
    ("train-out-symlink", symlink_to_user_folder,
     ["train", "--data", "{data}", "--out", "{case}/out", "--overwrite"], "symbolic link"),
    ("train-out-under-a-file", lambda e, c: a_file(c),
     ["train", "--data", "{data}", "--out", "{case}/out/run"], "not a folder"),
    ("train-out-is-cwd-with-user-files", lambda e, c: user_files(c),
     ["train", "--data", "{data}", "--out", "{case}/out/.", "--overwrite"], "already holds"),
    ("train-out-in-proc", nothing, ["train", "--data", "{data}", "--out", "{proc}"], PROC),
    ("train-overwrite-previous-ok", copy_of("train_out"),
     ["train", "--data", "{data}", "--out", "{case}/out", "--overwrite", "--no-progress", *TRAIN_SETS], loads()),
    ("train-resume-finished-ok", copy_of("train_out"),
     ["train", "--data", "{data}", "--out", "{case}/out", "--resume", "--no-progress", *TRAIN_SETS], loads()),
    # import-scan
    ("import-out-is-a-file", lambda e, c: a_file(c),
     ["import-scan", "--checkpoint", "{scan}", "--vocab", "{vocab}", "--out", "{case}/out", "--allow-pickle"],
     "is an existing file"),
    ("import-out-holds-user-files", lambda e, c: user_files(c),
     ["import-scan", "--checkpoint", "{scan}", "--vocab", "{vocab}", "--out", "{case}/out", "--allow-pickle",
      "--overwrite"], "already holds a folder holding"),
    ("import-previous-without-consent", copy_of("import_out"),
     ["import-scan", "--checkpoint", "{scan}", "--vocab", "{vocab}", "--out", "{case}/out", "--allow-pickle"],
     "pass --overwrite"),
    ("import-over-train-output", copy_of("train_out"),
     ["import-scan", "--checkpoint", "{scan}", "--vocab", "{vocab}", "--out", "{case}/out", "--allow-pickle",
      "--overwrite"], "written by causmatch train"),
    ("import-out-in-proc", nothing,
     ["import-scan", "--checkpoint", "{scan}", "--vocab", "{vocab}", "--out", "{proc}", "--allow-pickle"], PROC),
    ("import-overwrite-previous-ok", copy_of("import_out"),
     ["import-scan", "--checkpoint", "{scan}", "--vocab", "{vocab}", "--out", "{case}/out", "--allow-pickle",
      "--overwrite"], loads()),
    ("import-into-empty-folder-ok", empty_folder,
     ["import-scan", "--checkpoint", "{scan}", "--vocab", "{vocab}", "--out", "{case}/out", "--allow-pickle"],
     loads()),
    # convert-butd
    ("butd-out-is-a-file", lambda e, c: a_file(c),
     ["convert-butd", "--tsv", "{tsv}", "--karpathy", "{karpathy}", "--out", "{case}/out", "--splits", "test"],
     "is an existing file"),
    ("butd-out-holds-user-files", lambda e, c: user_files(c),
     ["convert-butd", "--tsv", "{tsv}", "--karpathy", "{karpathy}", "--out", "{case}/out", "--splits", "test",
      "--overwrite"], "already holds a folder holding"),
    ("butd-previous-without-consent", copy_of("butd_out"),
     ["convert-butd", "--tsv", "{tsv}", "--karpathy", "{karpathy}", "--out", "{case}/out", "--splits", "test"],
     "pass --overwrite"),
    ("butd-previous-plus-user-file", copy_of("butd_out", extra=True),
     ["convert-butd", "--tsv", "{tsv}", "--karpathy", "{karpathy}", "--out", "{case}/out", "--splits", "test",
      "--overwrite"], "other entr"),
    ("butd-over-scenes-dataset", copy_of("scenes_out"),
     ["convert-butd", "--tsv", "{tsv}", "--karpathy", "{karpathy}", "--out", "{case}/out", "--splits", "test",
      "--overwrite"], "another dataset"),
    ("butd-out-in-proc", nothing,
     ["convert-butd", "--tsv", "{tsv}", "--karpathy", "{karpathy}", "--out", "{proc}", "--splits", "test"], PROC),
    ("butd-partial-folder-holds-user-file", lambda e, c: (user_files(c, "out/.convert-butd.partial")),
     ["convert-butd", "--tsv", "{tsv}", "--karpathy", "{karpathy}", "--out", "{case}/out", "--splits", "test"],
     "does not write"),
    ("butd-precomp-boxes-exist", with_box_file,
     ["convert-butd", "--precomp-boxes", "{case}/precomp"], "already exists"),
    ("butd-overwrite-keeps-other-split-ok", copy_of("butd_out"),
     ["convert-butd", "--tsv", "{tsv}", "--karpathy", "{karpathy}", "--out", "{case}/out", "--splits", "test",
      "--overwrite", "--fp16"], dataset_loads("dev")),
    # scenes
    ("scenes-out-is-a-file", lambda e, c: a_file(c),
     ["scenes", "--out", "{case}/out", "--test", "2", "--splits", "test", "--quiet"], "is an existing file"),
    ("scenes-out-in-proc", nothing,
     ["scenes", "--out", "{proc}", "--test", "2", "--splits", "test", "--quiet"], PROC),
    ("scenes-out-under-a-file", lambda e, c: a_file(c),
     ["scenes", "--out", "{case}/out/x", "--test", "2", "--splits", "test", "--quiet"], "not a folder"),
    ("scenes-out-holds-user-files", lambda e, c: user_files(c),
     ["scenes", "--out", "{case}/out", "--test", "2", "--splits", "test", "--quiet", "--overwrite"],
     "already holds a folder holding"),
    ("scenes-previous-plus-user-file", copy_of("scenes_out", extra=True),
     ["scenes", "--out", "{case}/out", "--test", "3", "--splits", "test", "--seed", "1", "--bias", "0.5",
      "--quiet", "--overwrite"], "other entr"),
    ("scenes-other-settings-without-consent", copy_of("scenes_out"),
     ["scenes", "--out", "{case}/out", "--test", "3", "--splits", "test", "--seed", "2", "--quiet"],
     "pass --overwrite"),
    ("scenes-other-size-without-consent", copy_of("scenes_out"),
     ["scenes", "--out", "{case}/out", "--test", "2", "--splits", "test", "--seed", "1", "--bias", "0.5",
      "--quiet"], "pass --overwrite"),
    ("scenes-over-butd-dataset", copy_of("butd_out"),
     ["scenes", "--out", "{case}/out", "--test", "2", "--splits", "test", "--quiet", "--overwrite"],
     "another dataset"),
    ("scenes-over-a-checkpoint", copy_of("train_out"),
     ["scenes", "--out", "{case}/out", "--test", "2", "--splits", "test", "--quiet", "--overwrite"],
     "already holds"),
    ("scenes-identical-is-kept-ok", copy_of("scenes_out"),
     ["scenes", "--out", "{case}/out", "--test", "3", "--splits", "test", "--seed", "1", "--bias", "0.5",
      "--quiet"], "unchanged"),
    ("scenes-overwrite-other-seed-ok", copy_of("scenes_out"),
     ["scenes", "--out", "{case}/out", "--test", "2", "--splits", "test", "--seed", "4", "--quiet",
      "--overwrite", "--workers", "1"], scenes_seed(4)),
    ("scenes-interrupted-old-build-ok", lambda e, c: ((c / "out" / "images" / "test").mkdir(parents=True),
                                                     (c / "out" / ".build.lock").write_text("")),
     ["scenes", "--out", "{case}/out", "--test", "2", "--splits", "test", "--seed", "6", "--quiet",
      "--workers", "1"], scenes_seed(6)),
    ("scenes-user-images-folder", lambda e, c: ((c / "out" / "images" / "test").mkdir(parents=True),
                                                (c / "out" / "images" / "test" / "000000.png").write_bytes(b"png")),
     ["scenes", "--out", "{case}/out", "--test", "2", "--splits", "test", "--quiet", "--overwrite"],
     "already holds a folder holding 1 entry"),
    ("scenes-dot-path-into-empty-folder-ok", empty_folder,
     ["scenes", "--out", "{case}/out/../out/.", "--test", "2", "--splits", "test", "--seed", "7", "--quiet",
      "--workers", "1"], scenes_seed(7)),
    ("scenes-into-empty-folder-ok", empty_folder,
     ["scenes", "--out", "{case}/out", "--test", "2", "--splits", "test", "--seed", "5", "--quiet",
      "--workers", "1"], scenes_seed(5)),
    # reading: a NaN/inf checkpoint never gives a number
    ("evaluate-nan-checkpoint", nan_checkpoint(float("nan")),
     ["evaluate", "--checkpoint", "{case}/out", "--data", "{data}", "--no-grounding"], "NaN/inf"),
    ("evaluate-inf-checkpoint", nan_checkpoint(float("inf")),
     ["evaluate", "--checkpoint", "{case}/out", "--data", "{data}", "--no-grounding"], "NaN/inf"),
    ("train-resume-nan-checkpoint", lambda e, c: (copy_of("train_out")(e, c), _nan_last(c)),
     ["train", "--data", "{data}", "--out", "{case}/out", "--resume", "--no-progress", *TRAIN_SETS], "NaN/inf"),
    ("evaluate-json-onto-a-folder", lambda e, c: user_files(c),
     ["evaluate", "--checkpoint", "{train_out}", "--data", "{data}", "--no-grounding", "--json", "{case}/out"],
     "it is a folder"),
    ("evaluate-json-into-proc", nothing,
     ["evaluate", "--checkpoint", "{train_out}", "--data", "{data}", "--no-grounding", "--json", "{proc}/r.json"],
     PROC),
]


def _nan_last(case: Path) -> None:
    from safetensors.torch import load_file, save_file

    f = case / "out" / "last" / "model.safetensors"
    weights = load_file(str(f))
    for name in weights:
        weights[name] = torch.full_like(weights[name], float("nan"))
    save_file(weights, str(f), metadata={"format": "causmatch-checkpoint"})


@pytest.mark.parametrize("name, setup, argv, expect", CLI, ids=[row[0] for row in CLI])
def test_cli_row(env, tmp_path, capsys, name, setup, argv, expect):
    case = tmp_path / "case"
    case.mkdir()
    setup(env, case)
    before = snapshot(case)
    fields = env.fields(case)
    args = [a.format(**fields) for a in argv]
    rc = cli_main(args)
    captured = capsys.readouterr()
    if callable(expect):
        assert rc == 0, captured.err
        expect(case)
        return
    if expect == "unchanged":
        assert rc == 0, captured.err
        assert snapshot(case) == before and "nothing written" in captured.out
        return
    err = captured.err.strip()
    assert rc == 2, (rc, captured.err)
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert expect in err, err
    assert snapshot(case) == before, "a refused command changed the user's files"


# ---------------------------------------------------------------- library rows
def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def _model(env):
    return load_matcher(env.import_out)


def _train(env, out, **kw):
    from causmatch.training.config import resolve_config
    from causmatch.training.trainer import train

    return train(env.data, out, resolve_config(overrides=TINY_OVERRIDES), progress=False, log=lambda m: None, **kw)


def _scenes(out, **kw):
    from causmatch.data.scenes import build_scenes

    return build_scenes(out, sizes={"test": 2}, splits=("test",), workers=1, progress=False, **kw)


def _convert(env, out, **kw):
    from causmatch.convert.butd import convert_butd

    return convert_butd([env.tsv], env.karpathy, out, splits=["test"], **kw)


def _import(env, out):
    from causmatch.convert.scan_checkpoint import import_scan

    return import_scan(env.scan, env.vocab, out, allow_pickle=True)


def _csv(path):
    import pandas as pd

    from causmatch.analysis import export_csv

    return export_csv(pd.DataFrame({"a": [1, 2]}), path)


def _inf_optimizer(env, case):
    shutil.copytree(env.train_out, case / "out")
    f = case / "out" / "last" / "train_state.pt"
    state = torch.load(f, weights_only=True)
    first = next(iter(state["optimizer"]["state"].values()))
    first["exp_avg"] = torch.full_like(first["exp_avg"], float("inf"))
    torch.save(state, f)


def _cache(case):
    from causmatch.analysis.cache import ArrayCache

    return ArrayCache(case / "cache")


def _meta_then_full(env, case):
    from causmatch.data import write_meta

    (case / "out").mkdir()
    write_meta(case / "out", {"name": "mine"})


def _write_meta_full(env, case, mp):
    from causmatch.data import write_meta

    mp.setattr(os, "fsync", _enospc)
    write_meta(case / "out", {"name": "new"})


def _vocab(words):
    from causmatch.data import Vocabulary

    return Vocabulary.from_captions([words])


def _full(mp):
    mp.setattr(os, "fsync", _enospc)


def _no_mkdir(code: int):
    def fail(*_a, **_k):
        raise OSError(code, os.strerror(code))

    def patch(mp):
        mp.setattr(os, "mkdir", fail)
    return patch


# (id, setup(env, case), hostile call(env, case, monkeypatch), error class, substring of the one-line message)
LIB = [
    ("save-matcher-over-user-folder", lambda e, c: user_files(c),
     lambda e, c, mp: save_matcher(_model(e), c / "out"), CheckpointError, "not a checkpoint directory"),
    ("save-matcher-over-file", lambda e, c: a_file(c),
     lambda e, c, mp: save_matcher(_model(e), c / "out"), CheckpointError, "it is a file"),
    ("save-matcher-over-train-output-plus-file", copy_of("train_out", extra=True),
     lambda e, c, mp: save_matcher(_model(e), c / "out", keep=("last",)), CheckpointError, "notes.txt"),
    ("save-matcher-disk-full", copy_of("import_out"),
     lambda e, c, mp: (_full(mp), save_matcher(_model(e), c / "out")), CheckpointError, "disk is full"),
    ("save-matcher-permission-denied", lambda e, c: None,
     lambda e, c, mp: (_no_mkdir(errno.EACCES)(mp), save_matcher(_model(e), c / "out")), CheckpointError,
     "Permission denied"),
    ("scenes-read-only-file-system", lambda e, c: None,
     lambda e, c, mp: (_no_mkdir(errno.EROFS)(mp), _scenes(c / "out")), DataError, "read-only"),
    ("train-read-only-file-system", lambda e, c: None,
     lambda e, c, mp: (_no_mkdir(errno.EROFS)(mp), _train(e, c / "out")), DataError, "read-only"),
    ("convert-butd-permission-denied", lambda e, c: None,
     lambda e, c, mp: (_no_mkdir(errno.EACCES)(mp), _convert(e, c / "out")), DataError, "Permission denied"),
    ("train-library-into-user-folder", lambda e, c: user_files(c),
     lambda e, c, mp: _train(e, c / "out", overwrite=True), DataError, "already holds"),
    ("train-library-previous-no-consent", copy_of("train_out"),
     lambda e, c, mp: _train(e, c / "out"), DataError, "--resume"),
    ("build-scenes-over-file", lambda e, c: a_file(c),
     lambda e, c, mp: _scenes(c / "out", overwrite=True), DataError, "is an existing file"),
    ("ensure-scenes-in-user-folder", lambda e, c: user_files(c),
     lambda e, c, mp: __import__("causmatch.data", fromlist=["ensure_scenes"]).ensure_scenes(c / "out", progress=False),
     DataError, "already holds"),
    ("convert-butd-into-user-folder", lambda e, c: user_files(c),
     lambda e, c, mp: _convert(e, c / "out", overwrite=True), DataError, "already holds"),
    ("convert-butd-previous-no-consent", copy_of("butd_out"),
     lambda e, c, mp: _convert(e, c / "out"), DataError, "--overwrite"),
    ("import-scan-over-user-folder", lambda e, c: user_files(c),
     lambda e, c, mp: _import(e, c / "out"), CheckpointError, "not a checkpoint directory"),
    ("load-matcher-nan-weights", nan_checkpoint(float("nan")),
     lambda e, c, mp: load_matcher(c / "out"), CheckpointError, "NaN/inf"),
    ("load-matcher-inf-weights", nan_checkpoint(float("inf")),
     lambda e, c, mp: load_matcher(c / "out"), CheckpointError, "weight "),
    ("load-train-state-inf-optimizer", _inf_optimizer,
     lambda e, c, mp: load_train_state(c / "out" / "last"), CheckpointError, "optimizer.state"),
    ("write-meta-disk-full", _meta_then_full, _write_meta_full, DataError, "disk is full"),
    ("cache-save-disk-full", lambda e, c: _cache(c).save("entry", "k1", {"a": np.ones(3)}),
     lambda e, c, mp: (_full(mp), _cache(c).save("entry", "k2", {"a": np.zeros(3)})), DataError, "disk is full"),
    ("cache-root-is-a-file", lambda e, c: a_file(c, "cache"),
     lambda e, c, mp: _cache(c), DataError, "cache"),
    ("export-csv-onto-a-folder", lambda e, c: user_files(c),
     lambda e, c, mp: _csv(c / "out"), DataError, "it is a folder"),
    ("export-csv-under-a-file", lambda e, c: a_file(c),
     lambda e, c, mp: _csv(c / "out" / "f.csv"), DataError, "not a folder"),
    ("export-csv-disk-full", lambda e, c: _csv(c / "f.csv"),
     lambda e, c, mp: (_full(mp), _csv(c / "f.csv")), DataError, "disk is full"),
    ("vocab-save-disk-full", lambda e, c: _vocab("a red circle").save(c / "vocab.json"),
     lambda e, c, mp: (_full(mp), _vocab("a blue square").save(c / "vocab.json")), DataError, "disk is full"),
    ("vocab-save-onto-a-folder", lambda e, c: user_files(c),
     lambda e, c, mp: _vocab("a").save(c / "out"), DataError, "it is a folder"),
]


@pytest.mark.parametrize("name, setup, call, error, needle", LIB, ids=[row[0] for row in LIB])
def test_library_row(env, tmp_path, monkeypatch, name, setup, call, error, needle):
    case = tmp_path / "case"
    case.mkdir()
    setup(env, case)
    before = snapshot(case)
    with pytest.raises(CausMatchError) as info:
        call(env, case, monkeypatch)
    monkeypatch.undo()
    assert isinstance(info.value, error), repr(info.value)
    msg = str(info.value)
    assert "\n" not in msg and needle in msg, msg
    assert snapshot(case) == before, "a refused call changed the user's files"


def test_there_are_enough_rows():
    assert len(CLI) + len(LIB) >= 30


# ---------------------------------------------------------------- kill -9 at every step of a save
def _fresh(env: Env, case: Path, template: str) -> None:
    shutil.copytree(getattr(env, template), case / "out")


def _view(out: Path) -> dict:
    """What a reader sees: the output's files (our own working folders excluded)."""
    from causmatch.convert.butd import PARTIAL

    return {k: v for k, v in snapshot(out).items() if not k.startswith(PARTIAL)} if out.is_dir() else {}


def _read(kind: str, out: Path) -> None:
    """Open the output the way its users do (this also finds a version parked by a killed write)."""
    from causmatch.data import load_split

    if kind == "checkpoint":
        load_matcher(out)
    else:
        for split in ("test",):
            load_split(out, split)


CRASH = [  # (id, earlier output to start from, argv (formatted as the CLI rows), reader)
    ("scenes", "scenes_out", ["scenes", "--out", "{case}/out", "--test", "2", "--splits", "test", "--seed", "4",
                              "--quiet", "--overwrite", "--workers", "1"], "dataset"),
    ("convert-butd", "butd_out", ["convert-butd", "--tsv", "{tsv}", "--karpathy", "{karpathy}", "--out",
                                  "{case}/out", "--splits", "test", "--fp16", "--overwrite"], "dataset"),
    ("import-scan", "import_out", ["import-scan", "--checkpoint", "{scan2}", "--vocab", "{vocab}", "--out",
                                   "{case}/out", "--allow-pickle", "--overwrite"], "checkpoint"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, template, argv, reader", CRASH, ids=[row[0] for row in CRASH])
def test_kill_at_every_step_leaves_old_or_new_and_rerun_completes(env, tmp_path, monkeypatch, name, template,
                                                                   argv, reader):
    ref = tmp_path / "ref"
    ref.mkdir()
    _fresh(env, ref, template)
    old = _view(ref / "out")
    log = tmp_path / "steps.log"
    monkeypatch.setenv(CRASH_LOG_ENV, str(log))
    assert cli_main([a.format(**env.fields(ref)) for a in argv]) == 0
    monkeypatch.delenv(CRASH_LOG_ENV)
    new = _view(ref / "out")
    assert new != old
    seen: dict[str, int] = {}
    steps = []
    for step in log.read_text().split():
        seen[step] = seen.get(step, 0) + 1
        steps.append(f"{step}:{seen[step]}")
    assert any(s.startswith(f"{name if name != 'import-scan' else 'checkpoint'}.parked") for s in steps), steps
    for step in steps:
        case = tmp_path / f"case-{step.replace(':', '-')}"
        case.mkdir()
        _fresh(env, case, template)
        args = [a.format(**env.fields(case)) for a in argv]
        proc = subprocess.run([sys.executable, "-m", "causmatch", *args], capture_output=True, text=True,
                              timeout=300, env={**os.environ, CRASH_ENV: step, "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 137, (step, proc.stderr[-2000:])
        _read(reader, case / "out")  # complete and found (a parked version is put back)
        assert _view(case / "out") in (old, new), step
        assert cli_main(args) == 0, step  # the rerun completes and leaves no leftovers
        assert _view(case / "out") == new, step
        assert not [p for p in case.iterdir() if is_leftover(p.name)], step


@pytest.mark.slow
@pytest.mark.parametrize("what", ["cache", "csv"])
def test_kill_while_writing_a_file_keeps_the_old_one(tmp_path, what):
    code = {"cache": "from causmatch.analysis.cache import ArrayCache; import numpy as np; "
                     "ArrayCache(r'{d}').save('e', '{k}', {{'a': np.full(3, {v})}})",
            "csv": "import pandas as pd; from causmatch.analysis import export_csv; "
                   "export_csv(pd.DataFrame({{'a': [{v}]}}), r'{d}/f.csv')"}[what]
    run = lambda k, v, crash=None: subprocess.run(  # noqa: E731
        [sys.executable, "-c", code.format(d=tmp_path, k=k, v=v)], capture_output=True, text=True, timeout=120,
        env={**os.environ, **({CRASH_ENV: crash} if crash else {})})
    assert run("k1", 1).returncode == 0
    before = snapshot(tmp_path)
    assert run("k2", 2, crash=f"{what}.written").returncode == 137
    assert {k: v for k, v in snapshot(tmp_path).items() if not k.endswith(".tmp")} == before
    assert run("k2", 2).returncode == 0
    if what == "cache":
        from causmatch.analysis.cache import ArrayCache

        assert ArrayCache(tmp_path).load("e", "k2")["a"].tolist() == [2, 2, 2]
        assert not list(tmp_path.glob(".*.tmp"))  # the killed writer's temp file is gone
    else:
        assert (tmp_path / "f.csv").read_text() == "a\n2\n"


def test_recovery_touches_only_leftovers_of_writers_that_are_gone(tmp_path):
    """A live writer's stage is left alone; a dead writer's parked version comes back; user names never match."""
    from causmatch.outputs import recover_dir

    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        stage = tmp_path / f".out.causmatch-stage-{live.pid}-0123abcd"
        stage.mkdir()
        parked = tmp_path / f".out.causmatch-old-{dead.pid}-0123abcd"
        parked.mkdir()
        (parked / "config.json").write_text("{}")
        mine = tmp_path / ".out.causmatch-old-notes"  # a user's name that merely looks similar
        mine.mkdir()
        assert recover_dir(tmp_path / "out")
        assert (tmp_path / "out" / "config.json").is_file() and stage.is_dir() and mine.is_dir()
    finally:
        live.stdin.close()
        live.wait()
    recover_dir(tmp_path / "out")
    assert not stage.exists() and mine.is_dir()
    for name in ("out", ".out.tmp", ".out.causmatch-stage-12", "notes.causmatch-old-1-0123abcd"):
        assert not is_leftover(name)
