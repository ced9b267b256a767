"""Process-level settings: applied only by ``runtime.configure()`` (glibc's allocator, the one-thread warm-up
of MKL's vector maths, OpenMP's wait policy); importing the library changes nothing outside it."""
import json
import subprocess
import sys

import pytest

from causmatch import runtime

ENV = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _run(code: str, **env) -> str:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(ENV, **env))
    return res.stdout.strip().splitlines()[-1]


def test_tune_allocator_applies_once_and_can_be_turned_off(monkeypatch):
    monkeypatch.setattr(runtime, "_done", None)
    monkeypatch.setenv("CAUSMATCH_TUNE_MALLOC", "0")
    assert runtime.tune_allocator() is False
    monkeypatch.setattr(runtime, "_done", None)
    monkeypatch.delenv("CAUSMATCH_TUNE_MALLOC")
    assert runtime.tune_allocator() is True  # Linux with glibc, as CI
    assert runtime.tune_allocator() is True  # cached


# Imports every module of the package with the process watched: the environment, any C-library function
# looked up through ctypes (mallopt), and torch's sqrt/exp/log (the MKL warm-up) must stay untouched. Then
# builds a Matcher, which runs the warm-up (a correctness guard) and nothing else.
IMPORT_ALL = r"""
import ctypes, importlib, json, os, pkgutil, sys
import torch
import cv2  # OpenCV's own loader adds to LD_LIBRARY_PATH when imported: its doing, not the library's
looked_up, calls = [], []
real_getitem = ctypes.CDLL.__getitem__
def getitem(self, name):
    looked_up.append(name)
    return real_getitem(self, name)
ctypes.CDLL.__getitem__ = getitem
for fn in ("sqrt", "exp", "log"):
    real = getattr(torch, fn)
    setattr(torch, fn, lambda *a, _f=real, _n=fn, **k: (calls.append(_n), _f(*a, **k))[1])
def torch_state():
    return [torch.get_num_threads(), str(torch.get_default_dtype()), torch.is_grad_enabled(), os.getcwd()]
before, torch_before = dict(os.environ), torch_state()
import causmatch
mods = [m.name for m in pkgutil.walk_packages(causmatch.__path__, "causmatch.") if m.name != "causmatch.__main__"]
for m in mods:
    importlib.import_module(m)
import causmatch.runtime as rt
def changed_env():
    return sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
changed = changed_env()
out = {"modules": len(mods), "changed": changed, "looked_up": looked_up, "calls": sorted(set(calls)),
       "torch_state_kept": torch_state() == torch_before,
       "vml_warm": rt._vml_warm, "tuned": rt._done, "configured": rt._configured}
from causmatch.data import Vocabulary
from causmatch.models import Matcher, MatcherConfig, TextConfig
Matcher(MatcherConfig(img_dim=8, embed_size=8, text=TextConfig(word_dim=8)), Vocabulary.from_captions(["a b"]))
out["after_matcher"] = {"vml_warm": rt._vml_warm, "calls": sorted(set(calls)), "tuned": rt._done,
                        "changed": changed_env()}
print(json.dumps(out))
"""


def test_importing_every_module_changes_nothing_outside_the_library():
    out = json.loads(_run(IMPORT_ALL))
    assert out["modules"] > 40  # really every module (cli, analysis, training, models, data, convert...)
    assert out["changed"] == [], f"importing causmatch changed the environment: {out['changed']}"
    assert out["looked_up"] == [], f"importing causmatch called into the C library: {out['looked_up']}"
    assert out["calls"] == [] and out["vml_warm"] is False, "importing causmatch ran MKL's warm-up"
    assert out["tuned"] is None and out["configured"] is None and out["torch_state_kept"]
    # A Matcher warms MKL's kernels when built (a correctness guard, without configure()); nothing else.
    assert out["after_matcher"] == {"vml_warm": True, "calls": ["exp", "log", "sqrt"], "tuned": None, "changed": []}


def test_configure_applies_every_setting_once_and_the_cli_calls_it():
    code = ("import json, os, sys, causmatch.runtime as rt; from causmatch.cli import main; "
            "t = 'torch' in sys.modules; main(['--help']); a = rt.configure(); "
            "print(json.dumps([t, a, rt.configure(), os.environ['OMP_WAIT_POLICY'], 'torch' in sys.modules]))")
    torch_before, a, b, policy, torch_after = json.loads(_run(code))
    assert a == b == {"omp_wait_policy": "PASSIVE", "omp_wait_policy_effective": True, "threads": 1,
                      "threads_from": "OMP_NUM_THREADS", "vml_warm": True,
                      "allocator_tuned": True}  # Linux with glibc, as CI; the CLI applied it before torch
    assert not torch_before and torch_after and policy == "PASSIVE"


def test_configure_keeps_the_users_settings():
    code = ("import json, torch, causmatch.runtime as rt; a = rt.configure(); "
            "from causmatch.data import Vocabulary; from causmatch.models import Matcher, MatcherConfig, TextConfig; "
            "Matcher(MatcherConfig(img_dim=8, embed_size=8, text=TextConfig(word_dim=8)), "
            "Vocabulary.from_captions(['a b'])); print(json.dumps([a, rt._vml_warm]))")
    out, warm = json.loads(_run(code, OMP_WAIT_POLICY="ACTIVE", CAUSMATCH_WARM_VML="0", CAUSMATCH_TUNE_MALLOC="0"))
    assert out == {"omp_wait_policy": "ACTIVE", "omp_wait_policy_effective": False, "threads": 1,
                   "threads_from": "OMP_NUM_THREADS", "vml_warm": False,
                   "allocator_tuned": False}  # torch was imported first: the policy came too late
    assert warm is False  # CAUSMATCH_WARM_VML=0 holds for the Matcher's guard too


def test_configure_from_many_threads_at_once_applies_once(monkeypatch):
    import threading

    monkeypatch.setattr(runtime, "_configured", None)
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # as conftest: this process keeps its settings
    calls, real = [], runtime.warm_up_vml
    monkeypatch.setattr(runtime, "warm_up_vml", lambda: (calls.append(1), real())[1])
    results = []
    threads = [threading.Thread(target=lambda: results.append(runtime.configure())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 8 and all(r == results[0] for r in results) and calls == [1]


# ---------------------------------------------------------------- threads


def _threads_env(monkeypatch, *, omp=None, ours=None, load=0.0, cores=2):
    for name, value in (("OMP_NUM_THREADS", omp), ("CAUSMATCH_THREADS", ours)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(runtime, "usable_cores", lambda: cores)


def test_without_a_setting_openmps_default_stays(monkeypatch):
    """Passive waiting, not fewer threads, is what kept 2 threads from collapsing next to a competing process
    (docs/benchmarks.md): the load does not lower the count."""
    for load, cores in ((0.0, 2), (1.0, 2), (30.0, 2), (2.2, 16)):
        _threads_env(monkeypatch, load=load, cores=cores)
        assert runtime.default_threads() == (cores, "default"), (load, cores)


def test_the_users_thread_settings_win(monkeypatch, capsys):
    _threads_env(monkeypatch, omp="3", ours="1", load=30.0)
    assert runtime.default_threads() == (3, "OMP_NUM_THREADS")  # OpenMP's own variable first, left as it is
    _threads_env(monkeypatch, omp="4,2")
    assert runtime.default_threads() == (4, "OMP_NUM_THREADS")
    _threads_env(monkeypatch, omp="many")
    assert runtime.default_threads() == (None, "OMP_NUM_THREADS")  # OpenMP's business: not ours to judge
    _threads_env(monkeypatch, ours="2", load=30.0)
    assert runtime.default_threads() == (2, "CAUSMATCH_THREADS")
    _threads_env(monkeypatch, ours="all", load=30.0, cores=8)
    assert runtime.default_threads() == (8, "CAUSMATCH_THREADS")
    assert capsys.readouterr().err == ""


def test_a_bad_thread_setting_is_one_line_and_falls_back(monkeypatch, capsys):
    for bad in ("0", "-1", "two", "1.5"):
        _threads_env(monkeypatch, ours=bad, load=0.0, cores=2)
        assert runtime.default_threads() == (2, "default")
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "CAUSMATCH_THREADS" in err and "keeping the default (2 threads)" in err


@pytest.mark.slow  # two fresh processes import torch
def test_configure_sets_the_thread_count_torch_uses():
    code = ("import json, os, causmatch.runtime as rt; a = rt.configure(); import torch; "
            "print(json.dumps([a['threads'], a['threads_from'], os.environ.get('OMP_NUM_THREADS'), "
            "torch.get_num_threads()]))")
    env = {k: v for k, v in ENV.items() if k != "OMP_NUM_THREADS"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(env, CAUSMATCH_THREADS="1"))
    assert json.loads(res.stdout.strip().splitlines()[-1]) == [1, "CAUSMATCH_THREADS", "1", 1]
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    threads, source, omp, _ = json.loads(res.stdout.strip().splitlines()[-1])
    assert source == "default" and threads == runtime.usable_cores() and omp is None  # OpenMP's default left alone
