"""CSV files, the comparison plot and the text summary of an optimizer comparison."""

from __future__ import annotations

import csv
from pathlib import Path

from .experiment import OPTIMIZER_LABELS, REPORTED_REDUCTION, Comparison, RunResult

__all__ = [
    "EPOCH_COLUMNS",
    "write_epochs_csv",
    "write_sweep_csv",
    "write_summary_csv",
    "plot_comparison",
    "format_summary",
]

EPOCH_COLUMNS = (
    "phase", "optimizer", "lr", "seed", "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy",
    "test_loss", "test_accuracy", "epoch_time_s", "inversions", "diverged",
)

_COLORS = {"kfac-analog": "#d62728", "kfac-exact": "#1f77b4", "sgd": "#2ca02c", "adam": "#ff7f0e"}


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def write_epochs_csv(path: Path, runs: list[RunResult]) -> None:
    """Write one row per run and epoch (epoch 0 is the untrained model).

    Sweep rows have empty test columns because the sweep never evaluates the
    test split.
    """
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(EPOCH_COLUMNS)
        for run in runs:
            for s in run.epochs:
                writer.writerow([_cell(v) for v in (
                    run.phase, run.optimizer, run.lr, run.seed, s.epoch, s.train_loss, s.train_accuracy,
                    s.val_loss, s.val_accuracy, s.test_loss, s.test_accuracy, s.epoch_time_s, s.inversions,
                    int(run.diverged),
                )])


def write_sweep_csv(path: Path, comparison: Comparison) -> None:
    """Write the validation score of every swept learning rate and which one was selected."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["optimizer", "lr", "sweep_seeds", "val_epochs_to_target", "mean_val_accuracy",
                         "diverged_runs", "selected"])
        for entry in comparison.sweep:
            writer.writerow([
                entry.optimizer, _cell(entry.lr), " ".join(map(str, comparison.protocol.sweep_seeds)),
                " ".join("never" if e is None else str(e) for e in entry.epochs_to_target),
                _cell(entry.mean_val_accuracy), entry.diverged, int(entry.selected),
            ])


def write_summary_csv(path: Path, comparison: Comparison) -> None:
    """Write epochs-to-target per optimizer with mean, spread and reductions against the baselines."""
    summaries = comparison.summaries()
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["optimizer", "lr", "seeds", "epochs_to_target", "reached", "mean_epochs", "std_epochs",
                         "mean_final_test_accuracy", "mean_epoch_time_s", "reduction_vs_sgd",
                         "reduction_vs_sgd_std", "reduction_vs_adam", "reduction_vs_adam_std"])
        for name, s in summaries.items():
            reductions = []
            for baseline in ("sgd", "adam"):
                pair = comparison.paired_reduction(name, baseline) if name != baseline else None
                reductions += ["", ""] if pair is None else [_cell(pair[0]), _cell(pair[1])]
            writer.writerow([
                name, _cell(s.lr), " ".join(map(str, s.seeds)),
                " ".join("never" if e is None else str(e) for e in s.epochs_to_target),
                s.reached, _cell(s.mean_epochs), _cell(s.std_epochs),
                _cell(sum(s.final_test_accuracy) / len(s.final_test_accuracy)), _cell(s.mean_epoch_time_s),
                *reductions,
            ])


def plot_comparison(path: Path, comparison: Comparison) -> None:
    """Plot test accuracy and training loss against epoch, mean over seeds with min-max bands,
    and epochs-to-target per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    protocol = comparison.protocol
    summaries = comparison.summaries()
    fig, (ax_acc, ax_loss, ax_bar) = plt.subplots(1, 3, figsize=(15, 4.6), gridspec_kw={"width_ratios": [3, 3, 2]})
    for name in summaries:
        runs = comparison.runs_of(name)
        length = min(len(r.epochs) for r in runs)
        epochs = list(range(length))
        label = f"{OPTIMIZER_LABELS[name]} (lr {runs[0].lr:g})"
        color = _COLORS.get(name)
        for ax, key, start in ((ax_acc, "test_accuracy", 0), (ax_loss, "train_loss", 1)):
            columns = [[getattr(r.epochs[e], key) for r in runs] for e in epochs[start:]]
            mean = [sum(c) / len(c) for c in columns]
            ax.plot(epochs[start:], mean, color=color, label=label, lw=1.8)
            if len(runs) > 1:
                ax.fill_between(epochs[start:], [min(c) for c in columns], [max(c) for c in columns],
                                color=color, alpha=0.15, lw=0)
    ax_acc.axhline(protocol.target_accuracy, color="k", ls="--", lw=1, label=f"target {protocol.target_accuracy:.0%}")
    low = max(0.0, protocol.target_accuracy - 0.15)
    ax_acc.set_ylim(low, 1.0)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("test accuracy")
    ax_acc.set_title(f"{comparison.data.name}: test accuracy (mean, min-max over {len(protocol.seeds)} seeds)",
                     fontsize=10)
    ax_acc.legend(fontsize=8, loc="lower right")
    ax_acc.grid(alpha=0.3)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (nats, mean over the epoch)")
    ax_loss.set_title("training loss", fontsize=10)
    ax_loss.grid(alpha=0.3, which="both")

    names = list(summaries)
    cap = protocol.epochs + 1
    for i, name in enumerate(names):
        s = summaries[name]
        values = [e if e is not None else cap for e in s.epochs_to_target]
        ax_bar.bar(i, s.mean_epochs, color=_COLORS.get(name), alpha=0.6)
        ax_bar.errorbar(i, s.mean_epochs, yerr=s.std_epochs, color="k", capsize=4)
        ax_bar.scatter([i] * len(values), values, color="k", s=12, zorder=3)
    if any(s.reached < len(s.epochs_to_target) for s in summaries.values()):
        ax_bar.axhline(cap, color="grey", ls=":", lw=1)
        ax_bar.text(len(names) - 0.5, cap, "not reached", fontsize=7, va="bottom", ha="right", color="grey")
    ax_bar.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    ax_bar.set_ylabel(f"epochs to {protocol.target_accuracy:.1%} test accuracy")
    ax_bar.set_title("epochs to target: mean, s.d., seeds", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def format_summary(comparison: Comparison) -> str:
    """Return the epochs-to-target table and the reductions next to the reported values."""
    protocol = comparison.protocol
    summaries = comparison.summaries()
    lines = [
        f"Epochs to {protocol.target_accuracy:.1%} test accuracy, {len(protocol.seeds)} "
        f"seed{'s' if len(protocol.seeds) != 1 else ''} "
        f"({', '.join(map(str, protocol.seeds))}), at most {protocol.epochs} epochs "
        "(a seed that never reaches the target counts as epochs + 1 and the mean is marked >=):",
        f"  {'optimizer':<12} {'lr':>7} {'per seed':<16} {'mean +- s.d.':>16} {'final test acc':>15} {'epoch time':>11}",
    ]
    for name, s in summaries.items():
        per_seed = " ".join("-" if e is None else str(e) for e in s.epochs_to_target)
        accuracy = sum(s.final_test_accuracy) / len(s.final_test_accuracy)
        lines.append(
            f"  {name:<12} {s.lr:>7.3g} {per_seed:<16} {s.format_epochs():>16} {accuracy:>15.2%} "
            f"{s.mean_epoch_time_s * 1e3:>8.1f} ms"
        )
    header_done = False
    for name in ("kfac-analog", "kfac-exact"):
        if name not in summaries:
            continue
        for baseline in ("sgd", "adam"):
            if baseline not in summaries:
                continue
            if not header_done:
                lines.append("Epoch reduction of K-FAC, 1 - E_kfac / E_baseline (ratio of means; paired per seed "
                             "mean +- s.d.), beside Zhang et al., arXiv:2512.05342:")
                header_done = True
            ratio = 1.0 - summaries[name].mean_epochs / summaries[baseline].mean_epochs
            paired = comparison.paired_reduction(name, baseline)
            lines.append(
                f"  {name} vs {baseline:<5}: {ratio:+.0%} (paired {paired[0]:+.0%} +- {paired[1]:.0%}); "
                f"reported {REPORTED_REDUCTION[baseline]:.0%}"
            )
    if "kfac-analog" in summaries and "kfac-exact" in summaries:
        analog, exact = summaries["kfac-analog"], summaries["kfac-exact"]
        difference = analog.mean_epochs - exact.mean_epochs
        spread = max(analog.std_epochs, exact.std_epochs)
        verdict = "within" if abs(difference) <= spread else "outside"
        lines.append(
            f"Analog minus exact K-FAC: {difference:+.2f} epochs to target ({verdict} the seed spread of "
            f"{spread:.2f}), final test accuracy "
            f"{(sum(analog.final_test_accuracy) - sum(exact.final_test_accuracy)) / len(analog.seeds):+.2%}"
        )
    return "\n".join(lines)
