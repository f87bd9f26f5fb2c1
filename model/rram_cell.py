"""Pulse-level model of 1T1R RRAM cells: how SET and RESET pulses move a conductance.

A SET pulse raises the conductance G of the selected cell, a RESET pulse
lowers it. With the window [g_min, g_max] of `ArrayParams`, the parameters of
`CellParams` and the pulse width w:

    SET,   gate voltage V_g:
        dG = + k_set a (V_g - V_set,th)+ (w / w_ref)^WIDTH_EXPONENT
                 ((g_max - G) / (g_max - g_min))^BOUND_EXPONENT
    RESET, source-line voltage V_sl:
        dG = - k_reset a (V_sl - V_reset,th)+ (w / w_ref)^WIDTH_EXPONENT
                 ((G - g_min) / (g_max - g_min))^BOUND_EXPONENT

and the new conductance is G + dG clipped to the window. Here

- (x)+ = max(x, 0): a pulse below its threshold leaves the cell unchanged;
- k_set, k_reset are `CellParams.set_gain_S_per_V` and `reset_gain_S_per_V`
  times the cell's own gain factors (device-to-device spread), each
  max(1 + device_sigma_rel n, 0) with n standard normal, drawn once per cell
  and polarity when the macro is built;
- a = max(1 + cycle_sigma_rel n, 0) is the cycle-to-cycle factor, one
  standard normal per pulse, drawn in the order the pulses arrive;
- the bound term makes each step shrink to zero at the window edge that the
  pulse moves toward (saturation), so repeated pulses approach g_max or
  g_min without reaching it. This form is the soft-bounds model of
  analog-memory pulse responses.

Stuck cells (`devices.StuckMap`) never change, but their pulses still draw
their cycle factor, so the position of the cycle stream depends only on how
many pulses were applied and not on which cells they hit. Nothing depends on
absolute time, so the same seed and the same order of pulses and reads give
the same conductances on every backend.

The two exponents are model constants (assumptions, not measured values):

- `WIDTH_EXPONENT` = 0.5: the step grows with the square root of the pulse
  width, a sublinear growth because filament growth slows as the pulse goes
  on. Pulses of `CellParams.reference_width_s` use the gains unchanged.
- `BOUND_EXPONENT` = 0.5: a cell whose target is g_max must reach the
  verify window within 1.5 codes (1.4 % of the window) of it. With exponent
  1 (linear soft bounds) the step there is 1.4 % of the step at g_min. With
  0.5 it is 12 %. Write-verify with the default gains and pulse ramp needed
  27 pulses on average (up to 32) for such cells with exponent 1, and 17
  (up to 22) with 0.5, on 4 seeds of 32 x 32 random levels.
"""

from __future__ import annotations

import math

import numpy as np

from .config import ArrayParams, CellParams, MacroConfig

__all__ = [
    "WIDTH_EXPONENT",
    "BOUND_EXPONENT",
    "SET",
    "RESET",
    "width_factor",
    "pulse_step",
    "RramCells",
]

WIDTH_EXPONENT = 0.5
"""Exponent of the pulse-width dependence (w / reference_width_s)^WIDTH_EXPONENT (assumption)."""

BOUND_EXPONENT = 0.5
"""Exponent of the saturation term at the window edges (assumption; 1 is linear soft bounds)."""

RESET, SET = 0, 1
"""Pulse polarity codes, as on the controller's pulse port (`amc.model.write_verify.Polarity`)."""


def width_factor(width_s: float, cell: CellParams) -> float:
    """Return the step scale (width / reference_width_s)^WIDTH_EXPONENT of a pulse of `width_s` seconds.

    Raises
    ------
    ValueError
        If the width is not a finite number above zero.
    """
    if not (math.isfinite(width_s) and width_s > 0.0):
        raise ValueError(f"pulse width {width_s!r} s is invalid: use a finite duration above zero in seconds")
    return float((width_s / cell.reference_width_s) ** WIDTH_EXPONENT)


def _bound_term(room):
    """Return room^BOUND_EXPONENT for a float or an array.

    For the exponent 0.5 this is a square root, which IEEE 754 rounds
    correctly in numpy and in math alike, so the scalar and the vectorized
    pulse give the same float. numpy's power and the C library's pow may
    differ in the last bit.
    """
    if BOUND_EXPONENT == 0.5:
        return np.sqrt(room) if isinstance(room, np.ndarray) else math.sqrt(room)
    return np.power(room, BOUND_EXPONENT) if isinstance(room, np.ndarray) else room ** BOUND_EXPONENT


def pulse_step(g_S, polarity, voltage_V, width_scale, gain_factor, cycle_factor, cell: CellParams,
               window: ArrayParams):
    """Return the conductance after one pulse on each cell, in siemens (vectorized).

    Parameters
    ----------
    g_S : float or ndarray
        Conductance before the pulse, in siemens.
    polarity : int or ndarray of int
        `SET` (1) or `RESET` (0), broadcast against `g_S`.
    voltage_V : float or ndarray
        Gate voltage of a SET pulse or source-line voltage of a RESET pulse, in volts.
    width_scale : float or ndarray
        Width factor from `width_factor` (dimensionless).
    gain_factor : float or ndarray
        The cell's device-to-device gain factor for this polarity (dimensionless).
    cycle_factor : float or ndarray
        Cycle-to-cycle factor max(1 + cycle_sigma_rel n, 0) of this pulse (dimensionless).
    cell : CellParams
    window : ArrayParams
        Supplies g_min_S and g_max_S.

    Returns
    -------
    float or ndarray
        New conductance, clipped to [g_min_S, g_max_S]. Stuck cells are not
        handled here; `RramCells` keeps them unchanged.
    """
    g_min, g_max = window.g_min_S, window.g_max_S
    span = g_max - g_min
    is_set = np.asarray(polarity) == SET
    threshold = np.where(is_set, cell.set_threshold_V, cell.reset_threshold_V)
    gain = np.where(is_set, cell.set_gain_S_per_V, cell.reset_gain_S_per_V)
    room = np.where(is_set, g_max - g_S, g_S - g_min) / span
    bound = _bound_term(np.clip(room, 0.0, 1.0))
    overdrive = np.maximum(np.asarray(voltage_V, dtype=float) - threshold, 0.0)
    step = gain * gain_factor * overdrive * width_scale * bound * cycle_factor
    return np.clip(g_S + np.where(is_set, step, -step), g_min, g_max)


def _pulse_step_one(g_S: float, polarity: int, voltage_V: float, width_scale: float, gain_factor: float,
                    cycle_factor: float, cell: CellParams, window: ArrayParams) -> float:
    """Return `pulse_step` for one cell with Python floats.

    A write-verify applies tens of thousands of single pulses, and numpy
    calls on scalars cost about a microsecond each. The operations and their
    order equal `pulse_step`, so both give the same float for the default
    `BOUND_EXPONENT` (tests/model/test_rram_cell.py checks it).
    """
    g_min, g_max = window.g_min_S, window.g_max_S
    span = g_max - g_min
    if polarity == SET:
        threshold, gain, room = cell.set_threshold_V, cell.set_gain_S_per_V, (g_max - g_S) / span
    else:
        threshold, gain, room = cell.reset_threshold_V, cell.reset_gain_S_per_V, (g_S - g_min) / span
    bound = _bound_term(min(max(room, 0.0), 1.0))
    overdrive = max(voltage_V - threshold, 0.0)
    step = gain * gain_factor * overdrive * width_scale * bound * cycle_factor
    return min(max(g_S + (step if polarity == SET else -step), g_min), g_max)


class RramCells:
    """Programming response of every cell of one macro: device gains, cycle noise, stuck cells.

    The conductances themselves live in `AnalogMacro`; this object only turns
    pulses into new conductances.

    Parameters
    ----------
    config : MacroConfig
        Window (`ArrayParams`), cell parameters (`CellParams`) and geometry.
    spread_rng : numpy.random.Generator
        Stream of the device-to-device gain factors, read once here.
    cycle_rng : numpy.random.Generator
        Stream of the cycle-to-cycle factors, one standard normal per pulse.
    stuck : ndarray of bool, shape (n_arrays, 2, rows, cols)
        True for stuck cells, which pulses do not change.
    """

    def __init__(self, config: MacroConfig, spread_rng: np.random.Generator, cycle_rng: np.random.Generator,
                 stuck: np.ndarray):
        self.config = config
        geometry = config.array
        self.shape = (geometry.n_arrays, 2, geometry.rows, geometry.cols)
        stuck = np.asarray(stuck, dtype=bool)
        if stuck.shape != self.shape:
            raise ValueError(f"stuck map has shape {stuck.shape}; expected {self.shape} (arrays, halves, rows, cols)")
        self.stuck = stuck
        # Both factors are drawn even with device_sigma_rel = 0, so that the
        # stream position, and the gains of a seed, depend only on the geometry.
        draws = spread_rng.standard_normal((2,) + self.shape)
        sigma = config.cell.device_sigma_rel
        factors = np.maximum(1.0 + sigma * draws, 0.0)
        factors.setflags(write=False)
        self.gain_factors = factors
        """Gain factor of each cell, shape (2, n_arrays, 2, rows, cols); axis 0 is the polarity (RESET, SET)."""
        self._cycle_rng = cycle_rng
        self.pulse_count = 0
        """Pulses applied since construction, stuck cells and sub-threshold pulses included."""

    def fresh_conductance(self, stuck_value_S: np.ndarray) -> np.ndarray:
        """Return the conductances of never-programmed cells, shape (n_arrays, 2, rows, cols), in siemens.

        Free cells sit at g_min + initial_fraction (g_max - g_min); stuck cells at `stuck_value_S`.
        """
        geometry = self.config.array
        fresh = geometry.g_min_S + self.config.cell.initial_fraction * (geometry.g_max_S - geometry.g_min_S)
        return np.where(self.stuck, stuck_value_S, np.full(self.shape, fresh))

    def _cycle_factors(self, count: int) -> np.ndarray:
        sigma = self.config.cell.cycle_sigma_rel
        return np.maximum(1.0 + sigma * self._cycle_rng.standard_normal(count), 0.0)

    def apply_pulse(self, conductance_S: np.ndarray, array: int, half: int, row: int, col: int, polarity: int,
                    voltage_V: float, width_s: float) -> float:
        """Apply one pulse to one cell of `conductance_S` in place and return its new conductance.

        Parameters
        ----------
        conductance_S : ndarray, shape (n_arrays, 2, rows, cols)
            Conductances of the macro, in siemens; updated in place.
        array, half, row, col : int
            The cell (half 0 positive, 1 negative).
        polarity : int
            `SET` or `RESET`.
        voltage_V : float
            Gate (SET) or source-line (RESET) voltage, in volts.
        width_s : float
            Pulse width, in seconds.
        """
        scale = width_factor(width_s, self.config.cell)
        cycle = max(1.0 + self.config.cell.cycle_sigma_rel * self._cycle_rng.standard_normal(), 0.0)
        self.pulse_count += 1
        index = (array, half, row, col)
        before = float(conductance_S[index])
        if self.stuck[index]:
            return before
        after = _pulse_step_one(before, polarity, float(voltage_V), scale,
                                float(self.gain_factors[(polarity,) + index]), cycle, self.config.cell,
                                self.config.array)
        conductance_S[index] = after
        return after

    def apply_pulses(self, conductance_S: np.ndarray, array: int, half: int, rows, cols, polarity, voltage_V,
                     width_s: float) -> np.ndarray:
        """Apply one pulse to each of several distinct cells of one half-array, in place.

        The cycle factors are drawn in the order of `rows` and `cols`, so the
        result equals `apply_pulse` called cell by cell in that order.

        Parameters
        ----------
        conductance_S : ndarray, shape (n_arrays, 2, rows, cols)
            Conductances of the macro, in siemens; updated in place.
        array, half : int
        rows, cols : array_like of int, shape (k,)
            Cells to pulse; each (row, col) pair at most once.
        polarity : int or array_like of int, shape (k,)
        voltage_V : float or array_like, shape (k,)
        width_s : float

        Returns
        -------
        ndarray, shape (k,)
            New conductances of the pulsed cells, in siemens.
        """
        rows = np.atleast_1d(np.asarray(rows, dtype=int))
        cols = np.atleast_1d(np.asarray(cols, dtype=int))
        if rows.shape != cols.shape or rows.ndim != 1:
            raise ValueError(f"rows {rows.shape} and cols {cols.shape} must be 1-D index arrays of the same length")
        flat = rows * self.shape[3] + cols
        if len(np.unique(flat)) != len(flat):
            raise ValueError("apply_pulses got the same cell twice; apply repeated pulses to one cell in turn "
                             "with apply_pulse")
        scale = width_factor(width_s, self.config.cell)
        polarity = np.broadcast_to(np.asarray(polarity, dtype=int), rows.shape)
        voltage = np.broadcast_to(np.asarray(voltage_V, dtype=float), rows.shape)
        cycle = self._cycle_factors(len(rows))
        self.pulse_count += len(rows)
        half_view = conductance_S[array, half]
        before = half_view[rows, cols]
        gains = self.gain_factors[polarity, array, half, rows, cols]
        after = pulse_step(before, polarity, voltage, scale, gains, cycle, self.config.cell, self.config.array)
        after = np.where(self.stuck[array, half, rows, cols], before, after)
        half_view[rows, cols] = after
        return after
