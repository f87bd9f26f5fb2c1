"""K-FAC natural-gradient optimizer with a pluggable inversion backend.

Kronecker-factored approximate curvature (K-FAC) approximates the Fisher
block of each layer by the Kronecker product of two small matrices and
preconditions the layer gradient with their inverses:

- Linear layers: Martens & Grosse, "Optimizing neural networks with
  Kronecker-factored approximate curvature", ICML 2015. With the input a
  (extended by a constant 1 for the bias) and the per-example gradient g of
  the loss with respect to the pre-activation s = W a,
  F ~ A (x) G with A = E[a a^T] and G = E[g g^T], and the update direction for
  the weight matrix [W b] is G^-1 grad A^-1.
- Conv2d layers (KFC): Grosse & Martens, "A Kronecker-factored approximate
  Fisher matrix for convolution layers", ICML 2016. a is an input patch at
  one output position t (|T| positions), A = E[sum_t a_t a_t^T] and
  G = E[sum_t g_t g_t^T] / |T|.

Damping follows the factored Tikhonov damping of Martens & Grosse (2015,
section 6.3): A + pi sqrt(lambda) I and G + sqrt(lambda)/pi I, with pi chosen
from the average eigenvalues (traces) of the two factors.

The inverse or solve of each damped factor goes through an `InverseBackend`
(see `amc.train.inverse_backends`): exact floating point, the analog macro
model, or the model with co-simulation samples. For analog backends each
factor is checked against the INV circuit's stability condition by the
backend when it is mapped. If the check fails, the optimizer raises that
factor's damping by `damping_growth` and tries again, and records the raise.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch
from torch import nn
import torch.nn.functional as F

from .inverse_backends import (
    BackendError,
    ExactBackend,
    FactorSolver,
    InverseBackend,
    UnstableFactorError,
)

__all__ = ["KFAC", "InversionRecord", "DampingRaise", "factor_shapes"]

log = logging.getLogger(__name__)


@dataclass
class InversionRecord:
    """One damped factor prepared by the backend (one programming of the macro).

    Attributes
    ----------
    step : int
        Optimizer step (0-based) at which the factor was prepared.
    layer, factor : str
        Module name and "A" (input side) or "G" (output-gradient side); blocks
        of a block-diagonal factor are "A[0]", "A[1]", ...
    size : int
        Order N of the factor (or block).
    damping_requested, damping_applied : float
        Damping added to the diagonal before and after stability raises.
    columns_solved : int
        Right-hand-side columns solved with this programmed factor.
    passes : int
        Analog passes per column (1 + iterative-refinement steps).
    info : dict
        Backend diagnostics (settling time, eigenvalue bounds, residuals,
        analog operations); the solver's own dict, so solves after the
        refresh update it.
    """

    step: int
    layer: str
    factor: str
    size: int
    damping_requested: float
    damping_applied: float
    columns_solved: int = 0
    passes: int = 1
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DampingRaise:
    """A factor whose damping had to be raised to make the INV circuit stable."""

    step: int
    label: str
    damping_requested: float
    damping_applied: float
    min_real_eigenvalue: float
    """Smallest eigenvalue real part reported at the requested damping."""


def factor_shapes(module: nn.Module) -> tuple[int, int]:
    """Return the orders (A, G) of the Kronecker factors of a Linear or Conv2d layer."""
    bias = 1 if module.bias is not None else 0
    if isinstance(module, nn.Linear):
        return module.in_features + bias, module.out_features
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return module.in_channels * kh * kw + bias, module.out_channels
    raise TypeError(f"K-FAC supports nn.Linear and nn.Conv2d, not {type(module).__name__}")


def _block_bounds(size: int, block_size: int | None) -> list[tuple[int, int]]:
    """Split range(size) into contiguous blocks of at most block_size, of near-equal length."""
    if block_size is None or size <= block_size:
        return [(0, size)]
    count = math.ceil(size / block_size)
    edges = [round(i * size / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


class _Layer:
    """Per-layer K-FAC state that is not a tensor of the optimizer state."""

    def __init__(self, name: str, module: nn.Module, block_size: int | None) -> None:
        self.name = name
        self.module = module
        self.a_size, self.g_size = factor_shapes(module)
        self.a_blocks = _block_bounds(self.a_size, block_size)
        self.g_blocks = _block_bounds(self.g_size, block_size)
        self.inputs: torch.Tensor | None = None
        self.grad_outputs: torch.Tensor | None = None
        self.solvers: dict[str, list[tuple[FactorSolver, InversionRecord]]] = {}
        self.records: dict[str, list[InversionRecord]] = {}


class KFAC(torch.optim.Optimizer):
    """K-FAC natural-gradient descent for the Linear and Conv2d layers of a model.

    Call ``loss.backward()`` then ``step()`` as with any optimizer. Hooks on
    the layers capture inputs and output gradients during training-mode
    forward and backward passes. Parameters of other modules get plain
    momentum SGD with the same learning rate and weight decay.

    Parameters
    ----------
    model : nn.Module
        Model whose nn.Linear and nn.Conv2d layers (groups = 1, zero padding)
        are preconditioned.
    lr : float
        Learning rate (dimensionless step factor).
    momentum : float
        Heavy-ball momentum applied to the preconditioned direction.
    weight_decay : float
        L2 coefficient added to the preconditioned direction (decoupled from
        the curvature, as in the common K-FAC implementations).
    damping : float
        Tikhonov damping lambda; each factor gets sqrt(lambda) (times pi or
        1/pi) on its diagonal.
    factor_decay : float
        Exponential moving-average weight of the old Kronecker factors.
    factor_update_interval : int
        Steps between factor statistics updates.
    inverse_update_interval : int
        Steps between inverse refreshes (each refresh programs every factor
        on the backend once).
    kl_clip : float or None
        Scale the update so that lr^2 * sum(direction . gradient) stays at or
        below this bound (the KL-divergence clipping of Ba, Grosse & Martens,
        "Distributed second-order optimization using Kronecker-factored
        approximations", ICLR 2017). None switches it off.
    pi_correction : bool
        Split the damping between A and G by pi (True) or add sqrt(lambda) to both.
    block_size : int or None
        Approximate each factor larger than this by its block-diagonal part
        with contiguous blocks of at most this order (an explicit extra
        approximation, for macros whose arrays are smaller than the factors).
    apply_mode : {"inverse", "solve"}
        "inverse": at each refresh, invert each factor (solve against the
        identity, N columns) and precondition digitally until the next refresh.
        "solve": keep each factor programmed and solve the gradient through
        the backend at every step (rows of the gradient as right-hand sides).
    backend : InverseBackend, optional
        Inversion backend; `ExactBackend` by default.
    damping_growth : float
        Factor by which the damping of a factor is raised when the backend
        reports it unstable.
    max_damping_raises : int
        Give up (raise `UnstableFactorError`) after this many raises of one factor.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        damping: float = 0.03,
        factor_decay: float = 0.95,
        factor_update_interval: int = 1,
        inverse_update_interval: int = 10,
        kl_clip: float | None = 1e-3,
        pi_correction: bool = True,
        block_size: int | None = None,
        apply_mode: str = "inverse",
        backend: InverseBackend | None = None,
        damping_growth: float = 2.0,
        max_damping_raises: int = 30,
    ) -> None:
        checks = (
            (lr > 0, f"lr = {lr!r} is invalid: use a learning rate above zero"),
            (0 <= momentum < 1, f"momentum = {momentum!r} is invalid: use a value in [0, 1)"),
            (weight_decay >= 0, f"weight_decay = {weight_decay!r} is invalid: use 0 or more"),
            (damping > 0, f"damping = {damping!r} is invalid: use a value above zero (the gradient factor is "
                          "singular without it)"),
            (0 <= factor_decay < 1, f"factor_decay = {factor_decay!r} is invalid: use a value in [0, 1)"),
            (factor_update_interval >= 1, f"factor_update_interval = {factor_update_interval!r} is invalid: use 1 or more"),
            (inverse_update_interval >= 1, f"inverse_update_interval = {inverse_update_interval!r} is invalid: use 1 or more"),
            (kl_clip is None or kl_clip > 0, f"kl_clip = {kl_clip!r} is invalid: use a value above zero or None"),
            (block_size is None or block_size >= 1, f"block_size = {block_size!r} is invalid: use None or 1 or more"),
            (apply_mode in ("inverse", "solve"), f"apply_mode = {apply_mode!r} is invalid: use 'inverse' or 'solve'"),
            (damping_growth > 1, f"damping_growth = {damping_growth!r} is invalid: use a factor above 1"),
            (max_damping_raises >= 0, f"max_damping_raises = {max_damping_raises!r} is invalid: use 0 or more"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay)
        super().__init__(model.parameters(), defaults)
        self.damping = damping
        self.factor_decay = factor_decay
        self.factor_update_interval = factor_update_interval
        self.inverse_update_interval = inverse_update_interval
        self.kl_clip = kl_clip
        self.pi_correction = pi_correction
        self.block_size = block_size
        self.apply_mode = apply_mode
        self.backend = backend if backend is not None else ExactBackend()
        self.damping_growth = damping_growth
        self.max_damping_raises = max_damping_raises

        self.inversion_log: list[InversionRecord] = []
        self.damping_raises: list[DampingRaise] = []
        self.steps = 0
        self._recording = True
        self._layers: list[_Layer] = []
        self._handles = []
        for name, module in model.named_modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                self._add_layer(name or type(module).__name__, module)
        if not self._layers:
            raise ValueError("the model has no nn.Linear or nn.Conv2d layer for K-FAC to precondition")
        # Fail before training when a factor cannot fit the backend.
        for layer in self._layers:
            for tag, bounds in (("A", layer.a_blocks), ("G", layer.g_blocks)):
                for index, (lo, hi) in enumerate(bounds):
                    self.backend.check_size(hi - lo, self._label(layer, tag, index, len(bounds)))

    # ----------------------------------------------------------------- hooks

    def _add_layer(self, name: str, module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            if module.groups != 1 or module.padding_mode != "zeros" or isinstance(module.padding, str):
                raise ValueError(
                    f"K-FAC supports Conv2d with groups=1, zero padding and numeric padding; layer {name!r} has "
                    f"groups={module.groups}, padding_mode={module.padding_mode!r}, padding={module.padding!r}"
                )
        layer = _Layer(name, module, self.block_size)
        self._layers.append(layer)
        self._handles.append(module.register_forward_hook(self._make_forward_hook(layer)))

    def collecting_statistics(self) -> bool:
        """Return True when the next forward and backward pass update the factors."""
        return self._recording and self.steps % self.factor_update_interval == 0

    def _make_forward_hook(self, layer: _Layer):
        def capture_grad_output(grad: torch.Tensor) -> None:
            if self._recording:
                layer.grad_outputs = grad.detach()

        def hook(module, inputs, output):
            if module.training and output.requires_grad and self.collecting_statistics():
                layer.inputs = inputs[0].detach()
                layer.grad_outputs = None
                # A tensor hook on the output, not a module backward hook: it
                # also fires for the first layer, whose input needs no gradient.
                output.register_hook(capture_grad_output)
        return hook

    def remove_hooks(self) -> None:
        """Detach the capture hooks from the model (the optimizer cannot step afterwards)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    class _NoRecord:
        def __init__(self, optimizer: "KFAC") -> None:
            self.optimizer = optimizer

        def __enter__(self):
            self.previous = self.optimizer._recording
            self.optimizer._recording = False

        def __exit__(self, *exc):
            self.optimizer._recording = self.previous

    def no_statistics(self) -> "KFAC._NoRecord":
        """Context manager: forward/backward passes inside it do not update the factors.

        Use it for the loss backward when the factors come from a separate
        backward pass with labels sampled from the model (true Fisher).
        """
        return KFAC._NoRecord(self)

    # ------------------------------------------------------------- statistics

    def _batch_factors(self, layer: _Layer) -> tuple[torch.Tensor, torch.Tensor]:
        module, x, gy = layer.module, layer.inputs, layer.grad_outputs
        batch = x.shape[0]
        if isinstance(module, nn.Linear):
            a = x.reshape(-1, x.shape[-1])
            # The loss is a mean over the batch, so the per-example gradient
            # is batch times the captured output gradient.
            g = gy.reshape(-1, gy.shape[-1]) * batch
            if module.bias is not None:
                a = torch.cat([a, a.new_ones(a.shape[0], 1)], dim=1)
            return a.T @ a / a.shape[0], g.T @ g / g.shape[0]

        patches = F.unfold(x, module.kernel_size, dilation=module.dilation, padding=module.padding,
                           stride=module.stride)  # (batch, C_in*kh*kw, T)
        positions = patches.shape[-1]
        a = patches.transpose(1, 2).reshape(-1, patches.shape[1])
        if module.bias is not None:
            a = torch.cat([a, a.new_ones(a.shape[0], 1)], dim=1)
        g = gy.permute(0, 2, 3, 1).reshape(-1, gy.shape[1]) * batch
        # A sums over the |T| positions and G averages over them (KFC).
        return a.T @ a / batch, g.T @ g / (batch * positions)

    def _update_factors(self) -> None:
        for layer in self._layers:
            if layer.inputs is None or layer.grad_outputs is None:
                continue
            a_new, g_new = self._batch_factors(layer)
            state = self.state[layer.module.weight]
            if "A" not in state:
                state["A"], state["G"] = a_new.clone(), g_new.clone()
            else:
                state["A"].mul_(self.factor_decay).add_(a_new, alpha=1 - self.factor_decay)
                state["G"].mul_(self.factor_decay).add_(g_new, alpha=1 - self.factor_decay)
            layer.inputs = layer.grad_outputs = None

    # --------------------------------------------------------------- inverses

    @staticmethod
    def _label(layer: _Layer, tag: str, index: int, count: int) -> str:
        return f"{layer.name}.{tag}" + (f"[{index}]" if count > 1 else "")

    def _damping_split(self, a: torch.Tensor, g: torch.Tensor) -> tuple[float, float]:
        root = math.sqrt(self.damping)
        if not self.pi_correction:
            return root, root
        trace_a = float(torch.trace(a)) / a.shape[0]
        trace_g = float(torch.trace(g)) / g.shape[0]
        if trace_a <= 0 or trace_g <= 0:
            return root, root
        pi = math.sqrt(trace_a / trace_g)
        return pi * root, root / pi

    def _prepare(
        self, matrix: torch.Tensor, damping: float, label: str, layer: str, tag: str
    ) -> tuple[FactorSolver, InversionRecord]:
        eye = torch.eye(matrix.shape[0], dtype=torch.float64)
        base = matrix.to(torch.float64)
        base = (base + base.T) / 2
        applied = damping
        first_failure: UnstableFactorError | None = None
        for attempt in range(self.max_damping_raises + 1):
            try:
                solver = self.backend.prepare(base + applied * eye, label=label)
                break
            except UnstableFactorError as error:
                first_failure = first_failure or error
                if attempt == self.max_damping_raises:
                    raise UnstableFactorError(
                        label, error.min_real_eigenvalue,
                        f"still unstable after raising the damping {self.max_damping_raises} times from "
                        f"{damping:.3g} to {applied:.3g}; raise KFAC(damping=...) or use more conductance "
                        "levels or a block-diagonal approximation",
                    ) from error
                applied *= self.damping_growth
        if applied != damping:
            event = DampingRaise(self.steps, label, damping, applied, first_failure.min_real_eigenvalue)
            self.damping_raises.append(event)
            log.info(
                "step %d: damping of %s raised from %.3g to %.3g to make the INV circuit stable "
                "(smallest eigenvalue real part was %.3g)",
                event.step, label, damping, applied, event.min_real_eigenvalue,
            )
        record = InversionRecord(self.steps, layer, tag, matrix.shape[0], damping, applied,
                                 passes=solver.passes, info=solver.info)
        self.inversion_log.append(record)
        return solver, record

    def _refresh_inverses(self) -> None:
        for layer in self._layers:
            state = self.state[layer.module.weight]
            if "A" not in state:
                continue
            damp_a, damp_g = self._damping_split(state["A"], state["G"])
            for tag, factor, damp, bounds in (
                ("A", state["A"], damp_a, layer.a_blocks),
                ("G", state["G"], damp_g, layer.g_blocks),
            ):
                solvers = []
                for index, (lo, hi) in enumerate(bounds):
                    label = self._label(layer, tag, index, len(bounds))
                    name = tag if len(bounds) == 1 else f"{tag}[{index}]"
                    solvers.append(self._prepare(factor[lo:hi, lo:hi], damp, label, layer.name, name))
                if self.apply_mode == "inverse":
                    blocks = []
                    for solver, record in solvers:
                        blocks.append(solver.inverse())
                        record.columns_solved = solver.columns_solved
                    inverse = torch.block_diag(*blocks) if len(blocks) > 1 else blocks[0]
                    state[f"{tag}_inv"] = inverse.to(factor.dtype)
                    layer.solvers.pop(tag, None)
                else:
                    layer.solvers[tag] = solvers

    # ------------------------------------------------------------------- step

    def _gradient_matrix(self, layer: _Layer) -> torch.Tensor | None:
        weight, bias = layer.module.weight, layer.module.bias
        if weight.grad is None:
            return None
        grad = weight.grad.reshape(weight.shape[0], -1)
        if bias is not None:
            bias_grad = bias.grad if bias.grad is not None else torch.zeros_like(bias)
            grad = torch.cat([grad, bias_grad.reshape(-1, 1)], dim=1)
        return grad

    def _solve_blocks(self, layer: _Layer, tag: str, rhs: torch.Tensor) -> torch.Tensor:
        """Return F^-1 rhs for factor ``tag`` with its programmed solvers (solve mode)."""
        bounds = layer.a_blocks if tag == "A" else layer.g_blocks
        out = torch.empty_like(rhs, dtype=torch.float64)
        for (lo, hi), (solver, record) in zip(bounds, layer.solvers[tag]):
            out[lo:hi] = solver.solve(rhs[lo:hi])
            record.columns_solved = solver.columns_solved
        return out

    def _precondition(self, layer: _Layer, grad: torch.Tensor) -> torch.Tensor:
        state = self.state[layer.module.weight]
        if self.apply_mode == "inverse":
            return state["G_inv"] @ grad @ state["A_inv"]
        left = self._solve_blocks(layer, "G", grad.to(torch.float64))  # G^-1 grad
        return self._solve_blocks(layer, "A", left.T).T.to(grad.dtype)  # (A^-1 left^T)^T, A symmetric

    @torch.no_grad()
    def step(self, closure=None):
        """Update the factors, refresh the inverses when due, and take one preconditioned step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        self._update_factors()
        have_inverses = all(
            ("A_inv" in self.state[layer.module.weight]) if self.apply_mode == "inverse" else ("A" in layer.solvers)
            for layer in self._layers
            if "A" in self.state[layer.module.weight]
        )
        if self.steps % self.inverse_update_interval == 0 or not have_inverses:
            self._refresh_inverses()

        lr = self.param_groups[0]["lr"]
        directions: dict[nn.Parameter, torch.Tensor] = {}
        vg_sum = 0.0
        for layer in self._layers:
            state = self.state[layer.module.weight]
            grad = self._gradient_matrix(layer)
            if grad is None or "A" not in state:
                continue
            natural = self._precondition(layer, grad)
            vg_sum += float((natural * grad).sum())
            weight, bias = layer.module.weight, layer.module.bias
            if bias is not None:
                directions[weight] = natural[:, :-1].reshape(weight.shape)
                directions[bias] = natural[:, -1].reshape(bias.shape)
            else:
                directions[weight] = natural.reshape(weight.shape)

        scale = 1.0
        if self.kl_clip is not None and vg_sum != 0.0:
            # abs(): an analog inverse with errors can make the sum negative.
            scale = min(1.0, math.sqrt(self.kl_clip / (lr * lr * abs(vg_sum))))

        for group in self.param_groups:
            lr, momentum, weight_decay = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = directions[p] * scale if p in directions else p.grad.clone()
                if weight_decay:
                    d.add_(p, alpha=weight_decay)
                if momentum:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = d.clone()
                    else:
                        buf.mul_(momentum).add_(d)
                    d = buf
                p.add_(d, alpha=-lr)

        self.steps += 1
        return loss

    # ------------------------------------------------------------- reporting

    def factor_sizes(self) -> list[tuple[str, int]]:
        """Return (label, order) of every factor or factor block the backend is given."""
        sizes = []
        for layer in self._layers:
            for tag, bounds in (("A", layer.a_blocks), ("G", layer.g_blocks)):
                for index, (lo, hi) in enumerate(bounds):
                    sizes.append((self._label(layer, tag, index, len(bounds)), hi - lo))
        return sizes
