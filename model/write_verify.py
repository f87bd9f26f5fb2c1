"""Reference implementation of the write-verify algorithm.

This is the algorithm of the controller's write-verify engine
(``amc.rtl.write_verify``), step for step, with the verify read and the
pulse as callbacks. The model-only backend runs it with callbacks that go
through the analog macro at the controller's cycle-exact times, so it gives
the same pulses, codes and results as the RTL; `program_cells` runs it
directly on an `AnalogMacro` without a controller.

For each cell of the region, in row-major order: read the cell; pass if the
code is within ``tolerance`` of the target; fail once ``max_pulses`` pulses
were applied; otherwise apply a SET pulse if the code is below the target or
a RESET pulse if above. The first pulse after a change of polarity (or the
first of a cell) uses the start amplitude; each further pulse of the same
polarity adds the step, up to the largest amplitude code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import MacroUsageError

__all__ = [
    "check_region",
    "Polarity",
    "WriteVerifySettings",
    "CellOutcome",
    "WriteVerifyResult",
    "run_write_verify",
]


class Polarity(enum.IntEnum):
    """Pulse polarity as the pulse port encodes it."""

    RESET = 0
    SET = 1


@dataclass(frozen=True)
class WriteVerifySettings:
    """Register values of one write-verify run (codes and counts, as the controller holds them)."""

    set_start: int
    set_step: int
    reset_start: int
    reset_step: int
    tolerance: int
    max_pulses: int
    amplitude_max: int
    """Largest amplitude code, 2^amplitude_bits - 1."""

    def __post_init__(self) -> None:
        for name in ("set_start", "set_step", "reset_start", "reset_step", "tolerance", "max_pulses"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"WriteVerifySettings.{name} = {value!r} is invalid: use a non-negative integer")
        if self.max_pulses < 1:
            raise ValueError(f"WriteVerifySettings.max_pulses = {self.max_pulses} is invalid: allow at least one")


@dataclass(frozen=True)
class CellOutcome:
    row: int
    col: int
    target: int
    final_code: int
    pulses: int
    passed: bool
    codes: tuple[int, ...]
    """Every verify code read for this cell, in order."""


@dataclass
class WriteVerifyResult:
    """Outcome of one write-verify run."""

    cells: list[CellOutcome] = field(default_factory=list)

    @property
    def total_pulses(self) -> int:
        return sum(cell.pulses for cell in self.cells)

    @property
    def failed(self) -> list[tuple[int, int]]:
        """(row, column) of every failed cell."""
        return [(cell.row, cell.col) for cell in self.cells if not cell.passed]

    def pulse_counts(self, rows: int, cols: int) -> np.ndarray:
        """Pulses per cell as a rows x cols array (0 outside the region)."""
        counts = np.zeros((rows, cols), dtype=int)
        for cell in self.cells:
            counts[cell.row, cell.col] = cell.pulses
        return counts


def check_region(rows: range | None, cols: range | None, n_rows: int, n_cols: int) -> tuple[range, range]:
    """Return the region to program, the whole array for None; raise MacroUsageError for an invalid one."""
    rows = range(n_rows) if rows is None else rows
    cols = range(n_cols) if cols is None else cols
    for name, region, size in (("rows", rows, n_rows), ("cols", cols, n_cols)):
        if not isinstance(region, range) or region.step != 1 or len(region) == 0:
            raise MacroUsageError(f"{name} = {region!r} is invalid: use a non-empty range with step 1")
        if region.start < 0 or region.stop > size:
            raise MacroUsageError(f"{name} = {region!r} lies outside the array's lines 0..{size - 1}")
    return rows, cols


ReadCallback = Callable[[int, int], int]
"""read(row, col) -> verify ADC code."""

PulseCallback = Callable[[int, int, Polarity, int], None]
"""pulse(row, col, polarity, amplitude_code)."""


def run_write_verify(targets, rows: range, cols: range, settings: WriteVerifySettings, read: ReadCallback,
                     pulse: PulseCallback, *, on_cell_start: Callable[[int, int], None] | None = None,
                     on_cell_done: Callable[[CellOutcome], None] | None = None) -> WriteVerifyResult:
    """Program the cells of `rows` x `cols` toward `targets` (verify codes indexed [row, col]).

    Parameters
    ----------
    targets : ndarray of int
        Target verify code per cell, indexed by absolute (row, column).
    rows, cols : range
        Region, iterated row-major.
    settings : WriteVerifySettings
    read, pulse : callables
        Verify read and programming pulse of one cell.
    on_cell_start, on_cell_done : callables, optional
        Called before the first read of a cell and with its outcome; the
        controller model uses them to count the engine's cycles.
    """
    targets = np.asarray(targets)
    result = WriteVerifyResult()
    for row in rows:
        for col in cols:
            if on_cell_start is not None:
                on_cell_start(row, col)
            target = int(targets[row, col])
            pulses = 0
            last: Polarity | None = None
            set_amplitude = settings.set_start
            reset_amplitude = settings.reset_start
            codes = []
            while True:
                code = int(read(row, col))
                codes.append(code)
                if abs(code - target) <= settings.tolerance:
                    passed = True
                    break
                if pulses >= settings.max_pulses:
                    passed = False
                    break
                if code < target:
                    if last is Polarity.SET:
                        set_amplitude = min(set_amplitude + settings.set_step, settings.amplitude_max)
                    else:
                        set_amplitude = settings.set_start
                    pulse(row, col, Polarity.SET, set_amplitude)
                    last = Polarity.SET
                else:
                    if last is Polarity.RESET:
                        reset_amplitude = min(reset_amplitude + settings.reset_step, settings.amplitude_max)
                    else:
                        reset_amplitude = settings.reset_start
                    pulse(row, col, Polarity.RESET, reset_amplitude)
                    last = Polarity.RESET
                pulses += 1
            outcome = CellOutcome(row=row, col=col, target=target, final_code=code, pulses=pulses, passed=passed,
                                  codes=tuple(codes))
            result.cells.append(outcome)
            if on_cell_done is not None:
                on_cell_done(outcome)
    return result
