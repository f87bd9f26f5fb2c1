"""Matrix to conductance mapping."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from amc.model.config import ArrayParams, MacroConfig, NonIdealities
from amc.model.errors import ArrayCapacityError, InvalidOperandError
from amc.model.mapping import effective_matrix, line_masks, map_matrix, pad_to_array, quantize_conductance

CONFIG = MacroConfig(array=ArrayParams(rows=8, cols=6), nonideal=NonIdealities.ideal())
QUANTIZED = CONFIG.replace(nonideal=dataclasses.replace(NonIdealities.ideal(), quantize_levels=True))


@pytest.fixture
def signed_matrix():
    return np.random.default_rng(3).uniform(-2.0, 3.0, size=(5, 4))


@pytest.fixture
def positive_matrix():
    values = np.random.default_rng(4).uniform(0.0, 5.0, size=(6, 6))
    values[0, 0] = 0.0
    values[1, 2] = 0.01
    return values


def test_signed_round_trip_exact(signed_matrix):
    mapping = map_matrix(signed_matrix, CONFIG)
    array = CONFIG.array
    assert mapping.differential
    assert mapping.g_unit_S == pytest.approx((array.g_max_S - array.g_min_S) / np.max(np.abs(signed_matrix)))
    assert np.allclose(mapping.g_pos_S - mapping.g_neg_S, mapping.g_unit_S * signed_matrix, rtol=0, atol=1e-18)
    assert np.allclose(mapping.effective_matrix(), signed_matrix, rtol=1e-12, atol=1e-12)
    assert mapping.matrix_error_max < 1e-12
    assert mapping.clamped_cells == 0
    assert not mapping.quantized


def test_signed_halves_inside_window(signed_matrix):
    mapping = map_matrix(signed_matrix, CONFIG)
    array = CONFIG.array
    for half in (mapping.g_pos_S, mapping.g_neg_S):
        assert half.min() >= array.g_min_S
        assert half.max() <= array.g_max_S * (1 + 1e-12)
    assert np.all((mapping.g_pos_S == array.g_min_S) | (mapping.g_neg_S == array.g_min_S))


def test_signed_quantized_on_levels(signed_matrix):
    mapping = map_matrix(signed_matrix, QUANTIZED)
    array = QUANTIZED.array
    step = array.level_step_S
    for half in (mapping.g_pos_S, mapping.g_neg_S):
        index = (half - array.g_min_S) / step
        assert np.allclose(index, np.rint(index), atol=1e-9)
    assert mapping.quantized
    assert mapping.quantization_error_max_S <= step / 2 * (1 + 1e-9)
    assert 0 < mapping.quantization_error_rms_S <= mapping.quantization_error_max_S
    assert mapping.matrix_error_max <= step / 2 / mapping.g_unit_S * (1 + 1e-9)
    assert mapping.matrix_error_max == pytest.approx(np.max(np.abs(mapping.effective_matrix() - signed_matrix)))


def test_unsigned_round_trip_with_clamping(positive_matrix):
    mapping = map_matrix(positive_matrix, CONFIG, differential=False)
    array = CONFIG.array
    g0 = array.g_max_S / positive_matrix.max()
    below = g0 * positive_matrix < array.g_min_S
    assert not mapping.differential
    assert mapping.g_neg_S is None
    assert mapping.g_unit_S == pytest.approx(g0)
    assert mapping.clamped_cells == int(below.sum()) == 2
    assert np.all(mapping.g_pos_S[below] == array.g_min_S)
    effective = mapping.effective_matrix()
    assert np.allclose(effective[~below], positive_matrix[~below], rtol=1e-12)
    assert np.allclose(effective[below], array.g_min_S / g0)
    assert mapping.matrix_error_max == pytest.approx(array.g_min_S / g0)


def test_unsigned_quantized(positive_matrix):
    mapping = map_matrix(positive_matrix, QUANTIZED, differential=False)
    array = QUANTIZED.array
    index = (mapping.g_pos_S - array.g_min_S) / array.level_step_S
    assert np.allclose(index, np.rint(index), atol=1e-9)
    assert mapping.g_pos_S.max() == pytest.approx(array.g_max_S)
    assert mapping.quantization_error_max_S <= array.level_step_S / 2 * (1 + 1e-9)


def test_auto_mode_selection(signed_matrix, positive_matrix):
    assert map_matrix(signed_matrix, CONFIG).differential
    assert not map_matrix(positive_matrix, CONFIG).differential
    assert map_matrix(positive_matrix, CONFIG, differential=True).differential


def test_unsigned_rejects_negative(signed_matrix):
    with pytest.raises(InvalidOperandError, match="use differential=True or differential=None"):
        map_matrix(signed_matrix, CONFIG, differential=False)


def test_matrix_too_large():
    with pytest.raises(ArrayCapacityError) as error:
        map_matrix(np.ones((9, 3)), CONFIG)
    message = str(error.value)
    assert "9 x 3" in message
    assert "8 x 6" in message
    assert "block solving over several arrays is not supported yet" in message


@pytest.mark.parametrize(
    ("matrix", "pattern"),
    [
        (np.ones(4), r"must be a 2-D matrix, got an array with ndim=1"),
        (np.ones((2, 2, 2)), r"ndim=3"),
        (np.zeros((3, 3)), r"is all zeros"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), r"1 NaN or Inf entries \(first at index \(0, 1\)"),
        (np.array([[np.inf]]), r"NaN or Inf"),
        (np.zeros((0, 3)), r"is empty"),
        ([["a"]], r"real numeric matrix"),
    ],
)
def test_invalid_matrices_rejected(matrix, pattern):
    with pytest.raises(InvalidOperandError, match=pattern):
        map_matrix(matrix, CONFIG)


def test_array_images_padded(signed_matrix):
    mapping = map_matrix(signed_matrix, CONFIG)
    g_pos, g_neg = mapping.array_images(CONFIG.array)
    assert g_pos.shape == g_neg.shape == (8, 6)
    assert np.array_equal(g_pos[:5, :4], mapping.g_pos_S)
    assert np.all(g_pos[5:, :] == CONFIG.array.g_min_S)
    assert np.all(g_neg[:, 4:] == CONFIG.array.g_min_S)
    unsigned = map_matrix(np.abs(signed_matrix), CONFIG, differential=False)
    assert unsigned.array_images(CONFIG.array)[1] is None


def test_mapping_arrays_read_only(signed_matrix):
    mapping = map_matrix(signed_matrix, CONFIG)
    with pytest.raises(ValueError):
        mapping.g_pos_S[0, 0] = 0.0


def test_helpers():
    array = ArrayParams(rows=4, cols=4, g_min_S=1e-6, g_max_S=16e-6, levels=16)
    assert np.allclose(quantize_conductance([0.0, 1.4e-6, 1.6e-6, 20e-6], array), [1e-6, 1e-6, 2e-6, 16e-6])
    assert np.allclose(effective_matrix([[3e-6]], [[1e-6]], 1e-6), [[2.0]])
    rows, cols = line_masks((2, 3), array)
    assert rows.tolist() == [True, True, False, False]
    assert cols.tolist() == [True, True, True, False]
    with pytest.raises(ArrayCapacityError):
        pad_to_array(np.ones((5, 1)), array)
