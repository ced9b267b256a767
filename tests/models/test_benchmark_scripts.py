"""The counterfactual benchmarks' own code, run on the CPU at tiny shapes (their figures are in
docs/benchmarks.md): the GPU script a lead runs on a lent machine, and the CPU ratio benchmark."""
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


TINY = ["--device", "cpu", "--images", "10", "--captions", "21", "--regions", "5", "--words", "6", "--dim", "16",
        "--shard", "8", "--ref-shards", "2", "--repeat", "1"]


def _check_gpu_script(out, compiled: bool):
    kinds = ["random", "uniform", "reversed", "shuffle"]
    assert list(out["ms"]) == ["factual fast"] + (["factual compiled"] if compiled else []) + kinds
    assert all(v > 0 for v in out["ms"].values()) and out["scan_ms"] > 0
    for k in kinds + ["SCAN reference (its blocks)"] + (["factual compiled"] if compiled else []):
        assert out["max_abs_diff"][k] <= 1e-5, k  # every kind equals the eager path; ours equals SCAN's
    assert out["ratio_to_factual_fast"]["factual fast"] == 1.0


def test_gpu_script_runs_on_the_cpu(tmp_path, capsys):
    out = _load("gpu_counterfactual").main(TINY + ["--no-compiled", "--json", str(tmp_path / "r.json")])
    _check_gpu_script(out, compiled=False)
    printed = capsys.readouterr().out
    assert "SCAN reference" in printed and printed.strip().splitlines()[-1].startswith("JSON {")
    assert (tmp_path / "r.json").read_text().startswith("{")


@pytest.mark.slow  # compiles the factual graph (tens of seconds)
def test_gpu_script_with_the_compiled_path_on_the_cpu():
    _check_gpu_script(_load("gpu_counterfactual").main(TINY), compiled=True)


@pytest.mark.slow  # two shapes, four kinds, two repeats: over 10 s on a loaded 2-core box
def test_counterfactual_ratio_benchmark_at_a_tiny_size(capsys):
    out = _load("bench_counterfactual").main(["--shape", "both", "--images", "6", "--captions", "9",
                                              "--shard-images", "4", "--shard-captions", "5", "--repeat", "2"])
    for shape in ("scenes", "f30k"):
        kinds = out["results"][shape]["kinds"]
        assert set(kinds) == {"random", "uniform", "reversed", "shuffle"}
        for row in kinds.values():
            assert len(row["ratios"]) == 2 and row["ratio"] > 0 and row["max_abs_diff_first_shard"] <= 1e-5
    assert out["results"]["scenes"]["shape"]["regions"] == 12 and out["results"]["f30k"]["shape"]["dim"] == 1024
    assert "CF / factual" in capsys.readouterr().out
