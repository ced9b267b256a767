"""Two CPU processes (gloo) under torchrun: training stays in sync, evaluation gathers the same matrix."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.training.tiny_data import TINY_OVERRIDES

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "dist_eval_worker.py"


def _torchrun(args, tmp_path, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_two_process_training_keeps_replicas_identical(tiny_data, tmp_path):
    out = tmp_path / "ckpt"
    sets = [a for s in TINY_OVERRIDES for a in ("--set", s)]
    proc = _torchrun(["-m", "causmatch", "train", "--data", str(tiny_data), "--out", str(out),
                      "--no-progress", *sets, "--set", "batch_size=8"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    digests = dict(re.findall(r"rank (\d): final state sha256 ([0-9a-f]{64})", proc.stderr))
    assert set(digests) == {"0", "1"} and digests["0"] == digests["1"], proc.stderr[-3000:]
    assert (out / "model.safetensors").is_file() and (out / "last" / "train_state.pt").is_file()
    saved = json.loads((out / "config.json").read_text())
    assert "world_size" in json.dumps(saved)  # the run's extra info says it was distributed

    from causmatch.checkpoint import load_matcher
    from causmatch.training.distributed import state_digest
    assert state_digest(load_matcher(out / "last")) == digests["0"]  # rank 0 saved the synced state


@pytest.mark.slow
def test_two_process_similarity_matrix_equals_single_process(tmp_path):
    proc = _torchrun([str(WORKER), str(tmp_path / "dist.npy")], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = subprocess.run([sys.executable, str(WORKER), str(tmp_path / "single.npy")], cwd=tmp_path,
                            env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=120)
    assert single.returncode == 0, single.stderr[-3000:]
    dist_sims, single_sims = np.load(tmp_path / "dist.npy"), np.load(tmp_path / "single.npy")
    assert dist_sims.shape == single_sims.shape == (13, 26)
    np.testing.assert_allclose(dist_sims, single_sims, rtol=0, atol=1e-6)
    assert (tmp_path / "dist.npy.rank1").read_text() == "same"  # every rank got the full matrix
