"""Problem inputs for ``amc solve``: the embedded default and matrix files.

The default is one-step ridge regression: the normal equations
(X^T X + lambda I) w = X^T (y - mean(y)) of the diabetes data set that ships
with scikit-learn (442 patients, 10 standardized features; Efron, Hastie,
Johnstone and Tibshirani, "Least angle regression", Annals of Statistics 32(2),
2004). Analog INV solves such regressions in one step (Sun et al., "One-step
regression and classification with cross-point resistive memory arrays",
Science Advances 6:eaay2378, 2020).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "Problem", "ProblemError", "ridge_diabetes", "load_matrix", "load_problem", "check_problem",
    "DEFAULT_RIDGE_LAMBDA",
]

DEFAULT_RIDGE_LAMBDA = 0.1
"""Ridge penalty of the default problem. With scikit-learn's unit-norm feature
columns, X^T X has eigenvalues 0.0086-4.02; lambda = 0.1 gives a condition
number of 38."""


class ProblemError(ValueError):
    """An input file or matrix that cannot be used; the message names it and the fix."""


@dataclass(frozen=True)
class Problem:
    name: str
    matrix: np.ndarray
    rhs: np.ndarray
    description: str


def ridge_diabetes(lam: float = DEFAULT_RIDGE_LAMBDA) -> Problem:
    """Return the ridge-regression normal equations of scikit-learn's diabetes data."""
    from sklearn.datasets import load_diabetes

    if not (isinstance(lam, (int, float)) and np.isfinite(lam) and lam > 0):
        raise ProblemError(f"ridge penalty lambda = {lam!r} is invalid: use a finite value above zero")
    features, target = load_diabetes(return_X_y=True)
    matrix = features.T @ features + lam * np.eye(features.shape[1])
    rhs = features.T @ (target - target.mean())
    return Problem(
        name="ridge-diabetes",
        matrix=matrix,
        rhs=rhs,
        description=(f"ridge regression normal equations (X^T X + {lam:g} I) w = X^T y of the scikit-learn "
                     f"diabetes data ({features.shape[0]} samples, {features.shape[1]} features)"),
    )


def load_matrix(path: Path, what: str = "matrix") -> np.ndarray:
    """Load a dense array from a Matrix Market (.mtx) or NumPy (.npy) file.

    Raises
    ------
    ProblemError
        Missing file, unknown extension, malformed content, a file that needs
        pickle, a complex or non-numeric array.
    """
    path = Path(path)
    if not path.exists():
        raise ProblemError(f"{what} file {path} not found")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except ValueError as error:
            if "pickle" in str(error):
                raise ProblemError(
                    f"{what} file {path} holds Python objects and needs pickle, which is not loaded for safety; "
                    "save a plain numeric array with numpy.save"
                ) from None
            raise ProblemError(f"{what} file {path} is not a valid .npy file: {error}") from None
        except (OSError, EOFError) as error:
            raise ProblemError(f"{what} file {path} is not a valid .npy file: {error}") from None
    elif suffix == ".mtx":
        from scipy.io import mmread

        try:
            loaded = mmread(str(path))
        except Exception as error:  # scipy raises ValueError, IndexError or its own types on bad input
            raise ProblemError(f"{what} file {path} is not valid Matrix Market: {error}") from None
        values = loaded.toarray() if hasattr(loaded, "toarray") else np.asarray(loaded)
    else:
        raise ProblemError(f"{what} file {path} has extension {suffix or '(none)'!r}; use .mtx or .npy")
    if values.dtype.kind not in "biuf":
        raise ProblemError(f"{what} file {path} holds {values.dtype} values; use a real numeric array")
    return np.asarray(values, dtype=float)


def load_problem(matrix_path: Path, rhs_path: Path | None) -> Problem:
    """Load A and b; without `rhs_path`, b = A @ ones so the exact solution is all ones."""
    matrix = load_matrix(matrix_path, "matrix")
    if matrix.ndim != 2:
        raise ProblemError(f"matrix file {matrix_path} holds a {matrix.ndim}-D array; A must be 2-D")
    if rhs_path is None:
        rhs = matrix @ np.ones(matrix.shape[1]) if matrix.shape[0] == matrix.shape[1] else None
        description = f"{matrix_path.name} with b = A @ ones"
    else:
        values = load_matrix(rhs_path, "right-hand side")
        if values.ndim > 2 or (values.ndim == 2 and min(values.shape) != 1):
            raise ProblemError(
                f"right-hand side file {rhs_path} holds an array of shape {values.shape}; give one vector"
            )
        rhs = values.reshape(-1)
        description = f"{matrix_path.name} with b from {rhs_path.name}"
    if rhs is None:
        raise ProblemError(
            f"matrix {matrix_path} is {matrix.shape[0]} x {matrix.shape[1]}, not square; INV needs a square matrix"
        )
    return Problem(name=matrix_path.stem, matrix=matrix, rhs=rhs, description=description)


def check_problem(problem: Problem, rows: int, cols: int) -> None:
    """Raise ProblemError for shapes, values or sizes the single-array solve cannot take."""
    matrix, rhs = problem.matrix, problem.rhs
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ProblemError(f"A has shape {matrix.shape}; INV needs a square matrix")
    n = matrix.shape[0]
    if rhs.shape != (n,):
        raise ProblemError(f"b has {rhs.size} entries but A is {n} x {n}; give a right-hand side of length {n}")
    for name, values in (("A", matrix), ("b", rhs)):
        bad = ~np.isfinite(values)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ProblemError(f"{name} contains {values[index]} at index {index}; every entry must be finite")
    if n > rows or n > cols:
        raise ProblemError(
            f"A is {n} x {n}, larger than one {rows} x {cols} array; block solving is not supported yet, "
            "so use a macro with larger arrays (--rows, --cols) or a smaller system"
        )
