"""ruff (pinned in requirements.txt, configured in pyproject.toml) finds nothing in the code."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PATHS = ["causmatch", "app", "tests", "benchmarks", "scripts"]


def _ruff() -> str:
    beside = Path(sys.executable).with_name("ruff")  # the venv's own, as .ci/setup installs it
    found = str(beside) if beside.exists() else shutil.which("ruff")
    assert found, "ruff is not installed: run `bash .ci/setup` (it is pinned in requirements.txt)"
    return found


def test_ruff_check_is_clean():
    proc = subprocess.run([_ruff(), "check", "--no-cache", "--output-format", "concise", *PATHS],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"`ruff check {' '.join(PATHS)}` found problems:\n{proc.stdout}{proc.stderr}"
