"""``causmatch`` command line: one entry point, one module per subcommand.

Each subcommand module exposes ``HELP`` (one line) and ``main(argv) -> int`` so tests
call it in-process. User errors (:class:`causmatch.errors.CausMatchError`) and operating-system errors
(``OSError``: permission, disk full, read-only, not a folder...) become a one-line ``error: ...`` on stderr
and exit status 2 — never a traceback.
"""
from __future__ import annotations

import importlib
import sys

from causmatch.errors import CausMatchError

COMMANDS = {
    "scenes": "causmatch.cli.scenes",
    "train": "causmatch.cli.train",
    "evaluate": "causmatch.cli.evaluate",
    "explain": "causmatch.cli.explain",
    "convert-butd": "causmatch.cli.convert_butd",
    "import-scan": "causmatch.cli.import_scan",
    "import-sgraf": "causmatch.cli.import_sgraf",
    "vocab": "causmatch.cli.vocab",
    "cache": "causmatch.cli.cache",
}


def add_model_data_args(parser, split_help: str = "split name (default test)") -> None:
    """The ``--checkpoint``/``--data``/``--split`` options shared by the commands that score a split."""
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory")
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--split", default="test", help=split_help)


def _usage() -> str:
    lines = ["usage: causmatch <command> [options]", "", "commands:"]
    for name, module in COMMANDS.items():
        try:
            help_line = importlib.import_module(module).HELP
        except ImportError:
            continue
        lines.append(f"  {name:<14} {help_line}")
    lines.append("")
    lines.append("Run 'causmatch <command> --help' for a command's options.")
    return "\n".join(lines)


def run_command(fn, argv) -> int:
    """Run ``fn(argv)``, turning user errors into one line on stderr and exit status 2."""
    try:
        return int(fn(argv) or 0)
    except CausMatchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except OSError as err:  # exists, permission, not a folder, disk full, read-only: one line, no traceback
        from causmatch.outputs import os_error_message

        print(f"error: {os_error_message(err, doing='use')}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    from causmatch.runtime import configure

    configure()  # process settings, before any command imports torch (idempotent)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command '{name}'; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name])
    return run_command(module.main, rest)
