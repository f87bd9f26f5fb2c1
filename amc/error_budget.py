"""Reference errors that put an analog result in context."""

from __future__ import annotations

import numpy as np

from .model.config import MacroConfig
from .model.converters import adc_convert, adc_decode
from .model.encoding import encode_input, input_sign, output_gain
from .model.switch_matrix import mode_by_name

__all__ = ["converter_limited_solution"]


def converter_limited_solution(matrix, rhs, config: MacroConfig, input_scale_V: float, g_unit_S: float) -> np.ndarray:
    """Return the INV solution an ideal analog circuit would give with the macro's DAC and ADC.

    The right-hand side is quantized by the DAC at `input_scale_V`, the system
    is solved exactly, and the solution is quantized by the ADC at the output
    gain of the INV circuit. Its error against the exact solution is the
    smallest error the converters allow, whatever the devices do.
    """
    mode = mode_by_name("INV")
    encoded = encode_input(rhs, mode, config.dac, scale_V=input_scale_V)
    quantized_rhs = input_sign(mode) * encoded.volts / input_scale_V
    solution = np.linalg.solve(np.asarray(matrix, dtype=float), quantized_rhs)
    gain = float(output_gain(mode, g_unit_S, config.circuit, input_scale_V))
    codes = adc_convert(solution * gain, config.adc).codes
    return adc_decode(codes, config.adc) / gain
