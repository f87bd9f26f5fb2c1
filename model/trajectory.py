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
import scipy.linalg

from .statespace import CircuitAnalysis, Transient

__all__ = [
    "RailScan",
    "scan_rails",
    "GridRailProof",
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


_GRID_EARLY_STEPS = (0.25, 0.5)
"""First steps of the `GridRailProof` grid, in units of the fastest time constant 1 / max|w|.

The deviation from the steady state is largest at the start, where the chord
margin (proportional to the step squared) needs the shortest steps."""

_GRID_MIDDLE_STEP = 1.0
_GRID_MIDDLE_END = 8.0
"""Steps of 1 / max|w| follow up to 8 / max|w|, then steps of `_GRID_LATE_STEP`."""

_GRID_LATE_STEP = 2.0
"""Later steps of the `GridRailProof` grid, in units of 1 / max|w|."""

_GRID_DECAY_SPAN = 3.0
"""The first `GridRailProof` grid ends at this many slowest time constants
(1 / min Re w), or at the horizon if that comes first."""

_GRID_EXTENDED_SPAN = 12.0
"""An extension grid, built when first needed, continues with late steps up to
this many slowest time constants for operations whose tail test has not passed
yet (steady states within a few percent of a rail)."""

_GAIN_STEPS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
"""Step lengths of the peak-gain grid, in units of 1 / max|w|. Each step is the
longest whose bound does not raise the gain found so far, else the shortest."""

_GAIN_END = 256.0
"""The peak-gain grid stops here (units of 1 / max|w|) if the Lyapunov bound has not taken over."""

_BASE_HALVINGS = 3
"""`GridRailProof` bounds |exp(-M s)| on [0, h] from a step 2^-3 times the shortest
grid step, where the crude exponential bound loses little, and doubles it from there."""

PROOF_TOLERANCE = 1e-9
"""Relative margin below the rail that `GridRailProof` requires, so that floating-point
rounding in the propagators and bounds (about 1e-15 relative) cannot turn a touch into a pass."""


class GridRailProof:
    """Vectorized proof that linear trajectories of one stable circuit stay inside the rails.

    For operations with steady states x_ss and deviations d0 = x0 - x_ss at
    the start, `prove` shows |x_i(tau)| < rail_V for every state i and every
    normalized time tau in [0, tau_end], or reports that it could not. It is
    a sufficient test: False means "not proven", and callers fall back to
    `scan_rails`. It needs no eigenvectors, so ill-conditioned modes do not
    loosen it.

    Everything that does not depend on the operation is computed once here,
    for a fixed grid 0 = tau_0 < tau_1 < ... < tau_J:

    - The propagators exp(-M tau_j), stacked, so that the deviations d(tau_j)
      at all grid points are one matrix product.
    - For each step length h, a bound B_h >= |exp(-M s)| elementwise for s
      in [0, h]. On a step from tau_a of length h the second derivative
      x'' = exp(-M s) M^2 d(tau_a) obeys |x''| <= B_h |M^2 d(tau_a)|, so the
      chord test of `scan_rails`, max(|x(tau_a)|, |x(tau_b)|) + h^2/8 B_h
      |M^2 d(tau_a)| < rail, proves the step. Keeping M^2 d(tau_a) signed
      lets late steps, where only slow modes remain, pass close to a rail.
    - The peak gain gamma_i >= sup over s >= 0 of sum_l |exp(-M s)_il|. Then
      |x_i(tau) - x_ss_i| <= gamma_i max_l |d_l(tau_a)| for all tau >= tau_a,
      so once |x_ss_i| + gamma_i max_l |d_l(tau_a)| < rail for every i, no
      later time reaches a rail (tail test).

    An operation is proven if the chord tests pass on every step up to a
    grid point where the tail test passes, or up to tau_end. The chord test
    first uses the looser margin h^2/8 (B_h 1) max_l |(M^2 d(tau_a))_l| and
    computes B_h |M^2 d(tau_a)| only on the steps where that fails, so the
    cost per operation is about 2 J n_states^2 multiply-adds (J + 1 grid
    points) when nothing comes close to a rail.
    Operations that pass every chord test of the grid without a passing
    tail test, such as steady states within a few percent of a rail,
    continue on an extension grid built on first use.

    B_h comes from |exp(-M s)| <= exp(C s) with the comparison matrix
    C = -diag(M) + |offdiag(M)|: exp(-M s) is the limit of (I - M s/k)^k,
    whose entries are bounded by those of (I + C s/k)^k. On a short base
    step, exp(C s) <= exp((C + delta I) h) with delta = max(diag M, 0),
    because C + delta I >= 0. Longer steps follow from exp(-M s) =
    exp(-M h) exp(-M (s - h)): B_2h = max(B_h, |exp(-M h)| B_h). The peak
    gain is the largest row sum of B_g |exp(-M s_a)| over a grid s_a with
    steps g, and beyond the grid a Lyapunov bound: with M^T Q + Q M = I,
    d^T Q d cannot grow, so |d_i(s)| <= sqrt((Q^-1)_ii) ||d(S)||_Q for s >= S.

    Parameters
    ----------
    analysis : CircuitAnalysis
        Stable circuit (every eigenvalue of M with a positive real part).
    rail_V : float
        Output clamp, in volts.
    tau_end : float
        Normalized horizon 2 pi GBW t_end; the proof covers [0, tau_end].

    Raises
    ------
    ValueError
        If the circuit is unstable or the peak-gain bound fails (no accurate
        Lyapunov solution); `GridRailProof.build` returns None instead.
    """

    def __init__(self, analysis: CircuitAnalysis, rail_V: float, tau_end: float):
        rates = -analysis.normalized_poles
        decay = float(np.min(rates.real))
        if not decay > 0.0:
            raise ValueError("GridRailProof needs a stable circuit (every pole with a negative real part)")
        if not (np.isfinite(tau_end) and tau_end >= 0.0):
            raise ValueError(f"tau_end = {tau_end!r} is invalid: use a finite normalized time >= 0")
        matrix = analysis.system_matrix
        self.rail_V = float(rail_V)
        self.tau_end = float(tau_end)
        self._limit = self.rail_V * (1.0 - PROOF_TOLERANCE)
        self._decay = decay
        self._time_constant = 1.0 / float(np.max(np.abs(rates)))
        self._bounds = _StepBounds(matrix, self._time_constant)
        self._square_t = np.ascontiguousarray((matrix @ matrix).T)

        steps = _grid_steps(0.0, min(self.tau_end, _GRID_DECAY_SPAN / decay), self._time_constant)
        self._first = _GridSegment(self, 0.0, steps)
        self._extension: _GridSegment | None = None
        self.peak_gain = _peak_gain(matrix, self._bounds, self._time_constant)
        """Bound on sup over s >= 0 of the row sums of |exp(-M s)|, per state (dimensionless, >= 1)."""
        self._inverse_gain = (1.0 / self.peak_gain)[:, None]

    @classmethod
    def build(cls, analysis: CircuitAnalysis, rail_V: float, tau_end: float) -> "GridRailProof | None":
        """Return the proof for `analysis`, or None for an unstable circuit or a failed peak-gain bound."""
        try:
            return cls(analysis, rail_V, tau_end)
        except (ValueError, np.linalg.LinAlgError):
            return None

    @property
    def grid_tau(self) -> np.ndarray:
        """Normalized times of the first grid's points, from 0."""
        return self._first.tau

    def prove(self, steady: np.ndarray, deviation: np.ndarray) -> np.ndarray:
        """Return True per operation where every state provably stays inside the rails on [0, tau_end].

        Parameters
        ----------
        steady, deviation : ndarray, shape (n_states, K)
            Steady states x_ss and initial deviations x0 - x_ss, in volts.

        Returns
        -------
        ndarray of bool, shape (K,)
            False where a state may reach a rail or the grids did not suffice.
        """
        # Tail test: every state passes at a grid point if max_l |d_l| is
        # below min_i (limit - |x_ss_i|) / gamma_i.
        room = ((self._limit - np.abs(steady)) * self._inverse_gain).min(axis=0)
        proven, pending, last = self._first.run(steady, deviation, room)
        if pending.any():
            if self._extension is None:
                start = float(self._first.tau[-1])
                steps = _grid_steps(start, min(self.tau_end, _GRID_EXTENDED_SPAN / self._decay), self._time_constant)
                self._extension = _GridSegment(self, start, steps)
            columns = np.flatnonzero(pending)
            if len(self._extension.tau) > 1:
                extended, _, _ = self._extension.run(steady[:, columns], last[:, columns], room[columns])
                proven[columns] = extended
        return proven


class _GridSegment:
    """Grid points tau_0 < ... < tau_J of a `GridRailProof` and what its tests need there."""

    def __init__(self, proof: GridRailProof, start: float, steps: list[float]):
        time_constant = proof._time_constant
        bounds = proof._bounds
        self.tau = start + np.concatenate([[0.0], np.cumsum(steps)])
        if proof.tau_end <= self.tau[-1] and steps:
            # Land the last point on tau_end. The bound of a level covers any shorter step.
            self.tau[-1] = proof.tau_end
            steps[-1] = proof.tau_end - self.tau[-2]
        self._reaches_end = self.tau >= proof.tau_end
        self._proof = proof

        n = proof._square_t.shape[0]
        points = len(self.tau)
        stacked = np.empty((points, n, n))
        stacked[0] = np.eye(n)
        for j in range(1, points):
            stacked[j] = bounds.propagator(steps[j - 1]) @ stacked[j - 1]
        # Transposed, so that deviations come out as (K, points, n) and each
        # bound product below is one matrix product per level.
        self._stacked_t = np.ascontiguousarray(stacked.reshape(-1, n).T)
        self._chord_factor = (np.asarray(steps, dtype=float) ** 2 / 8.0)[:, None]

        # Steps up to one time constant share the bound of that length, and
        # longer steps use their own.
        short = _GRID_MIDDLE_STEP * time_constant
        levels = [short if step <= short * (1.0 + 1e-12) else step for step in steps]
        lengths = sorted(set(levels))
        self._bounds_t = [np.ascontiguousarray(bounds.sup_bound(length).T) for length in lengths]
        self._level = np.array([lengths.index(level) for level in levels], dtype=int)
        """Index into `_bounds_t` of each step."""
        # h^2/8 times the row sums of B_h: the chord margin per unit of max_l |(M^2 d)_l|.
        self._row_margin = np.array([self._chord_factor[j, 0] * self._bounds_t[level].sum(axis=0)
                                     for j, level in enumerate(self._level)]).reshape(len(steps), -1)

    def run(self, steady: np.ndarray, deviation: np.ndarray, room: np.ndarray):
        """Return (proven, pending, last deviation) for K trajectories that start this segment with `deviation`.

        `pending` marks trajectories that pass every chord test of the
        segment without a passing tail test before the horizon.
        """
        n, k_ops = deviation.shape
        points = len(self.tau)
        limit = self._proof._limit
        deviations = (deviation.T @ self._stacked_t).reshape(k_ops, points, n)
        magnitude = np.abs(deviations + steady.T[:, None, :])

        # |x''| <= B_h |M^2 d(tau_a)| on the step from tau_a, because M^2 commutes with exp(-M s).
        # The cheaper bound (B_h 1) max_l |(M^2 d)_l| decides first, and the
        # full product runs only for the steps where that bound fails.
        curvature = np.abs(deviations[:, :-1] @ self._proof._square_t)
        peak = np.maximum(magnitude[:, :-1], magnitude[:, 1:])
        chord_ok = (curvature.max(axis=2, keepdims=True) * self._row_margin + peak).max(axis=2) < limit
        if not chord_ok.all():
            ops, steps = np.nonzero(~chord_ok)
            for level, bound_t in enumerate(self._bounds_t):
                chosen = self._level[steps] == level
                if chosen.any():
                    op, step = ops[chosen], steps[chosen]
                    margin = self._chord_factor[step] * (curvature[op, step] @ bound_t)
                    chord_ok[op, step] = (margin + peak[op, step]).max(axis=1) < limit

        settled = (np.abs(deviations).max(axis=2) < room[:, None]) | self._reaches_end
        inside = np.empty((k_ops, points), dtype=bool)
        inside[:, 0] = magnitude[:, 0].max(axis=1) < limit
        inside[:, 1:] = np.logical_and.accumulate(chord_ok, axis=1) & inside[:, :1]
        proven = (inside & settled).any(axis=1)
        return proven, inside[:, -1] & ~proven, deviations[:, -1].T


def _grid_steps(start: float, horizon: float, time_constant: float) -> list[float]:
    """Return the step lengths of a `GridRailProof` grid from `start` to `horizon` (normalized times)."""
    steps: list[float] = []
    tau = start
    while tau < horizon:
        if start == 0.0 and len(steps) < len(_GRID_EARLY_STEPS):
            units = _GRID_EARLY_STEPS[len(steps)]
        elif tau < _GRID_MIDDLE_END * time_constant:
            units = _GRID_MIDDLE_STEP
        else:
            units = _GRID_LATE_STEP
        steps.append(units * time_constant)
        tau += steps[-1]
    return steps


class _StepBounds:
    """Propagators exp(-M h) and elementwise bounds B_h >= |exp(-M s)| for s in [0, h], cached per h."""

    def __init__(self, matrix: np.ndarray, time_constant: float):
        n = matrix.shape[0]
        self._matrix = matrix
        diagonal = np.diag(matrix)
        comparison = np.abs(matrix)
        comparison[np.diag_indices(n)] = -diagonal
        shift = max(float(np.max(diagonal)), 0.0)
        self._base = _GRID_EARLY_STEPS[0] * time_constant / 2.0 ** _BASE_HALVINGS
        # exp((C + shift I) s) is nondecreasing in s because C + shift I >= 0.
        self._bounds = {self._base: scipy.linalg.expm((comparison + shift * np.eye(n)) * self._base)}
        self._propagators: dict[float, np.ndarray] = {}

    def propagator(self, h: float) -> np.ndarray:
        if h not in self._propagators:
            half = self._propagators.get(0.5 * h)
            # Squaring a known half step costs one product instead of an expm.
            self._propagators[h] = half @ half if half is not None else scipy.linalg.expm(-self._matrix * h)
        return self._propagators[h]

    def sup_bound(self, h: float) -> np.ndarray:
        if h in self._bounds:
            return self._bounds[h]
        known = max(length for length in self._bounds if length < h)
        if 2.0 * known < h:
            shorter = self.sup_bound(0.5 * h)
            known = 0.5 * h
        else:
            shorter = self._bounds[known]
        # [0, h] = [0, known] and known + [0, h - known], with h - known <= known.
        bound = np.maximum(shorter, np.abs(self.propagator(known)) @ shorter)
        self._bounds[h] = bound
        return bound


def _peak_gain(matrix: np.ndarray, bounds: _StepBounds, time_constant: float) -> np.ndarray:
    """Return gamma_i >= sup over s >= 0 of sum_l |exp(-M s)_il| (see `GridRailProof`).

    Raises
    ------
    ValueError
        If the Lyapunov matrix for the tail beyond the grid is not accurate.
    """
    n = matrix.shape[0]
    q = scipy.linalg.solve_continuous_lyapunov(matrix.T, np.eye(n))
    q = 0.5 * (q + q.T)
    residual = matrix.T @ q + q @ matrix
    if not np.all(np.isfinite(q)) or float(np.min(np.linalg.eigvalsh(0.5 * (residual + residual.T)))) <= 0.5:
        raise ValueError("Lyapunov equation M^T Q + Q M = I has no accurate solution for this circuit")
    factor = np.linalg.cholesky(q)
    inverse_factor = scipy.linalg.solve_triangular(factor, np.eye(n), lower=True)
    reach = np.sqrt(np.sum(inverse_factor ** 2, axis=0))

    gain = np.ones(n)
    propagator = np.eye(n)
    s = 0.0
    next_check = time_constant
    while True:
        # Row sums of |exp(-M s')| for s' in [s, s + h] are at most B_h |exp(-M s)| 1.
        rows = np.sum(np.abs(propagator), axis=1)
        for units in reversed(_GAIN_STEPS):
            step = units * time_constant
            candidate = bounds.sup_bound(step) @ rows
            if units == _GAIN_STEPS[0] or np.all(candidate <= gain):
                gain = np.maximum(gain, candidate)
                break
        propagator = bounds.propagator(step) @ propagator
        s += step
        if s < next_check and s < _GAIN_END * time_constant:
            continue
        # For max|v_l| <= 1 and s' >= s: |(exp(-M s') v)_i| <= reach_i ||L^T exp(-M s) v||_2, and
        # ||L^T P v||_2 <= sum_l ||column l of L^T P||_2. Checked at doubling times, as it costs O(n^3).
        next_check = 2.0 * s
        tail = reach * float(np.sum(np.linalg.norm(factor.T @ propagator, axis=0)))
        if np.all(tail <= gain) or s >= _GAIN_END * time_constant:
            return np.maximum(gain, tail)


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
