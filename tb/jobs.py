"""Matrix jobs that every backend runs with the same host code.

A job is a plain dictionary (so it crosses into the cocotb simulator process
as JSON): program a matrix, then solve or multiply. `run_job` executes it on a
connected driver and returns a JSON-safe dictionary, identical in form for
the model-only, Amaranth and cocotb backends.
"""

from __future__ import annotations

import numpy as np

from .driver import AmcDriver
from .matrix_ops import PROGRAMMING_METHODS, MatrixOperations, ProblemResult

__all__ = ["JOB_KINDS", "make_job", "run_job", "result_to_dict"]

JOB_KINDS = ("solve", "multiply", "multiply_t")


def make_job(kind: str, matrix, vector, *, array: int = 0, settle_cycles: int | None = None,
             auto_range: bool = True, differential: bool | None = None, programming: str = "write-verify") -> dict:
    """Return a job dictionary; `kind` is one of `JOB_KINDS`."""
    if programming not in PROGRAMMING_METHODS:
        raise ValueError(f"unknown programming method {programming!r}; use one of {', '.join(PROGRAMMING_METHODS)}")
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}; use one of {', '.join(JOB_KINDS)}")
    return {
        "kind": kind,
        "matrix": np.asarray(matrix, dtype=float).tolist(),
        "vector": np.asarray(vector, dtype=float).tolist(),
        "array": int(array),
        "settle_cycles": None if settle_cycles is None else int(settle_cycles),
        "auto_range": bool(auto_range),
        "differential": differential,
        "programming": programming,
    }


def result_to_dict(result: ProblemResult, driver: AmcDriver) -> dict:
    """Return the JSON-safe summary of a `ProblemResult`."""
    return {
        "mode": result.mode,
        "values": result.values.tolist(),
        "codes": [int(c) for c in result.codes],
        "overrange": [bool(v) for v in result.overrange],
        "input_scale_V": float(result.input_scale_V),
        "settle_cycles": int(result.settle_cycles),
        "settle_time_s": float(result.settle_time_s),
        "settle_estimate_formula_s": result.settle.formula_s,
        "settle_estimate_pole_s": result.settle.slowest_pole_s,
        "stability": result.stability.message,
        "runs": len(result.runs),
        "op_cycles": [int(run.op_cycles) for run in result.runs],
        "run_codes": [[int(c) for c in run.codes] for run in result.runs],
        "clipped": bool(result.clipped),
        "differential": bool(result.mapping.differential),
        "g_unit_S": float(result.mapping.g_unit_S),
        "matrix_error_max": float(result.mapping.matrix_error_max),
        "bus_cycles": int(driver.bus.now_cycles()),
    }


async def run_job(driver: AmcDriver, macro, job: dict) -> dict:
    """Run `job` through `driver` on the analog model `macro`; return a JSON-safe dictionary.

    The result includes the conductances the cells reached, read from the
    model, so reports can compare them with the targets.
    """
    ops = MatrixOperations(driver, macro.program_backdoor)
    array = job["array"]
    summary = await ops.program(array, job["matrix"], differential=job.get("differential"),
                                method=job.get("programming", "write-verify"))
    options = {"settle_cycles": job.get("settle_cycles"), "auto_range": job.get("auto_range", True)}
    if job["kind"] == "solve":
        result = await ops.solve(array, job["vector"], **options)
    else:
        result = await ops.multiply(array, job["vector"], transpose=job["kind"] == "multiply_t", **options)
    record = result_to_dict(result, driver)
    record["programming"] = programming_to_dict(summary, macro, array)
    return record


def programming_to_dict(summary, macro, array: int) -> dict:
    """Return the JSON-safe summary of a `ProgrammingSummary`, with target and reached conductances."""
    pulses = summary.pulses_per_cell()
    m, n = summary.mapping.shape
    targets = summary.mapping.array_images(macro.config.array)
    reached = macro.conductances(array)
    halves = [half for half, image in enumerate(targets) if image is not None]
    return {
        "target_S": [targets[half][:m, :n].tolist() for half in halves],
        "reached_S": [reached[half][:m, :n].tolist() for half in halves],
        "method": summary.method,
        "total_pulses": int(summary.total_pulses),
        "cycles": int(summary.cycles),
        "pulses_mean": float(pulses.mean()) if pulses.size else 0.0,
        "pulses_max": int(pulses.max()) if pulses.size else 0,
        "pulses_per_cell": pulses.tolist(),
        "failed_cells": [list(cell) for cell in summary.failed_cells],
    }
