"""Crash ``causmatch train`` at each named save step, one forked child per step (imports paid once).

Usage: ``python crash_worker.py DATA ROOT STEP [STEP ...] -- TRAIN_ARGS...``. For each STEP (``NAME:N``) a
child process forked from this one runs ``causmatch train --data DATA --out ROOT/run-<STEP>`` with
``CAUSMATCH_CRASH_AT=STEP`` and dies there with status 137, as a kill -9 would. Prints one JSON object
``{step: exit status}``. The parent only imports modules (no tensor work, so no thread pools) before it
forks, which keeps fork safe.
"""
import json
import os
import sys


def main() -> int:
    split = sys.argv.index("--")
    data, root, steps = sys.argv[1], sys.argv[2], sys.argv[3:split]
    train_args = sys.argv[split + 1:]
    import causmatch.training.trainer  # noqa: F401
    from causmatch.cli import main as cli_main  # noqa: F401  (imported once, before forking)

    status = {}
    for step in steps:
        out = os.path.join(root, "run-" + step.replace(":", "-"))
        pid = os.fork()
        if pid == 0:  # child: run until the crash point
            os.environ["CAUSMATCH_CRASH_AT"] = step
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            try:
                rc = cli_main(["train", "--data", data, "--out", out, *train_args])
            except BaseException:
                rc = 99
            os._exit(rc)
        _, code = os.waitpid(pid, 0)
        status[step] = os.waitstatus_to_exitcode(code)
    print(json.dumps(status))
    return 0


if __name__ == "__main__":
    sys.exit(main())
