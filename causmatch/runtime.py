"""Process-level settings, applied only when asked: :func:`configure`.

Importing :mod:`causmatch` (any module) changes nothing outside the library: no environment variable, no
allocator setting, no MKL call. Programs — the ``causmatch`` command line, the app, the benchmarks — call
:func:`configure` once, first thing (before ``torch`` is imported, for the OpenMP setting to count); it is
idempotent and applies these settings:

* the number of OpenMP threads, only when asked (:func:`default_threads`): ``CAUSMATCH_THREADS=N`` (or ``all``)
  sets it unless ``OMP_NUM_THREADS`` is set; otherwise OpenMP's default (every usable core) stays. Measured on
  the 2-core box with passive waiting, 2 threads were never slower than 1, alone or next to a competing
  CPU-bound process; the collapse seen on shared boxes came from spinning workers, which the next setting stops
  (docs/benchmarks.md, "Threads on a shared box").
* ``OMP_WAIT_POLICY=PASSIVE`` as a default (a value the user set wins): idle OpenMP workers spin by default
  and steal the core from the thread doing the work on small or shared machines; passive waiting made
  explanations ~10x faster on a 2-core box (docs/benchmarks.md). OpenMP reads it when torch's runtime is
  loaded, so it counts only if ``torch`` was not imported before.
* :func:`warm_up_vml`: MKL's vector maths once on one thread (a correctness guard; :class:`Matcher
  <causmatch.models.matcher.Matcher>` also calls it when built, so library users get it without
  :func:`configure`).
* :func:`tune_allocator`: glibc keeps freed map-sized buffers (speed only).

Scoring a split allocates the same few map-sized buffers (``[i, c, W, R]`` floats, 27 MiB at 128 × 128
shards, 12 words, 36 regions) for every shard. With glibc's defaults a freed buffer of that size goes back
to the operating system (it was ``mmap``-ed, or it sits at the top of the heap above the trim threshold),
so the next shard touches fresh pages and pays one page fault per 4 KiB: about 14,000 faults per shard,
which cost as much as the arithmetic after the GEMM on the benchmark CPU (docs/benchmarks.md). PyTorch's
CPU tuning guide suggests preloading jemalloc or tcmalloc for the same reason; :func:`tune_allocator` is the
in-process equivalent with the allocator already there: buffers up to 32 MiB (glibc's maximum for this
setting) come from the heap, and up to 512 MiB of freed heap is kept for reuse instead of being returned.

Set ``CAUSMATCH_TUNE_MALLOC=0`` to leave the allocator alone, ``CAUSMATCH_WARM_VML=0`` to skip the warm-up
(to reproduce the problem it guards against).

:func:`check_memory` refuses, before allocating, a request whose estimated size exceeds the memory the
machine has available (:func:`available_memory`).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # glibc rejects larger values (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 512 * 2**20

_done: bool | None = None
_configured: dict | None = None
_lock = threading.RLock()  # the app's sessions are threads: the first calls may come from two at once


def configure() -> dict:
    """Apply the process-level settings (see the module docstring); idempotent. Returns what was applied:
    ``{"omp_wait_policy": value, "omp_wait_policy_effective": bool, "threads": int | None, "threads_from": str,
    "vml_warm": bool, "allocator_tuned": bool}`` (``threads_from``: ``OMP_NUM_THREADS``, ``CAUSMATCH_THREADS``
    or ``default``).
    """
    global _configured
    with _lock:
        if _configured is None:
            torch_loaded = "torch" in sys.modules  # OpenMP read its settings when torch's runtime was loaded
            policy = os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            threads, source = default_threads()
            if source == "CAUSMATCH_THREADS":  # the user's OpenMP setting and OpenMP's default are left alone
                os.environ["OMP_NUM_THREADS"] = str(threads)  # read when torch loads
                if torch_loaded:
                    import torch

                    torch.set_num_threads(threads)
            warm_up_vml()
            _configured = {"omp_wait_policy": policy, "omp_wait_policy_effective": not torch_loaded,
                           "threads": threads, "threads_from": source, "vml_warm": _vml_warm,
                           "allocator_tuned": tune_allocator()}
        return dict(_configured)


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where known)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> tuple[int | None, str]:
    """``(threads, where the number came from)``: ``OMP_NUM_THREADS`` if the user set it (left to OpenMP; the
    number is its first entry, None if that is not a number); else ``CAUSMATCH_THREADS`` (a whole number >= 1,
    or ``all`` for every usable core); else ``(usable cores, "default")`` — OpenMP's own default, left alone. A
    ``CAUSMATCH_THREADS`` that is neither is reported in one line on stderr and the default is kept (this runs
    before any error panel or command, so it must not raise)."""
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp:
        try:
            return int(omp.split(",")[0]), "OMP_NUM_THREADS"  # OpenMP takes a list per nesting level
        except ValueError:
            return None, "OMP_NUM_THREADS"
    cores = usable_cores()
    raw = os.environ.get("CAUSMATCH_THREADS", "").strip()
    if raw.lower() == "all":
        return cores, "CAUSMATCH_THREADS"
    if raw:
        try:
            if int(raw) >= 1:
                return int(raw), "CAUSMATCH_THREADS"
        except ValueError:
            pass
        print(f"warning: CAUSMATCH_THREADS={raw!r} is not a whole number >= 1 or 'all'; keeping the default "
              f"({cores} threads)", file=sys.stderr)
    return cores, "default"


def libc() -> ctypes.CDLL | None:
    """The C library the process runs on (None where it cannot be loaded)."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def tune_allocator() -> bool:
    """Keep freed map-sized buffers in the process (glibc only; once per process). True when applied."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if os.environ.get("CAUSMATCH_TUNE_MALLOC", "1") == "0" or not sys.platform.startswith("linux"):
        return _done
    mallopt = getattr(libc(), "mallopt", None)
    if mallopt is None:  # not glibc (musl has no mallopt)
        return _done
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done


_vml_warm = False


def warm_up_vml() -> None:
    """Call torch's MKL-backed unary kernels (sqrt, exp, log) once on one thread, before any threaded use.

    PyTorch's CPU build computes these through Intel MKL's vector math library (``vsSqrt``, ``vsExp``,
    ``vsLn``), called from each OpenMP thread of a ``parallel_for``. On the 2-core dev box the first threaded
    ``sqrt_`` of a process sometimes returned values off by ~2e-4 relative (an approximate square root) on
    one thread's half of the tensor, while its input was bit-identical — about 1 process in 10
    (``benchmarks/check_first_call.py``), which put 3.7e-5 errors into the first shard of a similarity
    matrix. One small single-threaded call of each kernel first removed it (0 of 40 processes). We think
    MKL's lazy per-CPU dispatch is not safe when its first calls come from two threads at once; not
    confirmed in MKL's sources. ``CAUSMATCH_WARM_VML=0`` skips this (to reproduce the problem).
    """
    global _vml_warm
    if _vml_warm or os.environ.get("CAUSMATCH_WARM_VML", "1") == "0":
        return
    import torch

    with _lock:  # one thread makes the first calls, the others wait for it
        if not _vml_warm:
            x = torch.full((64,), 0.5)  # far below parallel_for's grain size: runs on the calling thread only
            torch.sqrt(x), torch.exp(x), torch.log(x)
            _vml_warm = True


def available_memory() -> int | None:
    """Bytes of memory the machine can still give this process (Linux ``MemAvailable``; else free pages
    via ``os.sysconf``); None where neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(nbytes: float, what: str, fix: str) -> None:
    """Refuse (one-line ConfigError) a request whose estimated ``nbytes`` exceed the available memory,
    before anything is allocated. ``what`` names the request, ``fix`` says how to make it smaller."""
    avail = available_memory()
    if avail is None or nbytes <= avail:
        return
    from causmatch.errors import ConfigError

    raise ConfigError(f"{what} needs about {_gib(nbytes)} of memory but only {_gib(avail)} is available — {fix}")


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
