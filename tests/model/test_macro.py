"""Event-level behaviour of AnalogMacro."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from amc.model.config import (
    AdcParams,
    ArrayParams,
    CircuitParams,
    MacroConfig,
    NonIdealities,
    ProgrammingError,
    ReadNoise,
    StuckCells,
)
from amc.model.circuits import build_circuit
from amc.model.converters import adc_convert
from amc.model.encoding import encode_input
from amc.model.errors import CircuitBuildError, MacroUsageError
from amc.model.macro import AnalogMacro, make_switch_state
from amc.model.statespace import REFINEMENT_TOLERANCE, CircuitAnalysis
from amc.model.trajectory import RailScan, scan_rails
from amc.model.mapping import map_matrix
from amc.model.switch_matrix import decode_switch_state, mode_by_name

N = 6
RNG = np.random.default_rng(31)
ROOT = RNG.uniform(-1, 1, (N, N))
MATRIX = ROOT @ ROOT.T / N + 0.5 * np.eye(N)
B = RNG.uniform(-1, 1, N)
IDEAL = MacroConfig(array=ArrayParams(rows=8, cols=8, n_arrays=2), nonideal=NonIdealities.ideal())
NOISY = IDEAL.replace(nonideal=NonIdealities(
    programming=ProgrammingError(enabled=True, sigma_rel=0.01),
    read_noise=ReadNoise(enabled=True, sigma_rel=0.01),
    stuck=StuckCells(enabled=True, fraction=0.01),
    quantize_levels=True,
))
NO_READ_NOISE = NOISY.replace(nonideal=dataclasses.replace(NOISY.nonideal, read_noise=ReadNoise(enabled=False)))


def _setup(config, b=B, headroom=0.2, matrix=MATRIX, mode_name="INV"):
    mapping = map_matrix(matrix, config)
    macro = AnalogMacro(config)
    g_pos, g_neg = mapping.array_images(config.array)
    macro.program_backdoor(0, g_pos, g_neg)
    mode = mode_by_name(mode_name)
    m, n = mapping.shape
    state = make_switch_state(mode, m, n, config, signed=mapping.differential)
    _load(macro, b, mode, config, headroom)
    return macro, state


def _load(macro, b, mode, config, headroom):
    encoded = encode_input(b, mode, config.dac, headroom=headroom)
    for channel, code in enumerate(encoded.codes):
        macro.load_dac(channel, int(code))


def _run(macro, state, start_ps, settle_ps, channels=range(N)):
    record = macro.enable(start_ps, state)
    codes = [macro.sample(start_ps + settle_ps, channel).code for channel in channels]
    macro.disable(start_ps + settle_ps)
    return record, np.array(codes)


def _settle_ps(record, factor=1.5):
    return int(factor * record.settle.slowest_pole_s * 1e12)


def test_timing_properties():
    macro = AnalogMacro(IDEAL)
    assert macro.bias_ready_delay_ps == 50_000
    assert macro.adc_conversion_ps == 100_000
    assert macro.dac_settle_ps == 10_000


def test_settled_sample_matches_steady_state():
    macro, state = _setup(IDEAL)
    record = macro.enable(0, state)
    settle_ps = _settle_ps(record)
    samples = [macro.sample(settle_ps, channel) for channel in range(N)]
    expected = adc_convert(record.steady_state_V, IDEAL.adc).codes
    assert np.max(np.abs(np.array([s.code for s in samples]) - expected)) <= 1
    assert record.stability.stable
    assert record.output_channels == tuple(range(N))
    assert record.mode == "INV"


def test_early_sample_is_wrong():
    macro, state = _setup(IDEAL)
    record = macro.enable(0, state)
    early = np.array([macro.sample(int(0.05 * _settle_ps(record)), channel).volts for channel in range(N)])
    steady = record.steady_state_V
    assert np.max(np.abs(early - steady)) > 0.2 * np.max(np.abs(steady))


def test_transient_starts_from_held_outputs():
    macro, state = _setup(IDEAL)
    first, _ = _run(macro, state, 0, 3_000_000)
    held = macro.held_outputs()[:N]
    assert np.allclose(held, first.steady_state_V, atol=2e-3)

    _load(macro, -B, mode_by_name("INV"), IDEAL, 0.2)
    second = macro.enable(4_000_000, state)
    assert np.allclose(second.initial_V, held)
    just_after = np.array([macro.sample(4_000_001, channel).volts for channel in range(N)])
    assert np.allclose(just_after, held, atol=1e-3)
    assert np.allclose(second.steady_state_V, -first.steady_state_V, atol=2 * IDEAL.dac.lsb_V)


def test_held_value_read_while_disabled():
    macro, state = _setup(IDEAL)
    _run(macro, state, 0, 3_000_000)
    sample = macro.sample(5_000_000, 2)
    assert sample.volts == macro.held_outputs()[2]
    assert not macro.is_enabled


def test_channel_outside_circuit_reads_held_value():
    macro, state = _setup(IDEAL)
    macro.enable(0, state)
    sample = macro.sample(1_000, 7)
    assert sample.volts == 0.0
    assert not macro.last_operation.samples[-1].in_circuit


def test_steady_state_beyond_rails_reported():
    # A large input conductance scales the outputs (V = G_in s x / g0) past the rails.
    macro, state = _setup(IDEAL.replace(circuit=CircuitParams(g_in_S=1e-3)), headroom=1.0)
    record = macro.enable(0, state)
    assert record.steady_state_beyond_rails
    channel = record.steady_state_beyond_rails[0]
    sample = macro.sample(20_000_000, channel)
    assert sample.rail_clipped
    assert sample.overrange
    assert abs(sample.volts) == IDEAL.opamp.rail_V
    assert channel in record.rail_clipped_channels
    assert channel in record.adc_overrange_channels
    assert record.saturation_start_s is not None


def test_adc_overrange_below_rail():
    config = IDEAL.replace(adc=AdcParams(bits=8, full_scale_V=0.25))
    macro, state = _setup(config, headroom=0.3)
    record = macro.enable(0, state)
    steady = record.steady_state_V
    channel = int(np.argmax(np.abs(steady)))
    assert 0.25 < abs(steady[channel]) < config.opamp.rail_V
    sample = macro.sample(_settle_ps(record, 3.0), channel)
    assert sample.overrange
    assert not sample.rail_clipped


def test_unstable_circuit_runs_to_rails():
    matrix = np.array([[0.1, 0.9, 0.2], [0.85, 0.12, 0.25], [0.2, 0.25, 0.7]])
    macro, state = _setup(IDEAL, b=np.array([0.5, 0.3, -0.4]), matrix=matrix)
    record = macro.enable(0, state)
    assert not record.stability.stable
    assert record.stability.rule == "eigenvalue"
    assert record.settle.slowest_pole_s is None
    late = [macro.sample(10_000_000, channel) for channel in range(3)]
    assert any(sample.rail_clipped for sample in late)
    macro.disable(10_000_000)
    assert np.any(np.abs(macro.held_outputs()[:3]) == IDEAL.opamp.rail_V)


def test_same_seed_same_codes():
    results = []
    for _ in range(2):
        macro, state = _setup(NOISY)
        results.append([_run(macro, state, k * 5_000_000, 3_000_000)[1] for k in range(3)])
    assert np.array_equal(results[0], results[1])


def test_different_seed_different_noise():
    codes = []
    for seed in (1, 2):
        macro, state = _setup(NOISY.replace(seed=seed))
        codes.append(_run(macro, state, 0, 3_000_000)[1])
    assert not np.array_equal(codes[0], codes[1])


def test_read_noise_off_repeats_exactly():
    macro, state = _setup(NO_READ_NOISE)
    volts = []
    for k in range(3):
        macro.enable(k * 10_000_000, state)
        volts.append([macro.sample(k * 10_000_000 + 8_000_000, c).volts for c in range(N)])
        macro.disable(k * 10_000_000 + 8_000_000)
    assert np.array_equal(volts[1], volts[2])
    assert np.allclose(volts[0], volts[1], atol=1e-9)


def test_read_noise_on_varies():
    macro, state = _setup(NOISY)
    volts = []
    for k in range(2):
        macro.enable(k * 10_000_000, state)
        volts.append([macro.sample(k * 10_000_000 + 8_000_000, c).volts for c in range(N)])
        macro.disable(k * 10_000_000 + 8_000_000)
    assert not np.allclose(volts[0], volts[1], atol=1e-6)


def test_analysis_cached_without_read_noise():
    macro, state = _setup(NO_READ_NOISE)
    first = macro.enable(0, state).analysis
    macro.disable(1_000)
    assert macro.enable(2_000, state).analysis is first
    macro.disable(3_000)
    g_pos, g_neg = macro.conductances(0)
    macro.program_backdoor(0, g_pos, g_neg)
    assert macro.enable(4_000, state).analysis is not first


def test_program_backdoor_applies_device_errors():
    mapping = map_matrix(MATRIX, NO_READ_NOISE)
    macro = AnalogMacro(NO_READ_NOISE)
    g_pos, g_neg = mapping.array_images(NO_READ_NOISE.array)
    macro.program_backdoor(1, g_pos, g_neg)
    programmed_pos, _ = macro.conductances(1)
    stuck = macro.devices.stuck_map
    free = ~stuck.stuck[1, 0]
    sigma = 0.01 * (NO_READ_NOISE.array.g_max_S - NO_READ_NOISE.array.g_min_S)
    assert not np.array_equal(programmed_pos, g_pos)
    assert np.max(np.abs(programmed_pos[free] - g_pos[free])) < 6 * sigma
    assert np.array_equal(programmed_pos[~free], stuck.value_S[1, 0][~free])

    untouched_pos, _ = macro.conductances(0)
    assert np.array_equal(untouched_pos, np.where(stuck.stuck[0, 0], stuck.value_S[0, 0], 1e-6))


def test_record_settle_time():
    macro, state = _setup(IDEAL)
    record = macro.enable(0, state)
    exact = record.settle_time_s()
    assert 0 < exact < 2 * record.settle.slowest_pole_s
    assert record.settle.eps == 2.0 ** -IDEAL.adc.bits


def test_decoded_switch_state_accepted():
    macro, _ = _setup(IDEAL)
    conn = int(mode_by_name("INV").conn) | (1 << 7)
    state = decode_switch_state(conn, 0b01, (1 << N) - 1, (1 << N) - 1, 8, 8, 2)
    record = macro.enable(0, state)
    assert record.signed


@pytest.mark.parametrize(
    ("action", "pattern"),
    [
        (lambda m, s: (m.enable(10, s), m.enable(20, s)), "still running; call disable first"),
        (lambda m, s: m.disable(0), "without an enabled operation"),
        (lambda m, s: (m.enable(100, s), m.sample(50, 0)), "before the previous event at 100 ps"),
        (lambda m, s: m.sample(0, 8), r"channel 8 is invalid; use an integer from 0 to 7"),
        (lambda m, s: m.enable(1.5, s), "integer number of picoseconds"),
        (lambda m, s: m.program_backdoor(2, np.ones((8, 8))), r"array index 2 is invalid"),
        (lambda m, s: m.program_backdoor(0, np.ones((4, 4))), r"expected the full array image \(8, 8\)"),
        (lambda m, s: m.program_backdoor(0, np.full((8, 8), 1.0)), "outside the window"),
        (lambda m, s: (m.enable(0, s), m.program_backdoor(0, np.full((8, 8), 1e-6))), "during an analog operation"),
    ],
)
def test_invalid_events_rejected(action, pattern):
    macro, state = _setup(IDEAL)
    with pytest.raises(MacroUsageError, match=pattern):
        action(macro, state)


def test_dac_code_range_checked():
    macro = AnalogMacro(IDEAL)
    with pytest.raises(ValueError, match=r"DAC channel 0 code 128 is outside the signed 8-bit range"):
        macro.load_dac(0, 128)


def test_square_mode_needs_equal_counts():
    macro, state = _setup(IDEAL)
    cols = state.col_enable.copy()
    cols[N - 1] = False
    with pytest.raises(CircuitBuildError, match="as many active rows as columns"):
        macro.enable(0, dataclasses.replace(state, col_enable=cols))


def _batch_and_events(config, k_ops=4, headroom=0.2, settle_ps=2_000_000, peak_V=None):
    rng = np.random.default_rng(41)
    b_batch = rng.uniform(-1, 1, (N, k_ops))
    mode = mode_by_name("INV")
    scale = None
    if peak_V is not None:
        # Input scales that put the largest steady state (inverters included) at peak_V.
        reference, state = _setup(config)
        per_unit = reference.analysis(state).steady_operator @ -b_batch
        scale = np.asarray(peak_V) / np.abs(per_unit).max(axis=0)
    encoded = encode_input(b_batch, mode, config.dac, headroom=headroom, scale_V=scale)
    channels = np.arange(N)
    offsets = settle_ps + 100_000 * channels
    disable = settle_ps + 100_000 * N

    batch_macro, state = _setup(config)
    batch = batch_macro.run_operations(state, encoded.codes, channels, offsets, disable, start_time_ps=0)

    event_macro, _ = _setup(config)
    codes = np.zeros((N, k_ops), dtype=int)
    for k in range(k_ops):
        for channel in range(N):
            event_macro.load_dac(channel, int(encoded.codes[channel, k]))
        start = k * disable
        event_macro.enable(start, state)
        for channel, offset in zip(channels, offsets):
            codes[channel, k] = event_macro.sample(start + int(offset), int(channel)).code
        event_macro.disable(start + disable)
    return batch, codes, batch_macro, event_macro


def test_batch_equals_event_path():
    batch, codes, batch_macro, event_macro = _batch_and_events(NO_READ_NOISE)
    assert np.array_equal(batch.codes, codes)
    assert np.allclose(batch_macro.held_outputs(), event_macro.held_outputs(), atol=1e-12)
    assert not batch.touched_rails.any()
    assert batch_macro.operation_count == event_macro.operation_count == 4
    assert batch.end_time_ps == 4 * (2_000_000 + 100_000 * N)


def test_batch_with_read_noise_close_to_event_path():
    batch, codes, _, _ = _batch_and_events(NOISY)
    assert np.max(np.abs(batch.codes - codes)) <= 1


def test_batch_read_noise_steady_states_equal_events():
    # Both paths draw the read noise of operation k in the same order, so
    # the noisy steady states agree to rounding although the transients differ.
    rng = np.random.default_rng(43)
    encoded = encode_input(rng.uniform(-1, 1, (N, 5)), mode_by_name("INV"), NOISY.dac, headroom=0.2)
    channels = np.arange(N)
    batch_macro, state = _setup(NOISY)
    batch = batch_macro.run_operations(state, encoded.codes, channels, 2_000_000 + 100_000 * channels,
                                       3_000_000, start_time_ps=0)
    event_macro, _ = _setup(NOISY)
    for k in range(5):
        for channel in channels:
            event_macro.load_dac(int(channel), int(encoded.codes[channel, k]))
        record = event_macro.enable(k * 3_000_000, state)
        event_macro.disable(k * 3_000_000 + 3_000_000)
        assert np.allclose(batch.steady_state_V[:, k], record.steady_state_V, rtol=1e-12, atol=1e-15)
    assert batch_macro.devices.streams.read_noise.random() == event_macro.devices.streams.read_noise.random()


NOISE_ARRAY = ArrayParams(rows=32, cols=32)


@pytest.mark.parametrize("mode_name, signed", [("INV", True), ("INV", False), ("MVM", True), ("MVM_T", False)])
def test_batch_read_noise_matches_direct_solves(mode_name, signed):
    # 150 operations on a 32 x 32 array run in chunks of 64, 64 and 22: the
    # first two refine with the noise-free factorization, the last solves
    # directly. The reference repeats the steps of the event path: one draw
    # of the whole array and one factorization of the noisy circuit per operation.
    n, k_ops = 24, 150
    config = MacroConfig(array=NOISE_ARRAY, seed=12, nonideal=NonIdealities(read_noise=ReadNoise(sigma_rel=0.01)))
    rng = np.random.default_rng(13)
    root = rng.uniform(-1, 1, (n, n)) if signed else rng.uniform(0, 1, (n, n))
    matrix = root @ root.T / n + np.eye(n)
    mapping = map_matrix(matrix, config, differential=signed)
    mode = mode_by_name(mode_name)
    state = make_switch_state(mode, n, n, config, signed=signed)
    encoded = encode_input(rng.uniform(-1, 1, (n, k_ops)), mode, config.dac, headroom=0.2)
    channels = np.arange(n)

    macros = []
    for _ in range(2):
        macro = AnalogMacro(config)
        macro.program_backdoor(0, *mapping.array_images(config.array))
        macros.append(macro)
    batch = macros[0].run_operations(state, encoded.codes, channels, 3_000_000 + 100_000 * channels, 6_000_000)

    reference_macro = macros[1]
    programmed = np.stack(reference_macro.conductances(0))
    reference = np.empty((n, k_ops))
    for k in range(k_ops):
        read = reference_macro.devices.read(programmed)
        noisy = CircuitAnalysis(build_circuit(state, read[0], read[1], config))
        reference[:, k] = noisy.steady_state(encoded.volts[:, k])[:n]

    relative = np.max(np.abs(batch.steady_state_V - reference), axis=0) / np.max(np.abs(reference), axis=0)
    assert np.all(relative <= REFINEMENT_TOLERANCE)
    rail = config.opamp.rail_V
    settled = adc_convert(np.clip(batch.steady_state_V, -rail, rail), config.adc).codes
    expected = adc_convert(np.clip(reference, -rail, rail), config.adc).codes
    # Only a steady state within about 1e-10 of its scale from a code edge
    # could round differently; none of these 3600 does.
    assert np.count_nonzero(settled != expected) == 0
    assert macros[0].devices.streams.read_noise.random() == reference_macro.devices.streams.read_noise.random()


@pytest.mark.parametrize("config", [NOISY, NO_READ_NOISE], ids=["read noise", "no read noise"])
def test_steady_states_match_direct_solves(config):
    rng = np.random.default_rng(47)
    encoded = encode_input(rng.uniform(-1, 1, (N, 7)), mode_by_name("INV"), config.dac, headroom=0.2)
    macro, state = _setup(config)
    reference_macro, _ = _setup(config)
    held, count, last = macro.held_outputs(), macro.operation_count, macro.last_event_ps
    steady = macro.steady_states(state, encoded.codes)

    programmed = np.stack(reference_macro.conductances(0))
    for k in range(7):
        read = reference_macro.devices.read(programmed)
        expected = CircuitAnalysis(build_circuit(state, read[0], read[1], config)).steady_state(encoded.volts[:, k])
        assert np.allclose(steady[:, k], expected, rtol=REFINEMENT_TOLERANCE, atol=1e-15)
    assert macro.devices.streams.read_noise.random() == reference_macro.devices.streams.read_noise.random()
    assert np.array_equal(macro.held_outputs(), held)
    assert macro.operation_count == count
    assert macro.last_event_ps == last


def test_steady_states_rejects_invalid_codes():
    macro, state = _setup(NOISY)
    with pytest.raises(ValueError, match=r"dac_codes has shape \(5, 2\); expected \(6, K\)"):
        macro.steady_states(state, np.zeros((5, 2), dtype=int))
    with pytest.raises(ValueError, match="outside the signed 8-bit range"):
        macro.steady_states(state, np.full((N, 1), 200))


def test_batch_equals_events_early_sampling():
    # Samples from 20 ns on, long before the transient settles: the batch
    # path must evaluate the transient, not the steady state.
    batch, codes, batch_macro, event_macro = _batch_and_events(NO_READ_NOISE, settle_ps=20_000)
    assert np.array_equal(batch.codes, codes)
    assert np.allclose(batch_macro.held_outputs(), event_macro.held_outputs(), atol=1e-12)
    settled = adc_convert(np.clip(batch.steady_state_V, -1.5, 1.5), NO_READ_NOISE.adc).codes
    assert not np.array_equal(batch.codes, settled)
    assert not batch.touched_rails.any()


def test_batch_equals_events_near_rails():
    # Steady states of 1.25 to 1.45 V overrange the 1 V ADC, and the
    # transients come close to the 1.5 V rails without reaching them.
    peaks = np.array([1.3, 1.45, 1.25, 1.4, 1.45, 1.35])
    batch, codes, batch_macro, event_macro = _batch_and_events(NO_READ_NOISE, k_ops=6, peak_V=peaks)
    assert np.all(batch.overrange.any(axis=0))
    assert not batch.touched_rails.any()
    assert np.array_equal(batch.codes, codes)
    assert np.allclose(batch_macro.held_outputs(), event_macro.held_outputs(), atol=1e-12)


def test_batch_touched_flags_match_scan():
    # One operation per call, so that each start state is the held output.
    # The flags must equal those of the adaptive scan on the same trajectory.
    macro, state = _setup(NO_READ_NOISE)
    analysis = macro.analysis(state)
    circuit = analysis.circuit
    rail = NO_READ_NOISE.opamp.rail_V
    channels = np.arange(N)
    offsets = 300_000 + 100_000 * channels
    disable = 300_000 + 100_000 * N
    tau_end = disable * 1e-12 * analysis.rate_rad_per_s
    rng = np.random.default_rng(43)
    flags, expected = [], []
    for headroom in (0.2, 0.95, 0.3, 1.0, 0.1, 0.9, 0.5, 0.2):
        encoded = encode_input(rng.uniform(-1, 1, N), mode_by_name("INV"), NO_READ_NOISE.dac, headroom=headroom)
        x0 = macro._initial_state(circuit)
        steady = analysis.steady_state(encoded.volts)
        result = macro.run_operations(state, encoded.codes[:, None], channels, offsets, disable)
        flags.append(bool(result.touched_rails[0]))
        if np.abs(steady).max() > rail:
            expected.append(True)
            continue
        _, status = scan_rails(analysis, steady[:, None], analysis._eigen[2] @ (x0 - steady)[:, None], rail,
                               np.zeros(1), tau_end)
        expected.append(bool(status[0] == RailScan.MAY_TOUCH))
    assert flags == expected
    assert any(flags)
    assert not all(flags)


def test_batch_plan_cached_per_schedule():
    macro, state = _setup(IDEAL)
    codes = np.zeros((N, 1), dtype=int)
    channels = np.arange(N)
    macro.run_operations(state, codes, channels, 1_000_000 + channels, 2_000_000)
    analysis = macro.analysis(state)
    first = macro._batch_plans[analysis]
    macro.run_operations(state, codes, channels, 1_000_000 + channels, 2_000_000)
    assert macro._batch_plans[analysis] is first
    assert len(first) == 1
    macro.run_operations(state, codes, channels, 500_000 + channels, 2_000_000)
    assert len(macro._batch_plans[analysis]) == 2


def test_batch_follows_reprogramming():
    macro, state = _setup(IDEAL)
    rng = np.random.default_rng(44)
    encoded = encode_input(rng.uniform(-1, 1, (N, 2)), mode_by_name("INV"), IDEAL.dac, headroom=0.2)
    channels = np.arange(N)
    offsets = 2_000_000 + 100_000 * channels
    macro.run_operations(state, encoded.codes, channels, offsets, 3_000_000)
    mapping = map_matrix(2.0 * MATRIX, IDEAL)
    macro.program_backdoor(0, *mapping.array_images(IDEAL.array))
    result = macro.run_operations(state, encoded.codes, channels, offsets, 3_000_000)
    expected = macro.analysis(state).steady_state(encoded.volts)[:N]
    assert np.allclose(result.steady_state_V, expected, atol=1e-12)


def test_batch_rejects_unknown_channel():
    macro, state = _setup(IDEAL)
    with pytest.raises(ValueError, match="must be line op-amps of the circuit"):
        macro.run_operations(state, np.zeros((N, 1), dtype=int), [7], [0], 10)


def test_batch_matches_events_on_expm_route():
    # Each row carries 100 uS of cells, equal to G_f, so the TIA and inverter
    # poles coincide and the analysis falls back to the matrix exponential.
    config = MacroConfig(array=ArrayParams(rows=2, cols=2), nonideal=NonIdealities.ideal())
    g_pos = np.array([[40.0, 1.0], [30.0, 20.0]]) * 1e-6
    g_neg = np.array([[1.0, 58.0], [25.0, 25.0]]) * 1e-6
    state = make_switch_state(mode_by_name("MVM"), 2, 2, config, signed=True)
    codes = np.array([[100, -60, 7], [-30, 90, -120]])
    offsets = np.array([30_000, 130_000])

    batch_macro = AnalogMacro(config)
    batch_macro.program_backdoor(0, g_pos, g_neg)
    assert batch_macro.analysis(state).uses_expm
    batch = batch_macro.run_operations(state, codes, [0, 1], offsets, 230_000, start_time_ps=0)

    event_macro = AnalogMacro(config)
    event_macro.program_backdoor(0, g_pos, g_neg)
    for k in range(codes.shape[1]):
        event_macro.load_dac(0, int(codes[0, k]))
        event_macro.load_dac(1, int(codes[1, k]))
        start = k * 230_000
        event_macro.enable(start, state)
        for channel, offset in enumerate(offsets):
            sample = event_macro.sample(start + int(offset), channel)
            assert sample.code == batch.codes[channel, k]
            assert sample.volts == pytest.approx(batch.volts[channel, k], abs=1e-6)
        event_macro.disable(start + 230_000)
    assert np.allclose(batch_macro.held_outputs(), event_macro.held_outputs(), atol=1e-6)
