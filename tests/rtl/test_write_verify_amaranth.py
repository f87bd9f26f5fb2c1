"""Write-verify engine in the Amaranth simulator against the reference algorithm and the model-only backend."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from amc.model.programming import write_verify_settings
from amc.model.write_verify import run_write_verify
from amc.rtl.params import ControllerParams
from amc.rtl.regmap import ErrorBit, InvalidReason, RegisterMap
from amc.tb.amaranth_backend import run_amaranth
from amc.tb.bridge_core import FaultInjection
from amc.tb.controller_model import ControllerModel
from amc.tb.driver import AmcDriver
from amc.tb.errors import InvalidConfigError, SettleTimeoutError
from amc.tb.fake_macro import FakeMacro
from amc.tb.programming import WriteVerifyOptions, write_verify

PARAMS = ControllerParams()
REGS = RegisterMap(PARAMS)
OPTIONS = WriteVerifyOptions(settle_cycles=20, max_pulses=12, tolerance=1)


def _targets(seed=3):
    rng = np.random.default_rng(seed)
    return rng.integers(-5, 40, size=(PARAMS.rows, PARAMS.cols))


def _settings(options=OPTIONS):
    return write_verify_settings(PARAMS.macro, tolerance=options.tolerance, max_pulses=options.max_pulses)


def _reference(targets, rows, cols, macro, half=0, array=1):
    """Run the reference algorithm directly on the fake cells."""
    def read(row, col):
        return macro.cells.get((array, half, row, col), 0)

    def pulse(row, col, polarity, amplitude):
        key = (array, half, row, col)
        if key in macro.stuck_cells:
            return
        step = FakeMacro.pulse_step(amplitude)
        macro.cells[key] = macro.cells.get(key, 0) + (step if polarity else -step)

    return run_write_verify(targets, rows, cols, _settings(), read, pulse)


def _program(macro, targets, rows, cols, backend="amaranth", faults=None, half=0):
    async def main(driver):
        return await write_verify(driver, 1, targets, half=half, rows=rows, cols=cols, options=OPTIONS)

    if backend == "amaranth":
        return run_amaranth(PARAMS, macro, main, faults=faults).result

    async def model_main():
        driver = AmcDriver(ControllerModel(PARAMS, macro, faults), PARAMS)
        await driver.connect()
        return await main(driver)

    return asyncio.run(model_main())


def test_engine_matches_reference_algorithm():
    targets = _targets()
    rows, cols = range(2, 5), range(1, 6)
    macro = FakeMacro(PARAMS.macro, stuck_cells=frozenset({(1, 0, 3, 2)}))
    report = _program(macro, targets, rows, cols)

    expected = _reference(targets, rows, cols, FakeMacro(PARAMS.macro, stuck_cells=frozenset({(1, 0, 3, 2)})))
    expected_pulses = np.array([[c.pulses for c in expected.cells[i * 5:(i + 1) * 5]] for i in range(3)])
    assert np.array_equal(report.pulses, expected_pulses)
    assert report.failed_cells == expected.failed
    assert (3, 2) in report.failed_cells
    assert report.total_pulses == expected.total_pulses
    assert report.cells_done == 15
    assert report.cells_failed == len(expected.failed)
    # The stuck cell is retried exactly max_pulses times, then given up.
    assert report.pulses[1, 1] == OPTIONS.max_pulses
    assert ErrorBit.WV_CELL_FAIL in report.status.errors
    for cell in expected.cells:
        if cell.passed:
            assert abs(macro.cells[(1, 0, cell.row, cell.col)] - cell.target) <= OPTIONS.tolerance


def test_engine_matches_model_backend_cycles():
    targets = _targets(5)
    rows, cols = range(0, 3), range(4, 7)
    rtl = _program(FakeMacro(PARAMS.macro), targets, rows, cols, half=1)
    model = _program(FakeMacro(PARAMS.macro), targets, rows, cols, backend="model", half=1)
    assert np.array_equal(rtl.pulses, model.pulses)
    assert rtl.total_pulses == model.total_pulses
    assert rtl.cycles == model.cycles


def test_region_leaves_other_cells_unchanged():
    macro = FakeMacro(PARAMS.macro)
    macro.cells[(1, 0, 0, 0)] = 17
    macro.cells[(1, 1, 2, 2)] = -3
    _program(macro, _targets(), range(1, 3), range(1, 3))
    assert macro.cells[(1, 0, 0, 0)] == 17
    assert macro.cells[(1, 1, 2, 2)] == -3
    touched = {key[2:] for key in macro.cells if key[:2] == (1, 0)} - {(0, 0)}
    assert touched <= {(1, 1), (1, 2), (2, 1), (2, 2)}


def test_reprogramming_to_new_targets():
    macro = FakeMacro(PARAMS.macro)
    first = _targets(1)
    second = first.copy()
    second[0:2, 0:2] = first[0:2, 0:2] + 10
    _program(macro, first, range(0, 2), range(0, 2))
    report = _program(macro, second, range(0, 2), range(0, 2))
    assert report.cells_failed == 0
    for row in range(2):
        for col in range(2):
            assert abs(macro.cells[(1, 0, row, col)] - second[row, col]) <= OPTIONS.tolerance


@pytest.mark.parametrize("tolerance", [0, 3])
def test_tolerance_window(tolerance):
    macro = FakeMacro(PARAMS.macro)
    targets = np.zeros((PARAMS.rows, PARAMS.cols), dtype=int)
    targets[0, 0] = tolerance
    options = WriteVerifyOptions(settle_cycles=20, max_pulses=12, tolerance=tolerance)

    async def main(driver):
        return await write_verify(driver, 1, targets, rows=range(0, 1), cols=range(0, 1), options=options)

    report = run_amaranth(PARAMS, macro, main).result
    # The fresh cell reads 0: within the window, no pulse at all.
    assert report.total_pulses == 0
    assert report.passed[0, 0]


@pytest.mark.parametrize("changes, reason", [
    ({"WV_ROWS": 0x0005}, InvalidReason.WV_REGION),
    ({"WV_COLS": (PARAMS.cols << 8)}, InvalidReason.WV_REGION),
    ({"WV_ARRAY": PARAMS.n_arrays}, InvalidReason.WV_ARRAY_OUT_OF_RANGE),
    ({"WV_MAX_PULSES": 0}, InvalidReason.WV_ZERO_PULSES),
    ({"WV_PULSE_WIDTH": 0}, InvalidReason.WV_ZERO_WIDTH),
    ({"WV_SETTLE": 0}, InvalidReason.ZERO_SETTLE),
])
def test_invalid_write_verify_config(changes, reason):
    async def main(driver):
        for name, value in changes.items():
            await driver.bus.write(REGS[name].offset, value)
        await driver.bus.write(REGS["WV_CTRL"].offset, 1)
        await driver.bus.wait_interrupt(100)
        return await driver.status(), await driver.bus.read(REGS["INVALID_REASON"].offset)

    status, code = run_amaranth(PARAMS, FakeMacro(PARAMS.macro), main).result
    assert ErrorBit.INVALID_CONFIG in status.errors
    assert code == reason
    assert not status.busy


def test_invalid_region_raises_from_driver():
    async def main(driver):
        with pytest.raises(InvalidConfigError) as caught:
            await write_verify(driver, PARAMS.n_arrays - 1, _targets(), rows=range(0, 2), cols=range(0, 2),
                               options=WriteVerifyOptions(max_pulses=0))
        return caught.value.reason

    assert run_amaranth(PARAMS, FakeMacro(PARAMS.macro), main).result is InvalidReason.WV_ZERO_PULSES


def test_abort_mid_array():
    macro = FakeMacro(PARAMS.macro)
    targets = np.full((PARAMS.rows, PARAMS.cols), 60)

    async def main(driver):
        for row in range(PARAMS.rows):
            for col in range(PARAMS.cols):
                await driver.bus.write(REGS.target.address(row * PARAMS.cols + col), 60)
        await driver.bus.write(REGS["WV_SETTLE"].offset, 20)
        await driver.bus.write(REGS["WV_CTRL"].offset, 1)
        while await driver.bus.read(REGS["WV_CELLS_DONE"].offset) < 2:
            pass
        await driver.abort()
        await driver.bus.wait_interrupt(10_000)
        status = await driver.status()
        done = await driver.bus.read(REGS["WV_CELLS_DONE"].offset)
        for _ in range(50):
            await driver.bus.read(REGS["ID"].offset)
        return status, done, await driver.bus.read(REGS["WV_CELLS_DONE"].offset)

    status, done, later = run_amaranth(PARAMS, macro, main).result
    assert status.aborted
    assert not status.busy
    assert 2 <= done < PARAMS.cells
    assert later == done
    # The abort ends the run: no pulse after it reaches the cells beyond the current one.
    assert len({key[2:] for key in macro.cells}) <= done + 1
    assert targets.shape == (PARAMS.rows, PARAMS.cols)


def test_verify_timeout_stops_run():
    async def main(driver):
        with pytest.raises(SettleTimeoutError):
            await write_verify(driver, 0, _targets(), rows=range(0, 2), cols=range(0, 2), options=OPTIONS)
        return await driver.bus.read(REGS["WV_CELLS_DONE"].offset)

    assert run_amaranth(PARAMS, FakeMacro(PARAMS.macro), main, faults=FaultInjection(ready_never=True)).result == 0
