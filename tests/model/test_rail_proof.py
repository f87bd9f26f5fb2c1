"""Grid rail proof of the batch path against dense simulation and the adaptive scan."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from amc.model.circuits import build_circuit
from amc.model.config import ArrayParams, MacroConfig, NonIdealities
from amc.model.macro import make_switch_state
from amc.model.statespace import CircuitAnalysis
from amc.model.switch_matrix import mode_by_name
from amc.model.trajectory import GridRailProof, RailScan, scan_rails

RAIL = 1.5


def _circuit(n, seed, mode="INV", signed=True, shift=0.5):
    config = MacroConfig(array=ArrayParams(rows=n, cols=n), nonideal=NonIdealities.ideal())
    rng = np.random.default_rng(seed)
    root = rng.uniform(-1, 1, (n, n)) if signed else rng.uniform(0, 1, (n, n))
    matrix = root @ root.T / n + shift * np.eye(n)
    g0 = 99e-6 / np.max(np.abs(matrix))
    g_pos = 1e-6 + g0 * np.maximum(matrix, 0)
    g_neg = 1e-6 + g0 * np.maximum(-matrix, 0)
    state = make_switch_state(mode_by_name(mode), n, n, config, signed=signed)
    return CircuitAnalysis(build_circuit(state, g_pos, g_neg, config))


def _dense_peak(analysis, steady, deviation, tau_end, step=0.005):
    """Return the largest |x_i| per trajectory on a fine grid of [0, tau_end] (normalized time)."""
    propagator = scipy.linalg.expm(-analysis.system_matrix * step)
    d = deviation.copy()
    peak = np.abs(steady + d).max(axis=0)
    for _ in range(int(np.ceil(tau_end / step))):
        d = propagator @ d
        peak = np.maximum(peak, np.abs(steady + d).max(axis=0))
    return peak


def _operations(analysis, k_ops, seed, steady_peaks=(0.3, 1.45), start_peaks=(0.2, 1.45)):
    rng = np.random.default_rng(seed)
    n = analysis.circuit.n_states
    steady = rng.uniform(-1, 1, (n, k_ops))
    steady *= rng.uniform(*steady_peaks, k_ops) / np.abs(steady).max(axis=0)
    start = rng.uniform(-1, 1, (n, k_ops))
    start *= rng.uniform(*start_peaks, k_ops) / np.abs(start).max(axis=0)
    return steady, start - steady


@pytest.mark.parametrize(("mode", "signed", "seed"), [("INV", True, 1), ("INV", False, 2), ("MVM", True, 3),
                                                      ("INV", True, 4)])
def test_grid_proof_sound(mode, signed, seed):
    analysis = _circuit(6, seed, mode=mode, signed=signed)
    tau_end = 40.0
    proof = GridRailProof(analysis, RAIL, tau_end)
    steady, deviation = _operations(analysis, 80, seed, steady_peaks=(0.3, 1.6))
    proven = proof.prove(steady, deviation)
    peak = _dense_peak(analysis, steady, deviation, tau_end)
    assert np.all(peak[proven] < RAIL)
    # The proof is only useful if it proves most trajectories that stay well inside.
    clear = peak < 0.95 * RAIL
    assert np.mean(proven[clear]) > 0.9


def test_grid_proof_rejects_overshoot_to_rail():
    # Search a deterministic set of operations for trajectories whose steady
    # state lies inside the rails but whose transient reaches a rail.
    analysis = _circuit(6, 5)
    tau_end = 40.0
    steady, deviation = _operations(analysis, 400, 6, steady_peaks=(1.3, 1.49), start_peaks=(1.3, 1.49))
    peak = _dense_peak(analysis, steady, deviation, tau_end)
    overshoot = (peak >= RAIL) & (np.abs(steady).max(axis=0) < RAIL)
    assert overshoot.any()
    proven = GridRailProof(analysis, RAIL, tau_end).prove(steady[:, overshoot], deviation[:, overshoot])
    assert not proven.any()


def test_grid_proof_covers_only_horizon():
    # The output heads for a steady state beyond the rail: a horizon that
    # ends before the crossing is provably inside, a longer one is not.
    analysis = _circuit(4, 7)
    n = analysis.circuit.n_states
    steady = np.zeros((n, 1))
    steady[0] = 1.8
    deviation = -steady
    crossing = np.flatnonzero([_dense_peak(analysis, steady, deviation, tau)[0] >= RAIL
                               for tau in np.arange(0.25, 20.0, 0.25)])
    tau_cross = 0.25 * (crossing[0] + 1)
    assert GridRailProof(analysis, RAIL, 0.2 * tau_cross).prove(steady, deviation)[0]
    assert not GridRailProof(analysis, RAIL, 2.0 * tau_cross).prove(steady, deviation)[0]


def test_grid_proof_rejects_start_at_rail():
    analysis = _circuit(4, 8)
    n = analysis.circuit.n_states
    steady = np.full((n, 1), 0.2)
    start = np.full((n, 1), 0.2)
    start[1] = RAIL
    assert not GridRailProof(analysis, RAIL, 30.0).prove(steady, start - steady)[0]


def test_grid_proof_agrees_with_scan():
    analysis = _circuit(8, 9)
    tau_end = 60.0
    steady, deviation = _operations(analysis, 100, 10, steady_peaks=(0.3, 1.0), start_peaks=(0.3, 1.0))
    _, status = scan_rails(analysis, steady, analysis._eigen[2] @ deviation, RAIL, np.zeros(100), tau_end)
    proven = GridRailProof(analysis, RAIL, tau_end).prove(steady, deviation)
    peak = _dense_peak(analysis, steady, deviation, tau_end)
    touches = peak >= RAIL
    clear = peak < 0.95 * RAIL
    assert touches.any()
    assert clear.any()
    assert np.all(status[touches] == RailScan.MAY_TOUCH)
    assert not proven[touches].any()
    assert np.all(status[clear] != RailScan.MAY_TOUCH)
    assert proven[clear].all()


def test_peak_gain_bounds_row_sums():
    analysis = _circuit(6, 11)
    proof = GridRailProof(analysis, RAIL, 50.0)
    step = scipy.linalg.expm(-analysis.system_matrix * 0.01)
    propagator = np.eye(analysis.circuit.n_states)
    sampled = np.ones(analysis.circuit.n_states)
    for _ in range(10_000):
        propagator = step @ propagator
        sampled = np.maximum(sampled, np.abs(propagator).sum(axis=1))
    assert np.all(proof.peak_gain >= sampled)
    assert np.all(proof.peak_gain <= 1.5 * sampled)


def test_grid_proof_extension_near_rail():
    # A steady state 1 % below the rail needs the deviation to decay far
    # before the tail test passes, beyond the first grid.
    analysis = _circuit(6, 12)
    tau_end = 400.0
    proof = GridRailProof(analysis, RAIL, tau_end)
    steady, deviation = _operations(analysis, 20, 13, steady_peaks=(0.99 * RAIL, 0.99 * RAIL),
                                    start_peaks=(0.5, 0.6))
    proven = proof.prove(steady, deviation)
    peak = _dense_peak(analysis, steady, deviation, 60.0)
    assert np.all(peak[proven] < RAIL)
    assert proven.any()
    assert proof.grid_tau[-1] < tau_end


def test_build_rejects_unstable_circuit():
    matrix = np.array([[0.1, 0.9, 0.2], [0.85, 0.12, 0.25], [0.2, 0.25, 0.7]])
    config = MacroConfig(array=ArrayParams(rows=3, cols=3), nonideal=NonIdealities.ideal())
    g0 = 99e-6 / np.max(np.abs(matrix))
    state = make_switch_state(mode_by_name("INV"), 3, 3, config)
    analysis = CircuitAnalysis(build_circuit(state, 1e-6 + g0 * matrix, None, config))
    assert not analysis.stability.stable
    assert GridRailProof.build(analysis, RAIL, 10.0) is None
    with pytest.raises(ValueError, match="needs a stable circuit"):
        GridRailProof(analysis, RAIL, 10.0)
