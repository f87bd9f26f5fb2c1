"""Quantizing models of the input DACs and output ADCs.

Both converters use two's complement codes from ``code_min = -2^(bits-1)`` to
``code_max = 2^(bits-1) - 1`` with one code step of ``full_scale_V /
2^(bits-1)`` volts (`DacParams.lsb_V`, `AdcParams.lsb_V`). Conversion rounds to
the nearest code (mid-tread, ties away from zero), which is the transfer curve
of an ideal converter with no offset, gain or linearity error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import AdcParams, DacParams

__all__ = [
    "DacConversion",
    "AdcConversion",
    "dac_encode",
    "dac_decode",
    "adc_convert",
    "adc_decode",
    "check_code",
    "to_twos_complement",
    "from_twos_complement",
]


@dataclass(frozen=True)
class DacConversion:
    """DAC codes for requested output voltages."""

    codes: np.ndarray
    """Signed integer codes (int64), clipped to the DAC code range."""

    volts: np.ndarray
    """Output voltage of each code, in volts."""

    clipped: np.ndarray
    """True where the requested voltage lay outside the code range."""


@dataclass(frozen=True)
class AdcConversion:
    """ADC codes for sampled voltages."""

    codes: np.ndarray
    """Signed integer codes (int64), clipped to the ADC code range."""

    overrange: np.ndarray
    """True where the input exceeded the full scale or the code range."""


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _quantize(volts, lsb_V: float, code_min: int, code_max: int) -> tuple[np.ndarray, np.ndarray]:
    volts = np.asarray(volts, dtype=float)
    if not np.all(np.isfinite(volts)):
        raise ValueError(f"converter input contains NaN or Inf: {volts!r}; pass finite voltages")
    ideal = _round_half_away(volts / lsb_V)
    out_of_range = (ideal < code_min) | (ideal > code_max)
    codes = np.clip(ideal, code_min, code_max).astype(np.int64)
    return codes, out_of_range


def dac_encode(volts, dac: DacParams) -> DacConversion:
    """Convert requested DAC output voltages to codes.

    Parameters
    ----------
    volts : array_like of float
        Requested output voltages, in volts.
    dac : DacParams
        Resolution and full scale.

    Returns
    -------
    DacConversion
        Codes, their voltages and a clipping flag per entry.
    """
    codes, clipped = _quantize(volts, dac.lsb_V, dac.code_min, dac.code_max)
    return DacConversion(codes=codes, volts=dac_decode(codes, dac), clipped=clipped)


def dac_decode(codes, dac: DacParams) -> np.ndarray:
    """Return the output voltage of each DAC code, in volts."""
    return np.asarray(codes, dtype=np.int64) * dac.lsb_V


def adc_convert(volts, adc: AdcParams) -> AdcConversion:
    """Convert sampled voltages to ADC codes.

    Parameters
    ----------
    volts : array_like of float
        Sampled input voltages, in volts.
    adc : AdcParams
        Resolution and full scale.

    Returns
    -------
    AdcConversion
        Codes and an over-range flag per entry. The flag is set when
        ``|v| > full_scale_V`` or when the nearest code lies outside the code
        range, which happens from ``full_scale_V - lsb_V / 2`` upwards.
    """
    volts = np.asarray(volts, dtype=float)
    codes, out_of_range = _quantize(volts, adc.lsb_V, adc.code_min, adc.code_max)
    overrange = out_of_range | (np.abs(volts) > adc.full_scale_V)
    return AdcConversion(codes=codes, overrange=overrange)


def adc_decode(codes, adc: AdcParams) -> np.ndarray:
    """Return the voltage that each ADC code stands for, in volts."""
    return np.asarray(codes, dtype=np.int64) * adc.lsb_V


def check_code(code, bits: int, what: str) -> int:
    """Return `code` as an int after checking it is a signed code of `bits` bits.

    Raises
    ------
    ValueError
        If `code` is not an integer or lies outside ``[-2^(bits-1), 2^(bits-1) - 1]``.
        The message names the helper that converts a raw register field.
    """
    if isinstance(code, (bool, np.bool_)) or not isinstance(code, (int, np.integer)):
        raise ValueError(f"{what} code must be an integer, got {code!r} ({type(code).__name__})")
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if not low <= int(code) <= high:
        raise ValueError(
            f"{what} code {int(code)} is outside the signed {bits}-bit range [{low}, {high}]; "
            f"convert a raw register field with from_twos_complement(raw, {bits})"
        )
    return int(code)


def to_twos_complement(code: int, bits: int) -> int:
    """Return the unsigned `bits`-bit two's complement field of the signed `code`."""
    check_code(code, bits, "signed")
    return int(code) & ((1 << bits) - 1)


def from_twos_complement(raw: int, bits: int) -> int:
    """Return the signed value of an unsigned `bits`-bit two's complement field."""
    if isinstance(raw, bool) or not isinstance(raw, (int, np.integer)) or not 0 <= int(raw) < (1 << bits):
        raise ValueError(f"raw field {raw!r} is not an unsigned {bits}-bit integer in [0, {(1 << bits) - 1}]")
    raw = int(raw)
    return raw - (1 << bits) if raw & (1 << (bits - 1)) else raw
