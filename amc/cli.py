"""Entry point of the ``amc`` command line.

Each subcommand lives in its own module under `amc.commands` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable
that takes the parsed arguments and returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from . import __version__
from .commands import UsageError

# Modules under amc.commands, in the order `amc --help` lists them.
COMMAND_MODULES = ("solve", "verilog", "train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amc",
        description="Co-simulate a reconfigurable RRAM analog matrix computing macro.",
    )
    parser.add_argument("--version", action="version", version=f"amc {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="log progress (-v) or debug messages (-vv)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"amc.commands.{name}")
        except ModuleNotFoundError as error:
            # A command whose optional dependency (for example torch for
            # `train`) is not installed stays listed, with the reason.
            if error.name and error.name.startswith("amc.commands"):
                continue
            stub = subparsers.add_parser(name, help=f"unavailable: {error}")
            stub.set_defaults(func=lambda args, error=error: _unavailable(error))
            continue
        module.register(subparsers)
    return parser


def _unavailable(error: ModuleNotFoundError) -> int:
    print(f"amc: this command needs the Python package {error.name!r}, which is not installed; "
          "run `make setup` or pip install it", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
    )

    try:
        return int(args.func(args) or 0)
    except UsageError as error:
        print(f"amc {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
