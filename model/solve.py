"""High-level analog solve and multiply on the macro model, without the controller.

`solve(A, b)` runs the INV circuit, `multiply(A, x)` the MVM (or MVM_T)
circuit. `ProgrammedSolver` maps and programs a matrix once and then runs
many right-hand sides, vectorized over operations; `solve_many` is its
one-call form.

Programming (`programming` option) writes the mapped conductances:

- "write-verify": pulses and verify reads on every cell of the matrix
  (`amc.model.programming.program_matrix`), so the cells hold what the pulse
  response and the write-verify tolerance leave. The result reports the
  statistics (`AnalogResult.programming`).
- "backdoor": `AnalogMacro.program_backdoor`, the target plus a Gaussian
  error (`NonIdealities.programming`) in one step.
- "auto" (default): "write-verify", unless the configuration switches the
  programming error off (``NonIdealities.programming.enabled`` False, as in
  `MacroConfig.ideal`); then "backdoor" writes the targets exactly.

One operation follows this schedule, with times counted from the analog
enable. The DAC codes are latched before the enable. Output channel i (in
ascending line order) is sampled at ``settle_time + i * t_adc``, because one
ADC converts the channels in turn. The disable comes when the last conversion
ends, at ``settle_time + n_outputs * t_adc``. Consecutive operations start from
the outputs held by the previous one, as on the macro.

The automatic settle time is ``AUTO_SETTLE_MARGIN * ln(1/eps) / |Re p_slow|``
with p_slow the slowest closed-loop pole (inverters included) and eps half an
ADC LSB relative to full scale (2^-bits).

The first operation of a vector runs at an input scale that the `ranging`
option chooses:

- "step" (default): the largest scale the DAC allows (`headroom`), as the
  controller's auto-ranging starts. An INV output then often overranges and
  auto-ranging needs two more operations.
- "predict": the scale that puts the largest steady-state output of the
  programmed, noise-free circuit at `RANGE_TARGET` of the ADC full scale
  (never above the DAC limit). The model computes it from its circuit with
  one matrix-vector product per vector. A controller on silicon has no such
  oracle, so `AnalogResult.operations` then counts fewer operations than the
  controller's auto-ranging needs. DAC quantization and read noise can still
  push an output over the full scale, and auto-ranging then continues as below.

Auto-ranging (on by default) repeats an operation whose ADC input overranged
with the input scale divided by `RANGE_STEP`, then adjusts the scale once so
the largest output reaches `RANGE_TARGET` of the ADC full scale. Every
repetition is a real operation: it draws new read noise and counts in
`AnalogResult.operations`.

Speed: one operation without read noise costs a few matrix-vector products.
Each `ProgrammedSolver` computes the matrices once per mode: the steady-state
operator, the sample and disable propagators and the rail proof of
`amc.model.trajectory.GridRailProof` (see `AnalogMacro.run_operations`).
The fixed cost of the numpy calls dominates small problems, so pass many
vectors per call where possible. With read noise an operation also draws
the noise of the whole array (the same draws as the event-level path) and
solves its noisy circuit, by iterative refinement with the noise-free
factorization when a call has many or large systems. A multi-threaded BLAS
adds thread start-up to every small product, so set
``OPENBLAS_NUM_THREADS=1`` (or use threadpoolctl) when timing solves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from .config import MacroConfig
from .converters import DacConversion, adc_decode, dac_encode
from .encoding import (
    DEFAULT_HEADROOM,
    choose_input_scale,
    decode_output,
    input_sign,
    validate_vector,
)
from .errors import InvalidOperandError, MacroUsageError, SingularMatrixError
from .macro import PICOSECOND, AnalogMacro, BatchResult, adc_settle_eps, make_switch_state
from .mapping import MatrixMapping, effective_matrix, map_matrix, validate_matrix
from .programming import ProgrammingStats, program_matrix
from .statespace import CircuitAnalysis, SettleEstimates, StabilityReport, check_stability
from .switch_matrix import ModeEntry, mode_by_name
from .write_verify import WriteVerifySettings

__all__ = [
    "AUTO_SETTLE_MARGIN",
    "RANGE_STEP",
    "RANGE_TARGET",
    "MAX_RANGE_STEPS",
    "PROGRAMMING_METHODS",
    "RANGING_POLICIES",
    "AnalogResult",
    "ProgrammedSolver",
    "check_invertible",
    "solve",
    "solve_many",
    "multiply",
]

AUTO_SETTLE_MARGIN = 1.5
"""Factor on the slowest-pole settling estimate ln(1/eps) / |Re p_slow|.

The estimate assumes a deviation of one full scale in the slowest mode. An
operation can start further away (from a held output of the other sign, up
to two rails away), and non-normal circuits amplify transients. With 8-bit
converters the factor 1.5 allows a combined factor of exp(0.5 ln 256) = 16.
In the ngspice reference runs the 1 % and 0.1 % settling times from zero
state are 0.78 to 1.007 times the estimate."""

RANGE_STEP = 4.0
"""Auto-ranging divides the input scale by this factor after an ADC over-range."""

MAX_RANGE_STEPS = 8
"""Auto-ranging gives up after this many divisions (a factor 4^8 = 65536)."""

RANGE_TARGET = 0.9
"""Auto-ranging aims the largest |output| at this fraction of the ADC full scale."""

PROGRAMMING_METHODS = ("auto", "write-verify", "backdoor")
"""Values of the `programming` option (see the module docstring)."""

RANGING_POLICIES = ("step", "predict")
"""Values of the `ranging` option: how the first input scale is chosen (see the module docstring)."""

_SINGULAR_RCOND = 1e-12
"""Reciprocal condition number below which INV rejects a matrix as singular."""


def check_invertible(A) -> None:
    """Raise unless `A` is square and numerically non-singular (the INV circuit needs both).

    Raises
    ------
    InvalidOperandError
        For a non-square matrix (and the checks of `validate_matrix`).
    SingularMatrixError
        If the reciprocal 2-norm condition number is below 1e-12.
    """
    values = validate_matrix(A)
    m, n = values.shape
    if m != n:
        raise InvalidOperandError(
            f"INV needs a square matrix, got shape {m} x {n}; use multiply for non-square matrices"
        )
    singular_values = np.linalg.svd(values, compute_uv=False)
    rcond = singular_values[-1] / singular_values[0]
    if rcond < _SINGULAR_RCOND:
        raise SingularMatrixError(
            f"A is singular: smallest singular value {singular_values[-1]:.3g}, largest "
            f"{singular_values[0]:.3g} (reciprocal condition {rcond:.3g} < {_SINGULAR_RCOND:g}); the INV "
            "circuit has no unique steady state. Regularize it, for example A + d I with a damping d > 0"
        )


@dataclass(frozen=True)
class AnalogResult:
    """Result of one or more analog operations on a programmed matrix.

    Per-output arrays have shape (m,) for one vector and (m, K) for K vectors.
    """

    mode: str
    """Computing mode: "INV", "MVM" or "MVM_T"."""

    x: np.ndarray
    """Solution of A x = b (INV) or product A x / A^T x (MVM, MVM_T), in problem units, from the ADC codes."""

    codes: np.ndarray
    """ADC codes of the outputs."""

    volts: np.ndarray
    """Sampled op-amp outputs (clamped at the rails), in volts."""

    steady_state_V: np.ndarray
    """Finite-gain steady state the outputs were settling to, in volts."""

    input_scale_V: np.ndarray
    """Input scale s per vector, in volts per problem unit (after auto-ranging)."""

    dac_codes: np.ndarray
    """DAC codes of the inputs, shape (n,) or (n, K)."""

    dac_clipped: np.ndarray
    """True where an input exceeded the DAC range."""

    adc_overrange: np.ndarray
    """True where the ADC input exceeded its full scale or the output sat at a rail."""

    rail_clipped: np.ndarray
    """True where the sampled output sat at a rail."""

    touched_rails: np.ndarray
    """True per vector if an output may have reached a rail during the operation."""

    range_steps: np.ndarray
    """Times the input scale was divided by RANGE_STEP per vector (0 without over-range)."""

    operations: int
    """Analog operations run, auto-ranging repetitions included."""

    settle_time_s: float
    """Time from the enable to the first sample, in seconds."""

    settle_time_auto: bool
    """True if `settle_time_s` was chosen automatically."""

    operation_time_s: float
    """Time from the enable to the disable of one operation, in seconds."""

    settle: SettleEstimates
    """Settling estimates of the noise-free circuit for eps = 2^-adc_bits."""

    stability: StabilityReport
    mapping: MatrixMapping
    nonidealities: str
    """Description of the device non-idealities switched on."""

    programming: ProgrammingStats | None = None
    """Write-verify statistics of the matrix's programming; None if the backdoor wrote it."""

    @property
    def clipped(self) -> bool:
        """True if any DAC input clipped or any output overranged the ADC or sat at a rail."""
        return bool(np.any(self.dac_clipped) or np.any(self.adc_overrange) or np.any(self.rail_clipped))


@dataclass
class _ModeSetup:
    mode: ModeEntry
    state: object
    analysis: CircuitAnalysis
    channels: np.ndarray
    offsets_ps: np.ndarray
    disable_ps: int
    settle_ps: int
    settle_auto: bool
    settle: SettleEstimates
    input_sign: float
    """-1 for INV (the DACs feed -s b), +1 for the MVM modes (`amc.model.encoding.input_sign`)."""


@dataclass
class _Outcome:
    """Per-vector results of the operations kept so far (columns are vectors)."""

    codes: np.ndarray
    volts: np.ndarray
    steady: np.ndarray
    overrange: np.ndarray
    rail_clipped: np.ndarray
    touched: np.ndarray
    scale: np.ndarray
    dac_codes: np.ndarray
    dac_clipped: np.ndarray

    @classmethod
    def of(cls, scales: np.ndarray, encoded: DacConversion, result: BatchResult) -> "_Outcome":
        return cls(result.codes, result.volts, result.steady_state_V, result.overrange, result.rail_clipped,
                   result.touched_rails, scales, encoded.codes, encoded.clipped)

    def copy(self) -> "_Outcome":
        return _Outcome(*(np.array(getattr(self, f.name), copy=True) for f in fields(self)))

    def store(self, columns: np.ndarray, other: "_Outcome", accept: np.ndarray) -> None:
        """Replace the results of vectors `columns[accept]` by those of `other` (columns of `other` match `columns`)."""
        chosen = columns[accept]
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            mine[..., chosen] = theirs[..., accept]


class ProgrammedSolver:
    """A matrix mapped and programmed once, then used for many solves or products.

    Parameters
    ----------
    A : array_like, shape (m, n)
        Finite real matrix that fits one array.
    config : MacroConfig, optional
        Default `MacroConfig()`.
    differential : bool or None
        Signed mapping on both halves (True), unsigned (False), or automatic (None).
    settle_time_s : float, optional
        Time from the enable to the first sample, in seconds; None chooses it
        from the slowest closed-loop pole (see the module docstring).
    headroom : float
        Share of the largest positive DAC voltage used by the largest |entry| of each vector.
    auto_range : bool
        Repeat over-ranged operations at a smaller input scale.
    ranging : {"step", "predict"}
        How the first input scale is chosen. "step" starts at the DAC limit,
        as the controller does. "predict" starts at the scale predicted from
        the programmed circuit's steady state, usually one operation per
        vector. See the module docstring.
    array : int
        Array to program.
    macro : AnalogMacro, optional
        Macro instance to program and run on, keeping its stuck-cell map,
        random streams and held outputs; by default a new one from `config`.
        Programming another matrix into the same array later invalidates
        this solver.
    programming : {"auto", "write-verify", "backdoor"}
        How the conductances reach the cells; see the module docstring.
    programming_settings : WriteVerifySettings, optional
        Write-verify register values; default from `ProgrammingParams`
        (`amc.model.programming.write_verify_settings`).

    Notes
    -----
    Mapping, programming (write-verify, or the backdoor's programming
    error, and stuck cells) and the circuit analysis happen once, and so do
    the matrices of `AnalogMacro.run_operations` (on the first call of each
    mode). Without read noise an operation then costs O(J n_states^2) per
    vector, with J of about 10 to 20 grid points of the rail proof. With read
    noise every operation also draws the read noise of the whole array and
    solves its noisy circuit, O(n^2) per refinement step and vector (or one
    LU factorization per vector for a few small systems), to a relative
    1e-10. See `AnalogMacro.run_operations` for what differs from the
    event-level path.
    """

    def __init__(self, A, config: MacroConfig | None = None, *, differential: bool | None = None,
                 settle_time_s: float | None = None, headroom: float = DEFAULT_HEADROOM,
                 auto_range: bool = True, array: int = 0, macro: AnalogMacro | None = None,
                 programming: str = "auto", programming_settings: WriteVerifySettings | None = None,
                 ranging: str = "step"):
        if macro is not None and config is not None and config != macro.config:
            raise ValueError("config differs from macro.config; pass only the macro, or a matching config")
        if macro is not None:
            config = macro.config
        self.config = MacroConfig() if config is None else config
        self.matrix = validate_matrix(A)
        if settle_time_s is not None and not (isinstance(settle_time_s, (int, float)) and
                                              math.isfinite(settle_time_s) and settle_time_s > 0.0):
            raise ValueError(f"settle_time_s = {settle_time_s!r} is invalid: use a time in seconds above zero, "
                             "or None for the automatic choice")
        if not 0.0 < headroom <= 1.0:
            raise ValueError(f"headroom = {headroom!r} is invalid: use a fraction in (0, 1]")
        if programming not in PROGRAMMING_METHODS:
            raise ValueError(f"programming = {programming!r} is invalid: use one of {', '.join(PROGRAMMING_METHODS)}")
        if ranging not in RANGING_POLICIES:
            raise ValueError(f"ranging = {ranging!r} is invalid: use one of {', '.join(RANGING_POLICIES)}")
        if programming == "auto":
            programming = "write-verify" if self.config.nonideal.programming.enabled else "backdoor"
        self.settle_time_s = settle_time_s
        self.headroom = float(headroom)
        self.auto_range = bool(auto_range)
        self.ranging = ranging
        """First-scale policy: "step" or "predict"."""
        self.array = int(array)
        self.mapping = map_matrix(self.matrix, self.config, differential=differential)
        self.macro = AnalogMacro(self.config) if macro is None else macro
        self.programming = programming
        """Programming method used: "write-verify" or "backdoor"."""
        self.programming_stats: ProgrammingStats | None = None
        """Write-verify statistics; None for the backdoor."""
        if programming == "write-verify":
            self.programming_stats = program_matrix(self.macro, self.array, self.mapping,
                                                    settings=programming_settings)
        else:
            g_pos, g_neg = self.mapping.array_images(self.config.array)
            self.macro.program_backdoor(self.array, g_pos, g_neg)
        self._version = self.macro.conductance_version(self.array)
        self._setups: dict[str, _ModeSetup] = {}
        self._singular_checked = False

    def programmed_matrix(self) -> np.ndarray:
        """Return the matrix the programmed cells represent, (G+ - G-) / g0, in problem units.

        It includes level quantization, what programming left (write-verify
        error or the backdoor's programming error) and stuck cells, but not
        read noise.
        """
        m, n = self.mapping.shape
        g_pos, g_neg = self.macro.conductances(self.array)
        negative = g_neg[:m, :n] if self.mapping.differential else None
        return effective_matrix(g_pos[:m, :n], negative, self.mapping.g_unit_S)

    def _setup(self, name: str) -> _ModeSetup:
        if name in self._setups:
            return self._setups[name]
        mode = mode_by_name(name)
        m, n = self.mapping.shape
        state = make_switch_state(mode, m, n, self.config, signed=self.mapping.differential, array=self.array)
        analysis = self.macro.analysis(state)
        if mode.name == "INV":
            check_stability(analysis)
        settle = analysis.settle_estimates(adc_settle_eps(self.config))
        if self.settle_time_s is None:
            if settle.slowest_pole_s is None:
                check_stability(analysis)
            settle_s = AUTO_SETTLE_MARGIN * settle.slowest_pole_s
        else:
            settle_s = self.settle_time_s
        settle_ps = max(int(math.ceil(settle_s / PICOSECOND)), 1)
        channels = analysis.circuit.sensed_lines.copy()
        conversion_ps = self.macro.adc_conversion_ps
        offsets = settle_ps + conversion_ps * np.arange(len(channels), dtype=np.int64)
        setup = _ModeSetup(
            mode=mode, state=state, analysis=analysis, channels=channels, offsets_ps=offsets,
            disable_ps=settle_ps + conversion_ps * len(channels), settle_ps=settle_ps,
            settle_auto=self.settle_time_s is None, settle=settle, input_sign=input_sign(mode),
        )
        self._setups[name] = setup
        return setup

    def _check_singular(self) -> None:
        if self._singular_checked:
            return
        check_invertible(self.matrix)
        self._singular_checked = True

    def solve(self, B) -> AnalogResult:
        """Solve A x = b for one vector (shape (N,)) or K vectors (shape (N, K)) with the INV circuit.

        Raises
        ------
        InvalidOperandError
            For a non-square A, a wrong length of b, NaN or Inf.
        SingularMatrixError
            For a singular A.
        UnstableCircuitError
            If the programmed INV circuit is unstable.
        """
        self._check_singular()
        values = validate_vector(B, self.matrix.shape[0], "b")
        return self._run("INV", values)

    def multiply(self, X, *, transpose: bool = False) -> AnalogResult:
        """Compute A x (MVM) or A^T x (MVM_T) for one vector or K vectors (columns)."""
        m, n = self.matrix.shape
        length = m if transpose else n
        values = validate_vector(X, length, "x")
        return self._run("MVM_T" if transpose else "MVM", values)

    def _run(self, name: str, values: np.ndarray) -> AnalogResult:
        if self.macro.conductance_version(self.array) != self._version:
            raise MacroUsageError(
                f"array {self.array} was programmed again after this solver programmed it; "
                "create a new ProgrammedSolver for the new matrix"
            )
        setup = self._setup(name)
        single = values.ndim == 1
        batch = values[:, None] if single else values
        config = self.config

        limit = choose_input_scale(batch, config.dac, self.headroom)
        if self.ranging == "predict":
            scales = self._predicted_scales(setup, batch, limit)
        else:
            scales = limit.copy()
        outcome = self._operate(setup, batch, scales)
        operations = batch.shape[1]
        steps = np.zeros(batch.shape[1], dtype=int)
        if self.auto_range and outcome.overrange.any():
            outcome, more = self._auto_range(setup, batch, scales, limit, steps, outcome)
            operations += more

        x = decode_output(adc_decode(outcome.codes, config.adc), setup.mode, self.mapping.g_unit_S, config.circuit,
                          outcome.scale)

        def shaped(array):
            return array[:, 0] if single else array

        return AnalogResult(
            mode=setup.mode.name,
            x=shaped(x),
            codes=shaped(outcome.codes),
            volts=shaped(outcome.volts),
            steady_state_V=shaped(outcome.steady),
            input_scale_V=outcome.scale[0] if single else outcome.scale,
            dac_codes=shaped(outcome.dac_codes),
            dac_clipped=shaped(outcome.dac_clipped),
            adc_overrange=shaped(outcome.overrange),
            rail_clipped=shaped(outcome.rail_clipped),
            touched_rails=outcome.touched[0] if single else outcome.touched,
            range_steps=steps[0] if single else steps,
            operations=operations,
            settle_time_s=setup.settle_ps * PICOSECOND,
            settle_time_auto=setup.settle_auto,
            operation_time_s=setup.disable_ps * PICOSECOND,
            settle=setup.settle,
            stability=setup.analysis.stability,
            mapping=self.mapping,
            nonidealities=config.nonideal.describe(),
            programming=self.programming_stats,
        )

    def _operate(self, setup: _ModeSetup, columns: np.ndarray, scales: np.ndarray) -> _Outcome:
        """Run one operation per column of `columns` (problem units) at input scales `scales` (V per unit).

        The DAC codes are those of `amc.model.encoding.encode_input`: the
        same product sign * values * scale and `dac_encode`, without the
        scale checks (every caller passes finite scales above zero) and the
        mode-flag lookup, which cost microseconds per call.
        """
        encoded = dac_encode(setup.input_sign * columns * scales, self.config.dac)
        result = self.macro.run_operations(setup.state, encoded.codes, setup.channels, setup.offsets_ps,
                                           setup.disable_ps)
        return _Outcome.of(scales, encoded, result)

    def _predicted_scales(self, setup: _ModeSetup, batch: np.ndarray, limit: np.ndarray) -> np.ndarray:
        """Return the input scales that put the largest steady-state output at RANGE_TARGET of the ADC full scale.

        The steady state of the noise-free programmed circuit is linear in the
        DAC voltages, so the unquantized input at scale 1 V per unit gives the
        output per unit scale. Scales stay at or below the DAC limit `limit`.
        """
        n_out = len(setup.channels)
        per_unit = setup.analysis.steady_operator[:n_out] @ (setup.input_sign * batch)
        peak = np.abs(per_unit).max(axis=0)
        target = RANGE_TARGET * self.config.adc.full_scale_V
        # An all-zero output (b = 0) keeps the DAC limit.
        predicted = np.divide(target, peak, out=np.full_like(peak, np.inf), where=peak > 0.0)
        return np.minimum(predicted, limit)

    def _auto_range(self, setup: _ModeSetup, batch: np.ndarray, scales: np.ndarray, limit: np.ndarray,
                    steps: np.ndarray, first: _Outcome) -> tuple[_Outcome, int]:
        """Repeat over-ranged columns at smaller scales (see the module docstring).

        Returns the merged outcome and the number of extra operations.
        `scales` and `steps` are updated in place.
        """
        config = self.config
        full_scale = config.adc.full_scale_V
        outcome = first.copy()
        operations = 0
        pending = np.flatnonzero(np.any(first.overrange, axis=0))
        while pending.size and steps[pending].max() < MAX_RANGE_STEPS:
            scales[pending] /= RANGE_STEP
            steps[pending] += 1
            attempt = self._operate(setup, batch[:, pending], scales[pending])
            operations += len(pending)
            fine = ~np.any(attempt.overrange, axis=0)
            # Failed columns keep their latest attempt, which is what the
            # result reports if the range steps run out.
            outcome.store(pending, attempt, np.ones(len(pending), dtype=bool))
            ranged = pending[fine]
            pending = pending[~fine]

            # One more operation aims the largest output at RANGE_TARGET of
            # the ADC full scale, limited by the DAC range. Its result
            # replaces the previous one only if it does not overrange.
            peak = np.max(np.abs(adc_decode(attempt.codes[:, fine], config.adc)), axis=0)
            better = np.where(peak > 0, scales[ranged] * RANGE_TARGET * full_scale / np.maximum(peak, 1e-300),
                              limit[ranged])
            better = np.minimum(better, limit[ranged])
            refine = better > scales[ranged] * (1.0 + 1e-9)
            if refine.any():
                columns = ranged[refine]
                retry = self._operate(setup, batch[:, columns], better[refine])
                operations += len(columns)
                outcome.store(columns, retry, ~np.any(retry.overrange, axis=0))
        return outcome, operations


def solve(A, b, config: MacroConfig | None = None, *, settle_time_s: float | None = None,
          differential: bool | None = None, headroom: float = DEFAULT_HEADROOM,
          auto_range: bool = True, programming: str = "auto", ranging: str = "step") -> AnalogResult:
    """Solve A x = b on the analog INV circuit (model only, no controller).

    Parameters
    ----------
    A : array_like, shape (N, N)
        Non-singular matrix whose INV circuit is stable (for example symmetric
        positive-definite), at most the array size.
    b : array_like, shape (N,) or (N, K)
    config : MacroConfig, optional
    settle_time_s : float, optional
        Time from the enable to the first sample, in seconds; None for automatic.
    differential, headroom, auto_range, programming, ranging
        See `ProgrammedSolver`.

    Returns
    -------
    AnalogResult
        ``result.x`` is the solution in problem units; ``result.programming``
        the write-verify statistics.

    Raises
    ------
    InvalidOperandError, ArrayCapacityError, SingularMatrixError, UnstableCircuitError
        All are ValueError subclasses whose message names the value and the fix.
    """
    solver = ProgrammedSolver(A, config, differential=differential, settle_time_s=settle_time_s,
                              headroom=headroom, auto_range=auto_range, programming=programming, ranging=ranging)
    return solver.solve(b)


def solve_many(A, B, config: MacroConfig | None = None, **options) -> AnalogResult:
    """Solve A X = B for the K columns of B with one programming of A; see `ProgrammedSolver`."""
    values = np.asarray(B, dtype=float)
    if values.ndim != 2:
        raise InvalidOperandError(f"B has shape {values.shape}; solve_many expects shape (N, K)")
    return ProgrammedSolver(A, config, **options).solve(values)


def multiply(A, x, config: MacroConfig | None = None, *, transpose: bool = False,
             settle_time_s: float | None = None, differential: bool | None = None,
             headroom: float = DEFAULT_HEADROOM, auto_range: bool = True, programming: str = "auto",
             ranging: str = "step") -> AnalogResult:
    """Compute A x (MVM) or A^T x (MVM_T, with `transpose`) on the analog macro model.

    Parameters
    ----------
    A : array_like, shape (m, n)
    x : array_like, shape (n,) or (n, K); (m,) or (m, K) with `transpose`
    config : MacroConfig, optional
    transpose : bool
        Run the transposed circuit (DACs on the rows, TIAs on the columns).
    settle_time_s, differential, headroom, auto_range, programming, ranging
        See `ProgrammedSolver`.
    """
    solver = ProgrammedSolver(A, config, differential=differential, settle_time_s=settle_time_s,
                              headroom=headroom, auto_range=auto_range, programming=programming, ranging=ranging)
    return solver.multiply(x, transpose=transpose)
