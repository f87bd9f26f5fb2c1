"""cocotb tests that the benchmark (benchmarks/run.py) times; not part of the regression.

``counter_speed`` runs a trivial counter and ``controller_speed`` keeps the
controller in a long settle wait. Neither does Python work per cycle, so both
measure the simulator's own cycles per second. Each writes its figures as JSON to the
file named in ``AMC_BENCH_RESULT``.
"""

from __future__ import annotations

import json
import os
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Timer

from .cocotb_env import AmcTestbench

RESULT_ENV = "AMC_BENCH_RESULT"
CYCLES_ENV = "AMC_BENCH_CYCLES"


def _write(figures: dict) -> None:
    with open(os.environ[RESULT_ENV], "w") as handle:
        json.dump(figures, handle)


@cocotb.test()
async def counter_speed(dut):
    """Clock a 16-bit counter for AMC_BENCH_CYCLES cycles."""
    cycles = int(os.environ.get(CYCLES_ENV, "100000"))
    dut.rst.value = 1
    Clock(dut.clk, 10, unit="ns").start()
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    started = time.perf_counter()
    await Timer(cycles * 10, unit="ns")
    wall = time.perf_counter() - started
    assert int(dut.count.value) != 0
    _write({"cycles": cycles, "wall_s": wall})


@cocotb.test()
async def controller_speed(dut):
    """Run one INV operation whose settle wait lasts AMC_BENCH_CYCLES cycles."""
    from ..model.macro import AnalogMacro

    cycles = int(os.environ.get(CYCLES_ENV, "100000"))
    tb = AmcTestbench(dut)
    tb.macro.program_backdoor(0, *_diagonal_images(tb.params))
    driver = await tb.start()
    request = driver.request("INV", array=0, rows=4, cols=4, inputs=[10, -10, 20, -20], signed=False,
                             settle_cycles=cycles)
    start_cycle = tb.bus.now_cycles()
    started = time.perf_counter()
    await driver.run(request)
    wall = time.perf_counter() - started
    simulated = tb.bus.now_cycles() - start_cycle
    assert isinstance(tb.macro, AnalogMacro)
    _write({"cycles": simulated, "wall_s": wall, "wakeups": tb.core.log.wakeups})


def _diagonal_images(params):
    """Return positive and negative conductance images of a well-conditioned diagonal matrix."""
    import numpy as np

    array = params.macro.array
    g_pos = np.full((array.rows, array.cols), array.g_min_S)
    np.fill_diagonal(g_pos, array.g_max_S)
    g_neg = np.full((array.rows, array.cols), array.g_min_S)
    return g_pos, g_neg


@cocotb.test()
async def write_verify_speed(dut):
    """Program every cell of one half-array to random 16-level targets with write-verify."""
    import numpy as np

    from ..model.mapping import quantize_conductance
    from ..model.programming import target_codes
    from .programming import read_voltage, write_verify

    tb = AmcTestbench(dut)
    params = tb.params
    driver = await tb.start()
    array = params.macro.array
    rng = np.random.default_rng(params.macro.seed)
    targets_S = quantize_conductance(rng.uniform(array.g_min_S, array.g_max_S, size=(array.rows, array.cols)), array)
    targets = target_codes(targets_S, params.macro, read_voltage(params))
    wakeups_before = tb.core.log.wakeups
    start_cycle = tb.bus.now_cycles()
    started = time.perf_counter()
    report = await write_verify(driver, 0, targets)
    wall = time.perf_counter() - started
    _write({
        "cells": report.cells_done, "failed": report.cells_failed, "pulses": report.total_pulses,
        "wv_cycles": report.cycles, "sim_cycles": tb.bus.now_cycles() - start_cycle, "wall_s": wall,
        "wakeups": tb.core.log.wakeups - wakeups_before, "bus_transactions": tb.bus.transactions,
    })
