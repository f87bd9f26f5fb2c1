"""Validation of the macro parameters (amc.model.config)."""

from __future__ import annotations

import pytest

from amc.model.config import (
    AdcParams,
    ArrayParams,
    ConfigError,
    DacParams,
    MacroConfig,
    NonIdealities,
    OpAmpParams,
    ReadNoise,
)


def test_zero_levels_rejected():
    with pytest.raises(ConfigError) as error:
        ArrayParams(levels=0)
    assert str(error.value) == (
        "ArrayParams.levels = 0 is invalid: a cell needs at least 2 conductance levels (use 2 for binary cells)"
    )


def test_one_level_rejected():
    with pytest.raises(ConfigError, match=r"ArrayParams\.levels = 1 is invalid"):
        ArrayParams(levels=1)


def test_window_order_rejected():
    with pytest.raises(ConfigError) as error:
        ArrayParams(g_min_S=100e-6, g_max_S=100e-6)
    assert str(error.value) == (
        "ArrayParams.g_min_S = 0.0001 S must be below g_max_S = 0.0001 S; swap them or widen the conductance window"
    )


def test_inverted_window_rejected():
    with pytest.raises(ConfigError, match=r"g_min_S = 0\.0002 S must be below g_max_S = 0\.0001 S"):
        ArrayParams(g_min_S=200e-6, g_max_S=100e-6)


@pytest.mark.parametrize("kind", [DacParams, AdcParams])
@pytest.mark.parametrize("bits", [0, -3])
def test_nonpositive_bits_rejected(kind, bits):
    with pytest.raises(ConfigError, match=rf"{kind.__name__}\.bits = {bits} is invalid: use at least 2 bits"):
        kind(bits=bits)


def test_float_bits_rejected():
    with pytest.raises(ConfigError, match=r"DacParams\.bits must be an integer, got 8\.0 \(float\)"):
        DacParams(bits=8.0)


def test_negative_gain_rejected():
    with pytest.raises(ConfigError, match=r"OpAmpParams\.open_loop_gain = -1 \(V/V\) is invalid"):
        OpAmpParams(open_loop_gain=-1)


def test_noise_sigma_range_rejected():
    with pytest.raises(ConfigError, match=r"ReadNoise\.sigma_rel = 1\.5 is invalid: use a fraction in \[0, 1\)"):
        ReadNoise(sigma_rel=1.5)


def test_negative_seed_rejected():
    with pytest.raises(ConfigError, match=r"MacroConfig\.seed = -1 is invalid"):
        MacroConfig(seed=-1)


def test_config_errors_are_value_errors():
    with pytest.raises(ValueError):
        ArrayParams(rows=0)


def test_ideal_switches_everything_off():
    config = MacroConfig().ideal()
    assert config.nonideal == NonIdealities.ideal()
    assert config.nonideal.describe() == "none (ideal devices)"
    assert not config.nonideal.quantize_levels


def test_lines_and_lsb():
    config = MacroConfig(array=ArrayParams(rows=8, cols=12), dac=DacParams(bits=8, full_scale_V=1.0))
    assert config.array.lines == 12
    assert config.dac.lsb_V == pytest.approx(1.0 / 128)
    assert (config.dac.code_min, config.dac.code_max) == (-128, 127)
