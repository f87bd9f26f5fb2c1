"""State-space analysis: steady state, transients, settling, matrix-exponential route."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.integrate
import scipy.linalg

from amc.model.circuits import build_circuit
from amc.model.config import ArrayParams, MacroConfig, NonIdealities
from amc.model.macro import make_switch_state
from amc.model.statespace import REFINEMENT_TOLERANCE, CircuitAnalysis, _lu_factor, _lu_solve
from amc.model.switch_matrix import mode_by_name
from amc.model.trajectory import Trajectory


def _signed_inv(n=6, seed=2, shift=2.0):
    config = MacroConfig(array=ArrayParams(rows=n, cols=n), nonideal=NonIdealities.ideal())
    rng = np.random.default_rng(seed)
    root = rng.uniform(-1, 1, (n, n))
    matrix = root @ root.T + shift * np.eye(n)
    g0 = 99e-6 / np.max(np.abs(matrix))
    g_pos = 1e-6 + g0 * np.maximum(matrix, 0)
    g_neg = 1e-6 + g0 * np.maximum(-matrix, 0)
    state = make_switch_state(mode_by_name("INV"), n, n, config, signed=True)
    return CircuitAnalysis(build_circuit(state, g_pos, g_neg, config)), rng.uniform(-0.5, 0.5, n)


def _defective_mvm():
    # Each row carries 100 uS of cells, equal to G_f, so every TIA pole equals
    # the inverter pole 1/2 + 1/A0 and the state matrix has a Jordan block.
    config = MacroConfig(array=ArrayParams(rows=2, cols=2), nonideal=NonIdealities.ideal())
    g_pos = np.array([[40.0, 1.0], [30.0, 20.0]]) * 1e-6
    g_neg = np.array([[1.0, 58.0], [25.0, 25.0]]) * 1e-6
    state = make_switch_state(mode_by_name("MVM"), 2, 2, config, signed=True)
    return CircuitAnalysis(build_circuit(state, g_pos, g_neg, config)), np.array([0.3, -0.2])


def _integrate_linear(analysis, x0, u, times):
    m = analysis.system_matrix
    drive = analysis.circuit.source_weights @ u
    taus = np.asarray(times) * analysis.rate_rad_per_s
    solution = scipy.integrate.solve_ivp(lambda _t, x: -m @ x - drive, (0.0, taus[-1]), x0, t_eval=taus,
                                         method="Radau", rtol=1e-11, atol=1e-14)
    return solution.y.T


def test_response_matches_integration():
    analysis, u = _signed_inv()
    x0 = np.random.default_rng(0).uniform(-0.3, 0.3, analysis.circuit.n_states)
    times = np.linspace(0, 2e-6, 9)
    expected = _integrate_linear(analysis, x0, u, times)
    assert not analysis.uses_expm
    assert np.max(np.abs(analysis.response(times, x0, u) - expected)) < 1e-8


def test_expm_route_for_defective_matrix():
    analysis, u = _defective_mvm()
    assert analysis.uses_expm
    assert analysis.eigenvector_condition > 1e8
    times = np.linspace(0, 1e-7, 6)
    x0 = np.array([0.1, -0.1, 0.05, 0.0])
    expected = _integrate_linear(analysis, x0, u, times)
    assert np.max(np.abs(analysis.response(times, x0, u) - expected)) < 1e-8
    rows = analysis.propagator_rows([0, 1], [times[2], times[3]])
    steady = analysis.steady_state(u)
    assert np.allclose(steady[[0, 1]] + rows @ (x0 - steady), [expected[2, 0], expected[3, 1]], atol=1e-8)


def test_expm_route_settle_time():
    analysis, u = _defective_mvm()
    x0 = np.zeros(analysis.circuit.n_states)
    settle = analysis.settle_time(1e-3, x0, u)
    steady = analysis.steady_state(u)[:2]
    reference = np.max(np.abs(steady))
    times = np.linspace(0.5 * settle, 1.5 * settle, 400)
    errors = np.max(np.abs(analysis.response(times, x0, u)[:, :2] - steady), axis=1) / reference
    assert np.all(errors[times > settle * (1 + 1e-6)] <= 1e-3 * (1 + 1e-6))
    assert np.any(errors[times < settle * (1 - 1e-3)] > 1e-3)


def test_settle_time_matches_dense_sampling():
    analysis, u = _signed_inv()
    x0 = np.zeros(analysis.circuit.n_states)
    settle = analysis.settle_time(1e-3, x0, u)
    steady = analysis.steady_state(u)[:6]
    reference = np.max(np.abs(steady))
    times = np.linspace(0, 2 * settle, 4001)
    errors = np.max(np.abs(analysis.response(times, x0, u)[:, :6] - steady), axis=1) / reference
    last_above = times[np.flatnonzero(errors > 1e-3)[-1]]
    assert settle == pytest.approx(last_above, abs=2 * (times[1] - times[0]))


def test_settle_estimates_bound_exact_time():
    analysis, u = _signed_inv()
    estimates = analysis.settle_estimates(1e-3)
    assert estimates.formula_s < estimates.slowest_pole_s
    assert analysis.settle_time(1e-3, np.zeros(analysis.circuit.n_states), u) > 0.0


def test_steady_state_batch_equals_columns():
    analysis, u = _signed_inv()
    batch = np.stack([u, -2 * u, 0.5 * u[::-1]], axis=1)
    together = analysis.steady_state(batch)
    for k in range(3):
        assert np.allclose(together[:, k], analysis.steady_state(batch[:, k]), rtol=1e-13, atol=1e-15)
    full = -np.linalg.solve(analysis.system_matrix, analysis.circuit.source_weights @ u)
    assert np.allclose(analysis.steady_state(u), full, rtol=1e-12)


def test_unstable_transient_runs_to_infinity():
    n = 3
    config = MacroConfig(array=ArrayParams(rows=n, cols=n), nonideal=NonIdealities.ideal())
    g_pos = np.array([[10.0, 90.0, 1.0], [90.0, 10.0, 1.0], [1.0, 1.0, 80.0]]) * 1e-6
    state = make_switch_state(mode_by_name("INV"), n, n, config)
    analysis = CircuitAnalysis(build_circuit(state, g_pos, np.full((n, n), 1e-6), config))
    assert not analysis.stability.stable
    u = np.array([0.1, 0.05, -0.1])
    far = analysis.transient(np.zeros(n), u).states(1e-3)
    assert np.all(np.isinf(far[:2]))
    assert np.all(np.isfinite(analysis.transient(np.zeros(n), u).states(1e-7)))
    outputs = Trajectory(analysis, np.zeros(n), u).outputs(2e-6)
    assert np.allclose(np.abs(outputs[:2]), config.opamp.rail_V)


def test_invalid_eps_rejected():
    analysis, u = _signed_inv()
    with pytest.raises(ValueError, match=r"eps = 0 is invalid"):
        analysis.settle_estimates(0)


def test_steady_operator_matches_steady_state():
    analysis, u = _signed_inv()
    operator = analysis.steady_operator
    assert operator.shape == (analysis.circuit.n_states, analysis.circuit.n_sources)
    assert not operator.flags.writeable
    assert np.allclose(operator @ u, analysis.steady_state(u), rtol=1e-13, atol=1e-15)


def _noisy_systems(n=12, count=6, sigma=0.005, signed=True, seed=4):
    """Return (nominal analysis, line rows of each noisy M_k, rhs, direct steady states) for read-noise draws."""
    config = MacroConfig(array=ArrayParams(rows=n, cols=n), nonideal=NonIdealities.ideal())
    rng = np.random.default_rng(seed)
    root = rng.uniform(-1, 1, (n, n)) if signed else rng.uniform(0, 1, (n, n))
    matrix = root @ root.T / n + np.eye(n)
    g0 = 99e-6 / np.max(np.abs(matrix))
    g_pos = 1e-6 + g0 * np.maximum(matrix, 0)
    g_neg = 1e-6 + g0 * np.maximum(-matrix, 0)
    state = make_switch_state(mode_by_name("INV"), n, n, config, signed=signed)
    nominal = CircuitAnalysis(build_circuit(state, g_pos, g_neg, config))
    volts = rng.uniform(-0.3, 0.3, (n, count))
    rows, rhs, reference = [], [], []
    for k in range(count):
        noisy_pos = g_pos * np.maximum(1 + sigma * rng.standard_normal((n, n)), 0)
        noisy_neg = g_neg * np.maximum(1 + sigma * rng.standard_normal((n, n)), 0)
        noisy = CircuitAnalysis(build_circuit(state, noisy_pos, noisy_neg, config))
        rows.append(noisy.system_matrix[:n])
        rhs.append(-(noisy.circuit.source_weights @ volts[:, k]))
        reference.append(noisy.steady_state(volts[:, k]))
    return nominal, np.array(rows), np.array(rhs).T, np.array(reference).T


def _column_error(x, reference):
    """Return the largest error of each column relative to that column's largest |reference|."""
    return np.max(np.abs(x - reference), axis=0) / np.max(np.abs(reference), axis=0)


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("method", ["auto", "refine", "direct"])
def test_perturbed_solve_matches_direct_steady_states(signed, method):
    nominal, rows, rhs, reference = _noisy_systems(signed=signed)
    x, report = nominal.solve_line_perturbed(rows, rhs, method=method)
    assert x.shape == reference.shape
    assert np.all(_column_error(x, reference) <= REFINEMENT_TOLERANCE)
    if method == "refine":
        assert report.direct.size == 0
        assert 2 <= report.refinement_steps <= 8
    if method == "direct":
        assert report.direct.tolist() == list(range(6))
        assert np.all(_column_error(x, reference) <= 1e-13)


def test_perturbed_refinement_reaches_rounding():
    # A tighter tolerance than the default still converges (0.5 % noise gives a ratio near 0.01).
    nominal, rows, rhs, reference = _noisy_systems(count=3)
    x, report = nominal.solve_line_perturbed(rows, rhs, method="refine", tolerance=1e-14)
    assert report.direct.size == 0
    assert np.all(_column_error(x, reference) <= 1e-13)


def test_perturbed_refinement_falls_back_to_direct():
    # 40 % read noise makes M^-1 (M_k - M) too large to contract quickly,
    # so the systems go to the direct solve and the results stay exact.
    nominal, rows, rhs, reference = _noisy_systems(count=4, sigma=0.4)
    x, report = nominal.solve_line_perturbed(rows, rhs, method="refine")
    assert report.direct.size > 0
    assert np.all(_column_error(x, reference) <= 1e-12)


def test_perturbed_solve_zero_rhs():
    nominal, rows, rhs, _ = _noisy_systems(count=2)
    x, report = nominal.solve_line_perturbed(rows, np.zeros_like(rhs), method="refine")
    assert np.array_equal(x, np.zeros_like(rhs))
    assert report.direct.size == 0


def test_perturbed_solve_full_route():
    # Coupling between two inverters makes their block of M non-diagonal, so
    # neither solve can eliminate them and both work on the full system.
    nominal, rows, rhs, _ = _noisy_systems(n=5, count=3)
    weights = np.array(nominal.circuit.output_weights)
    weights[5, 6] = weights[6, 5] = 0.01
    coupled = CircuitAnalysis(dataclasses.replace(nominal.circuit, output_weights=weights))
    assert coupled._steady_solver[0] == "full"
    expected = []
    for k in range(3):
        full = np.array(coupled.system_matrix)
        full[:5] = rows[k]
        expected.append(np.linalg.solve(full, rhs[:, k]))
    expected = np.array(expected).T
    for method in ("refine", "direct"):
        x, _ = coupled.solve_line_perturbed(rows, rhs, method=method)
        assert np.all(_column_error(x, expected) <= REFINEMENT_TOLERANCE)


def test_perturbed_solve_rejects_invalid_input():
    nominal, rows, rhs, _ = _noisy_systems(count=2)
    with pytest.raises(ValueError, match="method = 'lu' is invalid"):
        nominal.solve_line_perturbed(rows, rhs, method="lu")
    with pytest.raises(ValueError, match="tolerance = 0 is invalid"):
        nominal.solve_line_perturbed(rows, rhs, tolerance=0)
    with pytest.raises(ValueError, match=r"expected \(K, 12, 24\) and \(24, K\)"):
        nominal.solve_line_perturbed(rows[:1], rhs)


def test_lu_helpers_equal_scipy():
    # The event path must not change: the helpers call the LAPACK routines
    # of scipy's lu_factor and lu_solve, so they agree to the last bit.
    analysis, u = _signed_inv(n=9)
    matrix = analysis.system_matrix
    rhs = np.random.default_rng(8).standard_normal((matrix.shape[0], 3))
    lu, piv = _lu_factor(matrix)
    reference_lu, reference_piv = scipy.linalg.lu_factor(matrix)
    assert lu.tobytes() == reference_lu.tobytes()
    assert np.array_equal(piv, reference_piv)
    for b in (rhs, rhs[:, 0]):
        assert _lu_solve((lu, piv), b).tobytes() == scipy.linalg.lu_solve((reference_lu, reference_piv), b).tobytes()
    with pytest.warns(scipy.linalg.LinAlgWarning, match="exactly zero"):
        _lu_factor(np.zeros((2, 2)))
