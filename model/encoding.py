"""Encoding of problem vectors as DAC codes and decoding of ADC readings.

With unit conductance g0 (G = g0 A, see `amc.model.mapping`) and input scale s
in volts per problem unit, the three modes of `amc.model.switch_matrix.MODES`
give the following output voltages for ideal op-amps:

- MVM: the DACs drive the columns with V_j = s x_j and each row TIA holds
  its row at virtual ground, so V_i = -(1/G_f) sum_j G_ij V_j, that is
  V = -(g0 s / G_f) A x, and A x = -V G_f / (g0 s).
- MVM_T: the same with A^T (DACs on the rows, TIAs on the columns).
- INV: DAC i injects G_in V_in_i into row i and Kirchhoff's current law at
  the virtual-ground rows gives G_in V_in + G V = 0. With V_in = -s b this is
  V = (G_in s / g0) A^-1 b, so x = V g0 / (G_in s) (Sun et al., PNAS 116:4123,
  2019).

Every function accepts one vector of shape (n,) or a batch of shape (n, K)
with one scale per column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import CircuitParams, DacParams
from .converters import dac_encode
from .errors import InvalidOperandError
from .switch_matrix import Conn, ModeEntry

__all__ = [
    "InputEncoding",
    "validate_vector",
    "input_sign",
    "choose_input_scale",
    "encode_input",
    "output_gain",
    "decode_output",
]

DEFAULT_HEADROOM = 1.0
"""Default share of the largest positive DAC voltage used by the largest |entry|.

1.0 maps the largest entry to the largest positive code, which gives the full
input resolution and no clipping."""


@dataclass(frozen=True)
class InputEncoding:
    """DAC codes for one vector or a batch of vectors."""

    scale_V: np.ndarray
    """Input scale s per vector, in volts per problem unit (shape () or (K,))."""

    codes: np.ndarray
    """Signed DAC codes, one per input line (shape (n,) or (n, K))."""

    volts: np.ndarray
    """DAC output voltages of the codes, in volts."""

    clipped: np.ndarray
    """True where the requested voltage was outside the DAC code range."""

    @property
    def any_clipped(self) -> bool:
        """True if any code was clipped."""
        return bool(np.any(self.clipped))


def validate_vector(vector, length: int, name: str, *, allow_batch: bool = True) -> np.ndarray:
    """Return `vector` as a float array of shape (length,) or (length, K) after checks.

    Raises
    ------
    InvalidOperandError
        On a wrong shape, a length mismatch, or NaN and Inf entries.
    """
    try:
        values = np.asarray(vector, dtype=float)
    except (TypeError, ValueError) as error:
        raise InvalidOperandError(f"{name} must be a real numeric vector; conversion failed: {error}") from None
    allowed = (1, 2) if allow_batch else (1,)
    if values.ndim not in allowed:
        shapes = f"({length},) or ({length}, K)" if allow_batch else f"({length},)"
        raise InvalidOperandError(f"{name} has shape {values.shape}; expected shape {shapes}")
    if values.shape[0] != length:
        raise InvalidOperandError(
            f"{name} has {values.shape[0]} entries along its first axis but the matrix needs {length}; "
            "pass a vector whose length matches the matrix"
        )
    if values.ndim == 2 and values.shape[1] == 0:
        raise InvalidOperandError(f"{name} has shape {values.shape}: a batch needs at least one column")
    bad = ~np.isfinite(values)
    if bad.any():
        where = tuple(int(k) for k in np.argwhere(bad)[0])
        raise InvalidOperandError(
            f"{name} contains {int(bad.sum())} NaN or Inf entries (first at index {where}); "
            "replace them with finite values"
        )
    return values


def input_sign(mode: ModeEntry) -> float:
    """Return -1 for modes that inject current through G_in (INV feeds -b), else +1."""
    return -1.0 if mode.conn & Conn.DAC_ROWS_GIN else 1.0


def choose_input_scale(vector, dac: DacParams, headroom: float = DEFAULT_HEADROOM) -> np.ndarray:
    """Return the input scale s in volts per problem unit, per column.

    The scale maps the largest |entry| of each vector to ``headroom`` times the
    largest positive DAC voltage ``code_max * lsb_V``. An all-zero vector gets
    the scale of a vector whose largest entry is 1.
    """
    if not 0.0 < headroom <= 1.0:
        raise ValueError(f"headroom = {headroom!r} is invalid: use a fraction in (0, 1]")
    values = np.asarray(vector, dtype=float)
    peak = np.max(np.abs(values), axis=0)
    peak = np.where(peak > 0.0, peak, 1.0)
    return headroom * dac.code_max * dac.lsb_V / peak


def encode_input(vector, mode: ModeEntry, dac: DacParams, *, scale_V=None,
                 headroom: float = DEFAULT_HEADROOM) -> InputEncoding:
    """Convert a problem vector (or batch) to DAC codes for `mode`.

    Parameters
    ----------
    vector : ndarray, shape (n,) or (n, K)
        Input vector x (MVM, MVM_T) or right-hand side b (INV), in problem units.
    mode : ModeEntry
        Computing mode; INV gets V_in = -s b, the MVM modes V = s x.
    dac : DacParams
    scale_V : float or ndarray of shape (K,), optional
        Input scale in volts per problem unit; by default `choose_input_scale`.
    headroom : float
        See `choose_input_scale`.
    """
    values = np.asarray(vector, dtype=float)
    scale = choose_input_scale(values, dac, headroom) if scale_V is None else np.asarray(scale_V, dtype=float)
    if np.any(~np.isfinite(scale)) or np.any(scale <= 0.0):
        raise ValueError(f"input scale {scale!r} V per unit is invalid: use finite values above zero")
    conversion = dac_encode(input_sign(mode) * values * scale, dac)
    return InputEncoding(scale_V=scale, codes=conversion.codes, volts=conversion.volts, clipped=conversion.clipped)


def output_gain(mode: ModeEntry, g_unit_S: float, circuit: CircuitParams, scale_V) -> np.ndarray:
    """Return the ideal output voltage per problem unit of the result, in volts.

    MVM and MVM_T give -g0 s / G_f, INV gives G_in s / g0.
    """
    scale = np.asarray(scale_V, dtype=float)
    if mode.conn & Conn.OPA_FEEDBACK_GF:
        return -g_unit_S * scale / circuit.g_f_S
    if mode.conn & Conn.DAC_ROWS_GIN:
        return circuit.g_in_S * scale / g_unit_S
    raise ValueError(f"mode {mode.name} has no output gain rule; add one to encoding.output_gain")


def decode_output(volts, mode: ModeEntry, g_unit_S: float, circuit: CircuitParams, scale_V) -> np.ndarray:
    """Convert output voltages (shape (m,) or (m, K)) to the result in problem units."""
    return np.asarray(volts, dtype=float) / output_gain(mode, g_unit_S, circuit, scale_V)
