"""Op-amp outputs of one operation, with the rail clamp inside the loop.

The op-amp model of `amc.model.circuits` clamps each output at +/-rail_V
while its internal pole node n keeps integrating (wind-up), as the ngspice
reference op-amp does. While every output stays inside the rails the circuit
is linear and `amc.model.statespace.Transient` gives the exact response. Once
an output may reach a rail the model integrates the piecewise-linear system

    dn/dtau = -n/A0 - W clamp(n) - W_s u        (tau = 2 pi GBW t)

with the Radau method of `scipy.integrate.solve_ivp`.

`scan_rails` proves where the linear response stays inside the rails. For
output i, x_i(tau) = x_ss_i + Re sum_k V_ik c_k exp(-w_k tau) (w: eigenvalues
of M). From a verified time tau_a, a step of length s is safe for output i if

    |x_i(tau_a)| + s D_i <= rail                                    (slope test)

or, with the endpoint tau_b = tau_a + s evaluated,

    max(|x_i(tau_a)|, |x_i(tau_b)|) + s^2 C_i / 8 <= rail          (chord test)

where D_i = sum_k |V_ik c_k| |w_k| g_k(tau_a) and C_i = sum_k |V_ik c_k|
|w_k|^2 g_k(tau_a) bound |x_i'| and |x_i''| on the step, with g_k(tau_a) =
exp(-Re(w_k) tau_a) exp(max(-Re w_k, 0) s). The chord test is the
interpolation error bound of a function with bounded second derivative, and it
allows much longer steps than the slope test. A growing mode limits s to
1 / max|w|; with decaying modes only, the bounds hold for any s. A step
shorter than 1 / (64 max|w|) means the response may touch a rail, and the
saturating integration starts at tau_a, where the linear state is still
exact. Once |x_ss_i| + sum_k |V_ik c_k| exp(-Re(w_k) tau) <= rail_V for every
output of a stable circuit, no later time can reach a rail.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
import scipy.integrate

from .statespace import CircuitAnalysis, Transient

__all__ = [
    "RailScan",
    "scan_rails",
    "Trajectory",
    "SaturatingResult",
    "simulate_saturating",
]

_MIN_STEP_FRACTION = 1.0 / 64.0
"""Shortest scan step, as a fraction of s_max, before a rail touch is assumed."""

_MAX_STEP_TIME_CONSTANTS = 20.0
"""Largest Radau step, in units of the fastest time constant 1 / max|w|, so
that a step cannot jump over a short excursion to a rail."""

SATURATING_RTOL = 1e-8
"""Relative tolerance of the saturating integration (absolute: SATURATING_RTOL * rail_V)."""


class RailScan(enum.IntEnum):
    """Outcome of `scan_rails` for one trajectory."""

    RUNNING = 0
    """Inside the rails up to the verified time; later times not yet checked."""
    SAFE = 1
    """Inside the rails at every later time (stable circuit, bound holds)."""
    MAY_TOUCH = 2
    """May reach a rail just after the verified time."""


def scan_rails(analysis: CircuitAnalysis, steady: np.ndarray, coefficients: np.ndarray, rail_V: float,
               tau_from: np.ndarray, tau_to: float) -> tuple[np.ndarray, np.ndarray]:
    """Advance the rail proof of K linear trajectories from `tau_from` to at least `tau_to`.

    Parameters
    ----------
    analysis : CircuitAnalysis
        Must use the eigenvector route (``analysis.uses_expm`` False).
    steady, coefficients : ndarray, shape (n_states, K)
        Steady states (volts) and modal coefficients c = V^-1 (x0 - x_ss).
    rail_V : float
    tau_from : ndarray, shape (K,)
        Normalized times already verified.
    tau_to : float
        Normalized time to verify up to.

    Returns
    -------
    tau : ndarray, shape (K,)
        Verified normalized time per trajectory (may exceed `tau_to`, because a
        step is never shortened to land on it, so the step sequence does not
        depend on where a caller stops).
    status : ndarray of RailScan values, shape (K,)
    """
    w, vectors = analysis._eigen[0], analysis._eigen[1]
    decay = w.real
    speed = np.abs(w)
    time_constant = 1.0 / float(np.max(speed))
    s_min = time_constant * _MIN_STEP_FRACTION
    stable = bool(np.all(decay > 0.0))
    s_max = np.inf if stable else time_constant
    growth = np.exp(np.maximum(-decay, 0.0) * (0.0 if stable else s_max))
    abs_vectors = np.abs(vectors)
    abs_steady = np.abs(steady)

    def evaluate(cols, taus):
        phase = np.exp(-np.outer(w, taus))
        return steady[:, cols] + (vectors @ (coefficients[:, cols] * phase)).real, np.abs(phase)

    tau = np.array(tau_from, dtype=float, copy=True)
    status = np.full(tau.shape, RailScan.RUNNING, dtype=int)
    running = tau < tau_to
    while running.any():
        cols = np.flatnonzero(running)
        x, decay_factor = evaluate(cols, tau[cols])
        amplitude = np.abs(coefficients[:, cols]) * decay_factor
        if stable:
            bound = abs_steady[:, cols] + abs_vectors @ amplitude
            safe = np.all(bound <= rail_V, axis=0)
        else:
            safe = np.zeros(len(cols), dtype=bool)
        weighted = amplitude * growth[:, None]
        slope = abs_vectors @ (weighted * speed[:, None])
        curvature = abs_vectors @ (weighted * (speed * speed)[:, None])
        room = rail_V - np.abs(x)

        with np.errstate(divide="ignore", invalid="ignore"):
            slope_step = np.min(np.where(slope > 0.0, room / slope, np.inf), axis=0)
            chord_step = np.min(np.where(curvature > 0.0, np.sqrt(8.0 * np.maximum(room, 0.0) / curvature),
                                         np.inf), axis=0)
        inside = np.all(room > 0.0, axis=0)
        slope_step = np.where(inside, np.minimum(slope_step, s_max), 0.0)
        chord_step = np.where(inside, np.minimum(chord_step, s_max), 0.0)

        # Halving the chord candidate leaves room for |x(tau_b)| to differ
        # from |x(tau_a)|; the endpoint check below decides.
        candidate = 0.5 * chord_step
        try_chord = np.isfinite(candidate) & (candidate > slope_step)
        step = slope_step.copy()
        if try_chord.any():
            chosen = np.flatnonzero(try_chord)
            ends, _ = evaluate(cols[chosen], tau[cols[chosen]] + candidate[chosen])
            margin = candidate[chosen] ** 2 * curvature[:, chosen] / 8.0
            passes = np.all(np.maximum(np.abs(x[:, chosen]), np.abs(ends)) + margin <= rail_V, axis=0)
            step[chosen[passes]] = candidate[chosen[passes]]

        touch = ~safe & (step < s_min)
        advance = ~safe & ~touch
        status[cols[safe]] = RailScan.SAFE
        status[cols[touch]] = RailScan.MAY_TOUCH
        tau[cols[advance]] += step[advance]
        running[cols[safe | touch]] = False
        running[cols[advance]] = tau[cols[advance]] < tau_to
    return tau, status


class Trajectory:
    """Op-amp outputs of one operation from its start, exact with or without rail clipping.

    Parameters
    ----------
    analysis : CircuitAnalysis
    x0 : array_like, shape (n_states,)
        Op-amp outputs at the start, in volts (inside the rails).
    u : array_like, shape (n_sources,)
        DAC voltages, in volts.
    rail_V : float, optional
        Output clamp; default `OpAmpParams.rail_V`.
    """

    def __init__(self, analysis: CircuitAnalysis, x0, u, rail_V: float | None = None):
        self.analysis = analysis
        self.rail_V = analysis.circuit.opamp.rail_V if rail_V is None else float(rail_V)
        self.u = np.asarray(u, dtype=float)
        self.linear = Transient(analysis, x0, self.u)
        self._segments: list[tuple[float, float, object]] = []
        self._verified_tau = 0.0
        self._scan = RailScan.RUNNING
        self._saturation_tau: float | None = None
        self._saturation_state: np.ndarray | None = None
        if self.linear.coefficients is None:
            # The matrix-exponential route has no modal bound, so the
            # saturating integration, exact in every case, runs from the start.
            self._start_saturation(0.0)

    @property
    def steady_state(self) -> np.ndarray:
        """Linear (finite-gain) steady state of all op-amps, in volts, not clamped."""
        return self.linear.steady_state

    @property
    def saturation_start_s(self) -> float | None:
        """Time from which the saturating model is used, in seconds; None while the response is linear."""
        if self._saturation_tau is None:
            return None
        return self._saturation_tau / self.analysis.rate_rad_per_s

    def _start_saturation(self, tau: float) -> None:
        self._saturation_tau = tau
        self._saturation_state = self.linear.states(tau / self.analysis.rate_rad_per_s)

    def _verify_until(self, tau: float) -> None:
        if self._saturation_tau is not None or self._scan != RailScan.RUNNING or tau <= self._verified_tau:
            return
        verified, status = scan_rails(
            self.analysis, self.linear.steady_state[:, None], self.linear.coefficients[:, None],
            self.rail_V, np.array([self._verified_tau]), tau,
        )
        self._verified_tau = float(verified[0])
        self._scan = RailScan(int(status[0]))
        if self._scan == RailScan.MAY_TOUCH:
            self._start_saturation(self._verified_tau)

    def internal(self, t_s: float, index=None) -> np.ndarray:
        """Return the internal pole-node voltages at `t_s` seconds, in volts.

        Inside the rails these equal the outputs; after saturation they may
        lie beyond the rails (wind-up). `index` selects states (int or index
        array); by default all.
        """
        if t_s < 0:
            raise ValueError(f"time {t_s!r} s is before the start of the operation; use t_s >= 0")
        tau = float(t_s) * self.analysis.rate_rad_per_s
        self._verify_until(tau)
        if self._saturation_tau is None or tau <= self._saturation_tau:
            return self.linear.states(t_s, index)
        state = self._saturating_state(tau)
        return state if index is None else state[index]

    def outputs(self, t_s: float, index=None) -> np.ndarray:
        """Return op-amp outputs at `t_s` seconds, clamped at the rails, in volts."""
        return np.clip(self.internal(t_s, index), -self.rail_V, self.rail_V)

    def _saturating_state(self, tau: float) -> np.ndarray:
        if not self._segments or tau > self._segments[-1][1]:
            if self._segments:
                start, state = self._segments[-1][1], self._segments[-1][2](self._segments[-1][1])
            else:
                start, state = self._saturation_tau, self._saturation_state
            # Integrate at least as far again as so far, so that a sequence of
            # samples restarts the stiff solver only a logarithmic number of times.
            s_max = 1.0 / float(np.max(np.abs(self.analysis.normalized_poles)))
            end = max(tau, start + max(start - self._saturation_tau, 10.0 * s_max))
            solution = _integrate(self.analysis, state, self.u, self.rail_V, start, end, dense=True)
            self._segments.append((start, end, solution.sol))
        for start, end, dense in self._segments:
            if start <= tau <= end:
                return np.asarray(dense(tau), dtype=float)
        raise AssertionError(f"normalized time {tau} lies outside every integrated segment")


def _integrate(analysis: CircuitAnalysis, x0, u, rail_V: float, tau_start: float, tau_end: float,
               dense: bool = False, t_eval=None):
    weights = analysis.circuit.output_weights
    drive = analysis.circuit.source_weights @ np.asarray(u, dtype=float)
    leak = 1.0 / analysis.open_loop_gain
    rho = float(np.max(np.abs(analysis.normalized_poles)))

    def derivative(_tau, n):
        return -leak * n - weights @ np.clip(n, -rail_V, rail_V) - drive

    def jacobian(_tau, n):
        linear = (np.abs(n) < rail_V).astype(float)
        jac = -weights * linear[None, :]
        jac[np.diag_indices_from(jac)] -= leak
        return jac

    solution = scipy.integrate.solve_ivp(
        derivative, (tau_start, tau_end), np.asarray(x0, dtype=float), method="Radau", jac=jacobian,
        rtol=SATURATING_RTOL, atol=SATURATING_RTOL * rail_V, dense_output=dense, t_eval=t_eval,
        max_step=_MAX_STEP_TIME_CONSTANTS / rho,
    )
    if not solution.success:
        raise RuntimeError(f"saturating op-amp integration failed: {solution.message}")
    return solution


@dataclass(frozen=True)
class SaturatingResult:
    """Trajectory of the saturating op-amp model at requested times."""

    time_s: np.ndarray
    """Sample times, in seconds."""

    output_V: np.ndarray
    """Op-amp outputs (clamped), shape (len(time_s), n_states), in volts."""

    internal_V: np.ndarray
    """Internal pole-node voltages n (not clamped, they wind up), same shape, in volts."""


def simulate_saturating(analysis: CircuitAnalysis, x0, u, time_s, rail_V: float | None = None) -> SaturatingResult:
    """Integrate the saturating op-amp model from `x0` and sample it at `time_s`.

    Parameters
    ----------
    analysis : CircuitAnalysis
    x0 : array_like, shape (n_states,)
        Initial internal node voltages, in volts.
    u : array_like, shape (n_sources,)
        DAC voltages, in volts.
    time_s : array_like
        Increasing sample times from 0, in seconds.
    rail_V : float, optional
        Output clamp in volts; default `OpAmpParams.rail_V`.
    """
    rail = analysis.circuit.opamp.rail_V if rail_V is None else rail_V
    times = np.asarray(time_s, dtype=float)
    taus = times * analysis.rate_rad_per_s
    solution = _integrate(analysis, x0, u, rail, 0.0, float(taus[-1]), t_eval=taus)
    internal = solution.y.T
    return SaturatingResult(time_s=times, output_V=np.clip(internal, -rail, rail), internal_V=internal)
