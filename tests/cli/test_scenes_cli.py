import subprocess
import sys

import pytest

from causmatch.cli import main
from causmatch.data import load_split, read_meta


def test_scenes_command_builds_a_loadable_folder(tmp_path, capsys):
    out = tmp_path / "s"
    rc = main(["scenes", "--out", str(out), "--train", "5", "--dev", "2", "--test", "5", "--seed", "3",
               "--bias", "0.5", "--workers", "1", "--quiet"])
    assert rc == 0
    assert "wrote train, dev, test" in capsys.readouterr().out
    assert load_split(out, "test").n_captions == 25
    assert read_meta(out)["generator"]["bias"] == 0.5 and read_meta(out)["generator"]["seed"] == 3


def test_scenes_command_splits_option(tmp_path):
    assert main(["scenes", "--out", str(tmp_path), "--test", "3", "--splits", "test", "--workers", "1",
                 "--quiet"]) == 0
    assert sorted(read_meta(tmp_path)["splits"]) == ["test"]


def test_bad_options_print_one_line_and_exit_2(tmp_path, capsys):
    for argv, needle in ([["--bias", "1.5"], "--bias must lie in [0, 1]"],
                         [["--splits", "train,valid"], "unknown scenes split(s) valid"],
                         [["--test", "0", "--splits", "test"], "at least one image"],
                         [["--seed", "-1"], "--seed must be a whole number >= 0, got -1"],
                         [["--workers", "0"], "--workers must be a whole number >= 1"]):
        assert main(["scenes", "--out", str(tmp_path), "--quiet", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and needle in err and err.count("\n") == 1


@pytest.mark.slow  # a Python process that imports torch
def test_no_traceback_from_the_real_command_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "causmatch", "scenes", "--out", str(tmp_path), "--bias", "-1"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == ["error: --bias must lie in [0, 1], got -1.0"]
