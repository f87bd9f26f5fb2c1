"""Inversion backends of the K-FAC optimizer.

A backend turns one damped Kronecker factor F (symmetric positive definite,
N x N) into a `FactorSolver` that returns F^-1 B for right-hand sides B
(N x K). The optimizer asks for the explicit inverse (B = I) at every inverse
refresh, or, in ``apply_mode="solve"``, solves the layer gradient itself at
every step.

This module is the only one in ``amc.train`` that calls the analog model
(``amc.model``) or the co-simulation. Backends:

- `ExactBackend`: float64 Cholesky solve with torch.linalg, the reference.
- `AnalogBackend`: the modeled macro, `amc.model.solve.ProgrammedSolver`
  (see its docstring for the mapping).
- `CosimSampledBackend`: wraps another backend and re-runs a sample of the
  inversions through a co-simulation callable, recording the difference.
"""

from __future__ import annotations

import abc
import logging
import math
import time
import zlib
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..model.circuits import build_circuit
from ..model.config import MacroConfig
from ..model.converters import adc_convert, adc_decode
from ..model.devices import NEGATIVE, POSITIVE
from ..model.encoding import choose_input_scale, decode_output, encode_input, output_gain
from ..model.macro import AnalogMacro, adc_settle_eps, make_switch_state
from ..model.solve import AUTO_SETTLE_MARGIN, MAX_RANGE_STEPS, RANGE_STEP, RANGE_TARGET, ProgrammedSolver
from ..model.statespace import CircuitAnalysis
from ..model.switch_matrix import mode_by_name

__all__ = [
    "BackendError",
    "FactorTooLargeError",
    "UnstableFactorError",
    "FactorSolver",
    "InverseBackend",
    "ExactBackend",
    "AnalogBackend",
    "analog_backend_factory",
    "cosim_solve_function",
    "CosimComparison",
    "CosimSampledBackend",
]

log = logging.getLogger(__name__)


class BackendError(ValueError):
    """An inversion that a backend cannot perform as configured."""


class FactorTooLargeError(BackendError):
    """A factor (or factor block) larger than one array of the macro."""

    def __init__(self, label: str, size: int, max_size: int) -> None:
        self.label, self.size, self.max_size = label, size, max_size
        super().__init__(
            f"K-FAC factor {label} is {size}x{size}, but one array of the macro holds at most "
            f"{max_size}x{max_size} and the model has no block solver for larger matrices. To make it fit, "
            f"configure arrays of at least {size}x{size} (amc train --array-size {size}) or choose the "
            f"block-diagonal approximation with blocks of at most {max_size} "
            f"(amc train --block-diagonal {max_size}; KFAC(block_size={max_size}))"
        )


class UnstableFactorError(BackendError):
    """A factor whose programmed INV circuit would not settle.

    The INV circuit settles only when every eigenvalue of its loop matrix has
    a positive real part (Sun et al., PNAS 116:4123, 2019). Level quantization,
    programming error and stuck cells can move an eigenvalue of a factor that
    is positive definite in floating point below zero.
    """

    def __init__(self, label: str, min_real_eigenvalue: float, detail: str = "", required: float = 0.0) -> None:
        self.label, self.min_real_eigenvalue, self.required = label, min_real_eigenvalue, required
        bound = "above zero" if required == 0 else f"above the read-noise margin {required:.3g}"
        text = (
            f"the programmed K-FAC factor {label} is unstable in the INV circuit: smallest eigenvalue real part "
            f"of D^-1 G is {min_real_eigenvalue:.3g} (must be {bound})"
        )
        super().__init__(text + (f"; {detail}" if detail else ""))


class FactorSolver(abc.ABC):
    """One factor prepared by a backend; solves F X = B for many B.

    Attributes
    ----------
    size : int
        N, the order of F.
    columns_solved : int
        Right-hand-side columns solved so far (each column is one analog
        operation on the macro backends).
    passes : int
        Analog passes per column: 1, plus one per iterative-refinement step.
    info : dict
        Backend diagnostics of the programmed factor (floats), for example
        the settling time in seconds; copied into the optimizer's inversion log.
    """

    size: int
    columns_solved: int
    passes: int
    info: dict

    def __init__(self, size: int) -> None:
        self.size = size
        self.columns_solved = 0
        self.passes = 1
        self.info = {}

    def solve(self, rhs: torch.Tensor) -> torch.Tensor:
        """Return F^-1 rhs for rhs of shape (N, K), in float64."""
        if rhs.ndim != 2 or rhs.shape[0] != self.size:
            raise BackendError(f"right-hand side has shape {tuple(rhs.shape)}, expected ({self.size}, K)")
        self.columns_solved += rhs.shape[1]
        return self._solve(rhs.to(torch.float64))

    def inverse(self) -> torch.Tensor:
        """Return F^-1 (N x N, float64) by solving against the identity."""
        return self.solve(torch.eye(self.size, dtype=torch.float64))

    @abc.abstractmethod
    def _solve(self, rhs: torch.Tensor) -> torch.Tensor: ...


class InverseBackend(abc.ABC):
    """Interface of an inversion backend.

    Attributes
    ----------
    name : str
        Short name used in logs, CSV files and plots.
    max_size : int or None
        Largest factor order `prepare` accepts (one array of the macro), or
        None for no limit.
    analog : bool
        True when the inversions run on the (modeled) macro, so the optimizer
        applies the INV stability check and the cost estimator counts them.
    """

    name: str = "backend"
    max_size: int | None = None
    analog: bool = False

    @abc.abstractmethod
    def prepare(self, matrix: torch.Tensor, *, label: str) -> FactorSolver:
        """Map and analyse one symmetric positive definite factor (float64, N x N).

        Raises
        ------
        FactorTooLargeError
            N exceeds `max_size`.
        UnstableFactorError
            The factor as programmed would not settle; the optimizer raises the
            damping and calls again.
        """

    def describe(self) -> str:
        """Return a one-line description for the run log."""
        return self.name

    def check_size(self, size: int, label: str) -> None:
        """Raise `FactorTooLargeError` when a factor of this order cannot be prepared."""
        if self.max_size is not None and size > self.max_size:
            raise FactorTooLargeError(label, size, self.max_size)


class _CholeskySolver(FactorSolver):
    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__(matrix.shape[0])
        chol, status = torch.linalg.cholesky_ex(matrix)
        if int(status) != 0:
            # Not positive definite in float64: fall back to a symmetric
            # eigendecomposition with eigenvalues clamped at a tiny positive
            # floor, so the preconditioner stays positive definite.
            eigenvalues, vectors = torch.linalg.eigh(matrix)
            floor = max(float(eigenvalues.abs().max()) * 1e-12, 1e-30)
            self._eig = (eigenvalues.clamp_min(floor), vectors)
            self._chol = None
            self.info["clamped_eigenvalues"] = float((eigenvalues < floor).sum())
        else:
            self._chol = chol
            self._eig = None

    def _solve(self, rhs: torch.Tensor) -> torch.Tensor:
        if self._chol is not None:
            return torch.cholesky_solve(rhs, self._chol)
        eigenvalues, vectors = self._eig
        return vectors @ ((vectors.T @ rhs) / eigenvalues[:, None])


class ExactBackend(InverseBackend):
    """Floating-point reference: Cholesky factorization in float64 (torch.linalg)."""

    name = "exact"

    def prepare(self, matrix: torch.Tensor, *, label: str) -> FactorSolver:
        return _CholeskySolver(matrix.to(torch.float64))

    def describe(self) -> str:
        return "exact (torch.linalg Cholesky, float64)"


class _SettledINV:
    """INV operations on a programmed macro model, read once the outputs have settled.

    Same steps as `amc.model.solve.ProgrammedSolver.solve` (same DAC encoding,
    read-noise draws in the same order, steady state of the programmed
    circuit, rail clamp, ADC conversion, auto-ranging policy and decoding),
    minus the transient: each output is the finite-gain steady state. The
    model's automatic settle time waits until the slowest mode has decayed
    below half an ADC LSB (with a 1.5 margin), so most outputs get the same
    ADC code and a few differ by one to three codes (tests/train compares
    the two), unless an output of the full model touches a rail during the
    transient. The full transient costs a rail proof per
    operation that takes seconds per inversion of a 129x129 factor on a CPU.
    """

    def __init__(self, programmed) -> None:
        self.programmed = programmed
        self.macro = programmed.macro
        self.config = programmed.config
        self.mode = mode_by_name("INV")
        n = programmed.matrix.shape[0]
        self.n = n
        self.state = make_switch_state(self.mode, n, n, self.config, signed=programmed.mapping.differential,
                                       array=programmed.array)
        self.nominal = self.macro.analysis(self.state)

    def _steady_outputs(self, volts_in: np.ndarray) -> np.ndarray:
        if not self.macro.devices.read_noise_on:
            return self.nominal.steady_state(volts_in)[: self.n]
        programmed = np.stack(self.macro.conductances(self.state.array))
        out = np.empty((self.n, volts_in.shape[1]))
        for k in range(volts_in.shape[1]):
            read = self.macro.devices.read(programmed)
            noisy = CircuitAnalysis(build_circuit(self.state, read[POSITIVE], read[NEGATIVE], self.config))
            out[:, k] = noisy.steady_state(volts_in[:, k])[: self.n]
        return out

    def _operate(self, rhs: np.ndarray, scales: np.ndarray):
        encoded = encode_input(rhs, self.mode, self.config.dac, scale_V=scales)
        steady = self._steady_outputs(encoded.volts)
        rail = self.config.opamp.rail_V
        volts = np.clip(steady, -rail, rail)
        conversion = adc_convert(volts, self.config.adc)
        overrange = conversion.overrange | (np.abs(steady) >= rail)
        return conversion.codes, np.any(overrange, axis=0) | np.any(encoded.clipped, axis=0)

    def solve(self, rhs: np.ndarray, first_scales: np.ndarray | None = None) -> tuple[np.ndarray, int, np.ndarray]:
        """Return (x, analog operations, columns still over range) for right-hand sides (N, K).

        ``first_scales`` (volts per problem unit, one per column) replaces the
        model's first input scale (the largest the DAC allows) where it is
        smaller. Auto-ranging then proceeds as in the model.
        """
        config = self.config
        headroom = self.programmed.headroom
        limit = choose_input_scale(rhs, config.dac, headroom)
        scales = limit.copy() if first_scales is None else np.minimum(first_scales, limit)
        used = scales.copy()
        steps = np.zeros(rhs.shape[1], dtype=int)
        codes, failed = self._operate(rhs, scales)
        operations = rhs.shape[1]
        pending = np.flatnonzero(failed)
        while self.programmed.auto_range and pending.size and steps[pending].max() < MAX_RANGE_STEPS:
            scales[pending] /= RANGE_STEP
            steps[pending] += 1
            new_codes, new_failed = self._operate(rhs[:, pending], scales[pending])
            operations += pending.size
            fine = ~new_failed
            # Columns that still over-range keep their latest attempt, as in the model.
            codes[:, pending] = new_codes
            used[pending] = scales[pending]
            ranged = pending[fine]
            failed[ranged] = False
            pending = pending[new_failed]

            # Aim the largest output at RANGE_TARGET of full scale, as the model's auto-ranging does.
            peak = np.max(np.abs(adc_decode(new_codes[:, fine], config.adc)), axis=0)
            better = np.where(peak > 0, scales[ranged] * RANGE_TARGET * config.adc.full_scale_V
                              / np.maximum(peak, 1e-300), limit[ranged])
            better = np.minimum(better, limit[ranged])
            refine = better > scales[ranged] * (1.0 + 1e-9)
            if refine.any():
                columns = ranged[refine]
                retry_codes, retry_failed = self._operate(rhs[:, columns], better[refine])
                operations += columns.size
                accept = ~retry_failed
                codes[:, columns[accept]] = retry_codes[:, accept]
                used[columns[accept]] = better[refine][accept]
        x = decode_output(adc_decode(codes, config.adc), self.mode, self.programmed.mapping.g_unit_S,
                          config.circuit, used)
        return x, operations, failed


class _AnalogSolver(FactorSolver):
    """A factor programmed on the macro model; solves with optional iterative refinement."""

    def __init__(self, programmed, scaled: np.ndarray, scale: np.ndarray, refine_steps: int, info: dict,
                 fidelity: str, previous_inverse: np.ndarray | None = None, ranging_target: float | None = None,
                 store_inverse: Callable[[np.ndarray], None] | None = None) -> None:
        super().__init__(scaled.shape[0])
        self.programmed = programmed
        self.settled = _SettledINV(programmed) if fidelity == "settled" else None
        self.previous_inverse = previous_inverse
        self.ranging_target = ranging_target
        self.store_inverse = store_inverse
        self.config = programmed.config
        self.scaled = scaled
        self.scale = scale
        self.refine_steps = refine_steps
        self.passes = 1 + refine_steps
        self.operations = 0
        self.info = info
        self.info.setdefault("clipped_columns", 0.0)

    def _analog(self, rhs: np.ndarray, first_scales: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros_like(rhs)
        # An all-zero column needs no operation: its solution is zero.
        active = np.flatnonzero(np.any(rhs != 0.0, axis=0))
        if active.size == 0:
            return out
        if self.settled is not None:
            scales = None if first_scales is None else first_scales[active]
            x, operations, clipped = self.settled.solve(rhs[:, active], scales)
        else:
            result = self.programmed.solve(rhs[:, active])
            x, operations = result.x, result.operations
            clipped = np.any(result.adc_overrange, axis=0) | np.any(result.dac_clipped, axis=0)
        self.operations += operations
        self.info["operations"] = float(self.operations)
        self.info["clipped_columns"] += float(np.count_nonzero(clipped))
        out[:, active] = x
        return out

    def inverse(self) -> torch.Tensor:
        """Return F^-1 by solving against the identity, ranging each column from the last inverse."""
        first_scales = None
        if self.previous_inverse is not None and self.ranging_target is not None and self.settled is not None:
            # Column j of the identity enters as s_j e_j and its solution is
            # S^-1 F^-1 e_j: its peak, predicted from the previous inverse of
            # this factor, sets the input scale that puts the largest output
            # at ranging_target of the ADC full scale (O(N^2) host work).
            predicted = np.max(np.abs(self.previous_inverse / self.scale[:, None]), axis=0)
            volts_per_unit = float(output_gain(self.settled.mode, self.programmed.mapping.g_unit_S,
                                               self.config.circuit, 1.0))
            target = self.ranging_target * self.config.adc.full_scale_V
            with np.errstate(divide="ignore"):
                first_scales = np.where(predicted > 0, target / (volts_per_unit * predicted), np.inf)
        self.columns_solved += self.size
        result = self._solve_with(torch.eye(self.size, dtype=torch.float64), first_scales)
        if self.store_inverse is not None:
            self.store_inverse(result.numpy())
        return result

    def _solve(self, rhs: torch.Tensor) -> torch.Tensor:
        return self._solve_with(rhs, None)

    def _solve_with(self, rhs: torch.Tensor, first_scales: np.ndarray | None) -> torch.Tensor:
        # F^-1 b = S (S F S)^-1 S b with S = diag(scale): the macro solves the equilibrated factor.
        b = rhs.numpy() * self.scale[:, None]
        x = self._analog(b, first_scales)
        # Kept for co-simulation sampling, which re-runs the first pass.
        self.first_pass_rhs, self.first_pass_x = b, x

        residual = b - self.scaled @ x
        norms = np.linalg.norm(residual, axis=0)
        active = np.flatnonzero(norms > 0)
        for _ in range(self.refine_steps):
            if active.size == 0:
                break
            # Iterative refinement: the residual is computed in float64 on the
            # host, the correction by the macro (x += Ahat^-1 (b - A x)). It
            # converges only while ||I - A Ahat^-1|| < 1, so a column keeps a
            # correction only if its residual shrinks, and stops otherwise.
            candidate = x[:, active] + self._analog(residual[:, active])
            new_residual = b[:, active] - self.scaled @ candidate
            new_norms = np.linalg.norm(new_residual, axis=0)
            self.info["refined_columns"] = self.info.get("refined_columns", 0.0) + float(active.size)
            better = new_norms < norms[active]
            keep = active[better]
            x[:, keep] = candidate[:, better]
            residual[:, keep] = new_residual[:, better]
            norms[keep] = new_norms[better]
            self.info["rejected_corrections"] = (self.info.get("rejected_corrections", 0.0)
                                                 + float(np.count_nonzero(~better)))
            active = keep
        b_norm = float(np.linalg.norm(b)) or 1.0
        self.info["relative_residual"] = float(np.linalg.norm(residual) / b_norm)
        return torch.from_numpy(x * self.scale[:, None])


class AnalogBackend(InverseBackend):
    """Factor inversions on the modeled AMC macro (`amc.model.solve.ProgrammedSolver`).

    Mapping of one damped factor F (symmetric positive definite):

    1. Equilibration (digital, on by default): with S = diag(F)^-1/2 the macro
       gets the unit-diagonal matrix S F S, whose entries lie in [-1, 1]. This
       spends the conductance levels evenly across features whose variances
       differ by orders of magnitude, and F^-1 = S (S F S)^-1 S.
    2. Programming: the model maps the matrix to conductances (signed on both
       half-arrays when it has negative entries, else unsigned), applies level
       quantization, programming error and stuck cells, and builds the INV
       circuit.
    3. Stability check: the INV circuit settles only if every eigenvalue of
       D^-1 G has a positive real part (Sun et al., PNAS 116:4123, 2019).
       Quantization and device errors can break this for a factor that is
       positive definite in floating point. The check uses the programmed
       conductances and raises `UnstableFactorError`, so the optimizer raises
       the damping and programs again.
    4. Solves: each right-hand-side column is one analog operation (more with
       the model's auto-ranging after an ADC over-range), read through the
       DAC and ADC quantization. ``refine_steps`` adds iterative-refinement
       passes x += Ahat^-1 (b - A x) whose residual is computed in float64 on
       the host; a column keeps a correction only if its residual shrinks.

    Parameters
    ----------
    config : MacroConfig
        Macro of the run. Each programming uses ``config.seed`` combined with
        a programming counter, so every programming draws a new programming
        error.
    refine_steps : int
        Iterative-refinement passes per solve.
    equilibrate : bool
        Map S F S instead of F (step 1).
    fidelity : {"settled", "transient"}
        "settled" reads each output at its steady state (see `_SettledINV`).
        "transient" runs `ProgrammedSolver.solve` with the full transient
        and rail proof: 4-8 s per 129x129 inverse on the 2-core CPU of this
        project's benchmark, where the settled path needs tens of
        milliseconds.
    differential : bool or None
        Signed mapping on both half-arrays (True), unsigned (False), or the
        model's choice (None: signed only when an entry is negative). The
        unsigned mapping raises entries below g_min/g_max of the largest
        one to g_min, a systematic error; the signed mapping has none but
        needs twice the cells and an inverter per line.
    predictive_ranging : float or None
        Settled fidelity, explicit inverses: choose each column's first input
        scale from the previous inverse of the same factor so that its
        largest output lands at this fraction of the ADC full scale. The
        model's policy starts at the largest DAC input, which over-ranges
        for most inverse columns and costs two more operations per column.
        None keeps the model's policy.
    programming : {"backdoor", "write-verify", "auto"}
        How `ProgrammedSolver` writes the cells: "backdoor" applies the
        programming error in one step; "write-verify" runs the model's pulse
        and verify loop on every cell (about 0.2 s per 26x26 signed factor on
        this project's CPU, and it reports pulse counts that the cost
        estimate then uses); "auto" is write-verify unless the programming
        error is off.
    error_margin : float
        Also treat a factor as unstable while its smallest eig(D^-1 G) real
        part is at most this many times ||D^-1 g0 (Ahat - A)||_2, the shift
        that programming caused (0: off). Above 1, the analog solve has a
        relative error below one.
    spare_after : int
        Replace a factor's array by a spare (a new macro with its own
        stuck-cell map) after this many programmings in a row with an
        eigenvalue of D^-1 G in the left half-plane; `replacements` lists
        them. Margin failures do not count.
    read_noise_margin : float
        With read noise on, a factor also counts as unstable when its
        smallest eig(D^-1 G) real part is below this many times the
        estimated eigenvalue shift of one operation's read noise (see
        `_read_noise_margin`); 4 is an assumption, 0 switches it off.
    """

    analog = True

    def __init__(self, config, *, refine_steps: int = 0, equilibrate: bool = True, fidelity: str = "settled",
                 differential: bool | None = True, read_noise_margin: float = 4.0,
                 predictive_ranging: float | None = 0.75, error_margin: float = 0.0,
                 programming: str = "backdoor", spare_after: int = 4) -> None:

        if not isinstance(config, MacroConfig):
            raise BackendError(f"config must be a MacroConfig, got {type(config).__name__}")
        if refine_steps < 0:
            raise BackendError(f"refine_steps = {refine_steps} is invalid: use 0 or more refinement passes")
        if config.array.rows != config.array.cols:
            raise BackendError(
                f"the INV circuit needs square arrays; ArrayParams has {config.array.rows} rows and "
                f"{config.array.cols} columns"
            )
        if fidelity not in ("settled", "transient"):
            raise BackendError(f"fidelity = {fidelity!r} is invalid: use 'settled' or 'transient'")
        self.config = config
        self.refine_steps = refine_steps
        self.equilibrate = equilibrate
        self.fidelity = fidelity
        self.differential = differential
        if not read_noise_margin >= 0:
            raise BackendError(f"read_noise_margin = {read_noise_margin!r} is invalid: use 0 (off) or more")
        self.read_noise_margin = float(read_noise_margin)
        if predictive_ranging is not None and not 0 < predictive_ranging <= 1:
            raise BackendError(f"predictive_ranging = {predictive_ranging!r} is invalid: use a fraction of the ADC "
                               "full scale in (0, 1], or None")
        self.predictive_ranging = predictive_ranging
        if not error_margin >= 0:
            raise BackendError(f"error_margin = {error_margin!r} is invalid: use 0 (off) or more")
        self.error_margin = float(error_margin)
        self._last_inverse: dict[str, np.ndarray] = {}
        # NOTE: the model has no block solver yet, so one array bounds the factor order.
        self.max_size = config.array.rows
        self.name = "analog"
        if programming not in ("auto", "write-verify", "backdoor"):
            raise BackendError(f"programming = {programming!r} is invalid: use 'auto', 'write-verify' or 'backdoor'")
        self.programming = programming
        if spare_after < 1:
            raise BackendError(f"spare_after = {spare_after!r} is invalid: use 1 or more failed programmings")
        self.spare_after = spare_after
        self._macros: dict[str, AnalogMacro] = {}
        self._failures: dict[str, int] = {}
        self._spares_used: dict[str, int] = {}
        self.replacements: list[tuple[str, float]] = []
        """(factor label, smallest eigenvalue real part) of every array replaced by a spare."""

    def macro_for(self, label: str) -> AnalogMacro:
        """Return the macro that holds factor ``label``, creating it on first use.

        Each factor (or block) has its own macro, as K-FAC hardware with one
        array per factor would, so a programmed factor stays valid while the
        others are reprogrammed (solve mode keeps them all). Its seed comes
        from the run seed, the label and the spares used, so a factor keeps
        its stuck-cell map across refreshes and each reprogramming draws a new
        programming error.
        """
        macro = self._macros.get(label)
        if macro is None:
            spare = self._spares_used.get(label, 0)
            seed = (self.config.seed * 1_000_003 + zlib.crc32(f"{label}/{spare}".encode())) % (2**63)
            macro = self._macros[label] = AnalogMacro(self.config.replace(seed=seed))
        return macro

    def _fail(self, label: str, error: UnstableFactorError) -> UnstableFactorError:
        """Count a failed programming and swap in a spare array after `spare_after` in a row.

        A stuck cell at g_max off the diagonal, or at g_min on it, keeps
        D^-1 G unstable at any damping, because equilibration scales the
        damping away. Hardware with spare arrays would retire such an array.
        """
        failures = self._failures.get(label, 0) + 1
        self._failures[label] = failures
        if failures >= self.spare_after:
            self._macros.pop(label, None)
            self._spares_used[label] = self._spares_used.get(label, 0) + 1
            self._failures[label] = 0
            self.replacements.append((label, error.min_real_eigenvalue))
            log.info("array of factor %s replaced by a spare after %d unstable programmings (smallest eigenvalue "
                     "real part %.3g)", label, failures, error.min_real_eigenvalue)
        return error

    def prepare(self, matrix: torch.Tensor, *, label: str) -> FactorSolver:
        values = matrix.to(torch.float64).numpy()
        n = values.shape[0]
        self.check_size(n, label)
        diagonal = np.diag(values)
        if self.equilibrate and np.all(diagonal > 0):
            scale = 1.0 / np.sqrt(diagonal)
        else:
            scale = np.ones(n)
        scaled = values * scale[:, None] * scale[None, :]

        macro = self.macro_for(label)
        config = macro.config
        programmed = ProgrammedSolver(scaled, macro=macro, differential=self.differential,
                                      programming=self.programming)
        state = make_switch_state(mode_by_name("INV"), n, n, config, signed=programmed.mapping.differential)
        analysis = programmed.macro.analysis(state)
        eps = adc_settle_eps(config)
        if self.fidelity == "transient":
            # Both rules of the model: eig(D^-1 G) and the closed-loop poles, inverters included.
            report = analysis.stability
            lambda_min, stable, message = complex(report.lambda_min), report.stable, report.message
            settle_time = AUTO_SETTLE_MARGIN * analysis.settle_estimates(eps).slowest_pole_s if stable else None
        else:
            # NOTE: settled fidelity checks only the eigenvalue rule (eig(D^-1 G) in the right
            # half-plane). The closed-loop pole rule, which also catches oscillation through the
            # inverter delay, needs an eigendecomposition of all op-amp states and is skipped.
            loop = analysis.loop_eigenvalues
            lambda_min = complex(loop[int(np.argmin(loop.real))])
            stable = lambda_min.real > 0
            message = ""
            # The model's settle rule applied to the eigenvalue-formula estimate.
            settle_time = (AUTO_SETTLE_MARGIN * math.log(1 / eps)
                           / (2 * math.pi * config.opamp.gbw_Hz * lambda_min.real)) if stable else None
        if not stable:
            raise self._fail(label, UnstableFactorError(label, lambda_min.real, message))
        margin = self._read_noise_margin(programmed, analysis, n)
        # A margin failure is cured by more damping, so it does not count towards a spare.
        self._failures[label] = 0
        if lambda_min.real <= margin:
            raise UnstableFactorError(label, lambda_min.real, "read noise could make a single operation unstable",
                                      required=margin)
        programmed_error = self._programmed_error(programmed, analysis, scaled, n)
        if lambda_min.real <= self.error_margin * programmed_error:
            raise UnstableFactorError(
                label, lambda_min.real,
                f"the programming error moves D^-1 G by {programmed_error:.3g} in 2-norm, so the analog inverse "
                "would be unreliable", required=self.error_margin * programmed_error)
        mapping = programmed.mapping
        cells = mapping.g_pos_S if mapping.g_neg_S is None else np.concatenate([mapping.g_pos_S, mapping.g_neg_S])
        info = {
            "lambda_min": lambda_min.real,
            "read_noise_margin": margin,
            "settle_time_s": settle_time,
            "operation_time_s": settle_time + n * config.adc.conversion_time_s,
            "differential": float(mapping.differential),
            "mean_conductance_S": float(np.mean(cells)),
            "matrix_error_max": float(np.max(np.abs(programmed.programmed_matrix() - scaled))),
            "macro_seed": float(config.seed),
        }
        stats = programmed.programming_stats
        if stats is not None:
            # Write-verify: the cost estimate uses these instead of its assumed pulse counts.
            info.update(programming_pulses=float(stats.total_pulses), programming_reads=float(stats.reads),
                        programming_time_s=stats.time_s, programming_failed_cells=float(len(stats.failed_cells)))
        def store(inverse: np.ndarray) -> None:
            self._last_inverse[label] = inverse

        previous = self._last_inverse.get(label)
        if previous is not None and previous.shape != (n, n):
            previous = None
        return _AnalogSolver(programmed, scaled, scale, self.refine_steps, info, self.fidelity,
                             previous_inverse=previous, ranging_target=self.predictive_ranging,
                             store_inverse=store)

    def _programmed_error(self, programmed, analysis, scaled: np.ndarray, n: int) -> float:
        """Return ||D^-1 g0 (Ahat - A)||_2: how far programming moved the loop matrix D^-1 G.

        Ahat is the matrix the programmed cells represent (what a verify read
        of the array returns), A the equilibrated factor and g0 the unit
        conductance. When lambda_min(D^-1 G) exceeds this norm, the analog
        solve has a relative error below one and iterative refinement
        converges.
        """
        if self.error_margin == 0:
            return 0.0
        d = analysis.circuit.node_conductance_S[:n]
        error = (programmed.programmed_matrix() - scaled) * (programmed.mapping.g_unit_S / d)[:, None]
        return float(np.linalg.norm(error, 2))

    def _read_noise_margin(self, programmed, analysis, n: int) -> float:
        """Return the smallest eig(D^-1 G) real part that read noise is unlikely to push below zero.

        Read noise multiplies each cell by 1 + sigma * z (z standard normal)
        at every operation. For such a perturbation E of D^-1 G with
        independent entries, random-matrix theory puts ||E||_2 near
        2 sqrt(n) sigma times the RMS entry of |D^-1 G+| and |D^-1 G-|
        combined, and an eigenvalue moves by at most about ||E||_2.
        The margin is `read_noise_margin` times that estimate.
        """
        params = self.config.nonideal.read_noise
        if not (params.enabled and params.sigma_rel > 0) or self.read_noise_margin == 0:
            return 0.0
        g_pos, g_neg = programmed.macro.conductances(programmed.array)
        squares = g_pos[:n, :n] ** 2
        if programmed.mapping.differential:
            squares = squares + g_neg[:n, :n] ** 2
        d = analysis.circuit.node_conductance_S[:n]
        rms = math.sqrt(float(np.mean(squares / d[:, None] ** 2)))
        return self.read_noise_margin * 2.0 * math.sqrt(n) * params.sigma_rel * rms

    def describe(self) -> str:
        array = self.config.array
        return (f"analog macro model ({array.rows}x{array.cols} arrays, {array.levels} levels, "
                f"DAC {self.config.dac.bits} bits, ADC {self.config.adc.bits} bits; non-idealities: "
                f"{self.config.nonideal.describe()}; equilibration {'on' if self.equilibrate else 'off'}, "
                f"{self.refine_steps} refinement steps, {self.fidelity} outputs, "
                f"{'signed' if self.differential else 'unsigned' if self.differential is False else 'automatic'} "
                "mapping)")


@dataclass
class CosimComparison:
    """One sampled solve run through both the co-simulation and the analog model.

    Both solve the same programmed problem: the equilibrated factor with the
    same programming seed and right-hand sides, one analog pass each (no
    refinement). ``relative_difference`` is ||X_cosim - X_model||_F /
    ||X_model||_F; the residuals are ||A X - B||_F / ||B||_F.
    """

    label: str
    size: int
    columns: int
    relative_difference: float
    relative_residual_cosim: float
    relative_residual_model: float
    wall_time_s: float
    """Wall time of the co-simulation runs, in seconds."""


CosimSolve = Callable[..., np.ndarray]
"""Co-simulation hook: ``cosim_solve(A, B, config, differential=...) -> X`` solves A X = B (A: (N, N),
B: (N, K)) through the controller RTL with macro configuration ``config`` (a MacroConfig, including the
device seed) and the same signed or unsigned mapping as the model backend."""


class _SampledSolver(FactorSolver):
    def __init__(self, inner: "_AnalogSolver", owner: "CosimSampledBackend", label: str, sampled: bool) -> None:
        super().__init__(inner.size)
        self.inner, self.owner, self.label, self.sampled = inner, owner, label, sampled
        self.passes = inner.passes
        self.info = inner.info

    def _after_first_solve(self) -> None:
        if self.sampled:
            self.sampled = False  # one comparison per programmed factor
            self.owner._compare(self.label, self.inner)

    def inverse(self) -> torch.Tensor:
        result = self.inner.inverse()
        self.columns_solved += self.size
        self._after_first_solve()
        return result

    def _solve(self, rhs: torch.Tensor) -> torch.Tensor:
        result = self.inner.solve(rhs)
        self._after_first_solve()
        return result


class CosimSampledBackend(InverseBackend):
    """Run every inversion on an `AnalogBackend` and re-run a sample through the co-simulation.

    For every ``every``-th programmed factor (the first one included), the
    first ``columns`` right-hand sides of its first solve are solved again by
    ``cosim_solve`` with the same matrix, seed and inputs, and the two
    results are stored in `comparisons`. Training continues with the model's
    result, and the model draws no extra random numbers for the comparison,
    so sampling does not change the training trajectory.

    NOTE: the host builds a fresh macro from the factor's seed, so only a
    factor's first programming gives both sides the same conductances;
    later programmings differ by their programming-error draws.

    Parameters
    ----------
    inner : AnalogBackend
        Backend whose results training uses.
    cosim_solve : callable
        See `CosimSolve`; `cosim_solve_function` builds one on ``amc.tb.host.solve``.
    every : int
        Sampling period in programmed factors.
    max_samples : int or None
        Stop sampling after this many comparisons (co-simulation is slow).
    columns : int
        Right-hand sides compared per sample.
    """

    analog = True

    def __init__(self, inner: "AnalogBackend", cosim_solve: CosimSolve, *, every: int = 50,
                 max_samples: int | None = 4, columns: int = 2) -> None:
        if not isinstance(inner, AnalogBackend):
            raise BackendError(f"co-simulation sampling needs an AnalogBackend to compare with, got "
                               f"{type(inner).__name__}")
        if every < 1:
            raise BackendError(f"cosim sampling period every = {every} is invalid: use 1 or more programmed factors")
        if max_samples is not None and max_samples < 1:
            raise BackendError(f"max_samples = {max_samples} is invalid: use None or at least 1")
        if columns < 1:
            raise BackendError(f"columns = {columns} is invalid: compare at least one right-hand side")
        self.inner = inner
        self.cosim_solve = cosim_solve
        self.every = every
        self.max_samples = max_samples
        self.columns = columns
        self.name = f"{inner.name}+cosim"
        self.max_size = inner.max_size
        self.comparisons: list[CosimComparison] = []
        self._prepared = 0

    def prepare(self, matrix: torch.Tensor, *, label: str) -> FactorSolver:
        inner = self.inner.prepare(matrix, label=label)
        sampled = self._prepared % self.every == 0 and (
            self.max_samples is None or len(self.comparisons) < self.max_samples
        )
        self._prepared += 1
        return _SampledSolver(inner, self, label, sampled)

    def _compare(self, label: str, solver: "_AnalogSolver") -> None:
        a = solver.scaled
        active = np.flatnonzero(np.any(solver.first_pass_rhs != 0.0, axis=0))[: self.columns]
        b = solver.first_pass_rhs[:, active]
        model = solver.first_pass_x[:, active]
        started = time.perf_counter()
        cosim_x = np.asarray(self.cosim_solve(a, b, solver.config, differential=solver.programmed.mapping.differential),
                             dtype=np.float64)
        elapsed = time.perf_counter() - started
        if cosim_x.shape != b.shape:
            raise BackendError(
                f"co-simulation returned shape {cosim_x.shape} for right-hand sides of shape {b.shape}"
            )
        b_norm = np.linalg.norm(b) or 1.0
        comparison = CosimComparison(
            label=label,
            size=a.shape[0],
            columns=b.shape[1],
            relative_difference=float(np.linalg.norm(cosim_x - model) / (np.linalg.norm(model) or 1.0)),
            relative_residual_cosim=float(np.linalg.norm(a @ cosim_x - b) / b_norm),
            relative_residual_model=float(np.linalg.norm(a @ model - b) / b_norm),
            wall_time_s=elapsed,
        )
        self.comparisons.append(comparison)
        log.info(
            "co-simulation check of %s (%dx%d, %d columns, %.1f s): relative difference to the model %.3g, "
            "residual co-simulation %.3g, model %.3g",
            label, comparison.size, comparison.size, comparison.columns, elapsed,
            comparison.relative_difference, comparison.relative_residual_cosim, comparison.relative_residual_model,
        )

    def describe(self) -> str:
        limit = "no limit" if self.max_samples is None else f"at most {self.max_samples}"
        return (f"{self.inner.describe()}; co-simulation check of every {self.every}th programmed factor "
                f"({limit}, {self.columns} columns each)")


def cosim_solve_function(*, simulator: str = "verilator", backend: str = "cosim") -> CosimSolve:
    """Return a `CosimSolve` hook on the host driver (``amc.tb.host.run_matrix_job``).

    Each column is one solve job through the controller, with the macro
    configuration (and its seed) as ``ControllerParams(macro=config)``. The
    job programs the matrix through the back door, as the analog-model
    backend does, so both start from the same conductances and the
    comparison isolates the controller, its timing and the converters.

    Parameters
    ----------
    simulator : {"verilator", "icarus"}
        HDL simulator of the cosim backend.
    backend : {"cosim", "amaranth", "model"}
        Host backend; "model" (register-level controller model) runs in
        milliseconds and exercises the same host code as the co-simulation.
    """
    try:
        from ..rtl.params import ControllerParams
        from ..tb import host
        from ..tb.jobs import make_job
    except ImportError as error:
        raise BackendError(f"the co-simulation host driver (amc.tb.host) cannot be imported: {error}") from error
    if backend not in host.BACKENDS:
        raise BackendError(f"host backend {backend!r} is unknown; use one of {', '.join(host.BACKENDS)}")

    def cosim_solve(a: np.ndarray, b: np.ndarray, config, *, differential: bool | None = True) -> np.ndarray:
        params = ControllerParams(macro=config)
        columns = []
        for k in range(b.shape[1]):
            job = make_job("solve", a, b[:, k], differential=differential, programming="backdoor")
            columns.append(host.run_matrix_job(job, params, backend=backend, simulator=simulator).values)
        return np.stack(columns, axis=1)

    return cosim_solve


def analog_backend_factory(config, *, refine_steps: int = 0, equilibrate: bool = True,
                           fidelity: str = "settled", differential: bool | None = True,
                           read_noise_margin: float = 4.0, predictive_ranging: float | None = 0.75,
                           error_margin: float = 0.0, programming: str = "backdoor", spare_after: int = 4,
                           cosim_every: int | None = None, cosim_max: int | None = 4,
                           cosim_columns: int = 2, simulator: str = "verilator", cosim_backend: str = "cosim",
                           cosim_solve: CosimSolve | None = None):
    """Return ``factory(seed) -> InverseBackend`` for the analog K-FAC runs.

    The run seed becomes the macro's device seed. With ``cosim_every`` the
    backend samples programmed factors through the co-simulation (see
    `CosimSampledBackend`); ``cosim_solve`` replaces the host-driver hook.
    """
    hook = None
    if cosim_every is not None:
        hook = cosim_solve if cosim_solve is not None else cosim_solve_function(simulator=simulator,
                                                                                  backend=cosim_backend)
    # Fail on a bad configuration before any training.
    options = dict(refine_steps=refine_steps, equilibrate=equilibrate, fidelity=fidelity, differential=differential,
                   read_noise_margin=read_noise_margin, predictive_ranging=predictive_ranging,
                   error_margin=error_margin, programming=programming, spare_after=spare_after)
    AnalogBackend(config, **options)

    def factory(seed: int) -> InverseBackend:
        backend = AnalogBackend(config.replace(seed=seed), **options)
        if hook is None:
            return backend
        return CosimSampledBackend(backend, hook, every=cosim_every, max_samples=cosim_max, columns=cosim_columns)

    return factory
