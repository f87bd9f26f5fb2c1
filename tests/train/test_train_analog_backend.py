"""Analog-model backend: settled outputs, equilibration, stability, refinement, co-simulation hook."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from amc.model.config import ArrayParams, MacroConfig, NonIdealities, ProgrammingError, ReadNoise, StuckCells
from amc.model.encoding import output_gain
from amc.model.solve import ProgrammedSolver
from amc.model.switch_matrix import mode_by_name
from amc.train.inverse_backends import (
    AnalogBackend,
    BackendError,
    CosimSampledBackend,
    FactorTooLargeError,
    UnstableFactorError,
    _SettledINV,
    analog_backend_factory,
    cosim_solve_function,
)
from amc.train.kfac import KFAC
from amc.train.models import TwoLayerCNN


def _spd(n, seed, shift=0.3):
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, n))
    return m @ m.T / n + shift * np.eye(n)


NO_READ_NOISE = MacroConfig().replace(nonideal=NonIdealities(read_noise=ReadNoise(enabled=False)))


@pytest.mark.parametrize("config", [MacroConfig().ideal(), MacroConfig(), NO_READ_NOISE],
                         ids=["ideal", "default", "no-read-noise"])
def test_settled_outputs_match_model_solve(config):
    a = _spd(8, 1)
    b = np.random.default_rng(2).normal(size=(8, 5))
    reference = ProgrammedSolver(a, config, differential=True).solve(b)
    programmed = ProgrammedSolver(a, config, differential=True)
    x, operations, failed = _SettledINV(programmed).solve(b)
    gain = output_gain(mode_by_name("INV"), programmed.mapping.g_unit_S, config.circuit, reference.input_scale_V)
    codes = np.abs(x - reference.x) / (config.adc.lsb_V / gain)
    assert operations == reference.operations
    assert not failed.any()
    # The full model samples just before the last half LSB of the transient
    # has decayed, so a few outputs may differ by a code or so.
    assert np.mean(codes < 1e-6) >= 0.9
    assert codes.max() <= 4


def test_ideal_inverse_is_close_to_exact():
    a = _spd(12, 3)
    solver = AnalogBackend(MacroConfig().ideal()).prepare(torch.from_numpy(a), label="t")
    inverse = solver.inverse().numpy()
    exact = np.linalg.inv(a)
    assert np.linalg.norm(inverse - exact) / np.linalg.norm(exact) < 0.03
    assert solver.info["lambda_min"] > 0
    assert solver.info["settle_time_s"] > 0
    assert solver.info["operations"] >= 12


def test_equilibration_handles_badly_scaled_factor():
    # Feature variances spanning four decades, as in K-FAC input factors.
    a = _spd(10, 4)
    scale = np.logspace(-2, 2, 10)
    badly_scaled = a * scale[:, None] * scale[None, :]
    exact = np.linalg.inv(badly_scaled)
    errors = {}
    for equilibrate in (True, False):
        backend = AnalogBackend(MacroConfig().ideal(), equilibrate=equilibrate)
        inverse = backend.prepare(torch.from_numpy(badly_scaled), label="t").inverse().numpy()
        errors[equilibrate] = np.linalg.norm((inverse - exact) * scale[:, None] * scale[None, :]) \
            / np.linalg.norm(exact * scale[:, None] * scale[None, :])
    assert errors[True] < 0.05
    assert errors[True] < errors[False]


def test_indefinite_factor_is_unstable():
    a = np.diag([1.0, 1.0, -0.5, 2.0])
    with pytest.raises(UnstableFactorError) as info:
        AnalogBackend(MacroConfig().ideal(), equilibrate=False).prepare(torch.from_numpy(a), label="fc.A")
    assert info.value.min_real_eigenvalue < 0
    assert "fc.A" in str(info.value)


def test_read_noise_margin_rejects_marginal_factor():
    # Nearly singular: smallest eigenvalue 1e-4 of a unit-diagonal matrix.
    v = np.ones(6) / np.sqrt(6)
    a = np.eye(6) - (1 - 1e-4) * np.outer(v, v)
    only_read_noise = NonIdealities(programming=ProgrammingError(enabled=False), stuck=StuckCells(enabled=False),
                                    quantize_levels=False, read_noise=ReadNoise())
    config = MacroConfig().replace(nonideal=only_read_noise)
    with pytest.raises(UnstableFactorError, match="read-noise margin"):
        AnalogBackend(config).prepare(torch.from_numpy(a), label="t")
    solver = AnalogBackend(config, read_noise_margin=0.0).prepare(torch.from_numpy(a), label="t")
    assert solver.info["read_noise_margin"] == 0.0


def test_refinement_reduces_residual_and_never_raises_it():
    a = _spd(10, 5, shift=0.1)
    residuals = {}
    for steps in (0, 2):
        solver = AnalogBackend(MacroConfig(), refine_steps=steps).prepare(torch.from_numpy(a), label="t")
        solver.inverse()
        residuals[steps] = solver.info["relative_residual"]
    assert residuals[2] < residuals[0]
    # Three levels per cell: the programmed matrix is far from the factor, so
    # corrections need not converge and the guard must keep the better iterate.
    a = _spd(10, 5, shift=1.0)
    coarse = MacroConfig().replace(array=ArrayParams(levels=3))
    plain = AnalogBackend(coarse, refine_steps=0).prepare(torch.from_numpy(a), label="t")
    plain.inverse()
    guarded = AnalogBackend(coarse, refine_steps=3).prepare(torch.from_numpy(a), label="t")
    guarded.inverse()
    assert guarded.info["relative_residual"] <= plain.info["relative_residual"] + 1e-12


def test_too_large_factor_for_default_macro(digits):
    model = TwoLayerCNN(digits.image_shape, 10)
    with pytest.raises(FactorTooLargeError, match="--block-diagonal 32"):
        KFAC(model, backend=AnalogBackend(MacroConfig()))


def test_kfac_step_on_analog_backend_records_inversions(digits):
    torch.manual_seed(0)
    model = TwoLayerCNN(digits.image_shape, 10)
    optimizer = KFAC(model, backend=AnalogBackend(MacroConfig()), block_size=32, lr=0.3)
    losses = []
    for step in range(12):
        index = torch.arange(step * 64, step * 64 + 64) % len(digits.y_train)
        optimizer.zero_grad()
        loss = F.cross_entropy(model(digits.x_train[index]), digits.y_train[index])
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    labels = {f"{r.layer}.{r.factor}" for r in optimizer.inversion_log}
    assert "fc.A[4]" in labels
    assert all(r.info["operations"] >= r.size for r in optimizer.inversion_log)


def test_tiny_damping_is_raised_on_analog_backend(digits):
    torch.manual_seed(0)
    model = TwoLayerCNN(digits.image_shape, 10)
    optimizer = KFAC(model, backend=AnalogBackend(MacroConfig()), block_size=32, damping=1e-7)
    optimizer.zero_grad()
    F.cross_entropy(model(digits.x_train[:64]), digits.y_train[:64]).backward()
    optimizer.step()
    assert optimizer.damping_raises
    assert all(e.damping_applied > e.damping_requested for e in optimizer.damping_raises)


def test_cosim_sampling_with_fake_solver_keeps_trajectory(digits):
    calls = []

    def fake(a, b, config, differential):
        calls.append((a.shape, b.shape, config.seed))
        return np.linalg.solve(a, b)

    def train(backend):
        torch.manual_seed(0)
        model = TwoLayerCNN(digits.image_shape, 10)
        optimizer = KFAC(model, backend=backend, block_size=32, inverse_update_interval=2)
        for step in range(4):
            index = torch.arange(step * 64, step * 64 + 64)
            optimizer.zero_grad()
            F.cross_entropy(model(digits.x_train[index]), digits.y_train[index]).backward()
            optimizer.step()
        return [p.detach().clone() for p in model.parameters()]

    config = MacroConfig().replace(seed=3)
    sampled = CosimSampledBackend(AnalogBackend(config), fake, every=5, max_samples=3, columns=2)
    with_sampling = train(sampled)
    without = train(AnalogBackend(config))
    for a, b in zip(with_sampling, without):
        assert torch.equal(a, b)
    assert len(sampled.comparisons) == 3
    assert len(calls) == 3
    assert all(shape_b[1] == 2 for _, shape_b, _ in calls)
    # The fake solves the same problem exactly, so its residual vanishes and
    # the difference is the analog error.
    assert all(c.relative_residual_cosim < 1e-9 for c in sampled.comparisons)
    assert all(0 < c.relative_difference < np.inf for c in sampled.comparisons)


def test_cosim_hook_through_host_model_backend():
    a = _spd(6, 7, shift=0.5)
    hook = cosim_solve_function(backend="model")
    backend = CosimSampledBackend(AnalogBackend(MacroConfig().ideal()), hook, every=1, columns=2)
    backend.prepare(torch.from_numpy(a), label="t").inverse()
    (comparison,) = backend.comparisons
    # Ideal devices: the controller path and the model give the same codes.
    assert comparison.relative_difference < 1e-9
    assert comparison.columns == 2


def test_stuck_array_is_replaced_by_a_spare():
    # Every cell stuck: no damping can stabilize the programmed factor.
    config = MacroConfig().replace(nonideal=NonIdealities(stuck=StuckCells(fraction=1.0)))
    backend = AnalogBackend(config, spare_after=2)
    a = torch.from_numpy(_spd(6, 9))
    first = backend.macro_for("f")
    for _ in range(2):
        with pytest.raises(UnstableFactorError):
            backend.prepare(a, label="f")
    assert [label for label, _ in backend.replacements] == ["f"]
    assert backend.macro_for("f") is not first
    assert backend.macro_for("f").config.seed != first.config.seed


def test_factor_keeps_its_macro_across_programmings():
    backend = AnalogBackend(MacroConfig())
    a = torch.from_numpy(_spd(6, 10))
    backend.prepare(a, label="f").inverse()
    macro = backend.macro_for("f")
    backend.prepare(a, label="f").inverse()
    assert backend.macro_for("f") is macro
    assert backend.macro_for("g") is not macro


def test_write_verify_programming_reports_pulses():
    solver = AnalogBackend(MacroConfig(), programming="write-verify").prepare(torch.from_numpy(_spd(4, 11)),
                                                                               label="f")
    assert solver.info["programming_pulses"] > 0
    assert solver.info["programming_time_s"] > 0


def test_factory_and_option_errors():
    with pytest.raises(BackendError, match="refine_steps"):
        AnalogBackend(MacroConfig(), refine_steps=-1)
    with pytest.raises(BackendError, match="fidelity"):
        AnalogBackend(MacroConfig(), fidelity="spice")
    with pytest.raises(BackendError, match="MacroConfig"):
        AnalogBackend("32x32")
    with pytest.raises(BackendError, match="programming"):
        AnalogBackend(MacroConfig(), programming="laser")
    with pytest.raises(BackendError, match="host backend"):
        cosim_solve_function(backend="fpga")
    factory = analog_backend_factory(MacroConfig())
    assert factory(5).config.seed == 5
    assert factory(6).config.seed == 6


def test_predictive_ranging_cuts_operations():
    a = _spd(16, 8)
    counts, residuals = {}, {}
    for target in (None, 0.75):
        backend = AnalogBackend(MacroConfig().ideal(), predictive_ranging=target)
        backend.prepare(torch.from_numpy(a), label="f").inverse()
        # The second programming of the same factor label can use the first inverse.
        solver = backend.prepare(torch.from_numpy(a * 1.05), label="f")
        solver.inverse()
        counts[target] = solver.info["operations"] / 16
        residuals[target] = solver.info["relative_residual"]
    assert counts[None] > 2.5
    assert counts[0.75] < 1.5
    assert residuals[0.75] < 2 * residuals[None] + 0.01


def test_transient_fidelity_matches_settled():
    a = _spd(5, 12, shift=0.5)
    inverses = {}
    for fidelity in ("settled", "transient"):
        backend = AnalogBackend(MacroConfig().ideal(), fidelity=fidelity)
        inverses[fidelity] = backend.prepare(torch.from_numpy(a), label="f").inverse().numpy()
    exact = np.linalg.inv(a)
    assert np.linalg.norm(inverses["transient"] - exact) / np.linalg.norm(exact) < 0.03
    assert np.allclose(inverses["transient"], inverses["settled"], rtol=0.02, atol=0.02 * np.abs(exact).max())
