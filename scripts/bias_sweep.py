"""The bias sweep: SCAN, SCAN with VSE++'s warm-up and CausMatch trained on the scenes data at several strengths
of the planted star / white-ring correlation, all evaluated on ONE shared test split (which never has it).

    nohup nice -n 10 .venv/bin/python scripts/bias_sweep.py --later scan > runs/bias_sweep/sweep.log 2>&1 &
    .venv/bin/python scripts/bias_sweep.py --device cuda --jobs 1   # on a GPU
    .venv/bin/python scripts/bias_sweep.py --dry-run      # the plan: every command, and which are done
    .venv/bin/python scripts/bias_sweep.py --tables-only  # the CSVs, the figure and summary tables (markdown)

What it runs, two processes at a time (``--jobs``), one CPU thread each (``OMP_NUM_THREADS=1``):

- data: ``causmatch scenes --bias B --splits train,dev`` per bias (``--train 5000 --dev 1000``), and one test
  split (``--splits test``). The generator ignores the bias for the test split (no correlation, no placement
  beside the star), so one test split serves every run;
- training: ``causmatch train --config configs/scenes.json`` with ``--model scan`` (hardest negatives),
  ``scan-warmup`` (the same plus ``max_violation_warmup_epochs=1``: summed violations in the first epoch) and
  ``--model causmatch``; ``--set epochs=E --set captions_per_epoch=N --set seed=S``. The queue goes seed by
  seed (seed 0 over every bias and model first), so a sweep stopped early has balanced results; ``--later scan``
  puts a seed's ``scan`` runs after its other runs at every bias;
- evaluation: ``causmatch evaluate --intervention random --json`` of each run's best (dev rSum) checkpoint on
  the shared test split: retrieval, grounding, distractor attention, the effect and its AUC.

Resumable: a dataset already built, a run whose ``last/`` checkpoint reached the last epoch, and an
evaluation whose JSON holds every reported key are skipped; a run stopped half-way continues with
``--resume``. SIGTERM (``kill PID``) stops launching and waits for the running commands, so nothing is lost.
At the end it writes ``bias_sweep.csv`` (one row per evaluated run, with the exact commands that made it),
``effect_auc.csv`` and ``bias_sweep.png`` into ``--results`` (default docs/results), atomically.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BIASES = (0.5, 0.75, 0.9, 0.97)
SEEDS = (0, 1, 2)
MODELS = ("scan", "scan-warmup", "causmatch")
# SGRAF's SGR head (the demo's sizes: sim_dim 64 at embed 256, the scenes images' 12 region slots), on request
# only (--models sgr-warmup,causmatch-sgr-warmup): the same schedule, the fair baseline's warm-up, CausMatch on
# top of it; causmatch-sgr: CausMatch with the hardest negative from the first step (as the SCAN sweep's).
SGR_ARGS = ["--set", "model.similarity=sgr", "--set", "model.sim_dim=64", "--set", "model.sgr_step=3",
            "--set", "model.num_region=12"]
EXTRA_MODELS = ("sgr-warmup", "causmatch-sgr-warmup", "causmatch-sgr")
ALL_MODELS = MODELS + EXTRA_MODELS
MODEL_ARGS = {"scan": ["--model", "scan"],
              "scan-warmup": ["--model", "scan", "--set", "max_violation_warmup_epochs=1"],
              "causmatch": ["--model", "causmatch"],
              "sgr-warmup": ["--model", "scan", "--set", "max_violation_warmup_epochs=1", *SGR_ARGS],
              "causmatch-sgr-warmup": ["--model", "causmatch", "--set", "max_violation_warmup_epochs=1", *SGR_ARGS],
              "causmatch-sgr": ["--model", "causmatch", *SGR_ARGS]}
EVAL_KEYS = ("metrics", "factual_metrics", "effect", "grounding", "distractor_attention", "effect_auc")
SWEEP_FIELDS = ("bias", "seed", "model", "rsum", "i2t_r1", "t2i_r1", "grounding", "effect_matching",
                "effect_non_matching", "distractor_attention", "distractor_chance", "best_epoch", "command")
AUC_PREDICTORS = ("effect_top", "effect_margin", "score_margin")
AUC_FIELDS = ("bias", "seed", "model", "n_queries", "top1_correct",
              *(f"{p}_{x}" for p in AUC_PREDICTORS for x in ("auc", "lo", "hi")), "command")


@dataclass
class Task:
    name: str
    kind: str                 # data | train | eval
    argv: list[str]           # arguments after `python -m causmatch`
    log: Path
    deps: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # --resume / --overwrite: how it continues, not what it is

    @property
    def command(self) -> str:
        """The canonical command (relative paths, from the repository root)."""
        return "OMP_NUM_THREADS=1 python -m causmatch " + shlex.join(self.argv)


def bias_name(bias: float) -> str:
    return f"{bias:g}"


def run_name(model: str, bias: float, seed: int) -> str:
    return f"{model}-b{bias_name(bias)}-s{seed}"


def rel(path: Path) -> str:
    try:
        return str(Path(os.path.abspath(path)).relative_to(ROOT))  # a symlinked runs/ stays relative
    except ValueError:
        return str(path)


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def data_done(folder: Path, splits: tuple[str, ...], bias: float | None) -> bool:
    meta = _json(folder / "meta.json")
    if not meta or not set(splits) <= set(meta.get("splits", {})):
        return False
    return bias is None or math.isclose(float(meta.get("generator", {}).get("bias", -1)), bias)


def train_state(out: Path, epochs: int) -> str:
    """'done' (its last checkpoint reached ``epochs``), 'resume' (a last/ to continue), 'fresh' (nothing
    there) or 'overwrite' (an earlier output without a last/ checkpoint)."""
    last = _json(out / "last" / "config.json")
    if last is not None:
        epoch = int((last.get("extra") or {}).get("epoch", 0))
        return "done" if epoch >= epochs and (out / "config.json").is_file() else "resume"
    return "overwrite" if out.exists() else "fresh"


def eval_done(path: Path) -> bool:
    result = _json(path)
    return result is not None and all(k in result for k in EVAL_KEYS)


def plan(out: Path, *, biases=BIASES, seeds=SEEDS, models=MODELS, epochs: int = 3, captions: int = 10_000,
         sizes=(5000, 1000, 1000), evaluate: bool = True, later: tuple[str, ...] = (),
         device: str = "cpu") -> list[Task]:
    """Every task of the sweep, in queue order, with the ones already done left out: seed by seed; within a
    seed bias by bias, except that the ``later`` models go after the others' runs of that seed at every bias."""
    tasks: list[Task] = []
    data, runs, evals, logs = out / "data", out / "runs", out / "eval", out / "logs"
    test = data / "test"
    if not data_done(test, ("test",), None):
        tasks.append(Task("data-test", "data", ["scenes", "--out", rel(test), "--splits", "test",
                                                "--test", str(sizes[2]), "--quiet", "--workers", "1"],
                          logs / "data-test.log"))
    first = [m for m in models if m not in later]
    groups = [g for g in (first, [m for m in models if m in later]) if g]
    built = set()
    for seed, group, bias in ((s, g, b) for s in seeds for g in groups for b in biases):
        folder = data / f"bias-{bias_name(bias)}"
        if bias not in built and not data_done(folder, ("train", "dev"), bias):  # just before its first runs
            tasks.append(Task(f"data-{bias_name(bias)}", "data",
                              ["scenes", "--out", rel(folder), "--bias", bias_name(bias), "--splits",
                               "train,dev", "--train", str(sizes[0]), "--dev", str(sizes[1]), "--quiet",
                               "--workers", "1"], logs / f"data-{bias_name(bias)}.log"))
        built.add(bias)
        for model in group:
            name = run_name(model, bias, seed)
            ckpt = runs / name
            train = Task(f"train-{name}", "train",
                         train_argv(out, name, bias, seed, model, epochs, captions, device),
                         logs / f"train-{name}.log", deps=[f"data-{bias_name(bias)}"])
            state = train_state(ckpt, epochs)
            if state != "done":
                train.extra = {"resume": ["--resume"], "overwrite": ["--overwrite"]}.get(state, [])
                tasks.append(train)
            if evaluate and not eval_done(evals / f"{name}.json"):
                tasks.append(Task(f"eval-{name}", "eval", eval_argv(ckpt, test, evals / f"{name}.json", device),
                                  logs / f"eval-{name}.log", deps=["data-test", train.name]))
    return tasks


def _device(device: str) -> list[str]:
    return [] if device == "cpu" else ["--device", device]


def eval_argv(ckpt: Path, test: Path, json_path: Path, device: str = "cpu") -> list[str]:
    return ["evaluate", "--checkpoint", rel(ckpt), "--data", rel(test), "--split", "test",
            "--intervention", "random", "--json", rel(json_path), *_device(device)]


def train_argv(out: Path, name: str, bias: float, seed: int, model: str, epochs: int, captions: int,
               device: str = "cpu") -> list[str]:
    return ["train", "--data", rel(out / "data" / f"bias-{bias_name(bias)}"), "--out", rel(out / "runs" / name),
            "--config", "configs/scenes.json", *MODEL_ARGS[model], "--set", f"epochs={epochs}",
            "--set", f"captions_per_epoch={captions}", "--set", f"seed={seed}", "--no-progress", *_device(device)]


def logged_command(log: Path) -> str | None:
    """The command a task's log says it ran (its first ``$ `` line; ``--resume``/``--overwrite``, which only
    say how an interrupted run continued, left out), or None without a log."""
    try:
        with open(log, encoding="utf-8") as fh:
            first = next((line[2:].strip() for line in fh if line.startswith("$ ")), None)
    except OSError:
        return None
    if first is None:
        return None
    words = shlex.split(first)
    while words and words[-1] in ("--resume", "--overwrite"):
        words.pop()
    return shlex.join(words) if words else None


# ---------------------------------------------------------------- running
class Runner:
    def __init__(self, tasks: list[Task], jobs: int, log=print):
        self.queue, self.jobs, self.log = list(tasks), jobs, log
        self.pending = {t.name for t in tasks}
        self.running: dict[str, tuple[Task, subprocess.Popen, float]] = {}
        self.failed: list[str] = []
        self.stopping = False

    def stop(self, *_):
        self.stopping = True
        self.log(f"{time.strftime('%H:%M:%S')} stop requested: waiting for {len(self.running)} running command(s)")

    def _ready(self, task: Task) -> bool:
        return not any(d in self.pending for d in task.deps)

    def _next(self) -> Task | None:
        ready = [t for t in self.queue if self._ready(t)]
        if not ready:
            return None
        evals = [t for t in ready if t.kind == "eval"]  # evaluate as runs finish: results stay balanced
        task = (evals or ready)[0]
        self.queue.remove(task)
        return task

    def _start(self, task: Task) -> None:
        task.log.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        argv = [sys.executable, "-m", "causmatch", *task.argv, *task.extra]
        fh = open(task.log, "a", encoding="utf-8")
        fh.write(f"$ {task.command}{' ' + shlex.join(task.extra) if task.extra else ''}\n")
        fh.flush()
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        fh.close()
        self.running[task.name] = (task, proc, time.time())
        self.log(f"{time.strftime('%H:%M:%S')} start {task.name}{' ' + ' '.join(task.extra) if task.extra else ''}")

    def run(self) -> bool:
        while self.running or (self.queue and not self.stopping):
            while not self.stopping and len(self.running) < self.jobs:
                task = self._next()
                if task is None:
                    break
                self._start(task)
            if not self.running:  # nothing can start: a dependency failed
                break
            time.sleep(2)
            for name, (task, proc, start) in list(self.running.items()):
                if proc.poll() is None:
                    continue
                del self.running[name]
                self.pending.discard(name)
                secs = time.time() - start
                if proc.returncode == 0:
                    self.log(f"{time.strftime('%H:%M:%S')} done  {name} in {secs:.0f} s")
                else:
                    self.failed.append(name)
                    self.log(f"{time.strftime('%H:%M:%S')} FAILED {name} (exit {proc.returncode}, see {rel(task.log)})")
                    # whatever needed it cannot run
                    self.queue = [t for t in self.queue if name not in t.deps]
        return not self.failed and not self.queue


# ---------------------------------------------------------------- tables
def _num(x, digits=2):
    return "" if x is None else f"{x:.{digits}f}"


def collect(out: Path, *, biases=BIASES, seeds=SEEDS, models=MODELS, epochs: int = 3,
            captions: int = 10_000, sizes=(5000, 1000, 1000)) -> tuple[list[dict], list[dict]]:
    """The rows of bias_sweep.csv and effect_auc.csv from the evaluations in ``out`` (runs not evaluated are
    left out)."""
    sweep, auc = [], []
    test = out / "data" / "test"
    for bias in biases:
        for seed in seeds:
            for model in models:
                name = run_name(model, bias, seed)
                result = _json(out / "eval" / f"{name}.json")
                if result is None or not all(k in result for k in EVAL_KEYS):
                    continue
                commands = [
                    "OMP_NUM_THREADS=1 python -m causmatch " + shlex.join(
                        ["scenes", "--out", rel(out / "data" / f"bias-{bias_name(bias)}"), "--bias",
                         bias_name(bias), "--splits", "train,dev", "--train", str(sizes[0]), "--dev",
                         str(sizes[1])]),
                    "OMP_NUM_THREADS=1 python -m causmatch " + shlex.join(
                        ["scenes", "--out", rel(test), "--splits", "test", "--test", str(sizes[2])]),
                    logged_command(out / "logs" / f"train-{name}.log") or "OMP_NUM_THREADS=1 python -m causmatch "
                    + shlex.join(train_argv(out, name, bias, seed, model, epochs, captions)),
                    logged_command(out / "logs" / f"eval-{name}.log") or "OMP_NUM_THREADS=1 python -m causmatch "
                    + shlex.join(eval_argv(out / "runs" / name, test, out / "eval" / f"{name}.json")),
                ]
                m, eff, da = result["factual_metrics"], result["effect"], result["distractor_attention"]
                ckpt = _json(out / "runs" / name / "config.json") or {}
                base = {"bias": bias_name(bias), "seed": seed, "model": model}
                sweep.append({**base, "rsum": _num(m["rsum"]), "i2t_r1": _num(m["i2t_r1"]),
                              "t2i_r1": _num(m["t2i_r1"]), "grounding": _num(result["grounding"]["overall"]),
                              "effect_matching": _num(eff["matching"], 4),
                              "effect_non_matching": _num(eff["non_matching"], 4),
                              "distractor_attention": _num(da["share"], 4) if da else "",
                              "distractor_chance": _num(da["chance"], 4) if da else "",
                              "best_epoch": (ckpt.get("extra") or {}).get("epoch", ""),
                              "command": " && ".join(commands)})
                a = result["effect_auc"]
                row = {**base, "n_queries": a["n_queries"], "top1_correct": a["n_correct"]}
                for p in AUC_PREDICTORS:
                    row.update({f"{p}_auc": _num(a[p]["auc"], 4), f"{p}_lo": _num(a[p]["lo"], 4),
                                f"{p}_hi": _num(a[p]["hi"], 4)})
                row["command"] = commands[-1]
                auc.append(row)
    return sweep, auc


def to_csv(rows: list[dict], fields) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def figure(rows: list[dict], path: Path) -> None:
    """rSum and distractor attention against the bias, mean ± std over seeds, one line per model."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from causmatch.outputs import atomic_write

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((axes[0], "rsum", "test rSum"),
                           (axes[1], "distractor_attention", "distractor attention (% of attention mass)")):
        for model in [m for m in ALL_MODELS if any(r["model"] == m for r in rows)]:
            xs, means, stds, ns = [], [], [], []
            for bias in sorted({float(r["bias"]) for r in rows}):
                vals = [float(r[key]) for r in rows if r["model"] == model and float(r["bias"]) == bias
                        and r[key] != ""]
                if vals:
                    xs.append(bias)
                    means.append(np.mean(vals))
                    stds.append(np.std(vals))
                    ns.append(len(vals))
            if xs:
                n = f"{min(ns)}" if min(ns) == max(ns) else f"{min(ns)}-{max(ns)}"
                ax.errorbar(xs, means, yerr=stds, marker="o", capsize=3, label=f"{model} (n={n} seeds)")
        if key == "distractor_attention":
            chance = [float(r["distractor_chance"]) for r in rows if r["distractor_chance"] != ""]
            if chance:
                ax.axhline(float(np.mean(chance)), color="grey", ls="--", lw=1, label="chance (share of regions)")
        ax.set_xlabel("bias (train/dev correlation strength)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Bias sweep: mean ± std over seeds, one shared unbiased test split", fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write(path, lambda fh: fh.write(buf.getvalue()), label="figure")


def _mean_sd(values: list[float], digits: int) -> str:
    import statistics

    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f} (n=1)"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f} (n={len(values)})"


def summary_markdown(sweep: list[dict], auc: list[dict]) -> str:
    """Markdown tables: per bias and model, mean ± sample standard deviation over the seeds evaluated."""
    keys = sorted({(float(r["bias"]), r["model"]) for r in sweep}, key=lambda k: (k[0], ALL_MODELS.index(k[1])))
    lines = ["| bias | model | test rSum | t2i R@1 | grounding % | distractor attention % (chance) | "
             "effect matching / non-matching |", "|---|---|---:|---:|---:|---:|---:|"]
    for bias, model in keys:
        rows = [r for r in sweep if float(r["bias"]) == bias and r["model"] == model]
        col = lambda k, rows=rows: [float(r[k]) for r in rows if r[k] != ""]  # noqa: E731
        chance = col("distractor_chance")
        lines.append(f"| {bias:g} | {model} | {_mean_sd(col('rsum'), 1)} | {_mean_sd(col('t2i_r1'), 1)} | "
                     f"{_mean_sd(col('grounding'), 1)} | {_mean_sd(col('distractor_attention'), 2)} "
                     f"({sum(chance) / len(chance):.2f}) | {_mean_sd(col('effect_matching'), 3)} / "
                     f"{_mean_sd(col('effect_non_matching'), 3)} |")
    lines += ["", "| bias | model | seed | top-1 right | AUC effect of top pair | AUC effect margin | "
              "AUC score margin |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in sorted(auc, key=lambda r: (float(r["bias"]), ALL_MODELS.index(r["model"]), r["seed"])):
        cell = lambda p, r=r: (f"{float(r[p + '_auc']):.3f} [{float(r[p + '_lo']):.3f}, "  # noqa: E731
                               f"{float(r[p + '_hi']):.3f}]")
        lines.append(f"| {r['bias']} | {r['model']} | {r['seed']} | {r['top1_correct']} / {r['n_queries']} | "
                     f"{cell('effect_top')} | {cell('effect_margin')} | {cell('score_margin')} |")
    return "\n".join(lines)


def write_tables(out: Path, results: Path, **kw) -> tuple[int, int]:
    from causmatch.outputs import atomic_write_text

    sweep, auc = collect(out, **kw)
    atomic_write_text(results / "bias_sweep.csv", to_csv(sweep, SWEEP_FIELDS))
    atomic_write_text(results / "effect_auc.csv", to_csv(auc, AUC_FIELDS))
    if sweep:
        figure(sweep, results / "bias_sweep.png")
    return len(sweep), len(auc)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def plan_problem(args) -> str | None:
    """What is wrong with the sweep's settings, checked before any work starts (None: nothing)."""
    if not args.biases or not args.seeds or not args.models:
        return "--biases, --seeds and --models each need at least one value"
    for name, values in (("--biases", args.biases), ("--seeds", args.seeds), ("--models", args.models)):
        if len(set(values)) != len(values):
            return f"{name} lists a value twice ({','.join(map(str, values))}): give each once"
    wrong = [b for b in args.biases if not (math.isfinite(b) and 0.0 <= b <= 1.0)]
    if wrong:
        return f"--biases must lie in [0, 1] (the scenes generator's bias), got {wrong[0]}"
    if any(s < 0 for s in args.seeds):
        return f"--seeds must be >= 0, got {min(args.seeds)}"
    if any(n < 1 for n in args.sizes) or args.captions < 1:
        return "--sizes (train,dev,test images) and --captions must be >= 1"
    return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/bias_sweep", help="data, checkpoints, logs and evaluations")
    p.add_argument("--results", default="docs/results", help="where the CSVs and the figure go")
    p.add_argument("--biases", type=_floats, default=BIASES)
    p.add_argument("--seeds", type=_ints, default=SEEDS)
    p.add_argument("--models", type=lambda s: tuple(x for x in s.split(",") if x), default=MODELS)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--captions", type=int, default=10_000, help="captions per epoch")
    p.add_argument("--sizes", type=_ints, default=(5000, 1000, 1000), help="train,dev,test images")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--later", type=lambda s: tuple(x for x in s.split(",") if x), default=(),
                   help="models whose runs of a seed go after the other models' runs of that seed at every bias "
                        "(e.g. scan: the fair comparison covers every bias first)")
    p.add_argument("--no-eval", action="store_true", help="train only")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: train and evaluate on the GPU (one process per GPU is plenty: --jobs 1)")
    p.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    p.add_argument("--tables-only", action="store_true", help="write the CSVs and the figure and exit")
    args = p.parse_args(argv)
    bad = [m for m in (*args.models, *args.later) if m not in ALL_MODELS]
    if bad or len(args.sizes) != 3 or args.jobs < 1 or args.epochs < 1:
        p.error(f"--models from {','.join(ALL_MODELS)}; --sizes is train,dev,test; --jobs, --epochs >= 1")
    problem = plan_problem(args)
    if problem:
        p.error(problem)
    out = (ROOT / args.out) if not os.path.isabs(args.out) else Path(args.out)
    results = (ROOT / args.results) if not os.path.isabs(args.results) else Path(args.results)
    kw = dict(biases=args.biases, seeds=args.seeds, models=args.models, epochs=args.epochs,
              captions=args.captions, sizes=args.sizes)
    if args.tables_only:
        n, _ = write_tables(out, results, **kw)
        print(f"{n} evaluated runs -> {rel(results)}/bias_sweep.csv, effect_auc.csv, bias_sweep.png\n")
        print(summary_markdown(*collect(out, **kw)))
        return 0
    tasks = plan(out, evaluate=not args.no_eval, later=args.later, device=args.device, **kw)
    if args.dry_run:
        for t in tasks:
            print(f"{t.kind:<5} {t.name:<34} {t.command}{' ' + shlex.join(t.extra) if t.extra else ''}")
        print(f"{len(tasks)} task(s) to run")
        return 0
    runner = Runner(tasks, args.jobs, log=lambda msg: print(msg, flush=True))
    signal.signal(signal.SIGTERM, runner.stop)
    print(f"{time.strftime('%H:%M:%S')} bias sweep: {len(tasks)} task(s), {args.jobs} at a time, pid {os.getpid()}",
          flush=True)
    ok = runner.run()
    if not args.no_eval:
        n, _ = write_tables(out, results, **kw)
        print(f"{n} evaluated runs -> {rel(results)}", flush=True)
    print(f"{time.strftime('%H:%M:%S')} bias sweep {'finished' if ok else 'stopped'}"
          f"{': failed ' + ', '.join(runner.failed) if runner.failed else ''}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
