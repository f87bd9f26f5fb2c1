"""Inversion backends of the K-FAC optimizer.

A backend turns one damped Kronecker factor F (symmetric positive definite,
N x N) into a `FactorSolver` that returns F^-1 B for right-hand sides B
(N x K). The optimizer asks for the explicit inverse (B = I) at every inverse
refresh, or, in ``apply_mode="solve"``, solves the layer gradient itself at
every step.

This module is the only one in ``amc.train`` that calls the analog model
(``amc.model``) or the co-simulation. Backends:

- `ExactBackend`: float64 Cholesky solve with torch.linalg, the reference.
- `AnalogBackend`: the modeled macro (see its docstring for the mapping).
- `CosimSampledBackend`: wraps another backend and re-runs a sample of the
  inversions through a co-simulation callable, recording the difference.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

__all__ = [
    "BackendError",
    "FactorTooLargeError",
    "UnstableFactorError",
    "FactorSolver",
    "InverseBackend",
    "ExactBackend",
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

    def __init__(self, label: str, min_real_eigenvalue: float, detail: str = "") -> None:
        self.label, self.min_real_eigenvalue = label, min_real_eigenvalue
        text = (
            f"the programmed K-FAC factor {label} is unstable in the INV circuit: smallest eigenvalue real part "
            f"{min_real_eigenvalue:.3g} (must be above zero)"
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


@dataclass
class CosimComparison:
    """One inversion run through both the co-simulation and the sampled backend.

    ``relative_difference`` is ||X_cosim - X_model||_F / ||X_model||_F over the
    right-hand sides solved; ``relative_residual_cosim`` is
    ||F X_cosim - B||_F / ||B||_F.
    """

    label: str
    size: int
    columns: int
    relative_difference: float
    relative_residual_cosim: float
    relative_residual_model: float


CosimSolve = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""Signature of the co-simulation hook: (A of shape (N, N), B of shape (N, K)) -> X of shape (N, K)."""


class _SampledSolver(FactorSolver):
    def __init__(self, inner: FactorSolver, matrix: torch.Tensor, owner: "CosimSampledBackend", label: str,
                 sampled: bool) -> None:
        super().__init__(inner.size)
        self.inner, self.matrix, self.owner, self.label, self.sampled = inner, matrix, owner, label, sampled
        self.passes = inner.passes
        self.info = inner.info

    def _solve(self, rhs: torch.Tensor) -> torch.Tensor:
        result = self.inner.solve(rhs)
        if self.sampled:
            self.owner._compare(self.label, self.matrix, rhs, result)
            self.sampled = False  # one comparison per prepared factor
        return result


class CosimSampledBackend(InverseBackend):
    """Run every inversion on ``inner`` and re-run a sample through the co-simulation.

    Every ``every``-th prepared factor (the first one included) is also solved
    by ``cosim_solve`` for the same right-hand sides, and the two results are
    compared in `comparisons`. Training continues with the inner backend's
    result, so sampling does not change the trajectory.

    Parameters
    ----------
    inner : InverseBackend
        Backend whose results training uses (the analog model).
    cosim_solve : callable
        ``cosim_solve(A, B) -> X`` solving A X = B through the RTL
        co-simulation with the same macro configuration as ``inner``.
    every : int
        Sampling period in prepared factors.
    max_samples : int or None
        Stop sampling after this many comparisons (co-simulation is slow).
    """

    analog = True

    def __init__(self, inner: InverseBackend, cosim_solve: CosimSolve, *, every: int = 50,
                 max_samples: int | None = 4) -> None:
        if every < 1:
            raise BackendError(f"cosim sampling period every = {every} is invalid: use 1 or more prepared factors")
        if max_samples is not None and max_samples < 1:
            raise BackendError(f"max_samples = {max_samples} is invalid: use None or at least 1")
        self.inner = inner
        self.cosim_solve = cosim_solve
        self.every = every
        self.max_samples = max_samples
        self.name = f"{inner.name}+cosim"
        self.max_size = inner.max_size
        self.analog = inner.analog
        self.comparisons: list[CosimComparison] = []
        self._prepared = 0

    def prepare(self, matrix: torch.Tensor, *, label: str) -> FactorSolver:
        inner = self.inner.prepare(matrix, label=label)
        sampled = self._prepared % self.every == 0 and (
            self.max_samples is None or len(self.comparisons) < self.max_samples
        )
        self._prepared += 1
        return _SampledSolver(inner, matrix.to(torch.float64), self, label, sampled)

    def _compare(self, label: str, matrix: torch.Tensor, rhs: torch.Tensor, model_x: torch.Tensor) -> None:
        a = matrix.numpy()
        b = rhs.to(torch.float64).numpy()
        cosim_x = np.asarray(self.cosim_solve(a, b), dtype=np.float64)
        if cosim_x.shape != b.shape:
            raise BackendError(
                f"co-simulation returned shape {cosim_x.shape} for right-hand sides of shape {b.shape}"
            )
        model = model_x.numpy()
        b_norm = np.linalg.norm(b) or 1.0
        comparison = CosimComparison(
            label=label,
            size=a.shape[0],
            columns=b.shape[1],
            relative_difference=float(np.linalg.norm(cosim_x - model) / (np.linalg.norm(model) or 1.0)),
            relative_residual_cosim=float(np.linalg.norm(a @ cosim_x - b) / b_norm),
            relative_residual_model=float(np.linalg.norm(a @ model - b) / b_norm),
        )
        self.comparisons.append(comparison)
        log.info(
            "co-simulation check of %s (%dx%d, %d columns): relative difference to the model %.3g, "
            "residual co-simulation %.3g, model %.3g",
            label, comparison.size, comparison.size, comparison.columns, comparison.relative_difference,
            comparison.relative_residual_cosim, comparison.relative_residual_model,
        )

    def describe(self) -> str:
        limit = "no limit" if self.max_samples is None else f"at most {self.max_samples}"
        return f"{self.inner.describe()}; co-simulation check of every {self.every}th factor ({limit})"
