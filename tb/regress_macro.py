"""cocotb regression of the controller with the analog model answering: every mode, end to end.

Each test runs operations through the register bus and checks the decoded
results against numpy with a tolerance derived from the converter
resolution. The macro runs with ideal devices and the matrices go in through
the model's programming backdoor, because these tests measure the converters'
error alone; write-verify programming has its own regression
(regress_write_verify.py), and non-ideal runs are covered by the model tests
and the cross-backend test.
"""

from __future__ import annotations

import dataclasses
import json
import os

import cocotb
import numpy as np

from ..model.config import MacroConfig
from ..model.encoding import output_gain
from ..model.macro import AnalogMacro
from ..model.switch_matrix import mode_by_name
from ..problems import ridge_diabetes
from ..rtl.regmap import ErrorBit
from .cocotb_env import AmcTestbench, params_from_env
from .errors import AdcClipError
from .matrix_ops import MatrixOperations

CODES_ENV = "AMC_CODES_PATH"
"""Where `cross_backend_codes` writes the ADC codes it read (JSON)."""


def _ideal_testbench(dut):
    params = params_from_env()
    params = dataclasses.replace(params, macro=params.macro.ideal())
    return AmcTestbench(dut, params, macro=AnalogMacro(params.macro))


def _allowed_error(result, matrix: np.ndarray, config: MacroConfig) -> np.ndarray:
    """Per-output tolerance of a product: half a DAC step on every input, through |A|, plus two ADC steps."""
    input_step = config.dac.lsb_V / result.input_scale_V
    gain = abs(float(output_gain(mode_by_name(result.mode), result.mapping.g_unit_S, config.circuit,
                                 result.input_scale_V)))
    return np.abs(matrix) @ np.full(matrix.shape[1], 0.5 * input_step) + 2.0 * config.adc.lsb_V / gain


def _random_signed(rng, m, n):
    return rng.uniform(-1.0, 1.0, size=(m, n))


def _random_stable_signed(rng, n):
    """A signed, diagonally dominant matrix: every D^-1 G eigenvalue has a positive real part."""
    matrix = rng.uniform(-0.4, 0.4, size=(n, n))
    matrix[np.diag_indices(n)] = np.abs(matrix).sum(axis=1) + rng.uniform(0.5, 1.0, size=n)
    return matrix


@cocotb.test()
async def mvm_random(dut):
    """MVM and MVM_T of random signed matrices match numpy within the converter resolution."""
    tb = _ideal_testbench(dut)
    driver = await tb.start()
    ops = MatrixOperations(driver, tb.macro.program_backdoor)
    rng = np.random.default_rng(11)
    for array, (m, n) in enumerate([(5, 7), (12, 3), (16, 16)]):
        matrix = _random_signed(rng, m, n)
        await ops.program(array, matrix, method="backdoor")
        for transpose in (False, True):
            x = rng.uniform(-1, 1, size=m if transpose else n)
            result = await ops.multiply(array, x, transpose=transpose)
            used = matrix.T if transpose else matrix
            expected = used @ x
            error = np.abs(result.values - expected)
            allowed = _allowed_error(result, used, tb.params.macro)
            tb.log.info("%s %dx%d: max error %.3g (allowed %.3g), %d run(s)", result.mode, m, n, error.max(),
                        allowed.max(), len(result.runs))
            assert np.all(error <= allowed), f"{result.mode} {m}x{n}: errors {error} exceed {allowed}"
            assert not result.clipped


@cocotb.test()
async def mvm_real(dut):
    """MVM and MVM_T on real data: ridge predictions X w and the gradient X^T r of the diabetes data."""
    from sklearn.datasets import load_diabetes

    tb = _ideal_testbench(dut)
    driver = await tb.start()
    ops = MatrixOperations(driver, tb.macro.program_backdoor)
    features, target = load_diabetes(return_X_y=True)
    rows = min(tb.params.rows, features.shape[0])
    matrix = features[:rows]
    problem = ridge_diabetes()
    weights = np.linalg.solve(problem.matrix, problem.rhs)
    residual = target[:rows] - target.mean() - matrix @ weights
    await ops.program(3, matrix, method="backdoor")
    for transpose, vector in ((False, weights), (True, residual)):
        result = await ops.multiply(3, vector, transpose=transpose)
        used = matrix.T if transpose else matrix
        expected = used @ vector
        error = np.abs(result.values - expected)
        allowed = _allowed_error(result, used, tb.params.macro)
        tb.log.info("%s on diabetes %dx%d: max error %.3g (allowed %.3g)", result.mode, *matrix.shape,
                    error.max(), allowed.max())
        assert result.mapping.differential
        assert np.all(error <= allowed), f"{result.mode}: errors {error} exceed {allowed}"


@cocotb.test()
async def inv_random(dut):
    """INV of random signed, diagonally dominant matrices matches numpy.linalg.solve."""
    tb = _ideal_testbench(dut)
    driver = await tb.start()
    ops = MatrixOperations(driver, tb.macro.program_backdoor)
    rng = np.random.default_rng(12)
    for array, n in enumerate([3, 8, 16]):
        matrix = _random_stable_signed(rng, n)
        b = rng.uniform(-1, 1, size=n)
        await ops.program(array, matrix, method="backdoor")
        result = await ops.solve(array, b)
        expected = np.linalg.solve(matrix, b)
        error = np.linalg.norm(result.values - expected) / np.linalg.norm(expected)
        tb.log.info("INV %dx%d: relative error %.3g, settle %d cycles", n, n, error, result.settle_cycles)
        assert error < 0.05, f"INV {n}x{n}: relative error {error:.3g}"
        assert not result.clipped


@cocotb.test()
async def inv_ridge_regression(dut):
    """INV of the diabetes ridge normal equations (signed, real data) reaches the converter-limited error."""
    tb = _ideal_testbench(dut)
    driver = await tb.start()
    ops = MatrixOperations(driver, tb.macro.program_backdoor)
    problem = ridge_diabetes()
    await ops.program(0, problem.matrix, method="backdoor")
    result = await ops.solve(0, problem.rhs)
    expected = np.linalg.solve(problem.matrix, problem.rhs)
    error = np.linalg.norm(result.values - expected) / np.linalg.norm(expected)
    tb.log.info("ridge INV: relative error %.3g", error)
    # An 8-bit DAC alone limits this condition-38 system to about 3.3 %.
    assert error < 0.06, f"relative error {error:.3g}"
    assert result.mapping.differential


@cocotb.test()
async def early_sampling(dut):
    """A one-cycle settle time, far below the settling estimate, gives a visibly wrong INV result; the
    driver's settling check (a second run with a longer settle time) detects it."""
    tb = _ideal_testbench(dut)
    driver = await tb.start()
    ops = MatrixOperations(driver, tb.macro.program_backdoor)
    problem = ridge_diabetes()
    await ops.program(0, problem.matrix, method="backdoor")
    expected = np.linalg.solve(problem.matrix, problem.rhs)

    good = await ops.solve(0, problem.rhs)
    early = await ops.solve(0, -problem.rhs, settle_cycles=1)
    early_error = np.linalg.norm(early.values + expected) / np.linalg.norm(expected)
    good_error = np.linalg.norm(good.values - expected) / np.linalg.norm(expected)
    tb.log.info("settle %d cycles: error %.3g; %d cycles: error %.3g", good.settle_cycles, good_error,
                early.settle_cycles, early_error)
    assert early_error > 3 * good_error
    assert early_error > 0.1

    check = await ops.check_settling(0, -problem.rhs, settle_cycles=early.settle_cycles)
    assert not check.settled, "the settling check did not detect the early sample"
    check = await ops.check_settling(0, problem.rhs, settle_cycles=good.settle_cycles)
    assert check.settled, f"the settling check flagged a settled result (max difference {check.max_code_change})"


@cocotb.test()
async def adc_clipping(dut):
    """An input scale that drives the outputs beyond the ADC range sets ADC_CLIP; auto-ranging recovers."""
    tb = _ideal_testbench(dut)
    driver = await tb.start()
    ops = MatrixOperations(driver, tb.macro.program_backdoor)
    matrix = np.diag([1.0, 0.05, 0.5])
    b = np.array([0.05, 1.0, 0.2])
    await ops.program(1, matrix, method="backdoor")
    try:
        await ops.solve(1, b, auto_range=False)
    except AdcClipError:
        raise AssertionError("MatrixOperations must report clipping in the result, not raise")
    clipped = await ops.solve(1, b, auto_range=False)
    assert clipped.clipped
    assert ErrorBit.ADC_CLIP in clipped.runs[-1].errors
    assert clipped.runs[-1].clip_count >= 1
    ranged = await ops.solve(1, b)
    assert not ranged.clipped
    assert len(ranged.runs) >= 2
    expected = np.linalg.solve(matrix, b)
    assert np.max(np.abs(ranged.values - expected)) <= 0.05 * np.max(np.abs(expected))


async def cross_backend_job(driver, macro, seed: int) -> list[list[int]]:
    """Solve and multiply with one signed matrix; return the ADC codes of every run.

    Every backend runs this job for the cross-backend test. The matrix goes in
    through the backdoor because write-verify has its own agreement test.
    """
    ops = MatrixOperations(driver, macro.program_backdoor)
    rng = np.random.default_rng(seed)
    matrix = _random_stable_signed(rng, 6)
    await ops.program(2, matrix, method="backdoor")
    codes = []
    result = await ops.solve(2, rng.uniform(-1, 1, size=6))
    codes.extend(run.codes.tolist() for run in result.runs)
    result = await ops.multiply(2, rng.uniform(-1, 1, size=6), transpose=True)
    codes.extend(run.codes.tolist() for run in result.runs)
    return codes


@cocotb.test()
async def cross_backend_codes(dut):
    """Record the ADC codes of `cross_backend_job` with default non-idealities."""
    params = params_from_env()
    tb = AmcTestbench(dut, params)
    driver = await tb.start()
    codes = await cross_backend_job(driver, tb.macro, params.macro.seed)
    with open(os.environ[CODES_ENV], "w") as handle:
        json.dump(codes, handle)
