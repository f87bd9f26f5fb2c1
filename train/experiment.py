"""Training protocol: one run, the learning-rate sweep and the optimizer comparison.

The comparison is paired by seed. For a seed s, every optimizer starts from
the same initial weights (``torch.manual_seed(s)`` before the model is built)
and gets the same mini-batches in the same order (a ``torch.Generator``
seeded from s), so differences between optimizers are not differences in
luck. The learning rate of each optimizer is chosen beforehand by a small
sweep scored on the validation split only, with seeds that are not used for
the reported runs. Both K-FAC variants use the learning rate selected for
exact K-FAC, so the analog-versus-exact difference is due to the inversions
alone. docs/training.md describes the protocol.
"""

from __future__ import annotations

import logging
import math
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .data import DataSplits
from .inverse_backends import AnalogBackend, CosimComparison, CosimSampledBackend, ExactBackend, InverseBackend
from .kfac import KFAC, DampingRaise, InversionRecord
from .models import TwoLayerCNN

__all__ = [
    "OPTIMIZERS",
    "OPTIMIZER_LABELS",
    "REPORTED_REDUCTION",
    "KFACOptions",
    "Protocol",
    "EpochStats",
    "RunResult",
    "SweepEntry",
    "OptimizerSummary",
    "Comparison",
    "train_run",
    "sweep_learning_rates",
    "run_comparison",
    "summarize",
]

log = logging.getLogger(__name__)

OPTIMIZERS = ("kfac-analog", "kfac-exact", "sgd", "adam")
OPTIMIZER_LABELS = {
    "kfac-analog": "K-FAC, analog macro model",
    "kfac-exact": "K-FAC, exact inverses",
    "sgd": "SGD with momentum",
    "adam": "Adam",
}

REPORTED_REDUCTION = {"sgd": 0.26, "adam": 0.61}
"""Epoch reductions of analog K-FAC reported by Zhang et al., arXiv:2512.05342,
for a two-layer CNN on handwritten letters: 26 % fewer epochs than SGD with
momentum and 61 % fewer than Adam."""

BackendFactory = Callable[[int], InverseBackend]
"""Build the inversion backend of one run from its seed (the macro's device seed)."""


@dataclass(frozen=True)
class KFACOptions:
    """K-FAC settings shared by the exact and the analog variant (see `KFAC`)."""

    damping: float = 0.01
    """Tikhonov damping lambda (dimensionless, in units of the factors)."""
    momentum: float = 0.9
    factor_decay: float = 0.95
    """Moving-average weight of the old factors."""
    factor_update_interval: int = 1
    """Steps between factor updates."""
    inverse_update_interval: int = 10
    """Steps between inverse refreshes; each refresh programs every factor once."""
    kl_clip: float | None = 1e-3
    block_size: int | None = None
    """Block-diagonal approximation with blocks of at most this order; None for full factors."""
    apply_mode: str = "inverse"
    """"inverse" (explicit inverses at each refresh) or "solve" (solve the gradient every step)."""
    fisher: str = "empirical"
    """"empirical": factors from the training-loss backward pass. "sampled": from an extra
    backward pass with labels drawn from the model's output distribution (true Fisher)."""

    def __post_init__(self) -> None:
        if self.fisher not in ("empirical", "sampled"):
            raise ValueError(f"fisher = {self.fisher!r} is invalid: use 'empirical' or 'sampled'")


def _default_lr_grids() -> dict[str, tuple[float, ...]]:
    return {
        "sgd": (0.01, 0.03, 0.1, 0.3),
        "adam": (0.001, 0.003, 0.01, 0.03),
        "kfac": (0.03, 0.1, 0.3),
    }


@dataclass(frozen=True)
class Protocol:
    """Settings of the optimizer comparison."""

    epochs: int = 15
    """Training epochs of every run."""
    batch_size: int = 64
    target_accuracy: float = 0.95
    """Test accuracy (fraction) whose first crossing defines epochs-to-target."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """Seeds of the reported runs: initialization, batch order and macro devices."""
    sweep_seeds: tuple[int, ...] = (100,)
    """Seeds of the learning-rate sweep, disjoint from `seeds`."""
    lr_grids: dict[str, tuple[float, ...]] = field(default_factory=_default_lr_grids)
    """Candidate learning rates for "sgd", "adam" and "kfac" (both K-FAC variants).
    A grid with one value skips the sweep for that optimizer."""
    sgd_momentum: float = 0.9
    weight_decay: float = 0.0
    channels: int = 8
    """Convolution channels of the CNN."""
    kernel_size: int = 3
    pool: int = 2
    """Max-pool window of the CNN (2 for 8x8 digits)."""

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs = {self.epochs} is invalid: train at least 1 epoch")
        if self.batch_size < 1:
            raise ValueError(f"batch_size = {self.batch_size} is invalid: use 1 or more")
        if not 0.0 < self.target_accuracy <= 1.0:
            raise ValueError(
                f"target_accuracy = {self.target_accuracy!r} is invalid: use a fraction in (0, 1], e.g. 0.95"
            )
        if not self.seeds:
            raise ValueError("seeds is empty: give at least one seed")
        overlap = set(self.seeds) & set(self.sweep_seeds)
        if overlap:
            raise ValueError(
                f"seeds {sorted(overlap)} are both sweep and reported seeds; use disjoint sets so the learning "
                "rate is not selected on the runs that are reported"
            )
        for key in ("sgd", "adam", "kfac"):
            grid = self.lr_grids.get(key)
            if not grid or any(not (lr > 0 and math.isfinite(lr)) for lr in grid):
                raise ValueError(f"learning-rate grid for {key!r} is {grid!r}: give one or more values above zero")


@dataclass
class EpochStats:
    """Metrics after one epoch (epoch 0: before training).

    Losses are mean cross-entropy in nats. ``train_loss`` of epoch >= 1 is the
    mean over the epoch's mini-batches; test metrics are None in the sweep,
    which never evaluates the test split.
    """

    epoch: int
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    test_loss: float | None
    test_accuracy: float | None
    epoch_time_s: float
    """Wall time of the epoch's training steps, in seconds (0 for epoch 0)."""
    inversions: int
    """Factors prepared on the backend so far (K-FAC only)."""


@dataclass
class RunResult:
    """One training run."""

    optimizer: str
    lr: float
    seed: int
    phase: str
    """"sweep" or "eval"."""
    epochs: list[EpochStats]
    diverged: bool = False
    backend: str = ""
    inversion_log: list[InversionRecord] = field(default_factory=list)
    damping_raises: list[DampingRaise] = field(default_factory=list)
    cosim: list[CosimComparison] = field(default_factory=list)
    array_replacements: list[tuple[str, float]] = field(default_factory=list)
    """(factor label, smallest eigenvalue real part) of every array the analog backend replaced by a spare."""

    def epochs_to_target(self, target: float, split: str = "test") -> int | None:
        """Return the first epoch whose ``split`` accuracy reaches target, or None."""
        for stats in self.epochs[1:]:
            value = getattr(stats, f"{split}_accuracy")
            if value is not None and value >= target:
                return stats.epoch
        return None

    def mean_epoch_time_s(self) -> float:
        times = [s.epoch_time_s for s in self.epochs[1:]]
        return sum(times) / len(times) if times else float("nan")


def _evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = float(F.cross_entropy(logits, y))
        accuracy = float((logits.argmax(1) == y).float().mean())
    model.train()
    return loss, accuracy


def _make_optimizer(name: str, model: torch.nn.Module, lr: float, protocol: Protocol, kfac: KFACOptions,
                    backend: InverseBackend | None) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=protocol.sgd_momentum,
                               weight_decay=protocol.weight_decay)
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=protocol.weight_decay)
    if name in ("kfac-exact", "kfac-analog"):
        return KFAC(
            model, lr=lr, momentum=kfac.momentum, weight_decay=protocol.weight_decay, damping=kfac.damping,
            factor_decay=kfac.factor_decay, factor_update_interval=kfac.factor_update_interval,
            inverse_update_interval=kfac.inverse_update_interval, kl_clip=kfac.kl_clip,
            block_size=kfac.block_size, apply_mode=kfac.apply_mode, backend=backend,
        )
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def build_model(data: DataSplits, protocol: Protocol, seed: int) -> TwoLayerCNN:
    """Build the CNN with the initial weights of ``seed`` (identical for every optimizer)."""
    torch.manual_seed(seed)
    return TwoLayerCNN(data.image_shape, data.n_classes, channels=protocol.channels,
                       kernel_size=protocol.kernel_size, pool=protocol.pool)


def train_run(
    data: DataSplits,
    optimizer: str,
    lr: float,
    seed: int,
    protocol: Protocol,
    kfac: KFACOptions = KFACOptions(),
    *,
    backend: InverseBackend | None = None,
    phase: str = "eval",
    progress: bool = False,
) -> RunResult:
    """Train the CNN once and return per-epoch metrics.

    Parameters
    ----------
    optimizer : str
        One of `OPTIMIZERS`.
    lr : float
        Learning rate.
    seed : int
        Initialization and batch-order seed.
    backend : InverseBackend, optional
        Inversion backend of the K-FAC variants (`ExactBackend` if None).
    phase : {"eval", "sweep"}
        "sweep" runs never evaluate the test split.
    progress : bool
        Show a tqdm bar that advances once per epoch.
    """
    if phase not in ("eval", "sweep"):
        raise ValueError(f"phase = {phase!r} is invalid: use 'eval' or 'sweep'")
    model = build_model(data, protocol, seed)
    if optimizer.startswith("kfac") and backend is None:
        backend = ExactBackend()
    opt = _make_optimizer(optimizer, model, lr, protocol, kfac, backend)
    batches = torch.Generator().manual_seed(seed)
    fisher_labels = torch.Generator().manual_seed(seed + 1)
    sampled_fisher = isinstance(opt, KFAC) and kfac.fisher == "sampled"
    evaluate_test = phase == "eval"

    def evaluation(epoch: int, train_loss: float, train_accuracy: float, seconds: float) -> EpochStats:
        val = _evaluate(model, data.x_val, data.y_val)
        test = _evaluate(model, data.x_test, data.y_test) if evaluate_test else (None, None)
        inversions = len(opt.inversion_log) if isinstance(opt, KFAC) else 0
        return EpochStats(epoch, train_loss, train_accuracy, val[0], val[1], test[0], test[1], seconds, inversions)

    result = RunResult(optimizer, lr, seed, phase, [], backend=backend.describe() if backend else "")
    result.epochs.append(evaluation(0, *_evaluate(model, data.x_train, data.y_train), 0.0))
    n = len(data.y_train)
    bar = tqdm(range(1, protocol.epochs + 1), desc=f"{optimizer} lr={lr:g} seed={seed}", unit="epoch",
               leave=False, disable=not progress, file=sys.stderr, dynamic_ncols=True)
    model.train()
    for epoch in bar:
        start = time.perf_counter()
        order = torch.randperm(n, generator=batches)
        loss_sum, correct = 0.0, 0
        for first in range(0, n, protocol.batch_size):
            index = order[first:first + protocol.batch_size]
            x, y = data.x_train[index], data.y_train[index]
            opt.zero_grad(set_to_none=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            if sampled_fisher and opt.collecting_statistics():
                with torch.no_grad():
                    sampled = torch.multinomial(torch.softmax(logits, 1), 1, generator=fisher_labels).squeeze(1)
                F.cross_entropy(logits, sampled).backward(retain_graph=True)
                opt.zero_grad(set_to_none=True)
                with opt.no_statistics():
                    loss.backward()
            else:
                loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(index)
            correct += int((logits.argmax(1) == y).sum())
        seconds = time.perf_counter() - start
        train_loss = loss_sum / n
        if not math.isfinite(train_loss):
            result.diverged = True
            log.warning("%s lr=%g seed=%d diverged in epoch %d (training loss %s); run stopped",
                        optimizer, lr, seed, epoch, train_loss)
            break
        stats = evaluation(epoch, train_loss, correct / n, seconds)
        result.epochs.append(stats)
        bar.set_postfix(loss=f"{train_loss:.3f}",
                        acc=f"{(stats.test_accuracy if evaluate_test else stats.val_accuracy):.3f}")
    bar.close()

    if isinstance(opt, KFAC):
        result.inversion_log = opt.inversion_log
        result.damping_raises = opt.damping_raises
        opt.remove_hooks()
    if isinstance(backend, CosimSampledBackend):
        result.cosim = list(backend.comparisons)
    analog = backend.inner if isinstance(backend, CosimSampledBackend) else backend
    if isinstance(analog, AnalogBackend):
        result.array_replacements = list(analog.replacements)
    return result


@dataclass
class SweepEntry:
    """Validation score of one candidate learning rate."""

    optimizer: str
    lr: float
    epochs_to_target: list[int | None]
    """Per sweep seed: first epoch with validation accuracy >= target, None if never."""
    mean_val_accuracy: float
    """Validation accuracy averaged over epochs 1..E and sweep seeds (area under the curve)."""
    diverged: int
    selected: bool = False

    def score(self, epochs: int) -> tuple[float, float]:
        """Sort key, lower is better: mean epochs-to-target (never reached counts as epochs + 1),
        then negative mean validation accuracy."""
        capped = [e if e is not None else epochs + 1 for e in self.epochs_to_target]
        return sum(capped) / len(capped), -self.mean_val_accuracy


def sweep_learning_rates(
    data: DataSplits,
    optimizers: Iterable[str],
    protocol: Protocol,
    kfac: KFACOptions = KFACOptions(),
    *,
    progress: bool = False,
) -> tuple[dict[str, float], list[SweepEntry], list[RunResult]]:
    """Select a learning rate per optimizer on the validation split.

    The K-FAC grid is swept with exact inverses, and the selected value is used
    for both K-FAC variants. A one-value grid is taken as given without runs.

    Returns
    -------
    chosen : dict
        Learning rate per optimizer name.
    entries : list of SweepEntry
    runs : list of RunResult
        The sweep runs (validation metrics only), for the CSV.
    """
    chosen: dict[str, float] = {}
    entries: list[SweepEntry] = []
    runs: list[RunResult] = []
    wanted = list(optimizers)
    families = []
    for name in wanted:
        family = "kfac" if name.startswith("kfac") else name
        if family not in families:
            families.append(family)
    for family in families:
        grid = protocol.lr_grids[family]
        if len(grid) == 1:
            best = grid[0]
        else:
            run_name = "kfac-exact" if family == "kfac" else family
            family_entries = []
            for lr in grid:
                results = [
                    train_run(data, run_name, lr, seed, protocol, kfac, phase="sweep", progress=progress)
                    for seed in protocol.sweep_seeds
                ]
                runs.extend(results)
                accuracies = [s.val_accuracy for r in results for s in r.epochs[1:]]
                entry = SweepEntry(
                    optimizer=run_name,
                    lr=lr,
                    epochs_to_target=[r.epochs_to_target(protocol.target_accuracy, "val") for r in results],
                    mean_val_accuracy=sum(accuracies) / len(accuracies) if accuracies else 0.0,
                    diverged=sum(r.diverged for r in results),
                )
                family_entries.append(entry)
            best_entry = min(family_entries, key=lambda e: e.score(protocol.epochs))
            best_entry.selected = True
            entries.extend(family_entries)
            best = best_entry.lr
        for name in wanted:
            if (name.startswith("kfac") and family == "kfac") or name == family:
                chosen[name] = best
    return chosen, entries, runs


@dataclass
class OptimizerSummary:
    """Epochs-to-target and final accuracy of one optimizer over the reported seeds."""

    optimizer: str
    lr: float
    seeds: list[int]
    epochs_to_target: list[int | None]
    final_test_accuracy: list[float]
    mean_epoch_time_s: float
    epochs: int

    @property
    def reached(self) -> int:
        return sum(e is not None for e in self.epochs_to_target)

    def _capped(self) -> list[int]:
        return [e if e is not None else self.epochs + 1 for e in self.epochs_to_target]

    @property
    def mean_epochs(self) -> float:
        """Mean epochs-to-target; a seed that never reached the target counts as epochs + 1 (a lower bound)."""
        capped = self._capped()
        return sum(capped) / len(capped)

    @property
    def std_epochs(self) -> float:
        """Sample standard deviation over seeds (0 for one seed)."""
        capped = self._capped()
        return statistics.stdev(capped) if len(capped) > 1 else 0.0

    def format_epochs(self) -> str:
        bound = ">=" if self.reached < len(self.epochs_to_target) else ""
        return f"{bound}{self.mean_epochs:.2f} +- {self.std_epochs:.2f}"


@dataclass
class Comparison:
    """Everything one ``amc train`` comparison produced."""

    data: DataSplits
    protocol: Protocol
    kfac: KFACOptions
    learning_rates: dict[str, float]
    sweep: list[SweepEntry]
    sweep_runs: list[RunResult]
    runs: list[RunResult]
    wall_time_s: float

    def runs_of(self, optimizer: str) -> list[RunResult]:
        return [r for r in self.runs if r.optimizer == optimizer]

    def summaries(self) -> dict[str, OptimizerSummary]:
        return summarize(self.runs, self.protocol)

    def paired_reduction(self, optimizer: str, baseline: str) -> tuple[float, float] | None:
        """Mean and sample standard deviation over seeds of 1 - E_opt / E_baseline.

        Runs are paired by seed (same initialization and batches); a seed that
        never reached the target counts as epochs + 1. None if either
        optimizer was not run.
        """
        ours = {r.seed: r for r in self.runs_of(optimizer)}
        theirs = {r.seed: r for r in self.runs_of(baseline)}
        seeds = sorted(set(ours) & set(theirs))
        if not seeds:
            return None
        cap = self.protocol.epochs + 1
        target = self.protocol.target_accuracy
        values = []
        for seed in seeds:
            e_ours = ours[seed].epochs_to_target(target) or cap
            e_theirs = theirs[seed].epochs_to_target(target) or cap
            values.append(1.0 - e_ours / e_theirs)
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return sum(values) / len(values), spread


def summarize(runs: list[RunResult], protocol: Protocol) -> dict[str, OptimizerSummary]:
    """Group reported runs by optimizer, in `OPTIMIZERS` order."""
    summaries = {}
    for name in OPTIMIZERS:
        group = sorted((r for r in runs if r.optimizer == name and r.phase == "eval"), key=lambda r: r.seed)
        if not group:
            continue
        times = [r.mean_epoch_time_s() for r in group if r.epochs[1:]]
        summaries[name] = OptimizerSummary(
            optimizer=name,
            lr=group[0].lr,
            seeds=[r.seed for r in group],
            epochs_to_target=[r.epochs_to_target(protocol.target_accuracy) for r in group],
            final_test_accuracy=[r.epochs[-1].test_accuracy for r in group],
            mean_epoch_time_s=sum(times) / len(times) if times else float("nan"),
            epochs=protocol.epochs,
        )
    return summaries


def run_comparison(
    data: DataSplits,
    optimizers: Iterable[str],
    protocol: Protocol,
    kfac: KFACOptions = KFACOptions(),
    *,
    analog_backend: BackendFactory | None = None,
    learning_rates: dict[str, float] | None = None,
    progress: bool = False,
) -> Comparison:
    """Sweep learning rates on validation, then train every optimizer on every seed.

    Parameters
    ----------
    optimizers : iterable of str
        Names from `OPTIMIZERS`.
    analog_backend : callable, optional
        ``factory(seed) -> InverseBackend`` for "kfac-analog"; required if it is requested.
    learning_rates : dict, optional
        Fixed learning rates that skip the sweep for the optimizers they name.
    """
    start = time.perf_counter()
    optimizers = list(optimizers)
    unknown = [name for name in optimizers if name not in OPTIMIZERS]
    if unknown:
        raise ValueError(f"unknown optimizer(s) {unknown}; choose from {', '.join(OPTIMIZERS)}")
    if "kfac-analog" in optimizers and analog_backend is None:
        raise ValueError("kfac-analog needs an analog backend factory (analog_backend=...)")
    fixed = dict(learning_rates or {})
    to_sweep = [name for name in optimizers if name not in fixed]
    chosen, entries, sweep_runs = sweep_learning_rates(data, to_sweep, protocol, kfac, progress=progress)
    chosen.update(fixed)

    runs = []
    for seed in protocol.seeds:
        for name in optimizers:
            backend = analog_backend(seed) if name == "kfac-analog" else None
            runs.append(train_run(data, name, chosen[name], seed, protocol, kfac, backend=backend,
                                  phase="eval", progress=progress))
    return Comparison(data, protocol, kfac, chosen, entries, sweep_runs, runs, time.perf_counter() - start)
