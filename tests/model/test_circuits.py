"""Circuit construction from switch states."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from amc.model.circuits import OpAmpRole, build_circuit, circuit_topology
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


WIDE = MacroConfig(array=ArrayParams(rows=7, cols=7), nonideal=NonIdealities.ideal())


@pytest.mark.parametrize("mode", ["MVM", "MVM_T", "INV"])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("lines", [[0, 1, 2, 3, 4], [1, 2, 4, 6, 0]], ids=["consecutive", "gapped"])
def test_line_conductance_equals_build_circuit(mode, signed, lines):
    # Three image pairs stacked as three operations; each must give the line
    # rows of its own build_circuit to the last bit.
    rng = np.random.default_rng(5)
    images = rng.uniform(1e-6, 100e-6, (3, 2, 7, 7))
    rows = sorted(lines)
    cols = rows if mode == "INV" else sorted(lines[:4])
    state = _state(mode, rows, cols, signed=signed, config=WIDE)
    topology = circuit_topology(state, WIDE)
    block = (slice(None),) + topology.block_index
    positive = topology.cells_from_block(images[:, 0][block])
    negative = topology.cells_from_block(images[:, 1][block])
    conductance = topology.line_conductance(positive, negative)
    totals = conductance.sum(axis=-1)
    weights = conductance / totals[..., None]
    for k in range(3):
        circuit = build_circuit(state, images[k, 0], images[k, 1], WIDE)
        n_out, n_states = circuit.n_outputs, circuit.n_states
        assert weights[k, :, :n_states].tobytes() == circuit.output_weights[:n_out].tobytes()
        assert weights[k, :, n_states:].tobytes() == circuit.source_weights[:n_out].tobytes()
        assert totals[k].tobytes() == circuit.node_conductance_S[:n_out].tobytes()


def test_line_conductance_fills_out():
    state = _state("INV", [0, 1, 2], [0, 1, 2], signed=True)
    topology = circuit_topology(state, CONFIG)
    cells = topology.cells_from_block(G_POS[topology.block_index])
    expected = topology.line_conductance(cells, cells)
    out = np.full((3, 9), np.nan)
    assert topology.line_conductance(cells, cells, out=out) is out
    assert np.array_equal(out, expected)
    with pytest.raises(ValueError, match="out has shape"):
        topology.line_conductance(cells, cells, out=np.zeros((3, 8)))


def test_line_conductance_rejects_empty_node():
    # Every mode of the table closes G_f or G_in, so drop the feedback to
    # leave a summing node with zero cells and nothing else.
    topology = circuit_topology(_state("MVM", [0, 1], [0, 1, 2]), CONFIG)
    bare = dataclasses.replace(topology, feedback_S=None)
    cells = np.array([[1e-6, 2e-6, 3e-6], [0.0, 0.0, 0.0]])
    with pytest.raises(CircuitBuildError, match="summing node of op-amp 1 has no conductance"):
        bare.line_conductance(cells, None)
    assert bare.line_conductance(cells, None, check=False)[1].sum() == 0.0


def test_topology_cached_per_state():
    state = _state("INV", [0, 1, 2], [0, 1, 2], signed=True)
    first = circuit_topology(state, CONFIG)
    assert circuit_topology(_state("INV", [0, 1, 2], [0, 1, 2], signed=True), CONFIG) is first
    assert circuit_topology(_state("INV", [0, 1, 2], [0, 1, 2], signed=False), CONFIG) is not first
    other = CONFIG.replace(circuit=CircuitParams(g_in_S=50e-6))
    assert circuit_topology(state, other).g_in_S == 50e-6


def test_circuits_of_one_state_share_nothing_writable():
    state = _state("INV", [0, 1, 2], [0, 1, 2], signed=True)
    first = build_circuit(state, G_POS, G_NEG, CONFIG)
    second = build_circuit(state, 2 * G_POS, G_NEG, CONFIG)
    assert not np.array_equal(first.output_weights, second.output_weights)
    for array in (first.sensed_lines, first.output_weights, first.cell_matrix_S):
        assert not array.flags.writeable
