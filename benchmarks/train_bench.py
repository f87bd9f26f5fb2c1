"""Training benchmark: writes benchmarks/results/training.md and its PNG plots.

Measures, in one run on this machine:

1. the full default ``amc train`` comparison (four optimizers, three seeds,
   learning-rate sweep): wall time (target under 10 minutes) and
   epochs-to-target against the reductions of Zhang et al.,
   arXiv:2512.05342 (26 % vs SGD with momentum, 61 % vs Adam);
2. the same comparison of the two K-FAC variants with ideal devices
   (target: analog within the seed spread of exact);
3. epoch time of K-FAC on the analog-model backend against exact K-FAC
   (target at most 1.5x), for block-diagonal and full factors;
4. an ablation of the device non-idealities, one at a time, for
   block-diagonal factors on 32x32 arrays and full factors on 129x129
   arrays;
5. the hardware cost estimate of the default run's inversions, its
   sensitivity to the assumed parameters, and its scaling with the
   factor order, against the reported 5.88x throughput and 6.9x energy
   efficiency.

Run with ``python -m benchmarks.train_bench`` (about 5-10 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from amc.model.config import ArrayParams, MacroConfig, NonIdealities, ProgrammingError, ReadNoise, StuckCells
from amc.train.cost import (
    REPORTED_RATIOS,
    AMCCostParams,
    DigitalProcessorParams,
    estimate_cost,
    set_parameter,
)
from amc.train.data import load_digits
from amc.train.experiment import REPORTED_REDUCTION, KFACOptions, Protocol, train_run
from amc.train.inverse_backends import AnalogBackend
from amc.train.kfac import InversionRecord

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
SEEDS = (0, 1, 2)
KFAC_LR = 0.3
"""Learning rate of both K-FAC variants in the ablation: the value the default sweep selects."""


def _run_cli(arguments: list[str], output: Path) -> tuple[dict, float, str]:
    """Run ``amc train`` in a fresh process; return run.json, wall time in seconds and stdout."""
    command = [sys.executable, "-m", "amc.cli", "train", "--output", str(output), "--no-progress", *arguments]
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    if finished.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed with exit code {finished.returncode}:\n{finished.stderr}")
    return json.loads((output / "run.json").read_text()), wall, finished.stdout


def _summary_rows(output: Path) -> list[dict]:
    import csv

    with open(output / "summary.csv") as handle:
        return list(csv.DictReader(handle))


def _epochs_table(rows: list[dict]) -> list[str]:
    lines = ["| optimizer | lr | epochs to target per seed | mean +- s.d. | final test accuracy | epoch time |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['optimizer']} | {float(row['lr']):g} | {row['epochs_to_target']} | "
            f"{float(row['mean_epochs']):.2f} +- {float(row['std_epochs']):.2f} | "
            f"{float(row['mean_final_test_accuracy']):.2%} | {float(row['mean_epoch_time_s']) * 1e3:.1f} ms |"
        )
    return lines


def _target_sensitivity(output: Path, targets=(0.94, 0.95, 0.955, 0.96, 0.965)) -> list[str]:
    """Return a table of epochs-to-target per optimizer for several targets, from one run's epochs.csv."""
    import csv

    curves: dict[str, dict[str, list[float]]] = {}
    with open(output / "epochs.csv") as handle:
        for row in csv.DictReader(handle):
            if row["phase"] == "eval":
                curves.setdefault(row["optimizer"], {}).setdefault(row["seed"], []).append(
                    float(row["test_accuracy"]))
    lines = ["| target | " + " | ".join(curves) + " |", "|---|" + "---|" * len(curves)]
    for target in targets:
        cells = []
        for seeds in curves.values():
            firsts = [next((e for e, a in enumerate(acc) if e > 0 and a >= target), None) for acc in seeds.values()]
            mean, spread, censored = _mean_epochs(firsts, len(next(iter(seeds.values()))))
            per_seed = " ".join("-" if v is None else str(v) for v in firsts)
            cells.append(f"{per_seed} ({'>=' if censored else ''}{mean:.2f} +- {spread:.2f})")
        lines.append(f"| {target:.1%} | " + " | ".join(cells) + " |")
    return lines


def _variants() -> dict[str, NonIdealities]:
    off = dict(programming=ProgrammingError(enabled=False), read_noise=ReadNoise(enabled=False),
               stuck=StuckCells(enabled=False))
    return {
        "ideal devices": NonIdealities.ideal(),
        "16 levels only": NonIdealities(**off),
        "levels + programming error": NonIdealities(**{**off, "programming": ProgrammingError()}),
        "levels + read noise": NonIdealities(**{**off, "read_noise": ReadNoise()}),
        "levels + stuck cells": NonIdealities(**{**off, "stuck": StuckCells()}),
        "all (default)": NonIdealities(),
    }


def _ablation(data, protocol: Protocol, epochs: int) -> tuple[list[dict], dict]:
    """Train analog K-FAC for every non-ideality variant, structure and seed."""
    structures = {
        "blocks <= 32 on 32x32 arrays": (32, MacroConfig()),
        "full factors on 129x129 arrays": (None, MacroConfig(array=ArrayParams(rows=129, cols=129))),
    }
    rows = []
    exact_reference = {}
    short = dataclasses.replace(protocol, epochs=epochs)
    for structure, (block, base) in structures.items():
        options = KFACOptions(block_size=block)
        exact = [train_run(data, "kfac-exact", KFAC_LR, seed, short, options) for seed in SEEDS]
        exact_reference[structure] = exact
        variants = [(name, nonideal, 0) for name, nonideal in _variants().items()]
        variants.append(("all (default), 2 refinement steps", NonIdealities(), 2))
        for name, nonideal, refine in variants:
            started = time.perf_counter()
            runs = [train_run(data, "kfac-analog", KFAC_LR, seed, short, options,
                              backend=AnalogBackend(base.replace(nonideal=nonideal, seed=seed), refine_steps=refine))
                    for seed in SEEDS]
            elapsed = time.perf_counter() - started
            largest = [r for run in runs for r in run.inversion_log if r.layer == "fc" and r.factor.startswith("A")]
            rows.append({
                "structure": structure,
                "variant": name,
                "epochs_to_target": [r.epochs_to_target(protocol.target_accuracy) for r in runs],
                "final_accuracy": statistics.mean(r.epochs[-1].test_accuracy for r in runs),
                "damping_raises": sum(len(r.damping_raises) for r in runs),
                "spares": sum(len(r.array_replacements) for r in runs),
                "programmings": sum(len(r.inversion_log) for r in runs),
                "fc_a_residual": float(np.median([r.info["relative_residual"] for r in largest])),
                "epoch_time_s": statistics.mean(r.mean_epoch_time_s() for r in runs),
                "wall_s": elapsed,
            })
        rows.append({
            "structure": structure,
            "variant": "exact inverses (reference)",
            "epochs_to_target": [r.epochs_to_target(protocol.target_accuracy) for r in exact],
            "final_accuracy": statistics.mean(r.epochs[-1].test_accuracy for r in exact),
            "damping_raises": 0,
            "spares": 0,
            "programmings": 0,
            "fc_a_residual": 0.0,
            "epoch_time_s": statistics.mean(r.mean_epoch_time_s() for r in exact),
            "wall_s": 0.0,
        })
    return rows, exact_reference


def _mean_epochs(values: list[int | None], cap: int) -> tuple[float, float, bool]:
    capped = [v if v is not None else cap for v in values]
    spread = statistics.stdev(capped) if len(capped) > 1 else 0.0
    return statistics.mean(capped), spread, any(v is None for v in values)


def _plot_ablation(rows: list[dict], cap: int, target: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    structures = list(dict.fromkeys(row["structure"] for row in rows))
    fig, axes = plt.subplots(1, len(structures), figsize=(6.5 * len(structures), 4.2), sharey=True)
    for ax, structure in zip(np.atleast_1d(axes), structures):
        group = [row for row in rows if row["structure"] == structure]
        for i, row in enumerate(group):
            mean, spread, censored = _mean_epochs(row["epochs_to_target"], cap)
            color = "#1f77b4" if "exact" in row["variant"] else "#d62728"
            ax.bar(i, mean, color=color, alpha=0.6)
            ax.errorbar(i, mean, yerr=spread, color="k", capsize=3)
            values = [v if v is not None else cap for v in row["epochs_to_target"]]
            ax.scatter([i] * len(values), values, color="k", s=10, zorder=3)
        ax.axhline(cap, color="grey", ls=":", lw=1)
        ax.set_xticks(range(len(group)), [row["variant"] for row in group], rotation=30, ha="right", fontsize=8)
        ax.set_title(structure, fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    np.atleast_1d(axes)[0].set_ylabel(f"epochs to {target:.0%} test accuracy (dotted: not reached)")
    fig.suptitle("Analog K-FAC on digits: one non-ideality at a time (3 seeds, mean, s.d., seeds)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _cost_sensitivity(records: list[InversionRecord], config: MacroConfig) -> list[tuple[str, object]]:
    """Return (label, CostEstimate) for the default parameters and one change at a time."""
    amc, digital = AMCCostParams(), DigitalProcessorParams()
    cases = [
        ("default parameters", amc, digital),
        ("one ADC per line (adc_count=32)", set_parameter(amc, "adc_count=32"), digital),
        ("row-parallel programming (program_parallel_cells=32)", set_parameter(amc, "program_parallel_cells=32"),
         digital),
        ("digital: 1 % of peak (utilization=0.01)", amc, set_parameter(digital, "utilization=0.01")),
        ("digital: 20 us per inversion call (call_overhead_s=2e-5)", amc,
         set_parameter(digital, "call_overhead_s=2e-5")),
        ("op-amp 0.1 mW (opamp_power_W=1e-4)", set_parameter(amc, "opamp_power_W=1e-4"), digital),
    ]
    return [(label, estimate_cost(records, config, amc=a, digital=d)) for label, a, d in cases]


def _size_sweep(lambda_min: float, sizes=(32, 64, 128, 256, 512, 1024)) -> list[dict]:
    """Cost of one explicit inverse and of one solve (one column) of order N, programming included or not."""
    rows = []
    for n in sizes:
        config = MacroConfig(array=ArrayParams(rows=n, cols=n))
        for mode, columns in (("inverse", n), ("solve", 1)):
            record = InversionRecord(0, "sweep", "A", n, 0.0, 0.0, columns_solved=columns, passes=1,
                                     info={"lambda_min": lambda_min, "differential": 1.0, "operations": columns})
            for adc_count in (1, n):
                amc = dataclasses.replace(AMCCostParams(), adc_count=adc_count)
                estimate = estimate_cost([record], config, apply_mode=mode, amc=amc)
                free = estimate.without_programming()
                kept = estimate.without_setup()
                rows.append({"n": n, "mode": mode, "adc_count": adc_count,
                             "throughput": estimate.throughput_ratio, "energy": estimate.energy_ratio,
                             "throughput_free": free.throughput_ratio, "energy_free": free.energy_ratio,
                             "throughput_kept": kept.throughput_ratio, "energy_kept": kept.energy_ratio})
    return rows


def _plot_size_sweep(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, key, title in ((axes[0], "throughput", "throughput ratio (digital time / AMC time)"),
                           (axes[1], "energy", "energy-efficiency ratio (digital / AMC energy)")):
        for mode, adc, style in (("inverse", "1", "-"), ("inverse", "N", "--"), ("solve", "1", ":"),
                                 ("solve", "N", "-.")):
            points = [r for r in rows if r["mode"] == mode and (r["adc_count"] == 1) == (adc == "1")]
            ax.loglog([r["n"] for r in points], [r[key + "_free"] for r in points], style, marker="o",
                      label=f"{mode}, {'one ADC' if adc == '1' else 'one ADC per line'}, programming free")
        points = [r for r in rows if r["mode"] == "solve" and r["adc_count"] != 1]
        ax.loglog([r["n"] for r in points], [r[key + "_kept"] for r in points], "-", color="grey", marker="s",
                  label="solve, one ADC per line, both setups excluded")
        points = [r for r in rows if r["mode"] == "inverse" and r["adc_count"] != 1]
        ax.loglog([r["n"] for r in points], [r[key] for r in points], "-", color="black", marker="^",
                  label="inverse, one ADC per line, programming included")
        reported = REPORTED_RATIOS["throughput" if key.startswith("throughput") else "energy_efficiency"]
        ax.axhline(reported, color="k", lw=1, ls="--")
        ax.text(32, reported * 1.15, f"reported {reported}x", fontsize=8)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xlabel("factor order N")
        ax.set_title(title + ", one factor of order N", fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower right" if key == "throughput" else "upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ablation-epochs", type=int, default=10, help="epochs per ablation run")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for training.md and the PNGs")
    args = parser.parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    threadpool_limits(1)

    work = Path(tempfile.mkdtemp(prefix="amc-train-bench-"))
    lines: list[str] = []
    started = time.perf_counter()

    # 1. Full default comparison.
    default_json, default_wall, default_stdout = _run_cli([], work / "default")
    default_rows = _summary_rows(work / "default")
    (args.results / "training_comparison.png").write_bytes((work / "default" / "comparison.png").read_bytes())
    print(f"default comparison: {default_wall:.1f} s", flush=True)

    # 2. Ideal devices, both K-FAC variants at the swept K-FAC rate.
    _, ideal_wall, _ = _run_cli(["--ideal", "--optimizers", "kfac-analog,kfac-exact", "--lr-kfac", str(KFAC_LR)],
                                work / "ideal")
    ideal_rows = _summary_rows(work / "ideal")
    (args.results / "training_ideal.png").write_bytes((work / "ideal" / "comparison.png").read_bytes())
    print(f"ideal comparison: {ideal_wall:.1f} s", flush=True)

    # 3. Full factors on arrays sized to fit them.
    full_rows = {}
    for name, extra in (("full, default devices", []), ("full, ideal devices", ["--ideal"])):
        _run_cli(["--block-diagonal", "none", "--array-size", "fit", "--optimizers", "kfac-analog,kfac-exact",
                  "--lr-kfac", str(KFAC_LR), *extra], work / name.replace(", ", "-").replace(" ", "-"))
        full_rows[name] = _summary_rows(work / name.replace(", ", "-").replace(" ", "-"))
        print(f"{name} done", flush=True)

    # 4. Ablation of the non-idealities.
    data = load_digits()
    protocol = Protocol()
    ablation_rows, _ = _ablation(data, protocol, args.ablation_epochs)
    _plot_ablation(ablation_rows, args.ablation_epochs + 1, protocol.target_accuracy,
                   args.results / "training_ablation.png")
    print("ablation done", flush=True)

    # 5. Cost: the seed-0 analog run with the default settings, as amc train estimates it.
    run = train_run(data, "kfac-analog", KFAC_LR, 0, protocol, KFACOptions(block_size=32),
                    backend=AnalogBackend(MacroConfig()))
    sensitivity = _cost_sensitivity(run.inversion_log, MacroConfig())
    largest = [r.info["lambda_min"] for r in run.inversion_log if r.factor.startswith("A[")]
    lambda_typical = float(np.median(largest))
    sweep = _size_sweep(lambda_typical)
    _plot_size_sweep(sweep, args.results / "training_cost_scaling.png")
    total = time.perf_counter() - started

    # ---------------------------------------------------------------- page
    summary = {row["optimizer"]: row for row in default_rows}
    lines += [
        "# Training benchmark: K-FAC on the analog macro model",
        "",
        f"Generated by `python -m benchmarks.train_bench` in {total / 60:.1f} minutes on "
        f"{platform.machine()} with {os.cpu_count()} cores ({platform.processor() or 'unknown CPU'}), "
        f"Python {platform.python_version()}, torch {torch.__version__}, one torch and one BLAS thread. "
        "Data: scikit-learn's 8x8 digits (1169 train, 269 validation, 359 test). "
        "Protocol: docs/training.md. Every number below comes from this one run.",
        "",
        "## 1. Default comparison (`amc train`)",
        "",
        f"Four optimizers, seeds 0, 1, 2, learning rates swept on the validation split with seeds 100 and 101, "
        f"15 epochs, target {protocol.target_accuracy:.0%} test accuracy. K-FAC factors larger than 32 use diagonal blocks of at most 32 "
        f"(both K-FAC variants); the analog variant runs on 32x32 arrays with the default non-idealities. "
        f"Wall time of the whole command: **{default_wall:.0f} s** (target: under 600 s).",
        "",
        *_epochs_table(default_rows),
        "",
        "![default comparison](training_comparison.png)",
        "",
        "The digits test split has 359 images (0.28 % each) and the CNN levels off at 96.5-97 %, so "
        "epochs-to-target near the plateau jumps with single images. The same runs against other targets "
        "(epochs per seed, mean +- s.d.; '-' never reached, counted as 16):",
        "",
        *_target_sensitivity(work / "default"),
        "",
        "Epoch reduction, 1 - E_kfac / E_baseline (ratio of the means; reported by Zhang et al., "
        "arXiv:2512.05342, for a two-layer CNN on handwritten letters):",
        "",
        "| K-FAC variant | vs SGD with momentum | vs Adam |",
        "|---|---|---|",
    ]
    for name in ("kfac-analog", "kfac-exact"):
        ours = float(summary[name]["mean_epochs"])
        cells = []
        for baseline in ("sgd", "adam"):
            theirs = float(summary[baseline]["mean_epochs"])
            paired = float(summary[name][f"reduction_vs_{baseline}"])
            spread = float(summary[name][f"reduction_vs_{baseline}_std"])
            cells.append(f"{1 - ours / theirs:+.0%} (paired per seed {paired:+.0%} +- {spread:.0%}); "
                         f"reported {REPORTED_REDUCTION[baseline]:.0%}")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")

    ideal = {row["optimizer"]: row for row in ideal_rows}
    lines += [
        "",
        "## 2. Ideal devices: analog against exact K-FAC",
        "",
        "Same seeds and learning rate; `--ideal` switches off level quantization, programming error, read "
        "noise and stuck cells. The 8-bit DAC and ADC and the finite op-amp gain remain.",
        "",
        *_epochs_table(ideal_rows),
        "",
        "![ideal devices](training_ideal.png)",
        "",
        "## 3. Epoch time: analog-model backend against exact K-FAC",
        "",
        "Mean wall time of one training epoch (19 steps, 2 inverse refreshes) over the three seeds. Target: at "
        "most 1.5x.",
        "",
        "| factor structure and devices | exact | analog | ratio |",
        "|---|---|---|---|",
    ]
    for label, rows in (("blocks <= 32, default devices", default_rows), ("blocks <= 32, ideal devices", ideal_rows),
                        *[(name, rows) for name, rows in full_rows.items()]):
        by_name = {row["optimizer"]: float(row["mean_epoch_time_s"]) for row in rows}
        lines.append(f"| {label} | {by_name['kfac-exact'] * 1e3:.1f} ms | {by_name['kfac-analog'] * 1e3:.1f} ms | "
                     f"{_ratio(by_name['kfac-analog'], by_name['kfac-exact'])} |")
    lines += ["", "Full factors (129x129 arrays), epochs to target:", ""]
    for name, rows in full_rows.items():
        lines += [f"{name}:", "", *_epochs_table(rows), ""]

    cap = args.ablation_epochs + 1
    lines += [
        "## 4. Non-idealities one at a time",
        "",
        f"Analog K-FAC, learning rate {KFAC_LR}, {args.ablation_epochs} epochs, seeds 0, 1, 2. Residual: median "
        "over the programmings of the linear layer's input factor of ||F X - I||_F / ||I||_F after the analog "
        "solve (X the analog inverse of the equilibrated factor F).",
        "",
        f"| factor structure | devices | epochs to {protocol.target_accuracy:.0%} per seed | mean +- s.d. | "
        "final test accuracy | "
        "damping raises / spare arrays / programmings | fc.A residual | epoch time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in ablation_rows:
        mean, spread, censored = _mean_epochs(row["epochs_to_target"], cap)
        per_seed = " ".join("-" if v is None else str(v) for v in row["epochs_to_target"])
        lines.append(
            f"| {row['structure']} | {row['variant']} | {per_seed} | {'>=' if censored else ''}{mean:.2f} +- "
            f"{spread:.2f} | {row['final_accuracy']:.2%} | {row['damping_raises']} / {row['spares']} / "
            f"{row['programmings']} | "
            f"{row['fc_a_residual']:.3g} | {row['epoch_time_s'] * 1e3:.0f} ms |"
        )
    lines += ["", "![ablation](training_ablation.png)", ""]

    lines += [
        "## 5. Hardware cost estimate",
        "",
        f"Inversions of the seed-0 default analog run ({len(run.inversion_log)} programmings). Every parameter, "
        "its unit and its source are listed in docs/cost_model.md and printed by `amc train` (cost.txt). Ratios "
        "above 1 favour the AMC macro; the reported values are 5.88x throughput and 6.9x energy efficiency "
        "(Zhang et al., arXiv:2512.05342, on a larger task).",
        "",
        "Columns: all costs; programming free (AMC programming left out, digital unchanged, the usual view of "
        "one-step analog inversion). The default run uses explicit inverses, which have no reusable digital "
        "step, so excluding both setups gives the programming-free numbers.",
        "",
        "| parameters | throughput ratio | energy ratio | throughput, programming free | "
        "energy, programming free |",
        "|---|---|---|---|---|",
    ]
    for label, estimate in sensitivity:
        free = estimate.without_programming()
        lines.append(f"| {label} | {estimate.throughput_ratio:.3g}x | {estimate.energy_ratio:.3g}x | "
                     f"{free.throughput_ratio:.3g}x | {free.energy_ratio:.3g}x |")
    default_estimate = sensitivity[0][1]
    lines += [
        "",
        "Breakdown with the default parameters: AMC time "
        + ", ".join(f"{k} {v * 1e3:.3g} ms" for k, v in default_estimate.amc_time_s.items())
        + "; AMC energy " + ", ".join(f"{k} {v * 1e6:.3g} uJ" for k, v in default_estimate.amc_energy_J.items())
        + f"; digital {default_estimate.digital_flops:.3g} FLOP in {default_estimate.digital_time_s * 1e6:.3g} us, "
        f"{default_estimate.digital_energy_J * 1e6:.3g} uJ.",
        "",
        f"Scaling with the factor order N for one factor (lambda_min = {lambda_typical:.3g}, the median over "
        "the 32-blocks of the run, one operation per column): explicit inverse (N columns) and one solve (one "
        "column), with one multiplexed ADC or one ADC per line. Three views: all costs; programming free; both "
        "setups excluded (AMC programming and, in solve mode, the digital Cholesky factorization, so both "
        "sides solve on a kept factor).",
        "",
        "| N | mode | ADCs | throughput: all / programming free / setups excluded | "
        "energy: all / programming free / setups excluded |",
        "|---|---|---|---|---|",
    ]
    for row in sweep:
        lines.append(f"| {row['n']} | {row['mode']} | {row['adc_count']} | {row['throughput']:.3g}x / "
                     f"{row['throughput_free']:.3g}x / {row['throughput_kept']:.3g}x | {row['energy']:.3g}x / "
                     f"{row['energy_free']:.3g}x / {row['energy_kept']:.3g}x |")
    lines += ["", "![cost scaling](training_cost_scaling.png)", ""]
    (args.results / "training.md").write_text("\n".join(lines) + "\n")
    (args.results / "training.json").write_text(json.dumps({
        "default_wall_s": default_wall, "ideal_wall_s": ideal_wall, "default": default_rows, "ideal": ideal_rows,
        "full": full_rows, "ablation": ablation_rows, "size_sweep": sweep, "total_s": total,
    }, indent=2, default=str) + "\n")
    print(f"wrote {args.results / 'training.md'} ({total:.0f} s)")
    print(default_stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
