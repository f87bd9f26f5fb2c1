"""Agreement of the circuit model with the ngspice reference runs.

Each case is a netlist of the same single-pole op-amp model (gain A0, GBW,
hard clamp at the rails), solved by ngspice with .op and a transient from zero
state. The JSON files also hold numpy results of the same network, which the
model must reproduce to rounding error.
"""

from __future__ import annotations

import numpy as np
import pytest

from amc.model.config import AdcParams, DacParams
from amc.model.errors import UnstableCircuitError
from amc.model.macro import AnalogMacro
from amc.model.spice_agreement import load_reference_case, main as spice_agreement_main, measure_agreement
from amc.model.statespace import check_stability
from amc.model.trajectory import Trajectory, simulate_saturating

from .spice_cases import (
    SPICE_DIR,
    case_analysis,
    case_config,
    case_images,
    case_inputs,
    case_signed,
    case_state,
    complex_pairs,
    load_case,
    relative_error,
    spice_params,
)

STABLE = ["inv4_spd", "inv4_spd_a0_1e3", "inv8_spd", "inv4_signed", "mvm4"]
UNSTABLE = ["inv4_unstable", "inv4_signed_invloop_unstable"]


def _outputs(analysis, values):
    return np.asarray(values)[..., : analysis.circuit.n_outputs]


@pytest.mark.parametrize("name", spice_params())
def test_steady_state_matches_op(name):
    case = load_case(name)
    analysis = case_analysis(case)
    steady = _outputs(analysis, analysis.steady_state(case_inputs(case)))
    assert relative_error(steady, case["spice"]["op_V"]) < 1e-9


@pytest.mark.parametrize("name", spice_params())
def test_steady_state_matches_nodal_solve(name):
    case = load_case(name)
    analysis = case_analysis(case)
    steady = _outputs(analysis, analysis.steady_state(case_inputs(case)))
    numpy_results = case["numpy"]
    assert relative_error(steady, numpy_results["circuit_dc_V"]) < 1e-12
    if case_signed(case):
        assert relative_error(steady, numpy_results["finite_gain_with_inverter_V"]) < 1e-12
    else:
        assert relative_error(steady, numpy_results["finite_gain_V"]) < 1e-12


@pytest.mark.parametrize("name", spice_params())
def test_ideal_steady_state_matches(name):
    case = load_case(name)
    analysis = case_analysis(case)
    ideal = _outputs(analysis, analysis.ideal_steady_state(case_inputs(case)))
    assert relative_error(ideal, case["numpy"]["ideal_V"]) < 1e-12


@pytest.mark.parametrize("name", spice_params())
def test_poles_match(name):
    case = load_case(name)
    analysis = case_analysis(case)
    expected = np.sort_complex(complex_pairs(case["numpy"]["closed_loop_poles_over_2piGBW"]))
    actual = np.sort_complex(analysis.normalized_poles)
    assert actual.shape == expected.shape
    assert np.max(np.abs(actual - expected)) < 1e-12


@pytest.mark.parametrize("name", spice_params())
def test_loop_eigenvalues_match(name):
    case = load_case(name)
    analysis = case_analysis(case)
    expected = np.sort_complex(complex_pairs(case["numpy"]["lambda_DinvG"]))
    actual = np.sort_complex(analysis.loop_eigenvalues)
    assert np.max(np.abs(actual - expected)) < 1e-12
    assert min(actual.real) == pytest.approx(case["numpy"]["lambda_min_re"], rel=1e-12)


@pytest.mark.parametrize("name", spice_params(STABLE))
def test_waveform_matches_transient(name):
    # The reference sample at t = 0 is already nonzero (up to 1e-4 V) although
    # every pole capacitor starts at 0 V, so the comparison starts at the second sample.
    case = load_case(name)
    analysis = case_analysis(case)
    times = np.array(case["spice"]["tran_time_s"])[1:]
    expected = np.array(case["spice"]["tran_V"])[1:]
    response = analysis.response(times, np.zeros(analysis.circuit.n_states), case_inputs(case))
    assert relative_error(_outputs(analysis, response), expected) < 1e-4


@pytest.mark.parametrize("name", spice_params(STABLE))
def test_settle_time_matches(name):
    case = load_case(name)
    analysis = case_analysis(case)
    reference = float(np.max(np.abs(case["spice"]["op_V"])))
    for eps, key in ((1e-2, "1pct"), (1e-3, "0p1pct")):
        settle = analysis.settle_time(eps, np.zeros(analysis.circuit.n_states), case_inputs(case), reference)
        assert settle == pytest.approx(case["spice"][f"settle_{key}_s"], rel=1e-3)
        assert settle == pytest.approx(case["numpy"][f"settle_{key}_linear_ss_s"], rel=1e-4)


@pytest.mark.parametrize("name", spice_params(STABLE))
def test_settle_estimates_match(name):
    case = load_case(name)
    analysis = case_analysis(case)
    for eps, key in ((1e-2, "1pct"), (1e-3, "0p1pct")):
        estimates = analysis.settle_estimates(eps)
        assert estimates.formula_s == pytest.approx(case["numpy"][f"settle_{key}_formula_s"], rel=1e-9)
        assert estimates.slowest_pole_s == pytest.approx(case["numpy"][f"settle_{key}_slowest_pole_s"], rel=1e-9)


@pytest.mark.parametrize("name", spice_params(["inv4_signed"]))
def test_signed_settling_slower_than_formula(name):
    # The inverters inside the loop slow the signed circuit: the eigenvalue
    # formula predicts settling about 1.4-1.6 times too fast, which is why the
    # automatic settle time uses the slowest closed-loop pole.
    case = load_case(name)
    analysis = case_analysis(case)
    estimates = analysis.settle_estimates(1e-2)
    assert case["spice"]["settle_1pct_s"] / estimates.formula_s > 1.4
    assert case["spice"]["settle_1pct_s"] / estimates.slowest_pole_s < 1.5


@pytest.mark.parametrize("name", spice_params(STABLE))
def test_stable_cases_accepted(name):
    report = check_stability(case_analysis(load_case(name)))
    assert report.stable
    assert report.rule is None


@pytest.mark.parametrize("name", spice_params(["inv4_unstable"]))
def test_indefinite_matrix_rejected_by_eigenvalue(name):
    analysis = case_analysis(load_case(name))
    report = analysis.stability
    assert not report.stable
    assert report.rule == "eigenvalue"
    assert report.lambda_min.real == pytest.approx(-0.3172579121814343, rel=1e-9)
    with pytest.raises(UnstableCircuitError, match=r"eigenvalue -0\.3173 of D\^-1 G has a real part <= 0"):
        check_stability(analysis)


@pytest.mark.parametrize("name", spice_params(["inv4_signed_invloop_unstable"]))
def test_inverter_loop_rejected_by_state_space(name):
    case = load_case(name)
    analysis = case_analysis(case)
    report = analysis.stability
    assert min(analysis.loop_eigenvalues.real) > 0.05
    assert not report.stable
    assert report.rule == "state-space"
    growth = report.rightmost_pole_rad_per_s.real
    assert growth == pytest.approx(case["numpy"]["growth_rate_per_s"], rel=1e-9)
    with pytest.raises(UnstableCircuitError, match="delay of the inverter op-amps inside the loop"):
        check_stability(analysis)


@pytest.mark.parametrize("name", spice_params(UNSTABLE))
def test_unstable_waveform_before_rails(name):
    case = load_case(name)
    analysis = case_analysis(case)
    times = np.array(case["spice"]["tran_time_s"])
    expected = np.array(case["spice"]["tran_V"])
    before = (times > 0) & (times < case["spice"]["t_first_rail_s"])
    response = analysis.response(times[before], np.zeros(analysis.circuit.n_states), case_inputs(case))
    assert relative_error(_outputs(analysis, response), expected[before]) < 1e-4


@pytest.mark.parametrize("name", spice_params())
def test_saturating_waveform_matches(name):
    # The saturating model clamps the outputs at the rails inside the loop and
    # lets the internal pole nodes wind up, as the reference op-amp does, so it
    # follows the latch-up and the limit cycle after the rails too.
    case = load_case(name)
    analysis = case_analysis(case)
    times = np.array(case["spice"]["tran_time_s"])
    expected = np.array(case["spice"]["tran_V"])
    result = simulate_saturating(analysis, np.zeros(analysis.circuit.n_states), case_inputs(case), times)
    assert relative_error(_outputs(analysis, result.output_V)[1:], expected[1:]) < 1e-3


@pytest.mark.parametrize("name", spice_params(UNSTABLE))
def test_trajectory_switches_to_saturating(name):
    case = load_case(name)
    analysis = case_analysis(case)
    trajectory = Trajectory(analysis, np.zeros(analysis.circuit.n_states), case_inputs(case))
    times = np.array(case["spice"]["tran_time_s"])[1:]
    expected = np.array(case["spice"]["tran_V"])[1:]
    outputs = np.array([_outputs(analysis, trajectory.outputs(t)) for t in times])
    assert relative_error(outputs, expected) < 1e-3
    # The saturating model must take over before the first reference sample at
    # a rail, and the rail proof should not give up long before the outputs
    # come near the rails.
    rail = case["opamp"]["rail_V"]
    first_at_rail = times[np.flatnonzero(np.max(np.abs(expected), axis=1) >= rail - 1e-9)[0]]
    assert trajectory.saturation_start_s is not None
    assert trajectory.saturation_start_s <= first_at_rail
    assert trajectory.saturation_start_s >= 0.9 * case["spice"]["t_first_rail_s"]


@pytest.mark.parametrize("name", spice_params(["inv4_unstable"]))
def test_latch_up_final_state(name):
    case = load_case(name)
    analysis = case_analysis(case)
    trajectory = Trajectory(analysis, np.zeros(analysis.circuit.n_states), case_inputs(case))
    final = _outputs(analysis, trajectory.outputs(case["spice"]["tstop_s"]))
    assert np.max(np.abs(final - np.array(case["spice"]["final_V"]))) < 1e-3


@pytest.mark.parametrize("name", spice_params(["inv4_spd_a0_1e3"]))
def test_finite_gain_error(name):
    # With A0 = 1e3 the steady state differs from the ideal solution by 1.25 %,
    # and the model reproduces that error, not just the ideal value.
    case = load_case(name)
    analysis = case_analysis(case)
    steady = _outputs(analysis, analysis.steady_state(case_inputs(case)))
    ideal = _outputs(analysis, analysis.ideal_steady_state(case_inputs(case)))
    error = relative_error(steady, ideal)
    assert error == pytest.approx(case["agreement"]["op_vs_ideal"], rel=1e-6)
    assert error == pytest.approx(0.0125, rel=0.02)
    assert relative_error(steady, case["spice"]["op_V"]) < 1e-9


@pytest.mark.parametrize("name", spice_params())
def test_macro_event_path_matches_transient(name):
    # A 16-bit DAC with a 1.024 V full scale has a 31.25 uV step, so the
    # millivolt inputs of the reference cases are exact DAC codes.
    case = load_case(name)
    config = case_config(case).replace(dac=DacParams(bits=16, full_scale_V=1.024),
                                       adc=AdcParams(bits=16, full_scale_V=1.5))
    macro = AnalogMacro(config)
    g_pos, g_neg = case_images(case)
    macro.program_backdoor(0, g_pos, g_neg)
    inputs = case_inputs(case)
    codes = np.rint(inputs / config.dac.lsb_V).astype(int)
    assert np.allclose(codes * config.dac.lsb_V, inputs, rtol=0, atol=1e-12)
    for channel, code in enumerate(codes):
        macro.load_dac(channel, int(code))

    record = macro.enable(0, case_state(case))
    assert record.stability.stable == (name not in UNSTABLE)
    times = np.array(case["spice"]["tran_time_s"])[1:]
    expected = np.array(case["spice"]["tran_V"])[1:]
    sampled = np.array([[macro.sample(int(round(t * 1e12)), channel).volts for channel in range(case["N"])]
                        for t in times])
    macro.disable(int(round(times[-1] * 1e12)))
    assert relative_error(sampled, expected) < 1e-3


@pytest.mark.parametrize("name", spice_params())
def test_agreement_report_figures(name):
    figures = measure_agreement(load_reference_case(SPICE_DIR / f"{name}.json"))
    assert figures["op"] < 1e-9
    assert figures["wave"] < 1e-4
    assert figures["wave_saturating"] < 1e-3
    if name in STABLE:
        assert figures["settle_1pct"] == pytest.approx(1.0, abs=1e-3)
        assert figures["settle_0p1pct"] == pytest.approx(1.0, abs=1e-3)
        assert figures["verdict"] == "stable"
    else:
        assert figures["settle_1pct"] is None
        assert figures["verdict"].startswith("unstable")


@pytest.mark.parametrize("name", spice_params(["mvm4"]))
def test_agreement_command_prints_table(name, capsys):
    assert spice_agreement_main([str(SPICE_DIR)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| case | op | wave |")
    assert any(line.startswith(f"| {name} | ") for line in lines)


def test_agreement_command_empty_folder(tmp_path, capsys):
    assert spice_agreement_main([str(tmp_path)]) == 2
    assert "no *.json reference cases found" in capsys.readouterr().err
