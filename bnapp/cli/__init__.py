"""`python -m bnapp <command>`: the library's functions for batch use.

Each command group lives in its own module with `register(subparsers)`; a command's handler
returns the exit code. Errors meant for the user (bad data, bad options) are printed as one line
and exit 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from bnapp import __version__

# modules under bnapp.cli that contribute commands, in the order `--help` lists them
COMMAND_MODULES = ("data", "synth", "engine", "analyses", "jobs", "predict", "explain",
                   "export_model")


class UserError(Exception):
    """A problem the user can fix; main() prints it as one line and exits 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bnapp", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"bnapp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"bnapp.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"bnapp.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
