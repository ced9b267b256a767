"""``causmatch cache``: builds the entries the analysis session reads; one-line refusals; torchrun."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from causmatch.checkpoint import load_matcher, save_matcher
from causmatch.cli import main as cli_main
from tests.analysis.analysis_helpers import tiny_matcher, write_tiny

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def setup(tmp_path):
    data, ckpt = tmp_path / "data", tmp_path / "ckpt"
    write_tiny(data, n_images=7, k=2)
    save_matcher(tiny_matcher(), ckpt)
    return ckpt, data, tmp_path / "cache"


def run(capsys, *argv):
    code = cli_main(["cache", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _reader(ckpt, data, cache):
    from causmatch.analysis import AnalysisSession
    from causmatch.data import load_split
    return AnalysisSession(load_matcher(ckpt), load_split(data, "test"), checkpoint_path=ckpt, cache_dir=cache,
                           compute="never")


def test_cache_builds_what_the_session_reads(setup, capsys):
    ckpt, data, cache = setup
    code, out, err = run(capsys, "--checkpoint", str(ckpt), "--data", str(data), "--cache", str(cache),
                         "--interventions", "random,uniform,mask-regions=0,1", "--samples", "2", "--seed", "4",
                         "--shard", "3")
    assert code == 0, err
    assert out.count("built") == 1 + 4 + 8 and "cached" not in out
    reader = _reader(ckpt, data, cache)  # "never": anything missing would raise
    from causmatch.analysis import AnalysisSession
    from causmatch.data import load_split
    fresh = AnalysisSession(load_matcher(ckpt), load_split(data, "test"), compute="always")
    for kind in (None, "random", "uniform", "mask-regions=0,1"):
        np.testing.assert_allclose(reader.similarity(kind, samples=2, seed=4),
                                   fresh.similarity(kind, samples=2, seed=4), rtol=0, atol=1e-6)
        assert len(reader.failure_table("i2t", kind or "uniform", samples=2, seed=4)) == 7
    code, out, err = run(capsys, "--checkpoint", str(ckpt), "--data", str(data), "--cache", str(cache),
                         "--interventions", "random,uniform,mask-regions=0,1", "--samples", "2", "--seed", "4")
    assert code == 0 and "built" not in out and out.count("cached") == 13, out


def test_cache_default_folder_is_the_apps(setup, capsys, monkeypatch):
    ckpt, data, cache = setup
    monkeypatch.setenv("CAUSMATCH_CACHE", str(cache))
    code, _, err = run(capsys, "--checkpoint", str(ckpt), "--data", str(data), "--interventions", "uniform",
                       "--quiet")
    assert code == 0 and err == ""
    assert len(_reader(ckpt, data, cache).failure_table("t2i", "uniform")) == 14


@pytest.mark.parametrize("extra, message", [
    (["--interventions", "random,bogus"], "unknown intervention 'bogus'"),
    (["--interventions", "random,,uniform"], "empty entry"),
    (["--interventions", "mask-regions=0,99"], "mask-regions"),
    (["--samples", "0"], "samples"),
    (["--shard", "0"], "--shard must be in"),
    (["--split", "nope"], "nope"),
])
def test_cache_refusals_are_one_line(setup, capsys, extra, message):
    ckpt, data, cache = setup
    code, out, err = run(capsys, "--checkpoint", str(ckpt), "--data", str(data), "--cache", str(cache), *extra)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert not cache.exists() or not list(cache.glob("*.npz"))


def test_cache_refuses_a_file_as_folder_and_keeps_it(setup, capsys, tmp_path):
    ckpt, data, _ = setup
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    code, _, err = run(capsys, "--checkpoint", str(ckpt), "--data", str(data), "--cache", str(target))
    assert code == 2 and "is a file" in err and err.count("\n") == 1
    assert target.read_text() == "mine"


def test_cache_refuses_non_finite_features(setup, capsys):
    ckpt, data, cache = setup
    path = next(data.glob("test_*.npy"))
    feats = np.load(path, mmap_mode="r+")
    feats[3, 0, 0] = np.nan
    feats.flush()
    del feats
    code, _, err = run(capsys, "--checkpoint", str(ckpt), "--data", str(data), "--cache", str(cache))
    assert code == 2 and err.count("\n") == 1 and ("NaN" in err or "finite" in err), err


def test_cache_refuses_cuda_without_gpu(setup, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    ckpt, data, cache = setup
    code, _, err = run(capsys, "--checkpoint", str(ckpt), "--data", str(data), "--cache", str(cache),
                       "--device", "cuda")
    assert code == 2 and "no CUDA GPU" in err


@pytest.mark.slow
def test_two_processes_write_the_single_process_cache(setup, tmp_path):
    ckpt, data, _ = setup
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    args = ["-m", "causmatch", "cache", "--checkpoint", str(ckpt), "--data", str(data), "--interventions",
            "random,shuffle", "--samples", "3", "--shard", "2", "--quiet"]
    dist = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           *args, "--cache", str(tmp_path / "dist")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert dist.returncode == 0, dist.stderr[-3000:]
    assert "2 process(es)" in dist.stdout
    single = subprocess.run([sys.executable, *args, "--cache", str(tmp_path / "single")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    names = sorted(p.name for p in (tmp_path / "single").glob("*.npz"))
    assert names == sorted(p.name for p in (tmp_path / "dist").glob("*.npz")) and len(names) == 1 + 3 + 6
    assert not list((tmp_path / "dist").glob("*.tmp*"))
    for name in names:
        with np.load(tmp_path / "single" / name) as a, np.load(tmp_path / "dist" / name) as b:
            assert a.files == b.files
            for k in a.files:
                if a[k].dtype.kind == "f":
                    np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-6, err_msg=f"{name}:{k}")
                else:
                    np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}:{k}")
