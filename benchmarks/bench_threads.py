"""OpenMP threads on a shared box: 1 vs 2 threads, with and without a competing CPU-bound process.

For each condition — no competitor, then one competitor (a Python busy loop this script starts in a subprocess
and kills at the end) — and each thread count, a fresh child process (``OMP_NUM_THREADS`` must be set before
torch loads) calls :func:`causmatch.runtime.configure` as the CLI and the app do (so OpenMP waits passively
unless ``OMP_WAIT_POLICY`` is set) and times, medians of ``--repeat`` runs after a warm-up:

* the factual matrix of a scenes-shaped gallery (``--images`` × ``--captions``, R 12 with the demo's region
  counts, the demo's caption lengths, D 256, SCAN's t2i attention, 128 × 128 shards, the ``fast`` path);
* the random counterfactual matrix of the same gallery (``fast_counterfactual``);
* one explanation (``causmatch.analysis.explain.explain_pair``: a pair under random attention, 8 draws, per-word
  and per-region effects — the app's interactive call).

It prints a table (seconds, and 2 threads / 1 thread per row and condition) and one ``JSON {...}`` line. The
competitor takes one core: on a 2-core box that is the situation of the app next to a training job.

    .venv/bin/python benchmarks/bench_threads.py                      # about 2–5 minutes on 2 cores
    .venv/bin/python benchmarks/bench_threads.py --images 64 --captions 256 --repeat 1   # quick
    .venv/bin/python benchmarks/bench_threads.py --wait-policy ACTIVE   # spinning workers, OpenMP's default
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WHAT = ("factual matrix", "random CF matrix", "explain one pair")


def child(args) -> dict:
    """Runs in the child process: the timings of :data:`WHAT` under this process's thread setting."""
    from causmatch.runtime import configure

    applied = configure()
    import torch

    sys.path.insert(0, str(HERE))
    import bench_counterfactual as B

    from causmatch.analysis.explain import explain_pair
    from causmatch.interventions import Random
    from causmatch.models import sharded_similarity

    counts = B.scenes_counts(args.images, args.captions, 12)
    img, txt = B.inputs(args.images, args.captions, 12, (2, 19), 256, counts)
    m = B.matcher(256, "cpu")
    iv = Random(seed=0)
    one_img, one_txt = img[slice(0, 1)], txt[slice(0, 1)].trimmed()
    calls = {
        "factual matrix": lambda: sharded_similarity(m, img, txt, None),
        "random CF matrix": lambda: sharded_similarity(m, img, txt, iv),
        "explain one pair": lambda: explain_pair(m, one_img, one_txt, iv, samples=8,
                                                 pair_ids=(torch.tensor([0]), torch.tensor([0]))),
    }
    out = {}
    for name, call in calls.items():
        call()  # warm-up
        ts = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            call()
            ts.append(time.perf_counter() - t0)
        out[name] = statistics.median(ts)
    return dict(times=out, threads=torch.get_num_threads(), omp_wait_policy=applied["omp_wait_policy"])


def busy_loop() -> subprocess.Popen:
    """A CPU-bound competitor: one Python process spinning (killed by the caller)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def run_child(threads: int, args) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if args.wait_policy:
        env["OMP_WAIT_POLICY"] = args.wait_policy  # configure() keeps a value the user set
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--images", str(args.images),
           "--captions", str(args.captions), "--repeat", str(args.repeat)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("CHILD ")]
    if res.returncode != 0 or not lines:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise SystemExit(f"error: the {threads}-thread child failed: {tail}")
    return json.loads(lines[-1][len("CHILD "):])


def main(argv=None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=128)
    p.add_argument("--captions", type=int, default=640)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", default="1,2", help="thread counts to compare")
    p.add_argument("--wait-policy", choices=["PASSIVE", "ACTIVE"], default=None,
                   help="OMP_WAIT_POLICY for the children (default: what configure() sets, PASSIVE)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print("CHILD " + json.dumps(child(args)), flush=True)
        return None
    threads = [int(t) for t in args.threads.split(",")]
    results = {}
    for competitor in (False, True):
        label = "with a competing process" if competitor else "alone"
        proc = busy_loop() if competitor else None
        try:
            load0 = os.getloadavg()[0]
            for t in threads:
                r = run_child(t, args)
                results[(label, t)] = r
                print(f"{label:26s} {t} thread(s): " + "  ".join(f"{k} {v * 1e3:8.1f} ms" for k, v in
                                                              r["times"].items())
                      + f"  (wait policy {r['omp_wait_policy']}, load {load0:.1f} → {os.getloadavg()[0]:.1f})",
                      flush=True)
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()
    print()
    print("| what | condition | " + " | ".join(f"{t} thread{'s' if t > 1 else ''}" for t in threads)
          + (f" | {threads[-1]} / {threads[0]} |" if len(threads) > 1 else " |"))
    print("|---" * (3 + len(threads)) + "|")
    for what in WHAT:
        for label in ("alone", "with a competing process"):
            ts = [results[(label, t)]["times"][what] for t in threads]
            ratio = f" | {ts[-1] / ts[0]:.2f} ×" if len(threads) > 1 else ""
            print(f"| {what} | {label} | " + " | ".join(f"{x * 1e3:.0f} ms" for x in ts) + ratio + " |")
    out = dict(args=dict(images=args.images, captions=args.captions, repeat=args.repeat, threads=threads,
                         wait_policy=args.wait_policy),
               cpus=os.cpu_count(), load_average_end=os.getloadavg(),
               results=[dict(condition=k[0], **v) for k, v in results.items()])
    print("JSON " + json.dumps(out))
    return out


if __name__ == "__main__":
    main()
