"""Stateful event-level model of the analog macro.

`AnalogMacro` is the analog side that every backend (register model, Amaranth
simulation, cocotb co-simulation) drives with integer picosecond times:
program the arrays (programming pulses, or the backdoor), latch DAC codes,
enable a switch state, sample ADC channels, disable. Between a disable and the
next enable every op-amp output holds its value, and the next operation starts
its transient from there, so sampling too early reads a value that has not
settled.

A single-cell verify read (VERIFY: one DAC on row r, one TIA on column c) has
one op-amp and one pole, so `enable` evaluates it in closed form instead of
building and decomposing the circuit. A write-verify of a full array issues
tens of thousands of such reads; the closed form keeps each one to tens of
microseconds. It gives the same samples as the general path (within
floating-point rounding), which `AnalogMacro(..., verify_fast_path=False)`
selects for comparison.
"""

from __future__ import annotations

import math
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .circuits import LinearCircuit, OpAmpRole, build_circuit, circuit_topology
from .config import AdcParams, MacroConfig
from .converters import adc_convert, check_code, dac_decode
from .devices import NEGATIVE, POSITIVE, DeviceModel
from .errors import CircuitBuildError, MacroUsageError
from .rram_cell import SET
from .statespace import CircuitAnalysis, SettleEstimates, StabilityReport
from .switch_matrix import MODES, Conn, ModeEntry, SwitchState
from .trajectory import GridRailProof, RailScan, Trajectory, scan_rails

__all__ = [
    "AdcSample",
    "SampleRecord",
    "OperationRecord",
    "BatchResult",
    "AnalogMacro",
    "make_switch_state",
    "adc_settle_eps",
]

PICOSECOND = 1e-12

_CACHE_SIZE = 32
"""Circuit analyses kept per macro, keyed by conductances and switch state."""


def adc_settle_eps(macro_config: MacroConfig) -> float:
    """Return half an ADC LSB relative to the ADC full scale, 2^-bits (dimensionless)."""
    return 0.5 * macro_config.adc.lsb_V / macro_config.adc.full_scale_V


def make_switch_state(mode: ModeEntry, rows_active: int, cols_active: int, config: MacroConfig, *,
                      signed: bool = False, array: int = 0) -> SwitchState:
    """Return the switch state that enables the first `rows_active` rows and `cols_active` columns.

    This is the state for a matrix mapped to the top-left corner of an array
    (`amc.model.mapping.line_masks`).
    """
    geometry = config.array
    if not 1 <= rows_active <= geometry.rows or not 1 <= cols_active <= geometry.cols:
        raise CircuitBuildError(
            f"{rows_active} rows x {cols_active} columns do not fit a {geometry.rows} x {geometry.cols} array; "
            "enable between 1 and the array size of each"
        )
    if not 0 <= array < geometry.n_arrays:
        raise CircuitBuildError(f"array index {array} is out of range; use 0 to {geometry.n_arrays - 1}")
    row_enable = np.zeros(geometry.rows, dtype=bool)
    col_enable = np.zeros(geometry.cols, dtype=bool)
    row_enable[:rows_active] = True
    col_enable[:cols_active] = True
    return SwitchState(mode=mode, signed=bool(signed), array=int(array), row_enable=row_enable,
                       col_enable=col_enable)


@dataclass(frozen=True)
class AdcSample:
    """Result of one ADC conversion."""

    code: int
    """Signed ADC code."""

    overrange: bool
    """True if the input exceeded the ADC full scale or the op-amp output sat at a rail."""

    volts: float
    """Op-amp output at the sample instant (clamped at the rails), in volts."""

    rail_clipped: bool
    """True if the op-amp output sat at a rail."""


@dataclass(frozen=True)
class SampleRecord:
    """One sample taken during an operation."""

    time_ps: int
    channel: int
    code: int
    overrange: bool
    rail_clipped: bool
    in_circuit: bool
    """False if the sampled op-amp was not part of the circuit (it read its held value)."""


@dataclass
class OperationRecord:
    """Summary of one analog operation, for drivers to report.

    Array-valued fields are per line op-amp, in the order of `output_channels`.
    """

    index: int
    """Operation number since construction, from 0."""

    mode: str
    signed: bool
    array: int
    output_channels: tuple[int, ...]
    """ADC channels (sensed lines) of the circuit's line op-amps, ascending."""

    input_channels: tuple[int, ...]
    """DAC channels feeding the circuit, ascending."""

    enable_time_ps: int
    dac_volts: np.ndarray
    """DAC output voltages of `input_channels`, in volts."""

    initial_V: np.ndarray
    """Line op-amp outputs at the enable (the held values), in volts."""

    steady_state_V: np.ndarray
    """Finite-gain linear steady state, not clamped at the rails, in volts."""

    steady_state_beyond_rails: tuple[int, ...]
    """Channels whose steady state lies beyond the rails; their outputs cannot settle there."""

    settle_eps: float
    """Relative error of the `settle` estimates: half an ADC LSB relative to full scale."""

    response: "_CircuitResponse | _CellReadResponse" = field(repr=False)
    """Evaluates the op-amp outputs of this operation (general circuit or single-cell closed form)."""

    disable_time_ps: int | None = None
    samples: list[SampleRecord] = field(default_factory=list)

    @property
    def analysis(self) -> CircuitAnalysis:
        """Analysis of the circuit as operated (read noise included); built on first use for a fast verify read."""
        return self.response.analysis

    @property
    def trajectory(self) -> Trajectory:
        """Op-amp response of the general path; built on first use for a fast verify read."""
        return self.response.trajectory

    @property
    def settle(self) -> SettleEstimates:
        """Settling estimates for eps = `settle_eps` (half an ADC LSB relative to full scale)."""
        return self.response.settle_estimates(self.settle_eps)

    @property
    def stability(self) -> StabilityReport:
        """Stability verdict of the circuit as operated."""
        return self.analysis.stability

    @property
    def saturation_start_s(self) -> float | None:
        """Time after the enable from which an output may sit at a rail (None if never so far), in seconds."""
        return self.response.saturation_start_s

    @property
    def rail_clipped_channels(self) -> tuple[int, ...]:
        """Channels sampled while their op-amp output sat at a rail."""
        return tuple(sorted({s.channel for s in self.samples if s.rail_clipped}))

    @property
    def adc_overrange_channels(self) -> tuple[int, ...]:
        """Channels with an over-range ADC conversion."""
        return tuple(sorted({s.channel for s in self.samples if s.overrange}))

    def settle_time_s(self, eps: float | None = None) -> float | None:
        """Return the exact linear settling time of this operation from its initial state, in seconds.

        `eps` defaults to `settle.eps`; the reference is the largest |steady
        state| of the line op-amps. None for an unstable circuit.
        """
        eps = self.settle.eps if eps is None else eps
        reference = float(np.max(np.abs(self.steady_state_V)))
        if reference == 0.0:
            return 0.0
        return self.analysis.settle_time(eps, self.trajectory.linear.x0, self.dac_volts, reference_V=reference)


class _CircuitResponse:
    """Op-amp outputs of an operation from its circuit analysis and (saturating) trajectory."""

    def __init__(self, analysis: CircuitAnalysis, trajectory: Trajectory):
        self.analysis = analysis
        self.trajectory = trajectory
        self._settle: dict[float, SettleEstimates] = {}

    @property
    def op_amps(self) -> tuple[tuple[OpAmpRole, int], ...]:
        return self.analysis.circuit.op_amps

    @property
    def steady_state(self) -> np.ndarray:
        return self.trajectory.steady_state

    @property
    def saturation_start_s(self) -> float | None:
        return self.trajectory.saturation_start_s

    def internal(self, t_s: float, index: int) -> float:
        return float(self.trajectory.internal(t_s, index))

    def outputs(self, t_s: float) -> np.ndarray:
        return self.trajectory.outputs(t_s)

    def settle_estimates(self, eps: float) -> SettleEstimates:
        if eps not in self._settle:
            self._settle[eps] = self.analysis.settle_estimates(eps)
        return self._settle[eps]


class _CellReadResponse:
    """Closed-form response of a single-cell TIA read: one op-amp, one pole.

    The cell conductance G joins the DAC voltage u to the summing node, and
    the feedback G_fb joins the output x. The summing-node weights are
    W = G_fb / (G_fb + G) and W_s = G / (G_fb + G), so with m = W + 1/A0
    the one-state model of `amc.model.statespace` gives

        x_ss   = -W_s u / m
        x(tau) = x_ss + (x0 - x_ss) exp(-m tau),   tau = 2 pi GBW t,

    one pole at -2 pi GBW m. `AnalogMacro` uses it only when
    |x_ss| + |x0 - x_ss| <= rail_V: the output then moves monotonically
    from x0 to x_ss and stays inside the rails, where the general path is
    linear too. The analysis and trajectory of the general path are built
    only if a caller asks for them.
    """

    def __init__(self, state: SwitchState, config: MacroConfig, conductance_S: float, feedback_S: float,
                 x0: float, u: float, line: int):
        self._state = state
        self._config = config
        self._conductance_S = conductance_S
        self._x0 = x0
        self._u = u
        self._op_amps = ((OpAmpRole.LINE, line),)
        self._settle = {}
        total = feedback_S + conductance_S
        self._rate = 2.0 * math.pi * config.opamp.gbw_Hz
        self._decay = feedback_S / total + 1.0 / config.opamp.open_loop_gain
        self._steady = -((conductance_S / total) * u) / self._decay
        self._rail = config.opamp.rail_V
        self._analysis: CircuitAnalysis | None = None
        self._trajectory: Trajectory | None = None

    @property
    def analysis(self) -> CircuitAnalysis:
        if self._analysis is None:
            self._analysis = CircuitAnalysis(_cell_circuit(self._state, self._conductance_S, self._config))
        return self._analysis

    @property
    def trajectory(self) -> Trajectory:
        if self._trajectory is None:
            self._trajectory = Trajectory(self.analysis, [self._x0], [self._u])
        return self._trajectory

    @property
    def op_amps(self) -> tuple[tuple[OpAmpRole, int], ...]:
        return self._op_amps

    @property
    def steady_state(self) -> np.ndarray:
        return np.array([self._steady])

    @property
    def saturation_start_s(self) -> float | None:
        return None

    def internal(self, t_s: float, index: int) -> float:
        if t_s < 0:
            raise ValueError(f"time {t_s!r} s is before the start of the operation; use t_s >= 0")
        if index != 0:
            raise IndexError(f"a single-cell read has one op-amp output, got index {index}")
        return self._steady + (self._x0 - self._steady) * math.exp(-self._decay * (float(t_s) * self._rate))

    def outputs(self, t_s: float) -> np.ndarray:
        return np.array([min(max(self.internal(t_s, 0), -self._rail), self._rail)])

    def settle_estimates(self, eps: float) -> SettleEstimates:
        if eps not in self._settle:
            self._settle[eps] = self.analysis.settle_estimates(eps)
        return self._settle[eps]


def _selected_cell(state: SwitchState) -> tuple[int, int]:
    """Return the (row, column) of a single-cell state, raising MacroUsageError unless exactly one of each is on."""
    rows = np.flatnonzero(state.row_enable)
    cols = np.flatnonzero(state.col_enable)
    if len(rows) != 1 or len(cols) != 1:
        raise MacroUsageError(
            f"{state.mode.name} needs exactly one row and one column enabled, got rows {rows.tolist()} and "
            f"columns {cols.tolist()}; build the state with decode_switch_state or one-hot enable masks"
        )
    return int(rows[0]), int(cols[0])


def _cell_circuit(state: SwitchState, conductance_S: float, config: MacroConfig) -> LinearCircuit:
    """Return the circuit of a single-cell read whose selected cell shows `conductance_S`."""
    geometry = config.array
    images = np.zeros((2, geometry.rows, geometry.cols))
    row, col = state.cell
    images[NEGATIVE if state.half_negative else POSITIVE, row, col] = conductance_S
    return build_circuit(state, images[POSITIVE], images[NEGATIVE], config)


def _cell_read_feedback(mode: ModeEntry) -> str | None:
    """Return which feedback conductance a single-cell TIA read of `mode` uses, or None for other modes.

    The closed form of `_CellReadResponse` holds for one DAC driving the
    selected row directly and one TIA sensing the selected column.
    """
    flags = mode.conn
    required = Conn.CELL_SELECT | Conn.DAC_ROWS | Conn.OPA_SENSE_COLS
    excluded = (Conn.PULSE_DRIVERS | Conn.DAC_ROWS_GIN | Conn.DAC_COLS | Conn.OPA_SENSE_ROWS | Conn.OPA_DRIVE_COLS
                | Conn.NEG_INVERTERS)
    if flags & required != required or flags & excluded:
        return None
    has_gf, has_gv = bool(flags & Conn.OPA_FEEDBACK_GF), bool(flags & Conn.OPA_FEEDBACK_GV)
    if has_gf == has_gv:
        return None
    return "g_f" if has_gf else "g_verify"


# Per mode code, because IntFlag arithmetic costs microseconds and enable runs for every verify read.
_CELL_READ_FEEDBACK = {entry.code: _cell_read_feedback(entry) for entry in MODES}
_PULSE_MODES = frozenset(entry.code for entry in MODES if entry.conn & Conn.PULSE_DRIVERS)


class _BatchPlan:
    """Matrices and indices of `AnalogMacro.run_operations` for one circuit and sample schedule, computed once.

    The propagators are the same `CircuitAnalysis.propagator_rows` products
    that every call computed before this cache existed, so the samples do not change.
    """

    def __init__(self, analysis: CircuitAnalysis, rows: np.ndarray, sample_s: np.ndarray, disable_s: float,
                 rail_V: float):
        circuit = analysis.circuit
        n_states = circuit.n_states
        self.analysis = analysis
        self.rows = rows
        """State index of each sample."""
        self.sample_propagator = analysis.propagator_rows(rows, sample_s)
        """Rows of exp(-M tau) at the sample times, shape (n_samples, n_states)."""
        self.end_propagator = analysis.propagator_rows(np.arange(n_states), np.full(n_states, disable_s))
        """exp(-M tau) at the disable, shape (n_states, n_states)."""
        self.steady_operator = analysis.steady_operator
        self.sensed_lines = circuit.sensed_lines
        self.inverter_lines = np.array([line for role, line in circuit.op_amps if role is OpAmpRole.INVERTER],
                                       dtype=int)
        self.tau_end = disable_s * analysis.rate_rad_per_s
        self._rail_V = rail_V
        self._proof: GridRailProof | None | bool = False

    @property
    def rail_proof(self) -> GridRailProof | None:
        """Grid rail proof up to the disable, built on first use; None where it does not apply."""
        if self._proof is False:
            self._proof = GridRailProof.build(self.analysis, self._rail_V, self.tau_end)
        return self._proof

    def initial_state(self, held: dict) -> np.ndarray:
        """Return the held outputs of the circuit's op-amps, line op-amps first (as `_initial_state`)."""
        return np.concatenate([held[OpAmpRole.LINE][self.sensed_lines], held[OpAmpRole.INVERTER][self.inverter_lines]])

    def store_held(self, held: dict, values: np.ndarray) -> None:
        """Store op-amp outputs as the held values (as `_store_held`)."""
        n_line = len(self.sensed_lines)
        held[OpAmpRole.LINE][self.sensed_lines] = values[:n_line]
        held[OpAmpRole.INVERTER][self.inverter_lines] = values[n_line:]


_READ_NOISE_CHUNK_BYTES = 1 << 20
"""Size of the read-noise draws of one chunk of operations in `run_operations`, in bytes.

Operations are processed in chunks so that the draws of a large batch (the
whole array for every operation) do not all sit in memory at once."""


class _ScratchArrays:
    """Flat float64 work arrays of one macro, reused across batch calls and grown on demand.

    Fresh arrays of a megabyte cost a page fault per 4 KiB once the
    allocator has returned their memory to the system. One set per macro
    bounds the memory to the largest chunk, whatever the number of circuits.
    """

    def __init__(self):
        self._arrays: dict[str, np.ndarray] = {}

    def get(self, name: str, size: int) -> np.ndarray:
        """Return a contiguous float64 array of `size` elements; its contents are undefined."""
        array = self._arrays.get(name)
        if array is None or array.size < size:
            array = np.empty(size)
            self._arrays[name] = array
        return array[:size]


class _NoisySteadyStates:
    """Steady states of `run_operations` operations with read noise, vectorized over the operations.

    Each operation draws the read noise of the whole array, in the order of
    `AnalogMacro.enable` (`DeviceModel.read_many`). Its circuit differs from
    the noise-free one only in the rows of the line op-amps, because the
    cells join only their summing nodes. Those rows are built for all
    operations of a chunk at once (`CircuitTopology.line_conductance`, equal
    to `build_circuit` to the last bit) and the systems are solved with
    `CircuitAnalysis.solve_line_perturbed`: iterative refinement with the
    noise-free factorization to `amc.model.statespace.REFINEMENT_TOLERANCE`,
    or one direct factorization per operation where that is cheaper.
    """

    def __init__(self, nominal: CircuitAnalysis, state: SwitchState, config: MacroConfig):
        self.nominal = nominal
        self.topology = circuit_topology(state, config)
        self.half_negative = bool(state.half_negative)
        self.cells = (slice(None),) + self.topology.block_index
        """Index of the enabled block of both halves in a (2, rows, cols) conductance stack."""
        self.inverse_gain = 1.0 / config.opamp.open_loop_gain
        circuit = nominal.circuit
        self.other_source_weights = circuit.source_weights[circuit.n_outputs:]
        """Rows of W_s that read noise does not change (inverters)."""

    def steady_states(self, devices: DeviceModel, programmed_S: np.ndarray, volts_in: np.ndarray,
                      scratch: _ScratchArrays) -> np.ndarray:
        """Return x_ss of each operation, shape (n_states, K), for DAC voltages `volts_in` (n_sources, K)."""
        count = volts_in.shape[1]
        chunk = max(1, _READ_NOISE_CHUNK_BYTES // (programmed_S.size * programmed_S.itemsize))
        most = min(chunk, count)
        row_size = self.topology.n_line * (self.topology.n_states + self.topology.n_sources)
        draws = scratch.get("read noise draws", most * programmed_S.size)
        line_rows = scratch.get("line rows", most * row_size)

        steady = np.empty((self.topology.n_states, count))
        for first in range(0, count, chunk):
            volts = volts_in[:, first:first + chunk]
            rows = line_rows[:volts.shape[1] * row_size].reshape(volts.shape[1], self.topology.n_line, -1)
            steady[:, first:first + volts.shape[1]] = self._chunk(devices, programmed_S, volts, draws, rows)
        return steady

    def _chunk(self, devices: DeviceModel, programmed_S: np.ndarray, volts: np.ndarray, draws: np.ndarray,
               rows: np.ndarray) -> np.ndarray:
        """Return x_ss of the operations of one chunk; `draws` and `rows` receive their noise and line rows."""
        topology = self.topology
        n_line, n_states = topology.n_line, topology.n_states
        cells = devices.read_many(programmed_S, volts.shape[1], self.cells, buffer=draws)
        positive = topology.cells_from_block(cells[:, POSITIVE])
        negative = topology.cells_from_block(cells[:, NEGATIVE])
        if self.half_negative:
            positive, negative = negative, None

        # The line rows of W and W_s, and of M = W + I/A0, as build_circuit
        # and CircuitAnalysis form them.
        conductance = topology.line_conductance(positive, negative, out=rows)
        weights = np.divide(conductance, conductance.sum(axis=-1)[..., None], out=conductance)
        lines = np.arange(n_line)
        weights[:, lines, lines] += self.inverse_gain

        rhs = np.empty((n_states, volts.shape[1]))
        rhs[:n_line] = -np.matmul(weights[:, :, n_states:], volts.T[:, :, None])[:, :, 0].T
        rhs[n_line:] = -(self.other_source_weights @ volts)
        steady, _ = self.nominal.solve_line_perturbed(weights[:, :, :n_states], rhs)
        return steady


@dataclass(frozen=True)
class BatchResult:
    """Result of `AnalogMacro.run_operations`: K operations on one switch state."""

    volts: np.ndarray
    """Sampled op-amp outputs, clamped at the rails, shape (n_samples, K), in volts."""

    codes: np.ndarray
    """ADC codes, shape (n_samples, K)."""

    overrange: np.ndarray
    """ADC over-range flags (rail clipping included), shape (n_samples, K)."""

    rail_clipped: np.ndarray
    """True where the sampled output sat at a rail, shape (n_samples, K)."""

    touched_rails: np.ndarray
    """True for operations in which an output may have reached a rail before the disable, shape (K,)."""

    steady_state_V: np.ndarray
    """Finite-gain steady state of the line op-amps, shape (n_outputs, K), in volts."""

    analysis: CircuitAnalysis
    """Analysis of the noise-free programmed circuit."""

    start_time_ps: int
    end_time_ps: int


class AnalogMacro:
    """Analog macro: arrays, op-amps, DACs and ADC behind the switch matrix.

    Parameters
    ----------
    config : MacroConfig, optional
        Geometry, analog parameters, non-idealities and seed; default `MacroConfig()`.
    verify_fast_path : bool
        Evaluate single-cell verify reads in closed form (default). False
        builds and analyses their circuit like any other operation; both give
        the same samples, so False only serves to check the closed form.

    Notes
    -----
    Every random draw comes from ``config.seed`` (see `amc.model.devices`),
    so the same event sequence gives the same codes. Cells start at
    g_min + `CellParams.initial_fraction` (g_max - g_min) (stuck cells at
    their stuck value), DAC latches at code 0 and op-amp holds at 0 V.
    """

    def __init__(self, config: MacroConfig | None = None, *, verify_fast_path: bool = True):
        self.config = MacroConfig() if config is None else config
        if not isinstance(self.config, MacroConfig):
            raise TypeError(f"config must be a MacroConfig, got {type(self.config).__name__}")
        geometry = self.config.array
        self.devices = DeviceModel(self.config)
        self.verify_fast_path = bool(verify_fast_path)
        self._programmed = self.devices.cells.fresh_conductance(self.devices.stuck_map.value_S)
        # _versions counts every change of an array's conductances (cache key);
        # _passes counts programming passes (see programming_count).
        self._versions = [0] * geometry.n_arrays
        self._passes = [0] * geometry.n_arrays
        self._pass_open = [False] * geometry.n_arrays
        self._pulse_count = 0
        lines = geometry.lines
        self._dac_codes = np.zeros(lines, dtype=np.int64)
        self._held = {OpAmpRole.LINE: np.zeros(lines), OpAmpRole.INVERTER: np.zeros(lines)}
        self._cache: OrderedDict[tuple, CircuitAnalysis] = OrderedDict()
        # Batch plans and read-noise solvers live as long as their analysis
        # (cache entry or a caller's reference).
        self._batch_plans: weakref.WeakKeyDictionary[CircuitAnalysis, dict[tuple, _BatchPlan]] = (
            weakref.WeakKeyDictionary())
        self._noisy_solvers: weakref.WeakKeyDictionary[CircuitAnalysis, _NoisySteadyStates] = (
            weakref.WeakKeyDictionary())
        self._scratch = _ScratchArrays()
        self._active: OperationRecord | None = None
        self._last_operation: OperationRecord | None = None
        self._operation_count = 0
        self._last_event_ps = 0

    # Timing ------------------------------------------------------------

    @property
    def bias_ready_delay_ps(self) -> int:
        """Delay from analog enable to the bias-ready signal, in whole picoseconds (rounded up)."""
        return _seconds_to_ps(self.config.circuit.bias_settle_time_s)

    @property
    def adc_conversion_ps(self) -> int:
        """Time from an ADC start strobe to a valid code, in whole picoseconds (rounded up)."""
        return _seconds_to_ps(self.config.adc.conversion_time_s)

    @property
    def dac_settle_ps(self) -> int:
        """Settling time of a DAC output after a code change, in whole picoseconds (rounded up)."""
        return _seconds_to_ps(self.config.dac.conversion_time_s)

    # State queries -------------------------------------------------------

    @property
    def is_enabled(self) -> bool:
        """True between `enable` and `disable`."""
        return self._active is not None

    @property
    def last_operation(self) -> OperationRecord | None:
        """Record of the running or most recent event-level operation, None before the first."""
        return self._active if self._active is not None else self._last_operation

    @property
    def last_event_ps(self) -> int:
        """Time of the latest event (the end of the latest pulse), in picoseconds; the next event may not be earlier."""
        return self._last_event_ps

    @property
    def operation_count(self) -> int:
        """Number of analog operations (enables) so far, batch operations included."""
        return self._operation_count

    def programming_count(self, array: int) -> int:
        """Return how often `array` has been programmed since construction.

        A backdoor write counts once, and so does a pass of pulses (with the
        verify reads between them) that no other operation interrupts: a
        write-verify of both halves is one programming.
        """
        self._check_array(array)
        return self._passes[array]

    def conductance_version(self, array: int) -> int:
        """Return a counter that changes with every backdoor write or pulse on `array`.

        A caller that stores it after programming can tell later whether the
        conductances may have changed since.
        """
        self._check_array(array)
        return self._versions[array]

    @property
    def pulse_count(self) -> int:
        """Programming pulses applied since construction, on every array."""
        return self._pulse_count

    def held_outputs(self) -> np.ndarray:
        """Return the held outputs of the line op-amps (ADC channels), in volts."""
        return self._held[OpAmpRole.LINE].copy()

    def dac_codes(self) -> np.ndarray:
        """Return the latched code of every DAC channel."""
        return self._dac_codes.copy()

    # Programming -----------------------------------------------------------

    def program_backdoor(self, array: int, g_pos_S, g_neg_S=None) -> None:
        """Write target conductances into one array, bypassing the pulses and the controller.

        It applies the Gaussian programming error (`NonIdealities.programming`)
        and the stuck-cell map in one step. On silicon a matrix reaches the
        array only through pulses: `apply_pulse`, driven by the controller's
        write-verify engine or by `amc.model.programming.program_matrix`.

        Parameters
        ----------
        array : int
            Array index, 0 to n_arrays - 1.
        g_pos_S : array_like, shape (rows, cols)
            Targets of the positive half, in siemens, inside [g_min_S, g_max_S].
        g_neg_S : array_like, shape (rows, cols), optional
            Targets of the negative half; None leaves that half as it is.
        """
        if self._active is not None:
            raise MacroUsageError("program_backdoor during an analog operation; call disable first")
        self._check_array(array)
        target = self._programmed[array].copy()
        halves = [POSITIVE]
        target[POSITIVE] = self._check_image(g_pos_S, "g_pos_S")
        if g_neg_S is not None:
            target[NEGATIVE] = self._check_image(g_neg_S, "g_neg_S")
            halves.append(NEGATIVE)
        self._programmed[array] = self.devices.program(array, target, tuple(halves))
        self._versions[array] += 1
        self._passes[array] += 1
        self._pass_open[array] = False

    def conductances(self, array: int) -> tuple[np.ndarray, np.ndarray]:
        """Return copies of the programmed (positive, negative) conductances of an array, in siemens."""
        self._check_array(array)
        return self._programmed[array, POSITIVE].copy(), self._programmed[array, NEGATIVE].copy()

    def apply_pulse(self, time_ps: int, state: SwitchState, polarity: int, amplitude_code: int,
                    width_ps: int) -> None:
        """Apply one programming pulse to the cell that `state` selects, starting at `time_ps`.

        The new conductance replaces the stored one, so every later operation
        (verify reads, MVM, INV) and `conductances` see it. `amc.model.rram_cell`
        gives the response; stuck cells do not change.

        Parameters
        ----------
        time_ps : int
            Start of the pulse, in picoseconds; not before the previous event.
            The next event may come at ``time_ps + width_ps`` at the earliest.
        state : SwitchState
            A PROGRAM state (CELL_SELECT | PULSE_DRIVERS): `state.cell` is the
            (row, column), `state.array` the array, and `state.half_negative`
            selects the negative half.
        polarity : int
            1 (SET): gate voltage ``amplitude_code * ProgrammingParams.gate_lsb_V``.
            0 (RESET): source-line voltage ``amplitude_code * ProgrammingParams.source_line_lsb_V``.
        amplitude_code : int
            0 to 2^amplitude_bits - 1.
        width_ps : int
            Pulse width, in picoseconds, above zero.

        Raises
        ------
        MacroUsageError
            During an analog operation, for a time before the previous event,
            a state that is not PROGRAM, or a polarity, amplitude or width out of range.
        """
        time_ps = self._check_time(time_ps, "pulse")
        if self._active is not None:
            raise MacroUsageError(
                f"pulse at {time_ps} ps during the operation enabled at {self._active.enable_time_ps} ps; "
                "call disable first"
            )
        self._check_state(state)
        if state.mode.code not in _PULSE_MODES or state.signed:
            raise MacroUsageError(
                f"apply_pulse needs an unsigned PROGRAM state (CELL_SELECT | PULSE_DRIVERS), got "
                f"{state.mode.name}{' signed' if state.signed else ''}; decode the switch word of the pulse"
            )
        if isinstance(polarity, (bool, np.bool_)) or polarity not in (0, 1):
            raise MacroUsageError(f"pulse polarity {polarity!r} is invalid; use 1 (SET) or 0 (RESET)")
        programming = self.config.programming
        top = (1 << programming.amplitude_bits) - 1
        if (isinstance(amplitude_code, (bool, np.bool_)) or not isinstance(amplitude_code, (int, np.integer))
                or not 0 <= amplitude_code <= top):
            raise MacroUsageError(
                f"pulse amplitude code {amplitude_code!r} is invalid; use an integer from 0 to {top} "
                f"(ProgrammingParams.amplitude_bits = {programming.amplitude_bits})"
            )
        if isinstance(width_ps, (bool, np.bool_)) or not isinstance(width_ps, (int, np.integer)) or width_ps <= 0:
            raise MacroUsageError(f"pulse width {width_ps!r} is invalid; use an integer number of picoseconds above 0")
        row, col = _selected_cell(state)
        half = NEGATIVE if state.half_negative else POSITIVE
        lsb_V = programming.gate_lsb_V if int(polarity) == SET else programming.source_line_lsb_V
        self.devices.cells.apply_pulse(self._programmed, state.array, half, row, col, int(polarity),
                                       int(amplitude_code) * lsb_V, int(width_ps) * PICOSECOND)
        self._versions[state.array] += 1
        if not self._pass_open[state.array]:
            self._passes[state.array] += 1
            self._pass_open[state.array] = True
        self._pulse_count += 1
        self._last_event_ps = time_ps + int(width_ps)

    # DACs ----------------------------------------------------------------

    def load_dac(self, channel: int, code: int) -> None:
        """Latch a signed code into one DAC channel.

        The analog input of an operation is the latch content at its enable. A
        load during an operation takes effect at the next enable, because the
        event interface gives loads no time.
        """
        self._check_channel(channel)
        self._dac_codes[channel] = check_code(code, self.config.dac.bits, f"DAC channel {channel}")

    # Operations ------------------------------------------------------------

    def analysis(self, state: SwitchState) -> CircuitAnalysis:
        """Return the analysis of `state` on the programmed conductances without read noise (cached)."""
        self._check_state(state)
        key = (
            state.array, self._versions[state.array], state.mode.code, bool(state.signed),
            np.asarray(state.row_enable, dtype=bool).tobytes(), np.asarray(state.col_enable, dtype=bool).tobytes(),
        )
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        conductance = self._programmed[state.array]
        analysis = CircuitAnalysis(build_circuit(state, conductance[POSITIVE], conductance[NEGATIVE], self.config))
        self._cache[key] = analysis
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return analysis

    def _operation_analysis(self, state: SwitchState) -> CircuitAnalysis:
        if not self.devices.read_noise_on:
            return self.analysis(state)
        read = self.devices.read(self._programmed[state.array])
        return CircuitAnalysis(build_circuit(state, read[POSITIVE], read[NEGATIVE], self.config))

    def _initial_state(self, circuit: LinearCircuit) -> np.ndarray:
        return np.array([self._held[role][line] for role, line in circuit.op_amps])

    def _store_held(self, op_amps, values: np.ndarray) -> None:
        for (role, line), value in zip(op_amps, values):
            self._held[role][line] = value

    def enable(self, time_ps: int, state: SwitchState) -> OperationRecord:
        """Close the switches of `state` and power the op-amps at `time_ps`.

        Builds the circuit with the programmed conductances (read noise drawn
        now if enabled), and starts the transient from the op-amp outputs held
        at the previous disable. An unstable circuit is accepted: its outputs
        run to the rails, and the record's `stability` gives the reason. A
        single-cell read (VERIFY) draws read noise for the selected cell only.

        Returns
        -------
        OperationRecord
            The record of this operation, also available as `last_operation`.

        Raises
        ------
        MacroUsageError
            During another operation, for a time before the previous event, or
            for a PROGRAM state (a pulse is not an operation; use `apply_pulse`).
        """
        time_ps = self._check_time(time_ps, "enable")
        if self._active is not None:
            raise MacroUsageError(
                f"enable at {time_ps} ps while the operation enabled at {self._active.enable_time_ps} ps "
                "is still running; call disable first"
            )
        self._check_state(state)
        if state.mode.code in _PULSE_MODES:
            raise MacroUsageError(f"{state.mode.name} applies a pulse and forms no circuit; call apply_pulse")
        feedback = None if state.signed else _CELL_READ_FEEDBACK[state.mode.code]
        if feedback is not None:
            record = self._enable_cell_read(time_ps, state, feedback)
        else:
            # Any operation other than a verify read ends the programming passes.
            self._pass_open = [False] * len(self._pass_open)
            record = self._enable_circuit(time_ps, state)
        self._active = record
        self._operation_count += 1
        self._last_event_ps = time_ps
        return record

    def _enable_circuit(self, time_ps: int, state: SwitchState) -> OperationRecord:
        analysis = self._operation_analysis(state)
        circuit = analysis.circuit
        x0 = self._initial_state(circuit)
        dac_volts = dac_decode(self._dac_codes[circuit.source_channels], self.config.dac)
        response = _CircuitResponse(analysis, Trajectory(analysis, x0, dac_volts))
        n_out = circuit.n_outputs
        return self._record(time_ps, state, response, tuple(int(line) for line in circuit.sensed_lines),
                            tuple(int(line) for line in circuit.source_channels), dac_volts, x0[:n_out].copy(),
                            response.steady_state[:n_out].copy())

    def _enable_cell_read(self, time_ps: int, state: SwitchState, feedback: str) -> OperationRecord:
        row, col = _selected_cell(state)
        half = NEGATIVE if state.half_negative else POSITIVE
        conductance = self.devices.read_cell(self._programmed[state.array, half, row, col])
        x0 = float(self._held[OpAmpRole.LINE][col])
        u = int(self._dac_codes[row]) * self.config.dac.lsb_V
        feedback_S = self.config.circuit.g_f_S if feedback == "g_f" else self.config.programming.g_verify_S
        response = _CellReadResponse(state, self.config, conductance, feedback_S, x0, u, col)
        steady = response.steady_state
        if not (self.verify_fast_path and abs(steady[0]) + abs(x0 - steady[0]) <= self.config.opamp.rail_V):
            # The general path, on the same noisy conductance, handles outputs
            # that may reach a rail (saturating integration).
            analysis = CircuitAnalysis(_cell_circuit(state, conductance, self.config))
            response = _CircuitResponse(analysis, Trajectory(analysis, [x0], [u]))
            steady = response.steady_state[:1].copy()
        return self._record(time_ps, state, response, (col,), (row,), np.array([u]), np.array([x0]), steady)

    def _record(self, time_ps: int, state: SwitchState, response, outputs: tuple[int, ...],
                inputs: tuple[int, ...], dac_volts: np.ndarray, initial: np.ndarray,
                steady: np.ndarray) -> OperationRecord:
        rail = self.config.opamp.rail_V
        return OperationRecord(
            index=self._operation_count,
            mode=state.mode.name,
            signed=bool(state.signed),
            array=int(state.array),
            output_channels=outputs,
            input_channels=inputs,
            enable_time_ps=time_ps,
            dac_volts=dac_volts,
            initial_V=initial,
            steady_state_V=steady,
            steady_state_beyond_rails=tuple(line for line, v in zip(outputs, steady) if abs(v) > rail),
            settle_eps=adc_settle_eps(self.config),
            response=response,
        )

    def sample(self, time_ps: int, channel: int) -> AdcSample:
        """Sample op-amp output `channel` at `time_ps` and convert it.

        During an operation the output follows the circuit's response since
        the enable. A channel outside the circuit, or any channel while
        disabled, reads its held value.
        """
        time_ps = self._check_time(time_ps, "sample")
        self._check_channel(channel)
        rail = self.config.opamp.rail_V
        record = self._active
        in_circuit = record is not None and channel in record.output_channels
        if in_circuit:
            index = record.output_channels.index(channel)
            elapsed_s = (time_ps - record.enable_time_ps) * PICOSECOND
            internal = record.response.internal(elapsed_s, index)
            volts = min(max(internal, -rail), rail)
            at_rail = abs(internal) >= rail
        else:
            volts = float(self._held[OpAmpRole.LINE][channel])
            at_rail = abs(volts) >= rail
        code, overrange = _convert_one(volts, self.config.adc)
        sample = AdcSample(code=code, overrange=overrange or at_rail, volts=volts, rail_clipped=at_rail)
        if record is not None:
            record.samples.append(SampleRecord(time_ps, int(channel), sample.code, sample.overrange,
                                               at_rail, in_circuit))
        self._last_event_ps = time_ps
        return sample

    def disable(self, time_ps: int) -> None:
        """Open the switches at `time_ps`; every op-amp output of the circuit holds its value then.

        The hold stores the clamped output. The next operation starts its
        internal pole nodes from it, so no wind-up carries over.
        """
        time_ps = self._check_time(time_ps, "disable")
        record = self._active
        if record is None:
            raise MacroUsageError(f"disable at {time_ps} ps without an enabled operation")
        elapsed_s = (time_ps - record.enable_time_ps) * PICOSECOND
        self._store_held(record.response.op_amps, record.response.outputs(elapsed_s))
        record.disable_time_ps = time_ps
        self._last_operation = record
        self._active = None
        self._last_event_ps = time_ps

    # Batch operations ------------------------------------------------------------

    def run_operations(self, state: SwitchState, dac_codes, sample_channels, sample_offsets_ps,
                       disable_offset_ps: int, start_time_ps: int | None = None) -> BatchResult:
        """Run K operations on one switch state, vectorized over operations.

        Operation k is equivalent to the event sequence: latch column k of
        `dac_codes` into the circuit's input channels, ``enable(T_k)``,
        ``sample(T_k + sample_offsets_ps[i], sample_channels[i])`` for every i,
        ``disable(T_k + disable_offset_ps)``, with ``T_k = start_time_ps + k *
        disable_offset_ps``. Each operation starts from the outputs held by
        the one before.

        Without read noise the results equal that event sequence while no
        output reaches a rail (up to floating-point rounding, about 1e-16
        relative). Differences from the event path:

        - An operation in which an output may reach a rail (`touched_rails`)
          uses the linear response clamped at the rails, without wind-up. The
          event path integrates the saturating model instead.
        - With read noise each operation draws the read noise of the whole
          array in the order of the event path, and its steady state equals
          the event path's to `amc.model.statespace.REFINEMENT_TOLERANCE`
          (1e-10 relative). Its decaying transient uses the poles and modes
          of the noise-free circuit, though.

        Parameters
        ----------
        state : SwitchState
        dac_codes : array_like of int, shape (n_inputs, K)
            Codes of the circuit's input channels (ascending enabled lines of
            the mode's input line set), one column per operation.
        sample_channels : array_like of int
            ADC channels to sample; each must be a line op-amp of the circuit.
        sample_offsets_ps : array_like of int
            Sample time of each channel after the enable, in picoseconds.
        disable_offset_ps : int
            Disable time after the enable, in picoseconds; not before the last sample.
        start_time_ps : int, optional
            Enable time of the first operation; default the time of the last event.

        Notes
        -----
        The first call for a circuit (switch state and programmed
        conductances) and sample schedule computes the steady-state operator
        and the sample and disable propagators. The first operation that
        needs a rail proof builds the `GridRailProof` up to the disable. Later
        calls reuse all of them. Without read noise an operation then costs a
        few products with these matrices. The rail proof takes about
        2 J n_states^2 multiply-adds with J of about 10 to 20 grid points. For
        small circuits the fixed cost of the numpy calls dominates. The
        adaptive `scan_rails` runs only for operations that the grid does not prove.

        With read noise the operations are processed in chunks of about 1 MiB
        of draws. Per chunk, one call draws the read noise of the whole array
        for every operation (the same values as the event path), the noisy
        rows of the line op-amps are built together, and
        `CircuitAnalysis.solve_line_perturbed` solves the noisy circuits:
        iterative refinement with the noise-free factorization, O(n^2) per
        step and operation, or one batched LU per operation for few small
        systems. Drawing the noise of the whole array is then the largest
        cost, 2 x rows x cols normal draws per operation.
        """
        if self._active is not None:
            raise MacroUsageError("run_operations during an event-level operation; call disable first")
        if state.mode.cell:
            # Single-cell reads draw read noise for one cell on the event path;
            # the batch path would draw it for the whole array.
            raise MacroUsageError(
                f"run_operations does not run the single-cell mode {state.mode.name}; use enable, sample and "
                "disable, or amc.model.programming for write-verify"
            )
        self._pass_open = [False] * len(self._pass_open)
        start = self._last_event_ps if start_time_ps is None else self._check_time(start_time_ps, "batch start")
        nominal = self.analysis(state)
        circuit = nominal.circuit
        codes = self._check_batch_codes(circuit, dac_codes)
        k_ops = codes.shape[1]
        disable_offset_ps = int(disable_offset_ps)
        plan = self._batch_plan(nominal, sample_channels, sample_offsets_ps, disable_offset_ps)

        volts_in = dac_decode(codes, self.config.dac)
        rail = self.config.opamp.rail_V
        x_first = plan.initial_state(self._held)
        end_propagator = plan.end_propagator

        if self.devices.read_noise_on:
            noisy = self._noisy_solver(nominal, state)
            steady = noisy.steady_states(self.devices, self._programmed[state.array], volts_in, self._scratch)
        else:
            steady = plan.steady_operator @ volts_in
        starts = _chain_starts(steady, x_first, end_propagator, rail)
        x0 = np.minimum(np.maximum(steady[:, -1] + end_propagator @ (starts[:, -1] - steady[:, -1]), -rail), rail)

        deviation = starts - steady
        sampled = steady[plan.rows] + plan.sample_propagator @ deviation
        touched = _touched_rails(plan, steady, starts, deviation, sampled, rail)

        # minimum(maximum()) equals np.clip for finite values and skips its Python wrapper.
        volts = np.minimum(np.maximum(sampled, -rail), rail)
        at_rail = np.abs(sampled) >= rail
        conversion = adc_convert(volts, self.config.adc)

        plan.store_held(self._held, x0)
        self._dac_codes[circuit.source_channels] = codes[:, -1]
        self._operation_count += k_ops
        end = start + k_ops * disable_offset_ps
        self._last_event_ps = end
        return BatchResult(
            volts=volts,
            codes=conversion.codes,
            overrange=conversion.overrange | at_rail,
            rail_clipped=at_rail,
            touched_rails=touched,
            steady_state_V=steady[: circuit.n_outputs],
            analysis=nominal,
            start_time_ps=int(start),
            end_time_ps=int(end),
        )

    def steady_states(self, state: SwitchState, dac_codes) -> np.ndarray:
        """Return the finite-gain steady states of K operations on one switch state, without running them.

        This is the settled part of `run_operations` for callers that read
        only settled outputs. With read noise, operation k draws its noise
        as the k-th of K enables would, so the random stream continues as
        after K operations, and its steady state equals that of the event
        path to `amc.model.statespace.REFINEMENT_TOLERANCE` (1e-10
        relative). The operation count, held outputs, DAC latches and event
        times do not change.

        Parameters
        ----------
        state : SwitchState
        dac_codes : array_like of int, shape (n_inputs, K)
            Codes of the circuit's input channels, one column per operation.

        Returns
        -------
        ndarray, shape (n_states, K)
            Op-amp outputs in volts, line op-amps first, not clamped at the rails.
        """
        if self._active is not None:
            raise MacroUsageError("steady_states during an event-level operation; call disable first")
        if state.mode.cell:
            raise MacroUsageError(
                f"steady_states does not run the single-cell mode {state.mode.name}; use enable, sample and disable"
            )
        nominal = self.analysis(state)
        codes = self._check_batch_codes(nominal.circuit, dac_codes)
        volts_in = dac_decode(codes, self.config.dac)
        if not self.devices.read_noise_on:
            return nominal.steady_state(volts_in)
        return self._noisy_solver(nominal, state).steady_states(self.devices, self._programmed[state.array],
                                                                volts_in, self._scratch)

    def _noisy_solver(self, nominal: CircuitAnalysis, state: SwitchState) -> _NoisySteadyStates:
        solver = self._noisy_solvers.get(nominal)
        if solver is None:
            solver = _NoisySteadyStates(nominal, state, self.config)
            self._noisy_solvers[nominal] = solver
        return solver

    def _check_batch_codes(self, circuit: LinearCircuit, dac_codes) -> np.ndarray:
        codes = np.asarray(dac_codes)
        if codes.ndim != 2 or codes.shape[0] != circuit.n_sources or codes.shape[1] == 0:
            raise ValueError(
                f"dac_codes has shape {codes.shape}; expected ({circuit.n_sources}, K) for the "
                f"input channels {circuit.source_channels.tolist()}"
            )
        for value in (codes.min(), codes.max()):
            check_code(int(value), self.config.dac.bits, "batch DAC")
        return codes

    def _batch_plan(self, nominal: CircuitAnalysis, sample_channels, sample_offsets_ps,
                    disable_offset_ps: int) -> _BatchPlan:
        """Return the cached plan of `nominal` for this sample schedule, checking the schedule on first use."""
        channels = np.asarray(sample_channels, dtype=int).ravel()
        offsets = np.asarray(sample_offsets_ps, dtype=np.int64).ravel()
        key = (channels.tobytes(), offsets.tobytes(), disable_offset_ps)
        plans = self._batch_plans.setdefault(nominal, {})
        plan = plans.get(key)
        if plan is not None:
            return plan
        circuit = nominal.circuit
        sensed = {int(line): k for k, line in enumerate(circuit.sensed_lines)}
        missing = [int(c) for c in channels if int(c) not in sensed]
        if missing or len(offsets) != len(channels):
            raise ValueError(
                f"sample channels {channels.tolist()} must be line op-amps of the circuit "
                f"({circuit.sensed_lines.tolist()}) with one offset each; invalid: {missing}"
            )
        if np.any(offsets < 0) or (len(offsets) and disable_offset_ps < int(offsets.max())):
            raise ValueError(
                f"sample offsets {offsets.tolist()} ps must be >= 0 and not after the disable offset "
                f"{disable_offset_ps} ps"
            )
        rows = np.array([sensed[int(c)] for c in channels], dtype=int)
        plan = _BatchPlan(nominal, rows, offsets * PICOSECOND, disable_offset_ps * PICOSECOND,
                          self.config.opamp.rail_V)
        plans[key] = plan
        return plan

    # Checks ------------------------------------------------------------

    def _check_time(self, time_ps, what: str) -> int:
        if isinstance(time_ps, (bool, np.bool_)) or not isinstance(time_ps, (int, np.integer)):
            raise MacroUsageError(f"{what} time must be an integer number of picoseconds, got {time_ps!r}")
        time_ps = int(time_ps)
        if time_ps < self._last_event_ps:
            raise MacroUsageError(
                f"{what} at {time_ps} ps is before the previous event at {self._last_event_ps} ps; "
                "events must come in time order"
            )
        return time_ps

    def _check_array(self, array) -> None:
        count = self.config.array.n_arrays
        if isinstance(array, bool) or not isinstance(array, (int, np.integer)) or not 0 <= array < count:
            raise MacroUsageError(f"array index {array!r} is invalid; use an integer from 0 to {count - 1}")

    def _check_channel(self, channel) -> None:
        lines = self.config.array.lines
        if isinstance(channel, bool) or not isinstance(channel, (int, np.integer)) or not 0 <= channel < lines:
            raise MacroUsageError(f"channel {channel!r} is invalid; use an integer from 0 to {lines - 1}")

    def _check_image(self, image, name: str) -> np.ndarray:
        geometry = self.config.array
        values = np.asarray(image, dtype=float)
        if values.shape != (geometry.rows, geometry.cols):
            raise MacroUsageError(
                f"{name} has shape {values.shape}; expected the full array image ({geometry.rows}, {geometry.cols}), "
                "see MatrixMapping.array_images"
            )
        if not np.all(np.isfinite(values)):
            raise MacroUsageError(f"{name} contains NaN or Inf; pass finite conductances in siemens")
        low, high = geometry.g_min_S, geometry.g_max_S
        tolerance = 1e-9 * high
        if values.min() < low - tolerance or values.max() > high + tolerance:
            raise MacroUsageError(
                f"{name} spans {values.min():.6g} to {values.max():.6g} S, outside the window "
                f"[{low:.6g}, {high:.6g}] S; clip the targets to the window"
            )
        return np.clip(values, low, high)

    def _check_state(self, state: SwitchState) -> None:
        if not isinstance(state, SwitchState):
            raise MacroUsageError(f"state must be a SwitchState, got {type(state).__name__}")
        geometry = self.config.array
        self._check_array(state.array)
        rows = np.asarray(state.row_enable)
        cols = np.asarray(state.col_enable)
        if rows.shape != (geometry.rows,) or cols.shape != (geometry.cols,):
            raise MacroUsageError(
                f"enable masks have shapes {rows.shape} and {cols.shape}; expected ({geometry.rows},) and "
                f"({geometry.cols},)"
            )
        if not rows.any() or not cols.any():
            raise MacroUsageError("switch state enables no row or no column line; enable at least one of each")
        if state.mode.square and rows.sum() != cols.sum():
            raise CircuitBuildError(
                f"mode {state.mode.name} needs as many active rows as columns, got {int(rows.sum())} rows "
                f"and {int(cols.sum())} columns"
            )


def _chain_starts(steady: np.ndarray, x_first: np.ndarray, propagator: np.ndarray, rail_V: float) -> np.ndarray:
    """Return the initial state of each of K chained operations.

    Operation k starts from the clamped end state of operation k - 1:
    s_{k+1} = clip(x_ss_k + P (s_k - x_ss_k)). Each fixed-point sweep over all
    columns at once makes one more column exact, and the sweeps converge in
    far fewer than K steps when P is small. For a large P a plain loop is cheaper.
    """
    k_ops = steady.shape[1]
    starts = np.empty_like(steady)
    starts[:, 0] = x_first
    if k_ops == 1:
        return starts
    norm = float(np.max(np.sum(np.abs(propagator), axis=1)))
    if norm > 0.1:
        for k in range(1, k_ops):
            previous = starts[:, k - 1]
            starts[:, k] = np.clip(steady[:, k - 1] + propagator @ (previous - steady[:, k - 1]), -rail_V, rail_V)
        return starts
    starts[:, 1:] = np.clip(steady[:, :-1], -rail_V, rail_V)
    for _ in range(k_ops):
        ends = np.clip(steady[:, :-1] + propagator @ (starts[:, :-1] - steady[:, :-1]), -rail_V, rail_V)
        if np.array_equal(ends, starts[:, 1:]):
            break
        starts[:, 1:] = ends
    return starts


def _touched_rails(plan: _BatchPlan, steady: np.ndarray, starts: np.ndarray, deviation: np.ndarray,
                   sampled: np.ndarray, rail_V: float) -> np.ndarray:
    """Return True per operation in which an output may reach a rail before the disable.

    A steady state beyond the rails marks an operation, and so does an output
    that starts at a rail (`scan_rails` returns MAY_TOUCH for it at once).
    The others need a proof: `GridRailProof` first, then the adaptive
    `scan_rails` for what the grid did not prove. Both are sufficient tests,
    so the grid may prove an operation that `scan_rails` alone marks, because
    the modal bounds of the scan loosen with ill-conditioned eigenvectors.
    """
    touched = np.abs(steady).max(axis=0) > rail_V
    nominal = plan.analysis
    if nominal.uses_expm:
        # NOTE: without a modal bound only the steady state, the samples
        # and the state at the disable are checked against the rails.
        ends = steady + plan.end_propagator @ deviation
        touched |= np.any(np.abs(sampled) >= rail_V, axis=0) | np.any(np.abs(ends) >= rail_V, axis=0)
        return touched
    touched |= np.abs(starts).max(axis=0) >= rail_V
    proof = plan.rail_proof
    if not touched.any() and proof is not None:
        # The common case without column selection (one vector per call).
        check = np.flatnonzero(~proof.prove(steady, deviation))
    else:
        check = np.flatnonzero(~touched)
        if check.size and proof is not None:
            check = check[~proof.prove(steady[:, check], deviation[:, check])]
    if check.size:
        inverse = nominal._eigen[2]
        _, status = scan_rails(nominal, steady[:, check], inverse @ deviation[:, check], rail_V,
                               np.zeros(len(check)), plan.tau_end)
        touched[check] = status == RailScan.MAY_TOUCH
    return touched


def _convert_one(volts: float, adc: AdcParams) -> tuple[int, bool]:
    """Return the code and over-range flag of one sample; equal to `adc_convert` on a scalar, without numpy."""
    if not math.isfinite(volts):
        raise ValueError(f"converter input contains NaN or Inf: {volts!r}; pass finite voltages")
    ratio = volts / adc.lsb_V
    # Round half away from zero, as converters._round_half_away.
    nearest = math.floor(abs(ratio) + 0.5)
    if ratio < 0:
        nearest = -nearest
    out_of_range = nearest < adc.code_min or nearest > adc.code_max
    code = int(min(max(nearest, adc.code_min), adc.code_max))
    return code, out_of_range or abs(volts) > adc.full_scale_V


def _seconds_to_ps(seconds: float) -> int:
    return int(math.ceil(round(seconds / PICOSECOND, 6)))

