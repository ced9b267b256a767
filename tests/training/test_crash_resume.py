"""kill -9 at every step of the end-of-epoch save, then --resume: nothing lost, nothing corrupt read.

A reference run records the named steps of the epoch-2 save (``CAUSMATCH_CRASH_LOG``); then, for each
step in turn, ``causmatch train`` runs in a separate process (forked by crash_worker.py) that exits with
status 137 right there (``CAUSMATCH_CRASH_AT=STEP:N``, as a kill -9 would). Afterwards ``OUT`` must load (best and
last), and ``--resume`` must finish the run bit-identically to an uninterrupted one.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from causmatch.checkpoint import load_matcher, load_train_state, read_checkpoint_config
from causmatch.outputs import CRASH_LOG_ENV, is_leftover
from causmatch.training.config import resolve_config
from causmatch.training.distributed import state_digest
from causmatch.training.trainer import train
from tests.training.tiny_data import TINY_OVERRIDES, make_tiny_dataset

EPOCHS = 2
OVERRIDES = [*TINY_OVERRIDES, f"epochs={EPOCHS}"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Bit-identical comparisons across processes need the same thread count in each (sums differ else)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("crash")
    data = make_tiny_dataset(root / "data", n_train=32, n_dev=8, n_test=8)
    log = root / "steps.log"
    os.environ[CRASH_LOG_ENV] = str(log)
    try:
        straight = train(data, root / "ref", resolve_config(overrides=OVERRIDES), progress=False, log=lambda m: None)
    finally:
        del os.environ[CRASH_LOG_ENV]
    steps = log.read_text().split()
    return root, data, straight, steps


def _steps(steps: list[str]) -> list[str]:
    """Each step of the last epoch's save, as STEP:N (its N-th occurrence in the run)."""
    seen: dict[str, int] = {}
    labelled = []
    for s in steps:
        seen[s] = seen.get(s, 0) + 1
        labelled.append(f"{s}:{seen[s]}")
    start = max(i for i, s in enumerate(steps) if s == "best.weights")  # the last epoch's save begins
    return labelled[start:]


@pytest.mark.slow  # the module's setup is a training run
def test_the_save_sequence_has_named_steps(setup):
    _, _, _, steps = setup
    last_save = [s.split(":")[0] for s in _steps(steps)]
    for needed in ("best.weights", "best.staged", "best.parked", "best.published",
                   "last.weights", "last.train_state", "last.staged", "last.parked", "last.published"):
        assert needed in last_save, last_save


@pytest.mark.slow
def test_kill_at_every_save_step_then_resume_is_bit_identical(setup):
    root, data, straight, steps = setup
    sets = [a for s in OVERRIDES for a in ("--set", s)]
    labelled = _steps(steps)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop(CRASH_LOG_ENV, None)
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("crash_worker.py")), str(data), str(root),
                           *labelled, "--", "--no-progress", *sets], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = json.loads(proc.stdout.strip().splitlines()[-1])
    for step in labelled:
        assert status[step] == 137, (step, status)
        out = root / f"run-{step.replace(':', '-')}"
        # right after the crash, before any recovery: a reader finds a complete checkpoint (or none yet)
        for ckpt in (out, out / "last"):
            if (ckpt / "config.json").exists():
                load_matcher(ckpt)
        # --resume finds the complete version (restoring a parked one) and ends where the straight run ends
        resumed = train(data, out, resolve_config(overrides=OVERRIDES), resume=True, progress=False,
                        log=lambda m: None)
        assert resumed["state_sha256"] == straight["state_sha256"], step
        assert resumed["best_rsum"] == straight["best_rsum"] and resumed["best_epoch"] == straight["best_epoch"]
        assert state_digest(load_matcher(out / "last")) == straight["state_sha256"], step
        assert load_train_state(out / "last")["epoch"] == EPOCHS
        assert state_digest(load_matcher(out)) == state_digest(load_matcher(root / "ref")), step
        leftovers = [p.name for p in [*out.parent.iterdir(), *out.iterdir()] if is_leftover(p.name)
                     and p.name.startswith((f".{out.name}.", ".last."))]
        assert not leftovers, (step, leftovers)


@pytest.mark.slow  # the module's setup is a training run
def test_resume_finds_a_parked_last_when_last_is_missing(setup, tmp_path):
    """The reported case: OUT/last/ is gone and only a parked copy survives beside it."""
    _, data, straight, _ = setup
    out = tmp_path / "run"
    train(data, out, resolve_config(overrides=[*TINY_OVERRIDES, "epochs=1"]), progress=False, log=lambda m: None)
    dead = _dead_pid()
    os.replace(out / "last", out / f".last.causmatch-old-{dead}-0badc0de")
    resumed = train(data, out, resolve_config(overrides=OVERRIDES), resume=True, progress=False, log=lambda m: None)
    assert resumed["state_sha256"] == straight["state_sha256"]
    os.replace(out, tmp_path / f".run.causmatch-old-{dead}-0badc0de")  # the whole OUT parked
    assert load_matcher(out) is not None and (out / "last" / "train_state.pt").is_file()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.slow  # the module's setup is a training run
def test_overwrite_never_mixes_the_old_runs_last_with_the_new_best(setup, tmp_path):
    """--overwrite: a kill between the first new best and the first new last must not leave the old run's last/."""
    root, data, _, _ = setup
    out = tmp_path / "run"
    train(data, out, resolve_config(overrides=[*TINY_OVERRIDES, "epochs=1", "lr=0.01"]), progress=False,
          log=lambda m: None)
    old_last = load_train_state(out / "last")
    sets = [a for s in [*TINY_OVERRIDES, "epochs=1"] for a in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CAUSMATCH_CRASH_AT": "last.weights"}
    proc = subprocess.run([sys.executable, "-m", "causmatch", "train", "--data", str(data), "--out", str(out),
                           "--overwrite", "--no-progress", *sets], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 137, proc.stderr[-2000:]
    assert old_last is not None and not (out / "last").exists()  # the new best alone, never the old last/
    assert load_matcher(out).config.embed_size == 16
    assert read_checkpoint_config(out)["train"]["lr"] != 0.01  # the new run's best
