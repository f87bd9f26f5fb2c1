"""Vector encoding and output decoding, checked end to end through the ideal circuit."""

from __future__ import annotations

import numpy as np
import pytest

from amc.model.circuits import build_circuit
from amc.model.config import ArrayParams, DacParams, MacroConfig, NonIdealities, OpAmpParams
from amc.model.encoding import choose_input_scale, decode_output, encode_input, input_sign, validate_vector
from amc.model.errors import InvalidOperandError
from amc.model.macro import make_switch_state
from amc.model.mapping import map_matrix
from amc.model.statespace import CircuitAnalysis
from amc.model.switch_matrix import mode_by_name

# A large gain and a fine DAC make the circuit result equal the ideal one to
# about 1e-4, so the test checks signs and scales, not precision.
CONFIG = MacroConfig(
    array=ArrayParams(rows=6, cols=5),
    opamp=OpAmpParams(open_loop_gain=1e9),
    dac=DacParams(bits=16),
    nonideal=NonIdealities.ideal(),
)


def _circuit_result(matrix, vector, mode_name, differential):
    mapping = map_matrix(matrix, CONFIG, differential=differential)
    mode = mode_by_name(mode_name)
    m, n = mapping.shape
    state = make_switch_state(mode, m, n, CONFIG, signed=mapping.differential)
    g_pos, g_neg = mapping.array_images(CONFIG.array)
    if g_neg is None:
        g_neg = np.full_like(g_pos, CONFIG.array.g_min_S)
    analysis = CircuitAnalysis(build_circuit(state, g_pos, g_neg, CONFIG))
    encoded = encode_input(vector, mode, CONFIG.dac)
    volts = analysis.steady_state(encoded.volts)[: analysis.circuit.n_outputs]
    return decode_output(volts, mode, mapping.g_unit_S, CONFIG.circuit, encoded.scale_V), mapping


@pytest.mark.parametrize("differential", [True, False])
def test_mvm_decodes_product(differential):
    rng = np.random.default_rng(5)
    matrix = rng.uniform(-1, 1, (6, 5)) if differential else rng.uniform(0.1, 1, (6, 5))
    x = rng.uniform(-1, 1, 5)
    result, mapping = _circuit_result(matrix, x, "MVM", differential)
    expected = mapping.effective_matrix() @ x
    assert np.max(np.abs(result - expected)) < 1e-3 * np.max(np.abs(expected))


@pytest.mark.parametrize("differential", [True, False])
def test_mvm_transposed_decodes_product(differential):
    rng = np.random.default_rng(6)
    matrix = rng.uniform(-1, 1, (6, 5)) if differential else rng.uniform(0.1, 1, (6, 5))
    x = rng.uniform(-1, 1, 6)
    result, mapping = _circuit_result(matrix, x, "MVM_T", differential)
    expected = mapping.effective_matrix().T @ x
    assert np.max(np.abs(result - expected)) < 1e-3 * np.max(np.abs(expected))


@pytest.mark.parametrize("differential", [True, False])
def test_inv_decodes_solution(differential):
    rng = np.random.default_rng(7)
    root = rng.uniform(-1, 1, (5, 5)) if differential else rng.uniform(0, 1, (5, 5))
    matrix = root @ root.T + 2 * np.eye(5)
    b = rng.uniform(-1, 1, 5)
    result, mapping = _circuit_result(matrix, b, "INV", differential)
    expected = np.linalg.solve(mapping.effective_matrix(), b)
    assert np.max(np.abs(result - expected)) < 1e-3 * np.max(np.abs(expected))


def test_input_scale_uses_full_code_range():
    dac = DacParams(bits=8, full_scale_V=1.0)
    batch = np.array([[0.5, -4.0], [-2.0, 1.0]])
    scale = choose_input_scale(batch, dac)
    assert np.allclose(scale, [127 / 128 / 2.0, 127 / 128 / 4.0])
    encoded = encode_input(batch, mode_by_name("MVM"), dac)
    assert encoded.codes.tolist() == [[32, -127], [-127, 32]]
    assert not encoded.any_clipped
    assert choose_input_scale(np.zeros(3), dac, headroom=0.5) == pytest.approx(0.5 * 127 / 128)


def test_inv_input_negated():
    dac = DacParams(bits=8)
    assert input_sign(mode_by_name("INV")) == -1.0
    assert input_sign(mode_by_name("MVM")) == 1.0
    encoded = encode_input(np.array([1.0, -0.5]), mode_by_name("INV"), dac)
    assert encoded.codes.tolist() == [-127, 64]


def test_explicit_scale_clips_and_reports():
    encoded = encode_input(np.array([1.0, 0.1]), mode_by_name("MVM"), DacParams(bits=8), scale_V=2.0)
    assert encoded.clipped.tolist() == [True, False]
    assert encoded.codes[0] == 127


def test_invalid_headroom_and_scale():
    with pytest.raises(ValueError, match=r"headroom = 1\.5 is invalid"):
        choose_input_scale(np.ones(2), DacParams(), headroom=1.5)
    with pytest.raises(ValueError, match="input scale"):
        encode_input(np.ones(2), mode_by_name("MVM"), DacParams(), scale_V=-1.0)


@pytest.mark.parametrize(
    ("vector", "pattern"),
    [
        (np.ones(3), r"has 3 entries along its first axis but the matrix needs 4"),
        (np.ones((4, 2, 1)), r"expected shape \(4,\) or \(4, K\)"),
        (np.array([1.0, np.inf, 0.0, 0.0]), r"NaN or Inf"),
        (np.ones((4, 0)), r"at least one column"),
    ],
)
def test_invalid_vectors_rejected(vector, pattern):
    with pytest.raises(InvalidOperandError, match=pattern):
        validate_vector(vector, 4, "b")


def test_batch_rejected_when_not_allowed():
    with pytest.raises(InvalidOperandError, match=r"expected shape \(4,\)$"):
        validate_vector(np.ones((4, 2)), 4, "b", allow_batch=False)
