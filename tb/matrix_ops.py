"""Matrix-level host operations over the register-level driver.

`MatrixOperations` maps a problem to the macro the way a host program would:
program the matrix with the on-chip write-verify engine (or, for tests that
need exact conductances, through the model's programming backdoor), choose
the input scale and the settle time, run the operation through the
controller, auto-range on ADC clipping, and decode the ADC codes back to
problem units. It only reads the controller over the bus and
uses the *target* conductances for its estimates, never the programmed ones,
as a real host would.

The mapping, encoding, settling and range policies are those of the
model-only API `amc.model.solve`, so both give results of the same quality.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..model.circuits import build_circuit
from ..model.converters import adc_decode
from ..model.encoding import choose_input_scale, decode_output, encode_input, validate_vector
from ..model.errors import ArrayCapacityError, InvalidOperandError
from ..model.macro import adc_settle_eps, make_switch_state
from ..model.mapping import MatrixMapping, map_matrix, validate_matrix
from ..model.solve import AUTO_SETTLE_MARGIN, MAX_RANGE_STEPS, RANGE_STEP, RANGE_TARGET, check_invertible
from ..model.statespace import CircuitAnalysis, SettleEstimates, StabilityReport, check_stability
from ..model.switch_matrix import mode_by_name
from .driver import AmcDriver, OperationResult
from .errors import AdcClipError
from ..model.programming import target_codes
from .programming import WriteVerifyOptions, WriteVerifyReport, read_voltage, write_verify

__all__ = ["ProblemResult", "SettlingCheck", "MatrixOperations", "check_inv_problem"]

SETTLING_CHECK_FACTOR = 4
"""The settling check repeats an operation with this many times the settle cycles."""

SETTLING_CHECK_CODES = 1
"""Largest ADC code change between the two runs that still counts as settled (read noise and
rounding move a code by one)."""

log = logging.getLogger(__name__)

ProgramBackdoor = Callable[[int, np.ndarray, "np.ndarray | None"], None]


@dataclass
class ProblemResult:
    """Outcome of one matrix-level operation through the controller."""

    mode: str
    values: np.ndarray
    """Solution x (INV) or product (MVM, MVM_T), in problem units, decoded from the ADC codes."""
    codes: np.ndarray
    """ADC codes of the accepted run."""
    overrange: np.ndarray
    input_scale_V: float
    """Input scale of the accepted run, in volts per problem unit."""
    settle_cycles: int
    settle_time_s: float
    """Programmed settle time (SETTLE_CYCLES times the clock period), in seconds."""
    settle: SettleEstimates
    """Settling estimates of the target circuit for half an ADC LSB."""
    stability: StabilityReport
    mapping: MatrixMapping
    runs: list[OperationResult] = field(default_factory=list)
    """Every operation run, auto-ranging repetitions included."""
    clipped: bool = False
    """True if the accepted run still clipped (auto-ranging off or exhausted)."""

    @property
    def op_cycles(self) -> int:
        """Controller cycles of all runs together (OP_CYCLES summed)."""
        return sum(run.op_cycles for run in self.runs)


PROGRAMMING_METHODS = ("write-verify", "backdoor")


@dataclass
class ProgrammingSummary:
    """Mapping of one programmed matrix and, for write-verify, one report per half-array."""

    mapping: MatrixMapping
    method: str
    reports: list[WriteVerifyReport] = field(default_factory=list)

    @property
    def total_pulses(self) -> int:
        return sum(report.total_pulses for report in self.reports)

    @property
    def cycles(self) -> int:
        """Controller cycles of the write-verify runs together."""
        return sum(report.cycles for report in self.reports)

    @property
    def failed_cells(self) -> list[tuple[int, int, int]]:
        """(half, row, column) of every failed cell; half 0 is the positive half-array."""
        return [(report.half, row, col) for report in self.reports for row, col in report.failed_cells]

    def pulses_per_cell(self) -> np.ndarray:
        """Pulse counts of every programmed cell, both halves, flattened."""
        if not self.reports:
            return np.zeros(0, dtype=int)
        return np.concatenate([report.pulses.ravel() for report in self.reports])


@dataclass
class SettlingCheck:
    """Outcome of `MatrixOperations.check_settling`."""

    settled: bool
    max_code_change: int
    first: ProblemResult
    second: ProblemResult


class MatrixOperations:
    """Program matrices and run MVM, MVM_T and INV through an `AmcDriver`.

    Parameters
    ----------
    driver : AmcDriver
        Connected register-level driver.
    program_backdoor : callable(array, g_pos_S, g_neg_S), optional
        Sets the target conductances of an array directly in the model, for
        ``program(method="backdoor")``.
    """

    def __init__(self, driver: AmcDriver, program_backdoor: ProgramBackdoor | None = None):
        self.driver = driver
        self.params = driver.params
        self.config = driver.params.macro
        self._backdoor = program_backdoor
        self._mappings: dict[int, MatrixMapping] = {}

    def mapping(self, array: int) -> MatrixMapping:
        try:
            return self._mappings[array]
        except KeyError:
            raise ValueError(f"array {array} has not been programmed; call program() first") from None

    async def program(self, array: int, matrix, *, differential: bool | None = None,
                      method: str = "write-verify", options: WriteVerifyOptions | None = None) -> ProgrammingSummary:
        """Map `matrix` to conductances and program it into `array`.

        Parameters
        ----------
        method : {"write-verify", "backdoor"}
            "write-verify" programs every cell with the on-chip engine, as the
            chip would. "backdoor" sets the target conductances directly
            through the model, for tests that need exact conductances and
            document why.
        options : WriteVerifyOptions, optional
            Write-verify register settings.
        """
        if method not in PROGRAMMING_METHODS:
            raise ValueError(f"unknown programming method {method!r}; use one of {', '.join(PROGRAMMING_METHODS)}")
        if not isinstance(array, (int, np.integer)) or not 0 <= array < self.params.n_arrays:
            raise ValueError(f"array index {array!r} is invalid: use 0 to {self.params.n_arrays - 1}")
        values = validate_matrix(matrix)
        geometry = self.config.array
        if values.shape[0] > geometry.rows or values.shape[1] > geometry.cols:
            raise ArrayCapacityError(
                f"matrix of shape {values.shape[0]} x {values.shape[1]} does not fit one {geometry.rows} x "
                f"{geometry.cols} array; block solving is not supported yet, so use a matrix of at most the "
                "array size or a macro with larger arrays (--rows, --cols)"
            )
        mapping = map_matrix(values, self.config, differential=differential)
        g_pos, g_neg = mapping.array_images(geometry)
        array = int(array)
        summary = ProgrammingSummary(mapping=mapping, method=method)
        if method == "backdoor":
            if self._backdoor is None:
                raise ValueError("this backend has no programming backdoor; program with method='write-verify'")
            self._backdoor(array, g_pos, g_neg)
        else:
            m, n = mapping.shape
            read_V = read_voltage(self.params, None if options is None else options.read_code)
            for half, image in ((0, g_pos), (1, g_neg)):
                if image is None:
                    continue
                report = await write_verify(self.driver, array, target_codes(image, self.config, read_V), half=half,
                                            rows=range(m), cols=range(n), options=options)
                summary.reports.append(report)
        self._mappings[array] = mapping
        log.debug("programmed array %d by %s: %s, g0 = %.4g S", array, method, mapping.shape, mapping.g_unit_S)
        return summary

    def analyse(self, array: int, mode_name: str) -> tuple[CircuitAnalysis, SettleEstimates]:
        """Return the analysis of the *target* circuit of `array` in `mode_name` and its settling estimates."""
        mapping = self.mapping(array)
        mode = mode_by_name(mode_name)
        m, n = mapping.shape
        state = make_switch_state(mode, m, n, self.config, signed=mapping.differential, array=array)
        g_pos, g_neg = mapping.array_images(self.config.array)
        analysis = CircuitAnalysis(build_circuit(state, g_pos, g_neg, self.config))
        return analysis, analysis.settle_estimates(adc_settle_eps(self.config))

    def auto_settle_cycles(self, settle: SettleEstimates, analysis: CircuitAnalysis) -> int:
        """Return SETTLE_CYCLES for `AUTO_SETTLE_MARGIN` times the slowest-pole estimate."""
        if settle.slowest_pole_s is None:
            check_stability(analysis)
        seconds = AUTO_SETTLE_MARGIN * settle.slowest_pole_s
        cycles = self.params.cycles_for(seconds)
        limit = (1 << self.params.counter_width) - 1
        if cycles > limit:
            raise ValueError(
                f"the circuit needs {seconds:.3g} s to settle, more than the {limit}-cycle settle counter; "
                "use a better conditioned matrix or a slower clock"
            )
        return cycles

    async def solve(self, array: int, b, *, settle_cycles: int | None = None, auto_range: bool = True,
                    headroom: float = 1.0) -> ProblemResult:
        """Solve A x = b with the INV circuit on the matrix programmed in `array`.

        Raises
        ------
        InvalidOperandError, SingularMatrixError, UnstableCircuitError
            For a non-square, singular or INV-unstable matrix, before any operation runs.
        """
        mapping = self.mapping(array)
        m, n = mapping.shape
        if m != n:
            raise InvalidOperandError(
                f"INV needs a square matrix, but array {array} contains {m} x {n}; use multiply for non-square matrices"
            )
        check_invertible(mapping.effective_matrix())
        values = validate_vector(b, n, "b", allow_batch=False)
        return await self._run(array, "INV", values, settle_cycles, auto_range, headroom)

    async def multiply(self, array: int, x, *, transpose: bool = False, settle_cycles: int | None = None,
                       auto_range: bool = True, headroom: float = 1.0) -> ProblemResult:
        """Compute A x (MVM) or A^T x (MVM_T) with the matrix programmed in `array`."""
        mapping = self.mapping(array)
        m, n = mapping.shape
        values = validate_vector(x, m if transpose else n, "x", allow_batch=False)
        return await self._run(array, "MVM_T" if transpose else "MVM", values, settle_cycles, auto_range, headroom)

    async def check_settling(self, array: int, b, *, settle_cycles: int) -> SettlingCheck:
        """Detect sampling before the INV outputs settled.

        Runs the solve twice at the same input scale, with `settle_cycles` and
        with `SETTLING_CHECK_FACTOR` times as many; the result counts as
        settled if no ADC code moved by more than `SETTLING_CHECK_CODES`.
        """
        first = await self.solve(array, b, settle_cycles=settle_cycles, auto_range=False)
        second = await self.solve(array, b, settle_cycles=settle_cycles * SETTLING_CHECK_FACTOR, auto_range=False)
        change = int(np.max(np.abs(first.codes - second.codes)))
        return SettlingCheck(settled=change <= SETTLING_CHECK_CODES, max_code_change=change,
                             first=first, second=second)

    async def _run(self, array: int, mode_name: str, values: np.ndarray, settle_cycles: int | None,
                   auto_range: bool, headroom: float) -> ProblemResult:
        mapping = self.mapping(array)
        mode = mode_by_name(mode_name)
        analysis, settle = self.analyse(array, mode_name)
        if mode.name == "INV":
            check_stability(analysis)
        if settle_cycles is None:
            settle_cycles = self.auto_settle_cycles(settle, analysis)
        config = self.config
        m, n = mapping.shape
        limit = float(choose_input_scale(values, config.dac, headroom))
        scale = limit
        runs: list[OperationResult] = []

        async def run_at(scale_V: float) -> OperationResult:
            encoded = encode_input(values, mode, config.dac, scale_V=scale_V)
            request = self.driver.request(mode.name, array=array, rows=m, cols=n, inputs=encoded.codes,
                                          signed=mapping.differential, settle_cycles=settle_cycles)
            try:
                result = await self.driver.run(request)
            except AdcClipError as error:
                result = error.result
            runs.append(result)
            return result

        accepted = await run_at(scale)
        accepted_scale = scale
        if auto_range and np.any(accepted.overrange):
            steps = 0
            while np.any(accepted.overrange) and steps < MAX_RANGE_STEPS:
                scale /= RANGE_STEP
                steps += 1
                accepted = await run_at(scale)
                accepted_scale = scale
            if not np.any(accepted.overrange):
                # One more run aims the largest output at RANGE_TARGET of the
                # ADC full scale, within the DAC range; it replaces the
                # accepted run only if it does not clip.
                peak = float(np.max(np.abs(adc_decode(accepted.codes, config.adc))))
                better = limit if peak <= 0 else min(limit, scale * RANGE_TARGET * config.adc.full_scale_V / peak)
                if better > scale * (1 + 1e-9):
                    refined = await run_at(better)
                    if not np.any(refined.overrange):
                        accepted, accepted_scale = refined, better

        volts = adc_decode(accepted.codes, config.adc)
        decoded = decode_output(volts, mode, mapping.g_unit_S, config.circuit, accepted_scale)
        return ProblemResult(
            mode=mode.name, values=np.asarray(decoded, dtype=float), codes=accepted.codes.copy(),
            overrange=accepted.overrange.copy(), input_scale_V=accepted_scale, settle_cycles=settle_cycles,
            settle_time_s=settle_cycles * self.params.clock_period_ps * 1e-12, settle=settle,
            stability=analysis.stability, mapping=mapping, runs=runs, clipped=bool(np.any(accepted.overrange)),
        )


def check_inv_problem(matrix, config) -> StabilityReport:
    """Check that `matrix` can be solved by the INV circuit of `config`, before any simulation.

    Raises
    ------
    InvalidOperandError, ArrayCapacityError, SingularMatrixError, UnstableCircuitError
        With a message that names the value and the fix.
    """
    values = validate_matrix(matrix)
    check_invertible(values)
    mapping = map_matrix(values, config)
    n = values.shape[0]
    state = make_switch_state(mode_by_name("INV"), n, n, config, signed=mapping.differential)
    g_pos, g_neg = mapping.array_images(config.array)
    return check_stability(CircuitAnalysis(build_circuit(state, g_pos, g_neg, config)))
