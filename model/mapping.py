"""Mapping of a real matrix to crossbar conductances.

A matrix A (m x n) occupies the top-left m x n cells of one array: cell (i, j)
joins row line i and column line j.

Differential (signed) mapping uses both halves of the array::

    G+ = g_min + g0 * max(A, 0)
    G- = g_min + g0 * max(-A, 0)        g0 = (g_max - g_min) / max|A|

so that G+ - G- = g0 * A exactly before level quantization, and both halves
stay inside the conductance window. The negative half is driven by inverters,
so the circuit computes with G+ - G-.

Unsigned mapping uses the positive half only: G = g0 * A with g0 = g_max /
max(A). A cell cannot go below g_min, so smaller entries (zeros included) are
raised to g_min. That clamping is a systematic error of g_min / g0 per clamped
entry and is counted in `MatrixMapping.clamped_cells`.

With `NonIdealities.quantize_levels` each conductance is rounded to the
nearest of `ArrayParams.levels` equally spaced levels from g_min to g_max.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import ArrayParams, MacroConfig
from .errors import ArrayCapacityError, InvalidOperandError

__all__ = [
    "MatrixMapping",
    "validate_matrix",
    "map_matrix",
    "quantize_conductance",
    "effective_matrix",
    "pad_to_array",
    "line_masks",
]


def _frozen(array: np.ndarray) -> np.ndarray:
    array = np.array(array, dtype=float, copy=True)
    array.setflags(write=False)
    return array


@dataclass(frozen=True)
class MatrixMapping:
    """Conductances chosen for a matrix, before device non-idealities.

    The arrays are read-only copies of shape `shape`.
    """

    g_unit_S: float
    """Unit conductance g0 in siemens per problem unit: G+ - G- = g0 * A."""

    differential: bool
    """True for the signed mapping on both halves of the array."""

    g_pos_S: np.ndarray
    """Target conductances of the positive half, in siemens."""

    g_neg_S: np.ndarray | None
    """Target conductances of the negative half in siemens, None for unsigned mappings."""

    shape: tuple[int, int]
    """Matrix shape (m, n): rows and columns of the array in use."""

    g_min_S: float
    """Lowest conductance of the window, in siemens (the value of unused cells)."""

    clamped_cells: int
    """Unsigned mapping: entries whose conductance g0 * A_ij was below g_min and was raised to g_min."""

    quantized: bool
    """True if the conductances were rounded to the programmable levels."""

    quantization_error_max_S: float
    """Maximum absolute change of a cell conductance by level rounding, in siemens."""

    quantization_error_rms_S: float
    """Root-mean-square change of the cell conductances by level rounding, in siemens."""

    matrix_error_max: float
    """Maximum of |A_eff - A| over all entries, in problem units (clamping and rounding)."""

    def effective_matrix(self) -> np.ndarray:
        """Return the matrix that the target conductances represent, in problem units."""
        return effective_matrix(self.g_pos_S, self.g_neg_S, self.g_unit_S)

    def array_images(self, array: ArrayParams) -> tuple[np.ndarray, np.ndarray | None]:
        """Return full ``rows x cols`` conductance images for `AnalogMacro.program_backdoor`.

        Unused cells are at g_min. The negative image is None for an unsigned mapping.
        """
        g_pos = pad_to_array(self.g_pos_S, array)
        g_neg = None if self.g_neg_S is None else pad_to_array(self.g_neg_S, array)
        return g_pos, g_neg


def validate_matrix(matrix, name: str = "A") -> np.ndarray:
    """Return `matrix` as a 2-D float array after checking it can be mapped.

    Raises
    ------
    InvalidOperandError
        If it is not 2-D, is empty, contains NaN or Inf, or is all zeros.
    """
    try:
        values = np.asarray(matrix, dtype=float)
    except (TypeError, ValueError) as error:
        raise InvalidOperandError(f"{name} must be a real numeric matrix; conversion failed: {error}") from None
    if values.ndim != 2:
        raise InvalidOperandError(
            f"{name} must be a 2-D matrix, got an array with ndim={values.ndim} and shape {values.shape}; "
            "reshape it, for example with numpy.atleast_2d or reshape(m, n)"
        )
    if values.size == 0:
        raise InvalidOperandError(f"{name} is empty (shape {values.shape}); pass at least a 1 x 1 matrix")
    bad = ~np.isfinite(values)
    if bad.any():
        where = tuple(int(k) for k in np.argwhere(bad)[0])
        raise InvalidOperandError(
            f"{name} contains {int(bad.sum())} NaN or Inf entries (first at index {where}: {values[where]}); "
            "replace them with finite values"
        )
    if not np.any(values):
        raise InvalidOperandError(
            f"{name} is all zeros (shape {values.shape}), so it has no conductance scale to map; "
            "pass a matrix with at least one nonzero entry"
        )
    return values


def quantize_conductance(g_S, array: ArrayParams) -> np.ndarray:
    """Round conductances to the nearest of `array.levels` equally spaced levels, in siemens.

    Values outside the window are first clipped to [g_min_S, g_max_S].
    """
    g = np.clip(np.asarray(g_S, dtype=float), array.g_min_S, array.g_max_S)
    step = array.level_step_S
    index = np.floor((g - array.g_min_S) / step + 0.5)
    return np.clip(array.g_min_S + index * step, array.g_min_S, array.g_max_S)


def effective_matrix(g_pos_S, g_neg_S, g_unit_S: float) -> np.ndarray:
    """Return (G+ - G-) / g0, or G+ / g0 when `g_neg_S` is None, in problem units."""
    g_pos = np.asarray(g_pos_S, dtype=float)
    if g_neg_S is None:
        return g_pos / g_unit_S
    return (g_pos - np.asarray(g_neg_S, dtype=float)) / g_unit_S


def pad_to_array(g_S, array: ArrayParams) -> np.ndarray:
    """Return a ``rows x cols`` image with `g_S` in the top-left corner and g_min elsewhere, in siemens."""
    g = np.asarray(g_S, dtype=float)
    m, n = g.shape
    if m > array.rows or n > array.cols:
        raise ArrayCapacityError(
            f"a {m} x {n} conductance block does not fit a {array.rows} x {array.cols} array"
        )
    image = np.full((array.rows, array.cols), array.g_min_S)
    image[:m, :n] = g
    return image


def line_masks(shape: tuple[int, int], array: ArrayParams) -> tuple[np.ndarray, np.ndarray]:
    """Return boolean row and column enable masks for a matrix of `shape` in the top-left corner."""
    m, n = shape
    rows = np.zeros(array.rows, dtype=bool)
    cols = np.zeros(array.cols, dtype=bool)
    rows[:m] = True
    cols[:n] = True
    return rows, cols


def map_matrix(matrix, config: MacroConfig, *, differential: bool | None = None,
               quantize: bool | None = None) -> MatrixMapping:
    """Map a real matrix to target conductances of one array.

    Parameters
    ----------
    matrix : array_like, shape (m, n)
        Finite real matrix with m <= ArrayParams.rows and n <= ArrayParams.cols.
    config : MacroConfig
        Supplies the conductance window, the level count and
        `NonIdealities.quantize_levels`.
    differential : bool or None
        True for the signed mapping on both halves, False for the unsigned
        mapping on the positive half, None to choose signed if any entry is
        negative.
    quantize : bool or None
        Round to the programmable levels; None takes
        ``config.nonideal.quantize_levels``.

    Returns
    -------
    MatrixMapping

    Raises
    ------
    InvalidOperandError
        For a matrix that is not 2-D, contains NaN or Inf, or is all zeros, and
        for an unsigned mapping of a matrix with negative entries.
    ArrayCapacityError
        If the matrix is larger than one array.
    """
    values = validate_matrix(matrix)
    array = config.array
    m, n = values.shape
    if m > array.rows or n > array.cols:
        raise ArrayCapacityError(
            f"matrix of shape {m} x {n} does not fit one {array.rows} x {array.cols} array; "
            "block solving over several arrays is not supported yet, so use a matrix of at most "
            f"{array.rows} x {array.cols} or a MacroConfig with a larger ArrayParams.rows/cols"
        )

    if differential is None:
        differential = bool(np.any(values < 0))
    if quantize is None:
        quantize = config.nonideal.quantize_levels

    if differential:
        g_unit = (array.g_max_S - array.g_min_S) / float(np.max(np.abs(values)))
        g_pos = array.g_min_S + g_unit * np.maximum(values, 0.0)
        g_neg = array.g_min_S + g_unit * np.maximum(-values, 0.0)
        clamped = 0
    else:
        if np.any(values < 0):
            where = tuple(int(k) for k in np.unravel_index(np.argmin(values), values.shape))
            raise InvalidOperandError(
                f"unsigned mapping requested but the matrix has negative entries (minimum {values[where]:.6g} "
                f"at index {where}); use differential=True or differential=None"
            )
        g_unit = array.g_max_S / float(np.max(values))
        g_pos = g_unit * values
        below = g_pos < array.g_min_S
        clamped = int(np.count_nonzero(below))
        g_pos = np.where(below, array.g_min_S, g_pos)
        g_neg = None

    if quantize:
        halves = [g_pos] if g_neg is None else [g_pos, g_neg]
        rounded = [quantize_conductance(g, array) for g in halves]
        change = np.concatenate([(r - g).ravel() for r, g in zip(rounded, halves)])
        q_max = float(np.max(np.abs(change)))
        q_rms = float(np.sqrt(np.mean(change**2)))
        g_pos = rounded[0]
        g_neg = None if g_neg is None else rounded[1]
    else:
        q_max = q_rms = 0.0

    error = float(np.max(np.abs(effective_matrix(g_pos, g_neg, g_unit) - values)))
    return MatrixMapping(
        g_unit_S=float(g_unit),
        differential=bool(differential),
        g_pos_S=_frozen(g_pos),
        g_neg_S=None if g_neg is None else _frozen(g_neg),
        shape=(m, n),
        g_min_S=array.g_min_S,
        clamped_cells=clamped,
        quantized=bool(quantize),
        quantization_error_max_S=q_max,
        quantization_error_rms_S=q_rms,
        matrix_error_max=error,
    )
