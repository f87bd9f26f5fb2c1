"""Program conductances into the macro model with pulses and write-verify, without the controller.

On silicon a matrix reaches the array only through programming pulses, and
the error they leave is the largest accuracy limit of analog matrix
computing. `program_conductances` and `program_matrix` run the reference
write-verify algorithm (`amc.model.write_verify.run_write_verify`, the
algorithm of the controller's engine) on an `AnalogMacro`. Every verify read
is a VERIFY operation (enable, one ADC sample, disable) and every pulse an
`AnalogMacro.apply_pulse`, in the order the engine issues them.

The conductance targets become verify codes with `target_codes`: the verify
TIA outputs ``-read_V * G / g_verify_S`` and the ADC converts it. The verify
read voltage is the DAC code nearest ``ProgrammingParams.read_V``
(`verify_read_code`), as in the controller's WV_READ_CODE reset value.

Timing (`VerifySchedule`) is a simple schedule, not the controller's cycle
timeline: with the default settle time a verify sample lies within about 1 %
of an ADC LSB of its final value, so a controller run with the same seed may
still read a different code where a value lies that close to a code boundary,
and the two runs then diverge. The controller backends agree with each
other because they share one timeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import MacroConfig
from .converters import adc_convert, dac_decode
from .devices import NEGATIVE, POSITIVE
from .errors import MacroUsageError
from .macro import PICOSECOND, AnalogMacro
from .mapping import MatrixMapping
from .switch_matrix import SwitchState, mode_by_name
from .write_verify import Polarity, WriteVerifyResult, WriteVerifySettings, check_region, run_write_verify

__all__ = [
    "VERIFY_SETTLE_MARGIN",
    "verify_read_code",
    "verify_read_voltage",
    "target_codes",
    "verify_settle_time_s",
    "write_verify_settings",
    "VerifySchedule",
    "ProgrammingStats",
    "program_conductances",
    "program_matrix",
]

VERIFY_SETTLE_MARGIN = 1.5
"""Factor on ln(2^(adc_bits + 1)) time constants of the slowest verify read (see `verify_settle_time_s`)."""

_VERIFY = mode_by_name("VERIFY")
_PROGRAM = mode_by_name("PROGRAM")


def verify_read_code(config: MacroConfig) -> int:
    """Return the DAC code of the verify read voltage: the code nearest `ProgrammingParams.read_V`, clipped."""
    dac = config.dac
    code = round(config.programming.read_V / dac.lsb_V)
    return int(min(max(code, dac.code_min), dac.code_max))


def verify_read_voltage(config: MacroConfig, read_code: int | None = None) -> float:
    """Return the row voltage of a verify read with DAC code `read_code` (default `verify_read_code`), in volts."""
    code = verify_read_code(config) if read_code is None else int(read_code)
    return float(dac_decode(np.array([code]), config.dac)[0])


def target_codes(g_S, config: MacroConfig, read_V: float | None = None) -> np.ndarray:
    """Return the verify ADC code that an ideal verify read gives for each conductance in `g_S`.

    The verify TIA outputs ``-read_V * G / g_verify_S`` (infinite open-loop
    gain, no read noise) and the ADC rounds it to the nearest code.

    Parameters
    ----------
    g_S : array_like
        Conductances, in siemens.
    config : MacroConfig
    read_V : float, optional
        Row voltage of the verify read, in volts; default `verify_read_voltage(config)`.

    Returns
    -------
    ndarray of int, shape of `g_S`
    """
    read_V = verify_read_voltage(config) if read_V is None else float(read_V)
    volts = -read_V * np.asarray(g_S, dtype=float) / config.programming.g_verify_S
    return adc_convert(volts, config.adc).codes.astype(int)


def verify_settle_time_s(config: MacroConfig) -> float:
    """Return the time from the analog enable to the settled verify output, in seconds.

    The verify TIA with one cell G has one pole at 2 pi GBW G_v / (G_v + G),
    slowest for G = g_max. Settling to half an ADC LSB of full scale from an
    output anywhere in the range takes ln(2^(bits + 1)) time constants, and
    `VERIFY_SETTLE_MARGIN` = 1.5 covers the finite open-loop gain and read
    noise. The controller's default verify settle uses the same rule.
    """
    g_v = config.programming.g_verify_S
    pole_rad_per_s = 2.0 * math.pi * config.opamp.gbw_Hz * g_v / (g_v + config.array.g_max_S)
    return VERIFY_SETTLE_MARGIN * math.log(2.0 ** (config.adc.bits + 1)) / pole_rad_per_s


def write_verify_settings(config: MacroConfig, *, tolerance: int | None = None,
                          max_pulses: int | None = None) -> WriteVerifySettings:
    """Return the write-verify register values that `ProgrammingParams` gives, as the controller's reset values.

    Amplitudes become codes of the gate and source-line drivers (nearest
    code, steps at least one code). `tolerance` (ADC codes) and `max_pulses`
    override the defaults.
    """
    prog = config.programming
    return WriteVerifySettings(
        set_start=prog.amplitude_code(prog.set_start_V, prog.gate_lsb_V),
        set_step=max(1, prog.amplitude_code(prog.set_step_V, prog.gate_lsb_V)),
        reset_start=prog.amplitude_code(prog.reset_start_V, prog.source_line_lsb_V),
        reset_step=max(1, prog.amplitude_code(prog.reset_step_V, prog.source_line_lsb_V)),
        tolerance=prog.tolerance_codes if tolerance is None else tolerance,
        max_pulses=prog.max_pulses if max_pulses is None else max_pulses,
        amplitude_max=(1 << prog.amplitude_bits) - 1,
    )


@dataclass(frozen=True)
class VerifySchedule:
    """Event timing of a model-only write-verify run, in picoseconds.

    A verify read enables at the previous event, samples its column
    `sample_offset_ps` later and disables when the conversion ends. A pulse
    starts at the previous event and lasts `pulse_width_ps`; the next read
    enables when it ends. Only the sample offset changes results (through
    the settling residual); the cell response does not depend on time.
    """

    sample_offset_ps: int
    """Enable to ADC sample: op-amp bias settling plus `verify_settle_time_s`."""

    conversion_ps: int
    """ADC conversion, sample to disable."""

    pulse_width_ps: int
    """Width of every programming pulse."""

    read_code: int
    """DAC code that drives the selected row during a verify read."""

    @classmethod
    def from_config(cls, config: MacroConfig) -> "VerifySchedule":
        """Return the schedule from the bias settling, verify settling, ADC and pulse-width parameters."""
        offset_s = config.circuit.bias_settle_time_s + verify_settle_time_s(config)
        return cls(
            sample_offset_ps=_ps(offset_s),
            conversion_ps=_ps(config.adc.conversion_time_s),
            pulse_width_ps=_ps(config.programming.pulse_width_s),
            read_code=verify_read_code(config),
        )

    def __post_init__(self) -> None:
        for name in ("sample_offset_ps", "conversion_ps", "pulse_width_ps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"VerifySchedule.{name} = {value!r} is invalid: use whole picoseconds above 0")


@dataclass(frozen=True)
class ProgrammingStats:
    """Outcome of programming one region of one array with write-verify.

    Per-cell arrays have shape (len(halves), len(rows), len(cols)); index 0
    of the first axis is ``halves[0]``. Conductances are in siemens.
    """

    array: int
    rows: range
    cols: range
    halves: tuple[int, ...]
    """Programmed halves: 0 (positive), 1 (negative)."""

    settings: WriteVerifySettings
    read_V: float
    """Row voltage of the verify reads, in volts."""

    code_step_S: float
    """Conductance of one verify code, ADC LSB * g_verify_S / |read_V|, in siemens."""

    target_S: np.ndarray
    """Target conductances, in siemens."""

    target_codes: np.ndarray
    """Target verify codes."""

    achieved_S: np.ndarray
    """Conductances after programming (without read noise), in siemens."""

    final_codes: np.ndarray
    """Last verify code read per cell (read noise included)."""

    pulses: np.ndarray
    """Pulses applied per cell."""

    passed: np.ndarray
    """True where the last verify code lay within the tolerance of the target."""

    results: tuple[WriteVerifyResult, ...]
    """Per half, every cell's outcome with all its verify codes, in programming order."""

    start_time_ps: int
    end_time_ps: int

    @property
    def failed_cells(self) -> list[tuple[int, int, int]]:
        """(half, row, column) of every failed cell, in array coordinates."""
        found = np.argwhere(~self.passed)
        return [(self.halves[h], self.rows[i], self.cols[j]) for h, i, j in found]

    @property
    def cell_count(self) -> int:
        """Number of programmed cells (both halves)."""
        return int(self.passed.size)

    @property
    def failure_rate(self) -> float:
        """Share of cells that did not pass."""
        return float(np.count_nonzero(~self.passed)) / self.cell_count

    @property
    def total_pulses(self) -> int:
        return int(self.pulses.sum())

    @property
    def mean_pulses(self) -> float:
        """Mean pulses per programmed cell."""
        return float(self.pulses.mean())

    @property
    def max_pulses(self) -> int:
        """Largest pulse count of one cell."""
        return int(self.pulses.max())

    @property
    def reads(self) -> int:
        """Verify reads issued: one per pulse plus one final read per cell."""
        return self.total_pulses + self.cell_count

    @property
    def time_s(self) -> float:
        """Model time of the run (no controller overhead), in seconds."""
        return (self.end_time_ps - self.start_time_ps) * PICOSECOND

    @property
    def error_S(self) -> np.ndarray:
        """Achieved minus target conductance, in siemens."""
        return self.achieved_S - self.target_S

    def pulse_histogram(self) -> np.ndarray:
        """Return the number of cells per pulse count 0 .. settings.max_pulses."""
        return np.bincount(self.pulses.ravel(), minlength=self.settings.max_pulses + 1)

    def summary(self) -> str:
        """Return a one-line summary: cells, pulses per cell, failures and conductance error."""
        error = self.error_S
        return (
            f"array {self.array} rows {self.rows.start}-{self.rows.stop - 1} cols {self.cols.start}-"
            f"{self.cols.stop - 1} halves {list(self.halves)}: {self.cell_count} cells, pulses per cell mean "
            f"{self.mean_pulses:.2f} max {self.max_pulses}, {len(self.failed_cells)} failed "
            f"({100 * self.failure_rate:.2f} %), conductance error rms {np.sqrt(np.mean(error ** 2)) * 1e6:.3g} uS "
            f"max {np.max(np.abs(error)) * 1e6:.3g} uS"
        )


class _CellDriver:
    """Verify-read and pulse callbacks that drive one half-array of a macro through its event API."""

    def __init__(self, macro: AnalogMacro, array: int, half: int, schedule: VerifySchedule):
        self.macro = macro
        self.array = array
        self.half = half
        self.schedule = schedule
        self.time_ps = macro.last_event_ps
        self._cell: tuple[int, int] | None = None
        self._states: tuple[SwitchState, SwitchState] | None = None

    def _states_of(self, row: int, col: int) -> tuple[SwitchState, SwitchState]:
        # The engine reads and pulses one cell many times in a row, so the
        # two switch states of the current cell are kept.
        if self._cell != (row, col):
            geometry = self.macro.config.array
            row_enable = np.zeros(geometry.rows, dtype=bool)
            col_enable = np.zeros(geometry.cols, dtype=bool)
            row_enable[row] = True
            col_enable[col] = True
            negative = self.half == NEGATIVE
            self._states = tuple(
                SwitchState(mode=mode, signed=False, array=self.array, row_enable=row_enable,
                            col_enable=col_enable, half_negative=negative)
                for mode in (_VERIFY, _PROGRAM)
            )
            self._cell = (row, col)
        return self._states

    def read(self, row: int, col: int) -> int:
        verify, _ = self._states_of(row, col)
        macro, schedule = self.macro, self.schedule
        macro.load_dac(row, schedule.read_code)
        macro.enable(self.time_ps, verify)
        sample = macro.sample(self.time_ps + schedule.sample_offset_ps, col)
        self.time_ps += schedule.sample_offset_ps + schedule.conversion_ps
        macro.disable(self.time_ps)
        return sample.code

    def pulse(self, row: int, col: int, polarity: Polarity, amplitude: int) -> None:
        _, program = self._states_of(row, col)
        self.macro.apply_pulse(self.time_ps, program, int(polarity), int(amplitude), self.schedule.pulse_width_ps)
        self.time_ps += self.schedule.pulse_width_ps


def program_conductances(macro: AnalogMacro, array: int, g_pos_S, g_neg_S=None, *, rows: range | None = None,
                         cols: range | None = None, settings: WriteVerifySettings | None = None,
                         schedule: VerifySchedule | None = None) -> ProgrammingStats:
    """Program target conductances into a region of one array with pulses and write-verify.

    The positive half is programmed first, then (if `g_neg_S` is given) the
    negative half, each row-major over the region. Cells outside the region
    keep their conductances.

    Parameters
    ----------
    macro : AnalogMacro
        Programmed in place; its read-noise and cycle-noise streams advance
        with every read and pulse, and its event time advances from
        `AnalogMacro.last_event_ps`.
    array : int
    g_pos_S, g_neg_S : array_like, shape (rows, cols)
        Full-array target images, in siemens, inside [g_min_S, g_max_S]
        (see `MatrixMapping.array_images`). `g_neg_S` None leaves the
        negative half as it is.
    rows, cols : range, optional
        Region with step 1; the whole array by default.
    settings : WriteVerifySettings, optional
        Default `write_verify_settings(macro.config)`.
    schedule : VerifySchedule, optional
        Default `VerifySchedule.from_config(macro.config)`.

    Returns
    -------
    ProgrammingStats

    Raises
    ------
    MacroUsageError
        For an invalid array, region or target image, or while the macro is enabled.
    """
    config = macro.config
    geometry = config.array
    if macro.is_enabled:
        raise MacroUsageError("program_conductances during an analog operation; call disable first")
    if isinstance(array, bool) or not isinstance(array, (int, np.integer)) or not 0 <= array < geometry.n_arrays:
        raise MacroUsageError(f"array index {array!r} is invalid; use an integer from 0 to {geometry.n_arrays - 1}")
    rows, cols = check_region(rows, cols, geometry.rows, geometry.cols)
    settings = write_verify_settings(config) if settings is None else settings
    schedule = VerifySchedule.from_config(config) if schedule is None else schedule
    read_V = verify_read_voltage(config, schedule.read_code)

    images = [(POSITIVE, macro._check_image(g_pos_S, "g_pos_S"))]
    if g_neg_S is not None:
        images.append((NEGATIVE, macro._check_image(g_neg_S, "g_neg_S")))

    start = macro.last_event_ps
    region = np.ix_(rows, cols)
    results, targets, codes = [], [], []
    for half, image in images:
        half_codes = target_codes(image, config, read_V)
        driver = _CellDriver(macro, array, half, schedule)
        results.append(run_write_verify(half_codes, rows, cols, settings, driver.read, driver.pulse))
        targets.append(image[region])
        codes.append(half_codes[region])

    achieved = [macro.conductances(array)[half][region] for half, _ in images]
    shape = (len(images), len(rows), len(cols))
    pulses = np.zeros(shape, dtype=int)
    passed = np.zeros(shape, dtype=bool)
    final = np.zeros(shape, dtype=int)
    for k, result in enumerate(results):
        for cell in result.cells:
            index = (k, cell.row - rows.start, cell.col - cols.start)
            pulses[index] = cell.pulses
            passed[index] = cell.passed
            final[index] = cell.final_code
    return ProgrammingStats(
        array=int(array), rows=rows, cols=cols, halves=tuple(half for half, _ in images), settings=settings,
        read_V=read_V, code_step_S=config.adc.lsb_V * config.programming.g_verify_S / abs(read_V),
        target_S=np.array(targets), target_codes=np.array(codes), achieved_S=np.array(achieved),
        final_codes=final, pulses=pulses, passed=passed, results=tuple(results), start_time_ps=int(start),
        end_time_ps=int(macro.last_event_ps),
    )


def program_matrix(macro: AnalogMacro, array: int, mapping: MatrixMapping, *,
                   settings: WriteVerifySettings | None = None,
                   schedule: VerifySchedule | None = None) -> ProgrammingStats:
    """Program a mapped matrix into its corner of one array with write-verify.

    Only the m x n cells of the matrix are programmed: the positive half,
    and the negative half for a differential mapping. Other cells keep their
    conductances; the operations of the matrix do not use them.

    Parameters
    ----------
    macro : AnalogMacro
    array : int
    mapping : MatrixMapping
        From `amc.model.mapping.map_matrix` with the macro's config.
    settings, schedule
        See `program_conductances`.
    """
    g_pos, g_neg = mapping.array_images(macro.config.array)
    m, n = mapping.shape
    return program_conductances(macro, array, g_pos, g_neg, rows=range(m), cols=range(n), settings=settings,
                                schedule=schedule)


def _ps(seconds: float) -> int:
    return max(1, int(math.ceil(round(seconds / PICOSECOND, 6))))
