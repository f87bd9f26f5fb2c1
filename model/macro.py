"""Stateful event-level model of the analog macro.

`AnalogMacro` is the analog side that every backend (register model, Amaranth
simulation, cocotb co-simulation) drives with integer picosecond times:
program the arrays, latch DAC codes, enable a switch state, sample ADC
channels, disable. Between a disable and the next enable every op-amp output
holds its value, and the next operation starts its transient from there, so
sampling too early reads a value that has not settled.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from .circuits import LinearCircuit, OpAmpRole, build_circuit
from .config import MacroConfig
from .converters import adc_convert, check_code, dac_decode
from .devices import NEGATIVE, POSITIVE, DeviceModel
from .errors import CircuitBuildError, MacroUsageError
from .statespace import CircuitAnalysis, SettleEstimates, StabilityReport
from .switch_matrix import ModeEntry, SwitchState
from .trajectory import RailScan, Trajectory, scan_rails

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

    settle: SettleEstimates
    """Settling estimates for eps = half an ADC LSB relative to full scale."""

    stability: StabilityReport
    analysis: CircuitAnalysis = field(repr=False)
    trajectory: Trajectory = field(repr=False)
    disable_time_ps: int | None = None
    samples: list[SampleRecord] = field(default_factory=list)

    @property
    def saturation_start_s(self) -> float | None:
        """Time after the enable from which an output may sit at a rail (None if never so far), in seconds."""
        return self.trajectory.saturation_start_s

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

    Notes
    -----
    Every random draw comes from ``config.seed`` (see `amc.model.devices`),
    so the same event sequence gives the same codes. Cells start at g_min
    (stuck cells at their stuck value), DAC latches at code 0 and op-amp
    holds at 0 V.
    """

    def __init__(self, config: MacroConfig | None = None):
        self.config = MacroConfig() if config is None else config
        if not isinstance(self.config, MacroConfig):
            raise TypeError(f"config must be a MacroConfig, got {type(self.config).__name__}")
        geometry = self.config.array
        self.devices = DeviceModel(self.config)
        shape = (geometry.n_arrays, 2, geometry.rows, geometry.cols)
        stuck = self.devices.stuck_map
        self._programmed = np.where(stuck.stuck, stuck.value_S, np.full(shape, geometry.g_min_S))
        self._versions = [0] * geometry.n_arrays
        lines = geometry.lines
        self._dac_codes = np.zeros(lines, dtype=np.int64)
        self._held = {OpAmpRole.LINE: np.zeros(lines), OpAmpRole.INVERTER: np.zeros(lines)}
        self._cache: OrderedDict[tuple, CircuitAnalysis] = OrderedDict()
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
    def operation_count(self) -> int:
        """Number of analog operations (enables) so far, batch operations included."""
        return self._operation_count

    def programming_count(self, array: int) -> int:
        """Return how often `array` has been programmed since construction."""
        self._check_array(array)
        return self._versions[array]

    def held_outputs(self) -> np.ndarray:
        """Return the held outputs of the line op-amps (ADC channels), in volts."""
        return self._held[OpAmpRole.LINE].copy()

    def dac_codes(self) -> np.ndarray:
        """Return the latched code of every DAC channel."""
        return self._dac_codes.copy()

    # Programming -----------------------------------------------------------

    def program_backdoor(self, array: int, g_pos_S, g_neg_S=None) -> None:
        """Write target conductances into one array, bypassing the controller.

        This is a backdoor until on-chip write-verify exists: it applies the
        programming error and the stuck-cell map in one step, as a
        write-verify loop that ends at its first attempt would.

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

    def conductances(self, array: int) -> tuple[np.ndarray, np.ndarray]:
        """Return copies of the programmed (positive, negative) conductances of an array, in siemens."""
        self._check_array(array)
        return self._programmed[array, POSITIVE].copy(), self._programmed[array, NEGATIVE].copy()

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

    def _store_held(self, circuit: LinearCircuit, values: np.ndarray) -> None:
        for (role, line), value in zip(circuit.op_amps, values):
            self._held[role][line] = value

    def enable(self, time_ps: int, state: SwitchState) -> OperationRecord:
        """Close the switches of `state` and power the op-amps at `time_ps`.

        Builds the circuit with the programmed conductances (read noise drawn
        now if enabled), and starts the transient from the op-amp outputs held
        at the previous disable. An unstable circuit is accepted: its outputs
        run to the rails, and the record's `stability` gives the reason.

        Returns
        -------
        OperationRecord
            The record of this operation, also available as `last_operation`.
        """
        time_ps = self._check_time(time_ps, "enable")
        if self._active is not None:
            raise MacroUsageError(
                f"enable at {time_ps} ps while the operation enabled at {self._active.enable_time_ps} ps "
                "is still running; call disable first"
            )
        analysis = self._operation_analysis(state)
        circuit = analysis.circuit
        x0 = self._initial_state(circuit)
        dac_volts = dac_decode(self._dac_codes[circuit.source_channels], self.config.dac)
        trajectory = Trajectory(analysis, x0, dac_volts)
        n_out = circuit.n_outputs
        steady = trajectory.steady_state[:n_out].copy()
        rail = self.config.opamp.rail_V
        beyond = tuple(int(line) for line, v in zip(circuit.sensed_lines, steady) if abs(v) > rail)
        record = OperationRecord(
            index=self._operation_count,
            mode=state.mode.name,
            signed=bool(state.signed),
            array=int(state.array),
            output_channels=tuple(int(line) for line in circuit.sensed_lines),
            input_channels=tuple(int(line) for line in circuit.source_channels),
            enable_time_ps=time_ps,
            dac_volts=dac_volts,
            initial_V=x0[:n_out].copy(),
            steady_state_V=steady,
            steady_state_beyond_rails=beyond,
            settle=analysis.settle_estimates(adc_settle_eps(self.config)),
            stability=analysis.stability,
            analysis=analysis,
            trajectory=trajectory,
        )
        self._active = record
        self._operation_count += 1
        self._last_event_ps = time_ps
        return record

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
            internal = float(record.trajectory.internal(elapsed_s, index))
            volts = min(max(internal, -rail), rail)
            at_rail = abs(internal) >= rail
        else:
            volts = float(self._held[OpAmpRole.LINE][channel])
            at_rail = abs(volts) >= rail
        conversion = adc_convert(volts, self.config.adc)
        sample = AdcSample(
            code=int(conversion.codes), overrange=bool(conversion.overrange) or at_rail,
            volts=volts, rail_clipped=at_rail,
        )
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
        self._store_held(record.analysis.circuit, record.trajectory.outputs(elapsed_s))
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
        output reaches a rail. Differences from the event path:

        - An operation in which an output may reach a rail (`touched_rails`)
          uses the linear response clamped at the rails, without wind-up. The
          event path integrates the saturating model instead.
        - With read noise each operation draws its conductances as the event
          path does and its steady state is exact, but its decaying transient
          uses the poles and modes of the noise-free circuit.

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
        """
        if self._active is not None:
            raise MacroUsageError("run_operations during an event-level operation; call disable first")
        start = self._last_event_ps if start_time_ps is None else self._check_time(start_time_ps, "batch start")
        nominal = self.analysis(state)
        circuit = nominal.circuit
        codes = np.asarray(dac_codes)
        if codes.ndim != 2 or codes.shape[0] != circuit.n_sources or codes.shape[1] == 0:
            raise ValueError(
                f"dac_codes has shape {codes.shape}; expected ({circuit.n_sources}, K) for the "
                f"input channels {circuit.source_channels.tolist()}"
            )
        for value in (codes.min(), codes.max()):
            check_code(int(value), self.config.dac.bits, "batch DAC")
        k_ops = codes.shape[1]
        channels = np.asarray(sample_channels, dtype=int).ravel()
        offsets = np.asarray(sample_offsets_ps, dtype=np.int64).ravel()
        sensed = {int(line): k for k, line in enumerate(circuit.sensed_lines)}
        missing = [int(c) for c in channels if int(c) not in sensed]
        if missing or len(offsets) != len(channels):
            raise ValueError(
                f"sample channels {channels.tolist()} must be line op-amps of the circuit "
                f"({circuit.sensed_lines.tolist()}) with one offset each; invalid: {missing}"
            )
        disable_offset_ps = int(disable_offset_ps)
        if np.any(offsets < 0) or (len(offsets) and disable_offset_ps < int(offsets.max())):
            raise ValueError(
                f"sample offsets {offsets.tolist()} ps must be >= 0 and not after the disable offset "
                f"{disable_offset_ps} ps"
            )
        rows = np.array([sensed[int(c)] for c in channels], dtype=int)
        sample_s = offsets * PICOSECOND
        disable_s = disable_offset_ps * PICOSECOND

        volts_in = dac_decode(codes, self.config.dac)
        rail = self.config.opamp.rail_V
        x_first = self._initial_state(circuit)
        end_propagator = nominal.propagator_rows(np.arange(circuit.n_states), np.full(circuit.n_states, disable_s))

        if self.devices.read_noise_on:
            steady = np.empty((circuit.n_states, k_ops))
            starts = np.empty((circuit.n_states, k_ops))
            x0 = x_first
            for k in range(k_ops):
                read = self.devices.read(self._programmed[state.array])
                noisy = CircuitAnalysis(build_circuit(state, read[POSITIVE], read[NEGATIVE], self.config))
                steady[:, k] = noisy.steady_state(volts_in[:, k])
                starts[:, k] = x0
                x0 = np.clip(steady[:, k] + end_propagator @ (x0 - steady[:, k]), -rail, rail)
        else:
            steady = nominal.steady_state(volts_in)
            starts = _chain_starts(steady, x_first, end_propagator, rail)
            x0 = np.clip(steady[:, -1] + end_propagator @ (starts[:, -1] - steady[:, -1]), -rail, rail)

        deviation = starts - steady
        sampled = steady[rows] + nominal.propagator_rows(rows, sample_s) @ deviation
        touched = np.any(np.abs(steady) > rail, axis=0)
        if nominal.uses_expm:
            # NOTE: without a modal bound only the steady state, the samples
            # and the state at the disable are checked against the rails.
            ends = steady + end_propagator @ deviation
            touched |= np.any(np.abs(sampled) >= rail, axis=0) | np.any(np.abs(ends) >= rail, axis=0)
        elif not touched.all():
            # A steady state beyond the rails already marks the operation, so
            # only the others need the rail proof.
            check = np.flatnonzero(~touched)
            inverse = nominal._eigen[2]
            _, status = scan_rails(nominal, steady[:, check], inverse @ deviation[:, check], rail,
                                   np.zeros(len(check)), disable_s * nominal.rate_rad_per_s)
            touched[check] = status == RailScan.MAY_TOUCH

        volts = np.clip(sampled, -rail, rail)
        at_rail = np.abs(sampled) >= rail
        conversion = adc_convert(volts, self.config.adc)

        self._store_held(circuit, x0)
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


def _seconds_to_ps(seconds: float) -> int:
    return int(math.ceil(round(seconds / PICOSECOND, 6)))

