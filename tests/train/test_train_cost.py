"""Hardware cost estimator: hand-computed totals, parameters, ratios."""

import math

import pytest

from amc.model.config import MacroConfig
from amc.train.cost import (
    AMCCostParams,
    DigitalProcessorParams,
    digital_flops,
    estimate_cost,
    format_estimate,
    set_parameter,
)
from amc.train.kfac import InversionRecord


def _record(size, columns, passes=1, **info):
    return InversionRecord(step=0, layer="fc", factor="A", size=size, damping_requested=0.1,
                           damping_applied=0.1, columns_solved=columns, passes=passes, info=info)


def test_single_inversion_by_hand():
    config = MacroConfig()
    amc = AMCCostParams()
    digital = DigitalProcessorParams()
    record = _record(4, 4, lambda_min=0.5, differential=True)
    estimate = estimate_cost([record], config, amc=amc, digital=digital, refinement_host_flops=False)

    eps = 2.0 ** -config.adc.bits
    settle = math.log(1 / eps) / (2 * math.pi * config.opamp.gbw_Hz * 0.5)
    adc_time = 4 * config.adc.conversion_time_s  # one ADC, four channels
    assert estimate.amc_time_s["settling"] == pytest.approx(4 * settle)
    assert estimate.amc_time_s["adc"] == pytest.approx(4 * adc_time)
    assert estimate.amc_time_s["dac"] == pytest.approx(4 * config.dac.conversion_time_s)
    cells = 2 * 16
    assert estimate.amc_time_s["programming"] == pytest.approx(
        cells * amc.program_pulses_per_cell * (config.programming.pulse_width_s + amc.program_verify_time_s))
    assert estimate.amc_energy_J["programming"] == pytest.approx(
        cells * amc.program_pulses_per_cell * amc.program_pulse_energy_J)
    active = 4 * (config.dac.conversion_time_s + settle + adc_time)
    assert estimate.amc_energy_J["op-amps"] == pytest.approx(8 * amc.opamp_power_W * active)
    assert estimate.amc_energy_J["adc"] == pytest.approx(16 * amc.adc_fom_J * 2 ** config.adc.bits)
    assert estimate.amc_energy_J["dac"] == pytest.approx(16 * amc.dac_energy_J)
    assert estimate.amc_energy_J["host digital"] == 0.0

    rate = digital.peak_flops_per_s * digital.utilization
    assert estimate.digital_flops == 64
    assert estimate.digital_time_s == pytest.approx(64 / rate)
    assert estimate.digital_energy_J == pytest.approx(64 / rate * digital.power_W)
    assert estimate.throughput_ratio == pytest.approx(estimate.digital_time_s / estimate.amc_total_time_s)
    assert estimate.sizes == {4: 1}


def test_settle_time_from_record_wins():
    config = MacroConfig()
    estimate = estimate_cost([_record(3, 3, settle_time_s=1e-6, lambda_min=0.001)], config)
    assert estimate.amc_time_s["settling"] == pytest.approx(3e-6)


def test_refinement_passes_multiply_operations_and_host_work():
    config = MacroConfig()
    one = estimate_cost([_record(8, 8, passes=1, lambda_min=1.0)], config)
    three = estimate_cost([_record(8, 8, passes=3, lambda_min=1.0)], config)
    assert three.amc_time_s["adc"] == pytest.approx(3 * one.amc_time_s["adc"])
    assert three.amc_time_s["host digital"] > one.amc_time_s["host digital"]
    assert three.digital_flops == one.digital_flops


def test_unsigned_factor_programs_one_half():
    config = MacroConfig()
    signed = estimate_cost([_record(5, 5, lambda_min=1.0, differential=True)], config)
    unsigned = estimate_cost([_record(5, 5, lambda_min=1.0, differential=False)], config)
    assert unsigned.amc_energy_J["programming"] == pytest.approx(signed.amc_energy_J["programming"] / 2)


def test_without_programming_raises_ratios():
    config = MacroConfig()
    estimate = estimate_cost([_record(16, 16, lambda_min=0.2)], config)
    warm = estimate.without_programming()
    assert warm.amc_time_s["programming"] == 0.0
    assert warm.throughput_ratio > estimate.throughput_ratio
    assert warm.energy_ratio > estimate.energy_ratio


def test_digital_flops_counts():
    assert digital_flops(10, 10, "inverse") == (0.0, 1000)
    setup, use = digital_flops(10, 3, "solve")
    assert setup == pytest.approx(1000 / 3)
    assert use == pytest.approx(600)


def test_without_setup_removes_digital_factorization_in_solve_mode():
    config = MacroConfig()
    estimate = estimate_cost([_record(16, 4, lambda_min=0.2)], config, apply_mode="solve")
    kept = estimate.without_setup()
    assert kept.amc_time_s["programming"] == 0.0
    assert kept.digital_flops == pytest.approx(2 * 16 * 16 * 4)
    assert kept.digital_time_s < estimate.digital_time_s
    inverse = estimate_cost([_record(16, 16, lambda_min=0.2)], config, apply_mode="inverse")
    assert inverse.without_setup().digital_time_s == pytest.approx(inverse.digital_time_s)


def test_missing_settling_information_is_reported():
    with pytest.raises(ValueError, match="no settling time or positive lambda_min"):
        estimate_cost([_record(4, 4)], MacroConfig())
    with pytest.raises(ValueError, match="inversion log is empty"):
        estimate_cost([], MacroConfig())


def test_set_parameter_and_validation():
    amc = set_parameter(AMCCostParams(), "adc_count=8")
    assert amc.adc_count == 8
    digital = set_parameter(DigitalProcessorParams(), "utilization=0.5")
    assert digital.utilization == 0.5
    with pytest.raises(ValueError, match="NAME=VALUE"):
        set_parameter(AMCCostParams(), "nonsense=1")
    with pytest.raises(ValueError, match="not a number"):
        set_parameter(AMCCostParams(), "opamp_power_W=lots")
    with pytest.raises(ValueError, match="opamp_power_W"):
        AMCCostParams(opamp_power_W=-1.0)
    with pytest.raises(ValueError, match="utilization"):
        DigitalProcessorParams(utilization=2.0)


def test_report_lists_every_parameter_and_reported_ratios():
    config = MacroConfig()
    amc, digital = AMCCostParams(), DigitalProcessorParams()
    estimate = estimate_cost([_record(10, 10, lambda_min=0.3)], config, amc=amc, digital=digital)
    text = format_estimate(estimate, amc, digital, config)
    for name in ("opamp_power_W", "adc_fom_J", "program_pulse_energy_J", "peak_flops_per_s", "power_W",
                 "utilization", "adc.conversion_time_s", "opamp.gbw_Hz"):
        assert name in text
    assert "reported 5.88x" in text
    assert "reported 6.9x" in text
    assert "assumption" in text


def test_write_verify_statistics_replace_assumed_pulses():
    config = MacroConfig()
    amc = AMCCostParams()
    assumed = estimate_cost([_record(4, 4, lambda_min=0.5)], config, amc=amc)
    measured = estimate_cost([_record(4, 4, lambda_min=0.5, programming_pulses=100.0, programming_time_s=3e-5)],
                             config, amc=amc)
    assert measured.amc_energy_J["programming"] == pytest.approx(100 * amc.program_pulse_energy_J)
    assert measured.amc_time_s["programming"] == pytest.approx(3e-5)
    assert assumed.amc_energy_J["programming"] == pytest.approx(32 * 10 * amc.program_pulse_energy_J)
