"""1T1R cell pulse response, AnalogMacro.apply_pulse and the closed-form verify read."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from amc.model.circuits import OpAmpRole
from amc.model.config import (
    AdcParams,
    ArrayParams,
    CellParams,
    MacroConfig,
    NonIdealities,
    ReadNoise,
    StuckCells,
)
from amc.model.converters import adc_convert
from amc.model.devices import NEGATIVE, POSITIVE, RandomStreams
from amc.model.errors import MacroUsageError
from amc.model.macro import AnalogMacro, _convert_one, make_switch_state
from amc.model.rram_cell import RESET, SET, RramCells, _pulse_step_one, pulse_step, width_factor
from amc.model.switch_matrix import Conn, decode_switch_state, mode_by_name

ARRAY = ArrayParams(rows=8, cols=8, n_arrays=2)
QUIET = MacroConfig(array=ARRAY, nonideal=NonIdealities(read_noise=ReadNoise(enabled=False),
                                                        stuck=StuckCells(enabled=False)), seed=3)
CELL = CellParams()
WIDTH_PS = 100_000


def _state(mode: str, row: int, col: int, *, array: int = 0, negative: bool = False, config=QUIET):
    conn = int(mode_by_name(mode).conn) | (int(Conn.HALF_NEG) if negative else 0)
    geometry = config.array
    return decode_switch_state(conn, 1 << array, 1 << row, 1 << col, geometry.rows, geometry.cols,
                               geometry.n_arrays)


def _step(g, polarity, volts, width_s=100e-9, gain=1.0, cycle=1.0, cell=CELL):
    return pulse_step(g, polarity, volts, width_factor(width_s, cell), gain, cycle, cell, ARRAY)


# Pulse response -----------------------------------------------------------------


def test_set_raises_and_reset_lowers():
    g = 40e-6
    assert _step(g, SET, 0.8) > g
    assert _step(g, RESET, 0.8) < g


def test_below_threshold_leaves_cell():
    g = 40e-6
    assert _step(g, SET, CELL.set_threshold_V) == g
    assert _step(g, SET, 0.3) == g
    assert _step(g, RESET, CELL.reset_threshold_V - 0.01) == g


def test_step_grows_with_overdrive():
    g = ARRAY.g_min_S
    small = _step(g, SET, 0.7) - g
    large = _step(g, SET, 0.9) - g
    assert small == pytest.approx(CELL.set_gain_S_per_V * 0.1, rel=1e-9)
    assert large == pytest.approx(3 * small, rel=1e-9)


def test_step_grows_with_width():
    g = ARRAY.g_min_S
    reference = _step(g, SET, 0.8) - g
    four_times = _step(g, SET, 0.8, width_s=400e-9) - g
    assert four_times == pytest.approx(2 * reference, rel=1e-9)
    with pytest.raises(ValueError, match="pulse width 0 s is invalid"):
        width_factor(0, CELL)


def test_step_shrinks_toward_window_edge():
    window = ARRAY.g_max_S - ARRAY.g_min_S
    set_steps = [_step(g, SET, 1.0) - g for g in (ARRAY.g_min_S, ARRAY.g_min_S + 0.75 * window)]
    assert set_steps[1] == pytest.approx(0.5 * set_steps[0], rel=1e-9)
    reset_steps = [g - _step(g, RESET, 1.0) for g in (ARRAY.g_max_S, ARRAY.g_min_S + 0.25 * window)]
    assert reset_steps[1] == pytest.approx(0.5 * reset_steps[0], rel=1e-9)
    assert _step(ARRAY.g_max_S, SET, 2.5) == ARRAY.g_max_S
    assert _step(ARRAY.g_min_S, RESET, 2.5) == ARRAY.g_min_S


def test_repeated_set_saturates_inside_window():
    g = ARRAY.g_min_S
    history = []
    for _ in range(200):
        g = _step(g, SET, 2.0, cycle=1.3)
        history.append(g)
    assert np.all(np.diff(history) >= 0)
    assert history[-1] <= ARRAY.g_max_S
    assert history[-1] > ARRAY.g_max_S - 1e-3 * (ARRAY.g_max_S - ARRAY.g_min_S)


def test_scalar_step_equals_vectorized():
    rng = np.random.default_rng(0)
    count = 500
    g = rng.uniform(ARRAY.g_min_S, ARRAY.g_max_S, count)
    polarity = rng.integers(0, 2, count)
    volts = rng.uniform(0.0, 2.5, count)
    gains = rng.uniform(0.7, 1.3, count)
    cycles = rng.uniform(0.0, 1.6, count)
    scale = width_factor(130e-9, CELL)
    vectorized = pulse_step(g, polarity, volts, scale, gains, cycles, CELL, ARRAY)
    scalar = [_pulse_step_one(float(g[k]), int(polarity[k]), float(volts[k]), scale, float(gains[k]),
                              float(cycles[k]), CELL, ARRAY) for k in range(count)]
    assert np.array_equal(vectorized, scalar)


# Device and cycle randomness -------------------------------------------------------


def _cells(config=QUIET, seed=None):
    streams = RandomStreams.from_seed(config.seed if seed is None else seed)
    shape = (config.array.n_arrays, 2, config.array.rows, config.array.cols)
    return RramCells(config, streams.cell_spread, streams.cell_cycle, np.zeros(shape, dtype=bool))


def test_device_gains_drawn_once_per_seed():
    first, second, other = _cells(), _cells(), _cells(seed=4)
    assert np.array_equal(first.gain_factors, second.gain_factors)
    assert not np.array_equal(first.gain_factors, other.gain_factors)
    spread = np.std(first.gain_factors)
    assert spread == pytest.approx(CELL.device_sigma_rel, rel=0.2)
    uniform = QUIET.replace(cell=dataclasses.replace(CELL, device_sigma_rel=0.0))
    assert np.all(_cells(uniform).gain_factors == 1.0)


def test_batch_pulses_equal_pulses_in_turn():
    cells_one, cells_batch = _cells(), _cells()
    g_one = cells_one.fresh_conductance(np.zeros(cells_one.shape)) + 30e-6
    g_batch = g_one.copy()
    rows, cols = np.array([0, 3, 5, 7]), np.array([1, 1, 6, 0])
    polarity = np.array([SET, RESET, SET, RESET])
    volts = np.array([0.8, 0.9, 1.1, 0.75])
    for k in range(4):
        cells_one.apply_pulse(g_one, 1, NEGATIVE, int(rows[k]), int(cols[k]), int(polarity[k]), float(volts[k]),
                              100e-9)
    cells_batch.apply_pulses(g_batch, 1, NEGATIVE, rows, cols, polarity, volts, 100e-9)
    assert np.array_equal(g_one, g_batch)
    assert cells_one.pulse_count == cells_batch.pulse_count == 4
    with pytest.raises(ValueError, match="same cell twice"):
        cells_batch.apply_pulses(g_batch, 0, POSITIVE, [1, 1], [2, 2], SET, 0.8, 100e-9)


def test_cycle_noise_drawn_per_pulse():
    noisy = QUIET.replace(cell=dataclasses.replace(CELL, device_sigma_rel=0.0))
    cells = _cells(noisy)
    g = np.full(cells.shape, ARRAY.g_min_S)
    steps = [cells.apply_pulse(g.copy(), 0, POSITIVE, 0, 0, SET, 0.8, 100e-9) - ARRAY.g_min_S
             for _ in range(400)]
    nominal = CELL.set_gain_S_per_V * 0.2
    assert np.mean(steps) == pytest.approx(nominal, rel=0.05)
    assert np.std(steps) / nominal == pytest.approx(CELL.cycle_sigma_rel, rel=0.2)


def test_fresh_cells_start_at_initial_fraction():
    config = QUIET.replace(cell=dataclasses.replace(CELL, initial_fraction=0.25))
    macro = AnalogMacro(config)
    g_pos, g_neg = macro.conductances(1)
    expected = ARRAY.g_min_S + 0.25 * (ARRAY.g_max_S - ARRAY.g_min_S)
    assert np.all(g_pos == expected)
    assert np.all(g_neg == expected)


def test_new_streams_leave_old_draws():
    # The stuck-cell, programming-error and read-noise streams are those of
    # SeedSequence(seed).spawn(3), as before the cell streams were added.
    streams = RandomStreams.from_seed(11)
    old = [np.random.default_rng(child) for child in np.random.SeedSequence(11).spawn(3)]
    for new, previous in zip((streams.stuck, streams.programming, streams.read_noise), old):
        assert np.array_equal(new.random(5), previous.random(5))


# AnalogMacro.apply_pulse --------------------------------------------------------------


def test_apply_pulse_changes_one_cell():
    macro = AnalogMacro(QUIET)
    before = [macro.conductances(a) for a in range(2)]
    macro.apply_pulse(0, _state("PROGRAM", 2, 5, array=1, negative=True), SET, 90, WIDTH_PS)
    after = [macro.conductances(a) for a in range(2)]
    changed = after[1][NEGATIVE] != before[1][NEGATIVE]
    assert changed.sum() == 1
    assert changed[2, 5]
    assert after[1][NEGATIVE][2, 5] > before[1][NEGATIVE][2, 5]
    assert np.array_equal(after[1][POSITIVE], before[1][POSITIVE])
    assert np.array_equal(after[0][POSITIVE], before[0][POSITIVE])
    assert macro.pulse_count == 1
    assert macro.last_event_ps == WIDTH_PS


def test_reset_pulse_uses_source_line_lsb():
    config = QUIET.replace(programming=dataclasses.replace(QUIET.programming, source_line_lsb_V=0.02),
                           cell=dataclasses.replace(CELL, device_sigma_rel=0.0, cycle_sigma_rel=0.0))
    macro = AnalogMacro(config)
    macro.program_backdoor(0, np.full((8, 8), ARRAY.g_max_S))
    before = macro.conductances(0)[POSITIVE][0, 0]
    macro.apply_pulse(0, _state("PROGRAM", 0, 0, config=config), RESET, 40, WIDTH_PS)
    drop = before - macro.conductances(0)[POSITIVE][0, 0]
    bound = np.sqrt((before - ARRAY.g_min_S) / (ARRAY.g_max_S - ARRAY.g_min_S))
    expected = CELL.reset_gain_S_per_V * (40 * 0.02 - CELL.reset_threshold_V) * bound
    assert drop == pytest.approx(expected, rel=1e-9)


def test_stuck_cell_ignores_pulses():
    config = QUIET.replace(nonideal=NonIdealities(read_noise=ReadNoise(enabled=False),
                                                  stuck=StuckCells(enabled=True, fraction=1.0, on_fraction=0.0)))
    macro = AnalogMacro(config)
    time = 0
    for polarity in (SET, SET, RESET):
        macro.apply_pulse(time, _state("PROGRAM", 1, 1, config=config), polarity, 150, WIDTH_PS)
        time += WIDTH_PS
    assert macro.conductances(0)[POSITIVE][1, 1] == ARRAY.g_min_S
    assert macro.devices.cells.pulse_count == 3


def test_pulse_is_seen_by_later_operations():
    macro = AnalogMacro(QUIET)
    mvm = make_switch_state(mode_by_name("MVM"), 2, 2, QUIET)
    before = macro.analysis(mvm).steady_state([0.5, 0.5])
    macro.apply_pulse(0, _state("PROGRAM", 0, 1), SET, 120, WIDTH_PS)
    after = macro.analysis(mvm).steady_state([0.5, 0.5])
    assert after[0] < before[0]
    assert after[1] == before[1]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("MVM", SET, 80, WIDTH_PS), "needs an unsigned PROGRAM state"),
        (("PROGRAM", 2, 80, WIDTH_PS), "polarity 2 is invalid"),
        (("PROGRAM", SET, 256, WIDTH_PS), "amplitude code 256 is invalid; use an integer from 0 to 255"),
        (("PROGRAM", SET, -1, WIDTH_PS), "amplitude code -1 is invalid"),
        (("PROGRAM", SET, 80, 0), "pulse width 0 is invalid"),
    ],
)
def test_apply_pulse_rejects_invalid_arguments(arguments, message):
    macro = AnalogMacro(QUIET)
    mode, polarity, amplitude, width = arguments
    state = make_switch_state(mode_by_name("MVM"), 2, 2, QUIET) if mode == "MVM" else _state(mode, 0, 0)
    with pytest.raises(MacroUsageError, match=message):
        macro.apply_pulse(0, state, polarity, amplitude, width)


def test_apply_pulse_checks_time_and_operation():
    macro = AnalogMacro(QUIET)
    program = _state("PROGRAM", 0, 0)
    macro.apply_pulse(1000, program, SET, 80, WIDTH_PS)
    with pytest.raises(MacroUsageError, match="before the previous event at 101000 ps"):
        macro.enable(50_000, _state("VERIFY", 0, 0))
    macro.enable(101_000, _state("VERIFY", 0, 0))
    with pytest.raises(MacroUsageError, match="during the operation enabled at 101000 ps"):
        macro.apply_pulse(200_000, program, SET, 80, WIDTH_PS)
    macro.disable(300_000)
    with pytest.raises(MacroUsageError, match="PROGRAM applies a pulse and forms no circuit"):
        macro.enable(400_000, program)


def test_programming_count_counts_passes():
    macro = AnalogMacro(QUIET)
    time = 0
    for half in (False, True):
        for _ in range(3):
            macro.apply_pulse(time, _state("PROGRAM", 0, 0, negative=half), SET, 80, WIDTH_PS)
            time += WIDTH_PS
            macro.enable(time, _state("VERIFY", 0, 0, negative=half))
            macro.disable(time + 1000)
            time += 1000
    assert macro.programming_count(0) == 1
    macro.enable(time, make_switch_state(mode_by_name("MVM"), 2, 2, QUIET))
    macro.disable(time + 1000)
    macro.apply_pulse(time + 1000, _state("PROGRAM", 0, 0), SET, 80, WIDTH_PS)
    assert macro.programming_count(0) == 2
    assert macro.programming_count(1) == 0
    assert macro.conductance_version(0) == 7


# Closed-form verify read ------------------------------------------------------------


def _read_sequence(macro: AnalogMacro, config: MacroConfig) -> list:
    """Run verify reads on several cells and halves, with held outputs carried between them."""
    reads = []
    time = 0
    cells = [(0, 0, False), (3, 5, True), (7, 2, False), (3, 5, True), (1, 6, False)]
    for k, (row, col, negative) in enumerate(cells):
        macro.load_dac(row, -26 - 7 * k)
        record = macro.enable(time, _state("VERIFY", row, col, config=config, negative=negative))
        samples = [macro.sample(time + offset, col) for offset in (20_000, 150_000, 900_000)]
        reads.append((samples, record.steady_state_V.copy(), record.output_channels, record.input_channels))
        macro.disable(time + 1_000_000)
        time += 1_100_000
    return reads


def _programmed_macro(config: MacroConfig, fast: bool) -> AnalogMacro:
    macro = AnalogMacro(config, verify_fast_path=fast)
    rng = np.random.default_rng(5)
    shape = (config.array.rows, config.array.cols)
    window = (config.array.g_min_S, config.array.g_max_S)
    macro.program_backdoor(0, rng.uniform(*window, shape), rng.uniform(*window, shape))
    return macro


@pytest.mark.parametrize("read_noise", [False, True])
def test_fast_verify_read_equals_general_path(read_noise):
    config = QUIET.replace(nonideal=NonIdealities(read_noise=ReadNoise(enabled=read_noise, sigma_rel=0.02),
                                                  stuck=StuckCells(enabled=False)))
    fast = _read_sequence(_programmed_macro(config, True), config)
    general = _read_sequence(_programmed_macro(config, False), config)
    for (fast_samples, fast_steady, *fast_lines), (general_samples, general_steady, *general_lines) in zip(
            fast, general):
        assert fast_lines == general_lines
        assert fast_steady == pytest.approx(general_steady, rel=1e-12)
        for a, b in zip(fast_samples, general_samples):
            assert a.code == b.code
            assert a.overrange == b.overrange
            assert a.volts == pytest.approx(b.volts, rel=1e-12, abs=1e-15)


def test_verify_read_near_rail_takes_general_path():
    # From a held output of -1.4 V to a steady state near +0.9 V the bound
    # |x_ss| + |x0 - x_ss| exceeds the rail, so both settings build the circuit.
    results = []
    for fast in (True, False):
        macro = _programmed_macro(QUIET, fast)
        macro._held[OpAmpRole.LINE][4] = -1.4
        macro.load_dac(2, -26)
        record = macro.enable(0, _state("VERIFY", 2, 4))
        results.append((macro.sample(300_000, 4), type(record.response).__name__))
        macro.disable(400_000)
    assert results[0][1] == results[1][1] == "_CircuitResponse"
    assert results[0][0] == results[1][0]


def test_fast_verify_record_builds_analysis_on_request():
    macro = _programmed_macro(QUIET, True)
    macro.load_dac(1, -26)
    record = macro.enable(0, _state("VERIFY", 1, 2))
    g_cell = macro.conductances(0)[POSITIVE][1, 2]
    g_v = QUIET.programming.g_verify_S
    pole = 2 * np.pi * QUIET.opamp.gbw_Hz * (g_v / (g_v + g_cell) + 1 / QUIET.opamp.open_loop_gain)
    assert record.stability.stable
    assert record.analysis.slowest_decay_rate_rad_per_s == pytest.approx(pole, rel=1e-12)
    assert record.settle.slowest_pole_s == pytest.approx(np.log(1 / record.settle_eps) / pole, rel=1e-12)
    assert record.trajectory.internal(1e-7, 0) == pytest.approx(record.response.internal(1e-7, 0), rel=1e-12)
    assert record.saturation_start_s is None


def test_verify_read_draws_one_noise_value():
    config = QUIET.replace(nonideal=NonIdealities(read_noise=ReadNoise(enabled=True, sigma_rel=0.01),
                                                  stuck=StuckCells(enabled=False)))
    macro = AnalogMacro(config)
    macro.load_dac(0, -26)
    macro.enable(0, _state("VERIFY", 0, 0, config=config))
    macro.disable(1000)
    reference = np.random.default_rng(np.random.SeedSequence(config.seed).spawn(3)[2])
    reference.standard_normal()
    assert macro.devices.streams.read_noise.standard_normal() == reference.standard_normal()


def test_scalar_conversion_equals_adc_convert():
    adc = AdcParams()
    lsb = adc.lsb_V
    edges = np.array([k + 0.5 for k in range(-130, 130)]) * lsb
    volts = np.concatenate([edges, -edges, np.linspace(-1.2, 1.2, 4001), [0.0, -0.0, 1.0, -1.0, 0.996, -1.004]])
    expected = adc_convert(volts, adc)
    for k, value in enumerate(volts):
        code, overrange = _convert_one(float(value), adc)
        assert code == expected.codes[k]
        assert overrange == expected.overrange[k]
    with pytest.raises(ValueError, match="NaN or Inf"):
        _convert_one(float("nan"), adc)


def test_verify_needs_one_cell():
    state = make_switch_state(mode_by_name("VERIFY"), 2, 1, QUIET)
    with pytest.raises(MacroUsageError, match="VERIFY needs exactly one row and one column enabled"):
        AnalogMacro(QUIET).enable(0, state)


def test_pulse_needs_one_cell():
    state = make_switch_state(mode_by_name("PROGRAM"), 1, 3, QUIET)
    with pytest.raises(MacroUsageError, match="PROGRAM needs exactly one row and one column enabled"):
        AnalogMacro(QUIET).apply_pulse(0, state, SET, 80, WIDTH_PS)


def test_batch_path_rejects_cell_modes():
    macro = AnalogMacro(QUIET)
    with pytest.raises(MacroUsageError, match="does not run the single-cell mode VERIFY"):
        macro.run_operations(_state("VERIFY", 0, 0), [[-26]], [0], [1000], 2000)
