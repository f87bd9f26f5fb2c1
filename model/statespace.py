"""Linear state-space analysis of a `LinearCircuit`: steady state, poles, transients, settling, stability.

Time is normalized as tau = 2 pi GBW t. With M = W + I/A0 the circuit of
`amc.model.circuits` obeys

    dx/dtau = -M x - W_s u

for op-amp outputs x inside the rails and DAC voltages u. Hence:

- steady state (finite gain): x_ss = -M^-1 W_s u. For the unsigned INV circuit
  this is V = -(G + D/A0)^-1 G_in V_in; the inverters of a signed circuit
  settle at -v/(1 + 2/A0).
- closed-loop poles: p = -2 pi GBW eig(M), in rad/s.
- response from x0: x(tau) = x_ss + exp(-M tau) (x0 - x_ss), evaluated with
  the eigendecomposition M = V diag(w) V^-1, or with `scipy.linalg.expm`
  when V is ill-conditioned (repeated or nearly repeated poles).

The saturating model (outputs clamped at the rails inside the loop, internal
pole nodes winding up) is in `amc.model.trajectory`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.linalg
import scipy.optimize

from .circuits import LinearCircuit
from .errors import UnstableCircuitError

__all__ = [
    "StabilityReport",
    "SettleEstimates",
    "CircuitAnalysis",
    "PerturbedSolveReport",
    "Transient",
    "check_stability",
]

EIGENVECTOR_CONDITION_LIMIT = 1e8
"""Above this 1-norm condition number of the eigenvector matrix, transients use
`scipy.linalg.expm`; the eigenvector route would lose more than about
1e8 * 1e-16 = 1e-8 relative accuracy."""

_EXPONENT_LIMIT = 600.0
"""Largest exponent evaluated directly; e^600 is about 1e260, below the float64 maximum."""

REFINEMENT_TOLERANCE = 1e-10
"""Relative size of the last correction at which `CircuitAnalysis.solve_line_perturbed` stops refining.

It is far below an ADC LSB (2^-8 = 3.9e-3 of full scale with 8 bits, 1.5e-5
with 16), so a steady state refined to it gives the ADC code of the direct
solve unless the voltage lies within about 1e-10 of its scale from a code edge."""

REFINEMENT_CONTRACTION_LIMIT = 0.25
"""Largest ratio of successive refinement corrections (max norm) with which a system keeps refining."""

REFINEMENT_MAX_STEPS = 20
"""Refinement steps after which a system that has not met the tolerance is solved directly."""

_GRID_STEP = 0.1
"""Step of the settling-time search grid, in units of 1 / max|pole| (normalized time)."""


@dataclass(frozen=True)
class StabilityReport:
    """Stability verdict of one circuit."""

    stable: bool
    rule: str | None
    """Rule that failed: "eigenvalue" (eig of D^-1 G) or "state-space" (closed-loop pole); None if stable."""

    lambda_min: complex
    """Loop eigenvalue with the smallest real part (see `LinearCircuit.loop_eigenvalues`)."""

    rightmost_pole_rad_per_s: complex
    """Closed-loop pole with the largest real part, in rad/s."""

    message: str
    """Verdict in one or two sentences, naming the failing value and the fix."""


@dataclass(frozen=True)
class SettleEstimates:
    """Settling-time estimates for a relative error eps, in seconds (None if unstable)."""

    eps: float
    formula_s: float | None
    """ln(1/eps) / (2 pi GBW lambda_min) with lambda_min from `LinearCircuit.loop_eigenvalues`."""

    slowest_pole_s: float | None
    """ln(1/eps) / |Re p| of the slowest closed-loop pole (inverters included)."""


class CircuitAnalysis:
    """Steady state, poles and dynamics of one `LinearCircuit`.

    Factorizations are computed once, on first use, and reused by every call.
    """

    def __init__(self, circuit: LinearCircuit):
        self.circuit = circuit
        self.open_loop_gain = circuit.opamp.open_loop_gain
        self.rate_rad_per_s = 2.0 * math.pi * circuit.opamp.gbw_Hz
        """Normalization 2 pi GBW of the time axis, in rad/s."""
        n = circuit.n_states
        matrix = np.array(circuit.output_weights, dtype=float)
        matrix[np.diag_indices(n)] += 1.0 / self.open_loop_gain
        self.system_matrix = matrix
        """M = W + I/A0 (dimensionless): dx/dtau = -M x - W_s u."""

    # Steady state --------------------------------------------------------

    @cached_property
    def _steady_solver(self):
        # Eliminate the inverter states first. Each inverter summing node is
        # joined only to its input and its own output, so their block of M is
        # diagonal and the remaining system has the size of the line op-amp count.
        m = self.system_matrix
        n1 = self.circuit.n_outputs
        inverter_block = m[n1:, n1:]
        d = np.diag(inverter_block).copy()
        if np.count_nonzero(inverter_block - np.diag(d)) or np.any(d == 0.0):
            return ("full", _lu_factor(m))
        m12, m21 = m[:n1, n1:], m[n1:, :n1]
        schur = m[:n1, :n1] - m12 @ (m21 / d[:, None])
        return ("schur", _lu_factor(schur), m12, m21, d)

    def steady_state(self, u) -> np.ndarray:
        """Return the finite-gain steady state x_ss = -M^-1 W_s u, in volts.

        Parameters
        ----------
        u : array_like, shape (n_sources,) or (n_sources, K)
            DAC output voltages, in volts.

        Returns
        -------
        ndarray, shape (n_states,) or (n_states, K)
            Op-amp output voltages, line op-amps first; not clamped at the rails.
        """
        u = np.asarray(u, dtype=float)
        return self.solve_system(-(self.circuit.source_weights @ u))

    def solve_system(self, rhs) -> np.ndarray:
        """Return M^-1 rhs with the cached factorization of M = W + I/A0.

        Parameters
        ----------
        rhs : array_like, shape (n_states,) or (n_states, K)

        Returns
        -------
        ndarray, same shape as `rhs`
        """
        rhs = np.asarray(rhs, dtype=float)
        solver = self._steady_solver
        if solver[0] == "full":
            return _lu_solve(solver[1], rhs)
        _, lu, m12, m21, d = solver
        n1 = self.circuit.n_outputs
        scale = d if rhs.ndim == 1 else d[:, None]
        r1, r2 = rhs[:n1], rhs[n1:]
        x1 = _lu_solve(lu, r1 - m12 @ (r2 / scale))
        x2 = (r2 - m21 @ x1) / scale
        return np.concatenate([x1, x2], axis=0)

    def solve_line_perturbed(self, line_matrix, rhs, *, method: str = "auto",
                             tolerance: float = REFINEMENT_TOLERANCE) -> tuple[np.ndarray, "PerturbedSolveReport"]:
        """Solve K systems M_k x_k = b_k whose matrices differ from M only in the line op-amp rows.

        Read noise changes only the cells, and the cells join only the summing
        nodes of the line op-amps. A noisy circuit of the same switch state
        therefore has the matrix M of this circuit except in its first
        n_outputs rows (`amc.model.circuits.CircuitTopology.line_conductance`).

        Parameters
        ----------
        line_matrix : ndarray, shape (K, n_outputs, n_states)
            Rows 0 to n_outputs - 1 of each M_k (dimensionless).
        rhs : ndarray, shape (n_states, K)
            Right-hand side b_k of each system, one column per system.
        method : {"auto", "refine", "direct"}
            "refine": iterative refinement with the factorization of this
            (unperturbed) M, x <- x + M^-1 (b_k - M_k x), O(n^2) per step and
            system, vectorized over the systems. A system whose corrections
            shrink by less than `REFINEMENT_CONTRACTION_LIMIT` per step, or
            that needs more than `REFINEMENT_MAX_STEPS` steps, is solved
            by "direct" instead. "direct": one LU factorization per system,
            O(n^3) each, in batched LAPACK calls. "auto" picks "refine" when
            the direct factorizations cost more than the refinement steps
            (see `_prefers_refinement`). All three agree to the tolerance.
        tolerance : float
            Refinement stops when the last correction of a system is at most
            `tolerance` times its largest |x| (max norm over the states that
            the elimination of the inverters leaves).

        Returns
        -------
        x : ndarray, shape (n_states, K)
        report : PerturbedSolveReport
            Refinement steps and the systems solved directly.

        Notes
        -----
        Refinement with the unperturbed factorization converges with the
        ratio rho = spectral radius of M^-1 (M_k - M). With read noise of
        0.5 % per cell, rho was 0.005 to 0.03 on signed INV circuits of 8 to
        64 lines (the benchmark matrices of `benchmarks/run.py` and damped,
        equilibrated covariance matrices), and 5 to 7 steps reached 1e-10.

        At the stop the last correction is at most `tolerance` |x| and at
        most q = `REFINEMENT_CONTRACTION_LIMIT` times the one before. While
        the corrections keep shrinking by that ratio (geometric convergence),
        the remaining error is at most q / (1 - q) = 1/3 of the last
        correction, so below `tolerance` |x| / 3. Rounding adds about the
        condition number of M_k times 1e-16 |x|, as in a direct solve. Where
        rounding keeps the corrections from shrinking, the contraction test
        sends the system to the direct solve.
        """
        if method not in ("auto", "refine", "direct"):
            raise ValueError(f"method = {method!r} is invalid: use 'auto', 'refine' or 'direct'")
        if not 0.0 < tolerance < 1.0:
            raise ValueError(f"tolerance = {tolerance!r} is invalid: use a relative error in (0, 1)")
        circuit = self.circuit
        n1, n_states = circuit.n_outputs, circuit.n_states
        line_matrix = np.asarray(line_matrix, dtype=float)
        rhs = np.asarray(rhs, dtype=float)
        count = rhs.shape[1] if rhs.ndim == 2 else -1
        if line_matrix.shape != (count, n1, n_states) or rhs.shape != (n_states, count):
            raise ValueError(
                f"line_matrix has shape {line_matrix.shape} and rhs {rhs.shape}; expected (K, {n1}, {n_states}) "
                f"and ({n_states}, K)"
            )
        system = _PerturbedSystem(self, line_matrix, rhs.T)
        if method == "auto":
            method = "refine" if _prefers_refinement(system.size, count) else "direct"
        if method == "direct":
            reduced = system.solve_direct(np.arange(count))
            return system.expand(reduced), PerturbedSolveReport(0, np.arange(count))
        reduced, iterations, direct = system.refine(tolerance)
        if direct.size:
            reduced[direct] = system.solve_direct(direct)
        return system.expand(reduced), PerturbedSolveReport(iterations, direct)

    @cached_property
    def steady_operator(self) -> np.ndarray:
        """Steady-state operator T = -M^-1 W_s, shape (n_states, n_sources), in volts per volt (read-only).

        It is `steady_state` of the identity, so T u equals ``steady_state(u)``
        up to floating-point rounding (about 1e-16 relative). A product with T
        costs O(n_states n_sources), against the LU solves of `steady_state`
        on every call.
        """
        operator = self.steady_state(np.eye(self.circuit.n_sources))
        operator.setflags(write=False)
        return operator

    def ideal_steady_state(self, u) -> np.ndarray:
        """Return the steady state for infinite open-loop gain (W x = -W_s u), in volts."""
        rhs = -(self.circuit.source_weights @ np.asarray(u, dtype=float))
        return np.linalg.solve(self.circuit.output_weights, rhs)

    # Poles and stability ---------------------------------------------------

    @cached_property
    def _eigen(self):
        w, vectors = scipy.linalg.eig(self.system_matrix, check_finite=False)
        try:
            inverse = np.linalg.inv(vectors)
            condition = float(np.linalg.norm(vectors, 1) * np.linalg.norm(inverse, 1))
        except np.linalg.LinAlgError:
            inverse, condition = None, math.inf
        if not math.isfinite(condition) or condition > EIGENVECTOR_CONDITION_LIMIT:
            inverse = None
        return w, vectors, inverse, condition

    @property
    def uses_expm(self) -> bool:
        """True if transients use the matrix exponential (ill-conditioned eigenvectors)."""
        return self._eigen[2] is None

    @property
    def eigenvector_condition(self) -> float:
        """1-norm condition number of the eigenvector matrix of M."""
        return self._eigen[3]

    @property
    def normalized_poles(self) -> np.ndarray:
        """Closed-loop poles divided by 2 pi GBW (dimensionless), -eig(M)."""
        return -self._eigen[0]

    @property
    def poles_rad_per_s(self) -> np.ndarray:
        """Closed-loop poles of all op-amps, inverters included, in rad/s."""
        return self.normalized_poles * self.rate_rad_per_s

    @cached_property
    def loop_eigenvalues(self) -> np.ndarray:
        """eig(D^-1 G) for INV, G_f / D_i for MVM; see `LinearCircuit.loop_eigenvalues`."""
        return self.circuit.loop_eigenvalues()

    @property
    def slowest_decay_rate_rad_per_s(self) -> float:
        """Smallest -Re(p) over the closed-loop poles, in 1/s; at most zero if unstable."""
        return float(np.min(-self.normalized_poles.real)) * self.rate_rad_per_s

    @cached_property
    def stability(self) -> StabilityReport:
        """Stability verdict by the eigenvalue rule and by the closed-loop poles."""
        lam = self.loop_eigenvalues
        lam_min = complex(lam[int(np.argmin(lam.real))])
        poles = self.poles_rad_per_s
        rightmost = complex(poles[int(np.argmax(poles.real))])
        what = f"{self.circuit.mode.name}{' signed' if self.circuit.signed else ''} circuit"
        if lam_min.real <= 0.0:
            message = (
                f"{what} is unstable: eigenvalue {_fmt(lam_min)} of D^-1 G has a real part <= 0, so the "
                "outputs run to the rails. Use a matrix whose D^-1 G eigenvalues all have positive real "
                "parts, such as a symmetric positive-definite matrix, or shift its diagonal."
            )
            return StabilityReport(False, "eigenvalue", lam_min, rightmost, message)
        if rightmost.real >= 0.0:
            frequency = abs(rightmost.imag) / (2.0 * math.pi)
            message = (
                f"{what} is unstable: closed-loop pole {_fmt(rightmost / self.rate_rad_per_s)} x 2 pi GBW "
                f"(growth {rightmost.real:.4g} 1/s, {frequency / 1e6:.4g} MHz) has a real part >= 0 although "
                f"every eigenvalue of D^-1 G has a positive real part (smallest {_fmt(lam_min)}). The delay "
                "of the inverter op-amps inside the loop causes it. Use a matrix whose D^-1 G eigenvalues "
                "have larger real parts relative to their imaginary parts (for example a diagonal shift), "
                "or faster inverters."
            )
            return StabilityReport(False, "state-space", lam_min, rightmost, message)
        slowest = -self.slowest_decay_rate_rad_per_s
        message = (
            f"{what} is stable: smallest eigenvalue real part {lam_min.real:.4g}, "
            f"slowest pole {slowest:.4g} 1/s"
        )
        return StabilityReport(True, None, lam_min, rightmost, message)

    # Settling ------------------------------------------------------------

    def settle_estimates(self, eps: float) -> SettleEstimates:
        """Return the eigenvalue-formula and slowest-pole settling estimates for relative error `eps`."""
        _check_eps(eps)
        log_term = math.log(1.0 / eps)
        lam_min = float(np.min(self.loop_eigenvalues.real))
        formula = log_term / (self.rate_rad_per_s * lam_min) if lam_min > 0.0 else None
        rate = self.slowest_decay_rate_rad_per_s
        slowest = log_term / rate if rate > 0.0 else None
        return SettleEstimates(eps=eps, formula_s=formula, slowest_pole_s=slowest)

    def settle_time(self, eps: float, x0, u, reference_V: float | None = None) -> float | None:
        """Return the settling time of the linear response from `x0`, in seconds.

        The settling time is the time after which
        ``max_i |x_i(t) - x_ss_i| <= eps * reference_V`` holds for good, over
        the line op-amp outputs. `reference_V` defaults to ``max_i |x_ss_i|``
        over those outputs. Returns None for an unstable circuit.
        """
        _check_eps(eps)
        if self.slowest_decay_rate_rad_per_s <= 0.0:
            return None
        x_ss = self.steady_state(u)
        n_out = self.circuit.n_outputs
        if reference_V is None:
            reference_V = float(np.max(np.abs(x_ss[:n_out])))
        if reference_V <= 0.0:
            raise ValueError("settling reference is 0 V (all outputs settle at 0 V); pass reference_V in volts")
        target = eps * reference_V
        deviation = np.asarray(x0, dtype=float) - x_ss
        if self.uses_expm:
            tau = self._settle_by_stepping(deviation, target)
        else:
            tau = self._settle_by_modes(deviation, target)
        return tau / self.rate_rad_per_s

    def _settle_by_modes(self, deviation: np.ndarray, target: float) -> float:
        w, vectors, inverse, _ = self._eigen
        n_out = self.circuit.n_outputs
        residues = vectors[:n_out] * (inverse @ deviation)[None, :]
        decay = w.real

        def error(tau):
            return float(np.max(np.abs((residues @ np.exp(-w * tau)).real)))

        # sum_k |R_ik| exp(-Re(w_k) tau) bounds the error at tau and at every
        # later time, so the last crossing lies before the bound falls below
        # the target. Bisection finds that time because the bound decreases.
        magnitudes = np.abs(residues)

        def bound(tau):
            return float(np.max(magnitudes @ np.exp(-decay * tau)))

        if bound(0.0) <= target:
            return 0.0
        high = math.log(bound(0.0) / target) / float(np.min(decay))
        low = 0.0
        for _ in range(60):
            middle = 0.5 * (low + high)
            if bound(middle) <= target:
                high = middle
            else:
                low = middle
        tau_end = high
        step = _GRID_STEP / float(np.max(np.abs(w)))
        points = max(int(math.ceil(tau_end / step)), 2)
        grid = np.linspace(0.0, tau_end, points + 1)
        chunk = 512
        stop = len(grid)
        while stop > 0:
            start = max(stop - chunk, 0)
            taus = grid[start:stop]
            values = np.max(np.abs((residues @ np.exp(-np.outer(w, taus))).real), axis=0)
            above = np.flatnonzero(values > target)
            if above.size:
                k = start + int(above[-1])
                if k + 1 >= len(grid):
                    return float(grid[-1])
                return float(scipy.optimize.brentq(lambda t: error(t) - target, grid[k], grid[k + 1], xtol=1e-12))
            stop = start
        return 0.0

    def _settle_by_stepping(self, deviation: np.ndarray, target: float) -> float:
        # NOTE: stepping stops once the whole state deviation is 1000x below
        # the target. A non-normal transient that grows back by more than that
        # factor afterwards would be missed.
        n_out = self.circuit.n_outputs
        rho = float(np.max(np.abs(self._eigen[0])))
        step = _GRID_STEP / rho
        propagator = scipy.linalg.expm(-self.system_matrix * step)
        last_above, tau, state = None, 0.0, deviation
        slowest = self.slowest_decay_rate_rad_per_s / self.rate_rad_per_s
        limit = 50.0 * math.log(float(np.max(np.abs(deviation))) / target + math.e) / slowest
        while tau <= limit:
            if np.max(np.abs(state[:n_out])) > target:
                last_above = tau
            elif np.max(np.abs(state)) < 1e-3 * target:
                break
            state = propagator @ state
            tau += step
        if last_above is None:
            return 0.0

        def error(t):
            return float(np.max(np.abs((scipy.linalg.expm(-self.system_matrix * t) @ deviation)[:n_out]))) - target

        return float(scipy.optimize.brentq(error, last_above, last_above + step, xtol=1e-12))

    # Transients ------------------------------------------------------------

    def transient(self, x0, u) -> "Transient":
        """Return the linear trajectory that starts at `x0` (volts) with DAC voltages `u`."""
        return Transient(self, x0, u)

    def response(self, t_s, x0, u) -> np.ndarray:
        """Return the linear (unclamped) op-amp outputs at time(s) `t_s`, in volts.

        Returns shape (n_states,) for a scalar time and (len(t_s), n_states) for an array.
        """
        trajectory = self.transient(x0, u)
        times = np.atleast_1d(np.asarray(t_s, dtype=float))
        states = np.array([trajectory.states(t) for t in times])
        return states[0] if np.ndim(t_s) == 0 else states

    def propagator_rows(self, rows, t_s) -> np.ndarray:
        """Return rows of exp(-M tau): row k is state ``rows[k]`` at time ``t_s[k]`` (seconds).

        Multiplying the result by a deviation x0 - x_ss gives those states'
        deviations at their times. Shape (len(rows), n_states), real.
        """
        rows = np.asarray(rows, dtype=int)
        taus = np.broadcast_to(np.asarray(t_s, dtype=float), rows.shape) * self.rate_rad_per_s
        w, vectors, inverse, _ = self._eigen
        if inverse is not None:
            phases = np.exp(-np.outer(taus, w))
            return ((vectors[rows] * phases) @ inverse).real
        result = np.empty((len(rows), self.circuit.n_states))
        for tau in np.unique(taus):
            chosen = taus == tau
            result[chosen] = self._expm(tau)[rows[chosen]]
        return result

    def _expm(self, tau: float) -> np.ndarray:
        return scipy.linalg.expm(-self.system_matrix * tau)


@dataclass(frozen=True)
class PerturbedSolveReport:
    """Refinement steps and direct solves of one `CircuitAnalysis.solve_line_perturbed` call."""

    refinement_steps: int
    """Correction steps of the system that needed the most (0 without refinement)."""

    direct: np.ndarray
    """Indices of the systems solved by direct factorization."""


class _PerturbedSystem:
    """K systems M_k x = b_k that differ from an analysed M in the line rows, reduced as `solve_system` reduces M.

    When the inverter block of M is diagonal (the "schur" solver, as in
    every circuit of `build_circuit`), the inverter states are eliminated.
    With M_k = [[A_k, C_k], [M21, D]] the line states solve
    S_k x1 = b1 - C_k D^-1 b2 with the Schur complement S_k = A_k - C_k E,
    E = D^-1 M21, and x2 = D^-1 (b2 - M21 x1). Otherwise the full systems are
    used. Arrays hold one system per row.
    """

    def __init__(self, analysis: CircuitAnalysis, line_matrix: np.ndarray, rhs: np.ndarray):
        solver = analysis._steady_solver
        n1 = analysis.circuit.n_outputs
        self.line_matrix = line_matrix
        self.count = rhs.shape[0]
        self.schur = solver[0] == "schur"
        if self.schur:
            _, self.lu, _, self.m21, self.d = solver
            self.elimination = self.m21 / self.d[:, None]
            self.b2 = rhs[:, n1:]
            self.reduced_rhs = rhs[:, :n1] - _matvec(line_matrix[:, :, n1:], self.b2 / self.d)
        else:
            self.lu = solver[1]
            self.system_matrix = analysis.system_matrix
            self.reduced_rhs = rhs
        self.size = self.reduced_rhs.shape[1]

    def apply(self, line_matrix: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Return S_k x_k (or M_k x_k) for the systems whose line rows are `line_matrix`."""
        n1 = line_matrix.shape[1]
        if self.schur:
            return _matvec(line_matrix, np.concatenate([x, -(x @ self.elimination.T)], axis=1))
        rest = x @ self.system_matrix[n1:].T
        return np.concatenate([_matvec(line_matrix, x), rest], axis=1)

    def solve_nominal(self, rhs: np.ndarray) -> np.ndarray:
        """Return the unperturbed solve of each row of `rhs` (S^-1 or M^-1)."""
        # rhs.T of a C-ordered (K, n) array is Fortran-ordered, as LAPACK takes it.
        return _lu_solve(self.lu, rhs.T).T

    def refine(self, tolerance: float) -> tuple[np.ndarray, int, np.ndarray]:
        """Return (reduced solutions, steps, systems to solve directly); see `CircuitAnalysis.solve_line_perturbed`."""
        # The first step from x = 0 is the unperturbed solve of b_k.
        x = self.solve_nominal(self.reduced_rhs)
        previous = np.max(np.abs(x), axis=1)
        active = np.arange(self.count)
        matrix, rhs = self.line_matrix, self.reduced_rhs
        direct: list[np.ndarray] = []
        steps = 0
        while active.size and steps < REFINEMENT_MAX_STEPS:
            steps += 1
            current = x if active.size == self.count else x[active]
            correction = self.solve_nominal(rhs - self.apply(matrix, current))
            current += correction
            size = np.max(np.abs(correction), axis=1)
            contracting = size <= REFINEMENT_CONTRACTION_LIMIT * previous
            done = contracting & (size <= tolerance * np.max(np.abs(current), axis=1))
            if current is not x:
                x[active] = current
            keep = contracting & ~done
            direct.append(active[~contracting])
            if not keep.all():
                # Copy the rows of the remaining systems once, not at every step.
                active, matrix, rhs = active[keep], matrix[keep], rhs[keep]
                size = size[keep]
            previous = size
        direct.append(active)
        return x, steps, np.sort(np.concatenate(direct))

    def solve_direct(self, systems: np.ndarray) -> np.ndarray:
        """Return the reduced solutions of `systems` by one LU factorization each (batched LAPACK)."""
        matrix = self.line_matrix[systems]
        count, n1, _ = matrix.shape
        if self.schur:
            coupling = matrix[:, :, n1:].reshape(count * n1, -1) @ self.elimination
            schur = matrix[:, :, :n1] - coupling.reshape(count, n1, n1)
            return np.linalg.solve(schur, self.reduced_rhs[systems][:, :, None])[:, :, 0]
        full = np.repeat(self.system_matrix[None], count, axis=0)
        full[:, :n1] = matrix
        return np.linalg.solve(full, self.reduced_rhs[systems][:, :, None])[:, :, 0]

    def expand(self, reduced: np.ndarray) -> np.ndarray:
        """Return the full states, shape (n_states, K), from the reduced solutions (K, size)."""
        if not self.schur:
            return np.ascontiguousarray(reduced.T)
        inverters = (self.b2 - reduced @ self.m21.T) / self.d
        return np.concatenate([reduced, inverters], axis=1).T.copy()


def _prefers_refinement(size: int, count: int) -> bool:
    """Return True if refining `count` systems of reduced size `size` is expected to beat direct factorizations.

    A refinement step costs O(size^2) per system plus a fixed cost of about
    ten numpy calls per step, so it pays off for many or large systems. The
    measured crossover lay at count x size^2 of about 1.5e4 to 3e4 for
    signed INV circuits of 24 to 96 lines (5 to 6 steps each).

    NOTE: measured with numpy 2.4 and OpenBLAS on one thread of an x86_64
    core (see docs/model.md, Speed). The choice affects speed only: both
    methods agree to the refinement tolerance.
    """
    return count * size * size >= _REFINEMENT_MIN_WORK


_REFINEMENT_MIN_WORK = 20_000
"""Systems times squared reduced size from which "auto" refines (see `_prefers_refinement`)."""


def _matvec(matrices: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Return matrices[k] @ vectors[k] for each k: (K, m, n) and (K, n) give (K, m)."""
    return np.matmul(matrices, vectors[:, :, None])[:, :, 0]


def _lu_factor(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the LU factors (lu, piv) of a float64 matrix.

    It calls LAPACK dgetrf as `scipy.linalg.lu_factor` does, so the factors
    are the same to the last bit, without the wrapper's per-call cost of a
    few microseconds.
    """
    lu, piv, info = scipy.linalg.lapack.dgetrf(matrix)
    if info < 0:
        raise ValueError(f"illegal value in argument {-info} of LAPACK dgetrf")
    if info > 0:
        warnings.warn(f"Diagonal number {info} is exactly zero. Singular matrix.", scipy.linalg.LinAlgWarning,
                      stacklevel=3)
    return lu, piv


def _lu_solve(factors: tuple[np.ndarray, np.ndarray], rhs: np.ndarray) -> np.ndarray:
    """Return the solution for the LU factors of `_lu_factor` (LAPACK dgetrs, as `scipy.linalg.lu_solve`)."""
    lu, piv = factors
    if lu.shape[0] != rhs.shape[0]:
        raise ValueError(f"shapes of the LU factors {lu.shape} and the right-hand side {rhs.shape} are incompatible")
    x, info = scipy.linalg.lapack.dgetrs(lu, piv, rhs)
    if info != 0:
        raise ValueError(f"illegal value in argument {-info} of LAPACK dgetrs")
    return x


class Transient:
    """Linear trajectory of one operation: steady state plus decaying (or growing) modes."""

    def __init__(self, analysis: CircuitAnalysis, x0, u):
        self.analysis = analysis
        self.x0 = np.array(x0, dtype=float)
        self.steady_state = analysis.steady_state(u)
        deviation = self.x0 - self.steady_state
        self._deviation = deviation
        w, vectors, inverse, _ = analysis._eigen
        self._coefficients = None if inverse is None else inverse @ deviation
        self._growth = max(float(np.max(-w.real)), 0.0)

    def states(self, t_s: float, index=None) -> np.ndarray:
        """Return op-amp outputs at `t_s` seconds after the start, in volts, not clamped.

        `index` selects states (int or index array); by default all. An
        unstable mode that has grown beyond about e^600 gives +/-inf in its direction.
        """
        analysis = self.analysis
        tau = float(t_s) * analysis.rate_rad_per_s
        if tau < 0.0:
            raise ValueError(f"time {t_s!r} s is before the start of the transient; use t_s >= 0")
        select = slice(None) if index is None else index
        w, vectors, inverse, _ = analysis._eigen
        shift = self._growth * tau
        if inverse is not None:
            # Factor out the fastest growth so the exponentials stay finite.
            modes = self._coefficients * np.exp(-w * tau - shift)
            scaled = np.atleast_1d((vectors[select] @ modes).real)
        else:
            limit = _EXPONENT_LIMIT / self._growth if self._growth > 0.0 else math.inf
            tau_eval = min(tau, limit)
            shift = self._growth * tau_eval if tau > limit else 0.0
            scaled = np.atleast_1d((analysis._expm(tau_eval) @ self._deviation)[select])
            if tau > limit:
                shift = _EXPONENT_LIMIT + 1.0
        base = np.atleast_1d(self.steady_state[select])
        if shift <= _EXPONENT_LIMIT:
            result = base + scaled * math.exp(shift)
        else:
            result = np.where(scaled != 0.0, np.sign(scaled) * np.inf, base)
        return result if index is None or np.ndim(index) else result[0]

    @property
    def coefficients(self) -> np.ndarray | None:
        """Modal coefficients c = V^-1 (x0 - x_ss), or None on the matrix-exponential route."""
        return self._coefficients


def check_stability(analysis: CircuitAnalysis) -> StabilityReport:
    """Return the stability report of `analysis`, raising `UnstableCircuitError` if unstable.

    Two rules apply: every eigenvalue of D^-1 G must have a positive real part
    (Sun et al., IEEE TED 2020), and every closed-loop pole of the full
    state-space model, inverter op-amps included, must have a negative real
    part. The second rule catches signed circuits that the inverter delay
    inside the loop makes oscillate although the first rule passes.
    """
    report = analysis.stability
    if not report.stable:
        raise UnstableCircuitError(report.message)
    return report


def _check_eps(eps: float) -> None:
    if not 0.0 < eps < 1.0:
        raise ValueError(f"eps = {eps!r} is invalid: use a relative error in (0, 1)")


def _fmt(value: complex) -> str:
    if abs(value.imag) <= 1e-12 * max(abs(value.real), 1e-300):
        return f"{value.real:.4g}"
    return f"{value.real:.4g}{value.imag:+.4g}j"
