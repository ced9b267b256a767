"""Process-level settings: glibc's allocator and the one-thread warm-up of MKL's vector maths."""
import subprocess
import sys

from causmatch import runtime


def test_tune_allocator_applies_once_and_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(runtime, "_done", None)
    monkeypatch.setenv("CAUSMATCH_TUNE_MALLOC", "0")
    assert runtime.tune_allocator() is False
    monkeypatch.setattr(runtime, "_done", None)
    monkeypatch.delenv("CAUSMATCH_TUNE_MALLOC")
    assert runtime.tune_allocator() is True  # Linux with glibc, as CI
    assert runtime.tune_allocator() is True  # cached


def test_attention_import_warms_mkl_kernels_unless_turned_off():
    code = "import causmatch.models.attention, causmatch.runtime as r; print(r._vml_warm)"
    on = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    off = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"CAUSMATCH_WARM_VML": "0", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert on.stdout.strip() == "True" and off.stdout.strip() == "False"
