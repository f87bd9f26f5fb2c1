"""K-FAC optimizer: Kronecker factors, the preconditioned step, damping, blocks, backends."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from amc.train.inverse_backends import (
    ExactBackend,
    FactorSolver,
    FactorTooLargeError,
    InverseBackend,
    UnstableFactorError,
)
from amc.train.kfac import KFAC, factor_shapes
from amc.train.models import TwoLayerCNN


def _one_step(model, x, y, **options):
    optimizer = KFAC(model, **options)
    optimizer.zero_grad()
    F.cross_entropy(model(x), y).backward()
    optimizer.step()
    return optimizer


def test_linear_factors_match_definition():
    torch.manual_seed(0)
    layer = nn.Linear(5, 3)
    x = torch.randn(16, 5)
    y = torch.randint(0, 3, (16,))
    captured = {}
    output = layer(x)
    output.register_hook(lambda g: captured.setdefault("g", g))
    F.cross_entropy(output, y).backward()
    layer.zero_grad()

    optimizer = _one_step(layer, x, y)
    state = optimizer.state[layer.weight]
    a = torch.cat([x, torch.ones(16, 1)], dim=1)
    g = captured["g"] * 16  # per-example gradients of a mean loss
    torch.testing.assert_close(state["A"], a.T @ a / 16)
    torch.testing.assert_close(state["G"], g.T @ g / 16)


def test_conv_factors_equal_linear_for_full_kernel():
    # A convolution whose kernel covers the whole image has one output
    # position, so KFC reduces to the linear-layer factors.
    torch.manual_seed(1)
    conv = nn.Conv2d(1, 4, kernel_size=6)
    linear = nn.Linear(36, 4)
    with torch.no_grad():
        linear.weight.copy_(conv.weight.reshape(4, 36))
        linear.bias.copy_(conv.bias)
    x = torch.randn(8, 1, 6, 6)
    y = torch.randint(0, 4, (8,))
    conv_state = _one_step(nn.Sequential(conv, nn.Flatten()), x, y).state[conv.weight]
    linear_state = _one_step(nn.Sequential(nn.Flatten(), linear), x, y).state[linear.weight]
    torch.testing.assert_close(conv_state["A"], linear_state["A"])
    torch.testing.assert_close(conv_state["G"], linear_state["G"])


def test_conv_factors_sum_and_average_over_positions():
    torch.manual_seed(2)
    conv = nn.Conv2d(2, 3, kernel_size=3, padding=1)
    model = nn.Sequential(conv, nn.Flatten(), nn.Linear(3 * 5 * 5, 4))
    x = torch.randn(6, 2, 5, 5)
    y = torch.randint(0, 4, (6,))
    captured = {}
    out = conv(x)
    out.register_hook(lambda g: captured.setdefault("g", g))
    F.cross_entropy(model[2](model[1](out)), y).backward()
    model.zero_grad()

    state = _one_step(model, x, y).state[conv.weight]
    patches = F.unfold(x, 3, padding=1).transpose(1, 2).reshape(-1, 18)
    patches = torch.cat([patches, torch.ones(len(patches), 1)], dim=1)
    positions = 25
    g = captured["g"].permute(0, 2, 3, 1).reshape(-1, 3) * 6
    torch.testing.assert_close(state["A"], patches.T @ patches / 6)
    torch.testing.assert_close(state["G"], g.T @ g / (6 * positions))
    assert factor_shapes(conv) == (19, 3)


def test_step_is_damped_natural_gradient():
    torch.manual_seed(3)
    layer = nn.Linear(4, 3)
    x = torch.randn(32, 4)
    y = torch.randint(0, 3, (32,))
    before_w, before_b = layer.weight.detach().clone(), layer.bias.detach().clone()
    damping, lr = 0.1, 0.5
    optimizer = _one_step(layer, x, y, lr=lr, momentum=0.0, damping=damping, kl_clip=None)
    state = optimizer.state[layer.weight]
    a, g = state["A"].double(), state["G"].double()
    pi = math.sqrt((torch.trace(a) / 5) / (torch.trace(g) / 3))
    a_damped = a + pi * math.sqrt(damping) * torch.eye(5, dtype=torch.float64)
    g_damped = g + math.sqrt(damping) / pi * torch.eye(3, dtype=torch.float64)
    grad = torch.cat([layer.weight.grad, layer.bias.grad[:, None]], dim=1).double()
    natural = torch.linalg.solve(g_damped, grad) @ torch.linalg.inv(a_damped)
    torch.testing.assert_close(before_w - layer.weight.detach(), (lr * natural[:, :4]).float(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(before_b - layer.bias.detach(), (lr * natural[:, 4]).float(), rtol=1e-4, atol=1e-6)


def test_kl_clip_bounds_the_step():
    torch.manual_seed(4)
    layer = nn.Linear(4, 3)
    x = torch.randn(32, 4) * 10
    y = torch.randint(0, 3, (32,))
    lr, bound = 1.0, 1e-6
    optimizer = _one_step(layer, x, y, lr=lr, momentum=0.0, kl_clip=bound)
    # Take the same step without clipping and compare the sizes.
    torch.manual_seed(4)
    reference = nn.Linear(4, 3)
    start = reference.weight.detach().clone()
    _one_step(reference, x, y, lr=lr, momentum=0.0, kl_clip=None)
    clipped = (layer.weight.detach() - start).norm()
    unclipped = (reference.weight.detach() - start).norm()
    assert clipped < unclipped
    assert optimizer.steps == 1


def test_inverse_refresh_interval(digits):
    torch.manual_seed(0)
    model = TwoLayerCNN(digits.image_shape, 10)
    optimizer = KFAC(model, inverse_update_interval=3)
    for step in range(7):
        index = torch.arange(step * 16, step * 16 + 16)
        optimizer.zero_grad()
        F.cross_entropy(model(digits.x_train[index]), digits.y_train[index]).backward()
        optimizer.step()
    # Refreshes at steps 0, 3 and 6; four factors each.
    assert sorted({r.step for r in optimizer.inversion_log}) == [0, 3, 6]
    assert len(optimizer.inversion_log) == 12
    sizes = sorted({(r.layer, r.factor, r.size) for r in optimizer.inversion_log})
    assert sizes == [("conv", "A", 10), ("conv", "G", 8), ("fc", "A", 129), ("fc", "G", 10)]
    assert all(r.columns_solved == r.size for r in optimizer.inversion_log)


def test_solve_mode_matches_inverse_mode(digits):
    results = []
    for mode in ("inverse", "solve"):
        torch.manual_seed(0)
        model = TwoLayerCNN(digits.image_shape, 10)
        optimizer = KFAC(model, apply_mode=mode, inverse_update_interval=2)
        for step in range(5):
            index = torch.arange(step * 32, step * 32 + 32)
            optimizer.zero_grad()
            F.cross_entropy(model(digits.x_train[index]), digits.y_train[index]).backward()
            optimizer.step()
        results.append([p.detach().clone() for p in model.parameters()])
        if mode == "solve":
            # Each step solves the gradient rows: the fc A factor gets 10 columns per step.
            fc_a = [r for r in optimizer.inversion_log if r.layer == "fc" and r.factor == "A"]
            assert fc_a[0].columns_solved == 20
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_block_diagonal_splits_large_factors(digits):
    torch.manual_seed(0)
    model = TwoLayerCNN(digits.image_shape, 10)
    optimizer = KFAC(model, block_size=32)
    sizes = dict(optimizer.factor_sizes())
    blocks = [sizes[f"fc.A[{i}]"] for i in range(5)]
    assert sum(blocks) == 129
    assert max(blocks) <= 32
    assert min(blocks) >= 25
    assert sizes["conv.A"] == 10
    index = torch.arange(64)
    optimizer.zero_grad()
    F.cross_entropy(model(digits.x_train[index]), digits.y_train[index]).backward()
    optimizer.step()
    inverse = optimizer.state[model.fc.weight]["A_inv"]
    assert inverse.shape == (129, 129)
    assert float(inverse[:26, 26:].abs().max()) == 0.0
    assert float(inverse[:26, :26].abs().max()) > 0.0


class _SmallBackend(ExactBackend):
    name = "small"
    max_size = 32


def test_too_large_factor_names_the_fix(digits):
    model = TwoLayerCNN(digits.image_shape, 10)
    with pytest.raises(FactorTooLargeError) as info:
        KFAC(model, backend=_SmallBackend())
    message = str(info.value)
    assert "fc.A is 129x129" in message
    assert "--array-size 129" in message
    assert "--block-diagonal 32" in message
    KFAC(TwoLayerCNN(digits.image_shape, 10), backend=_SmallBackend(), block_size=32)


class _UnstableBelow(InverseBackend):
    """Reports a factor unstable until its smallest diagonal entry exceeds a threshold."""

    name = "unstable-below"
    analog = True

    def __init__(self, threshold):
        self.threshold = threshold
        self.inner = ExactBackend()

    def prepare(self, matrix, *, label):
        smallest = float(torch.linalg.eigvalsh(matrix).min())
        if smallest < self.threshold:
            raise UnstableFactorError(label, smallest - self.threshold)
        return self.inner.prepare(matrix, label=label)


def test_unstable_factor_raises_damping(digits):
    torch.manual_seed(0)
    model = TwoLayerCNN(digits.image_shape, 10)
    optimizer = KFAC(model, backend=_UnstableBelow(0.5), damping=1e-4, damping_growth=2.0)
    index = torch.arange(64)
    optimizer.zero_grad()
    F.cross_entropy(model(digits.x_train[index]), digits.y_train[index]).backward()
    optimizer.step()
    assert optimizer.damping_raises, "no damping raise was recorded"
    for event in optimizer.damping_raises:
        assert event.damping_applied > event.damping_requested
        assert event.min_real_eigenvalue < 0
    raised = {e.label for e in optimizer.damping_raises}
    for record in optimizer.inversion_log:
        label = f"{record.layer}.{record.factor}"
        assert (record.damping_applied > record.damping_requested) == (label in raised)


def test_unstable_factor_gives_up_with_advice(digits):
    model = TwoLayerCNN(digits.image_shape, 10)
    optimizer = KFAC(model, backend=_UnstableBelow(1e9), max_damping_raises=3)
    optimizer.zero_grad()
    F.cross_entropy(model(digits.x_train[:32]), digits.y_train[:32]).backward()
    with pytest.raises(UnstableFactorError, match="still unstable after raising the damping 3 times"):
        optimizer.step()


def test_no_statistics_context_skips_factor_update():
    torch.manual_seed(5)
    layer = nn.Linear(3, 2)
    optimizer = KFAC(layer)
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    with optimizer.no_statistics():
        F.cross_entropy(layer(x), y).backward()
    optimizer.step()
    assert "A" not in optimizer.state[layer.weight]
    assert optimizer.inversion_log == []


def test_rejects_invalid_settings():
    layer = nn.Linear(3, 2)
    for options, text in (({"damping": 0.0}, "damping"), ({"lr": -1.0}, "lr"),
                          ({"apply_mode": "both"}, "apply_mode"), ({"factor_decay": 1.0}, "factor_decay")):
        with pytest.raises(ValueError, match=text):
            KFAC(layer, **options)
    with pytest.raises(ValueError, match="no nn.Linear or nn.Conv2d"):
        KFAC(nn.Sequential(nn.BatchNorm1d(3)))
    with pytest.raises(ValueError, match="groups=1"):
        KFAC(nn.Conv2d(4, 4, 3, groups=2))


def test_exact_backend_solver_counts_columns():
    matrix = torch.tensor([[4.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    solver = ExactBackend().prepare(matrix, label="t")
    assert isinstance(solver, FactorSolver)
    torch.testing.assert_close(solver.inverse() @ matrix, torch.eye(2, dtype=torch.float64))
    solver.solve(torch.ones(2, 3, dtype=torch.float64))
    assert solver.columns_solved == 5
