"""Model-only solve and multiply API."""

from __future__ import annotations

import numpy as np
import pytest

from amc.model.config import (
    AdcParams,
    ArrayParams,
    DacParams,
    MacroConfig,
    NonIdealities,
    ReadNoise,
)
from amc.model.errors import (
    ArrayCapacityError,
    InvalidOperandError,
    MacroUsageError,
    ModelError,
    SingularMatrixError,
    UnstableCircuitError,
)
from amc.model.macro import AnalogMacro
from amc.model.solve import (
    AUTO_SETTLE_MARGIN,
    RANGE_TARGET,
    ProgrammedSolver,
    check_invertible,
    multiply,
    solve,
    solve_many,
)

ARRAY = ArrayParams(rows=16, cols=16)
IDEAL = MacroConfig(array=ARRAY, nonideal=NonIdealities.ideal())
FINE = IDEAL.replace(dac=DacParams(bits=14), adc=AdcParams(bits=14))
DEFAULT = MacroConfig(array=ARRAY)


def _spd(n=10, seed=1, signed=True):
    rng = np.random.default_rng(seed)
    root = rng.uniform(-1, 1, (n, n)) if signed else rng.uniform(0, 1, (n, n))
    return root @ root.T / n + 0.5 * np.eye(n), rng.uniform(-1, 1, n)


def _relative(actual, expected):
    return np.linalg.norm(actual - expected) / np.linalg.norm(expected)


@pytest.mark.parametrize("signed", [True, False])
def test_solve_accuracy_fine_converters(signed):
    matrix, b = _spd(signed=signed)
    result = solve(matrix, b, FINE)
    assert result.mapping.differential == signed
    assert _relative(result.x, np.linalg.solve(matrix, b)) < 2e-3
    assert not result.clipped
    assert result.stability.stable


def test_solve_accuracy_8bit_converters():
    matrix, b = _spd()
    result = solve(matrix, b, IDEAL)
    assert _relative(result.x, np.linalg.solve(matrix, b)) < 0.05
    assert result.mode == "INV"
    assert result.codes.shape == (10,)


def test_multiply_accuracy():
    rng = np.random.default_rng(2)
    matrix = rng.uniform(-1, 1, (12, 9))
    x = rng.uniform(-1, 1, 9)
    result = multiply(matrix, x, FINE)
    assert _relative(result.x, matrix @ x) < 2e-3
    assert result.mode == "MVM"
    assert result.x.shape == (12,)


def test_transposed_multiply_accuracy():
    rng = np.random.default_rng(3)
    matrix = rng.uniform(-1, 1, (12, 9))
    x = rng.uniform(-1, 1, 12)
    result = multiply(matrix, x, FINE, transpose=True)
    assert _relative(result.x, matrix.T @ x) < 2e-3
    assert result.mode == "MVM_T"
    assert result.x.shape == (9,)


def test_solve_many_matches_single_solves():
    matrix, _ = _spd()
    rhs = np.random.default_rng(4).uniform(-1, 1, (10, 5))
    together = solve_many(matrix, rhs, FINE)
    exact = np.linalg.solve(matrix, rhs)
    assert together.x.shape == (10, 5)
    for k in range(5):
        single = solve(matrix, rhs[:, k], FINE)
        assert _relative(together.x[:, k], exact[:, k]) < 2e-3
        assert np.max(np.abs(together.codes[:, k] - single.codes)) <= 1


def test_programmed_solver_reuses_programming():
    matrix, b = _spd()
    solver = ProgrammedSolver(matrix, IDEAL)
    first = solver.solve(b)
    second = solver.solve(b)
    assert np.array_equal(first.codes, second.codes)
    assert np.allclose(solver.programmed_matrix(), solver.mapping.effective_matrix())
    product = solver.multiply(b)
    assert _relative(product.x, matrix @ b) < 0.05


def test_auto_range_after_overrange():
    matrix, b = _spd()
    result = solve(matrix, b, IDEAL)
    assert result.range_steps >= 1
    assert result.operations >= 2
    assert not np.any(result.adc_overrange)
    peak = np.max(np.abs(result.codes)) * IDEAL.adc.lsb_V
    assert peak > 0.5 * IDEAL.adc.full_scale_V


def test_no_auto_range_reports_clipping():
    matrix, b = _spd()
    result = solve(matrix, b, IDEAL, auto_range=False)
    assert result.operations == 1
    assert result.clipped
    assert np.any(result.adc_overrange)


def test_headroom_avoids_overrange():
    matrix, b = _spd()
    result = solve(matrix, b, IDEAL, headroom=0.05, auto_range=False)
    assert not result.clipped
    assert np.max(np.abs(result.dac_codes)) == round(0.05 * 127)


def test_automatic_settle_time():
    matrix, b = _spd()
    result = solve(matrix, b, IDEAL)
    assert result.settle_time_auto
    assert result.settle_time_s == pytest.approx(AUTO_SETTLE_MARGIN * result.settle.slowest_pole_s, abs=1e-12)
    assert result.operation_time_s == pytest.approx(result.settle_time_s + 10 * IDEAL.adc.conversion_time_s)
    assert result.settle.eps == 2.0 ** -8


def test_short_settle_time_gives_wrong_result():
    matrix, b = _spd()
    exact = np.linalg.solve(matrix, b)
    settled = solve(matrix, b, FINE)
    early = solve(matrix, b, FINE, settle_time_s=0.05 * settled.settle_time_s)
    assert not early.settle_time_auto
    assert _relative(early.x, exact) > 10 * _relative(settled.x, exact)


def test_same_seed_same_result():
    matrix, b = _spd()
    first = solve(matrix, b, DEFAULT.replace(seed=5))
    second = solve(matrix, b, DEFAULT.replace(seed=5))
    other = solve(matrix, b, DEFAULT.replace(seed=6))
    assert np.array_equal(first.codes, second.codes)
    assert np.array_equal(first.x, second.x)
    assert not np.array_equal(first.codes, other.codes)


def test_read_noise_off_repeats():
    matrix, b = _spd()
    quiet = DEFAULT.replace(nonideal=NonIdealities(read_noise=ReadNoise(enabled=False)))
    solver = ProgrammedSolver(matrix, quiet)
    results = [solver.solve(b).codes for _ in range(3)]
    assert np.array_equal(results[1], results[2])
    noisy = ProgrammedSolver(matrix, DEFAULT)
    noisy_results = [noisy.solve(np.tile(b[:, None], 4)).volts for _ in range(2)]
    assert not np.allclose(noisy_results[0], noisy_results[1], atol=1e-6)


def test_nonidealities_described():
    matrix, b = _spd()
    assert solve(matrix, b, IDEAL).nonidealities == "none (ideal devices)"
    assert "read noise" in solve(matrix, b, DEFAULT).nonidealities


def test_singular_matrix_rejected():
    matrix = np.array([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(SingularMatrixError, match="A is singular: smallest singular value"):
        solve(matrix, np.ones(2), IDEAL)
    with pytest.raises(SingularMatrixError, match=r"A \+ d I"):
        check_invertible(matrix)


def test_unstable_matrix_rejected():
    matrix = np.array([[0.1, 0.9, 0.2], [0.85, 0.12, 0.25], [0.2, 0.25, 0.7]])
    with pytest.raises(UnstableCircuitError, match=r"eigenvalue -0\.\d+ of D\^-1 G has a real part <= 0"):
        solve(matrix, np.ones(3), IDEAL)


@pytest.mark.parametrize(
    ("matrix", "vector", "error", "pattern"),
    [
        (np.ones((2, 3)), np.ones(2), InvalidOperandError, r"INV needs a square matrix, got shape 2 x 3"),
        (np.eye(3), np.ones(4), InvalidOperandError, r"has 4 entries along its first axis but the matrix needs 3"),
        (np.eye(3), np.array([1.0, np.nan, 0.0]), InvalidOperandError, r"b contains 1 NaN or Inf"),
        (np.array([[1.0, np.inf], [0.0, 1.0]]), np.ones(2), InvalidOperandError, "NaN or Inf"),
        (np.eye(17), np.ones(17), ArrayCapacityError, r"17 x 17 does not fit one 16 x 16 array"),
        (np.zeros((2, 2)), np.ones(2), InvalidOperandError, "all zeros"),
    ],
)
def test_invalid_solve_inputs(matrix, vector, error, pattern):
    with pytest.raises(error, match=pattern):
        solve(matrix, vector, IDEAL)


def test_errors_are_value_errors():
    assert issubclass(SingularMatrixError, ModelError)
    assert issubclass(ModelError, ValueError)
    assert issubclass(UnstableCircuitError, ValueError)


def test_invalid_options_rejected():
    matrix, b = _spd()
    with pytest.raises(ValueError, match=r"settle_time_s = -1\.0 is invalid"):
        solve(matrix, b, IDEAL, settle_time_s=-1.0)
    with pytest.raises(ValueError, match=r"headroom = 0 is invalid"):
        solve(matrix, b, IDEAL, headroom=0)
    with pytest.raises(InvalidOperandError, match=r"solve_many expects shape \(N, K\)"):
        solve_many(matrix, b, IDEAL)


def test_multiply_length_checked():
    with pytest.raises(InvalidOperandError, match="the matrix needs 3"):
        multiply(np.ones((2, 3)), np.ones(2), IDEAL)
    with pytest.raises(InvalidOperandError, match="the matrix needs 2"):
        multiply(np.ones((2, 3)), np.ones(3), IDEAL, transpose=True)


def test_solver_on_shared_macro():
    matrix, b = _spd()
    macro = AnalogMacro(DEFAULT)
    stuck_before = macro.devices.stuck_map.stuck.copy()
    first = ProgrammedSolver(matrix, macro=macro)
    first.solve(b)
    second = ProgrammedSolver(2 * matrix, macro=macro)
    assert second.macro is macro
    assert np.array_equal(macro.devices.stuck_map.stuck, stuck_before)
    assert macro.programming_count(0) == 2
    assert _relative(second.solve(b).x, np.linalg.solve(2 * matrix, b)) < 0.5
    with pytest.raises(MacroUsageError, match="programmed again after this solver programmed it"):
        first.solve(b)
    with pytest.raises(ValueError, match="config differs from macro.config"):
        ProgrammedSolver(matrix, IDEAL, macro=macro)


def test_predict_ranging_single_operation():
    matrix, _ = _spd()
    rhs = np.random.default_rng(5).uniform(-1, 1, (10, 6))
    predicted = ProgrammedSolver(matrix, IDEAL, ranging="predict").solve(rhs)
    stepped = ProgrammedSolver(matrix, IDEAL).solve(rhs)
    assert predicted.operations == 6
    assert stepped.operations > 6
    assert not predicted.range_steps.any()
    assert not np.any(predicted.adc_overrange)
    # The largest output sits at RANGE_TARGET of full scale, up to DAC quantization.
    peaks = np.max(np.abs(predicted.codes), axis=0) * IDEAL.adc.lsb_V
    assert np.all(np.abs(peaks - RANGE_TARGET * IDEAL.adc.full_scale_V) < 0.03)
    exact = np.linalg.solve(matrix, rhs)
    assert _relative(predicted.x, exact) < 1.5 * _relative(stepped.x, exact) + 0.005


def test_predict_ranging_keeps_dac_limit():
    # x = (1/3, 1/3) keeps every output below the target even at the DAC limit.
    matrix = np.array([[2.0, 1.0], [1.0, 2.0]])
    result = solve(matrix, np.ones(2), IDEAL, ranging="predict")
    assert result.operations == 1
    assert result.input_scale_V == pytest.approx(IDEAL.dac.code_max * IDEAL.dac.lsb_V)
    assert np.max(np.abs(result.dac_codes)) == IDEAL.dac.code_max


def test_predict_ranging_zero_vector():
    matrix, _ = _spd()
    result = solve(matrix, np.zeros(10), IDEAL, ranging="predict")
    assert result.operations == 1
    assert np.array_equal(result.x, np.zeros(10))


def test_predict_ranging_recovers_from_overrange():
    # With 20 % read noise the outputs of the operated circuit miss the
    # noise-free prediction, and some overrange: auto-ranging takes over.
    noisy = IDEAL.replace(nonideal=NonIdealities(read_noise=ReadNoise(enabled=True, sigma_rel=0.2)))
    matrix, _ = _spd()
    rhs = np.random.default_rng(6).uniform(-1, 1, (10, 20))
    result = ProgrammedSolver(matrix, noisy, ranging="predict").solve(rhs)
    assert result.operations > 20
    assert result.range_steps.any()
    assert not result.range_steps.all()
    assert not np.any(result.adc_overrange)


def test_predict_batch_matches_single_solves():
    matrix, _ = _spd()
    rhs = np.random.default_rng(7).uniform(-1, 1, (10, 4))
    together = ProgrammedSolver(matrix, FINE, ranging="predict").solve(rhs)
    for k in range(4):
        single = ProgrammedSolver(matrix, FINE, ranging="predict").solve(rhs[:, k])
        assert together.input_scale_V[k] == pytest.approx(single.input_scale_V)
        assert np.max(np.abs(together.codes[:, k] - single.codes)) <= 1


def test_invalid_ranging_rejected():
    matrix, b = _spd()
    with pytest.raises(ValueError, match=r"ranging = 'auto' is invalid: use one of step, predict"):
        solve(matrix, b, IDEAL, ranging="auto")
