"""PNG report of a write-verify programming run (`amc.model.programming.ProgrammingStats`).

Left panel: histogram of the pulses per cell, failed cells stacked in red.
Right panel: achieved versus target conductance of every cell, with the
tolerance band (target +/- tolerance verify codes) and failed cells marked.
The figure is drawn with matplotlib's Agg canvas directly, so writing a
report does not change the pyplot backend of the caller.

``python -m amc.model.programming_report`` measures write-verify convergence
with the default `MacroConfig`. For each seed it programs one 32 x 32
half-array of a fresh macro to random levels (uniform over the 16 levels)
and prints the statistics and the wall time per pulse. ``--report`` writes
the report of the first seed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .config import MacroConfig
from .macro import AnalogMacro
from .programming import ProgrammingStats, program_conductances

__all__ = ["write_programming_report", "measure_random_targets", "main"]

_HALF_STYLE = {0: ("positive half", "o", "tab:blue"), 1: ("negative half", "s", "tab:orange")}


def write_programming_report(stats: ProgrammingStats, path, *, title: str | None = None) -> Path:
    """Write the pulses-per-cell histogram and the achieved-versus-target scatter of `stats` as a PNG.

    Parameters
    ----------
    stats : ProgrammingStats
        From `program_conductances`, `program_matrix` or ``ProgrammedSolver.programming_stats``.
    path : str or Path
        Output file; its folder must exist. The file is replaced whole or not at all.
    title : str, optional
        Figure title; default `stats.summary()`.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        If `path` does not end in ``.png``.
    FileNotFoundError
        If the folder of `path` does not exist.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"report path {str(path)!r} must end in .png")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {str(path.parent)!r} of the report does not exist; create it first")

    figure = Figure(figsize=(12, 4.8), layout="constrained")
    FigureCanvasAgg(figure)
    histogram_axes, scatter_axes = figure.subplots(1, 2)
    _draw_histogram(histogram_axes, stats)
    _draw_scatter(scatter_axes, stats)
    figure.suptitle(stats.summary() if title is None else title, fontsize=9)

    # Write to a temporary file in the same folder, then rename over the target.
    handle, temporary = tempfile.mkstemp(suffix=".png", dir=path.parent)
    os.close(handle)
    try:
        figure.savefig(temporary, format="png", dpi=120)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _draw_histogram(axes, stats: ProgrammingStats) -> None:
    limit = stats.settings.max_pulses
    bins = np.arange(limit + 2) - 0.5
    pulses = stats.pulses
    axes.hist([pulses[stats.passed], pulses[~stats.passed]], bins=bins, stacked=True,
              color=["tab:blue", "tab:red"], label=["passed", f"failed ({np.count_nonzero(~stats.passed)})"])
    axes.axvline(stats.mean_pulses, color="black", linestyle="--", linewidth=1,
                 label=f"mean {stats.mean_pulses:.2f}")
    axes.set_xlim(-0.5, limit + 0.5)
    axes.set_xlabel(f"pulses per cell (max_pulses = {limit})")
    axes.set_ylabel("cells")
    axes.set_title(f"{stats.cell_count} cells, {stats.total_pulses} pulses, max {stats.max_pulses} per cell",
                   fontsize=10)
    axes.legend(fontsize=8)


def _draw_scatter(axes, stats: ProgrammingStats) -> None:
    target_uS = stats.target_S * 1e6
    achieved_uS = stats.achieved_S * 1e6
    low, high = float(target_uS.min()), float(target_uS.max())
    span = np.array([low, high])
    band_uS = (stats.settings.tolerance + 0.5) * stats.code_step_S * 1e6
    axes.plot(span, span, color="grey", linewidth=1, label="achieved = target")
    axes.fill_between(span, span - band_uS, span + band_uS, color="grey", alpha=0.2,
                      label=f"pass window: target +/- {stats.settings.tolerance + 0.5:g} codes")
    for k, half in enumerate(stats.halves):
        name, marker, color = _HALF_STYLE[half]
        axes.scatter(target_uS[k].ravel(), achieved_uS[k].ravel(), s=10, marker=marker, color=color, alpha=0.6,
                     label=name, linewidths=0)
    failed = ~stats.passed
    if failed.any():
        axes.scatter(target_uS[failed], achieved_uS[failed], s=40, marker="x", color="tab:red",
                     label=f"failed ({np.count_nonzero(failed)})")
    error_uS = stats.error_S * 1e6
    axes.set_xlabel("target conductance (uS)")
    axes.set_ylabel("achieved conductance (uS)")
    axes.set_title(f"error rms {np.sqrt(np.mean(error_uS ** 2)):.3g} uS, max {np.max(np.abs(error_uS)):.3g} uS "
                   f"(1 verify code = {stats.code_step_S * 1e6:.3g} uS)", fontsize=10)
    axes.legend(fontsize=8, loc="upper left")


def measure_random_targets(config: MacroConfig) -> tuple[ProgrammingStats, AnalogMacro, float]:
    """Program the positive half of array 0 of a fresh macro to random levels.

    The level of each cell is uniform over ``ArrayParams.levels``, drawn from
    ``numpy.random.default_rng(config.seed)``.

    Returns
    -------
    stats : ProgrammingStats
    macro : AnalogMacro
        The programmed macro; its stuck map shows which failures are stuck cells.
    wall_s : float
        Wall-clock time of the programming, in seconds.
    """
    geometry = config.array
    rng = np.random.default_rng(config.seed)
    targets = geometry.g_min_S + geometry.level_step_S * rng.integers(0, geometry.levels,
                                                                      (geometry.rows, geometry.cols))
    macro = AnalogMacro(config)
    started = time.perf_counter()
    stats = program_conductances(macro, 0, targets)
    return stats, macro, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Measure write-verify convergence over random targets; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m amc.model.programming_report",
                                     description="Program random 16-level targets into 32 x 32 half-arrays of the "
                                                 "default MacroConfig with write-verify and print the statistics.")
    parser.add_argument("--seeds", type=int, default=8, help="number of seeds 0 .. N-1, one fresh macro each (default 8)")
    parser.add_argument("--report", type=Path, help="write the PNG report of seed 0 to this file")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds} is invalid: use at least 1")

    pulses, passed, errors, failed, stuck_failed, cells, wall, events = [], [], [], 0, 0, 0, 0.0, 0
    for seed in range(args.seeds):
        stats, macro, seconds = measure_random_targets(MacroConfig(seed=seed))
        stuck = macro.devices.stuck_map.stuck[0, 0]
        print(f"seed {seed}: {stats.summary()}")
        pulses.append(stats.pulses.ravel())
        passed.append(stats.passed.ravel())
        errors.append(stats.error_S[stats.passed])
        failed += len(stats.failed_cells)
        stuck_failed += sum(1 for _, row, col in stats.failed_cells if stuck[row, col])
        cells += stats.cell_count
        wall += seconds
        events += stats.total_pulses
        if seed == 0 and args.report is not None:
            print(f"report: {write_programming_report(stats, args.report)}")
    counts = np.concatenate(pulses)
    passed_counts = counts[np.concatenate(passed)]
    print(f"all {cells} cells: pulses per cell mean {counts.mean():.2f}, median {np.median(counts):.0f}, "
          f"95th percentile {np.percentile(counts, 95):.0f}, max {counts.max()} "
          f"(max {passed_counts.max(initial=0)} over passed cells); failed {failed} "
          f"({100 * failed / cells:.3f} %), of which stuck {stuck_failed}")
    error_uS = np.concatenate(errors) * 1e6
    print(f"conductance error of passed cells: rms {np.sqrt(np.mean(error_uS ** 2)):.3f} uS, "
          f"max {np.max(np.abs(error_uS), initial=0):.3f} uS; wall time {wall:.2f} s, "
          f"{1e6 * wall / events:.1f} us per pulse with its verify read")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
