"""``amc solve``: solve A x = b through the co-simulated macro and compare with numpy."""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from . import UsageError
from ..error_budget import converter_limited_solution
from ..model.config import ConfigError
from ..model.errors import ModelError
from ..problems import DEFAULT_RIDGE_LAMBDA, ProblemError, check_problem, load_problem, ridge_diabetes
from ..tb.host import BACKENDS, run_matrix_job
from ..tb.jobs import make_job
from ..tb.matrix_ops import PROGRAMMING_METHODS
from ..reports import write_programming_report
from ..tb.matrix_ops import check_inv_problem
from ..tb.toolchain import SIMULATORS, SimulatorNotFound, prepare_simulator
from .options import add_macro_options, params_from_args

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "solve",
        help="solve A x = b on the co-simulated macro (default: ridge regression of the diabetes data)",
        description="Program A into one array, solve A x = b with the INV circuit under control of the "
                    "generated RTL, and compare with numpy.linalg.solve. Without --matrix it solves the "
                    "ridge-regression normal equations of scikit-learn's diabetes data set.",
    )
    source = parser.add_argument_group("problem")
    source.add_argument("--matrix", type=Path, help="matrix A as Matrix Market (.mtx) or NumPy (.npy) file")
    source.add_argument("--rhs", type=Path, help="right-hand side b (.mtx or .npy); default A @ ones")
    source.add_argument("--ridge-lambda", type=float, default=DEFAULT_RIDGE_LAMBDA,
                        help=f"ridge penalty of the default problem (default {DEFAULT_RIDGE_LAMBDA:g})")
    run = parser.add_argument_group("simulation")
    run.add_argument("--backend", choices=BACKENDS, default="cosim",
                     help="cosim: cocotb on an HDL simulator (default); amaranth: Amaranth simulator; "
                          "model: register-level model without RTL")
    run.add_argument("--simulator", choices=SIMULATORS, default="icarus",
                     help="HDL simulator of the cosim backend (default icarus)")
    run.add_argument("--waves", action=argparse.BooleanOptionalAction, default=True,
                     help="write a waveform and a GTKWave save file (default on)")
    run.add_argument("--settle-cycles", type=int, help="settle time in clock cycles (default: automatic)")
    run.add_argument("--programming", choices=PROGRAMMING_METHODS, default="write-verify",
                     help="write-verify: program every cell with the on-chip engine (default); backdoor: set the "
                          "target conductances directly in the model, for comparison")
    run.add_argument("--programming-report", type=Path, metavar="PNG",
                     help="write a PNG of pulses per cell and reached versus target conductance")
    run.add_argument("--work-dir", type=Path, default=Path("out/solve"),
                     help="folder for waveforms and simulator files (default out/solve)")
    run.add_argument("--output", type=Path, help="write the result as JSON to this file")
    add_macro_options(parser)
    parser.set_defaults(func=run_solve)


def _usage(error: Exception) -> UsageError:
    return UsageError(str(error))


def run_solve(args: argparse.Namespace) -> int:
    # Every input check runs before the simulator starts, so a bad input
    # leaves no waveform or result file behind.
    try:
        params = params_from_args(args)
    except ConfigError as error:
        raise _usage(error) from None
    if args.backend == "cosim":
        try:
            prepare_simulator(args.simulator)
        except SimulatorNotFound as error:
            raise _usage(error) from None
    if args.settle_cycles is not None and not 0 < args.settle_cycles < (1 << params.counter_width):
        raise UsageError(f"--settle-cycles {args.settle_cycles} is invalid: use 1 to {(1 << params.counter_width) - 1}")
    if args.output is not None and args.output.is_dir():
        raise UsageError(f"--output {args.output} is a folder; give a file name")
    if args.programming_report is not None:
        if args.programming_report.suffix.lower() != ".png":
            raise UsageError(f"--programming-report {args.programming_report} must name a .png file")
        if args.programming != "write-verify":
            raise UsageError("--programming-report needs --programming write-verify")

    try:
        if args.matrix is not None:
            problem = load_problem(args.matrix, args.rhs)
        elif args.rhs is not None:
            raise UsageError("--rhs needs --matrix")
        else:
            problem = ridge_diabetes(args.ridge_lambda)
        check_problem(problem, params.rows, params.cols)
        check_inv_problem(problem.matrix, params.macro)
    except (ProblemError, ModelError) as error:
        raise _usage(error) from None

    reference = np.linalg.solve(problem.matrix, problem.rhs)
    job = make_job("solve", problem.matrix, problem.rhs, settle_cycles=args.settle_cycles,
                   programming=args.programming)
    started = time.perf_counter()
    report = run_matrix_job(job, params, backend=args.backend, simulator=args.simulator, waves=args.waves,
                            work_dir=args.work_dir)
    wall = time.perf_counter() - started
    x = report.values
    error = float(np.linalg.norm(x - reference) / np.linalg.norm(reference))
    result = report.result
    config = params.macro
    limited = converter_limited_solution(problem.matrix, problem.rhs, config, result["input_scale_V"],
                                         result["g_unit_S"])
    limit = float(np.linalg.norm(limited - reference) / np.linalg.norm(reference))
    lsb_percent = 100.0 * config.adc.lsb_V / config.adc.full_scale_V
    where = f"{report.backend} on {report.simulator}" if report.simulator else report.backend
    n = problem.matrix.shape[0]
    lines = [
        ("problem", f"{problem.description}; {n} x {n}, condition number {np.linalg.cond(problem.matrix):.3g}"),
        ("backend", f"{where}, seed {config.seed}"),
        ("non-idealities", config.nonideal.describe()),
        ("relative error", f"{error:.3e}  (||x - x_numpy|| / ||x_numpy||)"),
        ("converters alone", f"{limit:.3e}  (exact solve of the DAC-quantized b, read by the ADC)"),
        ("ADC resolution", f"{config.adc.bits} bits, 1 LSB = {lsb_percent:.3g} % of full scale"),
        ("mapping", f"{'signed (differential pair)' if result['differential'] else 'unsigned'}, "
                    f"largest |A_target - A| = {result['matrix_error_max']:.3g} (level rounding)"),
        ("programming", _programming_line(result["programming"], params)),
        ("settle time", f"{result['settle_cycles']} cycles = {_us(result['settle_time_s'])} "
                        f"(slowest-pole estimate {_us(result['settle_estimate_pole_s'])})"),
        ("operations", f"{result['runs']} (auto-ranging), {sum(result['op_cycles'])} controller cycles"),
        ("simulated", f"{report.sim_cycles} cycles = {_us(report.sim_time_s)}"),
        ("wall time", f"{wall:.2f} s"),
    ]
    if result["clipped"]:
        lines.append(("warning", "the accepted run still clipped at the ADC; the error includes clipping"))
    if report.wave_path is not None:
        lines.append(("waveform", f"{report.wave_path}"))
        lines.append(("view with", f"gtkwave {report.wave_path} {report.gtkw_path}"))
    if args.programming_report is not None:
        write_programming_report(result["programming"], args.programming_report,
                                 title=f"{problem.name}, seed {config.seed}")
        lines.append(("programming report", str(args.programming_report)))
    width = max(len(label) for label, _ in lines)
    for label, text in lines:
        print(f"{label:<{width}}  {text}")

    if args.output is not None:
        payload = {
            "problem": problem.description, "backend": report.backend, "simulator": report.simulator,
            "seed": config.seed, "relative_error": error, "converter_limited_error": limit, "x": x.tolist(), "x_numpy": reference.tolist(),
            "sim_cycles": report.sim_cycles, "wall_time_s": wall, "wave_path": str(report.wave_path or ""),
            **{key: result[key] for key in ("codes", "settle_cycles", "settle_time_s", "runs", "op_cycles")},
            "programming": {key: value for key, value in result["programming"].items()
                            if key not in ("target_S", "reached_S")},
        }
        args.output.parent.mkdir(parents=True, exist_ok=True)
        temporary = args.output.with_suffix(args.output.suffix + ".tmp")
        temporary.write_text(json.dumps(payload, indent=2))
        temporary.replace(args.output)
    return 0


def _programming_line(programming: dict, params) -> str:
    if programming["method"] == "backdoor":
        return "backdoor (target conductances set directly in the model; no pulses)"
    failed = programming["failed_cells"]
    seconds = programming["cycles"] * params.clock_period_ps * 1e-12
    text = (f"write-verify, {programming['total_pulses']} pulses: {programming['pulses_mean']:.2f} per cell "
            f"(max {programming['pulses_max']}), {len(failed)} failed cell(s), "
            f"{programming['cycles']} cycles = {_us(seconds)}")
    if failed:
        shown = ", ".join(f"{'-' if half else '+'}({row}, {col})" for half, row, col in failed[:5])
        text += f"; failed (half, row, column): {shown}{' ...' if len(failed) > 5 else ''}"
    return text


def _us(seconds) -> str:
    """Format a time in seconds as us or ms."""
    if seconds is None or not math.isfinite(seconds):
        return "n/a"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} us"
