"""Circuit construction from switch states."""

from __future__ import annotations

import numpy as np
import pytest

from amc.model.circuits import OpAmpRole, build_circuit
from amc.model.config import ArrayParams, CircuitParams, MacroConfig, NonIdealities
from amc.model.errors import CircuitBuildError
from amc.model.macro import make_switch_state
from amc.model.statespace import CircuitAnalysis
from amc.model.switch_matrix import Conn, SwitchState, decode_switch_state, mode_by_name

CONFIG = MacroConfig(array=ArrayParams(rows=4, cols=3), nonideal=NonIdealities.ideal())
RNG = np.random.default_rng(11)
G_POS = RNG.uniform(1e-6, 100e-6, (4, 3))
G_NEG = RNG.uniform(1e-6, 100e-6, (4, 3))


def _state(mode, rows, cols, signed=False, config=CONFIG):
    row_enable = np.zeros(config.array.rows, dtype=bool)
    col_enable = np.zeros(config.array.cols, dtype=bool)
    row_enable[rows] = True
    col_enable[cols] = True
    return SwitchState(mode=mode_by_name(mode), signed=signed, array=0, row_enable=row_enable, col_enable=col_enable)


def test_mvm_weights():
    circuit = build_circuit(_state("MVM", [0, 1, 2, 3], [0, 1, 2]), G_POS, G_NEG, CONFIG)
    g_f = CONFIG.circuit.g_f_S
    total = g_f + G_POS.sum(axis=1)
    assert circuit.n_states == 4
    assert np.allclose(circuit.node_conductance_S, total)
    assert np.allclose(circuit.output_weights, np.diag(g_f / total))
    assert np.allclose(circuit.source_weights, G_POS / total[:, None])
    assert circuit.source_channels.tolist() == [0, 1, 2]
    assert not circuit.closed_loop


def test_transposed_mvm_equals_mvm_of_transpose():
    transposed = build_circuit(_state("MVM_T", [0, 1, 2, 3], [0, 1, 2]), G_POS, G_NEG, CONFIG)
    config_t = MacroConfig(array=ArrayParams(rows=3, cols=4), nonideal=NonIdealities.ideal())
    direct = build_circuit(_state("MVM", [0, 1, 2], [0, 1, 2, 3], config=config_t), G_POS.T, G_NEG.T, config_t)
    assert np.allclose(transposed.output_weights, direct.output_weights)
    assert np.allclose(transposed.source_weights, direct.source_weights)
    assert transposed.sensed_lines.tolist() == [0, 1, 2]
    assert transposed.source_channels.tolist() == [0, 1, 2, 3]


def test_disabled_lines_excluded():
    circuit = build_circuit(_state("MVM", [1, 3], [0, 2]), G_POS, G_NEG, CONFIG)
    block = G_POS[np.ix_([1, 3], [0, 2])]
    total = CONFIG.circuit.g_f_S + block.sum(axis=1)
    assert circuit.sensed_lines.tolist() == [1, 3]
    assert circuit.source_channels.tolist() == [0, 2]
    assert np.allclose(circuit.source_weights, block / total[:, None])


def test_signed_inv_state_layout():
    config = MacroConfig(array=ArrayParams(rows=3, cols=3), circuit=CircuitParams(g_inverter_S=50e-6),
                         nonideal=NonIdealities.ideal())
    g_pos, g_neg = G_POS[:3], G_NEG[:3]
    circuit = build_circuit(make_switch_state(mode_by_name("INV"), 3, 3, config, signed=True), g_pos, g_neg, config)
    assert circuit.n_states == 6
    assert [role for role, _ in circuit.op_amps] == [OpAmpRole.LINE] * 3 + [OpAmpRole.INVERTER] * 3
    total = config.circuit.g_in_S + g_pos.sum(axis=1) + g_neg.sum(axis=1)
    assert np.allclose(circuit.node_conductance_S[:3], total)
    assert np.allclose(circuit.output_weights[:3, :3], g_pos / total[:, None])
    assert np.allclose(circuit.output_weights[:3, 3:], g_neg / total[:, None])
    assert np.allclose(circuit.output_weights[3:, :3], 0.5 * np.eye(3))
    assert np.allclose(circuit.output_weights[3:, 3:], 0.5 * np.eye(3))
    assert np.allclose(circuit.source_weights[:3], np.diag(config.circuit.g_in_S / total))
    assert np.allclose(circuit.cell_matrix_S, g_pos - g_neg)
    assert circuit.closed_loop


def test_signed_mvm_inverters_driven_by_dacs():
    circuit = build_circuit(_state("MVM", [0, 1, 2, 3], [0, 1, 2], signed=True), G_POS, G_NEG, CONFIG)
    assert circuit.n_states == 7
    assert np.allclose(circuit.source_weights[4:], 0.5 * np.eye(3))
    assert np.allclose(circuit.output_weights[4:, :4], 0.0)


def test_inv_requires_same_lines():
    with pytest.raises(CircuitBuildError, match=r"got rows \[0, 1\] and columns \[1, 2\]"):
        build_circuit(_state("INV", [0, 1], [1, 2]), G_POS, G_NEG, CONFIG)


def test_signed_requires_negative_half():
    with pytest.raises(CircuitBuildError, match="negative half-array"):
        build_circuit(_state("MVM", [0], [0], signed=True), G_POS, None, CONFIG)


def test_switch_state_helper_checks_size():
    with pytest.raises(CircuitBuildError, match="do not fit a 4 x 3 array"):
        make_switch_state(mode_by_name("MVM"), 5, 3, CONFIG)
    with pytest.raises(CircuitBuildError, match="array index 4 is out of range"):
        make_switch_state(mode_by_name("MVM"), 1, 1, CONFIG, array=4)


@pytest.mark.parametrize("half_negative", [False, True])
def test_verify_read_of_one_cell(half_negative):
    mode = mode_by_name("VERIFY")
    conn = int(mode.conn) | (int(Conn.HALF_NEG) if half_negative else 0)
    state = decode_switch_state(conn, 0b1, 1 << 2, 1 << 1, 4, 3, 1)
    circuit = build_circuit(state, G_POS, G_NEG, CONFIG)
    g_cell = (G_NEG if half_negative else G_POS)[2, 1]
    g_v = CONFIG.programming.g_verify_S
    assert circuit.sensed_lines.tolist() == [1]
    assert circuit.source_channels.tolist() == [2]
    assert np.allclose(circuit.output_weights, [[g_v / (g_v + g_cell)]])
    assert np.allclose(circuit.source_weights, [[g_cell / (g_v + g_cell)]])

    read_V = CONFIG.programming.read_V
    steady = CircuitAnalysis(circuit).steady_state([read_V])[0]
    gain = CONFIG.opamp.open_loop_gain
    expected = -read_V * g_cell / (g_v + (g_v + g_cell) / gain)
    assert steady == pytest.approx(expected, rel=1e-12)


def test_program_mode_has_no_circuit():
    state = decode_switch_state(int(mode_by_name("PROGRAM").conn), 0b1, 1, 1, 4, 3, 1)
    with pytest.raises(CircuitBuildError, match="exactly one of OPA_SENSE_ROWS and OPA_SENSE_COLS"):
        build_circuit(state, G_POS, G_NEG, CONFIG)
