"""cocotb regression of the on-chip write-verify engine.

The controller-level tests use a `FakeMacro` whose cells move by a known step
per pulse, so the expected pulses come from the reference algorithm
(`amc.model.write_verify`). `program_matrix` programs a real matrix into the
analog model's cells and records the programmed state for the cross-backend
test. `tests/cosim/test_write_verify_cosim.py` runs every test on Icarus and
on Verilator.
"""

from __future__ import annotations

import dataclasses
import json
import os

import cocotb
import numpy as np

from ..model.programming import write_verify_settings
from ..model.write_verify import run_write_verify
from ..rtl.regmap import ErrorBit, RegisterMap
from .cocotb_env import AmcTestbench, params_from_env
from .errors import AbortedError
from .fake_macro import FakeMacro
from .programming import WriteVerifyOptions, write_verify

STATE_ENV = "AMC_PROGRAMMED_STATE_PATH"
"""Environment variable naming the JSON file for `program_matrix`'s programmed conductances and statistics."""

OPTIONS = WriteVerifyOptions(settle_cycles=20, max_pulses=12, tolerance=1)
ARRAY = 1


async def _fake_testbench(dut, stuck=frozenset()):
    params = params_from_env()
    macro = FakeMacro(params.macro, stuck_cells=stuck)
    tb = AmcTestbench(dut, params, macro=macro)
    await tb.start()
    return tb, macro


def _targets(params, seed):
    return np.random.default_rng(seed).integers(-5, 40, size=(params.rows, params.cols))


def _reference(params, targets, rows, cols, stuck=frozenset(), half=0):
    """Pulses and failures the reference algorithm gives on the fake cells."""
    cells = {}

    def read(row, col):
        return cells.get((row, col), 0)

    def pulse(row, col, polarity, amplitude):
        if (ARRAY, half, row, col) in stuck:
            return
        step = FakeMacro.pulse_step(amplitude)
        cells[(row, col)] = cells.get((row, col), 0) + (step if polarity else -step)

    settings = write_verify_settings(params.macro, tolerance=OPTIONS.tolerance, max_pulses=OPTIONS.max_pulses)
    return run_write_verify(targets, rows, cols, settings, read, pulse)


@cocotb.test()
async def converge_random_targets(dut):
    """Check that every cell of a region reaches its random target with the reference algorithm's pulses."""
    tb, macro = await _fake_testbench(dut)
    targets = _targets(tb.params, 7)
    rows, cols = range(0, 4), range(0, 6)
    report = await write_verify(tb.driver, ARRAY, targets, rows=rows, cols=cols, options=OPTIONS)
    expected = _reference(tb.params, targets, rows, cols)
    assert report.total_pulses == expected.total_pulses
    assert report.failed_cells == expected.failed
    assert report.cells_done == len(rows) * len(cols)
    for cell in expected.cells:
        if cell.passed:
            assert abs(macro.cells.get((ARRAY, 0, cell.row, cell.col), 0) - cell.target) <= OPTIONS.tolerance
    pulses_seen = sum(1 for event in macro.events if event[0] == "pulse")
    assert pulses_seen == report.total_pulses
    tb.log.info("%d cells, %d pulses, %d cycles, %d bridge wake-ups (%.1f per pulse)", report.cells_done,
                report.total_pulses, report.cycles, tb.core.log.wakeups,
                tb.core.log.wakeups / max(report.total_pulses, 1))


@cocotb.test()
async def stuck_cells_fail(dut):
    """Stuck cells are reported failed, with their coordinates, after exactly WV_MAX_PULSES pulses."""
    stuck = frozenset({(ARRAY, 0, 1, 2), (ARRAY, 0, 2, 0)})
    tb, _ = await _fake_testbench(dut, stuck)
    targets = np.full((tb.params.rows, tb.params.cols), 20)
    report = await write_verify(tb.driver, ARRAY, targets, rows=range(0, 3), cols=range(0, 3), options=OPTIONS)
    assert report.failed_cells == [(1, 2), (2, 0)]
    assert report.pulses[1, 2] == OPTIONS.max_pulses
    assert report.pulses[2, 0] == OPTIONS.max_pulses
    assert report.cells_failed == 2
    assert ErrorBit.WV_CELL_FAIL in report.status.errors


@cocotb.test()
@cocotb.parametrize(tolerance=[0, 2])
async def tolerance_edges(dut, tolerance):
    """Check that a code exactly `tolerance` away passes without a pulse and one code further does not."""
    tb, macro = await _fake_testbench(dut)
    targets = np.zeros((tb.params.rows, tb.params.cols), dtype=int)
    targets[0, 0] = tolerance
    targets[0, 1] = tolerance + 1
    options = WriteVerifyOptions(settle_cycles=20, max_pulses=12, tolerance=tolerance)
    report = await write_verify(tb.driver, ARRAY, targets, rows=range(0, 1), cols=range(0, 2), options=options)
    assert report.pulses[0, 0] == 0
    assert report.passed[0, 0]
    assert report.pulses[0, 1] >= 1
    assert report.passed[0, 1]


@cocotb.test()
async def region_and_reprogram(dut):
    """Programming a region leaves the other cells unchanged; reprogramming reaches new targets."""
    tb, macro = await _fake_testbench(dut)
    params = tb.params
    outside = {(ARRAY, 0, 0, 0): 11, (ARRAY, 0, 5, 5): -4, (ARRAY, 1, 2, 2): 9}
    macro.cells.update(outside)
    first = _targets(params, 3)
    await write_verify(tb.driver, ARRAY, first, rows=range(1, 4), cols=range(1, 4), options=OPTIONS)
    for key, value in outside.items():
        assert macro.cells[key] == value
    second = first + 8
    report = await write_verify(tb.driver, ARRAY, second, rows=range(1, 4), cols=range(1, 4), options=OPTIONS)
    expected_failures = 0
    for row in range(1, 4):
        for col in range(1, 4):
            if abs(macro.cells[(ARRAY, 0, row, col)] - second[row, col]) > OPTIONS.tolerance:
                expected_failures += 1
    assert report.cells_failed == expected_failures
    for key, value in outside.items():
        assert macro.cells[key] == value


@cocotb.test()
async def abort_mid_array(dut):
    """CTRL.abort stops a run between cells or pulses; the driver raises AbortedError."""
    tb, macro = await _fake_testbench(dut)
    params = tb.params
    regs = RegisterMap(params)
    targets = np.full((params.rows, params.cols), 60)
    task = cocotb.start_soon(write_verify(tb.driver, ARRAY, targets, options=OPTIONS))
    while int(dut.wv_state.value) == 0 or tb.core.log.pulses < 20:
        await tb.idle(200)
    await tb.bus.write(regs["CTRL"].offset, 0b10)
    try:
        await task
    except AbortedError:
        pass
    else:
        raise AssertionError("write_verify did not raise AbortedError after the abort")
    done = await tb.bus.read(regs["WV_CELLS_DONE"].offset)
    assert 0 < done < params.cells
    pulses = tb.core.log.pulses
    await tb.idle(5000)
    assert tb.core.log.pulses == pulses, "pulses continued after the abort"
    assert int(dut.wv_state.value) == 0


@cocotb.test()
async def converge_real_cells(dut):
    """Real 1T1R cells reach random 16-level targets; only stuck cells fail, each after WV_MAX_PULSES."""
    from ..model.mapping import quantize_conductance
    from ..model.programming import target_codes
    from .programming import read_voltage

    from ..model.config import StuckCells
    from ..model.macro import AnalogMacro

    params = params_from_env()
    # A higher stuck-cell rate than the default puts a few stuck cells in the region.
    nonideal = dataclasses.replace(params.macro.nonideal, stuck=StuckCells(enabled=True, fraction=0.03))
    tb = AmcTestbench(dut, params, macro=AnalogMacro(params.macro.replace(nonideal=nonideal)))
    driver = await tb.start()
    array = params.macro.array
    rng = np.random.default_rng(11)
    region = (range(0, 12), range(0, 12))
    targets_S = quantize_conductance(rng.uniform(array.g_min_S, array.g_max_S, (array.rows, array.cols)), array)
    read_V = read_voltage(params)
    targets = target_codes(targets_S, params.macro, read_V)
    report = await write_verify(driver, 0, targets, rows=region[0], cols=region[1])

    stuck = tb.macro.devices.stuck_map.stuck[0, 0]
    stuck_in_region = {(r, c) for r in region[0] for c in region[1] if stuck[r, c]}
    assert stuck_in_region, "the region has no stuck cell; raise the stuck fraction"
    assert set(report.failed_cells) <= stuck_in_region, "a cell that is not stuck failed"
    for row, col in report.failed_cells:
        assert report.pulses[row, col] == params.macro.programming.max_pulses
    reached = tb.macro.conductances(0)[0]
    reached_codes = target_codes(reached, params.macro, read_V)
    tolerance = params.macro.programming.tolerance_codes
    for i, row in enumerate(region[0]):
        for j, col in enumerate(region[1]):
            if report.passed[i, j]:
                # One code of read noise may separate the last verify read from the noise-free value.
                assert abs(reached_codes[row, col] - targets[row, col]) <= tolerance + 1, (row, col)
    tb.log.info("real cells: %d pulses, %.1f per cell, %d failed (%d stuck in the region)", report.total_pulses,
                report.total_pulses / report.cells_done, report.cells_failed, len(stuck_in_region))


async def programmed_state_job(driver, macro, seed: int) -> dict:
    """Program a signed 6x5 matrix with write-verify, multiply once; return the state every backend must share."""
    from .matrix_ops import MatrixOperations

    ops = MatrixOperations(driver, macro.program_backdoor)
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-1, 1, size=(6, 5))
    programming = await ops.program(2, matrix)
    g_pos, g_neg = macro.conductances(2)
    result = await ops.multiply(2, rng.uniform(-1, 1, size=5))
    return {
        "g_pos": g_pos[:6, :5].tolist(), "g_neg": g_neg[:6, :5].tolist(),
        "pulses": [report.pulses.tolist() for report in programming.reports],
        "failed": [[list(cell) for cell in report.failed_cells] for report in programming.reports],
        "cycles": [report.cycles for report in programming.reports],
        "codes": result.codes.tolist(),
    }


@cocotb.test()
async def program_matrix(dut):
    """Record the state `programmed_state_job` leaves, for the cross-backend test."""
    tb = AmcTestbench(dut)
    driver = await tb.start()
    record = await programmed_state_job(driver, tb.macro, tb.params.macro.seed)
    tb.log.info("programmed 6x5 signed: %d pulses, %d bridge wake-ups", tb.core.log.pulses, tb.core.log.wakeups)
    with open(os.environ[STATE_ENV], "w") as handle:
        json.dump(record, handle)
