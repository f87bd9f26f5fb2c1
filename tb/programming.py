"""Host side of on-chip write-verify: targets, settings, run, per-cell results.

`write_verify` loads target codes into the controller's target buffer,
configures the write-verify registers, starts the engine, waits for it and
reads back the counters and the per-cell result buffer. Target conductances
become verify codes with `amc.model.programming.target_codes`, the formula the
model-only programming uses too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from ..model.programming import verify_read_voltage
from ..model.write_verify import check_region
from ..rtl.params import ControllerParams
from ..rtl.regmap import RESULT_WORD_FAIL, RESULT_WORD_PASS, ErrorBit
from .driver import AmcDriver, Status
from .errors import AbortedError, ConversionTimeoutError, DoneTimeoutError, InvalidConfigError, SettleTimeoutError

__all__ = ["WriteVerifyOptions", "WriteVerifyReport", "read_voltage", "write_verify"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteVerifyOptions:
    """Register settings of one run; None keeps the controller's reset value (from ProgrammingParams)."""

    set_start: int | None = None
    set_step: int | None = None
    reset_start: int | None = None
    reset_step: int | None = None
    pulse_width_cycles: int | None = None
    tolerance: int | None = None
    max_pulses: int | None = None
    read_code: int | None = None
    settle_cycles: int | None = None


@dataclass
class WriteVerifyReport:
    """Counters and per-cell results of one write-verify run."""

    array: int
    half: int
    rows: range
    cols: range
    cells_done: int
    cells_failed: int
    total_pulses: int
    cycles: int
    """Controller clock cycles of the run (WV_CYCLES)."""
    clock_period_ps: int
    pulses: np.ndarray
    """Pulses per cell of the region, shape (len(rows), len(cols))."""
    passed: np.ndarray
    """True where the cell passed."""
    status: Status | None = None
    failed_cells: list[tuple[int, int]] = field(default_factory=list)
    """(row, column) of every failed cell, in array coordinates."""

    @property
    def time_s(self) -> float:
        return self.cycles * self.clock_period_ps * 1e-12


def read_voltage(params: ControllerParams, read_code: int | None = None) -> float:
    """Return the verify read voltage the DAC produces for `read_code` (default the reset value), in volts."""
    return verify_read_voltage(params.macro, read_code)


async def write_verify(driver: AmcDriver, array: int, targets, *, half: int = 0, rows: range | None = None,
                       cols: range | None = None, options: WriteVerifyOptions | None = None) -> WriteVerifyReport:
    """Program a region of one half-array to `targets` with the on-chip write-verify engine.

    Parameters
    ----------
    array : int
    targets : ndarray of int, shape (ROWS, COLS)
        Target verify codes of the whole half-array; only the region is loaded.
    half : {0, 1}
        0 programs the positive half-array, 1 the negative half.
    rows, cols : range, optional
        Region (step 1); the whole array by default.
    options : WriteVerifyOptions, optional

    Raises
    ------
    InvalidConfigError
        The controller rejected the write-verify registers (region, array, zero counts).
    SettleTimeoutError, ConversionTimeoutError
        A verify read timed out; the run stopped.
    AbortedError
        The run was aborted.
    """
    p = driver.params
    regs = driver.regs
    bus = driver.bus
    options = options or WriteVerifyOptions()
    rows, cols = check_region(rows, cols, p.rows, p.cols)
    targets = np.asarray(targets)
    if targets.shape != (p.rows, p.cols):
        raise ValueError(f"targets have shape {targets.shape}; give one code per cell, shape ({p.rows}, {p.cols})")
    lo, hi = p.macro.adc.code_min, p.macro.adc.code_max
    if targets.min() < lo or targets.max() > hi:
        raise ValueError(f"target codes must lie in the ADC range {lo}..{hi}, got {targets.min()}..{targets.max()}")

    for row in rows:
        for col in cols:
            await bus.write(regs.target.address(row * p.cols + col), int(targets[row, col]) & 0xFFFF_FFFF)
    await bus.write(regs["WV_ARRAY"].offset, array | (int(half) << 8))
    await bus.write(regs["WV_ROWS"].offset, rows.start | ((rows.stop - 1) << 8))
    await bus.write(regs["WV_COLS"].offset, cols.start | ((cols.stop - 1) << 8))
    await _write_pair(bus, regs["WV_SET"], options.set_start, options.set_step)
    await _write_pair(bus, regs["WV_RESET"], options.reset_start, options.reset_step)
    for name, value in (("WV_PULSE_WIDTH", options.pulse_width_cycles), ("WV_TOLERANCE", options.tolerance),
                        ("WV_MAX_PULSES", options.max_pulses), ("WV_SETTLE", options.settle_cycles)):
        await bus.write(regs[name].offset, regs[name].reset if value is None else int(value))
    read_code = p.default_read_code if options.read_code is None else options.read_code
    await bus.write(regs["WV_READ_CODE"].offset, read_code & ((1 << p.dac_bits) - 1))

    # Clear earlier runs' sticky bits so the interrupt marks this run's end.
    await driver.clear_status()
    start_cycle = bus.now_cycles()
    await bus.write(regs["WV_CTRL"].offset, 1)
    limit = _cycle_bound(driver, len(rows) * len(cols), options)
    if not await bus.wait_interrupt(limit):
        status = await driver.status()
        raise DoneTimeoutError(f"write-verify did not finish within {limit} cycles ({status})")
    status = await driver.status()
    errors = status.errors
    if ErrorBit.INVALID_CONFIG in errors:
        raise InvalidConfigError(await bus.read(regs["INVALID_REASON"].offset))
    if ErrorBit.SETTLE_TIMEOUT in errors:
        raise SettleTimeoutError(driver._watchdog)
    if ErrorBit.CONV_TIMEOUT in errors:
        raise ConversionTimeoutError(driver._watchdog)
    if status.aborted:
        raise AbortedError(f"write-verify was aborted ({status})")

    counters = {name: await bus.read(regs[name].offset)
                for name in ("WV_CELLS_DONE", "WV_CELLS_FAILED", "WV_PULSES", "WV_CYCLES")}
    pulses = np.zeros((len(rows), len(cols)), dtype=int)
    passed = np.zeros((len(rows), len(cols)), dtype=bool)
    failed = []
    for i, row in enumerate(rows):
        for j, col in enumerate(cols):
            word = await bus.read(regs.result.address(row * p.cols + col))
            pulses[i, j] = word & 0xFF
            passed[i, j] = bool(word >> RESULT_WORD_PASS & 1)
            if word >> RESULT_WORD_FAIL & 1:
                failed.append((row, col))
    log.info("write-verify of array %d half %d: %d cells, %d failed, %d pulses, %d cycles (%d cycles on the bus)",
             array, half, counters["WV_CELLS_DONE"], counters["WV_CELLS_FAILED"], counters["WV_PULSES"],
             counters["WV_CYCLES"], bus.now_cycles() - start_cycle)
    return WriteVerifyReport(
        array=array, half=int(half), rows=rows, cols=cols, cells_done=counters["WV_CELLS_DONE"],
        cells_failed=counters["WV_CELLS_FAILED"], total_pulses=counters["WV_PULSES"], cycles=counters["WV_CYCLES"],
        clock_period_ps=p.clock_period_ps, pulses=pulses, passed=passed, status=status, failed_cells=failed,
    )


async def _write_pair(bus, register, start, step) -> None:
    reset = register.reset
    start = reset & 0xFFF if start is None else int(start)
    step = (reset >> 16) & 0xFFF if step is None else int(step)
    await bus.write(register.offset, start | (step << 16))


def _cycle_bound(driver: AmcDriver, cells: int, options: WriteVerifyOptions) -> int:
    """Return an upper bound of the cycles a write-verify run of `cells` cells can take."""
    regs = driver.regs
    max_pulses = options.max_pulses if options.max_pulses is not None else regs["WV_MAX_PULSES"].reset
    width = options.pulse_width_cycles if options.pulse_width_cycles is not None else regs["WV_PULSE_WIDTH"].reset
    settle = options.settle_cycles if options.settle_cycles is not None else regs["WV_SETTLE"].reset
    watchdog = driver._watchdog
    read = 16 + 2 * watchdog + settle
    pulse = 8 + width
    return cells * ((max_pulses + 1) * (read + pulse) + 8) + 64
