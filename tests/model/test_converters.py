"""DAC and ADC quantization."""

from __future__ import annotations

import numpy as np
import pytest

from amc.model.config import AdcParams, DacParams
from amc.model.converters import (
    adc_convert,
    adc_decode,
    check_code,
    dac_decode,
    dac_encode,
    from_twos_complement,
    to_twos_complement,
)

DAC = DacParams(bits=4, full_scale_V=1.0)
ADC = AdcParams(bits=4, full_scale_V=1.0)


def test_dac_rounds_to_nearest_code():
    conversion = dac_encode([0.0, 0.124, 0.126, -0.126, 0.0625], DAC)
    assert conversion.codes.tolist() == [0, 1, 1, -1, 1]
    assert conversion.clipped.tolist() == [False] * 5
    assert np.allclose(conversion.volts, conversion.codes * 0.125)


def test_dac_clips_and_reports():
    conversion = dac_encode([0.9, 0.95, -1.0, -1.2], DAC)
    assert conversion.codes.tolist() == [7, 7, -8, -8]
    assert conversion.clipped.tolist() == [False, True, False, True]


def test_dac_decode_round_trip():
    codes = np.arange(DAC.code_min, DAC.code_max + 1)
    assert np.array_equal(dac_encode(dac_decode(codes, DAC), DAC).codes, codes)


def test_adc_overrange_flags():
    conversion = adc_convert([0.5, 0.87, 0.95, 1.2, -1.0, -1.01], ADC)
    assert conversion.codes.tolist() == [4, 7, 7, 7, -8, -8]
    assert conversion.overrange.tolist() == [False, False, True, True, False, True]


def test_adc_decode():
    assert adc_decode([3, -2], ADC).tolist() == [0.375, -0.25]


def test_converter_rejects_nan():
    with pytest.raises(ValueError, match="NaN or Inf"):
        adc_convert([np.nan], ADC)


def test_twos_complement_round_trip():
    for code in range(-8, 8):
        raw = to_twos_complement(code, 4)
        assert 0 <= raw < 16
        assert from_twos_complement(raw, 4) == code
    assert to_twos_complement(-1, 4) == 0b1111


def test_check_code_range():
    assert check_code(np.int64(-8), 4, "DAC") == -8
    with pytest.raises(ValueError, match=r"DAC code 8 is outside the signed 4-bit range \[-8, 7\]"):
        check_code(8, 4, "DAC")
    with pytest.raises(ValueError, match="must be an integer"):
        check_code(1.0, 4, "DAC")
    with pytest.raises(ValueError, match="not an unsigned 4-bit integer"):
        from_twos_complement(16, 4)
