"""The ``learngene`` command line: one sub-command module per area, each exposing ``register(subparsers)``.

Every command reports a :class:`~learngene.errors.LearngeneError` as one line on stderr and exits 2; ``--debug``
shows the traceback instead. Output cut short by a closed pipe (``learngene runs list | head``) ends quietly.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

# Modules that contribute sub-commands, in the order --help lists them. Each one defines
# ``register(subparsers)`` which adds its parsers and sets ``func`` (taking the parsed args, returning an exit code).
_COMMAND_MODULES = (
    "learngene.cli.analysis",
    "learngene.cli.descendant",
    "learngene.cli.training",
    "learngene.cli.runs",
    "learngene.cli.compare",
    "learngene.cli.probe",
)


class _Parser(argparse.ArgumentParser):
    """argparse with the command line's one-line errors: a bad flag value printed the whole usage block first
    (some 50 lines for ``train``), burying the one line that says what is wrong. Sub-command parsers inherit it."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="learngene",
        description="Cluster-Learngene: analyse a pretrained ViT's heads, design descendants, fine-tune them.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        # No fallback: a command module that cannot be imported is a broken install and must fail loudly.
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from learngene.errors import LearngeneError

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if not args.debug else logging.DEBUG, format="%(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, inside the handler, not at interpreter exit
        return code
    except BrokenPipeError:
        # The reader (head, less) has gone: stop writing, and keep Python from complaining while it exits.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what coreutils report for the same case
    except LearngeneError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
