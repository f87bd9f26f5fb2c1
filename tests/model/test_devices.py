"""Stuck cells, programming error and read noise, and their seeds."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from amc.model.config import ArrayParams, MacroConfig, NonIdealities, ProgrammingError, ReadNoise, StuckCells
from amc.model.devices import NEGATIVE, POSITIVE, DeviceModel
from amc.model.solve import multiply

ARRAY = ArrayParams(rows=32, cols=32, n_arrays=4)


def _config(**nonideal) -> MacroConfig:
    return MacroConfig(array=ARRAY, nonideal=dataclasses.replace(NonIdealities.ideal(), **nonideal), seed=7)


def test_stuck_map_independent_of_read_noise():
    stuck = StuckCells(enabled=True, fraction=0.05)
    quiet = DeviceModel(_config(stuck=stuck)).stuck_map
    noisy = DeviceModel(_config(stuck=stuck, read_noise=ReadNoise(enabled=True, sigma_rel=0.1))).stuck_map
    assert quiet.count > 0
    assert np.array_equal(quiet.stuck, noisy.stuck)
    assert np.array_equal(quiet.value_S, noisy.value_S)


def test_stuck_map_statistics():
    model = DeviceModel(_config(stuck=StuckCells(enabled=True, fraction=0.1, on_fraction=0.25)))
    cells = model.stuck_map.stuck.size
    count = model.stuck_map.count
    assert abs(count - 0.1 * cells) < 4 * np.sqrt(cells * 0.1 * 0.9)
    on = np.count_nonzero(model.stuck_map.value_S[model.stuck_map.stuck] == ARRAY.g_max_S)
    assert abs(on - 0.25 * count) < 4 * np.sqrt(count * 0.25 * 0.75)


def test_stuck_map_empty_when_disabled():
    assert DeviceModel(_config(stuck=StuckCells(enabled=False, fraction=0.5))).stuck_map.count == 0


def test_stuck_map_changes_with_seed():
    stuck = StuckCells(enabled=True, fraction=0.05)
    first = DeviceModel(_config(stuck=stuck)).stuck_map.stuck
    other = DeviceModel(dataclasses.replace(_config(stuck=stuck), seed=8)).stuck_map.stuck
    assert not np.array_equal(first, other)


def test_programming_error_statistics():
    sigma_rel = 0.02
    model = DeviceModel(_config(programming=ProgrammingError(enabled=True, sigma_rel=sigma_rel)))
    target = np.full((2, 32, 32), 50e-6)
    programmed = model.program(0, target, (POSITIVE, NEGATIVE))
    error = programmed - target
    expected_sigma = sigma_rel * (ARRAY.g_max_S - ARRAY.g_min_S)
    assert np.std(error) == pytest.approx(expected_sigma, rel=0.1)
    assert abs(np.mean(error)) < 4 * expected_sigma / np.sqrt(error.size)


def test_programming_error_clipped_to_window():
    model = DeviceModel(_config(programming=ProgrammingError(enabled=True, sigma_rel=0.5)))
    programmed = model.program(0, np.full((2, 32, 32), ARRAY.g_max_S), (POSITIVE, NEGATIVE))
    assert programmed.min() >= ARRAY.g_min_S
    assert programmed.max() <= ARRAY.g_max_S


def test_programming_draws_independent_of_stuck_cells():
    programming = ProgrammingError(enabled=True, sigma_rel=0.02)
    target = np.full((2, 32, 32), 40e-6)
    plain = DeviceModel(_config(programming=programming)).program(1, target, (POSITIVE, NEGATIVE))
    model = DeviceModel(_config(programming=programming, stuck=StuckCells(enabled=True, fraction=0.05)))
    with_stuck = model.program(1, target, (POSITIVE, NEGATIVE))
    stuck = model.stuck_map.stuck[1]
    assert np.array_equal(plain[~stuck], with_stuck[~stuck])
    assert np.array_equal(with_stuck[stuck], model.stuck_map.value_S[1][stuck])


def test_unprogrammed_half_kept():
    model = DeviceModel(_config(programming=ProgrammingError(enabled=True, sigma_rel=0.02)))
    target = np.full((2, 32, 32), 40e-6)
    programmed = model.program(0, target, (POSITIVE,))
    assert np.array_equal(programmed[NEGATIVE], target[NEGATIVE])
    assert not np.array_equal(programmed[POSITIVE], target[POSITIVE])


def test_read_noise_statistics():
    model = DeviceModel(_config(read_noise=ReadNoise(enabled=True, sigma_rel=0.01)))
    programmed = np.full((2, 32, 32), 50e-6)
    first = model.read(programmed)
    second = model.read(programmed)
    assert np.std(first / programmed - 1) == pytest.approx(0.01, rel=0.1)
    assert not np.array_equal(first, second)
    assert model.read_noise_on


def test_read_noise_off_returns_programmed():
    model = DeviceModel(_config())
    programmed = np.full((2, 32, 32), 50e-6)
    assert model.read(programmed) is programmed
    assert not model.read_noise_on


# Consecutive lines select by slices, gapped ones by index arrays.
READ_SELECTIONS = {
    "all": (),
    "block": (slice(None), slice(2, 9), slice(0, 5)),
    "gapped": (slice(None), np.array([1, 4, 30])[:, None], np.array([0, 2, 31])[None, :]),
}


@pytest.mark.parametrize("selection", list(READ_SELECTIONS))
@pytest.mark.parametrize("reuse_buffer", [False, True])
def test_read_many_equals_repeated_reads(selection, reuse_buffer):
    # sigma 0.3 sends a few factors below zero, so the clip at zero is exercised too.
    config = _config(read_noise=ReadNoise(enabled=True, sigma_rel=0.3))
    cells = READ_SELECTIONS[selection]
    many, single = DeviceModel(config), DeviceModel(config)
    programmed = np.random.default_rng(3).uniform(1e-6, 100e-6, (2, 32, 32))
    buffer = np.full(6 * programmed.size, np.nan) if reuse_buffer else None
    batch = many.read_many(programmed, 5, cells, buffer=buffer)
    clipped = 0
    for k in range(5):
        expected = single.read(programmed)[cells]
        assert batch[k].tobytes() == expected.tobytes()
        clipped += int(np.count_nonzero(expected == 0.0))
    assert many.streams.read_noise.standard_normal() == single.streams.read_noise.standard_normal()
    if selection == "all":
        assert clipped > 0


def test_read_many_without_read_noise():
    model = DeviceModel(_config())
    programmed = np.random.default_rng(4).uniform(1e-6, 100e-6, (2, 32, 32))
    cells = READ_SELECTIONS["block"]
    batch = model.read_many(programmed, 3, cells)
    assert batch.shape == (3, 2, 7, 5)
    assert np.array_equal(batch[2], programmed[cells])
    batch[0, 0, 0, 0] = 0.0
    assert programmed[0, 2, 0] != 0.0


def test_read_many_rejects_zero_count():
    model = DeviceModel(_config(read_noise=ReadNoise(enabled=True, sigma_rel=0.01)))
    with pytest.raises(ValueError, match="count = 0 is invalid"):
        model.read_many(np.ones((2, 32, 32)), 0)


@pytest.mark.parametrize(
    "effect",
    [
        {"stuck": StuckCells(enabled=True, fraction=0.05)},
        {"programming": ProgrammingError(enabled=True, sigma_rel=0.05)},
    ],
    ids=["stuck", "programming"],
)
def test_device_effect_changes_product(effect):
    rng = np.random.default_rng(21)
    matrix = rng.uniform(-1, 1, (16, 16))
    x = rng.uniform(-1, 1, 16)
    # The backdoor applies ProgrammingError directly; write-verify would
    # replace it by the cell model's own spread.
    ideal = multiply(matrix, x, _config(), programming="backdoor")
    degraded = multiply(matrix, x, _config(**effect), programming="backdoor")
    assert not np.array_equal(ideal.codes, degraded.codes)
    exact = matrix @ x
    assert np.linalg.norm(degraded.x - exact) > 2 * np.linalg.norm(ideal.x - exact)
