"""Model-only write-verify programming: convergence, failures, regions, determinism, solver option."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from amc.model.config import (
    ArrayParams,
    CellParams,
    MacroConfig,
    NonIdealities,
    ProgrammingError,
    ReadNoise,
    StuckCells,
)
from amc.model.devices import NEGATIVE, POSITIVE
from amc.model.encoding import decode_output
from amc.model.errors import MacroUsageError
from amc.model.macro import AnalogMacro
from amc.model.mapping import map_matrix
from amc.model.programming import (
    VerifySchedule,
    program_conductances,
    program_matrix,
    target_codes,
    verify_read_code,
    verify_read_voltage,
    write_verify_settings,
)
from amc.model.programming_report import write_programming_report
from amc.model.solve import ProgrammedSolver, solve
from amc.model.switch_matrix import mode_by_name

DEFAULT = MacroConfig(seed=1)
SMALL = MacroConfig(array=ArrayParams(rows=8, cols=8, n_arrays=2), seed=2)


def _random_levels(config: MacroConfig, seed: int, shape=None) -> np.ndarray:
    array = config.array
    shape = (array.rows, array.cols) if shape is None else shape
    rng = np.random.default_rng(seed)
    return array.g_min_S + array.level_step_S * rng.integers(0, array.levels, shape)


def _spd(n: int, seed: int):
    rng = np.random.default_rng(seed)
    root = rng.uniform(-1, 1, (n, n))
    return root @ root.T / n + 0.5 * np.eye(n), rng.uniform(-1, 1, (n, 4))


def test_verify_code_formula():
    config = DEFAULT
    assert verify_read_code(config) == -26
    assert verify_read_voltage(config) == pytest.approx(-26 / 128)
    codes = target_codes([config.array.g_min_S, config.array.g_max_S], config)
    # -read_V * G / g_verify_S in ADC LSBs of 1/128 V: 1.18 and 118.2.
    assert codes.tolist() == [1, 118]


def test_settings_from_programming_params():
    settings = write_verify_settings(DEFAULT)
    assert (settings.set_start, settings.set_step) == (70, 2)
    assert (settings.reset_start, settings.reset_step) == (70, 2)
    assert (settings.tolerance, settings.max_pulses, settings.amplitude_max) == (1, 40, 255)
    assert write_verify_settings(DEFAULT, tolerance=0, max_pulses=7).max_pulses == 7


def test_random_targets_converge():
    macro = AnalogMacro(DEFAULT)
    targets = _random_levels(DEFAULT, 10)
    stats = program_conductances(macro, 0, targets)
    stuck = macro.devices.stuck_map.stuck[0, POSITIVE]
    free = ~stuck

    assert stats.cell_count == 1024
    failed = {(row, col) for _, row, col in stats.failed_cells}
    assert failed <= {tuple(cell) for cell in np.argwhere(stuck)}
    assert 3.0 <= stats.mean_pulses <= 15.0
    assert stats.max_pulses < DEFAULT.programming.max_pulses
    assert np.all(np.abs(stats.final_codes[0][free] - stats.target_codes[0][free]) <= 1)
    error = stats.error_S[0][free]
    assert np.sqrt(np.mean(error ** 2)) < 1.0e-6
    assert np.max(np.abs(error)) < 4e-6
    assert np.array_equal(macro.conductances(0)[POSITIVE], stats.achieved_S[0])
    assert stats.reads == stats.total_pulses + 1024
    assert stats.pulse_histogram().sum() == 1024


def test_stuck_cells_fail_after_max_pulses():
    config = SMALL.replace(nonideal=NonIdealities(stuck=StuckCells(enabled=True, fraction=0.2, on_fraction=0.0)))
    macro = AnalogMacro(config)
    stuck = macro.devices.stuck_map.stuck[0, POSITIVE]
    assert stuck.any()
    # Level 2 of 16 (about 14 uS) takes free cells 2 to 6 pulses.
    targets = np.full((8, 8), config.array.g_min_S + 2 * config.array.level_step_S)
    settings = write_verify_settings(config, max_pulses=12)
    stats = program_conductances(macro, 0, targets, settings=settings)

    assert sorted((row, col) for _, row, col in stats.failed_cells) == sorted(map(tuple, np.argwhere(stuck)))
    assert np.all(stats.pulses[0][stuck] == 12)
    assert np.all(macro.conductances(0)[POSITIVE][stuck] == config.array.g_min_S)
    for cell in stats.results[0].cells:
        if stuck[cell.row, cell.col]:
            assert len(cell.codes) == 13
            assert not cell.passed


def test_stuck_cell_at_its_target_passes():
    config = SMALL.replace(nonideal=NonIdealities(stuck=StuckCells(enabled=True, fraction=1.0, on_fraction=1.0)))
    stats = program_conductances(AnalogMacro(config), 0, np.full((8, 8), config.array.g_max_S))
    assert stats.failure_rate == 0.0
    assert stats.total_pulses == 0


def test_exact_target_needs_no_pulse():
    quiet = SMALL.replace(nonideal=NonIdealities(read_noise=ReadNoise(enabled=False), stuck=StuckCells(enabled=False)))
    stats = program_conductances(AnalogMacro(quiet), 0, np.full((8, 8), quiet.array.g_min_S),
                                 settings=write_verify_settings(quiet, tolerance=0))
    assert stats.total_pulses == 0
    assert stats.failure_rate == 0.0
    assert np.array_equal(stats.final_codes, stats.target_codes)


def test_zero_tolerance_hits_code_exactly():
    macro = AnalogMacro(SMALL)
    stats = program_conductances(macro, 0, _random_levels(SMALL, 11),
                                 settings=write_verify_settings(SMALL, tolerance=0))
    passed = stats.passed
    assert passed.mean() > 0.9
    assert np.array_equal(stats.final_codes[passed], stats.target_codes[passed])
    looser = program_conductances(AnalogMacro(SMALL), 0, _random_levels(SMALL, 11))
    assert stats.mean_pulses > looser.mean_pulses


def test_region_leaves_rest_unchanged():
    macro = AnalogMacro(SMALL)
    macro.program_backdoor(1, _random_levels(SMALL, 12), _random_levels(SMALL, 13))
    before = [macro.conductances(array) for array in range(2)]
    stats = program_conductances(macro, 1, _random_levels(SMALL, 14), rows=range(2, 5), cols=range(3, 7))
    after = [macro.conductances(array) for array in range(2)]

    assert stats.pulses.shape == (1, 3, 4)
    inside = np.zeros((8, 8), dtype=bool)
    inside[2:5, 3:7] = True
    assert np.array_equal(after[1][POSITIVE][~inside], before[1][POSITIVE][~inside])
    assert not np.array_equal(after[1][POSITIVE][inside], before[1][POSITIVE][inside])
    assert np.array_equal(after[1][NEGATIVE], before[1][NEGATIVE])
    assert np.array_equal(after[0][POSITIVE], before[0][POSITIVE])
    assert np.array_equal(after[0][NEGATIVE], before[0][NEGATIVE])


def test_reprogramming_moves_cells_both_ways():
    macro = AnalogMacro(SMALL)
    first_targets = _random_levels(SMALL, 15)
    second_targets = _random_levels(SMALL, 16)
    program_conductances(macro, 0, first_targets)
    second = program_conductances(macro, 0, second_targets)
    lowered = second_targets < first_targets
    assert lowered.any()
    assert second.failure_rate <= 1 / 64
    codes = target_codes(macro.conductances(0)[POSITIVE], SMALL)
    assert np.mean(np.abs(codes - target_codes(second_targets, SMALL)) <= 2) > 0.95
    went_down = [cell for cell in second.results[0].cells if lowered[cell.row, cell.col]]
    assert all(cell.codes[-1] < cell.codes[0] for cell in went_down if cell.passed)


def test_differential_mapping_programs_both_halves():
    matrix = np.array([[0.5, -1.0, 0.0], [1.0, 0.25, -0.75]])
    mapping = map_matrix(matrix, SMALL, differential=True)
    macro = AnalogMacro(SMALL)
    stats = program_matrix(macro, 1, mapping)
    assert stats.halves == (POSITIVE, NEGATIVE)
    assert stats.pulses.shape == (2, 2, 3)
    assert np.array_equal(stats.target_S[1], mapping.g_neg_S)
    # Cells at g_min (zeros of one half) start there and need no pulse.
    at_minimum = np.isclose(np.array([mapping.g_pos_S, mapping.g_neg_S]), SMALL.array.g_min_S)
    assert np.all(stats.pulses[at_minimum & stats.passed] == 0)


def test_same_seed_same_programming():
    runs = []
    for seed in (4, 4, 5):
        config = SMALL.replace(seed=seed)
        macro = AnalogMacro(config)
        stats = program_conductances(macro, 0, _random_levels(config, 17))
        runs.append((stats.pulses, [cell.codes for cell in stats.results[0].cells], macro.conductances(0)[POSITIVE]))
    same, other = runs[1], runs[2]
    assert np.array_equal(runs[0][0], same[0])
    assert runs[0][1] == same[1]
    assert np.array_equal(runs[0][2], same[2])
    assert not np.array_equal(runs[0][2], other[2])
    assert runs[0][1] != other[1]


def test_programming_rejects_invalid_input():
    macro = AnalogMacro(SMALL)
    targets = np.full((8, 8), 50e-6)
    with pytest.raises(MacroUsageError, match="rows = range\\(0, 9\\) lies outside"):
        program_conductances(macro, 0, targets, rows=range(9))
    with pytest.raises(MacroUsageError, match="non-empty range with step 1"):
        program_conductances(macro, 0, targets, cols=range(0, 8, 2))
    with pytest.raises(MacroUsageError, match="array index 2 is invalid"):
        program_conductances(macro, 2, targets)
    with pytest.raises(MacroUsageError, match="outside the window"):
        program_conductances(macro, 0, np.full((8, 8), 200e-6))
    with pytest.raises(ValueError, match="VerifySchedule.pulse_width_ps = 0 is invalid"):
        VerifySchedule(sample_offset_ps=1000, conversion_ps=100, pulse_width_ps=0, read_code=-26)


def test_solver_programs_with_write_verify_by_default():
    matrix, rhs = _spd(6, 3)
    solver = ProgrammedSolver(matrix, SMALL)
    result = solver.solve(rhs)
    assert solver.programming == "write-verify"
    assert result.programming is solver.programming_stats
    assert result.programming.halves == (POSITIVE, NEGATIVE)
    assert result.programming.cell_count == 72
    achieved = solver.macro.conductances(0)
    expected = (achieved[POSITIVE][:6, :6] - achieved[NEGATIVE][:6, :6]) / solver.mapping.g_unit_S
    assert np.array_equal(solver.programmed_matrix(), expected)
    assert solver.macro.programming_count(0) == 1


def test_solver_programming_option():
    matrix, rhs = _spd(4, 5)
    ideal = ProgrammedSolver(matrix, SMALL.ideal())
    assert ideal.programming == "backdoor"
    assert ideal.programming_stats is None
    assert np.allclose(ideal.programmed_matrix(), ideal.mapping.effective_matrix())
    backdoor = solve(matrix, rhs, SMALL, programming="backdoor")
    assert backdoor.programming is None
    forced = ProgrammedSolver(matrix, SMALL.ideal(), programming="write-verify")
    assert forced.programming_stats.total_pulses > 0
    with pytest.raises(ValueError, match="programming = 'pulses' is invalid: use one of auto, write-verify"):
        ProgrammedSolver(matrix, SMALL, programming="pulses")


def test_solution_error_grows_with_tolerance():
    # Settled outputs (before the ADC) and the solution of the level-quantized
    # matrix leave out the output and level quantization. The DAC
    # quantization of b is the same in every run.
    matrix, rhs = _spd(8, 7)
    config = MacroConfig(array=ArrayParams(rows=8, cols=8, n_arrays=1), seed=6,
                         nonideal=NonIdealities(stuck=StuckCells(enabled=False)))
    exact = np.linalg.solve(map_matrix(matrix, config).effective_matrix(), rhs)
    errors = []
    for tolerance in (0, 3, 10):
        solver = ProgrammedSolver(matrix, config, programming_settings=write_verify_settings(config,
                                                                                              tolerance=tolerance))
        result = solver.solve(rhs)
        settled = decode_output(result.steady_state_V, mode_by_name("INV"), solver.mapping.g_unit_S, config.circuit,
                                result.input_scale_V)
        errors.append(np.linalg.norm(settled - exact) / np.linalg.norm(exact))
    assert errors[0] < errors[1] < errors[2]
    assert errors[2] > 3 * errors[0]


def test_gaussian_error_only_on_backdoor():
    matrix, _ = _spd(4, 8)
    wide = SMALL.replace(nonideal=NonIdealities(programming=ProgrammingError(sigma_rel=0.2),
                                                stuck=StuckCells(enabled=False)))
    narrow = SMALL.replace(nonideal=NonIdealities(programming=ProgrammingError(sigma_rel=0.01),
                                                  stuck=StuckCells(enabled=False)))
    verified = [ProgrammedSolver(matrix, config).programmed_matrix() for config in (wide, narrow)]
    assert np.array_equal(verified[0], verified[1])
    backdoor = [ProgrammedSolver(matrix, config, programming="backdoor").programmed_matrix()
                for config in (wide, narrow)]
    assert not np.array_equal(backdoor[0], backdoor[1])


def test_wider_cycle_spread_needs_more_pulses():
    counts = []
    for sigma in (0.05, 0.6):
        config = SMALL.replace(cell=dataclasses.replace(CellParams(), cycle_sigma_rel=sigma))
        counts.append(program_conductances(AnalogMacro(config), 0, _random_levels(config, 18)).mean_pulses)
    assert counts[1] > counts[0]


def test_programming_report_png(tmp_path):
    config = SMALL.replace(nonideal=NonIdealities(stuck=StuckCells(enabled=True, fraction=0.1)))
    stats = program_conductances(AnalogMacro(config), 0, _random_levels(config, 19), _random_levels(config, 20))
    assert stats.failed_cells
    path = write_programming_report(stats, tmp_path / "programming.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [item.name for item in tmp_path.iterdir()] == ["programming.png"]
    with pytest.raises(ValueError, match="must end in .png"):
        write_programming_report(stats, tmp_path / "programming.pdf")
    with pytest.raises(FileNotFoundError, match="does not exist; create it first"):
        write_programming_report(stats, tmp_path / "missing" / "programming.png")
