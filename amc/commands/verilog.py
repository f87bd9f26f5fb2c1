"""``amc verilog``: write the controller's Verilog, mode table and register map."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from . import UsageError
from ..model.config import ConfigError
from ..rtl.verilog import generate, lint
from ..tb.toolchain import SimulatorNotFound, prepare_simulator
from .options import add_macro_options, params_from_args

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verilog",
        help="write the controller Verilog and its documentation",
        description="Generate the AMC controller as Verilog (amc_controller.v) with its mode table, "
                    "register map, GTKWave state filter and parameter file, for one parameter set.",
    )
    parser.add_argument("-o", "--output", type=Path, default=Path("build/verilog"),
                        help="output folder (default build/verilog)")
    parser.add_argument("--lint", action="store_true", help="lint the output with Verilator -Wall")
    add_macro_options(parser, nonideal=False)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        params = params_from_args(args)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"output {args.output} exists and is not a folder; choose another --output")
    files = generate(params, args.output)
    for path in files.all():
        print(path)
    if args.lint:
        try:
            prepare_simulator("verilator")
        except SimulatorNotFound as error:
            raise UsageError(str(error)) from None
        result = lint(files.verilog)
        if result.returncode != 0:
            print(result.stderr or result.stdout)
            log.error("Verilator lint failed on %s", files.verilog)
            return 1
        print(f"Verilator lint: clean ({files.verilog})")
    return 0
